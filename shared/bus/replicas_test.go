package bus

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mieweb/pulsevault/shared/testutil/testenv"
)

// clusterBus connects to a real 3-node JetStream cluster, the shape of a
// production NATS (infra/helm/nats-values.yaml).
func clusterBus(t *testing.T) *Bus {
	t.Helper()
	b, err := Connect(testenv.NATSCluster(t, 3), "replicas-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

func streamReplicas(t *testing.T, b *Bus, name string) int {
	t.Helper()
	s, err := b.JetStream().Stream(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	return s.CachedInfo().Config.Replicas
}

// Streams get the replicas asked for, and a caller that does not say
// (Replicas 0) keeps what the stream has instead of resetting it to one:
// a bootstrap or a provider restart never makes a replicated stream
// single-copy. An explicit count converges an existing stream to it.
func TestEnsureStreamReplicas(t *testing.T) {
	b := clusterBus(t)
	ctx := t.Context()
	cfg := StreamConfig{Name: "JOBS", Subjects: []string{"jobs.>"}, MaxAge: time.Hour, Replicas: 3}
	if created, err := b.EnsureStream(ctx, cfg); err != nil || !created {
		t.Fatalf("create: created=%v err=%v", created, err)
	}
	if n := streamReplicas(t, b, "JOBS"); n != 3 {
		t.Fatalf("new stream has %d replicas, want 3", n)
	}

	unsaid := cfg
	unsaid.Replicas = 0
	if _, err := b.EnsureStream(ctx, unsaid); err != nil {
		t.Fatal(err)
	}
	if n := streamReplicas(t, b, "JOBS"); n != 3 {
		t.Fatalf("EnsureStream without a replica count left %d replicas, want the stream's 3", n)
	}

	// An older bootstrap made it single-copy: the configured count converges it.
	one := cfg
	one.Replicas = 1
	if _, err := b.EnsureStream(ctx, one); err != nil {
		t.Fatal(err)
	}
	if n := streamReplicas(t, b, "JOBS"); n != 1 {
		t.Fatalf("scaled to %d replicas, want 1", n)
	}
	if _, err := b.EnsureStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if n := streamReplicas(t, b, "JOBS"); n != 3 {
		t.Fatalf("converged to %d replicas, want 3", n)
	}

	// A new stream without a count has one copy.
	if _, err := b.EnsureStream(ctx, StreamConfig{Name: "SOLO", Subjects: []string{"solo"}}); err != nil {
		t.Fatal(err)
	}
	if n := streamReplicas(t, b, "SOLO"); n != 1 {
		t.Fatalf("new stream without a count has %d replicas, want 1", n)
	}
}

// Key-value buckets likewise: created with the count asked for, kept when
// a caller does not say (nats.go's CreateOrUpdateKeyValue alone would make
// them single-copy again), converged when it does.
func TestEnsureKeyValueReplicas(t *testing.T) {
	b := clusterBus(t)
	ctx := t.Context()
	js := b.JetStream()
	kvReplicas := func() int {
		t.Helper()
		kv, err := js.KeyValue(ctx, "LOCKS")
		if err != nil {
			t.Fatal(err)
		}
		st, err := kv.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config.Replicas
	}
	cfg := jetstream.KeyValueConfig{Bucket: "LOCKS", TTL: time.Minute, Replicas: 3}
	kv, err := EnsureKeyValue(ctx, js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if n := kvReplicas(); n != 3 {
		t.Fatalf("new bucket has %d replicas, want 3", n)
	}
	unsaid := cfg
	unsaid.Replicas = 0
	unsaid.Description = "updated"
	if _, err := EnsureKeyValue(ctx, js, unsaid); err != nil {
		t.Fatal(err)
	}
	if n := kvReplicas(); n != 3 {
		t.Fatalf("EnsureKeyValue without a count left %d replicas, want the bucket's 3", n)
	}
	if e, err := kv.Get(ctx, "k"); err != nil || string(e.Value()) != "v" {
		t.Fatalf("value after update: %v", err)
	}
	one := cfg
	one.Replicas = 1
	if _, err := EnsureKeyValue(ctx, js, one); err != nil {
		t.Fatal(err)
	}
	if n := kvReplicas(); n != 1 {
		t.Fatalf("scaled to %d replicas, want 1", n)
	}
}
