package transcode

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Setting is one environment variable of the transcode function.
type Setting struct {
	Env, Default, Usage string
}

// Settings lists the transcode function's own environment variables (the
// store, bus and retention come from shared/config).
var Settings = []Setting{
	{"TRANSCODE_FANOUT", "rendition", "fan-out policy: rendition (one job per rung, each decoding the source); grouped is not implemented yet"},
	{"TRANSCODE_MAX_DELIVER", "5", "the connector's CONNECTOR_MAX_DELIVER: on that delivery (X-Nats-Delivered) a failure is final and the rendition is marked failed (1–100)"},
	{"TRANSCODE_PRESET", "veryfast", "x264 preset (ultrafast … veryslow)"},
	{"TRANSCODE_PROGRESS_INTERVAL", "2s", "least time between progress writes to meta.json (100ms–1m)"},
	{"TRANSCODE_TMPDIR", "", "scratch directory for ffmpeg output; empty uses the system temp dir"},
	{"TRANSCODE_UPLOAD_CONCURRENCY", "4", "objects uploaded at once per job (1–32)"},
}

// Config is the transcode function's settings.
type Config struct {
	Fanout           string
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
	bad := func(name, why string) error { return fmt.Errorf("invalid %s %q: %s", name, get(name), why) }
	var c Config
	switch c.Fanout = get("TRANSCODE_FANOUT"); c.Fanout {
	case "rendition":
	case "grouped", "chunk":
		return c, bad("TRANSCODE_FANOUT", "not implemented yet; use rendition")
	default:
		return c, bad("TRANSCODE_FANOUT", "must be rendition")
	}
	n, err := strconv.Atoi(get("TRANSCODE_MAX_DELIVER"))
	if err != nil || n < 1 || n > 100 {
		return c, bad("TRANSCODE_MAX_DELIVER", "must be a whole number from 1 to 100")
	}
	c.MaxDeliver = n
	if c.Preset = get("TRANSCODE_PRESET"); !slices.Contains(presets, c.Preset) {
		return c, bad("TRANSCODE_PRESET", "must be one of "+strings.Join(presets, ", "))
	}
	d, err := time.ParseDuration(get("TRANSCODE_PROGRESS_INTERVAL"))
	if err != nil || d < 100*time.Millisecond || d > time.Minute {
		return c, bad("TRANSCODE_PROGRESS_INTERVAL", "must be a duration from 100ms to 1m, like 2s")
	}
	c.ProgressInterval = d
	c.TempDir = get("TRANSCODE_TMPDIR")
	n, err = strconv.Atoi(get("TRANSCODE_UPLOAD_CONCURRENCY"))
	if err != nil || n < 1 || n > 32 {
		return c, bad("TRANSCODE_UPLOAD_CONCURRENCY", "must be a whole number from 1 to 32")
	}
	c.UploadParallel = n
	return c, nil
}
