package tests

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mieweb/pulsevault/shared/playback/origin"
)

// nginx reads media bytes from an https store only when the store's certificate verifies
// against PULSEVAULT_S3_CA (before, any certificate was taken: a man in the middle between
// nginx and MinIO could serve any bytes). A fake media function answers with the
// X-Accel-Redirect the real one sends; the store is a TLS server of its own CA.
func TestNginxVerifiesTheStore(t *testing.T) {
	t.Parallel()
	// A store certificate for a host name, as MinIO's is (minio.minio): nginx checks the name.
	storeCA, storeKey, _, err := origin.SelfSigned(filepath.Join(t.TempDir(), "store"), "localhost")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(storeCA, storeKey)
	if err != nil {
		t.Fatal(err)
	}
	store := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "segment bytes")
	}))
	store.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	store.StartTLS()
	defer store.Close()
	storeURL := strings.Replace(store.URL, "127.0.0.1", "localhost", 1)
	media := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Accel-Redirect", "/_pulsevault_s3/pulse-media/videos/x/hls/360p/seg-1.m4s?X-Amz-Signature=abc")
	}))
	defer media.Close()

	for _, c := range []struct {
		name   string
		ca     string // "" keeps renderNginx's, a CA that did not sign the store's certificate
		status int
	}{{"right CA", storeCA, 200}, {"other CA", "", 502}} {
		t.Run(c.name, func(t *testing.T) {
			s := renderNginx(t, strings.TrimPrefix(media.URL, "http://"), storeURL)
			conf := filepath.Join(s.dir, "pulsevault.conf")
			b, err := os.ReadFile(conf)
			if err != nil {
				t.Fatal(err)
			}
			if c.ca != "" {
				b = []byte(strings.Replace(string(b), "proxy_ssl_trusted_certificate "+s.certFile, "proxy_ssl_trusted_certificate "+c.ca, 1))
			}
			if err := os.WriteFile(conf, b, 0o644); err != nil {
				t.Fatal(err)
			}
			s.start(t)
			own, err := os.ReadFile(s.certFile)
			if err != nil {
				t.Fatal(err)
			}
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(own)
			client := &http.Client{Timeout: 20 * time.Second,
				Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}}}
			code, _, body := get(t, client, "https://"+s.https+"/media/tok/videos/x/hls/360p/seg-1.m4s")
			if code != c.status || (c.status == 200 && string(body) != "segment bytes") {
				t.Fatalf("media through nginx with the %s: %d %q, want %d", c.name, code, body, c.status)
			}
		})
	}
}

// Plain HTTP redirects to this server's own name, never to the Host a client sent (before,
// `https://$host` sent a client wherever its Host header said).
func TestNginxRedirectKeepsItsName(t *testing.T) {
	t.Parallel()
	s := renderNginx(t, "127.0.0.1:1", "http://127.0.0.1:2")
	s.start(t)
	req, _ := http.NewRequest(http.MethodGet, "http://"+s.http+"/api/videos?x=1", nil)
	req.Host = "evil.example"
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMovedPermanently || res.Header.Get("Location") != "https://localhost/api/videos?x=1" {
		t.Fatalf("redirect: %d %q, want 301 to https://localhost/api/videos?x=1", res.StatusCode, res.Header.Get("Location"))
	}
}
