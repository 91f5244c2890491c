package auditchain

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Setting is one environment variable of the audit-append function.
type Setting struct {
	Env, Default, Usage string
}

// Settings lists audit-append's own environment variables (the store, bus
// and AUDIT_RETENTION_DAYS come from shared/config).
var Settings = []Setting{
	{"AUDIT_BATCH_MAX", "1000", "most events in one batch object (1–5000)"},
	{"AUDIT_BATCH_WAIT", "100ms", "longest an event waits for its batch to fill before the batch is written (1ms–10s)"},
	{"AUDIT_CHECKPOINT_EVERY", "5m", "how often a signed checkpoint is written while events arrive or after they stop (1s–24h); one is always written at each UTC day boundary"},
	{"AUDIT_ACK_WAIT", "30s", "how long a fetched event may stay unacknowledged before JetStream hands it to another replica, e.g. after a crash (1s–10m)"},
	{"AUDIT_DEDUP_WINDOW", "168h", "how long an appended event id is remembered, so a redelivered or re-published event is not appended twice (1m–8760h)"},
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
	dur := func(name string, lo, hi time.Duration) (time.Duration, error) {
		d, err := time.ParseDuration(get(name))
		if err != nil || d < lo || d > hi {
			return 0, fmt.Errorf("invalid %s %q: must be a duration from %s to %s", name, get(name), lo, hi)
		}
		return d, nil
	}
	var c Config
	var err error
	n, err := strconv.Atoi(get("AUDIT_BATCH_MAX"))
	if err != nil || n < 1 || n > 5000 {
		return c, fmt.Errorf("invalid AUDIT_BATCH_MAX %q: must be a whole number from 1 to 5000", get("AUDIT_BATCH_MAX"))
	}
	c.BatchMax = n
	if c.BatchWait, err = dur("AUDIT_BATCH_WAIT", time.Millisecond, 10*time.Second); err != nil {
		return c, err
	}
	if c.CheckpointEvery, err = dur("AUDIT_CHECKPOINT_EVERY", time.Second, 24*time.Hour); err != nil {
		return c, err
	}
	if c.AckWait, err = dur("AUDIT_ACK_WAIT", time.Second, 10*time.Minute); err != nil {
		return c, err
	}
	if c.DedupWindow, err = dur("AUDIT_DEDUP_WINDOW", time.Minute, 8760*time.Hour); err != nil {
		return c, err
	}
	return c, nil
}
