package origin

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

	"github.com/mieweb/pulsevault/shared/topology"
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
		prefix := r.Header.Get(topology.HeaderOffload)
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
	res, body := get(h, "/media/TOK/videos/v/hls/seg.m4s", "Range", "bytes=2-5", topology.HeaderOffload, "/evil/")
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
	if _, _ = get(h, "/api/videos", topology.HeaderOffload, "/x/"); gwSaw.Load() != "" {
		t.Errorf("a non-media route was asked to offload (%q)", gwSaw.Load())
	}

	// Without a store: nothing is offloaded, whatever the client sends, and
	// an X-Accel-Redirect never reaches a client.
	h, err = Handler(Options{GatewayURL: gw.URL})
	if err != nil {
		t.Fatal(err)
	}
	if res, body := get(h, "/media/TOK/videos/v/hls/seg.m4s", topology.HeaderOffload, offloadPrefix); res.StatusCode != 200 || body != "bytes from the function" {
		t.Errorf("no store: %d %q", res.StatusCode, body)
	}
	if _, err := Handler(Options{GatewayURL: gw.URL, Store: "http://store:9000/bucket"}); err == nil {
		t.Error("accepted a store URL with a path")
	}
}

// The functions' own endpoints (fnrun's /metrics and /_/health, media's
// /_/metrics) are not reachable through the public origin, however the path
// is spelled; the functions' real sub-paths still are.
func TestInternalPathsNotRouted(t *testing.T) {
	var reached atomic.Value
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Store(r.URL.Path)
		io.WriteString(w, "function")
	}))
	defer gw.Close()
	h, err := Handler(Options{GatewayURL: gw.URL, Static: http.NotFoundHandler()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	get := func(p string) int {
		reached.Store("")
		// A raw request line: the client must not clean the path.
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		req.URL.Opaque = p
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	for _, fn := range []string{"/media", "/api/videos", "/api/upload", "/api/sign-url", "/api/events"} {
		for _, p := range []string{"/metrics", "/_/health", "/_/metrics", "//metrics", "/%6detrics", "/%5F/health", "/./metrics",
			"/x/../metrics", "/metrics/", "/_", "/%2e%2e/metrics", "/%2fmetrics"} {
			code := get(fn + p)
			if code != http.StatusNotFound && code != http.StatusForbidden || reached.Load() != "" {
				t.Errorf("GET %s%s: %d, reached the gateway as %q; want 403/404 and not reached", fn, p, code, reached.Load())
			}
		}
	}
	// What the functions really serve under their routes.
	for _, p := range []string{"/api/videos", "/api/videos/", "/api/videos/3f1c9b2e-8d4a-4c6e-9f00-1a2b3c4d5e6f", "/api/sign-url", "/api/events",
		"/api/upload/", "/api/upload/0123456789abcdef0123456789abcdef+e87220b2-921f-405e-916e-df81f5fe4c4f", "/media/TOK/videos/v/hls/master.m3u8",
		"/api/videos/metrics-report"} {
		if code := get(p); code != http.StatusOK || reached.Load() == "" {
			t.Errorf("GET %s: %d, want the function's answer", p, code)
		}
	}
	// sign-url and events have no sub-paths (as in nginx: exact locations).
	for _, p := range []string{"/api/sign-url/x", "/api/events/", "/api/events/x"} {
		if code := get(p); code != http.StatusNotFound || reached.Load() != "" {
			t.Errorf("GET %s: %d, reached %q; want 404", p, code, reached.Load())
		}
	}
}

// Only the media function's X-Accel-Redirect is served from the store;
// another function's is an error, and the store is never asked.
func TestAccelRedirectFromMediaOnly(t *testing.T) {
	var storeHits atomic.Int64
	store := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		storeHits.Add(1)
		io.WriteString(w, "store bytes")
	}))
	defer store.Close()
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Accel-Redirect", offloadPrefix+"pulse-media/videos/v/original.mp4?X-Amz-Signature=x")
	}))
	defer gw.Close()
	h, err := Handler(Options{GatewayURL: gw.URL, Store: store.URL})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	for _, p := range []string{"/api/videos", "/api/upload/", "/api/sign-url", "/api/events", "/api/pairings", "/pulsevault/capabilities", "/pulsevault/upload/x"} {
		res, err := http.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusBadGateway || strings.Contains(string(b), "store bytes") || res.Header.Get("X-Accel-Redirect") != "" {
			t.Errorf("%s: %d %q, want 502 without the store's bytes", p, res.StatusCode, b)
		}
	}
	if n := storeHits.Load(); n != 0 {
		t.Errorf("the store was asked %d times", n)
	}
	if res, err := http.Get(srv.URL + "/media/TOK/videos/v/poster.jpg"); err != nil || res.StatusCode != 200 || storeHits.Load() != 1 {
		t.Errorf("media offload: %v %v, store hits %d", res, err, storeHits.Load())
	}
	if res, err := http.Get(srv.URL + "/pulsevault/artifacts/3f2b8c1e-5d4a-4e6b-9c7d-0a1b2c3d4e5f?token=x"); err != nil || res.StatusCode != 200 || storeHits.Load() != 2 {
		t.Errorf("Pulse artifact offload: %v %v, store hits %d", res, err, storeHits.Load())
	}
}

// The pulsevault function gets the whole public path; only its artifact
// route is offered the offload; its internal endpoints are not routed.
func TestPulseRoutes(t *testing.T) {
	type seen struct{ path, offload, version string }
	got := make(chan seen, 1)
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- seen{r.URL.Path, r.Header.Get(topology.HeaderOffload), ""}
	}))
	defer gw.Close()
	h, err := Handler(Options{GatewayURL: gw.URL, Store: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	for p, want := range map[string]seen{
		"/api/pairings":             {"/function/pulsevault/api/pairings", "", ""},
		"/pulsevault/capabilities":  {"/function/pulsevault/pulsevault/capabilities", "", ""},
		"/pulsevault/upload/abc":    {"/function/pulsevault/pulsevault/upload/abc", "", ""},
		"/pulsevault/artifacts/abc": {"/function/pulsevault/pulsevault/artifacts/abc", offloadPrefix, ""},
	} {
		res, err := http.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if s := <-got; s != want {
			t.Errorf("%s reached %+v, want %+v", p, s, want)
		}
	}
	for _, p := range []string{"/pulsevault/metrics", "/pulsevault/_/health", "/pulsevault/upload/../../metrics", "/api/pairings/x"} {
		res, err := http.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", p, res.StatusCode)
		}
		select {
		case s := <-got:
			t.Errorf("%s reached the gateway as %s", p, s.path)
		default:
		}
	}
}

// The forwarding headers the functions see are this origin's: a client's
// Forwarded, X-Forwarded-* and X-Real-Ip are replaced or dropped.
func TestForwardingHeadersReplaced(t *testing.T) {
	var saw atomic.Pointer[http.Header]
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Clone()
		saw.Store(&h)
	}))
	defer gw.Close()
	h, err := Handler(Options{GatewayURL: gw.URL})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	for _, p := range []string{"/api/upload/", "/api/videos"} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+p, nil)
		for k, v := range map[string]string{"Forwarded": "host=evil.example;proto=https", "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https",
			"X-Forwarded-Prefix": "/evil/", "X-Forwarded-For": "6.6.6.6", "X-Forwarded-Port": "666", "X-Real-Ip": "6.6.6.6"} {
			req.Header.Set(k, v)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		got := *saw.Load()
		host := strings.TrimPrefix(srv.URL, "http://")
		if got.Get("Forwarded") != "" || got.Get("X-Forwarded-Host") != host || got.Get("X-Forwarded-Proto") != "http" || got.Get("X-Forwarded-Port") != "" ||
			got.Get("X-Real-Ip") != "" || strings.Contains(got.Get("X-Forwarded-For"), "6.6.6.6") {
			t.Errorf("%s: the function saw %v", p, got)
		}
		if want := map[string]string{"/api/upload/": "/api/upload/", "/api/videos": ""}[p]; got.Get("X-Forwarded-Prefix") != want {
			t.Errorf("%s: X-Forwarded-Prefix %q, want %q", p, got.Get("X-Forwarded-Prefix"), want)
		}
	}
}

// A header over MaxHeaderBytes gets 431 before anything is forwarded; a
// large but ordinary one (a 16 KiB token) passes.
func TestHeaderSizeBounded(t *testing.T) {
	var reached atomic.Int64
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached.Add(1) }))
	defer gw.Close()
	h, err := Handler(Options{GatewayURL: gw.URL})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(nil)
	srv.Config = Server(h, nil)
	srv.Start()
	defer srv.Close()
	for size, want := range map[int]int{16 << 10: http.StatusOK, 233 << 10: http.StatusRequestHeaderFieldsTooLarge} {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/upload/", nil)
		req.Header.Set("Upload-Metadata", "filename "+strings.Repeat("A", size))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != want {
			t.Errorf("%d-byte header: %d, want %d", size, res.StatusCode, want)
		}
	}
	if n := reached.Load(); n != 1 {
		t.Errorf("%d requests reached the gateway, want 1", n)
	}
}
