package bootstrap_test

import (
	"log/slog"
	"testing"

	"github.com/mieweb/pulsevault/shared/bus"
	"github.com/mieweb/pulsevault/shared/faas/bootstrap"
	"github.com/mieweb/pulsevault/shared/testutil/testenv"
)

// Against a real 3-node JetStream cluster, bootstrap makes every stream with
// NATS_REPLICAS copies, converges one an older run left single-copy, and a
// second run changes nothing (before, every run reset them all to one copy).
func TestBootstrapReplicatesStreams(t *testing.T) {
	f := setup(t) // versitygw for the buckets and the canary
	b, err := bus.Connect(testenv.NATSCluster(t, 3), "bootstrap-replicas-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	ctx := t.Context()
	cfg := f.env.Config
	cfg.NATSReplicas = 3
	streams := bootstrap.Streams(cfg)
	old := streams[1]
	old.Replicas = 1
	if _, err := b.EnsureStream(ctx, old); err != nil {
		t.Fatal(err)
	}
	check := func(run string) {
		t.Helper()
		for _, sc := range streams {
			s, err := b.JetStream().Stream(ctx, sc.Name)
			if err != nil {
				t.Fatalf("%s: %v", run, err)
			}
			if n := s.CachedInfo().Config.Replicas; n != 3 {
				t.Errorf("%s: %s has %d replicas, want NATS_REPLICAS=3", run, sc.Name, n)
			}
		}
	}
	log := slog.New(slog.DiscardHandler)
	r, err := bootstrap.Run(ctx, cfg, f.st, b, log)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.CreatedStreams) != len(streams)-1 {
		t.Errorf("first run created %v", r.CreatedStreams)
	}
	check("first run")
	if r, err = bootstrap.Run(ctx, cfg, f.st, b, log); err != nil || len(r.CreatedStreams) != 0 {
		t.Fatalf("second run: %+v, %v", r, err)
	}
	check("second run")
}
