// Package tracing carries a request's identity across PulseVault's hops:
// a request id (X-Request-Id) that every log line of the request repeats,
// and W3C trace context (traceparent) for OpenTelemetry spans. Both travel in
// HTTP headers (gateway → function, connector → function) and in NATS
// headers (bus publish → consume), so one upload can be followed through
// finalize, transcode and the audit log.
//
// Tracing is off unless OTEL_EXPORTER_OTLP_ENDPOINT (or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set; trace context is propagated
// either way, so a process with tracing off does not break a trace.
package tracing

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// HeaderRequestID carries the request id over HTTP and NATS.
const HeaderRequestID = "X-Request-Id"

// maxRequestID bounds an id taken from a caller.
const maxRequestID = 64

type ctxKey struct{}

// WithRequestID returns ctx carrying id.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// RequestID is the request id carried by ctx, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(ctxKey{}).(string)
	return id
}

// NewRequestID returns a random id: 16 bytes, hex.
func NewRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ValidRequestID reports whether a caller's id may be kept. Only short ids
// of [A-Za-z0-9._-] are: anything else could smuggle PHI or forged log
// lines into every log of the request.
func ValidRequestID(id string) bool {
	if id == "" || len(id) > maxRequestID {
		return false
	}
	for _, c := range id {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
		if !ok {
			return false
		}
	}
	return true
}

// EnsureRequestID makes h carry a valid request id, assigning a new one if
// it has none (or an unacceptable one), and returns it.
func EnsureRequestID(h http.Header) string {
	id := strings.TrimSpace(h.Get(HeaderRequestID))
	if !ValidRequestID(id) {
		id = NewRequestID()
		h.Set(HeaderRequestID, id)
	}
	return id
}

// propagator is W3C trace context; the request id has its own header.
var propagator propagation.TextMapPropagator = propagation.TraceContext{}

// Extract returns ctx with the request id and the remote trace context of
// headers h (an http.Header, or a nats.Header converted with
// http.Header(h)). An invalid request id is dropped.
func Extract(ctx context.Context, h http.Header) context.Context {
	if h == nil {
		return ctx
	}
	if id := strings.TrimSpace(h.Get(HeaderRequestID)); ValidRequestID(id) {
		ctx = WithRequestID(ctx, id)
	}
	return propagator.Extract(ctx, propagation.HeaderCarrier(h))
}

// Inject writes ctx's request id and trace context into h.
func Inject(ctx context.Context, h http.Header) {
	if id := RequestID(ctx); id != "" {
		h.Set(HeaderRequestID, id)
	}
	propagator.Inject(ctx, propagation.HeaderCarrier(h))
}

// TraceID is the id of ctx's trace, or "" when there is none.
func TraceID(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.HasTraceID() {
		return ""
	}
	return sc.TraceID().String()
}

// Tracer is PulseVault's tracer from the global provider (a no-op one unless
// Setup enabled export).
func Tracer() trace.Tracer { return otel.Tracer("github.com/mieweb/pulsevault") }

// Start starts a span named name of the given kind under ctx.
func Start(ctx context.Context, name string, kind trace.SpanKind, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	return Tracer().Start(ctx, name, append(opts, trace.WithSpanKind(kind))...)
}
