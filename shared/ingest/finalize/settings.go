package finalize

import (
	"time"

	"github.com/mieweb/pulsevault/shared/platform/settings"
)

// Settings lists upload-finalize's own environment variables (buckets,
// retention and the store come from shared/platform/config).
var Settings = []settings.Setting{
	{Env: "UPLOAD_MAX_BYTES", Default: "4294967296", Usage: "largest upload finalized, in bytes (default 4 GiB); larger ones are rejected as too-big"},
	{Env: "VIDEO_MAX_SECONDS", Default: "3600", Usage: "longest video accepted, in seconds (1–86400); longer ones are rejected as too-long"},
	{Env: "VIDEO_MAX_SIDE", Default: "8192", Usage: "largest width or height accepted, in pixels (16–16384); larger ones are rejected as dimensions-too-large"},
	{Env: "RECONCILE_AGE", Default: "2m", Usage: "the reconciler finalizes completed uploads older than this that nobody finalized (1s–24h)"},
	{Env: "UPLOAD_EXPIRY", Default: "24h", Usage: "the reconciler removes incomplete uploads older than this (1m–720h)"},
	{Env: "PROBE_TIMEOUT", Default: "60s", Usage: "longest one ffprobe may run (1s–30m)"},
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
	r := settings.New(getenv, Settings)
	l := Limits{
		MaxBytes:     r.Bytes("UPLOAD_MAX_BYTES", 1, 5<<40),
		MaxSeconds:   float64(r.Int("VIDEO_MAX_SECONDS", 1, 86400)),
		MaxSide:      r.Int("VIDEO_MAX_SIDE", 16, 16384),
		ReconcileAge: r.Duration("RECONCILE_AGE", time.Second, 24*time.Hour),
		Expiry:       r.Duration("UPLOAD_EXPIRY", time.Minute, 720*time.Hour),
		ProbeTimeout: r.Duration("PROBE_TIMEOUT", time.Second, 30*time.Minute),
	}
	return l, r.Err()
}
