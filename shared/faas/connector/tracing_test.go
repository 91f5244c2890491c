package connector

import (
	"strings"
	"testing"
	"time"

	"github.com/mieweb/pulsevault/shared/platform/tracing"
)

// The request id and trace of a message reach the function; a message
// without a request id (a bucket notification) gets a fresh one, so the
// work it starts can be followed.
func TestInvocationCarriesRequestContext(t *testing.T) {
	h := newHarness(t)
	h.g.setFunctions(map[string]string{"transcode": "pulse.jobs.transcode.>"})
	c := newConnector(t, h.options())
	run(t, c)
	waitBound(t, c, "transcode pulse.jobs.transcode.>")

	const trace = "4bf92f3577b34da6a3ce929d0e0e4736"
	publish(t, h.b, "pulse.jobs.transcode.a", `{}`, "Traceparent", "00-"+trace+"-00f067aa0ba902b7-01", tracing.HeaderRequestID, "req-5")
	publish(t, h.b, "pulse.jobs.transcode.b", `{}`)
	calls := h.g.wait("transcode", 2, 10*time.Second)
	first, second := calls[0].header, calls[1].header
	if first.Get(tracing.HeaderRequestID) != "req-5" || !strings.Contains(first.Get("Traceparent"), trace) {
		t.Errorf("first invocation: request id %q, traceparent %q", first.Get(tracing.HeaderRequestID), first.Get("Traceparent"))
	}
	if id := second.Get(tracing.HeaderRequestID); !tracing.ValidRequestID(id) || id == "req-5" {
		t.Errorf("second invocation: request id %q, want a fresh one", id)
	}
}
