package connector

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mieweb/pulsevault/shared/bus"
	"github.com/mieweb/pulsevault/shared/testutil/tier"
)

// TestDeliversByTopic: a message reaches every function whose topic
// annotation matches its subject, with the topic, JetStream metadata and its
// own headers; functions without a matching annotation get nothing.
func TestDeliversByTopic(t *testing.T) {
	h := newHarness(t)
	h.g.setFunctions(map[string]string{
		"transcode":  "pulse.jobs.transcode.>",
		"also":       "pulse.jobs.transcode.>, pulse.audit.>",
		"bystander":  "-",
		"auditor":    "pulse.audit.*",
		"finalize":   "pulse.s3.events",
		"wide":       "pulse.*.x", // captured by three streams
		"unrelated":  "pulse.jobs.other",
		"eventsonly": "pulse.s3.events",
	})
	c := newConnector(t, h.options())
	run(t, c)
	waitBound(t, c, "transcode pulse.jobs.transcode.>", "also pulse.jobs.transcode.>", "also pulse.audit.>",
		"auditor pulse.audit.*", "finalize pulse.s3.events", "wide pulse.*.x")

	body := `{"video":"3f1c","rendition":"720p"}`
	publish(t, h.b, "pulse.jobs.transcode.720p", body, "Nats-Msg-Id", "job-1", "Traceparent", "00-abc-def-01")
	for _, fn := range []string{"transcode", "also"} {
		got := h.g.wait(fn, 1, 10*time.Second)[0]
		if string(got.body) != body {
			t.Errorf("%s body = %q, want %q", fn, got.body, body)
		}
		for k, want := range map[string]string{
			"X-Topic":          "pulse.jobs.transcode.720p",
			"X-Connector":      "pulsevault",
			"X-Nats-Stream":    "PULSE_JOBS",
			"X-Nats-Delivered": "1",
			"Content-Type":     "application/json",
			"Traceparent":      "00-abc-def-01",
		} {
			if v := got.header.Get(k); v != want {
				t.Errorf("%s header %s = %q, want %q", fn, k, v, want)
			}
		}
		if seq, err := strconv.Atoi(got.header.Get("X-Nats-Stream-Seq")); err != nil || seq < 1 {
			t.Errorf("%s X-Nats-Stream-Seq = %q", fn, got.header.Get("X-Nats-Stream-Seq"))
		}
		if v := got.header.Get("Nats-Msg-Id"); v != "" {
			t.Errorf("%s got JetStream's internal Nats-Msg-Id header %q", fn, v)
		}
		if v := got.header.Get("Authorization"); v != "" {
			t.Errorf("%s got the gateway credentials: Authorization %q", fn, v)
		}
	}

	publish(t, h.b, "pulse.audit.view", "plain text, not JSON")
	for _, fn := range []string{"also", "auditor"} {
		got := h.g.wait(fn, map[string]int{"also": 2, "auditor": 1}[fn], 10*time.Second)
		last := got[len(got)-1]
		if last.header.Get("X-Topic") != "pulse.audit.view" || string(last.body) != "plain text, not JSON" {
			t.Errorf("%s got topic %q body %q", fn, last.header.Get("X-Topic"), last.body)
		}
		if ct := last.header.Get("Content-Type"); ct == "application/json" {
			t.Errorf("%s: non-JSON body sent as %s", fn, ct)
		}
	}

	publish(t, h.b, "pulse.s3.events", `{"Records":[]}`)
	h.g.wait("finalize", 1, 10*time.Second)
	h.g.wait("eventsonly", 1, 10*time.Second)

	// One topic, several streams: each stream gets its own consumer.
	var wide Binding
	for _, b := range c.Status().Bindings {
		if b.Function == "wide" {
			wide = b
		}
	}
	if !slices.Equal(wide.Streams, []string{"PULSE_AUDIT", "PULSE_DLQ", "PULSE_JOBS"}) {
		t.Errorf("wide is bound to %v", wide.Streams)
	}
	publish(t, h.b, "pulse.jobs.x", "1")
	publish(t, h.b, "pulse.audit.x", "2")
	got := h.g.wait("wide", 2, 10*time.Second)
	topics := []string{got[0].header.Get("X-Topic"), got[1].header.Get("X-Topic")}
	slices.Sort(topics)
	if !slices.Equal(topics, []string{"pulse.audit.x", "pulse.jobs.x"}) {
		t.Errorf("wide got %v", topics)
	}

	quiet(t, h.g, "bystander", 300*time.Millisecond, 0)
	// pulse.audit.x also matched "also" and "auditor".
	for fn, n := range map[string]int{"bystander": 0, "unrelated": 0, "transcode": 1, "also": 3, "auditor": 2, "finalize": 1} {
		if got := len(h.g.callsOf(fn)); got != n {
			t.Errorf("%s got %d calls, want %d", fn, got, n)
		}
	}
	noLeak(t, h.log.String(), "3f1c", "plain text", testPassword)
}

// TestRetriesWithBackoffThenDeadLetters: a failing function is retried with
// growing delays and the message ends on pulse.dlq.<function> after
// MaxDeliver tries, with its body intact.
func TestRetriesWithBackoffThenDeadLetters(t *testing.T) {
	h := newHarness(t)
	h.g.setFunctions(map[string]string{"flaky": "pulse.jobs.flaky"})
	h.g.setBehaviour("flaky", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "boom", http.StatusInternalServerError)
	})
	dlq, err := h.b.Conn().SubscribeSync("pulse.dlq.flaky")
	if err != nil {
		t.Fatal(err)
	}
	o := h.options()
	o.MaxDeliver = 4
	o.Backoff = []time.Duration{100 * time.Millisecond, 300 * time.Millisecond, 600 * time.Millisecond}
	c := newConnector(t, o)
	run(t, c)
	waitBound(t, c, "flaky pulse.jobs.flaky")

	publish(t, h.b, "pulse.jobs.flaky", `{"video":"abc"}`, "Traceparent", "00-1-2-01")
	m, err := dlq.NextMsg(15 * time.Second)
	if err != nil {
		t.Fatalf("no dead letter: %v", err)
	}
	calls := h.g.callsOf("flaky")
	if len(calls) != 4 {
		t.Fatalf("flaky was called %d times, want 4", len(calls))
	}
	for i, c := range calls {
		if d := c.header.Get("X-Nats-Delivered"); d != strconv.Itoa(i+1) {
			t.Errorf("call %d: X-Nats-Delivered = %s", i+1, d)
		}
	}
	// Lower bounds only: the gaps grow with the backoff.
	for i, min := range o.Backoff {
		if gap := calls[i+1].at.Sub(calls[i].at); gap < min {
			t.Errorf("gap before try %d = %s, want >= %s", i+2, gap, min)
		}
	}
	if string(m.Data) != `{"video":"abc"}` {
		t.Errorf("dead letter body = %q", m.Data)
	}
	for k, want := range map[string]string{
		bus.HeaderDLQSubject: "pulse.jobs.flaky", bus.HeaderDLQDeliveries: "4", bus.HeaderDLQStream: "PULSE_JOBS",
		"Traceparent": "00-1-2-01",
	} {
		if v := m.Header.Get(k); v != want {
			t.Errorf("dead letter header %s = %q, want %q", k, v, want)
		}
	}
	if e := m.Header.Get(bus.HeaderDLQError); !strings.Contains(e, "500") {
		t.Errorf("dead letter error %q does not name the status", e)
	}
	// The dead letter is also kept by the PULSE_DLQ stream. (The server
	// hands a message to core subscribers and to the stream's store on
	// separate paths: the subscriber above can have it first.)
	st, err := h.b.JetStream().Stream(t.Context(), "PULSE_DLQ")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "PULSE_DLQ keeps the pulse.dlq.flaky message", func() bool {
		_, err := st.GetLastMsgForSubject(t.Context(), "pulse.dlq.flaky")
		return err == nil
	})
	eventually(t, 5*time.Second, "consumer settled", func() bool {
		return settled(t, h.b, "PULSE_JOBS", DurableName("flaky", "pulse.jobs.flaky"))
	})
	quiet(t, h.g, "flaky", 700*time.Millisecond, 4)
	noLeak(t, h.log.String(), `"video":"abc"`)
}

// TestStatusCodes: 422 and friends are dead-lettered on the first answer;
// 429, 404 and a timeout are retried.
func TestStatusCodes(t *testing.T) {
	h := newHarness(t)
	h.g.setFunctions(map[string]string{
		"rejects": "pulse.jobs.rejects", "busy": "pulse.jobs.busy", "gone": "pulse.jobs.gone", "slow": "pulse.jobs.slow",
	})
	h.g.setBehaviour("rejects", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "not a job", http.StatusUnprocessableEntity)
	})
	h.g.setBehaviour("busy", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Nats-Delivered") == "1" {
			http.Error(w, "slow down", http.StatusTooManyRequests)
		}
	})
	h.g.setBehaviour("gone", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Nats-Delivered") == "1" {
			http.Error(w, "no such function", http.StatusNotFound)
		}
	})
	h.g.setBehaviour("slow", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Nats-Delivered") == "1" {
			blockUntilCancelled(w, r)
		}
	})
	dlq, err := h.b.Conn().SubscribeSync("pulse.dlq.*")
	if err != nil {
		t.Fatal(err)
	}
	o := h.options()
	o.MaxDeliver = 5
	o.Timeout = 300 * time.Millisecond
	c := newConnector(t, o)
	run(t, c)
	waitBound(t, c, "rejects pulse.jobs.rejects", "busy pulse.jobs.busy", "gone pulse.jobs.gone", "slow pulse.jobs.slow")

	for _, fn := range []string{"rejects", "busy", "gone", "slow"} {
		publish(t, h.b, "pulse.jobs."+fn, "{}")
	}
	m, err := dlq.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "pulse.dlq.rejects" || m.Header.Get(bus.HeaderDLQDeliveries) != "1" {
		t.Errorf("dead letter on %s after %s deliveries, want pulse.dlq.rejects after 1", m.Subject, m.Header.Get(bus.HeaderDLQDeliveries))
	}
	for _, fn := range []string{"busy", "gone", "slow"} {
		h.g.wait(fn, 2, 10*time.Second)
	}
	if n := len(h.g.callsOf("rejects")); n != 1 {
		t.Errorf("rejects was called %d times, want 1", n)
	}
	if m, err := dlq.NextMsg(300 * time.Millisecond); err == nil {
		t.Errorf("unexpected dead letter on %s", m.Subject)
	}
	if v := testutil.ToFloat64(c.m.invocations.WithLabelValues("slow", "error")); v != 1 {
		t.Errorf(`invocations{slow,error} = %v, want 1`, v)
	}
}

// TestRestartLosesNothing: a message being handled when the connector stops
// is delivered again by the next connector, and messages published while no
// connector ran are delivered once one starts.
func TestRestartLosesNothing(t *testing.T) {
	h := newHarness(t)
	h.g.setFunctions(map[string]string{"finalize": "pulse.s3.events"})
	h.g.setBehaviour("finalize", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if string(body) == `{"n":1}` && r.Header.Get("X-Nats-Delivered") == "1" {
			blockUntilCancelled(w, r) // the first delivery of the first message never finishes
		}
	})
	first := newConnector(t, h.options())
	stop := run(t, first)
	publish(t, h.b, "pulse.s3.events", `{"n":1}`)
	h.g.wait("finalize", 1, 10*time.Second)
	stop() // mid-invocation

	publish(t, h.b, "pulse.s3.events", `{"n":2}`) // while no connector runs
	publish(t, h.b, "pulse.s3.events", `{"n":3}`)
	quiet(t, h.g, "finalize", 200*time.Millisecond, 1)

	// A new process: its own connection, same durable.
	o := h.options()
	o.Bus = connectBus(t, h.url)
	second := newConnector(t, o)
	run(t, second)
	calls := h.g.wait("finalize", 4, 10*time.Second)
	var bodies []string
	for _, c := range calls[1:] {
		bodies = append(bodies, string(c.body)+"#"+c.header.Get("X-Nats-Delivered"))
	}
	if !slices.Equal(bodies, []string{`{"n":1}#2`, `{"n":2}#1`, `{"n":3}#1`}) {
		t.Errorf("after restart got %v", bodies)
	}
	if calls[0].header.Get("X-Nats-Stream-Seq") != calls[1].header.Get("X-Nats-Stream-Seq") {
		t.Errorf("redelivery has another sequence")
	}
	eventually(t, 5*time.Second, "consumer settled", func() bool {
		return settled(t, h.b, "PULSE_EVENTS", DurableName("finalize", "pulse.s3.events"))
	})
	if v := testutil.ToFloat64(second.m.redeliveries.WithLabelValues("finalize")); v != 1 {
		t.Errorf("redeliveries = %v, want 1", v)
	}
}

// TestCrashRedelivers: a connector that dies without stopping (its NATS
// connection just goes away) does not lose the message it was handling: it
// comes back to another connector after AckWait.
func TestCrashRedelivers(t *testing.T) {
	h := newHarness(t)
	h.g.setFunctions(map[string]string{"finalize": "pulse.s3.events"})
	h.g.setBehaviour("finalize", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Nats-Delivered") == "1" {
			blockUntilCancelled(w, r)
		}
	})
	crashing := connectBus(t, h.url)
	o := h.options()
	o.Bus = crashing
	o.AckWait = time.Second
	first := newConnector(t, o)
	run(t, first)
	waitBound(t, first, "finalize pulse.s3.events")
	publish(t, h.b, "pulse.s3.events", `{"n":1}`)
	h.g.wait("finalize", 1, 10*time.Second)
	crashing.Close() // the process is gone as far as NATS can tell

	o.Bus = connectBus(t, h.url)
	second := newConnector(t, o)
	run(t, second)
	calls := h.g.wait("finalize", 2, 10*time.Second)
	if string(calls[1].body) != `{"n":1}` || calls[1].header.Get("X-Nats-Delivered") != "2" {
		t.Errorf("redelivery: body %q, delivered %s", calls[1].body, calls[1].header.Get("X-Nats-Delivered"))
	}
}

// TestLongInvocationIsKeptAlive: an invocation longer than AckWait is not
// redelivered while it runs, because the connector reports progress.
func TestLongInvocationIsKeptAlive(t *testing.T) {
	tier.Slow(t, "a 2.5 s invocation past a 1 s ack wait")
	h := newHarness(t)
	h.g.setFunctions(map[string]string{"transcode": "pulse.jobs.transcode.>"})
	h.g.setBehaviour("transcode", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(2500 * time.Millisecond)
	})
	o := h.options()
	o.AckWait = time.Second
	o.Concurrency = 2 // a free worker would pick up a redelivery at once
	c := newConnector(t, o)
	run(t, c)
	waitBound(t, c, "transcode pulse.jobs.transcode.>")
	publish(t, h.b, "pulse.jobs.transcode.1080p", "{}")
	h.g.wait("transcode", 1, 10*time.Second)
	eventually(t, 10*time.Second, "consumer settled", func() bool {
		return settled(t, h.b, "PULSE_JOBS", DurableName("transcode", "pulse.jobs.transcode.>"))
	})
	if n := len(h.g.callsOf("transcode")); n != 1 {
		t.Errorf("transcode was called %d times, want 1 (redelivered during a long invocation)", n)
	}
}

// TestTopicChangesAtRefresh: adding a topic annotation starts deliveries,
// removing it stops them, and adding it back resumes from where the durable
// stopped (messages in between are delivered, not lost).
func TestTopicChangesAtRefresh(t *testing.T) {
	h := newHarness(t)
	h.g.setFunctions(map[string]string{"audit-append": "-"})
	o := h.options()
	o.Refresh = time.Hour // refreshed by hand below
	c := newConnector(t, o)
	ctx := t.Context()
	if err := c.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	publish(t, h.b, "pulse.audit.view", "1")
	quiet(t, h.g, "audit-append", 300*time.Millisecond, 0)

	h.g.setFunctions(map[string]string{"audit-append": "pulse.audit.>"})
	if err := c.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	publish(t, h.b, "pulse.audit.view", "2")
	// A new durable starts at the beginning of the stream: "1" comes too.
	got := h.g.wait("audit-append", 2, 10*time.Second)
	if string(got[0].body) != "1" || string(got[1].body) != "2" {
		t.Errorf("got %q, %q", got[0].body, got[1].body)
	}
	// The gateway records a call before answering it: unbinding now would
	// cancel the invocation of "2", and it would come back after the rebind.
	eventually(t, 10*time.Second, "audit-append settled", func() bool {
		return settled(t, h.b, "PULSE_AUDIT", DurableName("audit-append", "pulse.audit.>"))
	})

	h.g.setFunctions(map[string]string{"audit-append": "-", "other": "pulse.audit.>"})
	if err := c.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if bs := c.Status().Bindings; len(bs) != 1 || bs[0].Function != "other" {
		t.Errorf("bindings after removal: %+v", bs)
	}
	publish(t, h.b, "pulse.audit.view", "3")
	h.g.wait("other", 3, 10*time.Second)
	quiet(t, h.g, "audit-append", 300*time.Millisecond, 2)

	// Function removed entirely, then redeployed with its topic.
	h.g.setFunctions(map[string]string{})
	if err := c.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	h.g.setFunctions(map[string]string{"audit-append": " pulse.audit.> "})
	if err := c.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	got = h.g.wait("audit-append", 3, 10*time.Second)
	if string(got[2].body) != "3" {
		t.Errorf("resumed with %q, want 3", got[2].body)
	}
	if testutil.ToFloat64(c.m.lag.WithLabelValues("other")) != 0 {
		// "other" was unbound at the last refresh: its series must be gone.
		t.Errorf("lag series of an unbound function kept")
	}
}

// TestStreamCreatedLater: a topic no stream captures yet is bound as soon as
// one does.
func TestStreamCreatedLater(t *testing.T) {
	h := newHarness(t)
	h.g.setFunctions(map[string]string{"thumbs": "media.thumbs"})
	o := h.options()
	c := newConnector(t, o)
	if err := c.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if bs := c.Status().Bindings; len(bs) != 1 || len(bs[0].Streams) != 0 {
		t.Fatalf("bindings %+v, want one without streams", bs)
	}
	if !strings.Contains(h.log.String(), "no JetStream stream captures this topic") {
		t.Errorf("no warning about the unbound topic:\n%s", h.log.String())
	}
	if _, err := h.b.EnsureStream(t.Context(), bus.StreamConfig{Name: "MEDIA", Subjects: []string{"media.>"}}); err != nil {
		t.Fatal(err)
	}
	run(t, c)
	waitBound(t, c, "thumbs media.thumbs")
	publish(t, h.b, "media.thumbs", "x")
	h.g.wait("thumbs", 1, 10*time.Second)
}

// TestMalformedAnnotations: empty entries and spaces are ignored, invalid
// subjects and unusable names are reported and skipped, and a topic that
// would feed a function its own dead letters is refused.
func TestMalformedAnnotations(t *testing.T) {
	h := newHarness(t)
	h.g.setFunctions(map[string]string{
		"messy":    " , pulse.audit.a ,,\tpulse.audit.b  ,bad subject, pulse..x, pulse.>.x, pulse.audit.a, pulse.dlq.> ,",
		"bad.name": "pulse.audit.a",
		"empty":    " , ,",
	})
	c := newConnector(t, h.options())
	if err := c.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, b := range c.Status().Bindings {
		got = append(got, b.Function+" "+b.Topic)
	}
	if want := []string{"messy pulse.audit.a", "messy pulse.audit.b"}; !slices.Equal(got, want) {
		t.Errorf("bindings %q, want %q", got, want)
	}
	logs := h.log.String()
	for _, want := range []string{`"topic":"bad subject"`, `"topic":"pulse..x"`, `"topic":"pulse.>.x"`,
		"own dead letters", `"function":"bad.name"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s:\n%s", want, logs)
		}
	}
	// Reported once, not at every refresh.
	if err := c.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(h.log.String(), `"topic":"pulse..x"`); n != 1 {
		t.Errorf("invalid topic reported %d times", n)
	}
	run(t, c)
	publish(t, h.b, "pulse.audit.a", "a")
	publish(t, h.b, "pulse.audit.b", "b")
	h.g.wait("messy", 2, 10*time.Second)
	quiet(t, h.g, "messy", 200*time.Millisecond, 2)
}

// TestMetrics: counters after deliveries, failures and dead letters; lag
// from the consumer; labels are function names, topic patterns and codes.
func TestMetrics(t *testing.T) {
	h := newHarness(t)
	h.g.setFunctions(map[string]string{"ok": "pulse.jobs.ok.*", "bad": "pulse.jobs.bad", "slow": "pulse.jobs.slow"})
	h.g.setBehaviour("bad", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusBadGateway) })
	release := make(chan struct{})
	h.g.setBehaviour("slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	o := h.options()
	o.MaxDeliver = 2
	o.Refresh = time.Hour
	c := newConnector(t, o)
	if err := c.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	publish(t, h.b, "pulse.jobs.ok.1", "{}")
	publish(t, h.b, "pulse.jobs.ok.2", "{}")
	publish(t, h.b, "pulse.jobs.bad", "{}")
	for i := range 3 {
		publish(t, h.b, "pulse.jobs.slow", fmt.Sprint(i))
	}
	h.g.wait("ok", 2, 10*time.Second)
	h.g.wait("bad", 2, 10*time.Second)
	h.g.wait("slow", 1, 10*time.Second)
	eventually(t, 5*time.Second, "bad settled", func() bool {
		return settled(t, h.b, "PULSE_JOBS", DurableName("bad", "pulse.jobs.bad"))
	})
	if err := c.Refresh(t.Context()); err != nil { // samples lag
		t.Fatal(err)
	}
	want := `
# HELP connector_dead_letters_total Messages given up on and sent to the function's dead-letter subject.
# TYPE connector_dead_letters_total counter
connector_dead_letters_total{function="bad"} 1
connector_dead_letters_total{function="ok"} 0
connector_dead_letters_total{function="slow"} 0
# HELP connector_failures_total Invocations that failed (non-2xx or no answer); each is retried or dead-lettered.
# TYPE connector_failures_total counter
connector_failures_total{function="bad"} 2
connector_failures_total{function="ok"} 0
connector_failures_total{function="slow"} 0
# HELP connector_invocations_total Function invocations by HTTP status code ("error" when no answer came: timeout, connection refused).
# TYPE connector_invocations_total counter
connector_invocations_total{code="200",function="ok"} 2
connector_invocations_total{code="502",function="bad"} 2
# HELP connector_lag_messages Messages waiting for the function in its durable consumers (NumPending), sampled at each refresh.
# TYPE connector_lag_messages gauge
connector_lag_messages{function="bad"} 0
connector_lag_messages{function="ok"} 0
connector_lag_messages{function="slow"} 2
# HELP connector_messages_delivered_total Messages a function accepted (answered 2xx), by function and topic pattern.
# TYPE connector_messages_delivered_total counter
connector_messages_delivered_total{function="bad",topic="pulse.jobs.bad"} 0
connector_messages_delivered_total{function="ok",topic="pulse.jobs.ok.*"} 2
connector_messages_delivered_total{function="slow",topic="pulse.jobs.slow"} 0
# HELP connector_redeliveries_total Deliveries of a message that had been delivered before (after a failure, a timeout or a restart).
# TYPE connector_redeliveries_total counter
connector_redeliveries_total{function="bad"} 1
connector_redeliveries_total{function="ok"} 0
connector_redeliveries_total{function="slow"} 0
`
	if err := testutil.GatherAndCompare(h.reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	// Concrete subjects and bodies never become labels.
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if strings.HasPrefix(l.GetValue(), "pulse.jobs.ok.") && l.GetValue() != "pulse.jobs.ok.*" {
					t.Errorf("%s has concrete subject label %s", mf.GetName(), l.GetValue())
				}
			}
		}
	}
	close(release)
	h.g.wait("slow", 3, 10*time.Second)
}

// TestGatewayFailureKeepsBindings: a gateway that refuses the credentials or
// fails keeps the current consumers running, and the error is reported.
func TestGatewayFailureKeepsBindings(t *testing.T) {
	h := newHarness(t)
	h.g.setFunctions(map[string]string{"finalize": "pulse.s3.events"})
	o := h.options()
	c := newConnector(t, o)
	if err := c.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	h.g.setListCode(http.StatusServiceUnavailable)
	err := c.Refresh(t.Context())
	if err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("Refresh = %v, want a 503 error", err)
	}
	if st := c.Status(); len(st.Bindings) != 1 || !strings.Contains(st.GatewayError, "503") {
		t.Errorf("status %+v", st)
	}
	run(t, c)
	publish(t, h.b, "pulse.s3.events", "{}")
	h.g.wait("finalize", 1, 10*time.Second)

	o.Password = "wrong"
	wrong := newConnector(t, o)
	if err := wrong.Refresh(t.Context()); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("wrong password: Refresh = %v, want a 401 error", err)
	}
	noLeak(t, h.log.String(), testPassword, "wrong")
}

func TestNewRejectsBadOptions(t *testing.T) {
	h := newHarness(t)
	for name, edit := range map[string]func(*Options){
		"no bus":         func(o *Options) { o.Bus = nil },
		"no gateway":     func(o *Options) { o.Gateway = "" },
		"ftp gateway":    func(o *Options) { o.Gateway = "ftp://x:1" },
		"creds in URL":   func(o *Options) { o.Gateway = "http://admin:pw@127.0.0.1:8080" },
		"short ack wait": func(o *Options) { o.AckWait = time.Millisecond },
		"zero backoff":   func(o *Options) { o.Backoff = []time.Duration{time.Second, 0} },
		"wild dlq":       func(o *Options) { o.DeadLetterPrefix = "pulse.*" },
	} {
		o := h.options()
		edit(&o)
		if _, err := New(o); err == nil {
			t.Errorf("%s: New accepted it", name)
		}
	}
	c := newConnector(t, h.options())
	c2 := newConnector(t, h.options()) // same registry: metrics are shared, not a conflict
	c.m.delivered.WithLabelValues("f", "t").Inc()
	if v := testutil.ToFloat64(c2.m.delivered.WithLabelValues("f", "t")); v != 1 {
		t.Errorf("second connector on the same registry counts apart: %v", v)
	}
}
