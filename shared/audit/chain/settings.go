package chain

import (
	"errors"
	"time"

	"github.com/mieweb/pulsevault/shared/audit/record"
	"github.com/mieweb/pulsevault/shared/audit/witness"

	"github.com/mieweb/pulsevault/shared/platform/settings"
)

// Settings lists audit-append's own environment variables (the store, bus
// and AUDIT_RETENTION_DAYS come from shared/platform/config).
var Settings = settings.Table{
	{Env: "AUDIT_BATCH_MAX", Default: "1000", Usage: "most events in one batch object (1–5000)", Check: settings.IntRange(1, 5000)},
	{Env: "AUDIT_BATCH_WAIT", Default: "100ms", Usage: "longest an event waits for its batch to fill before the batch is written (1ms–10s)", Check: settings.Duration(time.Millisecond, 10*time.Second)},
	{Env: "AUDIT_CHECKPOINT_EVERY", Default: "5m", Usage: "how often a signed checkpoint is written while events arrive or after they stop (1s–24h); one is always written at each UTC day boundary", Check: settings.Duration(time.Second, 24*time.Hour)},
	{Env: "AUDIT_ACK_WAIT", Default: "30s", Usage: "how long a fetched event may stay unacknowledged before JetStream hands it to another replica, e.g. after a crash (1s–10m)", Check: settings.Duration(time.Second, 10*time.Minute)},
	{Env: "AUDIT_ORIGIN", Default: record.DefaultOrigin, Usage: "the log's name: the origin line of every C2SP checkpoint and the name of its note key; give each deployment its own (e.g. audit.example.org/pulsevault), as witnesses tell logs apart by it", Check: checkOrigin},
	{Env: "AUDIT_WITNESSES", Default: "", Usage: "witnesses asked to cosign each checkpoint: entries \"URL VKEY\" separated by \";\" (the witness's base URL and its cosignature key from `pulsevault witness keygen`); a witness that cannot be reached is logged and counted, never blocks appends", Check: checkWitnesses},
	{Env: "AUDIT_DEDUP_WINDOW", Default: "168h", Usage: "how long an appended event id is remembered, so a redelivered or re-published event is not appended twice (1m–8760h)", Check: settings.Duration(time.Minute, 8760*time.Hour)},
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
	vs, err := settings.FromEnv(Settings, getenv)
	if err != nil {
		return Config{}, err
	}
	ws, err := witness.ParseWitnesses(vs.String("AUDIT_WITNESSES"))
	if err != nil {
		return Config{}, err
	}
	return Config{
		BatchMax:        vs.Int("AUDIT_BATCH_MAX"),
		BatchWait:       vs.Duration("AUDIT_BATCH_WAIT"),
		CheckpointEvery: vs.Duration("AUDIT_CHECKPOINT_EVERY"),
		AckWait:         vs.Duration("AUDIT_ACK_WAIT"),
		DedupWindow:     vs.Duration("AUDIT_DEDUP_WINDOW"),
		Origin:          vs.String("AUDIT_ORIGIN"),
		Witnesses:       ws,
	}, nil
}

func checkOrigin(v string) error {
	if _, err := record.VerifierKey(v, make([]byte, 32)); err != nil {
		return errors.New("must be a note key name: no spaces or '+'")
	}
	return nil
}

func checkWitnesses(v string) error {
	_, err := witness.ParseWitnesses(v)
	return err
}
