package encode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mieweb/pulsevault/shared/bus"
	"github.com/mieweb/pulsevault/shared/media/ladder"
	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/platform/logging"
	"github.com/mieweb/pulsevault/shared/topology"
)

// CodeWorkerLost is the failure code of a rendition whose job was
// dead-lettered without its worker recording an outcome: the worker was
// killed (out of memory, node lost) on every delivery, or could not write
// the failure on the last one.
const CodeWorkerLost = "worker-lost"

// Bounds of one DrainDeadLetters call, so a scheduled call always ends
// well within its interval; the next call takes the rest.
const (
	DrainMaxMessages = 100
	DrainMaxTime     = 20 * time.Second
)

// drainAckWait is how long a message taken by a replica that then dies
// waits before another drain gets it.
const drainAckWait = time.Minute

// DrainReport counts what one DrainDeadLetters call did.
type DrainReport struct {
	Messages  int  `json:"messages"`  // dead letters handled and acked
	Failed    int  `json:"failed"`    // renditions marked failed
	Malformed int  `json:"malformed"` // messages that are not a job (acked, nothing to do)
	Errors    int  `json:"errors"`    // messages left for a later call (store or bus trouble)
	More      bool `json:"more"`      // stopped at a bound with messages possibly left
}

// DrainDeadLetters settles the renditions of transcode jobs the connector
// gave up on (published on subject, pulse.dlq.transcode, and kept by the
// stream that captures it): each rendition the dead job owned — its own
// unless another job's group claimed it, and every rendition its group
// claimed — that has not ended is marked failed with CodeWorkerLost
// through the same path as a final failure (conditional meta.json update,
// so a concurrent success wins; audit event; manifests and video status).
// It handles at most DrainMaxMessages messages in at most DrainMaxTime and
// is idempotent: a message is acked once handled, and a rendition that has
// ended is left alone. A message it could not handle is handed back for
// the next call and counted in Errors.
func (w *Worker) DrainDeadLetters(ctx context.Context, b *bus.Bus, subject string) (DrainReport, error) {
	var rep DrainReport
	ctx, cancel := context.WithTimeout(ctx, DrainMaxTime)
	defer cancel()
	js := b.JetStream()
	stream, err := js.StreamNameBySubject(ctx, subject)
	if err != nil {
		return rep, fmt.Errorf("transcode: dead letters: stream for %s: %w", subject, err)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
		Durable:       topology.DurableTranscodeDeadLetters,
		FilterSubject: subject,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       drainAckWait,
		MaxDeliver:    -1, // a message we cannot handle now waits for a later call
	})
	if err != nil {
		return rep, fmt.Errorf("transcode: dead letters: consumer on %s: %w", stream, err)
	}
	log := logging.With(ctx, w.log())
	for seen := 0; seen < DrainMaxMessages; {
		batch, err := cons.FetchNoWait(min(10, DrainMaxMessages-seen))
		if err != nil {
			return rep, fmt.Errorf("transcode: dead letters: fetch: %w", err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			seen++
			if ctx.Err() != nil {
				_ = m.Nak() // out of time: the next call takes it
				rep.More = true
				continue
			}
			failed, malformed, err := w.deadJob(ctx, m.Data())
			if err == nil {
				err = m.DoubleAck(ctx)
			}
			switch {
			case err != nil:
				rep.Errors++
				_ = m.NakWithDelay(5 * time.Second)
				log.Warn("transcode: dead letter not settled; left for the next call", "seq", seq(m), "err", err)
			case malformed:
				rep.Messages++
				rep.Malformed++
				log.Warn("transcode: dead letter is not a job; dropped", "seq", seq(m))
			default:
				rep.Messages++
				rep.Failed += failed
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return rep, fmt.Errorf("transcode: dead letters: fetch: %w", err)
		}
		if n == 0 || ctx.Err() != nil {
			break
		}
		if seen >= DrainMaxMessages {
			rep.More = true
		}
	}
	if rep.Messages > 0 || rep.Errors > 0 {
		log.Info("transcode: dead letters drained", "messages", rep.Messages, "failed", rep.Failed,
			"malformed", rep.Malformed, "errors", rep.Errors, "more", rep.More)
	}
	return rep, nil
}

func seq(m jetstream.Msg) uint64 {
	if md, err := m.Metadata(); err == nil {
		return md.Sequence.Stream
	}
	return 0
}

// deadJob marks failed what the dead job in data owned and has not ended,
// and returns how many renditions it marked, or malformed when data is not
// a job (nothing to do).
func (w *Worker) deadJob(ctx context.Context, data []byte) (failed int, malformed bool, err error) {
	var job ladder.Job
	if json.Unmarshal(data, &job) != nil || uuid.Validate(job.Video) != nil || !renditionRe.MatchString(job.Rendition) {
		return 0, true, nil
	}
	v, _, err := w.Meta.Get(ctx, job.Video)
	if errors.Is(err, meta.ErrNotFound) {
		return 0, false, nil // deleted, or never finalized: no rendition to settle
	} else if err != nil {
		return 0, false, err
	}
	if v.Status == meta.Rejected {
		return 0, false, nil
	}
	// The job's own rendition unless another job's group claimed it (that
	// job is still responsible), and every rendition its group claimed.
	owned := func(r *meta.Rendition) bool {
		if r.Name == job.Rendition {
			return r.Group == "" || r.Group == job.Rendition
		}
		return r.Group == job.Rendition
	}
	// Ended renditions stay as they are; one this drain failed before is
	// failed again (a no-op in meta.json) so that an audit event or manifest
	// write cut short then is completed.
	keep := func(r *meta.Rendition) bool {
		return r.State == meta.RenditionReady || !owned(r) ||
			r.State == meta.RenditionFailed && r.Error != CodeWorkerLost
	}
	te := &Error{Code: CodeWorkerLost, Err: errors.New("job dead-lettered")}
	for _, r := range v.Renditions {
		if !owned(&r) {
			continue
		}
		again := r.State == meta.RenditionFailed // by an earlier drain cut short
		ok, err := w.failUnless(ctx, job.Video, r.Name, te, keep)
		if err != nil {
			return failed, false, err
		}
		if ok && !again {
			failed++
			w.metrics().failures.WithLabelValues(r.Name, CodeWorkerLost, "true").Inc()
			logging.With(ctx, w.log()).Warn("transcode: rendition failed: its job was dead-lettered",
				"video", job.Video, "rendition", r.Name, "code", CodeWorkerLost)
		}
	}
	return failed, false, nil
}
