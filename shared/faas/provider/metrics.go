package provider

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the OpenFaaS gateway's, under the same names and labels, so
// its dashboards and alerts work unchanged. Labels carry function names and
// status codes only: never paths, ids or anything a caller controls (only
// deployed functions are ever labelled).
type metrics struct {
	reg      *prometheus.Registry
	started  *prometheus.CounterVec
	total    *prometheus.CounterVec
	seconds  *prometheus.HistogramVec
	replicas *prometheus.GaugeVec
	handler  http.Handler
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		started: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_function_invocation_started", Help: "The total number of function HTTP requests started.",
		}, []string{"function_name"}),
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_function_invocation_total", Help: "Function metrics",
		}, []string{"function_name", "code"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "gateway_functions_seconds", Help: "Function time taken",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900},
		}, []string{"function_name", "code"}),
		replicas: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gateway_service_count", Help: "Current count of replicas for function",
		}, []string{"function_name"}),
	}
	m.reg.MustRegister(m.started, m.total, m.seconds, m.replicas,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
	return m
}

func (m *metrics) start(fn string) { m.started.WithLabelValues(fn).Inc() }

func (m *metrics) done(fn string, code int, d time.Duration) {
	c := strconv.Itoa(code)
	m.total.WithLabelValues(fn, c).Inc()
	m.seconds.WithLabelValues(fn, c).Observe(d.Seconds())
}

func (m *metrics) setReplicas(fn string, n int) { m.replicas.WithLabelValues(fn).Set(float64(n)) }

// forget drops a deleted function's series.
func (m *metrics) forget(fn string) {
	m.replicas.DeleteLabelValues(fn)
	m.started.DeleteLabelValues(fn)
	m.total.DeletePartialMatch(prometheus.Labels{"function_name": fn})
	m.seconds.DeletePartialMatch(prometheus.Labels{"function_name": fn})
}
