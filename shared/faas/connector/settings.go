package connector

import (
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
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
var Settings = []settings.Setting{
	{Env: "GATEWAY_URL", Default: "http://127.0.0.1:8080", Usage: "OpenFaaS gateway (or `pulsevault provider`) the connector lists functions from and invokes"},
	{Env: "GATEWAY_USER", Default: "admin", Usage: "gateway basic-auth user"},
	{Env: "GATEWAY_PASSWORD", Default: "", Usage: "gateway basic-auth password; when empty it is read from SECRETS_DIR/" + PasswordFile},
	{Env: "SECRETS_DIR", Default: "/var/openfaas/secrets", Usage: "directory holding the " + PasswordFile + " secret"},
	{Env: "CONNECTOR_REFRESH", Default: "5s", Usage: "how often the function list and its topic and schedule annotations are read again (100ms–1h)"},
	{Env: "CONNECTOR_MAX_DELIVER", Default: "5", Usage: "failed deliveries of a message before it goes to " + topology.DeadLetter("<function>") + " (1–100)"},
	{Env: "CONNECTOR_BACKOFF", Default: "1s,5s,30s", Usage: "delays before redelivery after the 1st, 2nd, ... failure; the last repeats"},
	{Env: "CONNECTOR_TIMEOUT", Default: "10m", Usage: "longest a single invocation may run before it counts as failed (1s–24h)"},
	{Env: "CONNECTOR_CONCURRENCY", Default: "1", Usage: "invocations in flight per (function, topic); 1 keeps messages in order (1–1000)"},
	{Env: "CONNECTOR_METRICS_ADDR", Default: "127.0.0.1:8081", Usage: "host:port serving /metrics and /healthz"},
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
	r := settings.New(getenv, Settings)
	c := Config{Gateway: r.String("GATEWAY_URL"), User: r.String("GATEWAY_USER")}
	if u, err := url.Parse(c.Gateway); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.User != nil || u.RawQuery != "" {
		r.Fail("GATEWAY_URL", "must be http(s)://host:port, without credentials or query")
		return c, r.Err()
	}
	// Untrimmed, unlike the other settings: a credential is used exactly as given.
	c.Password = getenv("GATEWAY_PASSWORD")
	if c.Password == "" {
		path := filepath.Join(r.String("SECRETS_DIR"), PasswordFile)
		b, err := os.ReadFile(path)
		if err != nil {
			return c, fmt.Errorf("no gateway password: set GATEWAY_PASSWORD or SECRETS_DIR (%v)", err)
		}
		c.Password = strings.TrimSpace(string(b))
		if c.Password == "" {
			return c, fmt.Errorf("no gateway password: %s is empty", path)
		}
	}
	c.Refresh = r.Duration("CONNECTOR_REFRESH", 100*time.Millisecond, time.Hour)
	c.MaxDeliver = r.Int("CONNECTOR_MAX_DELIVER", 1, 100)
	for s := range strings.SplitSeq(r.String("CONNECTOR_BACKOFF"), ",") {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil || d < time.Millisecond || d > 24*time.Hour {
			r.Fail("CONNECTOR_BACKOFF", "must be comma-separated durations like 1s,5s,30s (each 1ms–24h)")
			break
		}
		c.Backoff = append(c.Backoff, d)
	}
	c.Timeout = r.Duration("CONNECTOR_TIMEOUT", time.Second, 24*time.Hour)
	c.Concurrency = r.Int("CONNECTOR_CONCURRENCY", 1, 1000)
	c.MetricsAddr = r.String("CONNECTOR_METRICS_ADDR")
	if _, port, err := net.SplitHostPort(c.MetricsAddr); err != nil {
		r.Fail("CONNECTOR_METRICS_ADDR", "must be host:port, e.g. 127.0.0.1:8081")
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		r.Fail("CONNECTOR_METRICS_ADDR", "port must be 0–65535")
	}
	return c, r.Err()
}

// SettingsUsage writes the connector's variables with their defaults, for -h.
func SettingsUsage(w io.Writer) { settings.Usage(w, Settings) }
