package lease

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mieweb/pulsevault/shared/testutil/testenv"
)

// On a real 3-node cluster the lease bucket has the copies asked for, and
// a later Open that does not say (an older replica, a test) keeps them.
func TestOpenReplicated(t *testing.T) {
	nc, err := nats.Connect(testenv.NATSCluster(t, 3))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	replicas := func() int {
		t.Helper()
		s, err := js.Stream(t.Context(), "KV_LEASES")
		if err != nil {
			t.Fatal(err)
		}
		return s.CachedInfo().Config.Replicas
	}
	b, err := OpenReplicated(t.Context(), js, "LEASES", "test", 3*time.Second, 3)
	if err != nil {
		t.Fatal(err)
	}
	if n := replicas(); n != 3 {
		t.Fatalf("lease bucket has %d replicas, want 3", n)
	}
	l, err := b.Acquire(t.Context(), "upload-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	if _, err := Open(t.Context(), js, "LEASES", "test", 3*time.Second); err != nil {
		t.Fatal(err)
	}
	if n := replicas(); n != 3 {
		t.Fatalf("Open without a count left %d replicas, want the bucket's 3", n)
	}
}
