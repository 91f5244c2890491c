package tests

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/openfaas/faas-provider/types"

	"github.com/mieweb/pulsevault/shared/auth"
	"github.com/mieweb/pulsevault/shared/bus"
	"github.com/mieweb/pulsevault/shared/faas/bootstrap"
	"github.com/mieweb/pulsevault/shared/ingest/s3event"
	"github.com/mieweb/pulsevault/shared/ingest/tusclient"
	"github.com/mieweb/pulsevault/shared/ingest/videoid"
	"github.com/mieweb/pulsevault/shared/media/ladder"
	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/storage"
	"github.com/mieweb/pulsevault/shared/testutil/testclip"
	"github.com/mieweb/pulsevault/shared/testutil/testenv"
	"github.com/mieweb/pulsevault/shared/testutil/tier"
)

// ingestPHI is a patient-like file name that must never leave meta.json.
const ingestPHI = "Jane_Doe_DOB_1970-01-01_wound"

var ingestSecret = "ingest-e2e-jwt-secret-0123456789abcdef"

// ingestStack is the real ingest path: NATS + versitygw (testenv), a
// `pulsevault provider` running upload and upload-finalize as child
// processes, and (once started) a `pulsevault connector`.
type ingestStack struct {
	t        *testing.T
	bin      string
	env      *testenv.Env
	st       *storage.Store
	bus      *bus.Bus
	metas    *meta.Store
	gateway  string
	user     string
	pass     string
	data     string
	stderr   *testenv.Buffer
	connErr  *testenv.Buffer
	token    string
	captured chan []byte // real bucket notifications, as versitygw published them
	provider *os.Process // for fault tests: its children are the function replicas
}

func startIngestStack(t *testing.T) *ingestStack {
	t.Helper()
	s := &ingestStack{t: t, bin: buildPulsevault(t), env: testenv.Start(t), data: t.TempDir(),
		connErr: &testenv.Buffer{}, captured: make(chan []byte, 256)}
	cfg := s.env.Config
	var err error
	if s.st, err = storage.FromConfig(cfg); err != nil {
		t.Fatal(err)
	}
	if s.bus, err = bus.Connect(cfg.NATSURL, "ingest-e2e"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.bus.Close)
	if _, err := bootstrap.Run(context.Background(), cfg, s.st, s.bus, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	s.metas = meta.NewStore(s.st, cfg.MediaBucket)
	sub, err := s.bus.Conn().Subscribe(cfg.EventSubject, func(m *nats.Msg) {
		select {
		case s.captured <- append([]byte(nil), m.Data...):
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })

	cmd := exec.Command(s.bin, "provider", "--data-dir", s.data, "--nats-url", cfg.NATSURL, "--s3-endpoint", cfg.S3Endpoint,
		"--media-retention-days", "1", "--audit-retention-days", "1")
	cmd.Env = append(os.Environ(), "GATEWAY_PORT=0", "LOG_LEVEL=debug", "S3_ACCESS_KEY="+cfg.S3AccessKey, "S3_SECRET_KEY="+cfg.S3SecretKey)
	// Runs after the provider's cleanup (cleanups run last first).
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("connector stderr:\n%s", s.connErr.String())
		}
	})
	proc := testenv.StartProc(t, cmd, testenv.ProcOptions{Name: "provider", Ready: 2 * time.Minute})
	s.provider, s.stderr = cmd.Process, proc.Stderr
	s.gateway, s.user, s.pass = proc.Gateway(t)

	s.system(http.MethodPost, "/system/secrets", types.Secret{Name: "pulsevault-jwt-secret", Value: ingestSecret}, http.StatusCreated)
	s.system(http.MethodPost, "/system/functions", types.FunctionDeployment{Service: "upload", Image: "pulsevault-upload:dev",
		Secrets: []string{"pulsevault-jwt-secret"},
		EnvVars: map[string]string{"UPLOAD_MAX_BYTES": "16777216", "read_timeout": "2m", "write_timeout": "2m", "exec_timeout": "2m"}}, http.StatusAccepted)
	ann := map[string]string{"topic": cfg.EventSubject}
	s.system(http.MethodPost, "/system/functions", types.FunctionDeployment{Service: "upload-finalize", Image: "pulsevault-upload-finalize:dev",
		Annotations: &ann, EnvVars: map[string]string{"RECONCILE_AGE": "1s", "exec_timeout": "2m", "write_timeout": "2m"}}, http.StatusAccepted)
	if s.token, err = auth.SignHS256([]byte(ingestSecret), cfg.JWTIssuer, cfg.JWTAudience, "clinician-42", nil, time.Hour); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *ingestStack) system(method, path string, body any, want int) {
	s.t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, s.gateway+path, bytes.NewReader(b))
	req.SetBasicAuth(s.user, s.pass)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != want {
		rb, _ := io.ReadAll(res.Body)
		s.t.Fatalf("%s %s: %d %s", method, path, res.StatusCode, rb)
	}
}

// startConnector runs the real `pulsevault connector` against the gateway;
// fault tests kill the returned process and start another.
func (s *ingestStack) startConnector() *exec.Cmd {
	s.t.Helper()
	cmd := exec.Command(s.bin, "connector", "--nats-url", s.env.Config.NATSURL)
	cmd.Env = append(os.Environ(), "GATEWAY_URL="+s.gateway, "GATEWAY_USER="+s.user, "GATEWAY_PASSWORD="+s.pass,
		"CONNECTOR_REFRESH=200ms", "CONNECTOR_METRICS_ADDR="+freeAddr(s.t), "CONNECTOR_BACKOFF=300ms,1s,2s", "LOG_LEVEL=debug")
	cmd.Stderr = s.connErr
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	return cmd
}

// upload runs `pulsevault upload`; it returns stdout, stderr and the error.
func (s *ingestStack) upload(endpoint, token, state string, extra ...string) func(files ...string) (string, string, error) {
	return func(files ...string) (string, string, error) {
		args := append([]string{"upload"}, files...)
		args = append(args, "--endpoint", endpoint, "--state", state, "--no-progress")
		if token != "" {
			args = append(args, "--token", token)
		}
		cmd := exec.Command(s.bin, append(args, extra...)...)
		cmd.Env = os.Environ()
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		return out.String(), errb.String(), err
	}
}

var ingestVideoRe = regexp.MustCompile(`(?m)^video ([0-9a-f-]{36})  `)

func (s *ingestStack) mustUpload(file string) string {
	s.t.Helper()
	out, errOut, err := s.upload(s.gateway+"/function/upload/", s.token, filepath.Join(s.t.TempDir(), "state.json"))(file)
	m := ingestVideoRe.FindStringSubmatch(out)
	if err != nil || m == nil {
		s.t.Fatalf("pulsevault upload %s: %v\nstdout %s\nstderr %s", filepath.Base(file), err, out, errOut)
	}
	return m[1]
}

// waitMeta polls meta.json until cond holds.
func (s *ingestStack) waitMeta(id string, cond func(*meta.Video) bool) *meta.Video {
	s.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		v, _, err := s.metas.Get(context.Background(), id)
		if err == nil && cond(v) {
			return v
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("meta.json of %s: %+v %v (waited 60s)", id, v, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// jobs counts the transcode jobs stored per video/rendition.
func (s *ingestStack) jobs() map[string]int {
	s.t.Helper()
	ctx := context.Background()
	st, err := s.bus.JetStream().Stream(ctx, "PULSE_JOBS")
	if err != nil {
		s.t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		s.t.Fatal(err)
	}
	out := map[string]int{}
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		} else if err != nil {
			s.t.Fatal(err)
		}
		var j ladder.Job
		if json.Unmarshal(m.Data, &j) == nil {
			out[j.Video+"/"+j.Rendition]++
		}
	}
	return out
}

func (s *ingestStack) staged(upload string) []string {
	var keys []string
	for o, err := range s.st.List(context.Background(), s.env.Config.UploadsBucket, upload) {
		if err != nil {
			s.t.Fatal(err)
		}
		keys = append(keys, o.Key)
	}
	return keys
}

// eventFor waits for the captured notification of the upload's data object.
func (s *ingestStack) eventFor(upload string) []byte {
	s.t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case m := <-s.captured:
			objs, err := s3event.Objects(m)
			if err == nil && len(objs) == 1 && objs[0].Key == upload && objs[0].Created() {
				return m
			}
		case <-timeout:
			s.t.Fatalf("no bucket notification for upload %s", upload)
		}
	}
}

func (s *ingestStack) checkFinalized(id string, v *meta.Video) {
	s.t.Helper()
	ctx := context.Background()
	info, err := s.st.Stat(ctx, s.env.Config.MediaBucket, v.Original.Key)
	if err != nil {
		s.t.Fatal(err)
	}
	if info.Retention == nil || info.Retention.Mode != minio.Compliance || !info.Retention.Until.After(time.Now()) {
		s.t.Fatalf("original of %s not locked: %+v", id, info.Retention)
	}
	if len(v.Renditions) < 2 {
		s.t.Errorf("video %s: renditions %+v", id, v.Renditions)
	}
	// meta.json is written before the jobs and the cleanup: wait for those.
	deadline := time.Now().Add(30 * time.Second)
	for {
		jobs, staged := s.jobs(), s.staged(v.UploadID)
		missing := 0
		for _, r := range v.Renditions {
			switch n := jobs[id+"/"+r.Name]; {
			case n > 1:
				s.t.Fatalf("video %s rendition %s: %d jobs on the stream, want 1", id, r.Name, n)
			case n == 0:
				missing++
			}
		}
		if missing == 0 && len(staged) == 0 {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("video %s: %d renditions without a job, staged objects %v (waited 30s)", id, missing, staged)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitStagedGone waits until the upload's staged objects are removed (the
// last finalize step, after meta.json).
func (s *ingestStack) waitStagedGone(upload string) {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for ks := s.staged(upload); len(ks) != 0; ks = s.staged(upload) {
		if time.Now().After(deadline) {
			s.t.Fatalf("staged upload left: %v (waited 30s)", ks)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func ingestClip(t *testing.T, dir, name string, o testclip.Options) string {
	t.Helper()
	tier.Integration(t, "ffmpeg")
	p := filepath.Join(dir, name+".mp4")
	if err := testclip.Make(context.Background(), p, o); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestIngestEndToEnd is the acceptance list against the real
// binary: upload, finalize (directly, by the connector, by the
// reconciler), resume after a kill, and the bad inputs.
func TestIngestEndToEnd(t *testing.T) {
	t.Parallel()
	s := startIngestStack(t)
	ctx := context.Background()
	dir := t.TempDir()
	cfg := s.env.Config

	// 1. Same real event delivered 3 times at once: one video, one job per rendition.
	a := ingestClip(t, dir, ingestPHI, testclip.Options{})
	idA := s.mustUpload(a)
	upA := ""
	for o, err := range s.st.List(ctx, cfg.UploadsBucket, "") {
		if err != nil {
			t.Fatal(err)
		}
		if videoid.FromUpload(o.Key) == idA && !strings.Contains(o.Key, ".") {
			upA = o.Key
		}
	}
	if upA == "" {
		t.Fatalf("upload of video %s is not staged", idA)
	}
	ev := s.eventFor(upA)
	var wg sync.WaitGroup
	codes := make([]int, 3)
	took := make([]time.Duration, 3)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			res, err := http.Post(s.gateway+"/function/upload-finalize", "application/json", bytes.NewReader(ev))
			if err == nil {
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				codes[i] = res.StatusCode
			}
			took[i] = time.Since(start)
		}()
	}
	wg.Wait()
	for _, c := range codes {
		if c != http.StatusOK {
			t.Fatalf("concurrent deliveries answered %v", codes)
		}
	}
	t.Logf("finalize latency (event in → jobs published), 3 concurrent deliveries: %v", took)
	vA := s.waitMeta(idA, func(v *meta.Video) bool { return v.Status == meta.Processing })
	if vA.Client["filename"] != ingestPHI+".mp4" || vA.Uploader != "clinician-42" {
		t.Fatalf("meta.json: client %v uploader %q", vA.Client, vA.Uploader)
	}
	s.checkFinalized(idA, vA)
	versions := 0
	for o := range s.st.Client().ListObjects(ctx, cfg.MediaBucket, minio.ListObjectsOptions{Prefix: vA.Original.Key, WithVersions: true}) {
		if o.Err == nil {
			versions++
		}
	}
	if versions != 1 {
		t.Errorf("original stored %d times, want once", versions)
	}
	// Malformed: 400 so the connector dead-letters it at once.
	if res, err := http.Post(s.gateway+"/function/upload-finalize", "application/json", strings.NewReader(`{"Records":"nope"}`)); err != nil || res.StatusCode != http.StatusBadRequest {
		t.Fatalf("malformed event: %v %v", res, err)
	}

	// 2. Event dropped (nobody delivers it): the reconciler finalizes the upload.
	idR := s.mustUpload(ingestClip(t, dir, "r", testclip.Options{Seconds: 2, NoAudio: true}))
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := http.Post(s.gateway+"/function/upload-finalize/reconcile", "application/json", nil)
		if err != nil {
			t.Fatal(err)
		}
		var rep struct{ Finalized []string }
		_ = json.NewDecoder(res.Body).Decode(&rep)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("reconcile: %d", res.StatusCode)
		}
		if len(rep.Finalized) > 0 {
			if rep.Finalized[0] != idR {
				t.Fatalf("reconcile finalized %v, want %s", rep.Finalized, idR)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the reconciler did not finalize the upload in 30s")
		}
		time.Sleep(300 * time.Millisecond)
	}
	s.checkFinalized(idR, s.waitMeta(idR, func(v *meta.Video) bool { return v.Status == meta.Processing }))

	// 3. Through the real bucket notification and the real connector.
	s.startConnector()
	idB := s.mustUpload(ingestClip(t, dir, "b", testclip.Options{Width: 1280, Height: 720, Seconds: 5}))
	vB := s.waitMeta(idB, func(v *meta.Video) bool { return v.Status == meta.Processing })
	s.checkFinalized(idB, vB)
	if vB.Probe.Width != 1280 || vB.Probe.Height != 720 || len(vB.Renditions) != 5 { // 240p..720p + audio
		t.Errorf("720p clip: probe %+v renditions %d", vB.Probe, len(vB.Renditions))
	}

	// 4. Interrupted at a random offset (the client is killed), then resumed.
	big := ingestClip(t, dir, "long", testclip.Options{Width: 1280, Height: 720, Seconds: 8})
	whole, err := os.ReadFile(big)
	if err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(t.TempDir(), "state.json")
	cut := rand.Int64N(int64(len(whole))-1) + 1
	var sent atomic.Int64
	var victim atomic.Pointer[os.Process]
	gw, _ := url.Parse(s.gateway)
	rp := httputil.NewSingleHostReverseProxy(gw)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPatch {
			r.Body = &killAt{r: r.Body, sent: &sent, at: cut, victim: &victim}
		}
		rp.ServeHTTP(w, r)
	}))
	defer proxy.Close()
	up := exec.Command(s.bin, "upload", big, "--endpoint", proxy.URL+"/function/upload/", "--token", s.token,
		"--state", state, "--no-progress", "--chunk-size", "262144")
	var out1 bytes.Buffer
	up.Stdout = &out1
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	victim.Store(up.Process)
	if err := up.Wait(); err == nil {
		t.Fatalf("the client was not killed (cut at %d of %d): %s", cut, len(whole), out1.String())
	}
	if st, err := os.ReadFile(state); err != nil || !strings.Contains(string(st), "/function/upload/") || strings.Contains(string(st), "long.mp4") {
		t.Fatalf("state file after the kill: %v %s", err, st)
	}
	out, errOut, err := s.upload(s.gateway+"/function/upload/", s.token, state)(big)
	m := ingestVideoRe.FindStringSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("resume: %v\n%s\n%s", err, out, errOut)
	}
	vL := s.waitMeta(m[1], func(v *meta.Video) bool { return v.Status == meta.Processing })
	rc, _, err := s.st.Get(ctx, cfg.MediaBucket, vL.Original.Key, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	n, _ := io.Copy(h, rc)
	rc.Close()
	if want := sha256.Sum256(whole); !bytes.Equal(h.Sum(nil), want[:]) || n != int64(len(whole)) {
		t.Fatalf("resumed upload (killed at byte %d of %d): %d bytes stored, SHA-256 differs", cut, len(whole), n)
	}
	t.Logf("killed at byte %d of %d, resumed: SHA-256 of the locked original matches", cut, len(whole))

	// 5. Bad inputs, each through the CLI and the connector.
	text := filepath.Join(dir, "notes.mp4")
	os.WriteFile(text, []byte("Patient says the knee hurts. Not a video.\n"), 0o600)
	trunc := filepath.Join(dir, "cut.mp4")
	os.WriteFile(trunc, whole[:len(whole)/3], 0o600)
	empty := filepath.Join(dir, "empty.mp4")
	os.WriteFile(empty, nil, 0o600)
	for file, reason := range map[string]string{text: "not-a-video", trunc: "truncated", empty: "empty"} {
		id := s.mustUpload(file)
		v := s.waitMeta(id, func(v *meta.Video) bool { return v.Status == meta.Rejected })
		if v.Reason != reason || v.Original != nil || len(v.Renditions) != 0 {
			t.Errorf("%s: meta.json %+v, want rejected %s", filepath.Base(file), v, reason)
		}
		s.waitStagedGone(v.UploadID)
		if jobs := s.jobs(); jobs[id+"/240p"] != 0 {
			t.Errorf("%s: jobs published for a rejected upload", filepath.Base(file))
		}
	}
	over := filepath.Join(dir, "over.mp4")
	os.WriteFile(over, make([]byte, 16<<20+1), 0o600)
	expired, _ := auth.SignHS256([]byte(ingestSecret), cfg.JWTIssuer, cfg.JWTAudience, "clinician-42", nil, -time.Minute)
	otherKey, _ := auth.SignHS256([]byte("some-other-key-some-other-key-0123456789"), cfg.JWTIssuer, cfg.JWTAudience, "clinician-42", nil, time.Hour)
	for _, c := range []struct {
		name, token, file, want string
		code                    int
	}{
		{"over the size limit", s.token, over, "larger than the server accepts (413)", 1},
		{"no token", "", a, "needs a token", 2},
		{"expired token", expired, a, "refused the token (401)", 1},
		{"token signed with another key", otherKey, a, "refused the token (401)", 1},
	} {
		_, errOut, err := s.upload(s.gateway+"/function/upload/", c.token, filepath.Join(t.TempDir(), "s.json"))(c.file)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != c.code || !strings.Contains(errOut, c.want) {
			t.Errorf("%s: %v, stderr %q; want exit %d with %q", c.name, err, errOut, c.code, c.want)
		}
	}

	// 6. The PHI-like file name is in meta.json and nowhere else: not in a
	// key, a URL, a log line or a metric label.
	var keys []string
	for _, bk := range []string{cfg.UploadsBucket, cfg.MediaBucket, cfg.AuditBucket} {
		for o := range s.st.Client().ListObjects(ctx, bk, minio.ListObjectsOptions{Recursive: true, WithVersions: true}) {
			keys = append(keys, bk+"/"+o.Key)
		}
	}
	logs, _ := filepath.Glob(filepath.Join(s.data, "logs", "functions", "*"))
	var logText strings.Builder
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		logText.Write(b)
	}
	res, err := http.Get(s.gateway + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metricsText, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for where, text := range map[string]string{
		"object keys": strings.Join(keys, "\n"), "function logs": logText.String(), "provider log": s.stderr.String(),
		"connector log": s.connErr.String(), "gateway metrics": string(metricsText),
	} {
		if strings.Contains(text, "Jane") || strings.Contains(text, "wound") || strings.Contains(text, "knee") {
			t.Errorf("PHI-like text in the %s", where)
		}
	}
	if !strings.Contains(logText.String(), `"msg":"upload finalized"`) {
		t.Error("the function logs lack the finalize lines the PHI check relies on")
	}
}

// killAt passes a PATCH body through and kills the client once the
// total bytes sent reach at.
type killAt struct {
	r      io.ReadCloser
	sent   *atomic.Int64
	at     int64
	victim *atomic.Pointer[os.Process]
}

func (k *killAt) Read(p []byte) (int, error) {
	n, err := k.r.Read(p)
	if k.sent.Add(int64(n)) >= k.at {
		if pr := k.victim.Swap(nil); pr != nil {
			_ = pr.Kill()
		}
	}
	return n, err
}

func (k *killAt) Close() error { return k.r.Close() }

// TestIngestThroughput measures (does not assert) upload throughput through
// the upload function against a direct minio-go PutObject of the same file.
func TestIngestThroughput(t *testing.T) {
	if os.Getenv("PULSEVAULT_BENCH") == "" {
		t.Skip("a measurement, not a check: run by `make bench` (PULSEVAULT_BENCH=1)")
	}
	s := startIngestStack(t)
	f := filepath.Join(t.TempDir(), "blob.bin")
	data := make([]byte, 15<<20)
	for i := range data {
		data[i] = byte(rand.Uint32())
	}
	os.WriteFile(f, data, 0o600)
	ctx := context.Background()
	start := time.Now()
	if _, err := s.st.Client().FPutObject(ctx, s.env.Config.UploadsBucket, "bench-direct", f, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	direct := time.Since(start)
	c := &tusclient.Client{Endpoint: s.gateway + "/function/upload/", Token: s.token}
	start = time.Now()
	if _, err := c.Upload(ctx, f, nil); err != nil {
		t.Fatal(err)
	}
	viaTus := time.Since(start)
	mb := float64(len(data)) / (1 << 20)
	t.Logf("%.0f MiB: direct PutObject %.1f MiB/s, tus through the gateway %.1f MiB/s (%.2fx the direct rate)",
		mb, mb/direct.Seconds(), mb/viaTus.Seconds(), direct.Seconds()/viaTus.Seconds())
}
