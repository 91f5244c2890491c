package finalize

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Setting is one environment variable of the upload-finalize function.
type Setting struct{ Env, Default, Usage string }

// Settings lists upload-finalize's own environment variables (buckets,
// retention and the store come from shared/config).
var Settings = []Setting{
	{"UPLOAD_MAX_BYTES", "4294967296", "largest upload finalized, in bytes (default 4 GiB); larger ones are rejected as too-big"},
	{"VIDEO_MAX_SECONDS", "3600", "longest video accepted, in seconds (1–86400); longer ones are rejected as too-long"},
	{"VIDEO_MAX_SIDE", "8192", "largest width or height accepted, in pixels (16–16384); larger ones are rejected as dimensions-too-large"},
	{"RECONCILE_AGE", "2m", "the reconciler finalizes completed uploads older than this that nobody finalized (1s–24h)"},
	{"UPLOAD_EXPIRY", "24h", "the reconciler removes incomplete uploads older than this (1m–720h)"},
	{"PROBE_TIMEOUT", "60s", "longest one ffprobe may run (1s–30m)"},
}

// Limits is upload-finalize's validated settings.
type Limits struct {
	MaxBytes     int64
	MaxSeconds   float64
	MaxSide      int
	ReconcileAge time.Duration
	Expiry       time.Duration
	ProbeTimeout time.Duration
}

// LoadSettings reads Settings through getenv; an error is one line naming
// the variable and what it accepts.
func LoadSettings(getenv func(string) string) (Limits, error) {
	get := func(name string) string {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		for _, s := range Settings {
			if s.Env == name {
				return s.Default
			}
		}
		return ""
	}
	var l Limits
	n, err := strconv.ParseInt(get("UPLOAD_MAX_BYTES"), 10, 64)
	if err != nil || n < 1 || n > 5<<40 {
		return l, fmt.Errorf("invalid UPLOAD_MAX_BYTES %q: must be a whole number of bytes from 1 to %d", get("UPLOAD_MAX_BYTES"), int64(5<<40))
	}
	l.MaxBytes = n
	s, err := strconv.Atoi(get("VIDEO_MAX_SECONDS"))
	if err != nil || s < 1 || s > 86400 {
		return l, fmt.Errorf("invalid VIDEO_MAX_SECONDS %q: must be a whole number from 1 to 86400", get("VIDEO_MAX_SECONDS"))
	}
	l.MaxSeconds = float64(s)
	if l.MaxSide, err = strconv.Atoi(get("VIDEO_MAX_SIDE")); err != nil || l.MaxSide < 16 || l.MaxSide > 16384 {
		return l, fmt.Errorf("invalid VIDEO_MAX_SIDE %q: must be a whole number from 16 to 16384", get("VIDEO_MAX_SIDE"))
	}
	for _, d := range []struct {
		env    string
		lo, hi time.Duration
		dst    *time.Duration
	}{
		{"RECONCILE_AGE", time.Second, 24 * time.Hour, &l.ReconcileAge},
		{"UPLOAD_EXPIRY", time.Minute, 720 * time.Hour, &l.Expiry},
		{"PROBE_TIMEOUT", time.Second, 30 * time.Minute, &l.ProbeTimeout},
	} {
		v, err := time.ParseDuration(get(d.env))
		if err != nil || v < d.lo || v > d.hi {
			return l, fmt.Errorf("invalid %s %q: must be a duration from %s to %s", d.env, get(d.env), d.lo, d.hi)
		}
		*d.dst = v
	}
	return l, nil
}
