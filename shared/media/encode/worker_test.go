package encode_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/mieweb/pulsevault/shared/audit/event"
	"github.com/mieweb/pulsevault/shared/media/encode"
	"github.com/mieweb/pulsevault/shared/media/ladder"
	"github.com/mieweb/pulsevault/shared/media/manifest"
	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/storage"
	"github.com/mieweb/pulsevault/shared/testutil/testclip"
	"github.com/mieweb/pulsevault/shared/topology"
)

// runJobs runs the named renditions concurrently (all of them when names is
// empty) and returns their results by name.
func (r *rig) runJobs(id string, v *meta.Video, delivered int, names ...string) map[string]encode.Result {
	if len(names) == 0 {
		for _, j := range encode.Jobs(id, v.Renditions) {
			names = append(names, j.Rendition)
		}
	}
	var mu sync.Mutex
	out := map[string]encode.Result{}
	var wg sync.WaitGroup
	for _, n := range names {
		wg.Go(func() {
			res := r.w.Do(context.Background(), ladder.Job{Video: id, Rendition: n}, delivered)
			mu.Lock()
			out[n] = res
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

func (r *rig) timeline(id, name string) manifest.Timeline {
	r.t.Helper()
	rc, _, err := r.st.Get(context.Background(), r.cfg.MediaBucket, topology.RenditionKey(id, name, topology.TimelineFile), 0, -1)
	if err != nil {
		r.t.Fatal(err)
	}
	defer rc.Close()
	var tl manifest.Timeline
	if err := json.NewDecoder(rc).Decode(&tl); err != nil {
		r.t.Fatal(err)
	}
	return tl
}

func count(p probeFile, kind string) int {
	n := 0
	for _, s := range p.Streams {
		if s.CodecType == kind {
			n++
		}
	}
	return n
}

// checkComplete asserts everything a finished video must have.
func (r *rig) checkComplete(t *testing.T, id string) {
	ctx := context.Background()
	v := r.get(id)
	if v.Status != meta.Complete {
		t.Fatalf("status %q, want complete: %+v", v.Status, v.Renditions)
	}
	src := v.Probe
	videos := 0
	for _, rd := range v.Renditions {
		if rd.State != meta.RenditionReady || rd.Codecs == "" || rd.Bandwidth <= 0 || rd.Average <= 0 || rd.Average > rd.Bandwidth {
			t.Fatalf("rendition not recorded as ready with measurements: %+v", rd)
		}
		tl := r.timeline(id, rd.Name)
		if d := tl.Seconds(); math.Abs(d-src.Duration) > 0.1 {
			t.Errorf("%s: duration %.3f s, source %.3f s", rd.Name, d, src.Duration)
		}
		// Every segment starts on the 2 s grid (within a frame), and all
		// but the last are 2 s long: renditions are switchable anywhere.
		for i, s := range tl.Segments {
			at := float64(s.Start) / float64(tl.Timescale)
			if math.Abs(at-float64(2*i)) > 0.05 {
				t.Errorf("%s: segment %d starts at %.3f s, want %d s", rd.Name, i, at, 2*i)
			}
		}
		if rd.Kind == "video" {
			videos++
			if !strings.HasPrefix(rd.Codecs, "avc1.") || rd.Width > src.Width || rd.Height > src.Height || rd.Width%2 != 0 || rd.Height%2 != 0 {
				t.Errorf("%s: codecs %q size %dx%d, source %dx%d", rd.Name, rd.Codecs, rd.Width, rd.Height, src.Width, src.Height)
			}
			if (rd.Width < rd.Height) != (src.Width < src.Height) {
				t.Errorf("%s: orientation %dx%d differs from the displayed source %dx%d", rd.Name, rd.Width, rd.Height, src.Width, src.Height)
			}
		} else if rd.Codecs != "mp4a.40.2" {
			t.Errorf("audio codecs %q", rd.Codecs)
		} else if want := min(src.AudioChannels, 2); rd.Channels != want {
			// A mono source stays mono; more than two channels mix down.
			t.Errorf("audio rendition has %d channels, source %d: want %d", rd.Channels, src.AudioChannels, want)
		}
	}
	for _, f := range []string{topology.MasterFile, topology.MPDFile} {
		p := ffprobe(t, r.proxy+"/videos/"+id+"/"+f)
		if count(p, "video") != videos || count(p, "audio") != btoi(src.HasAudio) {
			t.Errorf("%s: %d video and %d audio streams, want %d and %d", f, count(p, "video"), count(p, "audio"), videos, btoi(src.HasAudio))
		}
		if d := p.duration(); math.Abs(d-src.Duration) > 0.1 {
			t.Errorf("%s: duration %.3f, source %.3f", f, d, src.Duration)
		}
		for _, s := range p.Streams {
			if s.CodecType == "audio" && s.Channels != min(src.AudioChannels, 2) {
				t.Errorf("%s: audio stream has %d channels, source %d", f, s.Channels, src.AudioChannels)
			}
			if s.CodecType == "video" && (s.Width > src.Width || s.Height > src.Height) {
				t.Errorf("%s: a %dx%d stream exceeds the %dx%d source", f, s.Width, s.Height, src.Width, src.Height)
			}
		}
	}
	// Media is locked, and so is every version of the regenerated manifests.
	for key, locked := range map[string]bool{
		topology.RenditionKey(id, v.Renditions[0].Name, "seg_0.m4s"): true,
		topology.RenditionKey(id, v.Renditions[0].Name, "init.mp4"):  true,
		topology.VideoKey(id, topology.PosterFile):                   true,
		topology.VideoKey(id, topology.ThumbFile):                    true,
		topology.VideoKey(id, topology.MasterFile):                   true,
	} {
		info, err := r.st.Stat(ctx, r.cfg.MediaBucket, key)
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		if got := info.Retention != nil && info.Retention.Mode == minio.Compliance; got != locked {
			t.Errorf("%s: locked %v, want %v", key, got, locked)
		}
	}
	for info, err := range r.st.List(ctx, r.cfg.MediaBucket, "videos/"+id+"/") {
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(info.Key, phi) {
			t.Errorf("key %q carries client metadata", info.Key)
		}
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestLadders(t *testing.T) {
	r := newRig(t)
	for _, c := range []struct {
		name string
		o    testclip.Options
	}{
		{"portrait", testclip.Options{}},
		{"rotated-landscape", testclip.Options{Width: 640, Height: 360, Rotation: 90}},
		{"no-audio", testclip.Options{NoAudio: true}},
		{"mono", testclip.Options{Mono: true}},
		{"vfr", testclip.Options{VFR: true}},
		{"odd", testclip.Options{Width: 361, Height: 641}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			id, v := r.stage(c.o, nil)
			for name, res := range r.runJobs(id, v, 1) {
				// Under grouped the lowest rung's job may have taken the audio along.
				if res.Status != http.StatusOK || res.Outcome != encode.OutcomeDone && (name != "audio" || res.Outcome != encode.OutcomeNoop) {
					t.Fatalf("%s: %+v", name, res)
				}
			}
			r.checkComplete(t, id)
			done := 0
			for _, e := range r.auditEvents() {
				if e.Object == id && e.Action == event.TranscodeDone {
					done++
				}
			}
			if done != len(v.Renditions) {
				t.Errorf("%d transcode.done events, want %d", done, len(v.Renditions))
			}
		})
	}
	t.Cleanup(func() {
		if strings.Contains(r.logs.String(), phi) {
			t.Errorf("logs carry client metadata:\n%s", r.logs.String())
		}
	})
}

func TestProgressiveAvailability(t *testing.T) {
	r := newRig(t)
	id, v := r.stage(testclip.Options{}, nil)
	if v.Renditions[0].Name != "240p" || len(v.Renditions) != 3 {
		t.Fatalf("plan: %+v", v.Renditions)
	}
	for name, res := range r.runJobs(id, v, 1, "240p", "audio") {
		if res.Status != http.StatusOK {
			t.Fatalf("%s: %+v", name, res)
		}
	}
	if got := r.get(id); got.Status != meta.Ready {
		t.Fatalf("status %q after 240p + audio, want ready", got.Status)
	}
	master := r.fetch(id, topology.MasterFile)
	if strings.Count(master, "#EXT-X-STREAM-INF") != 1 || !strings.Contains(master, "\n240p/index.m3u8\n") ||
		!strings.Contains(master, `TYPE=AUDIO,GROUP-ID="audio"`) {
		t.Fatalf("master with 240p + audio:\n%s", master)
	}
	// It plays: ffmpeg decodes the first segment of each stream through it.
	out, err := exec.Command("ffmpeg", "-v", "error", "-i", r.proxy+"/videos/"+id+"/"+topology.MasterFile,
		"-t", "1.9", "-f", "null", "-").CombinedOutput()
	if err != nil {
		t.Fatalf("decode the first segment: %v\n%s", err, out)
	}
	if p := ffprobe(t, r.proxy+"/videos/"+id+"/"+topology.MPDFile); count(p, "video") != 1 || count(p, "audio") != 1 {
		t.Fatalf("MPD with 240p + audio: %+v", p.Streams)
	}
	if res := r.runJobs(id, v, 1, "360p")["360p"]; res.Status != http.StatusOK {
		t.Fatalf("360p: %+v", res)
	}
	master = r.fetch(id, topology.MasterFile)
	if strings.Count(master, "#EXT-X-STREAM-INF") != 2 {
		t.Fatalf("master after 360p:\n%s", master)
	}
	r.checkComplete(t, id)
}

func (r *rig) fetch(id, file string) string {
	r.t.Helper()
	rc, _, err := r.st.Get(context.Background(), r.cfg.MediaBucket, topology.VideoKey(id, file), 0, -1)
	if err != nil {
		r.t.Fatal(err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	return string(b)
}

func TestUndecodableSourceFailsTheRendition(t *testing.T) {
	r := newRig(t)
	id, v := r.stage(testclip.Options{NoAudio: true}, func(b []byte) []byte {
		// Garbage over a stretch of the middle of the video data.
		for i := len(b) / 3; i < len(b)/3+20000; i++ {
			b[i] = byte(i*7919 + 13)
		}
		return b
	})
	res := r.runJobs(id, v, 1, "240p")["240p"]
	if res.Status != http.StatusUnprocessableEntity || res.Code != encode.CodeUndecodable {
		t.Fatalf("corrupt source: %+v, want 422 %s", res, encode.CodeUndecodable)
	}
	got := r.get(id)
	rd := got.Renditions[0]
	if rd.State != meta.RenditionFailed || rd.Error != encode.CodeUndecodable {
		t.Fatalf("rendition: %+v", rd)
	}
	if got.Status != meta.Processing || !slices.Contains(got.Errors, "transcode.240p."+encode.CodeUndecodable) {
		t.Fatalf("video: status %q errors %v", got.Status, got.Errors)
	}
	tail := r.object(topology.RenditionKey(id, "240p", topology.ErrorFile))
	if !strings.HasPrefix(tail, encode.CodeUndecodable+"\n") || strings.Contains(tail, "X-Amz") || strings.Contains(tail, "http") {
		t.Fatalf("stderr tail:\n%s", tail)
	}
	var failed []event.Event
	for _, e := range r.auditEvents() {
		if e.Action == event.TranscodeFailed && e.Object == id {
			failed = append(failed, e)
		}
	}
	if len(failed) != 1 || failed[0].Reason != encode.CodeUndecodable {
		t.Fatalf("audit: %+v", failed)
	}
}

func (r *rig) object(key string) string {
	r.t.Helper()
	rc, _, err := r.st.Get(context.Background(), r.cfg.MediaBucket, key, 0, -1)
	if err != nil {
		r.t.Fatal(err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	return string(b)
}

func TestRetryThenFinalAttemptMarksFailed(t *testing.T) {
	r := newRig(t)
	// Smaller than the lowest rung: a one-rendition plan.
	id, v := r.stage(testclip.Options{Width: 200, Height: 356, NoAudio: true, Seconds: 2}, nil)
	if len(v.Renditions) != 1 {
		t.Fatalf("plan: %+v", v.Renditions)
	}
	// Point the original at a missing object: reading it fails like an
	// unreachable store would, which is worth retrying.
	ctx := context.Background()
	if _, err := r.meta.Update(ctx, id, func(v *meta.Video) error {
		v.Original.Key = "videos/" + id + "/missing.mp4"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	res := r.runJobs(id, v, 1, "240p")["240p"]
	if res.Status != http.StatusServiceUnavailable || res.Code != encode.CodeUnreachable {
		t.Fatalf("first delivery: %+v, want 503 %s", res, encode.CodeUnreachable)
	}
	if rd := r.get(id).Renditions[0]; rd.State != meta.RenditionRunning {
		t.Fatalf("after a retryable failure the rendition is %q", rd.State)
	}
	res = r.runJobs(id, v, r.w.Config.MaxDeliver, "240p")["240p"]
	if res.Status != http.StatusInternalServerError || res.Outcome != encode.OutcomeFailed {
		t.Fatalf("last delivery: %+v, want 500 failed", res)
	}
	got := r.get(id)
	if rd := got.Renditions[0]; rd.State != meta.RenditionFailed || rd.Error != encode.CodeUnreachable {
		t.Fatalf("rendition: %+v", rd)
	}
	if got.Status != meta.Failed || got.Reason != "transcode-failed" {
		t.Fatalf("every rendition failed: status %q reason %q", got.Status, got.Reason)
	}
}

func TestRerunAndBadJobs(t *testing.T) {
	r := newRig(t)
	id, v := r.stage(testclip.Options{NoAudio: true, Seconds: 2}, nil)
	if res := r.runJobs(id, v, 1, "240p")["240p"]; res.Status != http.StatusOK {
		t.Fatalf("%+v", res)
	}
	before := r.get(id)
	res := r.runJobs(id, v, 1, "240p")["240p"]
	if res.Status != http.StatusOK || res.Outcome != encode.OutcomeNoop {
		t.Fatalf("re-run: %+v, want 200 noop", res)
	}
	if after := r.get(id); !after.Updated.Equal(before.Updated) {
		t.Fatal("a no-op re-run wrote meta.json")
	}
	ctx := context.Background()
	for _, c := range []struct {
		job  ladder.Job
		want int
		code string
	}{
		{ladder.Job{Video: "../../etc", Rendition: "240p"}, 400, "bad-job"},
		{ladder.Job{Video: id, Rendition: "240p/../x"}, 400, "bad-job"},
		{ladder.Job{Video: "3f1e5a8e-4c1b-4b7a-9a53-0a4f1e2d3c4b", Rendition: "240p"}, 422, "unknown-video"},
		{ladder.Job{Video: id, Rendition: "1080p"}, 422, "unknown-rendition"},
	} {
		if res := r.w.Do(ctx, c.job, 1); res.Status != c.want || res.Code != c.code {
			t.Errorf("%+v: %+v, want %d %s", c.job, res, c.want, c.code)
		}
	}
	if _, err := r.st.Stat(ctx, r.cfg.MediaBucket, "videos/"+id+"/hls/1080p/index.m3u8"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("an unplanned rendition wrote something: %v", err)
	}
}
