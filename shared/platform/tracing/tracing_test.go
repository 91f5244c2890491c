package tracing

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/trace"
)

func TestRequestIDValidation(t *testing.T) {
	for id, ok := range map[string]bool{
		"req-1.A_b":                         true,
		"":                                  false,
		"jane doe":                          false,
		"a\nlevel=error":                    false,
		strings.Repeat("a", maxRequestID):   true,
		strings.Repeat("a", maxRequestID+1): false,
	} {
		if ValidRequestID(id) != ok {
			t.Errorf("ValidRequestID(%q) = %v, want %v", id, !ok, ok)
		}
	}
	h := http.Header{HeaderRequestID: {"jane.doe@example.com wound.mp4"}}
	id := EnsureRequestID(h)
	if !ValidRequestID(id) || h.Get(HeaderRequestID) != id || strings.Contains(id, "jane") {
		t.Fatalf("EnsureRequestID kept or mangled a bad id: %q / %q", id, h.Get(HeaderRequestID))
	}
	h.Set(HeaderRequestID, "keep-me")
	if EnsureRequestID(h) != "keep-me" {
		t.Fatal("EnsureRequestID replaced a good id")
	}
}

// Trace context passes through a process whose tracing is off: its spans
// are no-ops that keep the parent's ids.
func TestPropagationRoundTrip(t *testing.T) {
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	in := http.Header{}
	in.Set("traceparent", "00-"+tid.String()+"-"+sid.String()+"-01")
	in.Set(HeaderRequestID, "req-42")

	ctx := Extract(context.Background(), in)
	if RequestID(ctx) != "req-42" || TraceID(ctx) != tid.String() {
		t.Fatalf("extracted request id %q trace %q", RequestID(ctx), TraceID(ctx))
	}
	ctx, span := Start(ctx, "hop", trace.SpanKindInternal)
	defer span.End()
	out := http.Header{}
	Inject(ctx, out)
	if out.Get(HeaderRequestID) != "req-42" || !strings.Contains(out.Get("traceparent"), tid.String()) {
		t.Fatalf("injected %v", out)
	}
	if TraceID(Extract(context.Background(), http.Header{})) != "" {
		t.Fatal("trace id out of nothing")
	}
}

func TestEnabled(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	if Enabled(env(nil)) {
		t.Error("tracing must be off by default")
	}
	if !Enabled(env(map[string]string{EnvEndpoint: "http://127.0.0.1:4318"})) {
		t.Error("endpoint set: tracing should be on")
	}
	if Enabled(env(map[string]string{EnvEndpoint: "http://127.0.0.1:4318", EnvSDKDisabled: "true"})) {
		t.Error("OTEL_SDK_DISABLED=true must win")
	}
}

// What one hop costs with tracing off: id check or assignment, extract,
// a no-op span, inject.
func BenchmarkHop(b *testing.B) {
	in := http.Header{}
	in.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	for b.Loop() {
		h := in.Clone()
		EnsureRequestID(h)
		ctx, span := Start(Extract(context.Background(), h), "hop", trace.SpanKindServer)
		Inject(ctx, h)
		span.End()
	}
}
