package chain

import (
	"strings"
	"testing"
	"time"
)

func TestLoadConfig(t *testing.T) {
	get := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	c, err := LoadConfig(get(map[string]string{"AUDIT_BATCH_MAX": "10"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.BatchMax != 10 || c.BatchWait != 100*time.Millisecond || c.CheckpointEvery != 5*time.Minute || c.AckWait != 30*time.Second || c.DedupWindow != 168*time.Hour {
		t.Errorf("got %+v", c)
	}
	for k, v := range map[string]string{"AUDIT_BATCH_MAX": "5001", "AUDIT_BATCH_WAIT": "20s", "AUDIT_DEDUP_WINDOW": "x"} {
		if _, err := LoadConfig(get(map[string]string{k: v})); err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("%s=%q: %v", k, v, err)
		}
	}
}
