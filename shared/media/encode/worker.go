package encode

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mieweb/pulsevault/shared/audit/event"
	"github.com/mieweb/pulsevault/shared/media/ladder"
	"github.com/mieweb/pulsevault/shared/media/manifest"
	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/platform/logging"
	"github.com/mieweb/pulsevault/shared/platform/loopback"
	"github.com/mieweb/pulsevault/shared/storage"
	"github.com/mieweb/pulsevault/shared/topology"
)

// Metrics, on the default registry. Rendition names come from the planned
// ladder (checked against meta.json before use), so labels stay bounded.
var (
	seconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "pulsevault_transcode_seconds",
		Help:    "Wall time of successful transcode jobs, from start to rendition ready, by rendition.",
		Buckets: []float64{0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800},
	}, []string{"rendition"})
	failures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pulsevault_transcode_failures_total",
		Help: "Failed transcode attempts by rendition, reason code and whether the failure was final (rendition marked failed).",
	}, []string{"rendition", "reason", "final"})
	timeToPlayable = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "pulsevault_time_to_playable_seconds",
		Help:    "From meta.json's creation (upload finalized) to the video's first playable status (ready or complete).",
		Buckets: []float64{1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600},
	})

	cpuSeconds = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pulsevault_transcode_cpu_seconds_total",
		Help: "CPU seconds (user + system) of ffmpeg runs, by the renditions one run encodes (\"240p\", or \"360p+480p\" for a group).",
	}, []string{"renditions"})
)

func init() { prometheus.MustRegister(seconds, failures, timeToPlayable, cpuSeconds) }

func playable(s meta.Status) bool { return s == meta.Ready || s == meta.Complete }

// Worker runs transcode jobs. Its fields are required except Log.
type Worker struct {
	Store         *storage.Store
	Meta          *meta.Store
	Audit         *event.Publisher
	Bucket        string // media bucket (Object Lock)
	RetentionDays int    // COMPLIANCE retention of every object written
	Config        Config
	Log           *slog.Logger
}

// Outcomes of Result.
const (
	OutcomeDone   = "done"   // the rendition is ready
	OutcomeNoop   = "noop"   // nothing to do (already ready, video rejected)
	OutcomeRetry  = "retry"  // failed; worth another delivery
	OutcomeFailed = "failed" // failed for good; the rendition is marked failed
)

// Result is how a job ended. Status is the HTTP answer for the connector:
// 200 acks, 5xx asks for a redelivery (dead-lettered after the last one),
// 400/422 dead-letters at once.
type Result struct {
	Status  int    `json:"-"`
	Outcome string `json:"outcome"`
	Code    string `json:"code,omitempty"`
}

var renditionRe = regexp.MustCompile(`^[a-z0-9]{1,16}$`)

// errNoop and errSkip stop a meta.Update without writing.
var (
	errNoop = errors.New("noop")
	errSkip = errors.New("skip")
)

// Do runs job; delivered is the delivery count (1 on the first), so the
// last allowed delivery marks the rendition failed instead of retrying.
func (w *Worker) Do(ctx context.Context, job ladder.Job, delivered int) Result {
	log := logging.With(ctx, w.log()).With("video", job.Video, "rendition", job.Rendition, "delivery", delivered)
	if uuid.Validate(job.Video) != nil || !renditionRe.MatchString(job.Rendition) {
		log = logging.With(ctx, w.log()).With("delivery", delivered) // the job's fields may be anything: keep them out of the log
		log.Warn("transcode: malformed job")
		return Result{Status: http.StatusBadRequest, Outcome: OutcomeFailed, Code: "bad-job"}
	}
	final := delivered >= w.Config.MaxDeliver
	start := time.Now()

	var group []meta.Rendition // what this job encodes: one rendition, or a group sharing one decode
	var probe meta.Probe
	var original string
	var unpublished bool // nothing to encode, but the manifests or the status lag behind meta.json
	_, err := w.Meta.Update(ctx, job.Video, func(v *meta.Video) error {
		unpublished = false
		if v.Status == meta.Rejected {
			return errNoop
		}
		var err error
		if group, err = Claim(v, job.Rendition, w.Config.Fanout); err != nil {
			unpublished = errors.Is(err, errNoop) && unlisted(v)
			return err
		}
		probe, original = *v.Probe, v.Original.Key
		settle(v)
		return nil
	})
	switch {
	case errors.Is(err, errNoop) && unpublished:
		// Ready but not listed: a worker died between recording a
		// rendition and publishing the manifests. Publish (and settle) now,
		// or the video would never become ready.
		if err := w.publishManifests(ctx, job.Video, nil); err != nil {
			log.Error("transcode: publishing the manifests failed", "err", err)
			return Result{Status: http.StatusServiceUnavailable, Outcome: OutcomeRetry, Code: CodeStore}
		}
		log.Info("transcode: nothing to encode; manifests published")
		return Result{Status: http.StatusOK, Outcome: OutcomeNoop, Code: "published"}
	case errors.Is(err, errNoop):
		log.Info("transcode: nothing to do")
		return Result{Status: http.StatusOK, Outcome: OutcomeNoop}
	case errors.Is(err, errClaimed):
		// The group that claimed it is redelivered if its worker dies.
		log.Info("transcode: encoded by another job's group")
		return Result{Status: http.StatusOK, Outcome: OutcomeNoop, Code: "claimed"}
	case errors.Is(err, meta.ErrNotFound):
		log.Warn("transcode: no such video")
		return Result{Status: http.StatusUnprocessableEntity, Outcome: OutcomeFailed, Code: "unknown-video"}
	case errors.Is(err, errUnknownRendition):
		log.Warn("transcode: rendition not planned")
		return Result{Status: http.StatusUnprocessableEntity, Outcome: OutcomeFailed, Code: "unknown-rendition"}
	case errors.Is(err, errNotFinalized):
		log.Warn("transcode: video has no original or probe")
		return Result{Status: http.StatusUnprocessableEntity, Outcome: OutcomeFailed, Code: "not-finalized"}
	case err != nil:
		log.Error("transcode: meta.json update failed", "err", err)
		return Result{Status: http.StatusServiceUnavailable, Outcome: OutcomeRetry, Code: CodeStore}
	}

	if len(group) == 1 {
		err = w.transcode(ctx, log, job.Video, group[0], probe, original)
	} else {
		// A group with the audio is the lowest rung's: it runs at full
		// priority. The higher rungs' group yields to it.
		nice := w.Config.GroupNice
		if slices.ContainsFunc(group, func(r meta.Rendition) bool { return r.Kind == "audio" }) {
			nice = 0
		}
		log = log.With("group", len(group))
		err = w.transcodeGroup(ctx, log, job.Video, group, probe, original, nice)
	}
	if err == nil {
		for _, r := range group {
			seconds.WithLabelValues(r.Name).Observe(time.Since(start).Seconds())
		}
		log.Info("transcode: rendition ready", "seconds", math.Round(time.Since(start).Seconds()*1000)/1000)
		return Result{Status: http.StatusOK, Outcome: OutcomeDone}
	}
	var te *Error
	if !errors.As(err, &te) {
		te = &Error{Code: CodeStore, Err: err}
	}
	count := func(final string) {
		for _, r := range group {
			failures.WithLabelValues(r.Name, te.Code, final).Inc()
		}
	}
	if te.Code == CodeCancelled {
		// The invocation is over (timeout or the caller left): not the
		// job's fault, and nobody reads the answer.
		count("false")
		log.Warn("transcode: cancelled")
		return Result{Status: http.StatusServiceUnavailable, Outcome: OutcomeRetry, Code: te.Code}
	}
	if !te.Permanent && !final {
		count("false")
		log.Warn("transcode: attempt failed; will be retried", "code", te.Code, "err", te.Err)
		return Result{Status: http.StatusServiceUnavailable, Outcome: OutcomeRetry, Code: te.Code}
	}
	count("true")
	log.Warn("transcode: rendition failed", "code", te.Code, "permanent", te.Permanent, "err", te.Err)
	status := http.StatusUnprocessableEntity
	if !te.Permanent {
		status = http.StatusInternalServerError // last delivery: the connector dead-letters it
	}
	// Every claimed rendition not yet ready fails with the group: nobody
	// else will encode it (their own jobs answered "claimed").
	for _, r := range group {
		if err := w.fail(ctx, job.Video, r.Name, te); err != nil {
			log.Error("transcode: recording the failure failed", "err", err)
			return Result{Status: http.StatusServiceUnavailable, Outcome: OutcomeRetry, Code: CodeStore}
		}
	}
	return Result{Status: status, Outcome: OutcomeFailed, Code: te.Code}
}

// Fan-out policies (TRANSCODE_FANOUT).
const (
	FanoutRendition = "rendition" // every job encodes its own rendition
	FanoutGrouped   = "grouped"   // the lowest video rung with the audio; a higher rung's job encodes every unclaimed higher rung from one decode
)

// Claim decides, inside a meta.json update, what the job for rendition
// name encodes under fanout, and marks it running. Under grouped, the job
// for the lowest video rung also claims (Rendition.Group = name) the audio
// rendition when no job has started it: a video is playable only with its
// audio settled, and the jobs run in plan order (audio last) when the
// connector delivers one at a time. The job for a video rung above the
// lowest claims its own rung and every higher video rung that is neither
// ready nor claimed by another job. A redelivered job re-runs what it
// claimed that is not ready. It returns an error wrapping errNoop (nothing
// to do) or errClaimed (another job's group encodes it) to stop the update
// without writing.
func Claim(v *meta.Video, name, fanout string) ([]meta.Rendition, error) {
	i := slices.IndexFunc(v.Renditions, func(r meta.Rendition) bool { return r.Name == name })
	if i < 0 {
		return nil, errUnknownRendition
	}
	self := &v.Renditions[i]
	lowest := slices.IndexFunc(v.Renditions, func(r meta.Rendition) bool { return r.Kind == "video" })
	if fanout == FanoutGrouped && self.Kind == "audio" && self.Group != "" && self.Group != name &&
		self.State != meta.RenditionReady && self.State != meta.RenditionFailed {
		return nil, errClaimed
	}
	if fanout != FanoutGrouped || self.Kind != "video" || i == lowest {
		var out []meta.Rendition
		if self.State != meta.RenditionReady {
			self.State, self.Progress, self.Error, self.Group, self.Listed = meta.RenditionRunning, 0, "", "", false
			out = append(out, *self)
		}
		if fanout == FanoutGrouped && i == lowest {
			for j := range v.Renditions {
				a := &v.Renditions[j]
				if a.Kind == "audio" && a.State != meta.RenditionReady && a.State != meta.RenditionFailed &&
					(a.Group == name || a.Group == "" && a.State == meta.RenditionPlanned) {
					a.State, a.Progress, a.Error, a.Group, a.Listed = meta.RenditionRunning, 0, "", name, false
					out = append(out, *a)
				}
			}
		}
		if len(out) == 0 {
			return nil, errNoop
		}
		if v.Original == nil || v.Original.Key == "" || v.Probe == nil {
			return nil, errNotFinalized
		}
		return out, nil
	}
	if self.Group != "" && self.Group != name && self.State != meta.RenditionReady && self.State != meta.RenditionFailed {
		return nil, errClaimed
	}
	var idx []int
	for j := i; j < len(v.Renditions); j++ {
		r := v.Renditions[j]
		switch {
		case r.Kind != "video" || r.State == meta.RenditionReady:
		case j == i, r.Group == name:
			idx = append(idx, j)
		case r.Group == "" && self.State != meta.RenditionReady:
			// A ready leader only finishes what it claimed before; new
			// claims are for a job that encodes its own rung too.
			idx = append(idx, j)
		}
	}
	if len(idx) == 0 {
		if self.State == meta.RenditionReady {
			return nil, errNoop
		}
		return nil, errClaimed
	}
	if v.Original == nil || v.Original.Key == "" || v.Probe == nil {
		return nil, errNotFinalized
	}
	out := make([]meta.Rendition, 0, len(idx))
	for _, j := range idx {
		r := &v.Renditions[j]
		r.State, r.Progress, r.Error, r.Group, r.Listed = meta.RenditionRunning, 0, "", name, false
		out = append(out, *r)
	}
	return out, nil
}

var (
	errUnknownRendition = errors.New("rendition not planned")
	errNotFinalized     = errors.New("video not finalized")
	errClaimed          = errors.New("claimed by another job's group")
)

func (w *Worker) log() *slog.Logger {
	if w.Log != nil {
		return w.Log
	}
	return slog.Default()
}

func (w *Worker) retention() *storage.Retention {
	r := storage.Compliance(w.RetentionDays)
	return &r
}

// prepare makes a job's scratch directory (dir, with out inside for
// ffmpeg's output) and finds the original. The caller removes dir.
func (w *Worker) prepare(ctx context.Context, original string) (dir, out string, src loopback.Object, err error) {
	if dir, err = w.scratch(); err != nil {
		return "", "", src, &Error{Code: CodeFailed, Err: err}
	}
	out = filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o700); err != nil {
		os.RemoveAll(dir)
		return "", "", src, &Error{Code: CodeFailed, Err: err}
	}
	if src, err = loopback.Stored(ctx, w.Store, w.Bucket, original); err != nil {
		os.RemoveAll(dir)
		return "", "", src, &Error{Code: CodeUnreachable, Err: err} // as ffmpeg failing to read it would be
	}
	return dir, out, src, nil
}

// serve serves the original to the one ffmpeg process fn starts with the
// input and bind it is given (no presigned URL in ffmpeg's argv): from the
// store, over loopback, until fn returns.
func serve(ctx context.Context, src loopback.Object, fn func(input string, bind func(int) error) error) error {
	srv, err := loopback.Serve(ctx, src)
	if err != nil {
		return &Error{Code: CodeFailed, Err: err}
	}
	defer srv.Close()
	return fn(srv.URL(), srv.Bind)
}

// transcode encodes, uploads and records one rendition.
func (w *Worker) transcode(ctx context.Context, log *slog.Logger, id string, rend meta.Rendition, probe meta.Probe, original string) error {
	dir, out, src, err := w.prepare(ctx, original)
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	stopProgress := w.reportProgress(ctx, log, id, rend.Name)
	report := func(p Progress) { stopProgress.push(p.Percent(time.Duration(probe.Duration * float64(time.Second)))) }
	err = serve(ctx, src, func(input string, bind func(int) error) error {
		return Run(ctx, Spec{Input: input, Bind: bind, Dir: out, Rendition: rend, Probe: probe, Preset: w.Config.Preset}, report)
	})
	stopProgress.stop()
	if err != nil {
		return err
	}
	tl, err := w.record(ctx, id, rend, probe, out)
	if err != nil {
		return err
	}
	if err := w.publishManifests(ctx, id, map[string]manifest.Timeline{rend.Name: tl}); err != nil {
		// The rendition is recorded; a later rendition (or a redelivery,
		// since this answers 5xx) writes the manifests again.
		return &Error{Code: CodeStore, Err: fmt.Errorf("manifests: %w", err)}
	}
	// Posters come after the rendition is playable: they must not delay it.
	if rend.Kind == "video" {
		w.ensurePosters(ctx, log, id, src, probe, dir)
	}
	return nil
}

// transcodeGroup encodes several renditions with one ffmpeg process (one
// decode of the original) at the given nice value, then uploads and
// records each, in group order, and writes the manifests once.
func (w *Worker) transcodeGroup(ctx context.Context, log *slog.Logger, id string, group []meta.Rendition, probe meta.Probe, original string, nice int) error {
	dir, out, src, err := w.prepare(ctx, original)
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	names := make([]string, len(group))
	for i, r := range group {
		names[i] = r.Name
	}
	stopProgress := w.reportProgress(ctx, log, id, names...)
	report := func(p Progress) { stopProgress.push(p.Percent(time.Duration(probe.Duration * float64(time.Second)))) }
	err = serve(ctx, src, func(input string, bind func(int) error) error {
		return RunGroup(ctx, GroupSpec{Input: input, Bind: bind, Dir: out, Renditions: group, Probe: probe, Preset: w.Config.Preset, Nice: nice}, report)
	})
	stopProgress.stop()
	if err != nil {
		return err
	}
	known := map[string]manifest.Timeline{}
	for _, r := range group {
		tl, err := w.record(ctx, id, r, probe, filepath.Join(out, r.Name))
		if err != nil {
			return err
		}
		known[r.Name] = tl
	}
	if err := w.publishManifests(ctx, id, known); err != nil {
		return &Error{Code: CodeStore, Err: fmt.Errorf("manifests: %w", err)}
	}
	w.ensurePosters(ctx, log, id, src, probe, dir)
	return nil
}

// record checks and uploads one rendition ffmpeg wrote into out, emits its
// audit event and marks it ready in meta.json. It does not make the video
// ready or complete: settle counts listed renditions only, and only
// publishManifests lists them.
func (w *Worker) record(ctx context.Context, id string, rend meta.Rendition, probe meta.Probe, out string) (manifest.Timeline, error) {
	files, tl, track, err := readOutput(out)
	if err != nil {
		return tl, &Error{Code: CodeBadOutput, Err: err}
	}
	if err := w.upload(ctx, id, rend, out, files, tl); err != nil {
		return tl, &Error{Code: CodeStore, Err: err}
	}
	// The audit event goes out before meta.json says ready: once ready, a
	// redelivery is a no-op and would never emit it.
	if err := w.Audit.Publish(ctx, event.Event{
		ID: eventID(id, rend.Name, "done"), Action: event.TranscodeDone, Object: id, Outcome: event.Success,
	}); err != nil {
		return tl, &Error{Code: CodeStore, Err: fmt.Errorf("audit: %w", err)}
	}
	peak, avg := tl.Bandwidth()
	_, err = w.Meta.Update(ctx, id, func(v *meta.Video) error {
		r := find(v, rend.Name)
		if r == nil {
			return errUnknownRendition
		}
		r.State, r.Progress, r.Error, r.Listed = meta.RenditionReady, 100, "", false
		r.Playlist = topology.RenditionKey(id, rend.Name, topology.PlaylistFile)
		r.Codecs, r.Bandwidth, r.Average = track.Codec, peak, avg
		if track.Kind == "video" {
			r.Width, r.Height = track.Width, track.Height
			r.FrameRate = math.Round(Rate(probe.FPS).Float()*1000) / 1000
		}
		settle(v)
		return nil
	})
	if err != nil {
		return tl, &Error{Code: CodeStore, Err: err}
	}
	return tl, nil
}

func find(v *meta.Video, name string) *meta.Rendition {
	for i := range v.Renditions {
		if v.Renditions[i].Name == name {
			return &v.Renditions[i]
		}
	}
	return nil
}

// settle derives the video's status from its renditions, counting a ready
// rendition only once the manifests in the store list it (Listed, set by
// publishManifests): ready once a listed video rendition is there and the
// audio rendition, if planned, is listed or failed; complete when every
// planned rendition has ended, at least one video rendition is ready and
// every ready rendition is listed; failed when every rendition ended and no
// video rendition is ready (that needs no manifest). So a client never sees
// ready or complete before the manifests say so.
func settle(v *meta.Video) {
	if v.Status == meta.Rejected || len(v.Renditions) == 0 {
		return
	}
	ended, videoReady, allListed, videoListed, audioListed := true, false, true, false, true
	for _, r := range v.Renditions {
		ready := r.State == meta.RenditionReady
		listed := ready && r.Listed
		ended = ended && (ready || r.State == meta.RenditionFailed)
		allListed = allListed && (!ready || listed)
		if r.Kind == "audio" {
			audioListed = audioListed && (listed || r.State == meta.RenditionFailed)
		} else {
			videoReady = videoReady || ready
			videoListed = videoListed || listed
		}
	}
	prev := v.Status
	switch {
	case ended && !videoReady:
		v.Status, v.Reason = meta.Failed, "transcode-failed"
	case ended && allListed:
		v.Status = meta.Complete
	case videoListed && audioListed:
		v.Status = meta.Ready
	default:
		v.Status = meta.Processing
	}
	if v.Status != meta.Failed && prev == meta.Failed {
		v.Reason = ""
	}
}

// fail marks the rendition failed with te's code, keeps the sanitized
// stderr tail beside the rendition, emits the audit event and rewrites the
// manifests (a failed audio rendition can make the video playable).
func (w *Worker) fail(ctx context.Context, id, name string, te *Error) error {
	_, err := w.failUnless(ctx, id, name, te, func(r *meta.Rendition) bool { return r.State == meta.RenditionReady })
	return err
}

// failUnless is fail for a rendition that keep does not protect (keep
// always protects ready ones: a group member recorded before the group
// failed). keep is checked again inside the conditional update, so a
// concurrent change wins. It reports whether it marked the rendition failed.
func (w *Worker) failUnless(ctx context.Context, id, name string, te *Error, keep func(*meta.Rendition) bool) (bool, error) {
	v, _, err := w.Meta.Get(ctx, id)
	if err != nil {
		return false, err
	}
	if r := find(v, name); r != nil && keep(r) {
		// A group member recorded before the group failed: it stays
		// ready, and the manifests must list it (they may be what failed).
		return false, w.publishManifests(ctx, id, nil)
	}
	if te.Tail != "" {
		tail := []byte(te.Code + "\n" + te.Tail + "\n")
		if _, err := w.Store.PutBytes(ctx, w.Bucket, topology.RenditionKey(id, name, topology.ErrorFile), tail,
			storage.PutOptions{ContentType: "text/plain; charset=utf-8", Retention: w.retention()}); err != nil {
			return false, err
		}
	}
	code := "transcode." + name + "." + te.Code
	if _, err := w.Meta.Update(ctx, id, func(v *meta.Video) error {
		r := find(v, name)
		if r == nil {
			return errUnknownRendition
		}
		if r.State == meta.RenditionReady || keep(r) {
			return errSkip // a group member recorded before the group failed
		}
		r.State, r.Progress, r.Error = meta.RenditionFailed, 0, te.Code
		if !slices.Contains(v.Errors, code) {
			v.Errors = append(v.Errors, code)
		}
		settle(v)
		return nil
	}); errors.Is(err, errSkip) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	if err := w.Audit.Publish(ctx, event.Event{
		ID: eventID(id, name, "failed"), Action: event.TranscodeFailed, Object: id, Outcome: event.Failure, Reason: te.Code,
	}); err != nil {
		return true, err
	}
	return true, w.publishManifests(ctx, id, nil)
}

// eventID is stable per video, rendition and outcome, so redelivered work
// emits the same audit event (deduplicated by JetStream and audit-append).
func eventID(id, rendition, what string) string {
	return uuid.NewSHA1(uuid.NameSpaceURL, []byte("pulsevault:transcode:"+id+"/"+rendition+"/"+what)).String()
}

// progressReporter writes progress to meta.json at most every interval
// and only on a change of a whole percent, off ffmpeg's path.
type progressReporter struct {
	latest chan float64
	done   chan struct{}
	wg     sync.WaitGroup
}

func (p *progressReporter) push(pct float64) {
	select {
	case <-p.latest:
	default:
	}
	select {
	case p.latest <- pct:
	default:
	}
}

func (p *progressReporter) stop() { close(p.done); p.wg.Wait() }

func (w *Worker) reportProgress(ctx context.Context, log *slog.Logger, id string, names ...string) *progressReporter {
	p := &progressReporter{latest: make(chan float64, 1), done: make(chan struct{})}
	p.wg.Go(func() {
		var last time.Time
		written := 0.0
		for {
			select {
			case <-p.done:
				return
			case pct := <-p.latest:
				pct = math.Floor(pct)
				if time.Since(last) < w.Config.ProgressInterval || pct < written+1 || pct >= 100 {
					continue
				}
				last = time.Now()
				_, err := w.Meta.Update(ctx, id, func(v *meta.Video) error {
					changed := false
					for _, name := range names {
						if r := find(v, name); r != nil && r.State == meta.RenditionRunning && r.Progress < pct {
							r.Progress, changed = pct, true
						}
					}
					if !changed {
						return errSkip
					}
					return nil
				})
				if err != nil && !errors.Is(err, errSkip) {
					log.Warn("transcode: progress update failed", "err", err)
					continue
				}
				written = pct
			}
		}
	})
	return p
}

// scratch makes this job's temp dir, first removing those of processes
// that died without cleaning up (a SIGKILLed replica).
func (w *Worker) scratch() (string, error) {
	base := w.Config.TempDir
	if base == "" {
		base = os.TempDir()
	}
	root := filepath.Join(base, "pulsevault-transcode")
	if err := os.MkdirAll(root, 0o700); err != nil {
		return "", err
	}
	if err := privateDir(root); err != nil {
		return "", err
	}
	if ents, err := os.ReadDir(root); err == nil {
		for _, e := range ents {
			pid, _, ok := strings.Cut(e.Name(), "-")
			n, err := strconv.Atoi(pid)
			if ok && err == nil && n > 0 && n != os.Getpid() && syscall.Kill(n, 0) == syscall.ESRCH {
				os.RemoveAll(filepath.Join(root, e.Name()))
			}
		}
	}
	return os.MkdirTemp(root, strconv.Itoa(os.Getpid())+"-")
}

// readOutput checks what ffmpeg wrote: the media playlist's segments in
// order, their timeline and the init segment's track.
func readOutput(dir string) (segs []string, tl manifest.Timeline, track manifest.Track, err error) {
	pl, err := os.ReadFile(filepath.Join(dir, topology.PlaylistFile))
	if err != nil {
		return nil, tl, track, err
	}
	sc := bufio.NewScanner(bytes.NewReader(pl))
	sawMap, ended := false, false
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		switch {
		case l == `#EXT-X-MAP:URI="`+topology.InitFile+`"`:
			sawMap = true
		case l == "#EXT-X-ENDLIST":
			ended = true
		case l != "" && !strings.HasPrefix(l, "#"):
			if l != topology.SegmentFile(len(segs)) {
				return nil, tl, track, fmt.Errorf("playlist lists %q where %s was expected", l, topology.SegmentFile(len(segs)))
			}
			segs = append(segs, l)
		}
	}
	if !sawMap || !ended || len(segs) == 0 {
		return nil, tl, track, errors.New("playlist incomplete (no init map, end tag or segment)")
	}
	init, err := os.ReadFile(filepath.Join(dir, topology.InitFile))
	if err != nil {
		return nil, tl, track, err
	}
	if track, err = manifest.ParseInit(init); err != nil {
		return nil, tl, track, err
	}
	tl = manifest.Timeline{Timescale: track.Timescale, Channels: track.Channels, Rate: track.Rate}
	for _, s := range segs {
		b, err := os.ReadFile(filepath.Join(dir, s))
		if err != nil {
			return nil, tl, track, err
		}
		seg, err := manifest.ParseSegment(b, track)
		if err != nil {
			return nil, tl, track, fmt.Errorf("%s: %w", s, err)
		}
		tl.Segments = append(tl.Segments, seg)
	}
	return segs, tl, track, nil
}

var contentTypes = map[string]string{
	".m4s": "video/iso.segment", ".m3u8": "application/vnd.apple.mpegurl", ".json": "application/json",
	".mpd": "application/dash+xml", ".jpg": "image/jpeg",
}

func contentType(name, kind string) string {
	if name == topology.InitFile {
		return kind + "/mp4"
	}
	return contentTypes[filepath.Ext(name)]
}

// upload writes the rendition with retention: segments and init first,
// then the playlist and timeline that reference them.
func (w *Worker) upload(ctx context.Context, id string, rend meta.Rendition, dir string, segs []string, tl manifest.Timeline) error {
	ret := w.retention()
	put := func(name string) error {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return err
		}
		_, err = w.Store.Put(ctx, w.Bucket, topology.RenditionKey(id, rend.Name, name), f, st.Size(),
			storage.PutOptions{ContentType: contentType(name, rend.Kind), Retention: ret})
		return err
	}
	if err := parallel(ctx, w.Config.UploadParallel, append([]string{topology.InitFile}, segs...), put); err != nil {
		return err
	}
	if err := put(topology.PlaylistFile); err != nil {
		return err
	}
	b, err := json.Marshal(tl)
	if err != nil {
		return err
	}
	_, err = w.Store.PutBytes(ctx, w.Bucket, topology.RenditionKey(id, rend.Name, topology.TimelineFile), b,
		storage.PutOptions{ContentType: "application/json", Retention: ret})
	return err
}

// parallel runs fn over items, n at a time, and returns the first error.
func parallel(ctx context.Context, n int, items []string, fn func(string) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, max(n, 1))
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for _, it := range items {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := fn(it); err != nil {
				once.Do(func() { first = err; cancel() })
			}
		})
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return first
}

// ensurePosters writes poster.jpg and thumb.jpg when the video has none
// yet. A failure is logged, not returned: the next video rendition to land
// tries again, and a missing poster must not fail a playable rendition.
func (w *Worker) ensurePosters(ctx context.Context, log *slog.Logger, id string, src loopback.Object, probe meta.Probe, scratch string) {
	if _, err := w.Store.Stat(ctx, w.Bucket, topology.VideoKey(id, topology.PosterFile)); err == nil {
		return
	} else if !errors.Is(err, storage.ErrNotFound) {
		log.Warn("transcode: poster check failed", "err", err)
		return
	}
	dir := filepath.Join(scratch, "poster")
	if err := os.Mkdir(dir, 0o700); err != nil {
		log.Warn("transcode: poster failed", "err", err)
		return
	}
	if err := serve(ctx, src, func(input string, bind func(int) error) error { return Posters(ctx, input, bind, dir, probe) }); err != nil {
		code := CodeFailed
		var te *Error
		if errors.As(err, &te) {
			code = te.Code
		}
		log.Warn("transcode: poster failed", "code", code)
		return
	}
	for _, f := range []string{topology.ThumbFile, topology.PosterFile} { // poster last: its presence means both are in
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err == nil {
			_, err = w.Store.PutBytes(ctx, w.Bucket, topology.VideoKey(id, f), b,
				storage.PutOptions{ContentType: "image/jpeg", Retention: w.retention()})
		}
		if err != nil {
			log.Warn("transcode: poster upload failed", "err", err)
			return
		}
	}
}

// publishManifests writes the master playlist and the MPD from what
// meta.json says is ready, then records in meta.json (Listed) which
// renditions the stored manifests list and settles the video's status in
// that same conditional update: the status never runs ahead of the
// manifests.
//
// Manifests only ever grow. Each write is conditional on the version of the
// manifest read before meta.json (If-Match, or If-None-Match when there is
// none yet), and ready renditions stay ready, so a write that lands replaces
// a manifest built from an older (smaller) view of meta.json; a write that
// loses the race re-reads both and tries again. Every rendition recorded
// before this call's read of meta.json is therefore in the stored manifests
// when it returns nil, and stays there; renditions recorded after that read
// publish themselves: concurrent completions cannot leave a manifest missing
// a rendition, nor a rendition marked listed that a slower writer removed.
//
// The manifests are written without retention, like meta.json: they are
// rewritten as renditions land and derive entirely from locked objects.
func (w *Worker) publishManifests(ctx context.Context, id string, known map[string]manifest.Timeline) error {
	if known == nil {
		known = map[string]manifest.Timeline{}
	}
	for attempt := range 20 {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(attempt) * 10 * time.Millisecond):
			}
		}
		// The stored manifests first, then meta.json: what we write from
		// this view replaces only what was built from an older one.
		curMaster, err := w.current(ctx, topology.VideoKey(id, topology.MasterFile))
		if err != nil {
			return err
		}
		curMPD, err := w.current(ctx, topology.VideoKey(id, topology.MPDFile))
		if err != nil {
			return err
		}
		v, _, err := w.Meta.Get(ctx, id)
		if err != nil {
			return err
		}
		video, audio, ok := manifest.Playable(v)
		if !ok {
			return w.list(ctx, id, v, nil) // nothing to list; the status may still need settling
		}
		listed := append(slices.Clone(video), optionalRendition(audio)...)
		master := manifest.HLSMaster(video, audio)
		var reps []manifest.Rep
		var arep *manifest.Rep
		for _, r := range listed {
			tl, ok := known[r.Name]
			if !ok {
				if tl, err = w.timeline(ctx, id, r.Name); err != nil {
					return err
				}
				known[r.Name] = tl
			}
			if r.Kind == "audio" {
				arep = &manifest.Rep{Rendition: r, Timeline: tl}
			} else {
				reps = append(reps, manifest.Rep{Rendition: r, Timeline: tl})
			}
		}
		mpd, err := manifest.DASHMPD(reps, arep)
		if err != nil {
			return err
		}
		err = w.putManifest(ctx, topology.VideoKey(id, topology.MasterFile), master, curMaster, "application/vnd.apple.mpegurl")
		if err == nil {
			err = w.putManifest(ctx, topology.VideoKey(id, topology.MPDFile), mpd, curMPD, "application/dash+xml")
		}
		if errors.Is(err, storage.ErrPreconditionFailed) {
			continue // another writer got there first: rebuild from a newer view
		}
		if err != nil {
			return err
		}
		names := make([]string, len(listed))
		for i, r := range listed {
			names[i] = r.Name
		}
		return w.list(ctx, id, v, names)
	}
	return errors.New("manifests kept changing; giving up for now")
}

// storedManifest is a manifest as read from the store; etag "" means none.
type storedManifest struct {
	body []byte
	etag string
}

func (w *Worker) current(ctx context.Context, key string) (storedManifest, error) {
	rc, info, err := w.Store.Get(ctx, w.Bucket, key, 0, -1)
	if errors.Is(err, storage.ErrNotFound) {
		return storedManifest{}, nil
	}
	if err != nil {
		return storedManifest{}, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return storedManifest{}, err
	}
	return storedManifest{body: b, etag: info.ETag}, nil
}

// putManifest replaces cur with body unless they are equal, failing with
// storage.ErrPreconditionFailed if cur is no longer the stored version.
func (w *Worker) putManifest(ctx context.Context, key string, body []byte, cur storedManifest, contentType string) error {
	if cur.etag != "" && bytes.Equal(cur.body, body) {
		return nil
	}
	o := storage.PutOptions{ContentType: contentType, IfMatch: cur.etag, IfNoneMatch: cur.etag == ""}
	_, err := w.Store.PutBytes(ctx, w.Bucket, key, body, o)
	return err
}

// list marks names listed in meta.json (they are in the stored manifests)
// and settles the video's status, writing only if that changes something.
// v is a recent view, used to skip the update when there is nothing to do.
func (w *Worker) list(ctx context.Context, id string, v *meta.Video, names []string) error {
	apply := func(v *meta.Video) bool {
		changed := false
		for _, name := range names {
			if r := find(v, name); r != nil && r.State == meta.RenditionReady && !r.Listed {
				r.Listed, changed = true, true
			}
		}
		status, reason := v.Status, v.Reason
		settle(v)
		return changed || v.Status != status || v.Reason != reason
	}
	view := *v
	view.Renditions = slices.Clone(v.Renditions)
	if !apply(&view) {
		return nil
	}
	var became bool
	var created time.Time
	_, err := w.Meta.Update(ctx, id, func(v *meta.Video) error {
		was := v.Status
		if !apply(v) {
			return errSkip
		}
		became, created = !playable(was) && playable(v.Status), v.Created
		return nil
	})
	if errors.Is(err, errSkip) {
		return nil
	}
	if err == nil && became && !created.IsZero() {
		timeToPlayable.Observe(time.Since(created).Seconds())
	}
	return err
}

// unlisted reports whether meta.json says more than the manifests and the
// status do: a playable rendition not listed yet, or a stale status.
func unlisted(v *meta.Video) bool {
	if video, audio, ok := manifest.Playable(v); ok {
		for _, r := range append(video, optionalRendition(audio)...) {
			if !r.Listed {
				return true
			}
		}
	}
	view := *v
	view.Renditions = slices.Clone(v.Renditions)
	settle(&view)
	return view.Status != v.Status || view.Reason != v.Reason
}

func optionalRendition(r *meta.Rendition) []meta.Rendition {
	if r == nil {
		return nil
	}
	return []meta.Rendition{*r}
}

func (w *Worker) timeline(ctx context.Context, id, name string) (manifest.Timeline, error) {
	var tl manifest.Timeline
	rc, _, err := w.Store.Get(ctx, w.Bucket, topology.RenditionKey(id, name, topology.TimelineFile), 0, -1)
	if err != nil {
		return tl, err
	}
	defer rc.Close()
	if err := json.NewDecoder(rc).Decode(&tl); err != nil {
		return tl, fmt.Errorf("%s timeline: %w", name, err)
	}
	return tl, tl.Validate()
}

// Jobs is the rendition fan-out policy: one job per planned rendition, in
// plan order (lowest rung first, so it tends to be playable first).
func Jobs(id string, rs []meta.Rendition) []ladder.Job {
	out := make([]ladder.Job, 0, len(rs))
	for _, r := range rs {
		out = append(out, ladder.Job{Video: id, Rendition: r.Name})
	}
	return out
}
