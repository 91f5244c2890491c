package encode

import (
	"errors"
	"time"

	"github.com/mieweb/pulsevault/shared/platform/settings"
)

var presets = []string{"ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"}

// Settings lists the transcode function's own environment variables (the
// store, bus and retention come from shared/platform/config).
var Settings = settings.Table{
	{Env: "TRANSCODE_FANOUT", Default: "grouped", Usage: "fan-out policy: grouped (the lowest rung with the audio for time-to-playable, the higher rungs from one shared decode: least CPU, measured by TestFanoutCost) or rendition (every rung its own job and decode: most parallel); chunk is refused", Check: fanout},
	{Env: "TRANSCODE_GROUP_NICE", Default: "19", Usage: "grouped fan-out: nice value added to the ffmpeg encoding the higher rungs, so the lowest rung's job beside it (what makes the video playable) gets the CPU first (0–19; 0 disables)", Check: settings.IntRange(0, 19)},
	{Env: "TRANSCODE_MAX_DELIVER", Default: "5", Usage: "the connector's CONNECTOR_MAX_DELIVER: on that delivery (X-Nats-Delivered) a failure is final and the rendition is marked failed; keep the two equal (1–100)", Check: settings.IntRange(1, 100)},
	{Env: "TRANSCODE_PRESET", Default: "veryfast", Usage: "x264 preset (ultrafast … veryslow)", Check: settings.OneOf(presets...)},
	{Env: "TRANSCODE_PROGRESS_INTERVAL", Default: "2s", Usage: "least time between progress writes to meta.json (100ms–1m)", Check: settings.Duration(100*time.Millisecond, time.Minute)},
	{Env: "TRANSCODE_TMPDIR", Default: "", Usage: "scratch directory for ffmpeg output (empty: the system temp dir); leftovers of SIGKILLed replicas are removed at the next job"},
	{Env: "TRANSCODE_UPLOAD_CONCURRENCY", Default: "4", Usage: "objects uploaded at once per job (1–32)", Check: settings.IntRange(1, 32)},
}

func fanout(v string) error {
	switch v {
	case FanoutRendition, FanoutGrouped:
		return nil
	case "chunk":
		return errors.New("chunk is not implemented; use grouped or rendition")
	}
	return errors.New("must be grouped or rendition")
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

// LoadConfig reads the settings through getenv; an error is one line naming
// the variable and what it accepts.
func LoadConfig(getenv func(string) string) (Config, error) {
	vs, err := settings.FromEnv(Settings, getenv)
	if err != nil {
		return Config{}, err
	}
	return Config{
		Fanout:           vs.String("TRANSCODE_FANOUT"),
		GroupNice:        vs.Int("TRANSCODE_GROUP_NICE"),
		MaxDeliver:       vs.Int("TRANSCODE_MAX_DELIVER"),
		Preset:           vs.String("TRANSCODE_PRESET"),
		ProgressInterval: vs.Duration("TRANSCODE_PROGRESS_INTERVAL"),
		TempDir:          vs.String("TRANSCODE_TMPDIR"),
		UploadParallel:   vs.Int("TRANSCODE_UPLOAD_CONCURRENCY"),
	}, nil
}
