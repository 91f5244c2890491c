package encode_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mieweb/pulsevault/shared/audit/event"
	"github.com/mieweb/pulsevault/shared/bus"
	"github.com/mieweb/pulsevault/shared/media/encode"
	"github.com/mieweb/pulsevault/shared/media/ladder"
	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/platform/logging"
	"github.com/mieweb/pulsevault/shared/storage"
	"github.com/mieweb/pulsevault/shared/testutil/testclip"
	"github.com/mieweb/pulsevault/shared/testutil/tier"
	"github.com/mieweb/pulsevault/shared/topology"
)

// countFFmpeg puts a logging ffmpeg in front of the real one on PATH and
// returns a function reporting how many ffmpeg runs encoded each
// rendition so far (poster runs excluded).
func countFFmpeg(t *testing.T, v *meta.Video) func() map[string]int {
	real, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	log := filepath.Join(dir, "runs.log")
	script := fmt.Sprintf("#!/bin/sh\nprintf '%%s\\n' \"$*\" >> %q\nexec %q \"$@\"\n", log, real)
	if err := os.WriteFile(filepath.Join(dir, "ffmpeg"), []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	bySize := map[string]string{}
	for _, r := range v.Renditions {
		if r.Kind == "video" {
			bySize[fmt.Sprintf("scale=%d:%d:", r.Width, r.Height)] = r.Name
		}
	}
	return func() map[string]int {
		b, _ := os.ReadFile(log)
		n := map[string]int{}
		for _, l := range strings.Split(string(b), "\n") {
			if !strings.Contains(l, "-hls_time") {
				continue
			}
			if strings.Contains(l, "-c:a aac") {
				n["audio"]++
			}
			for size, name := range bySize {
				n[name] += strings.Count(l, size)
			}
		}
		return n
	}
}

// TestGroupedConcurrentDelivery delivers every job of a four-rung ladder at
// once under the grouped policy: the video completes with aligned segments
// and every rendition is encoded exactly once.
func TestGroupedConcurrentDelivery(t *testing.T) {
	r := newRig(t)
	r.w.Config.Fanout = encode.FanoutGrouped
	id, v := r.stage(testclip.Options{Width: 480, Height: 854, Seconds: 4}, nil)
	if names := names(v); names != "240p,360p,480p,audio" {
		t.Fatalf("plan %s", names)
	}
	encodes := countFFmpeg(t, v)
	claimed := 0
	for name, res := range r.runJobs(id, v, 1) {
		switch {
		case res.Status != http.StatusOK:
			t.Fatalf("%s: %+v", name, res)
		case res.Outcome == encode.OutcomeNoop: // "claimed", or already ready if it came late
			claimed++
		}
	}
	r.checkComplete(t, id)
	got := encodes()
	for _, rd := range v.Renditions {
		if got[rd.Name] != 1 {
			t.Errorf("%s encoded %d times, want once (runs: %v)", rd.Name, got[rd.Name], got)
		}
	}
	after := r.get(id)
	for _, rd := range after.Renditions {
		switch rd.Name {
		case "360p", "480p":
			if rd.Group == "" {
				t.Errorf("%s: no group", rd.Name)
			}
		case "audio": // with the lowest rung, unless its own job came first
			if rd.Group != "" && rd.Group != "240p" {
				t.Errorf("audio: group %q", rd.Group)
			}
		default:
			if rd.Group != "" {
				t.Errorf("%s: group %q", rd.Name, rd.Group)
			}
		}
	}
	// A grouped rendition records who encoded it; whoever encoded more than
	// its own rendition is the reason some job answered "claimed".
	shared := 0
	if after.Renditions[2].Group == "360p" {
		shared++
	}
	if after.Renditions[3].Group == "240p" {
		shared++
	}
	if shared != claimed {
		t.Errorf("480p encoded by %q, audio by %q, but %d jobs answered claimed", after.Renditions[2].Group, after.Renditions[3].Group, claimed)
	}
	done := map[string]int{}
	for _, e := range r.auditEvents() {
		if e.Object == id && e.Action == event.TranscodeDone {
			done[e.ID]++
		}
	}
	if len(done) != len(v.Renditions) {
		t.Errorf("%d distinct transcode.done events, want %d", len(done), len(v.Renditions))
	}
}

func names(v *meta.Video) string {
	var s []string
	for _, r := range v.Renditions {
		s = append(s, r.Name)
	}
	return strings.Join(s, ",")
}

// helperEnv carries what the group-worker helper process needs.
const helperEnv = "PULSEVAULT_TRANSCODE_GROUP_HELPER"

type helperArgs struct {
	Endpoint, Access, Secret, Region, NATS, Bucket, Video, Rendition, TempDir string
	Retention                                                                 int
}

// TestGroupedWorkerHelper is not a test: it is the group worker that
// TestGroupedKilledWorker runs as a child process and kills.
func TestGroupedWorkerHelper(t *testing.T) {
	raw := os.Getenv(helperEnv)
	if raw == "" {
		t.Skip("helper process for TestGroupedKilledWorker")
	}
	var a helperArgs
	if err := json.Unmarshal([]byte(raw), &a); err != nil {
		t.Fatal(err)
	}
	st, err := storage.New(storage.Options{Endpoint: a.Endpoint, AccessKey: a.Access, SecretKey: a.Secret, Region: a.Region})
	if err != nil {
		t.Fatal(err)
	}
	b, err := bus.Connect(a.NATS, "transcode-helper")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	tc, err := encode.LoadConfig(func(k string) string {
		return map[string]string{"TRANSCODE_TMPDIR": a.TempDir, "TRANSCODE_PROGRESS_INTERVAL": "100ms", "TRANSCODE_FANOUT": "grouped"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	w := &encode.Worker{Store: st, Meta: meta.NewStore(st, a.Bucket), Audit: event.NewPublisher(b, "transcode"),
		Bucket: a.Bucket, RetentionDays: a.Retention, Config: tc, Log: logging.New(os.Stderr, "info", "fn/transcode")}
	res := w.Do(context.Background(), ladder.Job{Video: a.Video, Rendition: a.Rendition}, 1)
	t.Logf("helper finished: %+v", res)
}

// TestGroupedKilledWorker SIGKILLs the process running a group mid-encode:
// the claim survives in meta.json (the members' own jobs answer claimed),
// ffmpeg dies with its worker, and the redelivered group job re-encodes
// every claimed rung so the video completes with aligned segments.
func TestGroupedKilledWorker(t *testing.T) {
	r := newRig(t)
	r.w.Config.Fanout = encode.FanoutGrouped
	id, v := r.stage(testclip.Options{Width: 480, Height: 854, Seconds: 8, NoAudio: true}, nil)
	if res := r.runJobs(id, v, 1, "240p")["240p"]; res.Status != http.StatusOK || res.Outcome != encode.OutcomeDone {
		t.Fatalf("240p: %+v", res)
	}
	args, _ := json.Marshal(helperArgs{Endpoint: r.cfg.S3Endpoint, Access: r.cfg.S3AccessKey, Secret: r.cfg.S3SecretKey,
		Region: r.cfg.S3Region, NATS: r.cfg.NATSURL, Bucket: r.cfg.MediaBucket, Video: id, Rendition: "360p",
		TempDir: t.TempDir(), Retention: r.cfg.MediaRetentionDays})
	cmd := exec.Command(os.Args[0], "-test.run=^TestGroupedWorkerHelper$", "-test.v")
	cmd.Env = append(os.Environ(), helperEnv+"="+string(args))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	// Kill once the group's ffmpeg (one process, both rungs) is encoding.
	ff := 0
	for ff == 0 {
		select {
		case err := <-exited:
			t.Fatalf("helper ended before it could be killed: %v\n%s", err, out.String())
		case <-time.After(10 * time.Millisecond):
		}
		for _, p := range childrenOf(cmd.Process.Pid) {
			if c := procFile(p, "cmdline"); strings.Contains(c, "-filter_complex") && strings.Contains(c, "360p/index.m3u8") && strings.Contains(c, "480p/index.m3u8") {
				ff = p
			}
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-exited
	for gone := time.Now().Add(10 * time.Second); strings.TrimSpace(procFile(ff, "comm")) == "ffmpeg"; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(gone) {
			t.Fatalf("ffmpeg %d outlived its killed worker", ff)
		}
	}
	mid := r.get(id)
	for _, rd := range mid.Renditions[1:] {
		if rd.State != meta.RenditionRunning || rd.Group != "360p" {
			t.Fatalf("after the kill %s is %s (group %q), want running in 360p's group", rd.Name, rd.State, rd.Group)
		}
	}
	// The member's own job is acknowledged without encoding.
	if res := r.runJobs(id, v, 1, "480p")["480p"]; res.Status != http.StatusOK || res.Code != "claimed" {
		t.Fatalf("480p while claimed: %+v", res)
	}
	// The redelivered group job redoes every claimed rung.
	if res := r.runJobs(id, v, 2, "360p")["360p"]; res.Status != http.StatusOK || res.Outcome != encode.OutcomeDone {
		t.Fatalf("redelivered 360p: %+v", res)
	}
	r.checkComplete(t, id)
	for _, name := range []string{"360p", "480p"} {
		if n := len(r.timeline(id, name).Segments); n != 4 {
			t.Errorf("%s: %d segments, want 4 for 8 s", name, n)
		}
	}
	if res := r.runJobs(id, v, 3, "360p")["360p"]; res.Status != http.StatusOK || res.Outcome != encode.OutcomeNoop {
		t.Fatalf("360p after completion: %+v, want noop", res)
	}
}

// childrenOf lists the live processes whose parent is pid.
func childrenOf(pid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st := procFile(n, "stat")
		i := strings.LastIndexByte(st, ')')
		if i < 0 {
			continue
		}
		if f := strings.Fields(st[i+1:]); len(f) >= 2 && f[1] == strconv.Itoa(pid) {
			out = append(out, n)
		}
	}
	return out
}

func procFile(pid int, name string) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, name))
	return string(b)
}

// A grouped failure on the final delivery marks every claimed rung failed.
func TestGroupedFinalFailureMarksEveryClaimedRung(t *testing.T) {
	r := newRig(t)
	r.w.Config.Fanout = encode.FanoutGrouped
	id, v := r.stage(testclip.Options{Width: 480, Height: 854, Seconds: 2, NoAudio: true}, nil)
	ctx := context.Background()
	if _, err := r.meta.Update(ctx, id, func(v *meta.Video) error {
		v.Original.Key = "videos/" + id + "/missing.mp4"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	res := r.runJobs(id, v, 1, "360p")["360p"]
	if res.Status != http.StatusServiceUnavailable || res.Code != encode.CodeUnreachable {
		t.Fatalf("first delivery: %+v", res)
	}
	if res := r.runJobs(id, v, 1, "480p")["480p"]; res.Status != http.StatusOK || res.Code != "claimed" {
		t.Fatalf("480p: %+v, want 200 claimed", res)
	}
	res = r.runJobs(id, v, r.w.Config.MaxDeliver, "360p")["360p"]
	if res.Status != http.StatusInternalServerError || res.Outcome != encode.OutcomeFailed {
		t.Fatalf("last delivery: %+v", res)
	}
	got := r.get(id)
	for _, rd := range got.Renditions[1:] {
		if rd.State != meta.RenditionFailed || rd.Error != encode.CodeUnreachable {
			t.Errorf("%s: %+v, want failed %s", rd.Name, rd, encode.CodeUnreachable)
		}
	}
	if got.Renditions[0].State != meta.RenditionPlanned {
		t.Errorf("240p (not in the group) is %s", got.Renditions[0].State)
	}
}

// TestGroupNice: the group's ffmpeg runs with the nice value asked for on
// top of ours, so the lowest rung's job beside it gets the CPU first.
func TestGroupNice(t *testing.T) {
	tier.Integration(t, "ffmpeg")
	real, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	log := filepath.Join(dir, "nice.log")
	// The wrapper waits (polling, bounded) for the renice that follows its
	// start, records its nice value (field 19 of /proc/self/stat) and
	// becomes the real ffmpeg, which keeps that value for all its threads.
	st, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(st[bytes.LastIndexByte(st, ')')+2:]))
	own, _ := strconv.Atoi(f[16]) // field 19 counted from the state (field 3)
	script := fmt.Sprintf(`#!/bin/sh
for i in $(seq 600); do
	n=$(cut -d' ' -f19 /proc/$$/stat)
	[ "$n" != %d ] && break
	sleep 0.05
done
echo "$n" >> %q
exec %q "$@"
`, own, log, real)
	if err := os.WriteFile(filepath.Join(dir, "ffmpeg"), []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "src.mp4")
	if err := testclip.Make(context.Background(), src, testclip.Options{Width: 360, Height: 640, Seconds: 1, NoAudio: true}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	out := t.TempDir()
	err = encode.RunGroup(context.Background(), encode.GroupSpec{Input: src, Dir: out, Probe: meta.Probe{Width: 360, Height: 640, FPS: 30},
		Renditions: []meta.Rendition{{Name: "240p", Kind: "video", Width: 136, Height: 240, Bitrate: 300_000}}, Preset: "ultrafast", Nice: 7}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	if want := strconv.Itoa(min(own+7, 19)); strings.TrimSpace(string(got)) != want {
		t.Fatalf("group ffmpeg nice %q, want %s (ours %d)", strings.TrimSpace(string(got)), want, own)
	}
	if _, err := os.Stat(filepath.Join(out, "240p", topology.PlaylistFile)); err != nil {
		t.Fatal(err)
	}
}
