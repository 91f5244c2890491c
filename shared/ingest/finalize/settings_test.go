package finalize

import (
	"strings"
	"testing"
	"time"
)

func TestLoadSettings(t *testing.T) {
	get := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	l, err := LoadSettings(get(nil))
	if err != nil {
		t.Fatal(err)
	}
	if l.MaxBytes != 4<<30 || l.MaxSeconds != 3600 || l.MaxSide != 8192 || l.ReconcileAge != 2*time.Minute || l.Expiry != 24*time.Hour || l.ProbeTimeout != time.Minute {
		t.Errorf("defaults: %+v", l)
	}
	for k, v := range map[string]string{"UPLOAD_MAX_BYTES": "0", "UPLOAD_EXPIRY": "30s", "VIDEO_MAX_SIDE": "8", "PROBE_TIMEOUT": "1h"} {
		if _, err := LoadSettings(get(map[string]string{k: v})); err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("%s=%q: %v", k, v, err)
		}
	}
}
