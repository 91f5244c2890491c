package finalize

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mieweb/pulsevault/shared/localnats"
)

func testLeases(t *testing.T, ttl time.Duration) *leases {
	t.Helper()
	ns, err := localnats.Start(localnats.Options{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	nc, err := nats.Connect(ns.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	l, err := newLeases(context.Background(), js, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// A replica killed while holding a lease (it neither refreshes nor
// releases it) blocks the upload for about the TTL, not for good.
func TestLeaseOfADeadHolderExpires(t *testing.T) {
	l := testLeases(t, 2*time.Second)
	dead, kill := context.WithCancel(context.Background())
	if _, _, err := l.acquire(dead, "up1"); err != nil {
		t.Fatal(err)
	}
	kill() // its keep-alive stops; release is never called
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, release, err := l.acquire(ctx, "up1")
	if err != nil {
		t.Fatalf("the lease of a dead holder was not freed within a minute: %v", err)
	}
	release()
	t.Logf("lease of a dead holder free after %s (TTL 2s)", time.Since(start).Round(time.Millisecond))
}

// A live holder keeps its lease past the TTL; once it releases, the next
// one gets it.
func TestLeaseOfALiveHolderHolds(t *testing.T) {
	l := testLeases(t, 2*time.Second)
	held, release, err := l.acquire(context.Background(), "up1")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Second)
	defer cancel()
	if _, _, err := l.acquire(ctx, "up1"); err == nil {
		t.Fatal("a second holder got the lease while the first was alive")
	}
	if err := context.Cause(held); err != nil {
		t.Fatalf("the live holder's context ended: %v", err)
	}
	release()
	ctx2, cancel2 := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel2()
	_, release2, err := l.acquire(ctx2, "up1")
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	release2()
}

// A holder whose lease was taken over stops: its context ends with
// errLeaseLost.
func TestLeaseLostCancelsTheHolder(t *testing.T) {
	l := testLeases(t, 2*time.Second)
	held, release, err := l.acquire(context.Background(), "up1")
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if err := l.kv.Delete(context.Background(), "up1"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.kv.Create(context.Background(), "up1", stamp()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-held.Done():
		if !errors.Is(context.Cause(held), errLeaseLost) {
			t.Fatalf("holder's context ended with %v, want errLeaseLost", context.Cause(held))
		}
	case <-time.After(time.Minute):
		t.Fatal("the holder kept working on a lease another replica took")
	}
}
