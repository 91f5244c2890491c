package encode

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mieweb/pulsevault/shared/media/meta"
)

func TestArgsAlignEveryRendition(t *testing.T) {
	p := meta.Probe{FPS: 29.97, Width: 360, Height: 640}
	v, err := Args(Spec{Input: "http://127.0.0.1:40000/ABCDEFGHIJKLMNOPQRSTUVWXYZ.mp4", Dir: "/tmp/o", Probe: p,
		Rendition: meta.Rendition{Name: "240p", Kind: "video", Width: 240, Height: 426, Bitrate: 400000}})
	if err != nil {
		t.Fatal(err)
	}
	a, err := Args(Spec{Input: "/src.mp4", Probe: p, Rendition: meta.Rendition{Name: "audio", Kind: "audio", Bitrate: 128000}})
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(v, " ")
	for _, want := range []string{"-r 30000/1001", "-sc_threshold 0", "-force_key_frames expr:gte(t,n_forced*2)", "-g 60",
		"scale=240:426", "-map 0:v:0 -an", "-xerror", "-reconnect 1", "-map_metadata -1"} {
		if !strings.Contains(joined, want) {
			t.Errorf("video args lack %q: %s", want, joined)
		}
	}
	for _, args := range [][]string{v, a} {
		j := strings.Join(args, " ")
		for _, want := range []string{"-hls_time 2", "-hls_segment_type fmp4", "-hls_fmp4_init_filename init.mp4",
			"-hls_segment_filename seg_%d.m4s", "-progress pipe:1", "-loglevel error"} {
			if !strings.Contains(j, want) {
				t.Errorf("args lack %q: %s", want, j)
			}
		}
	}
	if j := strings.Join(a, " "); !strings.Contains(j, "-map 0:a:0 -vn") || strings.Contains(j, "-reconnect") {
		t.Errorf("audio args: %s", j)
	}
	for _, bad := range []meta.Rendition{
		{Name: "x", Kind: "video", Width: 241, Height: 426, Bitrate: 1},
		{Name: "x", Kind: "video", Width: 240, Height: 426},
		{Name: "x", Kind: "subtitles"},
	} {
		if _, err := Args(Spec{Rendition: bad}); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestRate(t *testing.T) {
	for in, want := range map[float64]string{0: "30", -1: "30", 25: "25", 29.97: "30000/1001", 23.976: "24000/1001",
		59.94: "60000/1001", 120: "60", 25.984: "25984/1000", 30.0001: "30"} {
		if got := Rate(in).String(); got != want {
			t.Errorf("Rate(%v) = %s, want %s", in, got, want)
		}
	}
}

func TestParseProgress(t *testing.T) {
	in := "frame=10\nout_time_us=1000000\nprogress=continue\nout_time_ms=2500000\nprogress=continue\nout_time_us=N/A\nprogress=end\n"
	var got []Progress
	if err := ParseProgress(strings.NewReader(in), func(p Progress) { got = append(got, p) }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].OutTime != time.Second || got[1].OutTime != 2500*time.Millisecond || !got[2].Done {
		t.Fatalf("progress: %+v", got)
	}
	if p := got[1].Percent(5 * time.Second); p != 50 {
		t.Fatalf("percent %v", p)
	}
	if p := got[2].Percent(5 * time.Second); p != 100 {
		t.Fatalf("end percent %v", p)
	}
	if p := (Progress{OutTime: time.Hour}).Percent(time.Second); p >= 100 {
		t.Fatalf("over-long progress reported %v before the end", p)
	}
}

func TestSanitize(t *testing.T) {
	raw := "[https @ 0x55] HTTP error 403 Forbidden\nhttps://127.0.0.1:9000/pulse-media/videos/x/original.mp4?X-Amz-Credential=pulsevault%2F2026&X-Amz-Signature=deadbeef: Server returned 403\n" +
		"/tmp/pulsevault-transcode/123-9/out/seg_1.m4s: No space left\nInput #0, mov, from 'Jane Doe.mov':\n  title : \"Jane Doe\"\x1b[0m\n" +
		"0123456789abcdef0123456789abcdef01\n"
	got := Sanitize(raw, "/tmp/pulsevault-transcode/123-9")
	for _, leak := range []string{"X-Amz", "127.0.0.1", "Jane", "pulsevault-transcode", "\x1b", "0123456789abcdef0123"} {
		if strings.Contains(got, leak) {
			t.Errorf("sanitized tail keeps %q:\n%s", leak, got)
		}
	}
	if !strings.Contains(got, "Server returned 403") || !strings.Contains(got, "<path>/out/seg_1.m4s") {
		t.Errorf("sanitized tail lost the explanation:\n%s", got)
	}
	long := strings.Repeat("error line that goes on\n", 500) + "the last word"
	if s := Sanitize(long); len(s) > MaxTail || !strings.HasSuffix(s, "the last word") {
		t.Errorf("long tail: %d bytes, ends %q", len(s), s[max(0, len(s)-20):])
	}
}

func TestClassify(t *testing.T) {
	for stderr, want := range map[string]string{
		"[h264 @ 0x1] error while decoding MB 9 38\nError while decoding stream #0:0: Invalid data found when processing input": CodeUndecodable,
		"[mov,mp4 @ 0x2] moov atom not found":                                   CodeUndecodable,
		"Stream map '0:a:0' matches no streams.":                                CodeNoStream,
		"[https @ 0x3] HTTP error 404 Not Found\nServer returned 404 Not Found": CodeUnreachable,
		"Connection reset by peer\nInvalid data found when processing input":    CodeUnreachable,
		"Conversion failed!": CodeFailed,
	} {
		if got, _ := classify(stderr); got != want {
			t.Errorf("classify(%q) = %s, want %s", stderr, got, want)
		}
	}
}

func TestRunKillsFFmpegOnCancel(t *testing.T) {
	// A FIFO with a writer that never writes: ffmpeg blocks reading it,
	// as it would on a stalled store.
	fifo := filepath.Join(t.TempDir(), "stalled")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	hold, err := os.OpenFile(fifo, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Spec{Input: fifo, Dir: t.TempDir(), Probe: meta.Probe{FPS: 30},
			Rendition: meta.Rendition{Name: "240p", Kind: "video", Width: 320, Height: 240, Bitrate: 400000}}, nil)
	}()
	time.Sleep(300 * time.Millisecond) // let ffmpeg start and block
	cancel()
	var te *Error
	if err := <-done; !errors.As(err, &te) || te.Code != CodeCancelled || te.Permanent {
		t.Fatalf("cancelled run: %v", err)
	}
}

func TestLoadConfig(t *testing.T) {
	c, err := LoadConfig(func(string) string { return "" })
	if err != nil || c.Fanout != FanoutGrouped || c.GroupNice != 19 || c.MaxDeliver != 5 || c.Preset != "veryfast" || c.ProgressInterval != 2*time.Second || c.UploadParallel != 4 {
		t.Fatalf("defaults: %+v %v", c, err)
	}
	for k, v := range map[string]string{
		"TRANSCODE_FANOUT": "chunk", "TRANSCODE_GROUP_NICE": "20", "TRANSCODE_MAX_DELIVER": "0", "TRANSCODE_PRESET": "fastest",
		"TRANSCODE_PROGRESS_INTERVAL": "1ms", "TRANSCODE_UPLOAD_CONCURRENCY": "x",
	} {
		_, err := LoadConfig(func(name string) string {
			if name == k {
				return v
			}
			return ""
		})
		if err == nil || !strings.HasPrefix(err.Error(), "invalid "+k+" ") || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s=%s: %v", k, v, err)
		}
	}
}

func TestSettle(t *testing.T) {
	// State "listed" is a ready rendition the stored manifests list.
	r := func(name, kind, state string) meta.Rendition {
		if state == "listed" {
			return meta.Rendition{Name: name, Kind: kind, State: meta.RenditionReady, Listed: true}
		}
		return meta.Rendition{Name: name, Kind: kind, State: state}
	}
	for _, c := range []struct {
		rs   []meta.Rendition
		want meta.Status
	}{
		{[]meta.Rendition{r("240p", "video", "running"), r("audio", "audio", "planned")}, meta.Processing},
		{[]meta.Rendition{r("240p", "video", "ready"), r("audio", "audio", "running")}, meta.Processing},
		{[]meta.Rendition{r("240p", "video", "listed"), r("360p", "video", "running"), r("audio", "audio", "listed")}, meta.Ready},
		{[]meta.Rendition{r("240p", "video", "listed"), r("360p", "video", "failed"), r("audio", "audio", "listed")}, meta.Complete},
		{[]meta.Rendition{r("240p", "video", "listed"), r("audio", "audio", "failed")}, meta.Complete},
		{[]meta.Rendition{r("240p", "video", "failed"), r("audio", "audio", "ready")}, meta.Failed},
		{[]meta.Rendition{r("240p", "video", "failed"), r("audio", "audio", "failed")}, meta.Failed},
		// Ready in meta.json but not in the manifests yet: not counted.
		{[]meta.Rendition{r("240p", "video", "ready"), r("360p", "video", "running"), r("audio", "audio", "ready")}, meta.Processing},
		{[]meta.Rendition{r("240p", "video", "ready"), r("audio", "audio", "failed")}, meta.Processing},
		{[]meta.Rendition{r("240p", "video", "listed"), r("360p", "video", "ready"), r("audio", "audio", "listed")}, meta.Ready},
		{[]meta.Rendition{r("240p", "video", "listed"), r("audio", "audio", "ready")}, meta.Processing},
		{[]meta.Rendition{r("240p", "video", "listed"), r("360p", "video", "running"), r("audio", "audio", "failed")}, meta.Ready},
		{[]meta.Rendition{r("240p", "video", "listed"), r("360p", "video", "listed")}, meta.Complete},
	} {
		v := &meta.Video{Status: meta.Processing, Renditions: c.rs}
		settle(v)
		if v.Status != c.want {
			t.Errorf("%+v: %s, want %s", c.rs, v.Status, c.want)
		}
	}
	v := &meta.Video{Status: meta.Rejected, Renditions: []meta.Rendition{r("240p", "video", "listed")}}
	if settle(v); v.Status != meta.Rejected {
		t.Error("a rejected video changed status")
	}
	v = &meta.Video{Status: meta.Failed, Reason: "transcode-failed", Renditions: []meta.Rendition{r("240p", "video", "listed")}}
	if settle(v); v.Status != meta.Complete || v.Reason != "" {
		t.Errorf("failed video with a listed rendition: %s %q", v.Status, v.Reason)
	}
}

// A worker's metrics go to the registry it is given, never the default one:
// every function is in one binary.
func TestMetricsOnTheFunctionsRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	(&Worker{Metrics: m}).metrics().failures.WithLabelValues("240p", CodeUndecodable, "true").Inc()
	if n, err := testutil.GatherAndCount(reg, "pulsevault_transcode_failures_total"); err != nil || n != 1 {
		t.Fatalf("failures metric not on the function's registry: %d %v", n, err)
	}
	if n, _ := testutil.GatherAndCount(prometheus.DefaultGatherer, "pulsevault_transcode_failures_total"); n != 0 {
		t.Fatalf("failures metric on the default registry (%d series)", n)
	}
}

func TestClaim(t *testing.T) {
	ladder := func(states ...string) *meta.Video {
		v := &meta.Video{Original: &meta.Original{Key: "k"}, Probe: &meta.Probe{}}
		for i, n := range []string{"240p", "360p", "480p", "720p"} {
			st, group, _ := strings.Cut(states[i], "@")
			v.Renditions = append(v.Renditions, meta.Rendition{Name: n, Kind: "video", State: st, Group: group})
		}
		audio := "planned"
		if len(states) > 4 {
			audio = states[4]
		}
		st, group, _ := strings.Cut(audio, "@")
		v.Renditions = append(v.Renditions, meta.Rendition{Name: "audio", Kind: "audio", State: st, Group: group})
		return v
	}
	got := func(rs []meta.Rendition) string {
		var s []string
		for _, r := range rs {
			s = append(s, r.Name)
		}
		return strings.Join(s, ",")
	}
	for _, c := range []struct {
		v            *meta.Video
		job, fanout  string
		want         string
		err          error
		groupOfFirst string
	}{
		// The lowest rung's job takes the audio along unless its own job started it.
		{ladder("planned", "planned", "planned", "planned"), "240p", FanoutGrouped, "240p,audio", nil, ""},
		{ladder("planned", "planned", "planned", "planned", "running"), "240p", FanoutGrouped, "240p", nil, ""},
		{ladder("planned", "planned", "planned", "planned", "failed"), "240p", FanoutGrouped, "240p", nil, ""},
		{ladder("planned", "planned", "planned", "planned"), "240p", FanoutRendition, "240p", nil, ""},
		{ladder("planned", "planned", "planned", "planned"), "audio", FanoutGrouped, "audio", nil, ""},
		{ladder("running", "planned", "planned", "planned", "running@240p"), "audio", FanoutGrouped, "", errClaimed, ""},
		{ladder("ready", "planned", "planned", "planned", "ready@240p"), "audio", FanoutGrouped, "", errNoop, ""},
		{ladder("ready", "planned", "planned", "planned", "failed@240p"), "audio", FanoutGrouped, "audio", nil, ""},
		// Redelivered after 240p was recorded: only the audio is left.
		{ladder("ready", "planned", "planned", "planned", "running@240p"), "240p", FanoutGrouped, "audio", nil, "240p"},
		{ladder("ready", "planned", "planned", "planned", "ready@240p"), "240p", FanoutGrouped, "", errNoop, ""},
		{ladder("planned", "planned", "planned", "planned"), "360p", FanoutGrouped, "360p,480p,720p", nil, "360p"},
		{ladder("planned", "planned", "planned", "planned"), "360p", FanoutRendition, "360p", nil, ""},
		{ladder("ready", "planned", "running@720p", "running@720p"), "360p", FanoutGrouped, "360p", nil, "360p"},
		{ladder("ready", "running@360p", "running@360p", "planned"), "480p", FanoutGrouped, "", errClaimed, ""},
		{ladder("ready", "ready@360p", "running@360p", "ready@360p"), "360p", FanoutGrouped, "480p", nil, "360p"},
		{ladder("ready", "ready@360p", "ready@360p", "planned"), "360p", FanoutGrouped, "", errNoop, ""},
		{ladder("ready", "failed@360p", "failed@360p", "planned"), "480p", FanoutGrouped, "480p,720p", nil, "480p"},
		{ladder("ready", "running@360p", "planned", "planned"), "360p", FanoutGrouped, "360p,480p,720p", nil, "360p"},
	} {
		rs, err := Claim(c.v, c.job, c.fanout)
		if !errors.Is(err, c.err) || got(rs) != c.want || (len(rs) > 0 && rs[0].Group != c.groupOfFirst) {
			t.Errorf("%s %s over %+v: %s %v, want %s %v", c.fanout, c.job, c.v.Renditions, got(rs), err, c.want, c.err)
		}
		for _, r := range rs {
			if rr := c.v.Renditions[slices.IndexFunc(c.v.Renditions, func(x meta.Rendition) bool { return x.Name == r.Name })]; rr.State != meta.RenditionRunning {
				t.Errorf("%s claimed but %s", r.Name, rr.State)
			}
		}
	}
}
