package connector

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mieweb/pulsevault/shared/platform/settings"
	"github.com/mieweb/pulsevault/shared/topology"
)

// PasswordFile is the gateway password's file name in the secrets dir, as
// OpenFaaS mounts it.
const PasswordFile = "basic-auth-password"

// Settings lists the connector's own environment variables (NATS_URL,
// LOG_LEVEL and the other shared ones come from shared/platform/config).
var Settings = settings.Table{
	{Env: "GATEWAY_URL", Default: "http://127.0.0.1:8080", Usage: "OpenFaaS gateway (or `pulsevault provider`) the connector lists functions from and invokes", Check: settings.HTTPURL},
	{Env: "GATEWAY_USER", Default: "admin", Usage: "gateway basic-auth user"},
	{Env: "GATEWAY_PASSWORD", Default: "", Usage: "gateway basic-auth password; when empty it is read from `SECRETS_DIR/" + PasswordFile + "`"},
	{Env: "SECRETS_DIR", Default: "/var/openfaas/secrets", Usage: "directory holding the " + PasswordFile + " secret"},
	{Env: "CONNECTOR_REFRESH", Default: "5s", Usage: "how often the function list and its topic and schedule annotations are read again (100ms–1h)", Check: settings.Duration(100*time.Millisecond, time.Hour)},
	{Env: "CONNECTOR_MAX_DELIVER", Default: "5", Usage: "failed deliveries of a message before it goes to `" + topology.DeadLetter("<function>") + "` (1–100)", Check: settings.IntRange(1, 100)},
	{Env: "CONNECTOR_BACKOFF", Default: "1s,5s,30s", Usage: "delays before redelivery after the 1st, 2nd, ... failure; the last repeats (each 1ms–24h)", Check: settings.DurationList(time.Millisecond, 24*time.Hour)},
	{Env: "CONNECTOR_TIMEOUT", Default: "10m", Usage: "longest a single invocation may run before it counts as failed (1s–24h)", Check: settings.Duration(time.Second, 24*time.Hour)},
	{Env: "CONNECTOR_CONCURRENCY", Default: "1", Usage: "invocations in flight per (function, topic); 1 keeps messages in order (1–1000)", Check: settings.IntRange(1, 1000)},
	{Env: "CONNECTOR_METRICS_ADDR", Default: "127.0.0.1:8081", Usage: "host:port serving /metrics and /healthz", Check: settings.HostPort},
}

// Config is the connector's settings as read from the environment.
type Config struct {
	Gateway, User, Password string
	Refresh                 time.Duration
	MaxDeliver              int
	Backoff                 []time.Duration
	Timeout                 time.Duration
	Concurrency             int
	MetricsAddr             string
}

// LoadConfig reads the connector's settings through getenv and validates
// them; an error is one line naming the variable and what it accepts. The
// password comes from GATEWAY_PASSWORD or, when that is empty, from the
// basic-auth-password file in SECRETS_DIR (surrounding space trimmed).
func LoadConfig(getenv func(string) string) (Config, error) {
	vs, err := settings.FromEnv(Settings, getenv)
	if err != nil {
		return Config{}, err
	}
	c := Config{
		Gateway:     vs.String("GATEWAY_URL"),
		User:        vs.String("GATEWAY_USER"),
		Refresh:     vs.Duration("CONNECTOR_REFRESH"),
		MaxDeliver:  vs.Int("CONNECTOR_MAX_DELIVER"),
		Backoff:     vs.Durations("CONNECTOR_BACKOFF"),
		Timeout:     vs.Duration("CONNECTOR_TIMEOUT"),
		Concurrency: vs.Int("CONNECTOR_CONCURRENCY"),
		MetricsAddr: vs.String("CONNECTOR_METRICS_ADDR"),
	}
	// Untrimmed, unlike the other settings: a credential is used exactly as given.
	c.Password = getenv("GATEWAY_PASSWORD")
	if c.Password == "" {
		path := filepath.Join(vs.String("SECRETS_DIR"), PasswordFile)
		b, err := os.ReadFile(path)
		if err != nil {
			return c, fmt.Errorf("no gateway password: set GATEWAY_PASSWORD or SECRETS_DIR (%v)", err)
		}
		c.Password = strings.TrimSpace(string(b))
		if c.Password == "" {
			return c, fmt.Errorf("no gateway password: %s is empty", path)
		}
	}
	return c, nil
}

// SettingsUsage writes the connector's variables with their defaults, for -h.
func SettingsUsage(w io.Writer) { settings.Usage(w, Settings) }
