package chain

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/mieweb/pulsevault/shared/audit/event"
	"github.com/mieweb/pulsevault/shared/audit/record"
	"github.com/mieweb/pulsevault/shared/audit/verify"
	"github.com/mieweb/pulsevault/shared/bus"
	"github.com/mieweb/pulsevault/shared/faas/bootstrap"
	"github.com/mieweb/pulsevault/shared/storage"
	"github.com/mieweb/pulsevault/shared/testutil/testenv"
	"github.com/mieweb/pulsevault/shared/topology"
)

var testSigner = record.NewSigner(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, 32)))

type rig struct {
	env *testenv.Env
	st  *storage.Store
	b   *bus.Bus
}

func start(t *testing.T) *rig {
	t.Helper()
	env := testenv.Start(t)
	c := env.Config
	st, err := storage.FromConfig(c)
	if err != nil {
		t.Fatal(err)
	}
	b, err := bus.Connect(c.NATSURL, "auditchain-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	if _, err := bootstrap.Run(context.Background(), c, st, b, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	return &rig{env: env, st: st, b: b}
}

func (r *rig) chain(t *testing.T, cfg Config, now func() time.Time) *Chain {
	t.Helper()
	b, err := bus.Connect(r.env.Config.NATSURL, "auditchain-writer")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	c, err := New(context.Background(), Options{Bus: b, Store: r.st, Bucket: r.env.Config.AuditBucket,
		RetentionDays: r.env.Config.AuditRetentionDays, Signer: testSigner, Config: cfg,
		Logger: slog.New(slog.DiscardHandler), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ev(id string) event.Event {
	return event.Event{V: 1, ID: id, Time: time.Date(2026, 11, 3, 8, 0, 0, 0, time.UTC), Actor: "service:test",
		Action: event.URLSigned, Outcome: event.Success}
}

func (r *rig) verify(t *testing.T) *verify.Report {
	t.Helper()
	rep, err := verify.Verify(context.Background(), verify.Bucket{Store: r.st, Name: r.env.Config.AuditBucket},
		verify.Options{RetentionDays: r.env.Config.AuditRetentionDays,
			Keys: map[string]ed25519.PublicKey{testSigner.KeyID(): testSigner.Public()}})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		var out bytes.Buffer
		rep.Write(&out)
		t.Fatalf("verify:\n%s", out.String())
	}
	return rep
}

// Two writers pulling from one durable consumer, events published by four
// publishers with some re-published after the stream's dedup window would
// have let them through: one chain, every event once.
func TestWritersShareOneChain(t *testing.T) {
	r := start(t)
	cfg := Config{BatchMax: 200, BatchWait: 20 * time.Millisecond, CheckpointEvery: time.Hour, DedupWindow: time.Hour, AckWait: 5 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	writers := []*Chain{r.chain(t, cfg, nil), r.chain(t, cfg, nil)}
	for _, w := range writers {
		wg.Go(func() { _ = w.Run(ctx) })
	}
	defer func() { cancel(); wg.Wait() }()

	const n = 2000
	pub := event.NewPublisher(r.b, "test")
	var pwg sync.WaitGroup
	for p := range 4 {
		pwg.Go(func() {
			for i := p; i < n; i += 4 {
				if err := pub.Publish(context.Background(), ev(fmt.Sprintf("e-%05d", i))); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	pwg.Wait()
	// Re-publish 50 ids under other message ids: the stream keeps them,
	// the chain must not.
	for i := range 50 {
		data := []byte(fmt.Sprintf(`{"v":1,"id":"e-%05d","time":"2026-11-03T08:00:00Z","actor":"service:test","action":"url.signed","outcome":"success"}`, i*7))
		if err := r.b.Publish(context.Background(), "pulse.audit.url.signed", data, fmt.Sprintf("again-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	// And one malformed event, which must reach the dead-letter stream.
	if err := r.b.Publish(context.Background(), "pulse.audit.url.signed", []byte(`{"v":1,"id":"x","filename":"secret.mp4"}`), "bad-1"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		s, _, err := writers[0].readHead(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var dups, rejected uint64
		for _, w := range writers {
			dups += w.Status().Duplicates
			rejected += w.Status().Rejected
		}
		if s.Seq >= n && dups >= 50 && rejected == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("head at %d, %d duplicates, %d rejected after 30s; statuses %+v %+v", s.Seq, dups, rejected, writers[0].Status(), writers[1].Status())
		}
		time.Sleep(50 * time.Millisecond)
	}
	res, err := writers[1].Append(context.Background(), nil, true)
	if err != nil || res.Checkpoint == "" {
		t.Fatalf("forced checkpoint: %+v %v", res, err)
	}
	rep := r.verify(t)
	if rep.Records != n || rep.LastSeq != n || rep.Uncheckpointed != 0 || rep.RetentionChecked == 0 {
		t.Fatalf("report: %+v", rep)
	}
	s0, s1 := writers[0].Status(), writers[1].Status()
	t.Logf("writer 0: %+v\nwriter 1: %+v", s0, s1)
	if s0.Appended+s1.Appended != n {
		t.Fatalf("appended %d + %d", s0.Appended, s1.Appended)
	}
	// The dead letter kept the bytes.
	dlq, err := r.b.JetStream().Stream(context.Background(), "PULSE_DLQ")
	if err != nil {
		t.Fatal(err)
	}
	m, err := dlq.GetLastMsgForSubject(context.Background(), topology.DeadLetterAudit)
	if err != nil || !bytes.Contains(m.Data, []byte("secret.mp4")) || m.Header.Get(bus.HeaderDLQError) == "" {
		t.Fatalf("dead letter: %v %v", m, err)
	}
}

// A writer that dies between its commit and its writes leaves the batch in
// the head; the next writer writes exactly those bytes, and the events,
// redelivered, are recognised as appended.
func TestCommitWithoutWritesIsFinishedByTheNextWriter(t *testing.T) {
	r := start(t)
	cfg := Config{BatchMax: 100, BatchWait: 10 * time.Millisecond, CheckpointEvery: time.Hour, DedupWindow: time.Hour, AckWait: 5 * time.Second}
	dead := r.chain(t, cfg, nil)
	evs := []event.Event{ev("a"), ev("b"), ev("c")}
	s, rev, err := dead.readHead(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	next, _, _, err := dead.next(s, evs, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dead.cas(context.Background(), next, rev); err != nil {
		t.Fatal(err)
	}
	// "Crash": nothing written. The next writer gets the same events again.
	heir := r.chain(t, cfg, nil)
	res, err := heir.Append(context.Background(), append(evs, ev("d")), true)
	if err != nil {
		t.Fatal(err)
	}
	if res.Appended != 1 || res.Duplicates != 3 || res.FirstSeq != 4 {
		t.Fatalf("after recovery: %+v", res)
	}
	rep := r.verify(t)
	if rep.Records != 4 || rep.Batches != 2 {
		t.Fatalf("report %+v", rep)
	}
	// The locked bucket refuses to delete or overwrite a batch version.
	key := next.Objects[0].Key
	info, err := r.st.Stat(context.Background(), r.env.Config.AuditBucket, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.st.Remove(context.Background(), r.env.Config.AuditBucket, key, info.VersionID); err == nil {
		t.Fatal("locked batch version deleted")
	}
	if _, err := r.st.PutBytes(context.Background(), r.env.Config.AuditBucket, key, []byte("forged\n"),
		storage.PutOptions{IfNoneMatch: true, Retention: &storage.Retention{Mode: "COMPLIANCE", Until: time.Now().Add(time.Hour)}}); err == nil {
		t.Fatal("batch overwritten")
	}
	r.verify(t)
}

// Crossing midnight closes the old day with a checkpoint of all its records.
func TestDayBoundaryClosesTheDay(t *testing.T) {
	r := start(t)
	var mu sync.Mutex
	now := time.Date(2026, 11, 3, 23, 59, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	c := r.chain(t, Config{BatchMax: 100, BatchWait: 10 * time.Millisecond, CheckpointEvery: time.Hour, DedupWindow: time.Hour, AckWait: 5 * time.Second}, clock)
	if _, err := c.Append(context.Background(), []event.Event{ev("1"), ev("2")}, false); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	if due, err := c.Due(context.Background()); err != nil || !due {
		t.Fatalf("day close not due: %v", err)
	}
	res, err := c.Append(context.Background(), []event.Event{ev("3")}, false)
	if err != nil || res.Checkpoint != "checkpoints/000000000002.note" {
		t.Fatalf("%+v %v", res, err)
	}
	rep := r.verify(t)
	if rep.Days != 2 || rep.Uncheckpointed != 1 {
		t.Fatalf("%+v", rep)
	}
}
