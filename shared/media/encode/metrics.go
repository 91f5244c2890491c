package encode

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mieweb/pulsevault/shared/platform/loopback"
)

// Metrics are a transcode worker's, for the function's own registry.
// Rendition names come from the planned ladder (checked against meta.json
// before use), so labels stay bounded.
type Metrics struct {
	seconds         *prometheus.HistogramVec
	failures        *prometheus.CounterVec
	timeToPlayable  prometheus.Histogram
	cpuSeconds      *prometheus.CounterVec
	loopbackRefused prometheus.Counter
	// shadowed counts transcode reads that found a newer, unexpected
	// version over the pinned original (and ignored it).
	shadowed *prometheus.CounterVec
}

// NewMetrics makes the worker's metrics and registers them on reg (nil:
// kept unexported, as in tests).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := newMetrics()
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.seconds, m.failures, m.timeToPlayable, m.cpuSeconds, m.loopbackRefused, m.shadowed} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func newMetrics() *Metrics {
	return &Metrics{
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pulsevault_transcode_seconds",
			Help:    "Wall time of successful transcode jobs, from start to rendition ready, by rendition.",
			Buckets: []float64{0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800},
		}, []string{"rendition"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pulsevault_transcode_failures_total",
			Help: "Failed transcode attempts by rendition, reason code and whether the failure was final (rendition marked failed).",
		}, []string{"rendition", "reason", "final"}),
		timeToPlayable: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pulsevault_time_to_playable_seconds",
			Help:    "From meta.json's creation (upload finalized) to the video's first playable status (ready or complete).",
			Buckets: []float64{1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600},
		}),
		cpuSeconds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pulsevault_transcode_cpu_seconds_total",
			Help: "CPU seconds (user + system) of ffmpeg runs, by the renditions one run encodes (\"240p\", or \"360p+480p\" for a group).",
		}, []string{"renditions"}),
		loopbackRefused: loopback.NewRefusedCounter(),
		shadowed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pulsevault_original_shadowed_total",
			Help: "Transcode reads that found a version of the original other than the pinned one as the latest (ignored: the pinned version is read), by reason (newer-version, delete-marker).",
		}, []string{"reason"}),
	}
}

// unexported stands in for a Worker without Metrics: counted, never served.
var (
	unexportedOnce sync.Once
	unexported     *Metrics
)

func (w *Worker) metrics() *Metrics {
	if w.Metrics != nil {
		return w.Metrics
	}
	unexportedOnce.Do(func() { unexported = newMetrics() })
	return unexported
}
