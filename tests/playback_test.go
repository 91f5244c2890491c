package tests

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/openfaas/faas-provider/types"

	"github.com/mieweb/pulsevault/shared/auth"
	"github.com/mieweb/pulsevault/shared/bus"
	"github.com/mieweb/pulsevault/shared/faas/bootstrap"
	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/playback/origin"
	"github.com/mieweb/pulsevault/shared/playback/token"
	"github.com/mieweb/pulsevault/shared/storage"
	"github.com/mieweb/pulsevault/shared/testutil/testclip"
	"github.com/mieweb/pulsevault/shared/testutil/testenv"
	"github.com/mieweb/pulsevault/shared/topology"
)

// phiName is a PHI-like client file name: it must never leave meta.json.
const phiName = "Jane_Doe_MRN-4471923_DOB-1961-03-02_gait"

const (
	jwtIssuer   = "pulsevault"
	jwtAudience = "pulsevault-api"
)

// playbackStack is a provider process with sign-url and media deployed
// against a real versitygw holding one staged, finished video.
type playbackStack struct {
	p         *providerCmd
	pnats     *bus.Bus
	st        *storage.Store
	s3        string // S3_ENDPOINT of the functions
	bucket    string
	auditBkt  string // the audit bucket
	video     string
	jwtSecret []byte
	keys      []string // key lines of pulsevault-media-keys
	hlsFiles  map[string][]byte
	audit     *auditTap
}

// auditTap records the audit events published on the provider's NATS.
type auditTap struct {
	mu  sync.Mutex
	raw []string
}

func (a *auditTap) all() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.raw)
}

// waitCount waits (up to 10 s) until at least n events of action arrived:
// the tap's subscription may deliver after the publisher got its ack.
func (a *auditTap) waitCount(action string, n int) int {
	deadline := time.Now().Add(10 * time.Second)
	for a.count(action) < n && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	return a.count(action)
}

func (a *auditTap) count(action string) int {
	n := 0
	for _, e := range a.all() {
		if strings.Contains(e, `"action":"`+action+`"`) {
			n++
		}
	}
	return n
}

// stageVideo renders a real HLS rendition of a generated clip with ffmpeg
// and stores it, a poster and meta.json (status ready) under videos/<id>/.
func stageVideo(t *testing.T, ctx context.Context, st *storage.Store, bucket, id, uploader string, o testclip.Options) map[string][]byte {
	t.Helper()
	dir := t.TempDir()
	clip := filepath.Join(dir, phiName+".mp4")
	if err := testclip.Make(ctx, clip, o); err != nil {
		t.Fatal(err)
	}
	rung := "360p" // testclip's default 360x640
	if o.Width > 0 {
		rung = fmt.Sprintf("%dp", min(o.Width, o.Height))
	}
	out := filepath.Join(dir, "hls")
	if b, err := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-loglevel", "error", "-i", clip,
		"-map", "0:v", "-map", "0:a", "-c:v", "libx264", "-preset", "veryfast", "-g", "60", "-c:a", "aac",
		"-f", "hls", "-hls_time", "2", "-hls_segment_type", "fmp4", "-hls_playlist_type", "vod",
		"-master_pl_name", "master.m3u8", "-hls_segment_filename", out+"/"+rung+"/seg_%03d.m4s",
		"-var_stream_map", "v:0,a:0,name:"+rung, out+"/%v/index.m3u8").CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg hls: %v\n%s", err, b)
	}
	if b, err := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-loglevel", "error", "-i", clip,
		"-frames:v", "1", filepath.Join(dir, "poster.jpg")).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg poster: %v\n%s", err, b)
	}
	files := map[string][]byte{}
	ret := storage.Compliance(1)
	put := func(key, path string) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		files[key] = b
		if _, err := st.PutBytes(ctx, bucket, key, b, storage.PutOptions{Retention: &ret}); err != nil {
			t.Fatal(err)
		}
	}
	err := filepath.Walk(out, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(out, p)
		put(topology.VideoPrefix(id)+"hls/"+filepath.ToSlash(rel), p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	put(topology.VideoPrefix(id)+"poster.jpg", filepath.Join(dir, "poster.jpg"))
	ms := meta.NewStore(st, bucket)
	if err := ms.Create(ctx, &meta.Video{ID: id, Status: meta.Ready, Uploader: uploader, UploadID: "upload-" + id[:8],
		Client: map[string]string{"filename": phiName + ".mp4"},
		Probe:  &meta.Probe{Duration: 5, Width: 360, Height: 640, VideoCodec: "h264", Format: "mp4"}}); err != nil {
		t.Fatal(err)
	}
	return files
}

func startPlayback(t *testing.T, ttl string) *playbackStack {
	t.Helper()
	return startPlaybackClip(t, ttl, testclip.Options{Seconds: 5})
}

// startPlaybackClip is startPlayback with the staged video made from clip o.
func startPlaybackClip(t *testing.T, ttl string, o testclip.Options) *playbackStack {
	t.Helper()
	ctx := context.Background()
	env := testenv.Start(t)
	cfg := env.Config
	st, _ := bootstrapped(t, cfg, "test")

	// The provider (and so its children) use this store; it runs its own NATS.
	t.Setenv("S3_ENDPOINT", cfg.S3Endpoint)
	t.Setenv("S3_ACCESS_KEY", cfg.S3AccessKey)
	t.Setenv("S3_SECRET_KEY", cfg.S3SecretKey)
	p := startProviderCmd(t, buildPulsevault(t))
	pb, err := bus.Connect(p.natsURL, "test-provider-nats")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pb.Close)
	for _, sc := range bootstrap.Streams(cfg) {
		if _, err := pb.EnsureStream(ctx, sc); err != nil {
			t.Fatal(err)
		}
	}
	tap := &auditTap{}
	sub, err := pb.Conn().Subscribe("pulse.audit.>", func(m *nats.Msg) {
		tap.mu.Lock()
		tap.raw = append(tap.raw, string(m.Data))
		tap.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })

	s := &playbackStack{p: p, pnats: pb, st: st, s3: cfg.S3Endpoint, bucket: cfg.MediaBucket, auditBkt: cfg.AuditBucket, video: uuid.NewString(), audit: tap,
		jwtSecret: []byte("test-jwt-secret-0123456789abcdefghijklmnop")}
	for _, kid := range []string{"k2", "k1"} {
		line, err := token.GenerateKeyLine(kid)
		if err != nil {
			t.Fatal(err)
		}
		s.keys = append(s.keys, line)
	}
	s.hlsFiles = stageVideo(t, ctx, st, s.bucket, s.video, "uploader-1", o)

	s.secret(http.MethodPost, "pulsevault-jwt-secret", string(s.jwtSecret))
	s.secret(http.MethodPost, token.SecretName, strings.Join(s.keys, "\n")+"\n")
	secretsList := []string{"pulsevault-jwt-secret", token.SecretName}
	for _, dep := range []types.FunctionDeployment{
		{Service: "sign-url", Image: "pulsevault-sign-url:dev", Secrets: secretsList,
			EnvVars: map[string]string{"PLAYBACK_TTL": ttl, "LOG_LEVEL": "debug"}},
		{Service: "media", Image: "pulsevault-media:dev", Secrets: []string{token.SecretName},
			EnvVars: map[string]string{"LOG_LEVEL": "debug"}},
		{Service: "videos", Image: "pulsevault-videos:dev", Secrets: secretsList,
			EnvVars: map[string]string{"write_timeout": "2m", "exec_timeout": "2m"}},
		{Service: "events", Image: "pulsevault-events:dev", Secrets: []string{"pulsevault-jwt-secret"},
			EnvVars: map[string]string{"write_timeout": "1m", "exec_timeout": "1m"}},
	} {
		if code, _, body := p.do(http.MethodPost, "/system/functions", dep, true); code != http.StatusAccepted {
			t.Fatalf("deploy %s: %d %s", dep.Service, code, body)
		}
	}
	return s
}

func (s *playbackStack) secret(method, name, value string) {
	s.p.t.Helper()
	code, _, body := s.p.do(method, "/system/secrets", types.Secret{Name: name, Value: value}, true)
	if code/100 != 2 {
		s.p.t.Fatalf("%s secret %s: %d %s", method, name, code, body)
	}
}

func (s *playbackStack) jwt(t *testing.T, subject string, roles ...string) string {
	t.Helper()
	tok, err := auth.SignHS256(s.jwtSecret, jwtIssuer, jwtAudience, subject, roles, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type signed struct {
	URL       string    `json:"url"`
	DASH      string    `json:"dash"`
	Poster    string    `json:"poster"`
	ExpiresAt time.Time `json:"expires_at"`
}

// sign calls sign-url at base (the gateway's /function/sign-url or the
// public /api/sign-url) and returns the status and the decoded answer.
func signURL(t *testing.T, client *http.Client, url, jwt, body string) (int, signed, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if jwt != "" {
		req.Header.Set("Authorization", "Bearer "+jwt)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var g signed
	if res.StatusCode == 200 {
		if err := json.Unmarshal(b, &g); err != nil {
			t.Fatalf("sign-url answer %s: %v", b, err)
		}
	}
	return res.StatusCode, g, string(b)
}

func get(t *testing.T, client *http.Client, url string, hdr ...string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, b
}

// ffmpegPlay reads every stream of url to the end (every segment), as a
// real HLS client does, and returns its error output.
func ffmpegPlay(ctx context.Context, url string) (string, error) {
	b, err := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-loglevel", "error",
		"-i", url, "-map", "0", "-c", "copy", "-f", "null", "-").CombinedOutput()
	return string(b), err
}

// recorder remembers the paths and statuses the public router served.
type recorder struct {
	h  http.Handler
	mu sync.Mutex
	// log lines "STATUS PATH"
	seen []string
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	rw := &statusWriter{ResponseWriter: w, code: 200}
	r.h.ServeHTTP(rw, req)
	r.mu.Lock()
	r.seen = append(r.seen, fmt.Sprintf("%d %s", rw.code, req.URL.EscapedPath()))
	r.mu.Unlock()
}

func (r *recorder) lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.seen)
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(c int)           { w.code = c; w.ResponseWriter.WriteHeader(c) }
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
func (w *statusWriter) Flush()                      { http.NewResponseController(w.ResponseWriter).Flush() }

// TestPlayback is the acceptance path: a signed master URL plays with a
// real HLS client through the provider and through the public router (over
// TLS and HTTP/2), every segment passing the token check, and the same URL
// is refused once it expired. Around it: the token table, Range, ETag,
// rotation, and the PHI check over everything the stack said.
// TestPlayback runs the playback path on one stack (provider, sign-url,
// media, videos, events, a staged video) behind the public origin over TLS.
// The steps share the stack and run in order (a rotation restores the keys
// for what follows; the expiry waits out the first URL; audit and no-PHI
// check what every earlier step left), so they are subtests of one test,
// kept by concern in playback_api_test.go (sign-url, videos, events),
// playback_media_test.go (headers, ranges, refusals, key rotation) and
// playback_privacy_test.go (audit, no PHI).
func TestPlayback(t *testing.T) {
	r := newPlaybackRun(t)
	t.Run("sign-url policy", r.signURLPolicy)
	r.play(t)
	t.Run("headers", r.headers)
	t.Run("range", r.ranges)
	t.Run("refusals", r.refusals)
	t.Run("rotation", r.rotation)
	t.Run("videos", r.videos)
	t.Run("events", r.events)
	r.expired(t)
	t.Run("audit", r.audit)
	t.Run("no PHI anywhere", r.noPHI)
	t.Logf("public router protocol: %s", r.proto)
}

// playbackRun is TestPlayback's state: the stack, the public origin in
// front of its gateway, the owner's JWT, and the URLs signed on the way.
type playbackRun struct {
	ctx       context.Context
	s         *playbackStack
	gw        string // the provider's gateway
	client    *http.Client
	pub       *httptest.Server // the public origin over TLS (HTTP/1.1 and HTTP/2)
	pubClient *http.Client
	rec       *recorder // the public origin's access lines
	owner     string    // JWT of the video's uploader
	body      string    // sign-url request for the video
	g, g2     signed    // signed through the gateway, through the public origin
	direct    string    // g's master playlist through the gateway's media function
	base      string    // g's video prefix through the gateway's media function
	tok       string    // g's token
	proto     string    // the public origin's protocol for the poster
}

func newPlaybackRun(t *testing.T) *playbackRun {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	s := startPlayback(t, "6s")
	gw := s.p.url
	client := &http.Client{Timeout: 30 * time.Second}

	// The public origin: TLS with a generated pair, HTTP/1.1 and HTTP/2.
	certFile, keyFile, fp, err := origin.SelfSigned(t.TempDir())
	if err != nil || !strings.Contains(fp, ":") {
		t.Fatalf("self-signed pair: %v %q", err, fp)
	}
	h, err := origin.Handler(origin.Options{GatewayURL: gw})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{h: h}
	pub := httptest.NewUnstartedServer(rec)
	pub.Config = origin.Server(rec, nil)
	tc, err := origin.TLSConfig(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	pub.TLS = tc
	pub.EnableHTTP2 = true
	pub.StartTLS()
	t.Cleanup(pub.Close)
	pubClient := pub.Client()
	pubClient.Timeout = 30 * time.Second
	if tr, ok := pubClient.Transport.(*http.Transport); ok {
		tr.ForceAttemptHTTP2 = true
		tr.TLSClientConfig = &tls.Config{RootCAs: tr.TLSClientConfig.RootCAs, InsecureSkipVerify: true}
	}
	owner := s.jwt(t, "uploader-1")
	return &playbackRun{ctx: ctx, s: s, gw: gw, client: client, pub: pub, pubClient: pubClient, rec: rec,
		owner: owner, body: fmt.Sprintf(`{"video":%q}`, s.video)}
}

// play signs the video and plays it with ffmpeg through the provider (two
// playlists audited) and through the public router over TLS (every file
// fetched through media, the poster over HTTP/2).
func (r *playbackRun) play(t *testing.T) {
	ctx, s, gw, client, pub, pubClient, rec, owner, body := r.ctx, r.s, r.gw, r.client, r.pub, r.pubClient, r.rec, r.owner, r.body
	// Playback through the provider.
	code, g, raw := signURL(t, client, gw+"/function/sign-url", owner, body)
	if code != 200 {
		t.Fatalf("sign: %d %s", code, raw)
	}
	direct := gw + "/function/media" + strings.TrimPrefix(g.URL, "/media")
	playlistsBefore := s.audit.count("media.accessed")
	if out, err := ffmpegPlay(ctx, direct); err != nil {
		t.Fatalf("ffmpeg through the provider: %v\n%s", err, out)
	}
	if n := s.audit.waitCount("media.accessed", playlistsBefore+2) - playlistsBefore; n != 2 {
		// master + one media playlist; segments are not audited one by one.
		t.Errorf("media.accessed events for one playback: %d, want 2", n)
	}

	// Playback through the public router over TLS.
	code, g2, raw := signURL(t, pubClient, pub.URL+"/api/sign-url", owner, body)
	if code != 200 {
		t.Fatalf("sign through the public router: %d %s", code, raw)
	}
	if out, err := ffmpegPlay(ctx, pub.URL+g2.URL); err != nil {
		t.Fatalf("ffmpeg through the public router: %v\n%s", err, out)
	}
	var served []string
	for _, l := range rec.lines() {
		if strings.HasPrefix(l, "200 /media/") || strings.HasPrefix(l, "206 /media/") {
			served = append(served, l[strings.LastIndex(l, "/")+1:])
		}
	}
	for _, f := range []string{"master.m3u8", "index.m3u8", "init.mp4", "seg_000.m4s", "seg_001.m4s", "seg_002.m4s"} {
		if !slices.Contains(served, f) {
			t.Errorf("%s was not fetched through media (served: %v)", f, served)
		}
	}
	res, err := pubClient.Get(pub.URL + g2.Poster)
	if err != nil {
		t.Fatal(err)
	}
	r.proto = res.Proto
	res.Body.Close()
	if res.StatusCode != 200 || res.ProtoMajor != 2 || res.Header.Get("Content-Type") != "image/jpeg" {
		t.Errorf("poster over the public router: %d %s %s", res.StatusCode, r.proto, res.Header.Get("Content-Type"))
	}

	r.g, r.g2, r.direct = g, g2, direct
	r.base = gw + "/function/media" + strings.TrimPrefix(strings.TrimSuffix(g.URL, "hls/master.m3u8"), "/media")
	r.tok = strings.SplitN(strings.TrimPrefix(g.URL, "/media/"), "/", 2)[0]
}

// expired: the first URL, once past its expiry, is refused, also to ffmpeg.
func (r *playbackRun) expired(t *testing.T) {
	time.Sleep(time.Until(r.g.ExpiresAt) + 100*time.Millisecond)
	if code, _, b := get(t, r.client, r.direct); code != 403 || string(b) != "forbidden\n" {
		t.Fatalf("expired URL: %d %q", code, b)
	}
	if out, err := ffmpegPlay(r.ctx, r.direct); err == nil {
		t.Fatalf("ffmpeg played an expired URL:\n%s", out)
	}
}
