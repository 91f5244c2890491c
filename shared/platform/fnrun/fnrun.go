// Package fnrun runs one function as an HTTP server, the way OpenFaaS's
// of-watchdog does in http mode: every path goes to the function's handler
// except /_/health (readiness) and /metrics (Prometheus). It reads the same
// environment as of-watchdog (port, read_timeout, write_timeout,
// exec_timeout), logs through the redacting logger, turns a handler panic
// into a 500, and on shutdown stops accepting, lets in-flight requests
// finish within a grace period, then returns.
//
// A function is declared once with Function, built from its Deps (the
// configuration, its logger, store, bus connection, API token verifier,
// metrics registry and the process context), and run with Run.
package fnrun

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/mieweb/pulsevault/shared/platform/logging"
	"github.com/mieweb/pulsevault/shared/platform/tracing"
)

// Paths the runtime answers itself; every other path reaches the handler.
const (
	HealthPath  = "/_/health"
	MetricsPath = "/metrics"
)

// Defaults, as of-watchdog's.
const (
	DefaultAddr    = "127.0.0.1:8080"
	DefaultTimeout = 10 * time.Second
)

// Options configures Serve. Zero durations take their value from the
// environment variable named in the comment, else the default; a negative
// duration means no limit.
type Options struct {
	Name    string       // function name, for logs and metrics (required)
	Handler http.Handler // the function (required)
	// Gatherer is the function's own metrics, served on /metrics beside
	// the runtime's request metrics and the Go and process collectors.
	// Nothing is read from prometheus.DefaultRegisterer: every function
	// is in one binary, and a package-level metric would show up on all
	// of them.
	Gatherer prometheus.Gatherer

	// Addr is the listen address. Default: $port ("host:port", ":port",
	// or a bare port number meaning all interfaces, as of-watchdog reads
	// it), else 127.0.0.1:8080. The function serves HTTP itself: no
	// watchdog runs in front of it, so upstream_url is not read.
	Addr string
	// Listener, when set, is used instead of listening on Addr.
	Listener net.Listener

	ReadTimeout  time.Duration // $read_timeout: reading a request, body included; default 10s
	WriteTimeout time.Duration // $write_timeout: writing the response; default 10s
	ExecTimeout  time.Duration // $exec_timeout: deadline of the request's context; default 10s
	// MaxRequestBytes caps request bodies ($max_request_bytes); a larger
	// body fails to read and the handler answers 413 via http.MaxBytesError.
	// Default (0 and unset): no limit, as of-watchdog.
	MaxRequestBytes int64
	// Grace bounds the drain of in-flight requests at shutdown; default
	// the write timeout (10s when that is unlimited).
	Grace time.Duration

	Logger *slog.Logger        // default: JSON to stderr at $LOG_LEVEL, component fn/NAME
	Getenv func(string) string // default os.Getenv
	// Ready, if set, is called with the listening address once requests
	// are accepted.
	Ready func(net.Addr)
}

// Serve runs the function until ctx is cancelled (SIGTERM in production),
// then drains in-flight requests within the grace period. It returns nil
// after a clean drain and an error if listening failed or requests had to
// be cut off.
func Serve(ctx context.Context, o Options) error {
	if o.Name == "" || o.Handler == nil {
		return errors.New("fnrun: Options.Name and Options.Handler are required")
	}
	if err := o.fromEnv(); err != nil {
		return err
	}
	log := o.Logger
	ln := o.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", o.Addr); err != nil {
			return fmt.Errorf("fnrun: listen on %s: %w", o.Addr, err)
		}
	}
	defer ln.Close()

	defer tracing.Init(ctx, o.Name, log)()

	rt := newRuntime(o)
	srv := &http.Server{
		Handler:           rt,
		ReadTimeout:       positive(o.ReadTimeout),
		ReadHeaderTimeout: min(positive(o.ReadTimeout), DefaultTimeout),
		WriteTimeout:      positive(o.WriteTimeout),
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	if srv.ReadHeaderTimeout == 0 {
		srv.ReadHeaderTimeout = DefaultTimeout
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("function listening", "addr", ln.Addr().String(), "pid", os.Getpid(),
		"read_timeout", limit(o.ReadTimeout), "write_timeout", limit(o.WriteTimeout), "exec_timeout", limit(o.ExecTimeout))
	if o.Ready != nil {
		o.Ready(ln.Addr())
	}

	select {
	case err := <-errc:
		return fmt.Errorf("fnrun: serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("function stopping: draining in-flight requests", "in_flight", rt.inFlight.Load(), "grace", o.Grace.String())
	sctx, cancel := context.WithTimeout(context.Background(), o.Grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		n := rt.inFlight.Load()
		srv.Close()
		log.Error("function stopped before in-flight requests finished", "in_flight", n, "grace", o.Grace.String())
		return fmt.Errorf("fnrun: %d request(s) still running after the %s grace period were cut off", n, o.Grace)
	}
	log.Info("function stopped")
	return nil
}

func positive(d time.Duration) time.Duration { return max(d, 0) }

// limit renders a timeout for the log: "none" when unlimited.
func limit(d time.Duration) string {
	if d <= 0 {
		return "none"
	}
	return d.String()
}

// fromEnv fills unset options from the environment and defaults.
func (o *Options) fromEnv() error {
	getenv := o.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	if o.Logger == nil {
		o.Logger = logging.New(os.Stderr, getenv("LOG_LEVEL"), "fn/"+o.Name)
	}
	if o.Addr == "" && o.Listener == nil {
		addr, err := addrFromEnv(getenv)
		if err != nil {
			return err
		}
		o.Addr = addr
	}
	for _, d := range []struct {
		v   *time.Duration
		env string
	}{{&o.ReadTimeout, "read_timeout"}, {&o.WriteTimeout, "write_timeout"}, {&o.ExecTimeout, "exec_timeout"}} {
		if *d.v != 0 {
			continue
		}
		v, err := durationEnv(getenv, d.env, DefaultTimeout)
		if err != nil {
			return err
		}
		*d.v = v
		if v == 0 {
			*d.v = -1 // explicitly unlimited
		}
	}
	if o.MaxRequestBytes == 0 {
		if s := strings.TrimSpace(getenv("max_request_bytes")); s != "" {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil || n < 0 {
				return fmt.Errorf("fnrun: invalid max_request_bytes %q: want a whole number of bytes (0 for no limit)", s)
			}
			o.MaxRequestBytes = n
		}
	}
	if o.Grace <= 0 {
		o.Grace = o.WriteTimeout
		if o.Grace <= 0 {
			o.Grace = DefaultTimeout
		}
	}
	return nil
}

func addrFromEnv(getenv func(string) string) (string, error) {
	p := strings.TrimSpace(getenv("port"))
	if p == "" {
		return DefaultAddr, nil
	}
	if n, err := strconv.Atoi(p); err == nil {
		if n < 0 || n > 65535 {
			return "", fmt.Errorf("fnrun: invalid port %q: want 0–65535 or host:port", p)
		}
		return ":" + p, nil
	}
	if _, port, err := net.SplitHostPort(p); err != nil || port == "" {
		return "", fmt.Errorf("fnrun: invalid port %q: want a port number or host:port", p)
	}
	return p, nil
}

// durationEnv reads a duration the way of-watchdog does: "10s", "1m30s",
// or a bare number of seconds.
func durationEnv(getenv func(string) string, name string, def time.Duration) (time.Duration, error) {
	s := strings.TrimSpace(getenv(name))
	if s == "" {
		return def, nil
	}
	if n, err := strconv.Atoi(s); err == nil && n >= 0 {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("fnrun: invalid %s %q: want a duration such as 10s or 2m, or a number of seconds (0 for no limit)", name, s)
	}
	return d, nil
}

// runtimeHandler is the server's handler: health, metrics, then the function.
type runtimeHandler struct {
	o        Options
	log      *slog.Logger
	metrics  http.Handler
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight atomic.Int64
}

func newRuntime(o Options) *runtimeHandler {
	reg := prometheus.NewRegistry()
	labels := prometheus.Labels{"function_name": o.Name}
	rt := &runtimeHandler{
		o:   o,
		log: o.Logger,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "function_requests_total", Help: "Requests handled by the function, by status code.", ConstLabels: labels,
		}, []string{"code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "function_request_duration_seconds", Help: "Time to handle a request, by status code.", ConstLabels: labels,
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300},
		}, []string{"code"}),
	}
	inFlight := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "function_requests_in_flight", Help: "Requests being handled now.", ConstLabels: labels,
	}, func() float64 { return float64(rt.inFlight.Load()) })
	reg.MustRegister(rt.requests, rt.duration, inFlight,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	g := prometheus.Gatherers{reg}
	if o.Gatherer != nil {
		g = append(g, o.Gatherer)
	}
	rt.metrics = promhttp.HandlerFor(g, promhttp.HandlerOpts{})
	return rt
}

func (rt *runtimeHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case HealthPath:
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("ok"))
		return
	case MetricsPath:
		rt.metrics.ServeHTTP(w, r)
		return
	}
	rt.serveFunction(w, r)
}

func (rt *runtimeHandler) serveFunction(w http.ResponseWriter, r *http.Request) {
	rt.inFlight.Add(1)
	start := time.Now()
	rw := &responseWriter{ResponseWriter: w}
	// The gateway assigns the request id; a direct call gets one here, so
	// every request's log lines can be told apart.
	tracing.EnsureRequestID(r.Header)
	ctx, span := tracing.Start(tracing.Extract(r.Context(), r.Header), "function "+rt.o.Name, trace.SpanKindServer,
		trace.WithAttributes(attribute.String("faas.name", rt.o.Name), attribute.String("http.request.method", r.Method)))
	r = r.WithContext(ctx)
	defer func() {
		// Runs last, after a panic has become a 500.
		code := rw.code()
		span.SetAttributes(attribute.Int("http.response.status_code", code))
		if code >= 500 {
			span.SetStatus(codes.Error, http.StatusText(code))
		}
		span.End()
	}()
	defer func() {
		rt.inFlight.Add(-1)
		p := recover()
		if p != nil {
			if p == http.ErrAbortHandler {
				rt.observe(rw, start, r)
				panic(p)
			}
			rt.logPanic(r.Context(), p)
			if !rw.wrote {
				WriteJSON(rw, http.StatusInternalServerError, map[string]string{
					"error": "internal error", "function": rt.o.Name,
				})
			} else {
				// The status line is gone: cut the connection so the
				// client cannot take a partial body for a whole one.
				rw.status = http.StatusInternalServerError
				rt.observe(rw, start, r)
				panic(http.ErrAbortHandler)
			}
		}
		rt.observe(rw, start, r)
	}()
	if d := rt.o.ExecTimeout; d > 0 {
		ctx, cancel := context.WithTimeout(r.Context(), d)
		defer cancel()
		r = r.WithContext(ctx)
	}
	if n := rt.o.MaxRequestBytes; n > 0 && r.Body != nil {
		r.Body = http.MaxBytesReader(rw, r.Body, n)
	}
	rt.o.Handler.ServeHTTP(rw, r)
}

func (rt *runtimeHandler) observe(rw *responseWriter, start time.Time, r *http.Request) {
	code := strconv.Itoa(rw.code())
	d := time.Since(start)
	rt.requests.WithLabelValues(code).Inc()
	rt.duration.WithLabelValues(code).Observe(d.Seconds())
	// Never the path or query: they can carry tokens and ids.
	rt.log.DebugContext(r.Context(), "request", "method", r.Method, "code", rw.code(), "duration_ms", d.Milliseconds(), "bytes", rw.bytes)
}

// logPanic logs where the handler panicked. Runtime errors are logged in
// full; other panic values only by type, since they may quote input.
func (rt *runtimeHandler) logPanic(ctx context.Context, p any) {
	val := fmt.Sprintf("%T", p)
	if re, ok := p.(runtime.Error); ok {
		val = re.Error()
	}
	rt.log.ErrorContext(ctx, "function handler panicked", "panic", val, "stack", string(debug.Stack()))
}

// responseWriter records the status and size of a response. It forwards
// Flush and exposes Unwrap so http.ResponseController reaches the original.
type responseWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
	wrote  bool
}

func (w *responseWriter) WriteHeader(code int) {
	if !w.wrote && code >= 200 {
		w.status = code
		w.wrote = true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.status, w.wrote = http.StatusOK, true
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *responseWriter) Flush() {
	if !w.wrote {
		w.status, w.wrote = http.StatusOK, true
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *responseWriter) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

// WriteJSON answers with status and v encoded as JSON.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"response encoding failed"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// NotImplemented answers 501 for a function whose implementation has not
// landed yet, saying which issue brings it.
func NotImplemented(w http.ResponseWriter, function, detail string) {
	WriteJSON(w, http.StatusNotImplemented, map[string]string{
		"error": "not implemented", "function": function, "detail": detail,
	})
}
