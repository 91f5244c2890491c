package bus

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mieweb/pulsevault/shared/localstack"
	"github.com/mieweb/pulsevault/shared/platform/tracing"
)

func startServer(t *testing.T, dir string, port int) *localstack.NATS {
	t.Helper()
	s, err := localstack.StartNATS(localstack.NATSOptions{StoreDir: dir, Port: port})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// setup starts a fresh server and a connected Bus, both torn down with the test.
func setup(t *testing.T) (*Bus, *localstack.NATS) {
	t.Helper()
	s := startServer(t, t.TempDir(), 0)
	t.Cleanup(s.Shutdown)
	b, err := Connect(s.URL(), t.Name())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b, s
}

func ensureStream(t *testing.T, b *Bus, name string, subjects ...string) {
	t.Helper()
	if _, err := b.EnsureStream(t.Context(), StreamConfig{Name: name, Subjects: subjects}); err != nil {
		t.Fatal(err)
	}
}

func publish(t *testing.T, b *Bus, subject, data, id string) {
	t.Helper()
	if err := b.Publish(t.Context(), subject, []byte(data), id); err != nil {
		t.Fatal(err)
	}
}

func consume(t *testing.T, b *Bus, o ConsumeOptions, h Handler) *Consumer {
	t.Helper()
	c, err := b.Consume(t.Context(), o, h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	return c
}

// delivery is what a test handler saw, and when.
type delivery struct {
	Msg
	at time.Time
}

// recorder collects deliveries and lets a test wait for them.
type recorder struct {
	mu   sync.Mutex
	got  []delivery
	more chan struct{}
}

func newRecorder() *recorder { return &recorder{more: make(chan struct{}, 1000)} }

func (r *recorder) add(m Msg) {
	r.mu.Lock()
	r.got = append(r.got, delivery{Msg: m, at: time.Now()})
	r.mu.Unlock()
	r.more <- struct{}{}
}

func (r *recorder) all() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.got...)
}

// wait blocks until n deliveries were recorded.
func (r *recorder) wait(t *testing.T, n int, timeout time.Duration) []delivery {
	t.Helper()
	deadline := time.After(timeout)
	for {
		if got := r.all(); len(got) >= n {
			return got
		}
		select {
		case <-r.more:
		case <-deadline:
			t.Fatalf("got %d deliveries, want %d", len(r.all()), n)
		}
	}
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func consumerInfo(t *testing.T, b *Bus, stream, durable string) *jetstream.ConsumerInfo {
	t.Helper()
	c, err := b.JetStream().Consumer(t.Context(), stream, durable)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// settled reports whether the consumer has nothing pending or unacked.
func settled(t *testing.T, b *Bus, stream, durable string) func() bool {
	return func() bool {
		info := consumerInfo(t, b, stream, durable)
		return info.NumPending == 0 && info.NumAckPending == 0
	}
}

func TestConnectFailsClearly(t *testing.T) {
	_, err := Connect("nats://user:s3cret@127.0.0.1:1", "test")
	if err == nil {
		t.Fatal("connected to a closed port")
	}
	if !strings.Contains(err.Error(), "127.0.0.1:1") || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("error should name the server but not the password: %v", err)
	}
	if _, err := ForFunction("", "media"); err == nil || err.Error() != "media: NATS_URL is required" {
		t.Fatalf("a function without NATS_URL: %v", err)
	}
}

func TestEnsureStream(t *testing.T) {
	b, _ := setup(t)
	ctx := t.Context()
	cfg := StreamConfig{Name: "JOBS", Subjects: []string{"jobs.>"}, MaxAge: time.Hour}

	created, err := b.EnsureStream(ctx, cfg)
	if err != nil || !created {
		t.Fatalf("first EnsureStream: created=%v err=%v", created, err)
	}
	s, err := b.JetStream().Stream(ctx, "JOBS")
	if err != nil {
		t.Fatal(err)
	}
	before := s.CachedInfo()
	if before.Config.Duplicates != DefaultDuplicates || before.Config.Replicas != 1 ||
		before.Config.Storage != jetstream.FileStorage {
		t.Fatalf("defaults not applied: %+v", before.Config)
	}

	created, err = b.EnsureStream(ctx, cfg)
	if err != nil || created {
		t.Fatalf("second EnsureStream: created=%v err=%v", created, err)
	}
	after, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprintf("%+v", after.Config) != fmt.Sprintf("%+v", before.Config) {
		t.Fatalf("config changed:\n%+v\n%+v", before.Config, after.Config)
	}

	cfg.MaxAge = 2 * time.Hour
	created, err = b.EnsureStream(ctx, cfg)
	if err != nil || created {
		t.Fatalf("EnsureStream with new MaxAge: created=%v err=%v", created, err)
	}
	after, err = s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after.Config.MaxAge != 2*time.Hour {
		t.Fatalf("MaxAge = %v, want 2h", after.Config.MaxAge)
	}

	// The server refuses a dedup window longer than the retention.
	if _, err := b.EnsureStream(ctx, StreamConfig{Name: "SHORT", Subjects: []string{"short"}, MaxAge: 30 * time.Second}); err != nil {
		t.Fatalf("short MaxAge with the default dedup window: %v", err)
	}
}

func TestPublishDedup(t *testing.T) {
	b, _ := setup(t)
	ensureStream(t, b, "JOBS", "jobs.>")

	publish(t, b, "jobs.a", "one", "job-1")
	publish(t, b, "jobs.a", "one", "job-1") // a duplicate is not an error
	publish(t, b, "jobs.a", "two", "")      // no id, no dedup
	publish(t, b, "jobs.a", "two", "")

	s, err := b.JetStream().Stream(t.Context(), "JOBS")
	if err != nil {
		t.Fatal(err)
	}
	if n := s.CachedInfo().State.Msgs; n != 3 {
		t.Fatalf("stream holds %d messages, want 3", n)
	}

	if err := b.Publish(t.Context(), "nobody.listens", nil, "x"); err == nil {
		t.Fatal("publish to a subject no stream captures succeeded")
	}
}

func TestConsumeAcks(t *testing.T) {
	b, _ := setup(t)
	ensureStream(t, b, "JOBS", "jobs.>")
	rec := newRecorder()
	consume(t, b, ConsumeOptions{Stream: "JOBS", Durable: "w", AckWait: time.Second},
		func(ctx context.Context, m Msg) error { rec.add(m); return nil })

	publish(t, b, "jobs.a", "hello", "1")
	got := rec.wait(t, 1, 5*time.Second)
	if string(got[0].Data) != "hello" || got[0].Subject != "jobs.a" || got[0].NumDelivered != 1 ||
		got[0].Stream != "JOBS" || got[0].Sequence != 1 {
		t.Fatalf("unexpected delivery: %+v", got[0].Msg)
	}
	eventually(t, 5*time.Second, "ack", settled(t, b, "JOBS", "w"))

	time.Sleep(1500 * time.Millisecond) // past AckWait: an unacked message would be back
	if n := len(rec.all()); n != 1 {
		t.Fatalf("delivered %d times, want 1", n)
	}
}

func TestConsumeRetriesWithBackoff(t *testing.T) {
	b, _ := setup(t)
	ensureStream(t, b, "JOBS", "jobs.>")
	rec := newRecorder()
	backoff := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond}
	consume(t, b, ConsumeOptions{Stream: "JOBS", Durable: "w", Backoff: backoff},
		func(ctx context.Context, m Msg) error {
			rec.add(m)
			if m.NumDelivered < 3 {
				return errors.New("transient")
			}
			return nil
		})

	publish(t, b, "jobs.a", "x", "1")
	got := rec.wait(t, 3, 10*time.Second)
	for i, d := range got {
		if d.NumDelivered != uint64(i+1) {
			t.Fatalf("delivery %d has NumDelivered %d", i+1, d.NumDelivered)
		}
	}
	for i := 1; i < len(got); i++ {
		if gap := got[i].at.Sub(got[i-1].at); gap < backoff[i-1] {
			t.Errorf("redelivery %d came after %v, backoff is %v", i+1, gap, backoff[i-1])
		}
	}
	eventually(t, 5*time.Second, "ack", settled(t, b, "JOBS", "w"))
	if n := len(rec.all()); n != 3 {
		t.Fatalf("delivered %d times, want 3", n)
	}
}

func TestConsumeDeadLetters(t *testing.T) {
	t.Run("after MaxDeliver, plain subject", func(t *testing.T) {
		b, _ := setup(t)
		ensureStream(t, b, "JOBS", "jobs.>")
		dlq, err := b.Conn().SubscribeSync("dead.jobs")
		if err != nil {
			t.Fatal(err)
		}
		rec := newRecorder()
		consume(t, b, ConsumeOptions{
			Stream: "JOBS", Durable: "w", MaxDeliver: 3,
			Backoff:    []time.Duration{10 * time.Millisecond},
			DeadLetter: "dead.jobs",
		}, func(ctx context.Context, m Msg) error {
			rec.add(m)
			return fmt.Errorf("attempt %d:\nffmpeg exited 1", m.NumDelivered)
		})

		publish(t, b, "jobs.a", "payload", "1")
		m, err := dlq.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if string(m.Data) != "payload" {
			t.Fatalf("dead letter data %q", m.Data)
		}
		want := map[string]string{
			HeaderDLQSubject:    "jobs.a",
			HeaderDLQError:      "attempt 3: ffmpeg exited 1",
			HeaderDLQDeliveries: "3",
			HeaderDLQStream:     "JOBS",
			HeaderDLQSequence:   "1",
		}
		for k, v := range want {
			if got := m.Header.Get(k); got != v {
				t.Errorf("header %s = %q, want %q", k, got, v)
			}
		}
		if m.Header.Get(jetstream.MsgIDHeader) != "" {
			t.Errorf("the original Nats-Msg-Id leaked into the dead letter")
		}
		eventually(t, 5*time.Second, "term", settled(t, b, "JOBS", "w"))
		time.Sleep(100 * time.Millisecond)
		if n := len(rec.all()); n != 3 {
			t.Fatalf("handler ran %d times, want 3", n)
		}
	})

	t.Run("ErrPermanent at once, into a stream", func(t *testing.T) {
		b, _ := setup(t)
		ensureStream(t, b, "JOBS", "jobs.>")
		ensureStream(t, b, "DLQ", "dead.>")
		rec := newRecorder()
		consume(t, b, ConsumeOptions{Stream: "JOBS", Durable: "w", DeadLetter: "dead.jobs"},
			func(ctx context.Context, m Msg) error {
				rec.add(m)
				return fmt.Errorf("decode event: %w", ErrPermanent)
			})

		publish(t, b, "jobs.a", "{bad json", "1")
		var raw *jetstream.RawStreamMsg
		eventually(t, 10*time.Second, "dead letter in stream DLQ", func() bool {
			s, err := b.JetStream().Stream(t.Context(), "DLQ")
			if err != nil {
				t.Fatal(err)
			}
			raw, err = s.GetMsg(t.Context(), 1)
			return err == nil
		})
		if string(raw.Data) != "{bad json" || raw.Subject != "dead.jobs" ||
			raw.Header.Get(HeaderDLQDeliveries) != "1" ||
			raw.Header.Get(HeaderDLQError) != "decode event: permanent failure" {
			t.Fatalf("unexpected dead letter: %s %q %v", raw.Subject, raw.Data, raw.Header)
		}
		eventually(t, 5*time.Second, "term", settled(t, b, "JOBS", "w"))
		if n := len(rec.all()); n != 1 {
			t.Fatalf("handler ran %d times, want 1", n)
		}
	})
}

func TestConsumeResumesAfterRestart(t *testing.T) {
	t.Run("Stop", func(t *testing.T) {
		b, _ := setup(t)
		ensureStream(t, b, "JOBS", "jobs.>")
		// Two workers: one busy with a long job, one parked in a pull request.
		opts := ConsumeOptions{Stream: "JOBS", Durable: "w", Concurrency: 2}
		started := make(chan struct{})
		c, err := b.Consume(t.Context(), opts, func(ctx context.Context, m Msg) error {
			close(started)
			<-ctx.Done() // interrupted by Stop
			return ctx.Err()
		})
		if err != nil {
			t.Fatal(err)
		}
		publish(t, b, "jobs.a", "x", "1")
		<-started
		c.Stop()
		// Published after Stop: the abandoned pull request must not swallow
		// it (that would hold it back for the 60s AckWait).
		publish(t, b, "jobs.a", "y", "2")

		rec := newRecorder()
		consume(t, b, opts, func(ctx context.Context, m Msg) error { rec.add(m); return nil })
		got := rec.wait(t, 2, 10*time.Second)
		byData := map[string]Msg{}
		for _, d := range got {
			byData[string(d.Data)] = d.Msg
		}
		if byData["x"].NumDelivered != 2 || byData["y"].NumDelivered != 1 {
			t.Fatalf("unexpected deliveries: %+v", got)
		}
		eventually(t, 5*time.Second, "ack", settled(t, b, "JOBS", "w"))
	})

	t.Run("crash", func(t *testing.T) {
		b, s := setup(t)
		ensureStream(t, b, "JOBS", "jobs.>")
		opts := ConsumeOptions{Stream: "JOBS", Durable: "w", AckWait: time.Second}
		started, release := make(chan struct{}), make(chan struct{})
		c := consume(t, b, opts, func(ctx context.Context, m Msg) error {
			close(started)
			<-release
			return nil
		})
		publish(t, b, "jobs.a", "x", "1")
		<-started
		b.Close() // the process dies: its ack never reaches the server
		close(release)
		c.Stop()

		b2, err := Connect(s.URL(), "restarted")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(b2.Close)
		rec := newRecorder()
		consume(t, b2, opts, func(ctx context.Context, m Msg) error { rec.add(m); return nil })
		got := rec.wait(t, 1, 10*time.Second)
		if string(got[0].Data) != "x" || got[0].NumDelivered != 2 {
			t.Fatalf("unexpected redelivery: %+v", got[0].Msg)
		}
	})
}

func TestConsumeRecoversFromPanic(t *testing.T) {
	b, _ := setup(t)
	ensureStream(t, b, "JOBS", "jobs.>")
	rec := newRecorder()
	consume(t, b, ConsumeOptions{Stream: "JOBS", Durable: "w", Backoff: []time.Duration{10 * time.Millisecond}},
		func(ctx context.Context, m Msg) error {
			rec.add(m)
			if m.NumDelivered == 1 {
				var meta map[string]string
				meta["boom"] = "nil map" // a real bug, not a staged panic(...)
			}
			return nil
		})
	publish(t, b, "jobs.a", "x", "1")
	got := rec.wait(t, 2, 10*time.Second)
	if got[1].NumDelivered != 2 {
		t.Fatalf("second delivery has NumDelivered %d", got[1].NumDelivered)
	}
	eventually(t, 5*time.Second, "ack", settled(t, b, "JOBS", "w"))
}

func TestConsumeProgressHoldsTheMessage(t *testing.T) {
	b, _ := setup(t)
	ensureStream(t, b, "JOBS", "jobs.>")
	rec := newRecorder()
	consume(t, b, ConsumeOptions{Stream: "JOBS", Durable: "w", AckWait: time.Second, Concurrency: 2},
		func(ctx context.Context, m Msg) error {
			rec.add(m)
			for range 8 { // a 2s job, four times AckWait/2
				time.Sleep(250 * time.Millisecond)
				if err := m.Progress(); err != nil {
					return err
				}
			}
			return nil
		})
	publish(t, b, "jobs.a", "x", "1")
	rec.wait(t, 1, 5*time.Second)
	eventually(t, 10*time.Second, "ack", settled(t, b, "JOBS", "w"))
	if n := len(rec.all()); n != 1 {
		t.Fatalf("delivered %d times, want 1: Progress did not hold the message", n)
	}
}

// A message whose deliveries keep ending without a verdict (here: handlers
// stuck past AckWait; in life: a process that dies on it) is dead-lettered
// instead of looping forever.
func TestConsumeGivesUpWithoutVerdict(t *testing.T) {
	b, _ := setup(t)
	ensureStream(t, b, "JOBS", "jobs.>")
	dlq, err := b.Conn().SubscribeSync("dead.jobs")
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	rec := newRecorder()
	c := consume(t, b, ConsumeOptions{
		Stream: "JOBS", Durable: "w", MaxDeliver: 1, AckWait: 300 * time.Millisecond,
		Concurrency: 3, DeadLetter: "dead.jobs",
	}, func(ctx context.Context, m Msg) error {
		rec.add(m)
		<-release
		return nil
	})
	publish(t, b, "jobs.a", "x", "1")
	m, err := dlq.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.Get(HeaderDLQDeliveries) != "3" || !strings.Contains(m.Header.Get(HeaderDLQError), "no verdict") {
		t.Fatalf("unexpected dead letter headers: %v", m.Header)
	}
	close(release)
	c.Stop()
	if n := len(rec.all()); n != 2 {
		t.Fatalf("handler ran %d times, want 2", n)
	}
}

func TestConsumeConcurrency(t *testing.T) {
	b, _ := setup(t)
	ensureStream(t, b, "JOBS", "jobs.>")
	var (
		mu             sync.Mutex
		active, peak   int
		release        = make(chan struct{})
		three          = make(chan struct{})
		handled        = newRecorder()
		closeThreeOnce sync.Once
	)
	consume(t, b, ConsumeOptions{Stream: "JOBS", Durable: "w", Concurrency: 3},
		func(ctx context.Context, m Msg) error {
			mu.Lock()
			active++
			peak = max(peak, active)
			if active == 3 {
				closeThreeOnce.Do(func() { close(three) })
			}
			mu.Unlock()
			<-release
			mu.Lock()
			active--
			mu.Unlock()
			handled.add(m)
			return nil
		})
	for i := range 5 {
		publish(t, b, "jobs.a", strconv.Itoa(i), strconv.Itoa(i))
	}
	select {
	case <-three:
	case <-time.After(10 * time.Second):
		t.Fatal("never had 3 handlers running at once")
	}
	time.Sleep(100 * time.Millisecond)
	close(release)
	handled.wait(t, 5, 10*time.Second)
	mu.Lock()
	defer mu.Unlock()
	if peak != 3 {
		t.Fatalf("peak concurrency %d, want 3", peak)
	}
}

func TestConsumerRecreatedWhenDeleted(t *testing.T) {
	b, _ := setup(t)
	ensureStream(t, b, "JOBS", "jobs.>")
	rec := newRecorder()
	consume(t, b, ConsumeOptions{Stream: "JOBS", Durable: "w"},
		func(ctx context.Context, m Msg) error { rec.add(m); return nil })
	publish(t, b, "jobs.a", "1", "1")
	rec.wait(t, 1, 5*time.Second)
	eventually(t, 5*time.Second, "ack", settled(t, b, "JOBS", "w"))

	if err := b.JetStream().DeleteConsumer(t.Context(), "JOBS", "w"); err != nil {
		t.Fatal(err)
	}
	publish(t, b, "jobs.a", "2", "2")
	got := rec.wait(t, 2, 15*time.Second)
	// The new consumer starts from the beginning of the stream: the first
	// message comes again, which idempotent handlers absorb.
	if string(got[len(got)-1].Data) != "1" && string(got[len(got)-1].Data) != "2" {
		t.Fatalf("unexpected delivery %q", got[len(got)-1].Data)
	}
	eventually(t, 10*time.Second, "recreated consumer to catch up", settled(t, b, "JOBS", "w"))
}

func TestServerRestart(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir, 0)
	u, err := url.Parse(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatal(err)
	}
	b, err := Connect(s.URL(), "restart")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	ensureStream(t, b, "JOBS", "jobs.>")
	rec := newRecorder()
	consume(t, b, ConsumeOptions{Stream: "JOBS", Durable: "w", Concurrency: 2},
		func(ctx context.Context, m Msg) error { rec.add(m); return nil })
	publish(t, b, "jobs.a", "before", "1")
	rec.wait(t, 1, 5*time.Second)
	// Let the ack land first: an ack lost to the shutdown is only redelivered
	// after AckWait, which is not what this test is about.
	eventually(t, 5*time.Second, "ack before the restart", settled(t, b, "JOBS", "w"))

	s.Shutdown()
	// A publisher caught by the outage waits it out instead of failing.
	during := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		during <- b.Publish(ctx, "jobs.a", []byte("during"), "2")
	}()
	time.Sleep(300 * time.Millisecond)

	s = startServer(t, dir, port)
	t.Cleanup(s.Shutdown)
	if err := <-during; err != nil {
		t.Fatalf("publish during the outage: %v", err)
	}
	publish(t, b, "jobs.a", "after", "3")

	got := rec.wait(t, 3, 15*time.Second)
	seen := map[string]bool{}
	for _, d := range got {
		seen[string(d.Data)] = true
	}
	if !seen["during"] || !seen["after"] {
		t.Fatalf("after restart got %v", seen)
	}
	eventually(t, 10*time.Second, "ack", settled(t, b, "JOBS", "w"))
	info := consumerInfo(t, b, "JOBS", "w")
	if info.Delivered.Stream != 3 {
		t.Fatalf("consumer delivered up to stream seq %d, want 3", info.Delivered.Stream)
	}
}

// The publisher's request id and trace context reach the consumer's handler
// through the message headers.
func TestPublishCarriesRequestContext(t *testing.T) {
	b, _ := setup(t)
	ensureStream(t, b, "JOBS", "jobs.>")
	type seen struct{ rid, trace string }
	got := make(chan seen, 1)
	consume(t, b, ConsumeOptions{Stream: "JOBS", Durable: "w"}, func(ctx context.Context, m Msg) error {
		got <- seen{tracing.RequestID(ctx), tracing.TraceID(ctx)}
		return nil
	})
	in := http.Header{}
	in.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	in.Set(tracing.HeaderRequestID, "req-9")
	if err := b.Publish(tracing.Extract(t.Context(), in), "jobs.a", []byte("x"), "1"); err != nil {
		t.Fatal(err)
	}
	select {
	case g := <-got:
		if g.rid != "req-9" || g.trace != "4bf92f3577b34da6a3ce929d0e0e4736" {
			t.Fatalf("handler saw request id %q, trace %q", g.rid, g.trace)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no delivery")
	}
}
