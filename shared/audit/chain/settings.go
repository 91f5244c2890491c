package chain

import (
	"time"

	"github.com/mieweb/pulsevault/shared/platform/settings"
)

// Settings lists audit-append's own environment variables (the store, bus
// and AUDIT_RETENTION_DAYS come from shared/platform/config).
var Settings = settings.Table{
	{Env: "AUDIT_BATCH_MAX", Default: "1000", Usage: "most events in one batch object (1–5000)", Check: settings.IntRange(1, 5000)},
	{Env: "AUDIT_BATCH_WAIT", Default: "100ms", Usage: "longest an event waits for its batch to fill before the batch is written (1ms–10s)", Check: settings.Duration(time.Millisecond, 10*time.Second)},
	{Env: "AUDIT_CHECKPOINT_EVERY", Default: "5m", Usage: "how often a signed checkpoint is written while events arrive or after they stop (1s–24h); one is always written at each UTC day boundary", Check: settings.Duration(time.Second, 24*time.Hour)},
	{Env: "AUDIT_ACK_WAIT", Default: "30s", Usage: "how long a fetched event may stay unacknowledged before JetStream hands it to another replica, e.g. after a crash (1s–10m)", Check: settings.Duration(time.Second, 10*time.Minute)},
	{Env: "AUDIT_DEDUP_WINDOW", Default: "168h", Usage: "how long an appended event id is remembered, so a redelivered or re-published event is not appended twice (1m–8760h)", Check: settings.Duration(time.Minute, 8760*time.Hour)},
}

// Config is audit-append's settings, validated.
type Config struct {
	BatchMax        int
	BatchWait       time.Duration
	CheckpointEvery time.Duration
	AckWait         time.Duration
	DedupWindow     time.Duration
}

// LoadConfig reads the settings through getenv; an error is one line naming
// the variable and what it accepts.
func LoadConfig(getenv func(string) string) (Config, error) {
	vs, err := settings.FromEnv(Settings, getenv)
	if err != nil {
		return Config{}, err
	}
	return Config{
		BatchMax:        vs.Int("AUDIT_BATCH_MAX"),
		BatchWait:       vs.Duration("AUDIT_BATCH_WAIT"),
		CheckpointEvery: vs.Duration("AUDIT_CHECKPOINT_EVERY"),
		AckWait:         vs.Duration("AUDIT_ACK_WAIT"),
		DedupWindow:     vs.Duration("AUDIT_DEDUP_WINDOW"),
	}, nil
}
