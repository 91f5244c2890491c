package tests

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/openfaas/faas-provider/types"

	"github.com/mieweb/pulsevault/shared/audit/record"
	"github.com/mieweb/pulsevault/shared/ingest/tusclient"
	"github.com/mieweb/pulsevault/shared/localstack"
	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/topology"
)

// faultRig is the whole pipeline (upload, upload-finalize, transcode,
// audit-append under a real provider, a real connector, NATS and
// versitygw) with handles to break each piece: SIGKILL a function's
// replicas, restart the connector, NATS or the S3 server.
type faultRig struct {
	*ingestStack
	conn *exec.Cmd
}

func startFaultRig(t *testing.T) *faultRig {
	t.Helper()
	s := startIngestStack(t)
	seed := make([]byte, 32)
	_, _ = rand.Read(seed)
	s.system(http.MethodPost, "/system/secrets", types.Secret{Name: record.SecretName, Value: base64.StdEncoding.EncodeToString(seed)}, http.StatusCreated)
	jobs := map[string]string{"topic": topology.SubjectTranscodeJobs}
	s.system(http.MethodPost, "/system/functions", types.FunctionDeployment{Service: "transcode", Image: "pulsevault-transcode:dev",
		Annotations: &jobs, EnvVars: map[string]string{"exec_timeout": "5m", "write_timeout": "5m", "TRANSCODE_MAX_DELIVER": "5"}}, http.StatusAccepted)
	s.system(http.MethodPost, "/system/functions", types.FunctionDeployment{Service: "audit-append", Image: "pulsevault-audit-append:dev",
		Secrets: []string{record.SecretName}, EnvVars: map[string]string{"AUDIT_BATCH_WAIT": "50ms", "AUDIT_ACK_WAIT": "5s"}}, http.StatusAccepted)
	r := &faultRig{ingestStack: s, conn: s.startConnector()}
	r.wakeAudit()
	// The safety net `pulsevault dev` runs every minute, sped up: it
	// finalizes uploads whose bucket event was lost while NATS was down.
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(2 * time.Second):
			}
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.gateway+"/function/upload-finalize/reconcile", nil)
			if res, err := http.DefaultClient.Do(req); err == nil {
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}
		}
	}()
	return r
}

// wakeAudit calls audit-append until it answers: a replica starts its
// writer on its first request.
func (r *faultRig) wakeAudit() {
	r.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		res, err := http.Get(r.gateway + "/function/audit-append")
		if err == nil {
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("audit-append did not answer within 2 min: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// killFunction SIGKILLs every replica of fn (children of this rig's
// provider) and returns how many it killed.
func (r *faultRig) killFunction(fn string) int {
	n := 0
	suffix := []byte("\x00fn\x00" + fn)
	for _, pid := range descendants(r.provider.Pid) {
		if bytes.HasSuffix(bytes.TrimRight([]byte(cmdline(pid)), "\x00"), suffix) && syscall.Kill(pid, syscall.SIGKILL) == nil {
			n++
		}
	}
	return n
}

// restartConnector SIGKILLs the connector and starts another.
func (r *faultRig) restartConnector() {
	_ = r.conn.Process.Kill()
	_ = r.conn.Wait()
	r.conn = r.startConnector()
}

// restartNATS shuts the embedded NATS down and starts it again on the same
// port and store after down: every client has to reconnect.
func (r *faultRig) restartNATS(down time.Duration) error {
	u, err := url.Parse(r.env.NATS.URL())
	if err != nil {
		return err
	}
	port, _ := strconv.Atoi(u.Port())
	r.env.NATS.Shutdown()
	time.Sleep(down)
	var ns *localstack.NATS
	for range 20 { // the port was just released; retry if its listener lingers
		if ns, err = localstack.StartNATS(localstack.NATSOptions{Port: port, StoreDir: filepath.Join(r.env.Config.DataDir, "nats")}); err == nil {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	r.env.NATS = ns // testenv's cleanup stops this one
	return nil
}

// killS3 SIGKILLs versitygw; its supervisor starts it again.
func (r *faultRig) killS3() error {
	pid := r.env.S3.PID()
	if pid == 0 {
		return errors.New("versitygw is not running")
	}
	return syscall.Kill(pid, syscall.SIGKILL)
}

// videoCount is the number of videos/<id>/ prefixes in the media bucket.
func (r *faultRig) videoCount(ctx context.Context) (int, error) {
	n := 0
	for o := range r.st.Client().ListObjects(ctx, r.env.Config.MediaBucket, minio.ListObjectsOptions{Prefix: "videos/"}) {
		if o.Err != nil {
			return 0, o.Err
		}
		n++
	}
	return n, nil
}

// versions counts the stored versions of a media bucket object: a
// finalize repeated after a crash must not lock a second copy.
func (r *faultRig) versions(ctx context.Context, key string) (int, error) {
	n := 0
	for o := range r.st.Client().ListObjects(ctx, r.env.Config.MediaBucket, minio.ListObjectsOptions{Prefix: key, WithVersions: true}) {
		if o.Err != nil {
			return n, o.Err
		}
		if o.Key == key {
			n++
		}
	}
	return n, nil
}

// missingMedia returns every key the master playlist and its media
// playlists reference that is not in the store.
func (r *faultRig) missingMedia(ctx context.Context, id string) ([]string, error) {
	bucket := r.env.Config.MediaBucket
	read := func(key string) (string, error) {
		rc, _, err := r.st.Get(ctx, bucket, key, 0, -1)
		if err != nil {
			return "", fmt.Errorf("%s: %w", key, err)
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		return string(b), err
	}
	master := topology.VideoKey(id, topology.MasterFile)
	text, err := read(master)
	if err != nil {
		return nil, err
	}
	var missing []string
	for _, pl := range playlistURIs(path.Dir(master), text) {
		body, err := read(pl)
		if err != nil {
			missing = append(missing, pl)
			continue
		}
		for _, k := range playlistURIs(path.Dir(pl), body) {
			if _, err := r.st.Stat(ctx, bucket, k); err != nil {
				missing = append(missing, k)
			}
		}
	}
	return missing, nil
}

// playlistURIs are the keys an HLS playlist at dir references: its URI
// lines and URI="..." attributes (EXT-X-MAP, EXT-X-MEDIA).
func playlistURIs(dir, text string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		switch {
		case l == "":
		case !strings.HasPrefix(l, "#"):
			out = append(out, path.Join(dir, l))
		default:
			if _, rest, ok := strings.Cut(l, `URI="`); ok {
				if u, _, ok := strings.Cut(rest, `"`); ok {
					out = append(out, path.Join(dir, u))
				}
			}
		}
	}
	return out
}

// unsettled lists the durable consumers with messages pending or unacked.
func (r *faultRig) unsettled(ctx context.Context) ([]string, error) {
	js := r.bus.JetStream()
	var out []string
	names := js.StreamNames(ctx)
	for name := range names.Name() {
		st, err := js.Stream(ctx, name)
		if err != nil {
			return nil, err
		}
		cons := st.ListConsumers(ctx)
		for ci := range cons.Info() {
			if ci.Config.Durable != "" && (ci.NumPending > 0 || ci.NumAckPending > 0) {
				out = append(out, fmt.Sprintf("%s/%s pending %d unacked %d", name, ci.Name, ci.NumPending, ci.NumAckPending))
			}
		}
		if err := cons.Err(); err != nil {
			return nil, err
		}
	}
	return out, names.Err()
}

// auditVerify forces a checkpoint and runs `pulsevault audit verify`
// against the bucket.
func (r *faultRig) auditVerify() (string, error) {
	res, err := http.Post(r.gateway+"/function/audit-append/checkpoint", "application/json", nil)
	if err != nil {
		return "", err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return "", fmt.Errorf("checkpoint: %d", res.StatusCode)
	}
	c := r.env.Config
	cmd := exec.Command(r.bin, "audit", "verify")
	cmd.Env = append(os.Environ(), "S3_ENDPOINT="+c.S3Endpoint, "S3_ACCESS_KEY="+c.S3AccessKey, "S3_SECRET_KEY="+c.S3SecretKey, "AUDIT_RETENTION_DAYS=1")
	out, err := cmd.CombinedOutput()
	if err == nil && !strings.Contains(string(out), "RESULT: OK") {
		err = errors.New("no RESULT: OK")
	}
	return string(out), err
}

// stagedSHA256 is the SHA-256 and size of the upload's staged object.
func (s *ingestStack) stagedSHA256(ctx context.Context, loc string) ([32]byte, int64, error) {
	var sum [32]byte
	obj := path.Base(loc)
	if i := strings.LastIndexByte(obj, '+'); i >= 0 {
		obj = obj[:i]
	}
	rc, _, err := s.st.Get(ctx, s.env.Config.UploadsBucket, obj, 0, -1)
	if err != nil {
		return sum, 0, err
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, rc)
	copy(sum[:], h.Sum(nil))
	return sum, n, err
}

// tusRequest is a tus request with the stack's token.
func (s *ingestStack) tusRequest(ctx context.Context, method, u string, body io.Reader) *http.Request {
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Tus-Resumable", tusclient.Version)
	req.Header.Set("Authorization", "Bearer "+s.token)
	return req
}

// tusCreate creates an upload of size bytes and returns its URL.
func (s *ingestStack) tusCreate(ctx context.Context, size int) (string, error) {
	req := s.tusRequest(ctx, http.MethodPost, s.gateway+"/function/upload/", nil)
	req.Header.Set("Upload-Length", strconv.Itoa(size))
	req.Header.Set("Upload-Metadata", tusclient.EncodeMetadata(map[string]string{"filetype": "video/mp4"}))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("create: %d", res.StatusCode)
	}
	base, _ := url.Parse(s.gateway + "/function/upload/")
	ref, err := url.Parse(res.Header.Get("Location"))
	if err != nil {
		return "", err
	}
	return base.ResolveReference(ref).String(), nil
}

// tusOffset asks the server how much of the upload it holds, retrying
// while a just-interrupted PATCH still holds the upload's lock.
func (s *ingestStack) tusOffset(ctx context.Context, u string) (int64, error) {
	var last error
	for range 60 {
		res, err := http.DefaultClient.Do(s.tusRequest(ctx, http.MethodHead, u, nil))
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK || res.StatusCode == http.StatusNoContent {
				return strconv.ParseInt(res.Header.Get("Upload-Offset"), 10, 64)
			}
			err = fmt.Errorf("HEAD: %d", res.StatusCode)
		}
		last = err
		time.Sleep(500 * time.Millisecond)
	}
	return 0, last
}

// errConflict is tus's 409: the offset sent is not the server's.
var errConflict = errors.New("PATCH: 409 offset conflict")

// tusPatch sends body (the bytes from offset to the end of a file of size
// bytes) in one PATCH and returns the offset the server answers with.
func (s *ingestStack) tusPatch(ctx context.Context, u string, offset, size int64, body io.Reader) (int64, error) {
	req := s.tusRequest(ctx, http.MethodPatch, u, body)
	req.ContentLength = size - offset
	req.Header.Set("Content-Type", "application/offset+octet-stream")
	req.Header.Set("Upload-Offset", strconv.FormatInt(offset, 10))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	switch res.StatusCode {
	case http.StatusNoContent, http.StatusOK:
	case http.StatusConflict:
		return 0, errConflict
	default:
		return 0, fmt.Errorf("PATCH: %d", res.StatusCode)
	}
	return strconv.ParseInt(res.Header.Get("Upload-Offset"), 10, 64)
}

// inFlight is the gateway's count of started minus finished invocations of fn.
func (s *ingestStack) inFlight(fn string) (float64, error) {
	res, err := http.Get(s.gateway + "/metrics")
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	label := `function_name="` + fn + `"`
	var n float64
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		l := sc.Text()
		sign := 0.0
		switch {
		case strings.HasPrefix(l, "gateway_function_invocation_started{"):
			sign = 1
		case strings.HasPrefix(l, "gateway_function_invocation_total{"):
			sign = -1
		}
		if sign == 0 || !strings.Contains(l, label) {
			continue
		}
		f := strings.Fields(l)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, err
		}
		n += sign * v
	}
	return n, sc.Err()
}

// throttle passes r through at about rate bytes per second.
type throttle struct {
	r    io.Reader
	rate int
}

func (t *throttle) Read(p []byte) (int, error) {
	chunk := max(t.rate/10, 1)
	if len(p) > chunk {
		p = p[:chunk]
	}
	time.Sleep(time.Duration(len(p)) * time.Second / time.Duration(t.rate))
	return t.r.Read(p)
}

// slowTransport throttles every request body, so a fault lands mid-PATCH.
type slowTransport struct{ rate int }

func (s slowTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(&throttle{r: req.Body, rate: s.rate})
	}
	return http.DefaultTransport.RoundTrip(req)
}

// metaStatus is the video's status, "" while it has no meta.json.
func (r *faultRig) metaStatus(ctx context.Context, id string) (*meta.Video, meta.Status) {
	v, _, err := r.metas.Get(ctx, id)
	if err != nil {
		return nil, ""
	}
	return v, v.Status
}

// logsAbout returns the log lines of the named functions that mention id,
// for a violation's report.
func (r *faultRig) logsAbout(id string, functions ...string) string {
	var b strings.Builder
	for _, fn := range functions {
		for _, l := range r.functionLogs(fn) {
			if line, _ := json.Marshal(l); strings.Contains(string(line), id) {
				fmt.Fprintf(&b, "%s: %s\n", fn, line)
			}
		}
	}
	return b.String()
}
