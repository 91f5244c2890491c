package main

import (
	"slices"
	"testing"
	"time"
)

// dev's connector takes the CONNECTOR_* settings `pulsevault connector`
// reads, with dev's own gateway.
func TestDevConnectorSettings(t *testing.T) {
	env := map[string]string{"CONNECTOR_MAX_DELIVER": "3", "CONNECTOR_BACKOFF": "2s,4s", "CONNECTOR_TIMEOUT": "90s",
		"CONNECTOR_CONCURRENCY": "4", "CONNECTOR_REFRESH": "1s", "GATEWAY_URL": "http://elsewhere:1"}
	cc, err := devConnectorConfig(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	o := devConnectorOptions(cc, "http://127.0.0.1:8080", "admin", "pw", nil, nil, nil)
	if o.MaxDeliver != 3 || !slices.Equal(o.Backoff, []time.Duration{2 * time.Second, 4 * time.Second}) || o.Timeout != 90*time.Second ||
		o.Concurrency != 4 || o.Refresh != time.Second || o.Gateway != "http://127.0.0.1:8080" || o.Password != "pw" {
		t.Fatalf("connector options: %+v", o)
	}
	if _, err := devConnectorConfig(func(k string) string { return map[string]string{"CONNECTOR_MAX_DELIVER": "0"}[k] }); err == nil {
		t.Fatal("CONNECTOR_MAX_DELIVER=0 accepted")
	}
}
