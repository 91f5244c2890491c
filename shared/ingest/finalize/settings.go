package finalize

import (
	"time"

	"github.com/mieweb/pulsevault/shared/ingest/staging"
	"github.com/mieweb/pulsevault/shared/platform/settings"
)

// Settings lists upload-finalize's own environment variables (buckets,
// retention and the store come from shared/platform/config; UPLOAD_MAX_BYTES
// and UPLOAD_EXPIRY are shared with the upload function, in shared/ingest/staging).
var Settings = settings.Table{
	staging.MaxBytesVar,
	{Env: "VIDEO_MAX_SECONDS", Default: "3600", Usage: "longest video accepted, in seconds (1–86400); longer ones are rejected as too-long", Check: settings.IntRange(1, 86400)},
	{Env: "VIDEO_MAX_SIDE", Default: "8192", Usage: "largest width or height accepted, in pixels (16–16384); larger ones are rejected as dimensions-too-large", Check: settings.IntRange(16, 16384)},
	{Env: "RECONCILE_AGE", Default: "2m", Usage: "the reconciler finalizes completed uploads older than this that nobody finalized (1s–24h)", Check: settings.Duration(time.Second, 24*time.Hour)},
	staging.ExpiryVar,
	{Env: "PROBE_TIMEOUT", Default: "60s", Usage: "longest one ffprobe may run (1s–30m)", Check: settings.Duration(time.Second, 30*time.Minute)},
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
	vs, err := settings.FromEnv(Settings, getenv)
	if err != nil {
		return Limits{}, err
	}
	return Limits{
		MaxBytes:     vs.Int64("UPLOAD_MAX_BYTES"),
		MaxSeconds:   float64(vs.Int("VIDEO_MAX_SECONDS")),
		MaxSide:      vs.Int("VIDEO_MAX_SIDE"),
		ReconcileAge: vs.Duration("RECONCILE_AGE"),
		Expiry:       vs.Duration("UPLOAD_EXPIRY"),
		ProbeTimeout: vs.Duration("PROBE_TIMEOUT"),
	}, nil
}
