package encode_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mieweb/pulsevault/shared/media/encode"
	"github.com/mieweb/pulsevault/shared/media/ladder"
	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/testutil/testclip"
	"github.com/mieweb/pulsevault/shared/testutil/tier"
	"github.com/mieweb/pulsevault/shared/topology"
)

// childCPU is the CPU time (user + system) of every reaped child so far.
func childCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestFanoutCost measures (does not assert) both fan-out policies against
// plain ffmpeg on the same clip, in the same run:
//   - time to playable (240p + audio ready, status ready) ÷ one raw ffmpeg
//     encoding 240p from a local file;
//   - CPU seconds of the whole ladder under each policy ÷ one ffmpeg
//     process encoding the whole ladder from one decode.
func TestFanoutCost(t *testing.T) {
	if os.Getenv("PULSEVAULT_BENCH") == "" {
		t.Skip("a measurement, not a check: run by `make bench` (PULSEVAULT_BENCH=1)")
	}
	r := newRig(t)
	o := testclip.Options{Width: 720, Height: 1280, Seconds: 10}
	id, v := r.stage(o, nil)
	src := filepath.Join(t.TempDir(), "src.mp4")
	if err := testclip.Make(context.Background(), src, o); err != nil {
		t.Fatal(err)
	}
	probe := *v.Probe

	// Baseline 1: raw ffmpeg, 240p only, local file.
	out := t.TempDir()
	args, _ := encode.Args(encode.Spec{Input: src, Rendition: v.Renditions[0], Probe: probe})
	start := time.Now()
	ffmpeg(t, out, args)
	raw240 := time.Since(start)

	// Time to playable with the rendition policy: the 240p and audio jobs
	// run side by side (two workers), as the connector delivers them.
	start = time.Now()
	for name, res := range r.runJobs(id, v, 1, "240p", "audio") {
		if res.Status != http.StatusOK {
			t.Fatalf("%s: %+v", name, res)
		}
	}
	ttp := time.Since(start)
	if st := r.get(id).Status; st != meta.Ready {
		t.Fatalf("status %s", st)
	}

	// CPU of the whole ladder per policy (jobs one after another in plan
	// order, as published, so the figure is CPU, not contention), through
	// the real worker and store.
	type cost struct {
		cpu, wall time.Duration
		encodes   int
	}
	ladder := func(fanout string) cost {
		w := *r.w
		w.Config.Fanout = fanout
		id, v := r.stage(o, nil)
		cpu0, wall0 := childCPU(), time.Now()
		n := 0
		for _, j := range encode.Jobs(id, v.Renditions) {
			res := w.Do(context.Background(), j, 1)
			if res.Status != http.StatusOK {
				t.Fatalf("%s %s: %+v", fanout, j.Rendition, res)
			}
			if res.Outcome == encode.OutcomeDone {
				n++
			}
		}
		c := cost{childCPU() - cpu0, time.Since(wall0), n}
		if st := r.get(id).Status; st != meta.Complete {
			t.Fatalf("%s: status %s", fanout, st)
		}
		return c
	}
	perRendition := ladder(encode.FanoutRendition)
	grouped := ladder(encode.FanoutGrouped)

	// Baseline 2: one ffmpeg, one decode, every rung + audio.
	v2 := v
	base := t.TempDir()
	for _, r := range v2.Renditions {
		if err := os.Mkdir(filepath.Join(base, r.Name), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	args, err := encode.LadderArgs(src, v2.Renditions, probe, "")
	if err != nil {
		t.Fatal(err)
	}
	cpu0, wall0 := childCPU(), time.Now()
	ffmpeg(t, base, args)
	oneProc, oneWall := childCPU()-cpu0, time.Since(wall0)

	t.Logf("clip %dx%d %.0f s, ladder %d renditions, %d CPUs", o.Width, o.Height, o.Seconds, len(v2.Renditions), runtimeCPUs())
	t.Logf("time to playable %.2f s ÷ raw ffmpeg 240p %.2f s = %.2f (goal <= 1.2)", ttp.Seconds(), raw240.Seconds(), ttp.Seconds()/raw240.Seconds())
	t.Logf("one ffmpeg for the whole ladder: CPU %.2f s (wall %.2f s)", oneProc.Seconds(), oneWall.Seconds())
	for _, p := range []struct {
		name string
		c    cost
	}{{encode.FanoutRendition, perRendition}, {encode.FanoutGrouped, grouped}} {
		t.Logf("ladder CPU, %-9s policy: %.2f s (wall %.2f s, %d jobs ran ffmpeg, posters included) ÷ one ffmpeg %.2f s = %.2f (goal <= 1.15)",
			p.name, p.c.cpu.Seconds(), p.c.wall.Seconds(), p.c.encodes, oneProc.Seconds(), p.c.cpu.Seconds()/oneProc.Seconds())
	}
}

func runtimeCPUs() int {
	b, _ := exec.Command("nproc").Output()
	var n int
	fmt.Sscan(strings.TrimSpace(string(b)), &n)
	return n
}

func ffmpeg(t *testing.T, dir string, args []string) {
	t.Helper()
	cmd := exec.Command("ffmpeg", args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
}

// TestLadderArgs runs the yardstick the fan-out benchmarks use: one ffmpeg
// must write every rendition's playlist, init and segments.
func TestLadderArgs(t *testing.T) {
	tier.Integration(t, "ffmpeg")
	src := filepath.Join(t.TempDir(), "src.mp4")
	if err := testclip.Make(context.Background(), src, testclip.Options{Width: 360, Height: 640, Seconds: 2}); err != nil {
		t.Fatal(err)
	}
	rs := []meta.Rendition{
		{Name: "240p", Kind: "video", Width: 136, Height: 240, Bitrate: 300_000},
		{Name: "360p", Kind: "video", Width: 204, Height: 360, Bitrate: 600_000},
		{Name: "audio", Kind: "audio", Bitrate: 64_000},
	}
	dir := t.TempDir()
	for _, r := range rs {
		if err := os.Mkdir(filepath.Join(dir, r.Name), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	args, err := encode.LadderArgs(src, rs, meta.Probe{Width: 360, Height: 640, FPS: 30, HasAudio: true}, "ultrafast")
	if err != nil {
		t.Fatal(err)
	}
	ffmpeg(t, dir, args)
	for _, r := range rs {
		for _, f := range []string{topology.PlaylistFile, topology.InitFile, topology.SegmentFile(0)} {
			if st, err := os.Stat(filepath.Join(dir, r.Name, f)); err != nil || st.Size() == 0 {
				t.Errorf("%s/%s: %v", r.Name, f, err)
			}
		}
	}
	if _, err := encode.LadderArgs(src, []meta.Rendition{rs[0], rs[0]}, meta.Probe{FPS: 30}, ""); err == nil {
		t.Error("a repeated rendition name was accepted")
	}
}

// TestJobReadCost measures (does not assert) what reading the original
// costs a job: the 240p job of a 720×1280 10 s clip (rendition policy:
// one ffmpeg for the rung, one for the posters) through the real worker
// and store, several rounds, and prints the median wall time, ffmpeg's CPU
// and this process's CPU (which serves the original to ffmpeg).
func TestJobReadCost(t *testing.T) {
	if os.Getenv("PULSEVAULT_BENCH") == "" {
		t.Skip("a measurement, not a check: run by `make bench` (PULSEVAULT_BENCH=1)")
	}
	r := newRig(t)
	w := *r.w
	w.Config.Fanout = encode.FanoutRendition
	o := testclip.Options{Width: 720, Height: 1280, Seconds: 10}
	const rounds = 7
	var wall, child, self []time.Duration
	for range rounds {
		id, v := r.stage(o, nil)
		c0, s0, w0 := childCPU(), selfCPU(), time.Now()
		if res := w.Do(context.Background(), ladder.Job{Video: id, Rendition: v.Renditions[0].Name}, 1); res.Outcome != encode.OutcomeDone {
			t.Fatalf("240p: %+v", res)
		}
		wall, child, self = append(wall, time.Since(w0)), append(child, childCPU()-c0), append(self, selfCPU()-s0)
	}
	med := func(d []time.Duration) time.Duration { slices.Sort(d); return d[len(d)/2] }
	t.Logf("240p job, %d rounds, median: wall %.3f s, ffmpeg CPU %.3f s, worker process CPU %.3f s",
		rounds, med(wall).Seconds(), med(child).Seconds(), med(self).Seconds())
}

// selfCPU is this process's CPU time (user + system) so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
