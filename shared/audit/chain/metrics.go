package chain

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are one writer's, registered on Options.Registerer (the
// audit-append function's own registry). No labels: the chain is one
// sequence.
type metrics struct {
	appended      prometheus.Counter
	chainLength   prometheus.Gauge
	appendSeconds prometheus.Histogram
	pending       prometheus.Gauge
	deadLettered  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		appended: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pulsevault_audit_appended_total",
			Help: "Audit events appended to the hash chain by this replica.",
		}),
		chainLength: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pulsevault_audit_chain_length",
			Help: "Sequence number of the last record this replica appended: the chain's length when it appended.",
		}),
		appendSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pulsevault_audit_append_seconds",
			Help:    "Time to append one batch (dedup, batch object in the locked bucket, chain head CAS).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pulsevault_audit_pending_messages",
			Help: "Audit events in PULSE_AUDIT not yet delivered to the audit-append consumer, as of this replica's last fetch.",
		}),
		deadLettered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pulsevault_audit_dead_letters_total",
			Help: "Malformed audit events this replica dead-lettered.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.appended, m.chainLength, m.appendSeconds, m.pending, m.deadLettered} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) observeAppend(res Result, d time.Duration) {
	if res.Appended == 0 {
		return
	}
	m.appended.Add(float64(res.Appended))
	m.chainLength.Set(float64(res.LastSeq))
	m.appendSeconds.Observe(d.Seconds())
}
