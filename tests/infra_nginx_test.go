package tests

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/types"

	"github.com/mieweb/pulsevault/shared/ingest/tusclient"
	"github.com/mieweb/pulsevault/shared/playback/origin"
	"github.com/mieweb/pulsevault/shared/testutil/tier"
)

// nginxVars are the placeholders infra/nginx/pulsevault.conf documents.
var nginxVars = []string{"PULSEVAULT_SERVER_NAME", "PULSEVAULT_HTTP_LISTEN", "PULSEVAULT_HTTPS_LISTEN",
	"PULSEVAULT_TLS_CERT", "PULSEVAULT_TLS_KEY", "PULSEVAULT_GATEWAY", "PULSEVAULT_S3_URL", "PULSEVAULT_S3_CA", "PULSEVAULT_VITALS_ROOT", "PULSEVAULT_LOG_DIR"}

// nginxSite is the shipped config rendered for a test: a temp prefix, loopback ports, a
// generated certificate, and a main config that runs in the foreground and touches no system path.
type nginxSite struct {
	dir, main, accessLog, errorLog string
	https, http                    string // host:port
	certFile                       string
}

func renderNginx(t *testing.T, gateway, s3URL string) *nginxSite {
	t.Helper()
	dir := t.TempDir()
	s := &nginxSite{dir: dir, https: freeAddr(t), http: freeAddr(t)}
	cert, key, _, err := origin.SelfSigned(filepath.Join(dir, "tls"), "127.0.0.1", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	s.certFile = cert
	for _, d := range []string{"logs", "tmp", "www"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "www", "index.html"), []byte("<!doctype html><title>Vitals</title>\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	vals := map[string]string{
		"PULSEVAULT_SERVER_NAME": "localhost", "PULSEVAULT_HTTP_LISTEN": s.http, "PULSEVAULT_HTTPS_LISTEN": s.https,
		"PULSEVAULT_TLS_CERT": s.certFile, "PULSEVAULT_TLS_KEY": key, "PULSEVAULT_GATEWAY": gateway, "PULSEVAULT_S3_URL": s3URL,
		"PULSEVAULT_S3_CA":       s.certFile, // any PEM certificate: the tests' store is plain http
		"PULSEVAULT_VITALS_ROOT": filepath.Join(dir, "www"), "PULSEVAULT_LOG_DIR": filepath.Join(dir, "logs"),
	}
	tpl, err := os.ReadFile(filepath.Join(infraDir(t), "nginx", "pulsevault.conf"))
	if err != nil {
		t.Fatal(err)
	}
	var pairs []string
	for _, v := range nginxVars {
		pairs = append(pairs, "${"+v+"}", vals[v])
	}
	conf := strings.NewReplacer(pairs...).Replace(string(tpl))
	if left := regexp.MustCompile(`\$\{PULSEVAULT_[A-Z_]+\}`).FindAllString(conf, -1); len(left) > 0 {
		t.Fatalf("unknown placeholders left in the nginx config: %v", left)
	}
	if err := os.WriteFile(filepath.Join(dir, "pulsevault.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	s.accessLog = filepath.Join(dir, "logs", "pulsevault-access.log")
	s.errorLog = filepath.Join(dir, "logs", "error.log")
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;\n" // workers read the temp dirs t.TempDir made 0700
	}
	tmp := filepath.Join(dir, "tmp")
	main := fmt.Sprintf(`%sdaemon off;
worker_processes 2;
pid %s/nginx.pid;
error_log %s info;
events { worker_connections 256; }
http {
    include /etc/nginx/mime.types;
    client_body_temp_path %s/body;
    proxy_temp_path %s/proxy;
    fastcgi_temp_path %s/fastcgi;
    uwsgi_temp_path %s/uwsgi;
    scgi_temp_path %s/scgi;
    access_log off;
    include %s/pulsevault.conf;
}
`, user, dir, s.errorLog, tmp, tmp, tmp, tmp, tmp, dir)
	s.main = filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(s.main, []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

func nginxBin(t *testing.T) string {
	t.Helper()
	tier.Integration(t, "nginx")
	for _, p := range []string{"nginx", "/usr/sbin/nginx"} {
		if b, err := exec.LookPath(p); err == nil {
			return b
		}
	}
	t.Fatal("nginx is not installed (make deps installs it: APT_PACKAGES)")
	return ""
}

func (s *nginxSite) args(extra ...string) []string {
	return append([]string{"-p", s.dir, "-e", s.errorLog, "-c", s.main}, extra...)
}

// `nginx -t` accepts the shipped config, and the config keeps the rules the design sets.
func TestNginxConfigTest(t *testing.T) {
	t.Parallel()
	s := renderNginx(t, "127.0.0.1:1", "http://127.0.0.1:2")
	out, err := exec.Command(nginxBin(t), s.args("-t")...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "test is successful") {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
	conf, _ := os.ReadFile(filepath.Join(s.dir, "pulsevault.conf"))
	c := string(conf)
	for _, want := range []string{
		"ssl_protocols TLSv1.2 TLSv1.3;", " ssl http2;", "proxy_buffering off;", "proxy_request_buffering off;",
		"limit_req zone=pulsevault_api", "limit_req zone=pulsevault_upload", "limit_req zone=pulsevault_media",
		"proxy_pass http://pulsevault_gateway/function/media/;", "proxy_pass http://pulsevault_gateway/function/upload/;",
	} {
		if !strings.Contains(c, want) {
			t.Errorf("nginx config lacks %q", want)
		}
	}
	// Only TLS 1.2 and 1.3; the log format holds nothing a token or PHI could ride in.
	if m := regexp.MustCompile(`ssl_protocols ([^;]*);`).FindStringSubmatch(c); m == nil || m[1] != "TLSv1.2 TLSv1.3" {
		t.Errorf("ssl_protocols %v: want TLSv1.2 TLSv1.3", m)
	}
	lf := regexp.MustCompile(`(?s)log_format pulsevault[^;]*;`).FindString(c)
	if lf == "" || !strings.Contains(lf, "$pulsevault_log_path") {
		t.Errorf("log_format pulsevault must log $pulsevault_log_path: %q", lf)
	}
	for _, bad := range []string{"$request_uri", "$request\"", "$request ", "$args", "$query_string", "$http_referer", "$uri", "$http_authorization"} {
		if strings.Contains(lf, bad) {
			t.Errorf("log_format pulsevault logs %s", bad)
		}
	}
	// Every server logs with the redacting format (Debian's http-level access_log would not).
	for i, srv := range strings.Split(c, "server {")[1:] {
		if !strings.Contains(srv, "access_log "+filepath.Join(s.dir, "logs")+"/pulsevault-access.log pulsevault;") {
			t.Errorf("server block %d does not log with the pulsevault format", i)
		}
	}
	// A broken config is refused: the check above can fail.
	if err := os.WriteFile(filepath.Join(s.dir, "pulsevault.conf"), []byte(c+"\nserver { listen nope; }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(nginxBin(t), s.args("-t")...).CombinedOutput(); err == nil {
		t.Fatalf("nginx -t accepted a broken config:\n%s", out)
	}
}

// start runs nginx in the foreground as a child and waits until it answers.
func (s *nginxSite) start(t *testing.T) {
	t.Helper()
	cmd := exec.Command(nginxBin(t), s.args()...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGQUIT) // graceful stop
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			el, _ := os.ReadFile(s.errorLog)
			t.Logf("nginx output:\n%s\nerror log:\n%s", out.String(), el)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.https, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case err := <-done:
			t.Fatalf("nginx exited: %v\n%s", err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx not listening on %s in 10s:\n%s", s.https, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The shipped nginx config in front of a real provider: HTTPS with HTTP/2, a tus upload to the
// upload function, sign-url, a 206 range of a real segment from the media function, the
// routes it must not publish, and access logs without tokens or PHI.
func TestNginxSmoke(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	st := startPlayback(t, "60s")
	if code, _, body := st.p.do(http.MethodPost, "/system/functions", types.FunctionDeployment{
		Service: "upload", Image: "pulsevault-upload:dev", Secrets: []string{"pulsevault-jwt-secret"},
	}, true); code != http.StatusAccepted {
		t.Fatalf("deploy upload: %d %s", code, body)
	}
	s := renderNginx(t, strings.TrimPrefix(st.p.url, "http://"), st.s3)
	s.start(t)

	pem, err := os.ReadFile(s.certFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("certificate does not parse")
	}
	client := &http.Client{
		Timeout:       30 * time.Second,
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}, ForceAttemptHTTP2: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	base := "https://" + s.https

	// TLS 1.2 is the floor; HTTP/2 is offered.
	res, err := client.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || res.ProtoMajor != 2 {
		t.Fatalf("healthz: %d over %s, want 200 over HTTP/2", res.StatusCode, res.Proto)
	}
	old := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}
	if c, err := tls.Dial("tcp", s.https, old); err == nil {
		c.Close()
		t.Error("nginx accepted TLS 1.1")
	}
	if code, hdr, _ := get(t, client, "http://"+s.http+"/api/sign-url"); code != http.StatusMovedPermanently || !strings.HasPrefix(hdr.Get("Location"), "https://") {
		t.Errorf("plain HTTP: %d %v, want a redirect to https", code, hdr)
	}

	// tus through /api/upload/: creation, the body in one PATCH, and the offset read back.
	jwt := st.jwt(t, "uploader-1")
	clip := filepath.Join(t.TempDir(), phiName+".mp4")
	payload := bytes.Repeat([]byte("pulsevault tus through nginx\n"), 40000) // ~1.1 MB: over nginx's default 1m body limit
	if err := os.WriteFile(clip, payload, 0o600); err != nil {
		t.Fatal(err)
	}
	tc := &tusclient.Client{Endpoint: base + "/api/upload/", Token: jwt, HTTP: client, ChunkSize: int64(len(payload))}
	up, err := tc.Upload(ctx, clip, map[string]string{"filename": phiName + ".mp4", "filetype": "video/mp4"})
	if err != nil {
		t.Fatalf("tus upload through nginx: %v", err)
	}
	if !strings.HasPrefix(up, base+"/api/upload/") {
		t.Errorf("upload URL %q is not under the public /api/upload/", up)
	}
	code, hdr, _ := func() (int, http.Header, []byte) {
		req, _ := http.NewRequest(http.MethodHead, up, nil)
		req.Header.Set("Tus-Resumable", "1.0.0")
		req.Header.Set("Authorization", "Bearer "+jwt)
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode, res.Header, nil
	}()
	if code != 200 || hdr.Get("Upload-Offset") != fmt.Sprint(len(payload)) {
		t.Errorf("HEAD upload: %d offset %q, want 200 and %d", code, hdr.Get("Upload-Offset"), len(payload))
	}

	// sign-url, then a range of a real segment through /media/.
	code, signed, raw := signURL(t, client, base+"/api/sign-url", jwt, fmt.Sprintf(`{"video":%q}`, st.video))
	if code != 200 || !strings.HasPrefix(signed.URL, "/media/") {
		t.Fatalf("sign-url through nginx: %d %s", code, raw)
	}
	tok := strings.SplitN(strings.TrimPrefix(signed.URL, "/media/"), "/", 2)[0]
	if code, _, body := get(t, client, base+signed.URL); code != 200 || !bytes.HasPrefix(body, []byte("#EXTM3U")) {
		t.Fatalf("master playlist through nginx: %d %.80q", code, body)
	}
	var segKey string
	for k := range st.hlsFiles {
		if strings.HasSuffix(k, ".m4s") && (segKey == "" || k < segKey) {
			segKey = k
		}
	}
	if segKey == "" {
		t.Fatal("no segment staged")
	}
	segURL := base + "/media/" + tok + "/" + segKey
	code, hdr, body := get(t, client, segURL, "Range", "bytes=0-9")
	want := st.hlsFiles[segKey]
	if code != http.StatusPartialContent || !bytes.Equal(body, want[:10]) || hdr.Get("Content-Range") != fmt.Sprintf("bytes 0-9/%d", len(want)) {
		t.Fatalf("range through nginx: %d %q %q, want 206 with the first 10 bytes of %d", code, hdr.Get("Content-Range"), body, len(want))
	}
	if code, _, body := get(t, client, segURL); code != 200 || !bytes.Equal(body, want) {
		t.Errorf("whole segment through nginx: %d, %d bytes of %d", code, len(body), len(want))
	}
	// nginx passes the store's 416 as it is: its Content-Range is the store's to give (versitygw
	// gives none; the dev origin asks the store for the size instead, see TestHTTPDetails).
	if code, _, body := get(t, client, segURL, "Range", fmt.Sprintf("bytes=%d-", len(want))); code != http.StatusRequestedRangeNotSatisfiable || string(body) != "range not satisfiable\n" {
		t.Errorf("unsatisfiable range through nginx: %d %q, want 416 without the store's XML", code, body)
	}
	func() { // the events stream flows for a client that sends no Accept (curl's */*)
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/events", nil)
		req.Header.Set("Authorization", "Bearer "+jwt)
		req.Header.Set("Accept", "*/*")
		c := *client
		c.Timeout = 0
		res, err := c.Do(req)
		if err != nil {
			t.Errorf("events through nginx without Accept: %v", err)
			return
		}
		defer res.Body.Close()
		buf := make([]byte, 64)
		n, _ := res.Body.Read(buf)
		if res.StatusCode != 200 || !strings.Contains(string(buf[:n]), "connected") {
			t.Errorf("events through nginx without Accept: %d %q", res.StatusCode, buf[:n])
		}
	}()
	// Those bytes came from the store through the internal location, not through the function,
	// and nothing of the store's answer but the bytes reached the client.
	for _, h := range []string{"X-Accel-Redirect", "X-Amz-Request-Id", "X-Amz-Version-Id", "X-Pulsevault-Offload"} {
		if v := hdr.Get(h); v != "" {
			t.Errorf("segment answer carries %s: %q", h, v)
		}
	}
	if hdr.Get("Cache-Control") != "private, no-store" || hdr.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("segment answer headers: %v", hdr)
	}
	fm := scrapeMetrics(t, st.p.url+"/function/media/_/metrics")
	if n := total(fm["media_offloaded_total"]); n < 3 {
		t.Errorf("media_offloaded_total %v after a playlist and two segment GETs through nginx", n)
	}
	if n := total(fm["media_bytes_served_total"]); n != 0 {
		t.Errorf("the media function itself served %v bytes; nginx should have", n)
	}
	missing := base + "/media/" + tok + "/" + path.Dir(segKey) + "/no-such-segment.m4s"
	if code, _, body := get(t, client, missing); code != http.StatusNotFound || string(body) != "not found\n" {
		t.Errorf("missing segment through nginx: %d %q, want 404 without the store's XML", code, body)
	}
	if code, _, body := get(t, client, "https://"+s.https+"/_pulsevault_s3/"+st.bucket+"/"+segKey); code != http.StatusNotFound || bytes.Equal(body, want) {
		t.Errorf("the internal store location answered a client: %d", code)
	}

	// What nginx must refuse or not publish.
	for _, c := range []struct {
		path string
		want int
	}{
		{"/media/" + tok + "x/" + segKey, 403},              // forged token: the media function says no
		{"/media/_/health", 403},                            // the function's own diagnostics
		{"/media/" + tok + "/videos/%2e%2e/" + segKey, 403}, // escaped dot-segments: refused, not normalized and served
		{"/system/functions", 404},                          // the gateway's admin API is not public
		{"/function/echo", 404},                             // nor are functions by their gateway path
		{"/api/nothing", 404},                               // unknown API
		{"/", 200},                                          // Vitals
	} {
		if code, _, _ := get(t, client, base+c.path); code != c.want {
			t.Errorf("GET %s: %d, want %d", c.path, code, c.want)
		}
	}

	// The access log: JSON lines, the token redacted, no PHI, no query strings.
	var lines []string
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(s.accessLog)
		lines = strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) >= 12 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	logText := strings.Join(lines, "\n")
	for _, l := range lines {
		var e map[string]any
		if err := json.Unmarshal([]byte(l), &e); err != nil || e["request_id"] == "" {
			t.Errorf("access log line is not JSON: %v: %s", err, l)
		}
	}
	if !strings.Contains(logText, `"path":"/media/<token>/`+segKey+`"`) || !strings.Contains(logText, `"status":206`) {
		t.Errorf("access log lacks the redacted media range request:\n%s", logText)
	}
	for _, secret := range []string{tok, phiName, jwt, "?"} {
		if strings.Contains(logText, secret) {
			t.Errorf("access log holds %.24q:\n%s", secret, logText)
		}
	}

	// The gateway's own series saw the calls, labelled by function and code only.
	_, _, metrics := st.p.do(http.MethodGet, "/metrics", nil, false)
	// (The media function answers the offloaded range 200: nginx turns it into the store's 206.)
	if !regexp.MustCompile(`(?m)^gateway_function_invocation_total\{code="200",function_name="media[^"]*"\} [1-9]`).MatchString(metrics) {
		t.Errorf("gateway metrics lack media invocations")
	}
	for _, leak := range []string{st.video, tok, phiName, "uploader-1"} {
		if strings.Contains(metrics, leak) {
			t.Errorf("gateway metrics hold %.24q", leak)
		}
	}
}
