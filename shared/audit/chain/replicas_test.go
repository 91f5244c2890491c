package chain

import (
	"log/slog"
	"testing"

	"github.com/mieweb/pulsevault/shared/topology"

	"github.com/mieweb/pulsevault/shared/bus"
	"github.com/mieweb/pulsevault/shared/testutil/testenv"
)

// The chain head and the event-id buckets hold NATS_REPLICAS copies on a
// real 3-node cluster: the audit chain survives the loss of a NATS node.
func TestChainBucketsReplicated(t *testing.T) {
	r := start(t) // the store
	b, err := bus.Connect(testenv.NATSCluster(t, 3), "auditchain-replicas")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	cfg, err := LoadConfig(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(t.Context(), Options{Bus: b, Store: r.st, Bucket: r.env.Config.AuditBucket,
		RetentionDays: r.env.Config.AuditRetentionDays, Signer: testSigner, Config: cfg,
		Logger: slog.New(slog.DiscardHandler), Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	for _, kv := range []string{topology.KVAuditChain, topology.KVAuditIDs} {
		s, err := b.JetStream().Stream(t.Context(), "KV_"+kv)
		if err != nil {
			t.Fatal(err)
		}
		if n := s.CachedInfo().Config.Replicas; n != 3 {
			t.Errorf("%s has %d replicas, want 3", kv, n)
		}
	}
}
