package provider

import (
	"testing"
	"time"
)

// A replica being stopped gets as long as it drains (its write_timeout, as
// fnrun reads it) plus 5s, never under 10s: before, every replica was
// killed 10s after SIGTERM, cutting a 30-minute transcode short.
func TestDrainTime(t *testing.T) {
	for _, c := range []struct {
		env  []string
		want time.Duration
	}{
		{nil, 10 * time.Second},
		{[]string{"LOG_LEVEL=info", "write_timeout=30m"}, 30*time.Minute + 5*time.Second},
		{[]string{"write_timeout=90"}, 95 * time.Second},
		{[]string{"write_timeout=1s"}, 10 * time.Second},
		{[]string{"write_timeout=0"}, 10 * time.Second},
		{[]string{"write_timeout=soon"}, 10 * time.Second},
	} {
		if got := drainTime(c.env); got != c.want {
			t.Errorf("drainTime(%v) = %v, want %v", c.env, got, c.want)
		}
	}
}
