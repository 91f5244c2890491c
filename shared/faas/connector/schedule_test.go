package connector

import (
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mieweb/pulsevault/shared/platform/tracing"
	"github.com/mieweb/pulsevault/shared/topology"
)

func TestParseSchedule(t *testing.T) {
	entries, invalid := ParseSchedule(" /reconcile@1m , /dead-letters@1m,, /reconcile@1m, /a/b_c-d.e@24h, /x@10s ," +
		"/x@9s, /x@25h, /x, x@1m, /a/../b@1m, /a//b@1m, /a?q=1@1m, /a b@1m, /%41@1m, /@1m, /x@soon, /x@1m@2m")
	want := []Schedule{{"/reconcile", time.Minute}, {"/dead-letters", time.Minute}, {"/a/b_c-d.e", 24 * time.Hour}, {"/x", 10 * time.Second}}
	if !slices.Equal(entries, want) {
		t.Errorf("entries %v, want %v", entries, want)
	}
	wantInvalid := []string{"/x@9s", "/x@25h", "/x", "x@1m", "/a/../b@1m", "/a//b@1m", "/a?q=1@1m", "/a b@1m", "/%41@1m", "/@1m", "/x@soon", "/x@1m@2m"}
	if !slices.Equal(invalid, wantInvalid) {
		t.Errorf("invalid %q, want %q", invalid, wantInvalid)
	}
	if e, bad := ParseSchedule(" , "); e != nil || bad != nil {
		t.Errorf("empty annotation: %v %v", e, bad)
	}
}

// fastSchedules lets schedules run at test speed for the rest of the test.
func fastSchedules(t *testing.T) {
	old := minInterval
	minInterval = 10 * time.Millisecond
	t.Cleanup(func() { minInterval = old })
}

// TestScheduledCalls: a function's schedule annotation makes the connector
// POST to its paths at the interval, with the connector's headers and a
// fresh request id; invalid entries are reported once and ignored.
func TestScheduledCalls(t *testing.T) {
	fastSchedules(t)
	h := newHarness(t)
	h.g.setFunctions(map[string]string{"finalize": "-", "other": "pulse.audit.a"})
	h.g.annotate("finalize", map[string]string{ScheduleAnnotation: "/reconcile@200ms, /nope, /x@1ms"})
	c := newConnector(t, h.options())
	run(t, c)

	calls := h.g.wait("finalize/reconcile", 3, 20*time.Second)
	ids := map[string]bool{}
	for _, cl := range calls {
		if cl.header.Get(topology.HeaderConnector) != ConnectorName || cl.header.Get(topology.HeaderSchedule) != "/reconcile@200ms" {
			t.Errorf("headers %v", cl.header)
		}
		id := cl.header.Get(tracing.HeaderRequestID)
		if !tracing.ValidRequestID(id) || ids[id] {
			t.Errorf("request id %q invalid or repeated", id)
		}
		ids[id] = true
	}
	gaps := make([]time.Duration, 0, len(calls)-1)
	for i := 1; i < len(calls); i++ {
		gaps = append(gaps, calls[i].at.Sub(calls[i-1].at).Round(time.Millisecond))
	}
	t.Logf("gaps between calls every 200ms: %v", gaps) // measured, not asserted: the machine is shared
	if len(h.g.callsOf("other")) != 0 || len(h.g.callsOf("finalize")) != 0 {
		t.Error("functions without a schedule were called")
	}
	if got := c.Status().Schedules; !slices.Equal(got, []Scheduled{{Function: "finalize", Path: "/reconcile", Every: "200ms"}}) {
		t.Errorf("Status().Schedules = %+v", got)
	}
	logs := h.log.String()
	for _, e := range []string{`"entry":"/nope"`, `"entry":"/x@1ms"`} {
		if strings.Count(logs, e) != 1 {
			t.Errorf("invalid entry %s reported %d times, want once:\n%s", e, strings.Count(logs, e), logs)
		}
	}
}

// TestScheduleOneCallAtATime: a call slower than the interval is never
// overlapped by the next one of the same entry; failures are counted and
// logged, and the schedule keeps going.
func TestScheduleOneCallAtATime(t *testing.T) {
	fastSchedules(t)
	h := newHarness(t)
	h.g.setFunctions(map[string]string{"slow": "-"})
	h.g.annotate("slow", map[string]string{ScheduleAnnotation: "/work@50ms"})
	var inFlight, most atomic.Int32
	h.g.setBehaviour("slow/work", func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		time.Sleep(300 * time.Millisecond) // six intervals
		w.WriteHeader(http.StatusInternalServerError)
	})
	c := newConnector(t, h.options())
	run(t, c)
	h.g.wait("slow/work", 3, 30*time.Second)
	if m := most.Load(); m != 1 {
		t.Errorf("%d calls of one entry in flight at once, want 1", m)
	}
	eventually(t, 10*time.Second, "failures counted", func() bool {
		return testutil.ToFloat64(c.m.scheduleFailures.WithLabelValues("slow", "/work")) >= 2
	})
	if n := testutil.ToFloat64(c.m.scheduleCalls.WithLabelValues("slow", "/work", "500")); n < 2 {
		t.Errorf("connector_scheduled_calls_total{code=500} = %v", n)
	}
	if !strings.Contains(h.log.String(), "scheduled call failed") {
		t.Errorf("failure not logged:\n%s", h.log.String())
	}
}

// TestScheduleFollowsAnnotations: a schedule added at a refresh starts, a
// changed interval replaces it, and a removed one stops.
func TestScheduleFollowsAnnotations(t *testing.T) {
	fastSchedules(t)
	h := newHarness(t)
	h.g.setFunctions(map[string]string{"fn": "-"})
	c := newConnector(t, h.options())
	run(t, c)
	quiet(t, h.g, "fn/tick", 300*time.Millisecond, 0)

	h.g.annotate("fn", map[string]string{ScheduleAnnotation: "/tick@100ms"})
	h.g.wait("fn/tick", 2, 20*time.Second)
	h.g.annotate("fn", map[string]string{ScheduleAnnotation: "/tick@150ms"})
	eventually(t, 10*time.Second, "new interval", func() bool {
		s := c.Status().Schedules
		return len(s) == 1 && s[0].Every == "150ms"
	})
	n := len(h.g.wait("fn/tick", len(h.g.callsOf("fn/tick"))+1, 20*time.Second))
	if got := h.g.callsOf("fn/tick")[n-1].header.Get(topology.HeaderSchedule); got != "/tick@150ms" {
		t.Errorf("call after the change made by %q", got)
	}

	h.g.annotate("fn", map[string]string{ScheduleAnnotation: ""})
	eventually(t, 10*time.Second, "schedule stopped", func() bool { return len(c.Status().Schedules) == 0 })
	quiet(t, h.g, "fn/tick", 500*time.Millisecond, len(h.g.callsOf("fn/tick")))
}
