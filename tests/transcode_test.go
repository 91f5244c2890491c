package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/openfaas/faas-provider/types"

	"github.com/mieweb/pulsevault/shared/bus"
	"github.com/mieweb/pulsevault/shared/media/encode"
	"github.com/mieweb/pulsevault/shared/media/ladder"
	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/storage"
	"github.com/mieweb/pulsevault/shared/testutil/testclip"
	"github.com/mieweb/pulsevault/shared/testutil/testenv"
	"github.com/mieweb/pulsevault/shared/topology"
)

// transcodePHI is client metadata that must not reach logs or keys.
const transcodePHI = "Pat-Example-Wound-Check"

// tcStack is the real stack for transcode tests: NATS, versitygw, a
// `pulsevault provider` running the transcode function as a child process,
// and a `pulsevault connector` feeding it pulse.jobs.transcode.
type tcStack struct {
	t        *testing.T
	env      *testenv.Env
	st       *storage.Store
	bus      *bus.Bus
	meta     *meta.Store
	provider *exec.Cmd
	gateway  string
	data     string
	proxy    string
}

func startTranscodeStack(t *testing.T) *tcStack {
	t.Helper()
	bin := buildPulsevault(t)
	env := testenv.Start(t)
	cfg := env.Config
	st, b := bootstrapped(t, cfg, "transcode-e2e")
	s := &tcStack{t: t, env: env, st: st, bus: b, meta: meta.NewStore(st, cfg.MediaBucket), data: t.TempDir()}

	cmd := exec.Command(bin, "provider", "--data-dir", s.data, "--nats-url", cfg.NATSURL, "--s3-endpoint", cfg.S3Endpoint,
		"--media-retention-days", "1", "--audit-retention-days", "1")
	cmd.Env = append(os.Environ(), "GATEWAY_PORT=0", "LOG_LEVEL=info", "S3_ACCESS_KEY="+cfg.S3AccessKey, "S3_SECRET_KEY="+cfg.S3SecretKey)
	proc := testenv.StartProc(t, cmd, testenv.ProcOptions{Name: "provider", Ready: 2 * time.Minute})
	s.provider = cmd
	var user, pass string
	s.gateway, user, pass = proc.Gateway(t)

	ann := map[string]string{"topic": topology.SubjectTranscodeJobs}
	dep := types.FunctionDeployment{Service: "transcode", Image: "pulsevault-transcode:dev", Annotations: &ann,
		EnvVars: map[string]string{"exec_timeout": "5m", "write_timeout": "5m", "read_timeout": "1m", "TRANSCODE_PROGRESS_INTERVAL": "200ms"}}
	body, _ := json.Marshal(dep)
	req, _ := http.NewRequest(http.MethodPost, s.gateway+"/system/functions", bytes.NewReader(body))
	req.SetBasicAuth(user, pass)
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != http.StatusAccepted {
		t.Fatalf("deploy transcode: %v %v", err, res)
	}
	res.Body.Close()

	metrics := freeAddr(t)
	conn := exec.Command(bin, "connector", "--nats-url", cfg.NATSURL)
	conn.Env = append(os.Environ(), "GATEWAY_URL="+s.gateway, "GATEWAY_USER="+user, "GATEWAY_PASSWORD="+pass,
		"CONNECTOR_REFRESH=200ms", "CONNECTOR_METRICS_ADDR="+metrics, "CONNECTOR_BACKOFF=300ms,1s,2s")
	var cerr testenv.Buffer
	conn.Stderr = &cerr
	if err := conn.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = conn.Process.Signal(syscall.SIGTERM)
		_ = conn.Wait()
		if t.Failed() {
			t.Logf("connector stderr:\n%s", cerr.String())
		}
	})
	s.proxy = testenv.ServeBucket(t, st, cfg.MediaBucket)
	return s
}

type tcProbe struct {
	Streams []struct {
		CodecType    string `json:"codec_type"`
		Width        int    `json:"width"`
		Height       int    `json:"height"`
		AvgFrameRate string `json:"avg_frame_rate"`
	} `json:"streams"`
	Format struct {
		Duration string `json:"duration"`
	} `json:"format"`
}

func runFFprobe(t *testing.T, url string) tcProbe {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", url).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", url, err)
	}
	var p tcProbe
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p tcProbe) seconds() float64 { d, _ := strconv.ParseFloat(p.Format.Duration, 64); return d }

// stage writes a generated clip as a finalized video (what upload-finalize
// leaves behind) and publishes its transcode jobs.
func (s *tcStack) stage(o testclip.Options) (string, *meta.Video) {
	t := s.t
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "clip.mp4")
	if err := testclip.Make(ctx, path, o); err != nil {
		t.Fatal(err)
	}
	pr := runFFprobe(t, path)
	p := meta.Probe{Duration: pr.seconds(), Format: "mov,mp4,m4a,3gp,3g2,mj2", VideoCodec: "h264"}
	for _, st := range pr.Streams {
		switch st.CodecType {
		case "video":
			p.Width, p.Height, p.FPS = st.Width, st.Height, float64(o.FPS)
			if p.FPS == 0 {
				p.FPS = 30
			}
		case "audio":
			p.HasAudio, p.AudioCodec = true, "aac"
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	id := uuid.NewString()
	key := "videos/" + id + "/original.mp4"
	ret := storage.Compliance(1)
	if _, err := s.st.Put(ctx, s.env.Config.MediaBucket, key, bytes.NewReader(b), int64(len(b)),
		storage.PutOptions{ContentType: "video/mp4", Retention: &ret}); err != nil {
		t.Fatal(err)
	}
	v := &meta.Video{ID: id, Status: meta.Processing, Uploader: "e2e", UploadID: "up-" + id,
		Client:   map[string]string{"filename": transcodePHI + ".mov"},
		Original: &meta.Original{Key: key, Size: int64(len(b)), ContentType: "video/mp4", RetainUntil: ret.Until},
		Probe:    &p, Renditions: ladder.Plan(p)}
	if err := s.meta.Create(ctx, v); err != nil {
		t.Fatal(err)
	}
	for _, j := range encode.Jobs(id, v.Renditions) {
		data, _ := json.Marshal(j)
		if err := s.bus.Publish(ctx, topology.SubjectTranscodeJobs, data, j.MsgID()); err != nil {
			t.Fatal(err)
		}
	}
	return id, v
}

// waitStatus polls meta.json until the video reaches want (or a final
// state), within limit.
func (s *tcStack) waitStatus(id string, want meta.Status, limit time.Duration) *meta.Video {
	s.t.Helper()
	deadline := time.Now().Add(limit)
	var v *meta.Video
	for time.Now().Before(deadline) {
		var err error
		if v, _, err = s.meta.Get(context.Background(), id); err == nil && (v.Status == want || v.Status == meta.Failed) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if v == nil || v.Status != want {
		s.t.Fatalf("video not %s within %s: %+v", want, limit, v)
	}
	return v
}

// checkPlayable asserts the master and the MPD read through the store, and
// that every rendition's playlist and stored segments match one for one.
func (s *tcStack) checkPlayable(id string, v *meta.Video) {
	t := s.t
	t.Helper()
	ctx := context.Background()
	bucket := s.env.Config.MediaBucket
	for _, f := range []string{topology.MasterFile, topology.MPDFile} {
		p := runFFprobe(t, s.proxy+"/videos/"+id+"/"+f)
		if math.Abs(p.seconds()-v.Probe.Duration) > 0.1 {
			t.Errorf("%s: duration %.3f, source %.3f", f, p.seconds(), v.Probe.Duration)
		}
		if len(p.Streams) != len(v.Renditions) {
			t.Errorf("%s: %d streams for %d renditions", f, len(p.Streams), len(v.Renditions))
		}
	}
	for _, r := range v.Renditions {
		listed := map[string]bool{}
		rc, _, err := s.st.Get(ctx, bucket, topology.RenditionKey(id, r.Name, topology.PlaylistFile), 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		pl, _ := io.ReadAll(rc)
		rc.Close()
		for _, l := range strings.Split(string(pl), "\n") {
			if strings.HasPrefix(l, "seg_") {
				if listed[l] {
					t.Errorf("%s: %s listed twice", r.Name, l)
				}
				listed[l] = true
			}
		}
		stored := map[string]bool{}
		for info, err := range s.st.List(ctx, bucket, "videos/"+id+"/hls/"+r.Name+"/seg_") {
			if err != nil {
				t.Fatal(err)
			}
			stored[filepath.Base(info.Key)] = true
		}
		for n := range len(listed) {
			if !listed[topology.SegmentFile(n)] || !stored[topology.SegmentFile(n)] {
				t.Errorf("%s: segment %d listed %v stored %v", r.Name, n, listed[topology.SegmentFile(n)], stored[topology.SegmentFile(n)])
			}
		}
		if len(stored) != len(listed) || len(listed) == 0 {
			t.Errorf("%s: %d segments stored, %d listed", r.Name, len(stored), len(listed))
		}
	}
}

// TestTranscodeThroughConnector runs jobs from JetStream through the real
// connector and provider into the transcode child, kills that child with
// SIGKILL mid-encode, and checks the redelivered job still completes the
// video with no missing or duplicate segment.
func TestTranscodeThroughConnector(t *testing.T) {
	s := startTranscodeStack(t)

	id, v := s.stage(testclip.Options{})
	v = s.waitStatus(id, meta.Complete, 90*time.Second)
	s.checkPlayable(id, v)

	// A longer clip, so there is an encode to interrupt.
	id2, _ := s.stage(testclip.Options{Seconds: 16, NoAudio: true})
	var fnPID, ffPID int
	deadline := time.Now().Add(60 * time.Second)
	for fnPID == 0 && time.Now().Before(deadline) {
		for _, p := range descendants(s.provider.Process.Pid) {
			if comm(p) == "ffmpeg" {
				ffPID, fnPID = p, parentOf(p)
				break
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	if fnPID == 0 || !strings.Contains(cmdline(fnPID), "fn\x00transcode") {
		t.Fatalf("no ffmpeg under a transcode child found (ffmpeg %d, parent %d %q)", ffPID, fnPID, cmdline(fnPID))
	}
	if err := syscall.Kill(fnPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// ffmpeg dies with its function (Pdeathsig), it is not orphaned.
	for gone := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if comm(ffPID) != "ffmpeg" {
			break
		}
		if time.Now().After(gone) {
			t.Fatalf("ffmpeg %d outlived its killed function %d", ffPID, fnPID)
		}
	}
	v2 := s.waitStatus(id2, meta.Complete, 120*time.Second)
	s.checkPlayable(id2, v2)

	logs, _ := exec.Command("grep", "-r", "-l", transcodePHI, s.data).Output()
	if len(bytes.TrimSpace(logs)) > 0 {
		t.Errorf("client metadata found in %s", logs)
	}
}

func comm(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return strings.TrimSpace(string(b))
}

func cmdline(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return string(b)
}

func parentOf(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}
