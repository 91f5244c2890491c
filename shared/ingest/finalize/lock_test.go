package finalize

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mieweb/pulsevault/shared/localstack"
	"github.com/mieweb/pulsevault/shared/testutil/tier"
)

func testLeases(t *testing.T, ttl time.Duration) *leases {
	t.Helper()
	ns, err := localstack.StartNATS(localstack.NATSOptions{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	l, _ := leasesOn(t, ns, ttl)
	return l
}

// leasesOn opens the lease bucket over a connection of its own to ns.
func leasesOn(t *testing.T, ns *localstack.NATS, ttl time.Duration) (*leases, *nats.Conn) {
	t.Helper()
	nc, err := nats.Connect(ns.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	l, err := newLeases(context.Background(), js, ttl, 0)
	if err != nil {
		t.Fatal(err)
	}
	return l, nc
}

// A replica killed while holding a lease (its connection drops, so it
// neither renews nor releases) blocks the upload for about the TTL, not
// for good.
func TestLeaseOfADeadHolderExpires(t *testing.T) {
	ns, err := localstack.StartNATS(localstack.NATSOptions{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	dead, conn := leasesOn(t, ns, 2*time.Second)
	if _, _, err := dead.acquire(context.Background(), "up1"); err != nil {
		t.Fatal(err)
	}
	conn.Close() // the replica is gone; release is never called
	l, _ := leasesOn(t, ns, 2*time.Second)
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
	tier.Slow(t, "waits out a 2 s lease TTL")
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

// A holder that cannot renew its lease for a TTL (NATS away) stops: its
// context ends with errLeaseLost.
func TestLeaseLostCancelsTheHolder(t *testing.T) {
	tier.Slow(t, "waits for a 2 s lease to be lost")
	ns, err := localstack.StartNATS(localstack.NATSOptions{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	l, _ := leasesOn(t, ns, 2*time.Second)
	held, release, err := l.acquire(context.Background(), "up1")
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	ns.Shutdown()
	select {
	case <-held.Done():
		if !errors.Is(context.Cause(held), errLeaseLost) {
			t.Fatalf("holder's context ended with %v, want errLeaseLost", context.Cause(held))
		}
	case <-time.After(time.Minute):
		t.Fatal("the holder kept working on a lease it could not renew")
	}
}
