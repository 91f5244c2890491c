package chain

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics, on the default registry (fnrun serves it). No labels: the chain
// is one sequence.
var (
	appended = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "pulsevault_audit_appended_total",
		Help: "Audit events appended to the hash chain by this replica.",
	})
	chainLength = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "pulsevault_audit_chain_length",
		Help: "Sequence number of the last record this replica appended: the chain's length when it appended.",
	})
	appendSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "pulsevault_audit_append_seconds",
		Help:    "Time to append one batch (dedup, batch object in the locked bucket, chain head CAS).",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	})
	pending = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "pulsevault_audit_pending_messages",
		Help: "Audit events in PULSE_AUDIT not yet delivered to the audit-append consumer, as of this replica's last fetch.",
	})
	deadLettered = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "pulsevault_audit_dead_letters_total",
		Help: "Malformed audit events this replica dead-lettered.",
	})
)

func init() {
	prometheus.MustRegister(appended, chainLength, appendSeconds, pending, deadLettered)
}

func observeAppend(res Result, d time.Duration) {
	if res.Appended == 0 {
		return
	}
	appended.Add(float64(res.Appended))
	chainLength.Set(float64(res.LastSeq))
	appendSeconds.Observe(d.Seconds())
}
