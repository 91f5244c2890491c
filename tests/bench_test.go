package tests

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/minio/minio-go/v7"
	"github.com/openfaas/faas-provider/types"

	"github.com/mieweb/pulsevault/shared/ingest/tusclient"
	"github.com/mieweb/pulsevault/shared/ingest/videoid"
	"github.com/mieweb/pulsevault/shared/media/encode"
	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/playback/origin"
	"github.com/mieweb/pulsevault/shared/storage"
	"github.com/mieweb/pulsevault/shared/testutil/bench"
	"github.com/mieweb/pulsevault/shared/testutil/testclip"
	"github.com/mieweb/pulsevault/shared/topology"
)

// The figures `make bench` reports; bench-quick checks each produced a number.
const (
	figTus      = "tus upload throughput through the provider"
	figMedia    = "media GET through the token check, bytes offloaded to the store (segments, 8 parallel)"
	figSign     = "sign-url requests/s through the provider (16 clients)"
	figAudit    = "audit events durably appended per second"
	figFeed     = "feed list latency p99 (first page of 20)"
	figTTP      = "time to playable"
	figLadder   = "full-ladder CPU seconds (one job per rendition)"
	benchRounds = 5
)

// benchMode is the size of a run: quick for development and CI smoke,
// full for the README's table.
type benchMode struct {
	name     string
	rounds   int
	blobMiB  int // tus vs PutObject payload
	requests int // per round, per side, for media and sign-url
	feedN    int // videos in the feed
	feedReqs int // list requests per round
	audit    int // events per round
	clips    []testclip.Options
}

func loadBenchMode(t *testing.T) benchMode {
	m := benchMode{name: "full", rounds: benchRounds, blobMiB: 15, requests: 1000, feedN: 10000, feedReqs: 100, audit: 20000,
		clips: []testclip.Options{{Width: 1080, Height: 1920, Seconds: 30}, {Width: 1920, Height: 1080, Seconds: 30}}}
	if os.Getenv("PULSEVAULT_BENCH_QUICK") != "" {
		m = benchMode{name: "quick", rounds: 2, blobMiB: 8, requests: 200, feedN: 200, feedReqs: 40, audit: 5000,
			clips: []testclip.Options{{Width: 360, Height: 640, Seconds: 5}}}
	}
	if v := os.Getenv("PULSEVAULT_BENCH_ROUNDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			t.Fatalf("PULSEVAULT_BENCH_ROUNDS=%q: want a whole number from 1 to 100", v)
		}
		m.rounds = n
	}
	if v := os.Getenv("PULSEVAULT_BENCH_VIDEOS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("PULSEVAULT_BENCH_VIDEOS=%q: want a positive whole number", v)
		}
		m.feedN = n
	}
	if v := os.Getenv("PULSEVAULT_BENCH_CLIP"); v != "" {
		var o testclip.Options
		if n, err := fmt.Sscanf(v, "%dx%dx%g", &o.Width, &o.Height, &o.Seconds); err != nil || n != 3 ||
			o.Width < 16 || o.Height < 16 || o.Width%2 != 0 || o.Height%2 != 0 || o.Seconds <= 0 || o.Seconds > 600 {
			t.Fatalf("PULSEVAULT_BENCH_CLIP=%q: want WIDTHxHEIGHTxSECONDS with even sides, such as 1080x1920x10", v)
		}
		m.clips = []testclip.Options{o}
	}
	return m
}

// TestBench is `make bench`: every section against its baseline in the
// same run, a table on stdout and bench/results.json. It measures; the
// only thing it asserts is that every figure produced a number.
func TestBench(t *testing.T) {
	if os.Getenv("PULSEVAULT_BENCH") == "" {
		t.Skip("a measurement, not a check: run by `make bench` (PULSEVAULT_BENCH=1)")
	}
	m := loadBenchMode(t)
	rep := &bench.Report{Mode: m.name, Rounds: m.rounds, Machine: bench.DescribeMachine(), Started: time.Now().UTC()}
	// Sections run one after the other: on a small machine, two at once
	// would measure each other.
	t.Run("ingest", func(t *testing.T) { benchIngest(t, m, rep) })
	t.Run("playback", func(t *testing.T) { benchPlayback(t, m, rep) })
	t.Run("audit", func(t *testing.T) { benchAudit(t, m, rep) })
	t.Run("transcode", func(t *testing.T) { benchTranscode(t, m, rep) })
	rep.Seconds = time.Since(rep.Started).Seconds()

	out := os.Getenv("PULSEVAULT_BENCH_OUT")
	if out == "" {
		out = filepath.Join(repoRoot(t), "bench", "results.json")
	}
	if err := rep.WriteJSON(out); err != nil {
		t.Error(err)
	}
	var tbl strings.Builder
	if err := rep.Table(&tbl); err != nil {
		t.Error(err)
	}
	fmt.Printf("\n%s\nwritten to %s\n", tbl.String(), out)
	if err := rep.Check(figTus, figMedia, figSign, figAudit, figFeed, figTTP, figLadder); err != nil {
		t.Error(err)
	}
}

// fnPIDs are the running replicas of function fn started under this test
// process (providers are its children, functions their children).
func fnPIDs(fn string) []int {
	var out []int
	for _, pid := range descendants(os.Getpid()) {
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if bytes.HasSuffix(bytes.TrimRight(cmdline, "\x00"), []byte("\x00fn\x00"+fn)) {
			out = append(out, pid)
		}
	}
	return out
}

// fnUsage sums the usage of fn's replicas (peak RSS: the largest).
func fnUsage(fn string) (bench.Usage, error) {
	var sum bench.Usage
	pids := fnPIDs(fn)
	if len(pids) == 0 {
		return sum, fmt.Errorf("no replica of %s running", fn)
	}
	for _, pid := range pids {
		u, err := bench.ReadUsage(pid)
		if err != nil {
			return sum, err
		}
		sum.CPU += u.CPU
		sum.PeakRSS = max(sum.PeakRSS, u.PeakRSS)
	}
	return sum, nil
}

// recordProcesses adds each function's usage over the section (its whole
// life: the stack was started for the section). mediaSeconds, when given,
// is the video each function processed.
func recordProcesses(t *testing.T, rep *bench.Report, section string, mediaSeconds map[string]float64, fns ...string) {
	for _, fn := range fns {
		u, err := fnUsage(fn)
		if err != nil {
			t.Errorf("%s: %v", section, err)
			continue
		}
		p := bench.Process{Section: section, Function: fn, CPU: u.CPU, PeakRSS: u.PeakRSS}
		if s := mediaSeconds[fn]; s > 0 {
			p.PerMediaSecond = u.CPU / s
		}
		rep.Processes = append(rep.Processes, p)
	}
}

func addFigure(t *testing.T, rep *bench.Report, f bench.Figure, err error) {
	t.Helper()
	if err != nil {
		t.Errorf("%s: %v", f.Name, err)
	}
	g := rep.Add(f)
	t.Logf("%s: %+v", g.Name, g.Rounds)
}

func benchIngest(t *testing.T, m benchMode, rep *bench.Report) {
	s := startIngestStack(t)
	ctx := context.Background()
	f := filepath.Join(t.TempDir(), "blob.bin")
	data := make([]byte, m.blobMiB<<20)
	rand.Read(data)
	if err := os.WriteFile(f, data, 0o600); err != nil {
		t.Fatal(err)
	}
	mib := float64(m.blobMiB)
	c := &tusclient.Client{Endpoint: s.gateway + "/function/upload/", Token: s.token}
	round := 0
	pairs, err := bench.Alternate(m.rounds, func() (float64, error) {
		start := time.Now()
		if _, err := c.Upload(ctx, f, nil); err != nil {
			return 0, err
		}
		return mib / time.Since(start).Seconds(), nil
	}, func() (float64, error) {
		round++
		start := time.Now()
		if _, err := s.st.Client().FPutObject(ctx, s.env.Config.UploadsBucket, fmt.Sprintf("bench-direct-%d", round), f, minio.PutObjectOptions{}); err != nil {
			return 0, err
		}
		return mib / time.Since(start).Seconds(), nil
	})
	addFigure(t, rep, bench.Figure{Section: "ingest", Name: figTus, Unit: "MiB/s", BaselineName: "minio-go PutObject, same file, same store",
		Rounds: pairs, Goal: bench.Goal{Value: 0.8}, Notes: fmt.Sprintf("%d MiB random payload per upload", m.blobMiB)}, err)
	recordProcesses(t, rep, "ingest", nil, "upload")
}

func benchPlayback(t *testing.T, m benchMode, rep *bench.Report) {
	ctx := context.Background()
	// Segments of the size a phone's portrait 1080p rendition has (2 s,
	// ≈0.4–1 MB), not the 360p test clip's (≈50–100 KB, where per-request
	// overhead is all one would measure).
	s := startPlaybackClip(t, "300s", testclip.Options{Seconds: 6, Width: 1080, Height: 1920})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	owner := s.jwt(t, "uploader-1")
	body := fmt.Sprintf(`{"video":%q}`, s.video)

	// Media: the staged rendition's segments, through the gateway's media
	// function (token check) and presigned straight from the store.
	_, g, raw := signURL(t, client, s.p.url+"/function/sign-url", owner, body)
	base, ok := strings.CutSuffix(strings.TrimPrefix(g.URL, "/media"), "hls/master.m3u8")
	if !ok {
		t.Fatalf("sign-url answer %s", raw)
	}
	// The public origin (shared/playback/origin, as `pulsevault dev` runs it; nginx
	// does the same in production) offloads: the function checks the token,
	// the origin reads the bytes from the store.
	originHandler, err := origin.Handler(origin.Options{GatewayURL: s.p.url, Store: s.s3})
	if err != nil {
		t.Fatal(err)
	}
	originSrv := httptest.NewServer(originHandler)
	defer originSrv.Close()
	var viaOrigin, viaMedia, presigned []string
	segBytes := 0
	for key, b := range s.hlsFiles {
		if !strings.HasSuffix(key, ".m4s") {
			continue
		}
		segBytes += len(b)
		rel := base + strings.TrimPrefix(key, topology.VideoPrefix(s.video))
		viaOrigin = append(viaOrigin, originSrv.URL+"/media"+rel)
		viaMedia = append(viaMedia, s.p.url+"/function/media"+rel)
		u, err := s.st.PresignGet(ctx, s.bucket, key, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		presigned = append(presigned, u.String())
	}
	getEach := func(urls []string) func() (float64, error) {
		return func() (float64, error) {
			var next atomic.Int64
			_, mb := rate(t, m.requests, 8, func() (int64, error) {
				res, err := client.Get(urls[int(next.Add(1))%len(urls)])
				if err != nil {
					return 0, err
				}
				defer res.Body.Close()
				n, err := io.Copy(io.Discard, res.Body)
				if err == nil && res.StatusCode != http.StatusOK {
					err = fmt.Errorf("status %d", res.StatusCode)
				}
				return n, err
			})
			return mb, nil
		}
	}
	// Without offload (a deployment with no front proxy), the bytes cross
	// the gateway and the function; the media child's own port splits the
	// gateway's cost from the function's. Both are notes, not figures.
	mediaChild := childURL(t, s.p, "media")
	var direct []string
	for _, u := range viaMedia {
		direct = append(direct, mediaChild+strings.TrimPrefix(u, s.p.url+"/function/media"))
	}
	for _, urls := range [][]string{presigned, viaOrigin, viaMedia, direct} {
		getEach(urls)() // warm connections and caches on every side
	}
	pairs, err := bench.Alternate(m.rounds, getEach(viaOrigin), getEach(presigned))
	gwPairs, gerr := bench.Alternate(m.rounds, getEach(viaMedia), getEach(presigned))
	childPairs, cerr := bench.Alternate(m.rounds, getEach(direct), getEach(presigned))
	t.Logf("media through the gateway and function ÷ presigned: %+v", gwPairs)
	t.Logf("media child called directly ÷ presigned: %+v", childPairs)
	addFigure(t, rep, bench.Figure{Section: "playback", Name: figMedia, Unit: "MB/s", BaselineName: "presigned S3 GET, same objects",
		Rounds: pairs, Goal: bench.Goal{Value: 0.9},
		Notes: fmt.Sprintf("%d GETs per side per round over %d fMP4 segments (%.0f KB average) of a 6 s 1080x1920 rendition, through the public origin (shared/playback/origin; nginx in production); without offload, through the gateway and the function: %.2f×, the function alone: %.2f× of presigned (medians of %d rounds)",
			m.requests, len(viaMedia), float64(segBytes)/float64(len(viaMedia))/1000, bench.MedianRatio(gwPairs), bench.MedianRatio(childPairs), len(childPairs))}, errors.Join(err, gerr, cerr))

	signDirect := childURL(t, s.p, "sign-url") + "/"
	sign := func(url string) func() (float64, error) {
		return func() (float64, error) {
			r, _ := rate(t, m.requests, 16, func() (int64, error) {
				req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+owner)
				res, err := client.Do(req)
				if err != nil {
					return 0, err
				}
				defer res.Body.Close()
				n, _ := io.Copy(io.Discard, res.Body)
				if res.StatusCode != http.StatusOK {
					return n, fmt.Errorf("sign-url: status %d", res.StatusCode)
				}
				return n, nil
			})
			return r, nil
		}
	}
	sign(signDirect)()
	pairs, err = bench.Alternate(m.rounds, sign(s.p.url+"/function/sign-url"), sign(signDirect))
	addFigure(t, rep, bench.Figure{Section: "playback", Name: figSign, Unit: "req/s", BaselineName: "the sign-url child called directly",
		Rounds: pairs, Goal: bench.Goal{Value: 0.5}}, err)

	if err := benchFeed(t, m, rep, s, client); err != nil {
		t.Error(err)
	}
	recordProcesses(t, rep, "playback", nil, "media", "sign-url", "videos")
}

// benchFeed stages m.feedN videos' meta.json and measures the p99 latency
// of the first page as one user's feed, warm (after one cold request).
func benchFeed(t *testing.T, m benchMode, rep *bench.Report, s *playbackStack, client *http.Client) error {
	ctx := context.Background()
	ms := meta.NewStore(s.st, s.bucket)
	ids := make(chan int)
	var wg sync.WaitGroup
	var stageErr atomic.Pointer[error]
	for range 16 {
		wg.Go(func() {
			for i := range ids {
				v := &meta.Video{ID: uuid.NewString(), Status: meta.Ready, Uploader: fmt.Sprintf("user-%d", i%50),
					Created: time.Unix(1_700_000_000+int64(i), 0), Probe: &meta.Probe{Duration: 5, Width: 360, Height: 640}}
				if err := ms.Create(ctx, v); err != nil {
					stageErr.Store(&err)
				}
			}
		})
	}
	for i := range m.feedN {
		ids <- i
	}
	close(ids)
	wg.Wait()
	if p := stageErr.Load(); p != nil {
		return *p
	}
	list := func() (time.Duration, error) {
		req, _ := http.NewRequest(http.MethodGet, s.p.url+"/function/videos/?limit=20", nil)
		// Minted per request: the helper's tokens live one minute, a round may not.
		req.Header.Set("Authorization", "Bearer "+s.jwt(t, "user-7"))
		start := time.Now()
		res, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		_, err = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if err == nil && res.StatusCode != http.StatusOK {
			err = fmt.Errorf("videos: status %d", res.StatusCode)
		}
		return time.Since(start), err
	}
	cold, err := list()
	if err != nil {
		return err
	}
	pairs, err := bench.Alternate(m.rounds, func() (float64, error) {
		var ms []float64
		for range m.feedReqs {
			d, err := list()
			if err != nil {
				return 0, err
			}
			ms = append(ms, d.Seconds()*1000)
		}
		return bench.Quantile(ms, 0.99), nil
	}, nil)
	addFigure(t, rep, bench.Figure{Section: "playback", Name: figFeed, Unit: "ms", Rounds: pairs, Goal: bench.Goal{AtMost: true, Value: 50},
		Notes: fmt.Sprintf("%d videos (50 uploaders), %d sequential requests per round after one cold request (%.0f ms: the replica's first full scan fills its index)",
			m.feedN, m.feedReqs, cold.Seconds()*1000)}, err)
	return nil
}

func benchAudit(t *testing.T, m benchMode, rep *bench.Report) {
	r := startAuditRig(t, 1, map[string]string{"AUDIT_BATCH_WAIT": "50ms"})
	r.wake(1)
	cpu0, err := fnUsage("audit-append")
	if err != nil {
		t.Fatal(err)
	}
	done := 0
	pairs, err := bench.Alternate(m.rounds, func() (float64, error) {
		start := time.Now()
		r.publish(m.audit, 8, done)
		done += m.audit
		r.waitHead(uint64(done), 5*time.Minute)
		return float64(m.audit) / time.Since(start).Seconds(), nil
	}, nil)
	cpu1, uerr := fnUsage("audit-append")
	notes := fmt.Sprintf("%d events per round from 8 publishers, appended by 1 replica while they publish", m.audit)
	if uerr == nil {
		notes += fmt.Sprintf("; audit-append used %.2f CPU s per 10,000 events", (cpu1.CPU-cpu0.CPU)/float64(done)*10000)
	}
	addFigure(t, rep, bench.Figure{Section: "audit", Name: figAudit, Unit: "events/s", Rounds: pairs,
		Goal: bench.Goal{Value: 5000}, Notes: notes}, errors.Join(err, uerr))
	recordProcesses(t, rep, "audit", nil, "audit-append")
}

// benchTranscode runs the whole pipeline per clip and round (tus upload →
// finalize → one transcode job per rendition through the connector) and
// then, on the same clip, raw ffmpeg: the lowest rung alone, and the whole
// ladder from one decode.
func benchTranscode(t *testing.T, m benchMode, rep *bench.Report) {
	s := startIngestStack(t)
	// Full clips are larger than the stack's 16 MiB upload limit.
	s.system(http.MethodPut, "/system/functions", types.FunctionDeployment{Service: "upload", Image: "pulsevault-upload:dev",
		Secrets: []string{"pulsevault-jwt-secret"},
		EnvVars: map[string]string{"UPLOAD_MAX_BYTES": strconv.Itoa(1 << 30), "read_timeout": "5m", "write_timeout": "5m", "exec_timeout": "5m"}}, http.StatusAccepted)
	jobs := map[string]string{"topic": topology.SubjectTranscodeJobs}
	env := map[string]string{"exec_timeout": "15m", "write_timeout": "15m"}
	if v := os.Getenv("TRANSCODE_GROUP_NICE"); v != "" { // for before/after runs
		env["TRANSCODE_GROUP_NICE"] = v
	}
	s.system(http.MethodPost, "/system/functions", types.FunctionDeployment{Service: "transcode", Image: "pulsevault-transcode:dev",
		Annotations: &jobs, EnvVars: env}, http.StatusAccepted)
	s.startConnector()
	ctx := context.Background()
	c := &tusclient.Client{Endpoint: s.gateway + "/function/upload/", Token: s.token}
	mediaSeconds := 0.0
	for _, o := range m.clips {
		clip := filepath.Join(t.TempDir(), "clip.mp4")
		if err := testclip.Make(ctx, clip, o); err != nil {
			t.Fatal(err)
		}
		label := fmt.Sprintf("%dx%d %.0f s", o.Width, o.Height, o.Seconds)
		var ttp, ladder []bench.Pair
		var errs []error
		for range m.rounds {
			r, err := pipelineRound(ctx, s, c, clip)
			if err != nil {
				errs = append(errs, err)
				break
			}
			mediaSeconds += r.v.Probe.Duration
			raw240, oneCPU, err := rawFFmpeg(ctx, clip, r.v)
			if err != nil {
				errs = append(errs, err)
				break
			}
			ttp = append(ttp, bench.Pair{Result: r.playable.Seconds(), Baseline: raw240.Seconds()})
			ladder = append(ladder, bench.Pair{Result: r.cpu, Baseline: oneCPU})
			t.Logf("%s: playable %.2f s (meta.json %.2f s, lowest rung claimed %.2f s, recorded %.2f s; complete %.2f s), raw lowest rung %.2f s; ladder CPU %.2f s vs one ffmpeg %.2f s",
				label, r.playable.Seconds(), r.finalized.Seconds(), r.claimed.Seconds(), r.encoded.Seconds(), r.ready.Seconds(),
				raw240.Seconds(), r.cpu, oneCPU)
		}
		err := errors.Join(errs...)
		addFigure(t, rep, bench.Figure{Section: "transcode " + label, Name: figTTP, Unit: "s",
			BaselineName: "raw ffmpeg, lowest rung, local file", Rounds: ttp, Goal: bench.Goal{AtMost: true, Value: 1.2},
			Notes: label + ": upload complete → master playlist and its first rendition's playlist in the store"}, err)
		addFigure(t, rep, bench.Figure{Section: "transcode " + label, Name: figLadder, Unit: "CPU s",
			BaselineName: "one ffmpeg, whole ladder, one decode", Rounds: ladder, Goal: bench.Goal{AtMost: true, Value: 1.15},
			Notes: label + ": CPU of the transcode function and its ffmpeg runs (segment upload and posters included)"}, err)
	}
	recordProcesses(t, rep, "transcode", map[string]float64{"transcode": mediaSeconds, "upload-finalize": mediaSeconds},
		"upload", "upload-finalize", "transcode")
}

type pipelineResult struct {
	playable, ready time.Duration
	// Since the upload returned: meta.json written (finalize done), the
	// lowest rung's job claimed it (connector delivery), its rendition
	// recorded (encode and segment upload done); playable follows once
	// the manifests list it.
	finalized, claimed, encoded time.Duration
	cpu                         float64 // transcode function CPU seconds for the ladder
	v                           *meta.Video
}

// pipelineRound uploads clip and times it to playable and to complete
// (every rendition in).
func pipelineRound(ctx context.Context, s *ingestStack, c *tusclient.Client, clip string) (pipelineResult, error) {
	var r pipelineResult
	cpu0 := 0.0
	if u, err := fnUsage("transcode"); err == nil { // not started before its first job
		cpu0 = u.CPU
	}
	loc, err := c.Upload(ctx, clip, map[string]string{"filetype": "video/mp4"})
	if err != nil {
		return r, err
	}
	start := time.Now()
	id := videoid.FromUpload(path.Base(loc))
	bucket := s.env.Config.MediaBucket
	deadline := start.Add(15 * time.Minute)
	reconciled := false
	for r.playable == 0 {
		if time.Now().After(deadline) {
			return r, fmt.Errorf("video %s not playable within 15 min", id)
		}
		if !reconciled && r.finalized == 0 && time.Since(start) > time.Minute {
			// The completion event never came (versitygw has been seen to
			// send it with a corrupted bucket and key): the reconciler is
			// what finalizes such an upload in production, so the round
			// goes on, slow, instead of hanging.
			res, err := http.Post(s.gateway+"/function/upload-finalize/reconcile", "application/json", nil)
			if err != nil {
				return r, err
			}
			res.Body.Close()
			reconciled = true
			s.t.Logf("bench: video %s: no finalize a minute after the upload; ran the reconciler (the round's time to playable includes that minute)", id)
		}
		if first, err := firstVariant(ctx, s.st, bucket, id); err == nil {
			if _, err := s.st.Stat(ctx, bucket, first); err == nil {
				r.playable = time.Since(start)
				break
			}
		}
		v, _, err := s.metas.Get(ctx, id)
		if err == nil && (v.Status == meta.Failed || v.Status == meta.Rejected) {
			return r, fmt.Errorf("video %s: %s", id, v.Status)
		}
		if err == nil {
			phase := func(d *time.Duration) {
				if *d == 0 {
					*d = time.Since(start)
				}
			}
			phase(&r.finalized)
			if low := lowestRung(v); low != nil && low.State != meta.RenditionPlanned {
				phase(&r.claimed)
				if low.State == meta.RenditionReady {
					phase(&r.encoded)
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	for {
		v, _, err := s.metas.Get(ctx, id)
		if err == nil && v.Status == meta.Complete {
			r.ready, r.v = time.Since(start), v
			break
		}
		if err == nil && (v.Status == meta.Failed || v.Status == meta.Rejected) || time.Now().After(deadline) {
			return r, fmt.Errorf("video %s: not complete (%v)", id, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	u, err := fnUsage("transcode")
	if err != nil {
		return r, err
	}
	if r.cpu = u.CPU - cpu0; r.cpu <= 0 {
		return r, fmt.Errorf("transcode CPU went from %.2f to %.2f s: was the function restarted?", cpu0, u.CPU)
	}
	return r, nil
}

// lowestRung is v's smallest video rendition, nil before it is planned.
func lowestRung(v *meta.Video) *meta.Rendition {
	var low *meta.Rendition
	for i, r := range v.Renditions {
		if r.Kind == "video" && (low == nil || r.Height < low.Height) {
			low = &v.Renditions[i]
		}
	}
	return low
}

// firstVariant is the key of the first variant playlist the master lists.
func firstVariant(ctx context.Context, st *storage.Store, bucket, id string) (string, error) {
	rc, _, err := st.Get(ctx, bucket, topology.VideoKey(id, topology.MasterFile), 0, -1)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return "", err
	}
	for l := range strings.Lines(string(b)) {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			return topology.VideoKey(id, path.Join(path.Dir(topology.MasterFile), l)), nil
		}
	}
	return "", errors.New("master playlist lists no variant yet")
}

// rawFFmpeg is the baseline: the wall time of ffmpeg encoding the lowest
// rung alone, and the CPU seconds of one ffmpeg encoding the whole ladder
// from one decode, both from the local file with the function's settings.
func rawFFmpeg(ctx context.Context, clip string, v *meta.Video) (time.Duration, float64, error) {
	lowest := lowestRung(v)
	if lowest == nil {
		return 0, 0, errors.New("no video rendition planned")
	}
	one, err := encode.Args(encode.Spec{Input: clip, Rendition: *lowest, Probe: *v.Probe})
	if err != nil {
		return 0, 0, err
	}
	start := time.Now()
	if _, err := runFFmpeg(ctx, one); err != nil {
		return 0, 0, err
	}
	raw := time.Since(start)
	all, err := encode.LadderArgs(clip, v.Renditions, *v.Probe, "")
	if err != nil {
		return 0, 0, err
	}
	cpu, err := runFFmpeg(ctx, all)
	return raw, cpu, err
}

// runFFmpeg runs ffmpeg in a fresh directory and returns its CPU seconds.
func runFFmpeg(ctx context.Context, args []string) (float64, error) {
	dir, err := os.MkdirTemp("", "pulsevault-bench-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	for _, a := range args {
		if strings.HasSuffix(a, "/"+topology.PlaylistFile) {
			if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(a)), 0o700); err != nil {
				return 0, err
			}
		}
	}
	cmd := exec.CommandContext(ctx, "ffmpeg", args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("ffmpeg: %v: %s", err, out)
	}
	st := cmd.ProcessState
	return (st.UserTime() + st.SystemTime()).Seconds(), nil
}
