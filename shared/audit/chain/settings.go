package chain

import (
	"time"

	"github.com/mieweb/pulsevault/shared/audit/record"
	"github.com/mieweb/pulsevault/shared/audit/witness"

	"github.com/mieweb/pulsevault/shared/platform/settings"
)

// Settings lists audit-append's own environment variables (the store, bus
// and AUDIT_RETENTION_DAYS come from shared/platform/config).
var Settings = []settings.Setting{
	{Env: "AUDIT_BATCH_MAX", Default: "1000", Usage: "most events in one batch object (1–5000)"},
	{Env: "AUDIT_BATCH_WAIT", Default: "100ms", Usage: "longest an event waits for its batch to fill before the batch is written (1ms–10s)"},
	{Env: "AUDIT_CHECKPOINT_EVERY", Default: "5m", Usage: "how often a signed checkpoint is written while events arrive or after they stop (1s–24h); one is always written at each UTC day boundary"},
	{Env: "AUDIT_ACK_WAIT", Default: "30s", Usage: "how long a fetched event may stay unacknowledged before JetStream hands it to another replica, e.g. after a crash (1s–10m)"},
	{Env: "AUDIT_ORIGIN", Default: "pulsevault-audit", Usage: "the log's name: the origin line of every C2SP checkpoint and the name of its note key; give each deployment its own (e.g. audit.example.org/pulsevault), as witnesses tell logs apart by it"},
	{Env: "AUDIT_WITNESSES", Default: "", Usage: "witnesses asked to cosign each checkpoint: entries \"URL VKEY\" separated by \";\" (the witness's base URL and its cosignature key from `pulsevault witness keygen`); a witness that cannot be reached is logged and counted, never blocks appends"},
	{Env: "AUDIT_DEDUP_WINDOW", Default: "168h", Usage: "how long an appended event id is remembered, so a redelivered or re-published event is not appended twice (1m–8760h)"},
}

// Config is audit-append's settings, validated.
type Config struct {
	BatchMax        int
	BatchWait       time.Duration
	CheckpointEvery time.Duration
	AckWait         time.Duration
	DedupWindow     time.Duration
	Origin          string
	Witnesses       []*witness.Client
}

// LoadConfig reads the settings through getenv; an error is one line naming
// the variable and what it accepts.
func LoadConfig(getenv func(string) string) (Config, error) {
	r := settings.New(getenv, Settings)
	c := Config{
		BatchMax:        r.Int("AUDIT_BATCH_MAX", 1, 5000),
		BatchWait:       r.Duration("AUDIT_BATCH_WAIT", time.Millisecond, 10*time.Second),
		CheckpointEvery: r.Duration("AUDIT_CHECKPOINT_EVERY", time.Second, 24*time.Hour),
		AckWait:         r.Duration("AUDIT_ACK_WAIT", time.Second, 10*time.Minute),
		DedupWindow:     r.Duration("AUDIT_DEDUP_WINDOW", time.Minute, 8760*time.Hour),
	}
	c.Origin = r.String("AUDIT_ORIGIN")
	if _, err := record.VerifierKey(c.Origin, make([]byte, 32)); err != nil {
		r.Fail("AUDIT_ORIGIN", "a note key name: no spaces or '+'")
	}
	ws, err := witness.ParseWitnesses(r.String("AUDIT_WITNESSES"))
	if err != nil {
		r.Fail("AUDIT_WITNESSES", err.Error())
	}
	c.Witnesses = ws
	return c, r.Err()
}
