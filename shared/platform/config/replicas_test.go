package config

import (
	"slices"
	"strings"
	"testing"
)

// NATS_REPLICAS is 1 by default and with the embedded server (a single
// node cannot hold more copies); an external cluster takes up to 5, and
// the functions the provider starts are told the same count.
func TestNATSReplicas(t *testing.T) {
	load := func(m map[string]string) (Config, error) { return Load("t", nil, env(m)) }
	c, err := load(nil)
	if err != nil || c.NATSReplicas != 1 {
		t.Fatalf("default: %d, %v; want 1", c.NATSReplicas, err)
	}
	if _, err := load(map[string]string{"NATS_REPLICAS": "3"}); err == nil || !strings.Contains(err.Error(), "embedded NATS server is a single node") {
		t.Fatalf("3 replicas on the embedded server: %v", err)
	}
	c, err = load(map[string]string{"NATS_REPLICAS": "3", "NATS_URL": "nats://nats.nats:4222"})
	if err != nil || c.NATSReplicas != 3 {
		t.Fatalf("3 on a cluster: %d, %v", c.NATSReplicas, err)
	}
	if !slices.Contains(c.Env(), "NATS_REPLICAS=3") {
		t.Errorf("Env() does not pass NATS_REPLICAS=3 to the functions: %v", c.Env())
	}
	for _, bad := range []string{"0", "6", "three"} {
		if _, err := load(map[string]string{"NATS_REPLICAS": bad, "NATS_URL": "nats://n:4222"}); err == nil || !strings.Contains(err.Error(), "NATS_REPLICAS") {
			t.Errorf("NATS_REPLICAS=%s: %v", bad, err)
		}
	}
}
