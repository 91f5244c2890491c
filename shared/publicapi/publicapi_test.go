package publicapi

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mieweb/pulsevault/shared/mediaserve"
)

func TestRouting(t *testing.T) {
	// A fake gateway that reports the path it was asked for.
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.URL.EscapedPath()+"?"+r.URL.RawQuery)
	}))
	defer gw.Close()
	h, err := Handler(Options{GatewayURL: gw.URL, Static: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "static")
	})})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	for path, want := range map[string]string{
		"/media/TOK/videos/x/hls/master.m3u8": "/function/media/TOK/videos/x/hls/master.m3u8?",
		"/api/sign-url":                       "/function/sign-url?",
		"/api/videos?limit=2":                 "/function/videos?limit=2",
		"/api/videos/abc":                     "/function/videos/abc?",
		"/api/events":                         "/function/events?",
		"/api/videosX":                        "static",
		"/":                                   "static",
		"/index.html":                         "static",
	} {
		res, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if string(b) != want {
			t.Errorf("%s → %q, want %q", path, b, want)
		}
	}
	for _, path := range []string{"/media/", "/media/_/metrics", "/media/TOK/videos/x/%2e%2e/meta.json", "/media/TOK/videos%2fx"} {
		res, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", path, res.StatusCode)
		}
	}
	if _, err := Handler(Options{GatewayURL: "ftp://x"}); err == nil {
		t.Error("accepted an ftp gateway")
	}
}

func TestSelfSignedTLSAndHTTP2(t *testing.T) {
	dir := t.TempDir()
	cert, key, fp, err := SelfSigned(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(fp) != 32*3-1 {
		t.Fatalf("fingerprint %q", fp)
	}
	// A second call reuses the pair.
	if _, _, fp2, err := SelfSigned(dir); err != nil || fp2 != fp {
		t.Fatalf("second call: %q %v", fp2, err)
	}
	if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", fi, err)
	}
	tc, err := TLSConfig(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(nil)
	srv.Config = Server(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.Proto) }), nil)
	srv.TLS = tc
	srv.StartTLS()
	defer srv.Close()

	pemBytes, _ := os.ReadFile(cert)
	blk, _ := pem.Decode(pemBytes)
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil || Fingerprint(c.Raw) != fp {
		t.Fatalf("fingerprint does not match the certificate: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(c)
	for _, h2 := range []bool{true, false} {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: h2}
		if !h2 {
			tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		}
		// The certificate is for 127.0.0.1: verification must pass as is.
		res, err := (&http.Client{Transport: tr}).Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		want := map[bool]string{true: "HTTP/2.0", false: "HTTP/1.1"}[h2]
		if string(b) != want {
			t.Errorf("h2=%v: %s, want %s", h2, b, want)
		}
	}
	if _, err := TLSConfig(cert, ""); err == nil {
		t.Error("TLS without a key accepted")
	}
}

// TestMediaOffload: with a store configured, /media/ asks the function to
// offload, and its X-Accel-Redirect is served from the store with the
// client's Range; the store's own headers and error bodies stay inside.
func TestMediaOffload(t *testing.T) {
	var storeSaw atomic.Pointer[http.Request]
	store := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		storeSaw.Store(r)
		if r.URL.Path != "/pulse-media/videos/v/hls/seg.m4s" {
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, "<Error><Code>NoSuchKey</Code><Key>videos/v/hls/missing.m4s</Key></Error>")
			return
		}
		w.Header().Set("X-Amz-Request-Id", "store-internal")
		w.Header().Set("Content-Type", "binary/octet-stream")
		http.ServeContent(w, r, "", time.Time{}, strings.NewReader("0123456789"))
	}))
	defer store.Close()
	var gwSaw atomic.Value
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		prefix := r.Header.Get(mediaserve.OffloadHeader)
		gwSaw.Store(prefix)
		if prefix == "" {
			io.WriteString(w, "bytes from the function")
			return
		}
		w.Header().Set("Cache-Control", "private, no-store")
		w.Header().Set("Content-Type", "video/iso.segment")
		name := path.Base(r.URL.Path)
		w.Header().Set("X-Accel-Redirect", prefix+"pulse-media/videos/v/hls/"+name+"?X-Amz-Signature=abc%2Fdef")
	}))
	defer gw.Close()
	get := func(h http.Handler, p string, hdr ...string) (*http.Response, string) {
		srv := httptest.NewServer(h)
		defer srv.Close()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+p, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res, string(b)
	}

	h, err := Handler(Options{GatewayURL: gw.URL, Store: store.URL})
	if err != nil {
		t.Fatal(err)
	}
	res, body := get(h, "/media/TOK/videos/v/hls/seg.m4s", "Range", "bytes=2-5", mediaserve.OffloadHeader, "/evil/")
	if res.StatusCode != http.StatusPartialContent || body != "2345" || res.Header.Get("Content-Range") != "bytes 2-5/10" {
		t.Fatalf("offloaded range: %d %q %v", res.StatusCode, body, res.Header)
	}
	if gwSaw.Load() != offloadPrefix {
		t.Errorf("the function was asked with prefix %q, want %q (a client's value replaced)", gwSaw.Load(), offloadPrefix)
	}
	sr := storeSaw.Load()
	if sr.URL.RawQuery != "X-Amz-Signature=abc%2Fdef" || sr.Header.Get("Range") != "bytes=2-5" {
		t.Errorf("store asked %s with Range %q", sr.URL, sr.Header.Get("Range"))
	}
	for h, want := range map[string]string{"X-Accel-Redirect": "", "X-Amz-Request-Id": "", "Cache-Control": "private, no-store", "Content-Type": "video/iso.segment"} {
		if got := res.Header.Get(h); got != want {
			t.Errorf("%s: %q, want %q", h, got, want)
		}
	}
	if res, body := get(h, "/media/TOK/videos/v/hls/missing.m4s"); res.StatusCode != http.StatusNotFound || body != "not found\n" {
		t.Errorf("missing object: %d %q, want a plain 404", res.StatusCode, body)
	}
	if _, _ = get(h, "/api/videos", mediaserve.OffloadHeader, "/x/"); gwSaw.Load() != "" {
		t.Errorf("a non-media route was asked to offload (%q)", gwSaw.Load())
	}

	// Without a store: nothing is offloaded, whatever the client sends, and
	// an X-Accel-Redirect never reaches a client.
	h, err = Handler(Options{GatewayURL: gw.URL})
	if err != nil {
		t.Fatal(err)
	}
	if res, body := get(h, "/media/TOK/videos/v/hls/seg.m4s", mediaserve.OffloadHeader, offloadPrefix); res.StatusCode != 200 || body != "bytes from the function" {
		t.Errorf("no store: %d %q", res.StatusCode, body)
	}
	if _, err := Handler(Options{GatewayURL: gw.URL, Store: "http://store:9000/bucket"}); err == nil {
		t.Error("accepted a store URL with a path")
	}
}
