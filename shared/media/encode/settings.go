package encode

import (
	"slices"
	"strings"
	"time"

	"github.com/mieweb/pulsevault/shared/platform/settings"
)

// Settings lists the transcode function's own environment variables (the
// store, bus and retention come from shared/platform/config).
var Settings = []settings.Setting{
	{Env: "TRANSCODE_FANOUT", Default: "grouped", Usage: "fan-out policy: grouped (the lowest rung with the audio for time-to-playable, the higher rungs from one shared decode: least CPU, measured by TestFanoutCost) or rendition (every rung its own job and decode: most parallel)"},
	{Env: "TRANSCODE_GROUP_NICE", Default: "19", Usage: "grouped fan-out: nice value added to the ffmpeg encoding the higher rungs, so the lowest rung's job beside it (what makes the video playable) gets the CPU first (0–19; 0 disables)"},
	{Env: "TRANSCODE_MAX_DELIVER", Default: "5", Usage: "the connector's CONNECTOR_MAX_DELIVER: on that delivery (X-Nats-Delivered) a failure is final and the rendition is marked failed (1–100)"},
	{Env: "TRANSCODE_PRESET", Default: "veryfast", Usage: "x264 preset (ultrafast … veryslow)"},
	{Env: "TRANSCODE_PROGRESS_INTERVAL", Default: "2s", Usage: "least time between progress writes to meta.json (100ms–1m)"},
	{Env: "TRANSCODE_TMPDIR", Default: "", Usage: "scratch directory for ffmpeg output; empty uses the system temp dir"},
	{Env: "TRANSCODE_UPLOAD_CONCURRENCY", Default: "4", Usage: "objects uploaded at once per job (1–32)"},
}

// Config is the transcode function's settings.
type Config struct {
	Fanout           string
	GroupNice        int
	MaxDeliver       int
	Preset           string
	ProgressInterval time.Duration
	TempDir          string
	UploadParallel   int
}

var presets = []string{"ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"}

// LoadConfig reads the settings through getenv; an error is one line naming
// the variable and what it accepts.
func LoadConfig(getenv func(string) string) (Config, error) {
	r := settings.New(getenv, Settings)
	var c Config
	switch c.Fanout = r.String("TRANSCODE_FANOUT"); c.Fanout {
	case FanoutRendition, FanoutGrouped:
	case "chunk":
		r.Fail("TRANSCODE_FANOUT", "chunk is not implemented; use grouped or rendition")
	default:
		r.Fail("TRANSCODE_FANOUT", "must be grouped or rendition")
	}
	c.GroupNice = r.Int("TRANSCODE_GROUP_NICE", 0, 19)
	c.MaxDeliver = r.Int("TRANSCODE_MAX_DELIVER", 1, 100)
	if c.Preset = r.String("TRANSCODE_PRESET"); !slices.Contains(presets, c.Preset) {
		r.Fail("TRANSCODE_PRESET", "must be one of "+strings.Join(presets, ", "))
	}
	c.ProgressInterval = r.Duration("TRANSCODE_PROGRESS_INTERVAL", 100*time.Millisecond, time.Minute)
	c.TempDir = r.String("TRANSCODE_TMPDIR")
	c.UploadParallel = r.Int("TRANSCODE_UPLOAD_CONCURRENCY", 1, 32)
	return c, r.Err()
}
