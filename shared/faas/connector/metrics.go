package connector

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are labelled only by function name, topic pattern (as written in
// the annotation, never the concrete subject), scheduled path (as written in
// the annotation) and HTTP status code, so their
// cardinality is bounded by what is deployed. No ids, no message contents.
type metrics struct {
	delivered    *prometheus.CounterVec // function, topic
	invocations  *prometheus.CounterVec // function, code
	failures     *prometheus.CounterVec // function
	redeliveries *prometheus.CounterVec // function
	deadLetters  *prometheus.CounterVec // function
	lag          *prometheus.GaugeVec   // function

	scheduleCalls    *prometheus.CounterVec // function, path, code
	scheduleFailures *prometheus.CounterVec // function, path
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connector_messages_delivered_total",
			Help: "Messages a function accepted (answered 2xx), by function and topic pattern.",
		}, []string{"function", "topic"}),
		invocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connector_invocations_total",
			Help: `Function invocations by HTTP status code ("error" when no answer came: timeout, connection refused).`,
		}, []string{"function", "code"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connector_failures_total",
			Help: "Invocations that failed (non-2xx or no answer); each is retried or dead-lettered.",
		}, []string{"function"}),
		redeliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connector_redeliveries_total",
			Help: "Deliveries of a message that had been delivered before (after a failure, a timeout or a restart).",
		}, []string{"function"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connector_dead_letters_total",
			Help: "Messages given up on and sent to the function's dead-letter subject.",
		}, []string{"function"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "connector_lag_messages",
			Help: "Messages waiting for the function in its durable consumers (NumPending), sampled at each refresh.",
		}, []string{"function"}),
		scheduleCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connector_scheduled_calls_total",
			Help: `Scheduled calls (schedule annotation) by function, path as annotated and HTTP status code ("error" when no answer came).`,
		}, []string{"function", "path", "code"}),
		scheduleFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connector_scheduled_failures_total",
			Help: "Scheduled calls that failed (non-2xx or no answer); the next tick tries again.",
		}, []string{"function", "path"}),
	}
	var err error
	m.delivered, err = register(reg, m.delivered)
	if err != nil {
		return nil, err
	}
	for _, c := range []**prometheus.CounterVec{&m.invocations, &m.failures, &m.redeliveries, &m.deadLetters, &m.scheduleCalls, &m.scheduleFailures} {
		if *c, err = register(reg, *c); err != nil {
			return nil, err
		}
	}
	if m.lag, err = register(reg, m.lag); err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c, or reuses the identical collector already registered
// (a connector restarted in the same process keeps counting on the same series).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, err
}
