package lease

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mieweb/pulsevault/shared/localstack"
	"github.com/mieweb/pulsevault/shared/testutil/tier"
)

// open starts a real NATS server and returns two Buckets over the same KV
// bucket, each on its own connection: two processes, as far as NATS knows.
func open(t *testing.T, ttl time.Duration) (*Bucket, *Bucket, jetstream.KeyValue) {
	t.Helper()
	srv, err := localstack.StartNATS(localstack.NATSOptions{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	var bs [2]*Bucket
	var kv jetstream.KeyValue
	for i := range bs {
		nc, err := nats.Connect(srv.URL())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		if bs[i], err = Open(t.Context(), js, "TEST_LEASES", "test", ttl); err != nil {
			t.Fatal(err)
		}
		kv = bs[i].kv
	}
	return bs[0], bs[1], kv
}

func TestLeaseIsExclusiveAndAsksTheHolder(t *testing.T) {
	a, b, kv := open(t, 3*time.Second)
	key := "3f2a9c+upload/with odd chars" // not a valid KV key as is
	var asked atomic.Int32
	held, err := a.Acquire(t.Context(), key, func() { asked.Add(1) })
	if err != nil {
		t.Fatal(err)
	}

	// A second process waits, asks the holder to let go, and times out.
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	_, err = b.Acquire(ctx, key, nil)
	cancel()
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("second Acquire while held: %v, want ErrTimeout", err)
	}
	waitFor(t, "the holder to be asked", func() bool { return asked.Load() > 0 })

	// Released on request: the waiter gets it.
	got := make(chan *Lease, 1)
	go func() {
		l, err := b.Acquire(t.Context(), key, nil)
		if err != nil {
			t.Error(err)
		}
		got <- l
	}()
	n := asked.Load()
	waitFor(t, "a second request", func() bool { return asked.Load() > n })
	if err := held.Release(); err != nil {
		t.Fatal(err)
	}
	l := <-got
	if l == nil {
		t.FailNow()
	}

	// Nothing of the caller's key is in the bucket.
	keys, err := kv.Keys(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if strings.Contains(k, "3f2a9c") || strings.Contains(k, "upload") {
			t.Fatalf("caller's key visible in the bucket: %q", k)
		}
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if err := l.Release(); err != nil {
		t.Fatalf("second Release: %v", err)
	}
	if _, err := a.Acquire(t.Context(), key, nil); err != nil {
		t.Fatalf("Acquire after release: %v", err)
	}
}

func TestLeaseRenewsWhileHeldAndExpiresWhenHolderDies(t *testing.T) {
	tier.Slow(t, "three lease TTLs of 1.5 s, then an expiry")
	ttl := 1500 * time.Millisecond
	a, b, _ := open(t, ttl)
	held, err := a.Acquire(t.Context(), "k", nil)
	if err != nil {
		t.Fatal(err)
	}
	// Three TTLs later it is still held: renewal works.
	time.Sleep(3 * ttl)
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	_, err = b.Acquire(ctx, "k", nil)
	cancel()
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("lease lost while its holder lives: %v", err)
	}

	// The holder dies without releasing: renewal stops, the key expires.
	close(held.stop)
	<-held.done
	start := time.Now()
	l, err := b.Acquire(t.Context(), "k", nil)
	if err != nil {
		t.Fatalf("after the holder died: %v", err)
	}
	t.Logf("taken over %v after the holder stopped renewing (TTL %v)", time.Since(start).Round(time.Millisecond), ttl)
	// The dead holder's late Release must not free the new holder's lease.
	if err := deleteAs(held); err != nil {
		t.Fatalf("stale release: %v", err)
	}
	ctx, cancel = context.WithTimeout(t.Context(), 200*time.Millisecond)
	_, err = a.Acquire(ctx, "k", nil)
	cancel()
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("a stale release freed the new holder's lease: %v", err)
	}
	_ = l.Release()
}

// deleteAs runs the delete half of Release for a lease whose renewal has
// already stopped.
func deleteAs(l *Lease) error {
	l.stop = make(chan struct{})
	l.done = make(chan struct{})
	close(l.done)
	return l.Release()
}

func TestOpenRefusesTinyTTL(t *testing.T) {
	if _, err := Open(t.Context(), nil, "X", "", time.Millisecond); err == nil {
		t.Fatal("TTL of 1ms accepted")
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A holder whose key was taken over (it expired while the holder was cut
// off, say) learns it through Lost at its next renewal.
func TestLeaseLostWhenTakenOver(t *testing.T) {
	ttl := 1500 * time.Millisecond
	a, b, kv := open(t, ttl)
	held, err := a.Acquire(t.Context(), "k", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := kv.Purge(t.Context(), hashKey("k")); err != nil {
		t.Fatal(err)
	}
	other, err := b.Acquire(t.Context(), "k", nil)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-held.Lost():
	case <-time.After(5 * ttl):
		t.Fatal("holder not told its lease was taken")
	}
	if err := held.Release(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-other.Lost():
		t.Fatal("the new holder lost its lease to the old holder's release")
	case <-time.After(ttl):
	}
	_ = other.Release()
}
