package provider

import (
	"strconv"
	"strings"
	"time"
)

// drainTime is how long a replica deployed with env may take to stop: fnrun
// lets in-flight requests finish for up to its write_timeout, so a stop (a
// redeploy, systemd stopping the provider) waits that long plus 5s before
// SIGKILL, and at least 10s. A transcode near its end is not cut short.
func drainTime(env []string) time.Duration {
	const floor, margin = 10 * time.Second, 5 * time.Second
	var s string
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "write_timeout="); ok {
			s = strings.TrimSpace(v)
		}
	}
	d, err := time.ParseDuration(s)
	if n, aerr := strconv.Atoi(s); aerr == nil { // of-watchdog: a bare number is seconds
		d, err = time.Duration(n)*time.Second, nil
	}
	if err != nil || d <= 0 {
		return floor
	}
	return max(d+margin, floor)
}
