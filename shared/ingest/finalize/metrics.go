package finalize

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mieweb/pulsevault/shared/platform/loopback"
)

// metrics are one Finalizer's, registered on Options.Registerer (the
// upload-finalize function's own registry). Rejection reasons are the
// package's fixed codes, so labels stay bounded and carry no ids.
type metrics struct {
	uploadsCompleted prometheus.Counter
	uploadBytes      prometheus.Counter
	uploadsRejected  *prometheus.CounterVec
	finalizeSeconds  *prometheus.HistogramVec
	eventMismatches  prometheus.Counter
	loopbackRefused  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		uploadsCompleted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pulsevault_uploads_completed_total",
			Help: "Uploads that became videos: probed, original locked, meta.json written.",
		}),
		uploadBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pulsevault_upload_bytes_total",
			Help: "Bytes of the originals of completed uploads.",
		}),
		uploadsRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pulsevault_uploads_rejected_total",
			Help: "Uploads rejected by finalize, by reason code.",
		}, []string{"reason"}),
		finalizeSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pulsevault_finalize_seconds",
			Help:    "Time to finalize one upload (probe, copy, meta.json, jobs, audit), by outcome: finalized or rejected.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300},
		}, []string{"outcome"}),
		eventMismatches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pulsevault_finalize_event_mismatches_total",
			Help: "Bucket notifications of a finished upload that did not match the stored object; each one made finalize sweep the staged uploads.",
		}),
		loopbackRefused: loopback.NewRefusedCounter(),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.uploadsCompleted, m.uploadBytes, m.uploadsRejected, m.finalizeSeconds, m.eventMismatches, m.loopbackRefused} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// observe records a Finalize call that did its work; skips and failures
// (retried later) are not latencies of a finalize.
func (m *metrics) observe(out Outcome, err error, start time.Time) {
	if err != nil || out.Skipped != "" {
		return
	}
	outcome := "finalized"
	if out.Reason != "" {
		outcome = "rejected"
	}
	m.finalizeSeconds.WithLabelValues(outcome).Observe(time.Since(start).Seconds())
}
