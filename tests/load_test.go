package tests

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	signurl "github.com/mieweb/pulsevault/functions/sign-url"
	"github.com/mieweb/pulsevault/shared/audit/event"
	"github.com/mieweb/pulsevault/shared/auth"
	"github.com/mieweb/pulsevault/shared/ingest/tusclient"
	"github.com/mieweb/pulsevault/shared/ingest/videoid"
	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/playback/grant"
	"github.com/mieweb/pulsevault/shared/playback/livestatus"
	"github.com/mieweb/pulsevault/shared/playback/token"
	"github.com/mieweb/pulsevault/shared/testutil/bench"
	"github.com/mieweb/pulsevault/shared/testutil/testclip"
	"github.com/mieweb/pulsevault/shared/testutil/testenv"
	"github.com/mieweb/pulsevault/shared/topology"
)

// loadSize is how big a load run is: the sizes with
// PULSEVAULT_FAULTS=1, a bounded subset otherwise (make test, CI), each
// overridable on its own.
type loadSize struct {
	full    bool
	uploads int
	rps     int
	seconds int
}

func loadSizes(t *testing.T) loadSize {
	t.Helper()
	z := loadSize{uploads: 8, rps: 100, seconds: 5}
	if v := os.Getenv("PULSEVAULT_FAULTS"); v != "" && v != "0" {
		z = loadSize{full: true, uploads: 50, rps: 500, seconds: 60}
	}
	for _, o := range []struct {
		env string
		dst *int
	}{{"PULSEVAULT_LOAD_UPLOADS", &z.uploads}, {"PULSEVAULT_LOAD_RPS", &z.rps}, {"PULSEVAULT_LOAD_SECONDS", &z.seconds}} {
		if v := os.Getenv(o.env); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 100000 {
				t.Fatalf("%s=%q: want a whole number from 1 to 100000", o.env, v)
			}
			*o.dst = n
		}
	}
	return z
}

// loadAvg is /proc/loadavg's first three fields: the numbers of a load run
// on a shared machine mean little without them.
func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], "/")
}

// subcommandPIDs are the `pulsevault <sub>` processes started under this
// test process (provider, connector).
func subcommandPIDs(sub string) []int {
	var out []int
	for _, pid := range descendants(os.Getpid()) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if args := strings.Split(string(b), "\x00"); len(args) > 1 && args[1] == sub {
			out = append(out, pid)
		}
	}
	return out
}

// versitygwPIDs are the store processes started under this test.
func versitygwPIDs() []int {
	var out []int
	for _, pid := range descendants(os.Getpid()) {
		if comm(pid) == "versitygw" {
			out = append(out, pid)
		}
	}
	return out
}

// selfPID is this test process: the load's clients and (with testenv and
// startProviderCmd) the embedded NATS server run in it.
func selfPID() []int { return []int{os.Getpid()} }

// millis is d in milliseconds, for percentiles.
func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// rssWatch samples the resident set of named processes while a load runs,
// for each one's peak and to see whether it keeps growing.
type rssWatch struct {
	procs   map[string]func() []int
	bounded map[string]bool // whose growth is a violation; the rest are context
	start   time.Time
	stop    chan struct{}
	done    chan struct{}
	mu      sync.Mutex
	samples map[string][]rssSample
	peak    map[string]int64      // VmHWM of the largest replica
	cpu     map[string][2]float64 // CPU seconds of the replicas at the first and the last sample
}

type rssSample struct {
	at  time.Duration
	rss int64 // of the largest replica: a replica added by scaling is not growth
	n   int   // replicas running
}

// watchRSS samples every 250 ms until finish: the processes in bounded
// and, for context only, those in others.
func watchRSS(bounded, others map[string]func() []int) *rssWatch {
	procs := maps.Clone(others)
	maps.Copy(procs, bounded)
	w := &rssWatch{procs: procs, bounded: map[string]bool{}, start: time.Now(), stop: make(chan struct{}), done: make(chan struct{}),
		samples: map[string][]rssSample{}, peak: map[string]int64{}, cpu: map[string][2]float64{}}
	for name := range bounded {
		w.bounded[name] = true
	}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			w.sample()
			select {
			case <-w.stop:
				w.sample()
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

func (w *rssWatch) sample() {
	at := time.Since(w.start)
	for name, pids := range w.procs {
		var largest, peak int64
		var cpu float64
		n := 0
		for _, pid := range pids() {
			// A replica may exit between listing and reading: skip it.
			if u, err := bench.ReadUsage(pid); err == nil {
				largest, peak, cpu, n = max(largest, u.RSS), max(peak, u.PeakRSS), cpu+u.CPU, n+1
			}
		}
		if n == 0 {
			continue // not started yet (transcode waits for its first job)
		}
		w.mu.Lock()
		w.samples[name] = append(w.samples[name], rssSample{at, largest, n})
		w.peak[name] = max(w.peak[name], peak)
		c, ok := w.cpu[name]
		if !ok {
			c[0] = cpu
		}
		c[1] = cpu
		w.cpu[name] = c
		w.mu.Unlock()
	}
}

// finish stops sampling. It returns one line per process (CPU seconds
// while watched, peak RSS, and the largest replica's resident set in the
// first and the second half of its sampled life) and the bounded processes
// that grew: more than 2× and by more than 16 MiB from the first half to
// the second (the slack keeps a small process's warm-up from counting).
func (w *rssWatch) finish() (lines, grew []string) {
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, name := range slices.Sorted(maps.Keys(w.procs)) {
		ss := w.samples[name]
		if len(ss) == 0 {
			lines = append(lines, name+": never running")
			if w.bounded[name] {
				grew = append(grew, name+": never running during the load")
			}
			continue
		}
		mid := ss[0].at + (ss[len(ss)-1].at-ss[0].at)/2
		var first, second int64
		replicas := 0
		for _, s := range ss {
			replicas = max(replicas, s.n)
			if s.at <= mid {
				first = max(first, s.rss)
			} else {
				second = max(second, s.rss)
			}
		}
		lines = append(lines, fmt.Sprintf("%s: CPU %.1f s; peak RSS %.1f MiB; largest RSS first half %.1f MiB, second half %.1f MiB (%d samples, up to %d replicas)",
			name, w.cpu[name][1]-w.cpu[name][0], inMiB(w.peak[name]), inMiB(first), inMiB(second), len(ss), replicas))
		if w.bounded[name] && second > 2*first && second-first > 16<<20 {
			grew = append(grew, fmt.Sprintf("%s: resident set grew from %.1f MiB to %.1f MiB", name, inMiB(first), inMiB(second)))
		}
	}
	return lines, grew
}

func inMiB(b int64) float64 { return float64(b) / (1 << 20) }

// uploadRun is one upload of the load and what became of its video.
type uploadRun struct {
	id       string
	latency  time.Duration // tus create + PATCHes
	uploaded time.Time     // upload complete, as the client saw it
	playable time.Time     // first seen ready (or complete)
	complete time.Time
	err      error
}

// TestLoadUploads is issue #11's upload load: N concurrent uploads of
// distinct small clips through the provider's tus endpoint, the whole
// pipeline behind them (finalize, transcode ladder, videos), until every
// video is complete. Violations: any upload error, any video not complete,
// any video missing or extra in the store, and (full run) a function whose
// resident set keeps growing. Latencies are measured and reported, never
// asserted.
func TestLoadUploads(t *testing.T) {
	z := loadSizes(t)
	ctx := context.Background()
	s := startIngestStack(t)
	s.deployPipeline()
	cfg := s.env.Config

	// Each clip one frame longer than the last, so no two uploads carry the
	// same bytes (video ids come from the upload, but nothing downstream may
	// lean on content either).
	dir := t.TempDir()
	clips := make([]string, z.uploads)
	var genErr atomic.Pointer[error]
	var gen sync.WaitGroup
	next := atomic.Int64{}
	for range 2 {
		gen.Go(func() {
			for i := int(next.Add(1)) - 1; i < z.uploads; i = int(next.Add(1)) - 1 {
				clips[i] = filepath.Join(dir, fmt.Sprintf("clip-%03d.mp4", i))
				if err := testclip.Make(ctx, clips[i], testclip.Options{Width: 320, Height: 568, Seconds: 2 + float64(i)/30}); err != nil {
					genErr.Store(&err)
					return
				}
			}
		})
	}
	gen.Wait()
	if p := genErr.Load(); p != nil {
		t.Fatal(*p)
	}
	sums := map[[32]byte]int{}
	for i, c := range clips {
		b, err := os.ReadFile(c)
		if err != nil {
			t.Fatal(err)
		}
		if j, dup := sums[sha256.Sum256(b)]; dup {
			t.Fatalf("clips %d and %d are the same bytes", j, i)
		}
		sums[sha256.Sum256(b)] = i
	}

	// Status changes give each video's moment of playable and complete; the
	// meta.json poll below is the truth when a live message is missed.
	var seenMu sync.Mutex
	seen := map[string]map[meta.Status]time.Time{}
	sub, err := livestatus.Subscribe(s.bus.Conn(), func(c livestatus.Change) {
		seenMu.Lock()
		defer seenMu.Unlock()
		if seen[c.Video] == nil {
			seen[c.Video] = map[meta.Status]time.Time{}
		}
		if _, ok := seen[c.Video][c.Status]; !ok {
			seen[c.Video][c.Status] = time.Now()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()

	fnProc := func(fn string) func() []int { return func() []int { return fnPIDs(fn) } }
	watch := watchRSS(map[string]func() []int{
		"provider":  func() []int { return subcommandPIDs("provider") },
		"connector": func() []int { return subcommandPIDs("connector") },
		"upload":    fnProc("upload"), "upload-finalize": fnProc("upload-finalize"),
		"transcode": fnProc("transcode"), "videos": fnProc("videos"),
	}, map[string]func() []int{"versitygw": versitygwPIDs, "test process (clients, NATS)": selfPID})
	httpc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2 * z.uploads}}
	runs := make([]uploadRun, z.uploads)
	start := time.Now()
	var up sync.WaitGroup
	for i := range runs {
		up.Go(func() {
			uctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
			defer cancel()
			c := &tusclient.Client{Endpoint: s.gateway + "/function/upload/", Token: s.token, HTTP: httpc}
			t0 := time.Now()
			loc, err := c.Upload(uctx, clips[i], map[string]string{"filetype": "video/mp4"})
			runs[i].latency, runs[i].uploaded, runs[i].err = time.Since(t0), time.Now(), err
			if err == nil {
				runs[i].id = videoid.FromUpload(path.Base(loc))
			}
		})
	}
	up.Wait()
	uploadWall := time.Since(start)

	var violations []string
	ids := map[string]int{}
	for i, r := range runs {
		switch j, dup := ids[r.id]; {
		case r.err != nil:
			violations = append(violations, fmt.Sprintf("upload %d: %v", i, r.err))
		case dup:
			violations = append(violations, fmt.Sprintf("uploads %d and %d got the same video %s", j, i, r.id))
		default:
			ids[r.id] = i
		}
	}

	// Wait for every uploaded video to be complete, polling meta.json.
	deadline := time.Now().Add(10*time.Minute + time.Duration(z.uploads)*30*time.Second)
	pending := map[string]int{}
	for id, i := range ids {
		pending[id] = i
	}
	for len(pending) > 0 && time.Now().Before(deadline) {
		for id, i := range pending {
			v, _, err := s.metas.Get(ctx, id)
			if err != nil {
				continue // not finalized yet
			}
			now := time.Now()
			switch v.Status {
			case meta.Ready, meta.Complete:
				if runs[i].playable.IsZero() {
					runs[i].playable = now
				}
				if v.Status == meta.Complete {
					runs[i].complete = now
					delete(pending, id)
				}
			case meta.Failed, meta.Rejected:
				violations = append(violations, fmt.Sprintf("video %s (upload %d): %s %s %v", id, i, v.Status, v.Reason, v.Errors))
				delete(pending, id)
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	wall := time.Since(start)
	for id, i := range pending {
		violations = append(violations, fmt.Sprintf("video %s (upload %d): not complete after %s", id, i, wall.Round(time.Second)))
	}
	rss, grew := watch.finish()
	if z.full {
		violations = append(violations, grew...)
	}

	// The live status messages are earlier than a poll could see them.
	seenMu.Lock()
	for id, i := range ids {
		for _, st := range []meta.Status{meta.Ready, meta.Complete} {
			if at, ok := seen[id][st]; ok && !runs[i].playable.IsZero() && at.Before(runs[i].playable) {
				runs[i].playable = at
			}
		}
		if at, ok := seen[id][meta.Complete]; ok && !runs[i].complete.IsZero() && at.Before(runs[i].complete) {
			runs[i].complete = at
		}
	}
	seenMu.Unlock()

	// The store holds exactly the uploaded videos, each with its master
	// playlist.
	inStore := map[string]bool{}
	for info, err := range s.st.List(ctx, cfg.MediaBucket, "videos/") {
		if err != nil {
			t.Fatal(err)
		}
		if id, ok := strings.CutSuffix(strings.TrimPrefix(info.Key, "videos/"), "/meta.json"); ok {
			inStore[id] = true
		}
	}
	for id, i := range ids {
		if !inStore[id] {
			violations = append(violations, fmt.Sprintf("video %s (upload %d): no meta.json in the store", id, i))
		} else if _, err := s.st.Stat(ctx, cfg.MediaBucket, topology.VideoKey(id, topology.MasterFile)); err != nil && !runs[i].complete.IsZero() {
			violations = append(violations, fmt.Sprintf("video %s (upload %d): complete without a master playlist: %v", id, i, err))
		}
	}
	for id := range inStore {
		if _, ok := ids[id]; !ok {
			violations = append(violations, fmt.Sprintf("video %s in the store belongs to no upload", id))
		}
	}

	var upLat, toPlayable, toComplete []float64
	for _, r := range runs {
		if r.err == nil {
			upLat = append(upLat, millis(r.latency))
		}
		if !r.playable.IsZero() {
			toPlayable = append(toPlayable, millis(r.playable.Sub(r.uploaded)))
		}
		if !r.complete.IsZero() {
			toComplete = append(toComplete, millis(r.complete.Sub(r.uploaded)))
		}
	}
	q := bench.Quantile
	t.Logf("%d concurrent uploads of 320x568 2-3.6 s clips: uploads done in %s, all complete in %s (loadavg %s)",
		z.uploads, uploadWall.Round(time.Millisecond), wall.Round(time.Millisecond), loadAvg())
	t.Logf("upload latency ms: p50 %.0f p95 %.0f p99 %.0f max %.0f", q(upLat, .5), q(upLat, .95), q(upLat, .99), q(upLat, 1))
	t.Logf("upload complete → playable ms: p50 %.0f p95 %.0f max %.0f; → complete ms: p50 %.0f p95 %.0f max %.0f",
		q(toPlayable, .5), q(toPlayable, .95), q(toPlayable, 1), q(toComplete, .5), q(toComplete, .95), q(toComplete, 1))
	for _, l := range rss {
		t.Log(l)
	}
	// Records versitygw sent under another upload's name (see upload-finalize's README).
	mismatches := total(scrapeMetrics(t, s.gateway+"/function/upload-finalize/metrics")["pulsevault_finalize_event_mismatches_total"])
	t.Logf("upload-finalize: %.0f bucket notifications did not match the stored object and made it sweep", mismatches)
	for _, v := range violations {
		t.Error(v)
	}
	fmt.Printf("SUMMARY family=load-uploads trials=%d violations=%d complete=%d p50=%.0fms p95=%.0fms p99=%.0fms max=%.0fms playable_p50=%.0fms playable_p95=%.0fms playable_max=%.0fms wall=%.1fs loadavg=%s\n",
		z.uploads, len(violations), len(toComplete), q(upLat, .5), q(upLat, .95), q(upLat, .99), q(upLat, 1),
		q(toPlayable, .5), q(toPlayable, .95), q(toPlayable, 1), wall.Seconds(), loadAvg())
}

// openLoopResult is what a constant-rate run measured.
type openLoopResult struct {
	latency []float64 // ms from each request's scheduled time to its end
	errors  int
	first   []string // the first few errors
	wall    time.Duration
}

// openLoop calls do rps times a second for d, each call on its schedule
// whether or not earlier ones returned, and times each from the moment it
// was due: a stalled server shows as latency, not as a lower rate
// (coordinated omission). At most 2048 calls are in flight; past that a
// call starts late, and that lateness is in its latency too.
func openLoop(rps int, d time.Duration, do func() error) openLoopResult {
	n := int(d.Seconds() * float64(rps))
	lat := make([]float64, n)
	errs := make([]error, n)
	sem := make(chan struct{}, 2048)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		due := start.Add(time.Duration(i) * time.Second / time.Duration(rps))
		if w := time.Until(due); w > 0 {
			time.Sleep(w)
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = do()
			lat[i] = millis(time.Since(due))
		})
	}
	wg.Wait()
	r := openLoopResult{latency: lat, wall: time.Since(start)}
	for _, err := range errs {
		if err != nil {
			r.errors++
			if len(r.first) < 5 {
				r.first = append(r.first, err.Error())
			}
		}
	}
	return r
}

// fnHandled is how many requests a function replica at base handled and
// the seconds it spent in its handler, from its own metrics: set against
// the latency a client saw, it tells the function's share from the rest
// (provider, queueing, the machine).
func fnHandled(base string) (n, seconds float64, err error) {
	res, err := http.Get(base + "/metrics")
	if err != nil {
		return 0, 0, err
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			continue
		}
		v, err := strconv.ParseFloat(f[1], 64)
		switch {
		case err != nil:
		case strings.HasPrefix(f[0], "function_request_duration_seconds_count{"):
			n += v
		case strings.HasPrefix(f[0], "function_request_duration_seconds_sum{"):
			seconds += v
		}
	}
	return n, seconds, sc.Err()
}

// noURL drops the URL from a client error: a media URL carries its token.
func noURL(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

// hlsRefs are the URIs a playlist refers to (variants, init, segments),
// resolved against its URL.
func hlsRefs(base *url.URL, playlist []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(playlist))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		ref := l
		if _, after, ok := strings.Cut(l, `URI="`); ok && strings.HasPrefix(l, "#") {
			ref, _, _ = strings.Cut(after, `"`)
		} else if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if u, err := base.Parse(ref); err == nil {
			out = append(out, u.String())
		}
	}
	return out
}

// TestLoadSignURL is issue #11's playback load: sign-url at a constant
// rate (open loop) through the provider while 8 players fetch the staged
// rendition (master, variant playlist, init, segments) through the signed
// URL. Every non-2xx answer or transport error is a violation, and so (full
// run) is a resident set that keeps growing; latency, rate and throughput
// are measured and reported.
func TestLoadSignURL(t *testing.T) {
	z := loadSizes(t)
	s := startPlayback(t, "300s")
	gw := s.p.url
	// The playback stack's jwt() lives a minute: too short for a full run.
	owner, err := auth.SignHS256(s.jwtSecret, jwtIssuer, jwtAudience, "uploader-1", nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf(`{"video":%q}`, s.video)
	client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConns: 4096, MaxIdleConnsPerHost: 4096}}
	code, g, raw := signURL(t, client, gw+"/function/sign-url", owner, body)
	if code != http.StatusOK {
		t.Fatalf("sign-url before the load: %d %s", code, raw)
	}
	master, err := url.Parse(gw + "/function/media" + strings.TrimPrefix(g.URL, "/media"))
	if err != nil {
		t.Fatal(err)
	}
	want := `"url":"/media/`

	fnProc := func(fn string) func() []int { return func() []int { return fnPIDs(fn) } }
	watch := watchRSS(map[string]func() []int{
		"sign-url": fnProc("sign-url"), "media": fnProc("media"),
	}, map[string]func() []int{
		// The provider holds the open loop's queue (up to 2048 requests in
		// flight, each with its proxy buffers) once the rate is not kept
		// up: its growth there is the backlog, not a leak, so it is shown
		// but not judged.
		"provider":  func() []int { return []int{s.p.cmd.Process.Pid} },
		"versitygw": versitygwPIDs, "test process (clients, NATS)": selfPID})

	signChild := childURL(t, s.p, "sign-url")
	n0, sec0, err := fnHandled(signChild)
	if err != nil {
		t.Fatal(err)
	}

	// Players: closed loop, one playback after another until the sign-url
	// load is over.
	var mediaBytes, mediaGets, mediaErrs atomic.Int64
	var mediaMu sync.Mutex
	var mediaLat []float64
	var mediaFirst []string
	fetch := func(u string) ([]byte, error) {
		t0 := time.Now()
		res, err := client.Get(u)
		if err != nil {
			return nil, noURL(err)
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		mediaGets.Add(1)
		mediaBytes.Add(int64(len(b)))
		mediaMu.Lock()
		mediaLat = append(mediaLat, millis(time.Since(t0)))
		mediaMu.Unlock()
		if err == nil && res.StatusCode/100 != 2 {
			err = fmt.Errorf("GET %s: status %d", path.Base(res.Request.URL.Path), res.StatusCode)
		}
		return b, err
	}
	play := func() error {
		m, err := fetch(master.String())
		if err != nil {
			return err
		}
		for _, v := range hlsRefs(master, m) {
			vu, _ := url.Parse(v)
			pl, err := fetch(v)
			if err != nil {
				return err
			}
			refs := hlsRefs(vu, pl)
			if len(refs) < 2 {
				return fmt.Errorf("variant playlist lists %d files", len(refs))
			}
			for _, seg := range refs {
				if _, err := fetch(seg); err != nil {
					return err
				}
			}
		}
		return nil
	}
	loadDone := make(chan struct{})
	var players sync.WaitGroup
	mediaStart := time.Now()
	for range 8 {
		players.Go(func() {
			for {
				select {
				case <-loadDone:
					return
				default:
				}
				if err := play(); err != nil {
					mediaErrs.Add(1)
					mediaMu.Lock()
					if len(mediaFirst) < 5 {
						mediaFirst = append(mediaFirst, err.Error())
					}
					mediaMu.Unlock()
				}
			}
		})
	}

	r := openLoop(z.rps, time.Duration(z.seconds)*time.Second, func() error {
		req, _ := http.NewRequest(http.MethodPost, gw+"/function/sign-url", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+owner)
		req.Header.Set("Content-Type", "application/json")
		res, err := client.Do(req)
		if err != nil {
			return noURL(err)
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		if err == nil && (res.StatusCode != http.StatusOK || !bytes.Contains(b, []byte(want))) {
			err = fmt.Errorf("sign-url: status %d %.100s", res.StatusCode, b)
		}
		return err
	})
	close(loadDone)
	players.Wait()
	mediaWall := time.Since(mediaStart)
	rss, grew := watch.finish()
	n1, sec1, err := fnHandled(signChild)
	if err != nil {
		t.Fatal(err)
	}

	var violations []string
	if r.errors > 0 {
		violations = append(violations, fmt.Sprintf("sign-url: %d of %d requests failed, first: %q", r.errors, len(r.latency), r.first))
	}
	if n := mediaErrs.Load(); n > 0 {
		violations = append(violations, fmt.Sprintf("media: %d playbacks failed, first: %q", n, mediaFirst))
	}
	if mediaGets.Load() == 0 {
		violations = append(violations, "media: no GET completed during the load")
	}
	if z.full {
		violations = append(violations, grew...)
	}
	q := bench.Quantile
	achieved := float64(len(r.latency)-r.errors) / r.wall.Seconds()
	t.Logf("sign-url open loop %d req/s for %d s: %d requests, achieved %.0f req/s, latency ms p50 %.1f p90 %.1f p99 %.1f p99.9 %.1f max %.1f, %d errors (loadavg %s)",
		z.rps, z.seconds, len(r.latency), achieved, q(r.latency, .5), q(r.latency, .9), q(r.latency, .99), q(r.latency, .999), q(r.latency, 1), r.errors, loadAvg())
	var sum float64
	for _, l := range r.latency {
		sum += l
	}
	t.Logf("sign-url's own handler time (its metrics): %.0f requests, mean %.1f ms of the %.1f ms mean latency; the rest is the provider, queueing and the machine",
		n1-n0, 1000*(sec1-sec0)/(n1-n0), sum/float64(len(r.latency)))
	mediaMu.Lock()
	t.Logf("media, 8 players alongside: %d GETs, %.1f MB/s, latency ms p50 %.1f p99 %.1f max %.1f, %d failed playbacks",
		mediaGets.Load(), float64(mediaBytes.Load())/mediaWall.Seconds()/1e6, q(mediaLat, .5), q(mediaLat, .99), q(mediaLat, 1), mediaErrs.Load())
	mediaMu.Unlock()
	for _, l := range rss {
		t.Log(l)
	}
	for _, v := range violations {
		t.Error(v)
	}
	fmt.Printf("SUMMARY family=load-sign-url requests=%d violations=%d target=%d rate=%.0f p50=%.1fms p90=%.1fms p99=%.1fms p99.9=%.1fms max=%.1fms errors=%d media_gets=%d media_MBps=%.1f loadavg=%s\n",
		len(r.latency), len(violations), z.rps, achieved, q(r.latency, .5), q(r.latency, .9), q(r.latency, .99), q(r.latency, .999), q(r.latency, 1),
		r.errors, mediaGets.Load(), float64(mediaBytes.Load())/mediaWall.Seconds()/1e6, loadAvg())
}

// BenchmarkSignURLHandler is sign-url's handler in this process against the
// real store and NATS (testenv), so that a profile shows where its CPU
// goes per request:
//
//	go test -run '^$' -bench SignURLHandler -cpuprofile /tmp/sign.cpu ./tests/
//	go tool pprof -top -cum /tmp/sign.cpu
func BenchmarkSignURLHandler(b *testing.B) {
	ctx := context.Background()
	env := testenv.Start(b)
	cfg := env.Config
	st, eb := bootstrapped(b, cfg, "bench-sign-url")
	id := uuid.NewString()
	metas := meta.NewStore(st, cfg.MediaBucket)
	if err := metas.Create(ctx, &meta.Video{ID: id, Status: meta.Ready, Uploader: "uploader-1", UploadID: "upload-" + id[:8]}); err != nil {
		b.Fatal(err)
	}
	secret := []byte("bench-jwt-secret-0123456789abcdefghijklmnop")
	ver, err := auth.New(auth.Options{HS256Secret: secret, Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience})
	if err != nil {
		b.Fatal(err)
	}
	line, err := token.GenerateKeyLine("k1")
	if err != nil {
		b.Fatal(err)
	}
	ring, err := token.ParseKeys([]byte(line + "\n"))
	if err != nil {
		b.Fatal(err)
	}
	pol, err := grant.LoadSettings(func(string) string { return "" })
	if err != nil {
		b.Fatal(err)
	}
	srv := grant.NewSignServer(&grant.SignServer{Meta: metas, Verifier: ver, Keys: func() (*token.Keyring, error) { return ring, nil }, Policy: pol,
		Audit: event.NewPublisher(eb, signurl.Name).Publish, Log: slog.New(slog.DiscardHandler), Now: time.Now})
	jwt, err := auth.SignHS256(secret, cfg.JWTIssuer, cfg.JWTAudience, "uploader-1", nil, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	body := fmt.Sprintf(`{"video":%q}`, id)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+jwt)
			w := httptest.NewRecorder()
			srv.ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				b.Fatalf("sign-url: %d %s", w.Code, w.Body)
			}
		}
	})
}
