package encode

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"regexp"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/mieweb/pulsevault/shared/audit/event"
	"github.com/mieweb/pulsevault/shared/media/ladder"
	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/platform/logging"
	"github.com/mieweb/pulsevault/shared/storage"
)

// Worker runs transcode jobs. Its fields are required except Log.
type Worker struct {
	Store         *storage.Store
	Meta          *meta.Store
	Audit         *event.Publisher
	Bucket        string // media bucket (Object Lock)
	RetentionDays int    // COMPLIANCE retention of every object written
	Config        Config
	Log           *slog.Logger // nil discards; pass the function's redacting logger
	// Metrics receives the worker's metrics (NewMetrics on the function's
	// registry); nil counts them where nobody scrapes.
	Metrics *Metrics
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
	var original meta.Original
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
		probe, original = *v.Probe, *v.Original
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
			w.metrics().seconds.WithLabelValues(r.Name).Observe(time.Since(start).Seconds())
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
			w.metrics().failures.WithLabelValues(r.Name, te.Code, final).Inc()
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

// discardLog stands in for a Worker without Log.
var discardLog = slog.New(slog.DiscardHandler)

func (w *Worker) log() *slog.Logger {
	if w.Log != nil {
		return w.Log
	}
	return discardLog
}

func (w *Worker) retention() *storage.Retention {
	r := storage.Compliance(w.RetentionDays)
	return &r
}
