package publicapi

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
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
