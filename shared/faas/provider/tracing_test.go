package provider_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/mieweb/pulsevault/shared/platform/tracing"
)

// The gateway gives every invocation a request id (keeping a safe one the
// caller sent), answers with it, and passes it and the caller's trace
// context to the function.
func TestInvocationRequestIDAndTrace(t *testing.T) {
	t.Parallel()
	g := start(t, nil)
	g.must(202, g.do(http.MethodPost, "/system/functions", echoDep(nil), true), "deploy")

	r := g.must(200, g.do(http.MethodGet, "/function/echo", nil, false), "invoke")
	id := r.hdr.Get(tracing.HeaderRequestID)
	if !tracing.ValidRequestID(id) || !strings.Contains(r.body, `"X-Request-Id":"`+id+`"`) {
		t.Fatalf("assigned request id %q; function saw %s", id, r.body)
	}
	const trace = "4bf92f3577b34da6a3ce929d0e0e4736"
	e := g.echo("/function/echo", tracing.HeaderRequestID, "req-1", "traceparent", "00-"+trace+"-00f067aa0ba902b7-01")
	if e.Headers["X-Request-Id"] != "req-1" || !strings.Contains(e.Headers["Traceparent"], trace) {
		t.Fatalf("function saw %v", e.Headers)
	}
	e = g.echo("/function/echo", tracing.HeaderRequestID, "jane doe wound.mp4")
	if id := e.Headers["X-Request-Id"]; !tracing.ValidRequestID(id) || strings.Contains(id, "jane") {
		t.Fatalf("an unsafe request id reached the function as %q", id)
	}
}
