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
)

// PasswordFile is the gateway password's file name in the secrets dir, as
// OpenFaaS mounts it.
const PasswordFile = "basic-auth-password"

// Setting is one environment variable of `pulsevault connector`.
type Setting struct {
	Env, Default, Usage string
}

// Settings lists the connector's own environment variables (NATS_URL,
// LOG_LEVEL and the other shared ones come from shared/config).
var Settings = []Setting{
	{"GATEWAY_URL", "http://127.0.0.1:8080", "OpenFaaS gateway (or `pulsevault provider`) the connector lists functions from and invokes"},
	{"GATEWAY_USER", "admin", "gateway basic-auth user"},
	{"GATEWAY_PASSWORD", "", "gateway basic-auth password; when empty it is read from SECRETS_DIR/" + PasswordFile},
	{"SECRETS_DIR", "/var/openfaas/secrets", "directory holding the " + PasswordFile + " secret"},
	{"CONNECTOR_REFRESH", "5s", "how often the function list and topic annotations are read again (100ms–1h)"},
	{"CONNECTOR_MAX_DELIVER", "5", "failed deliveries of a message before it goes to pulse.dlq.<function> (1–100)"},
	{"CONNECTOR_BACKOFF", "1s,5s,30s", "delays before redelivery after the 1st, 2nd, ... failure; the last repeats"},
	{"CONNECTOR_TIMEOUT", "10m", "longest a single invocation may run before it counts as failed (1s–24h)"},
	{"CONNECTOR_CONCURRENCY", "1", "invocations in flight per (function, topic); 1 keeps messages in order (1–1000)"},
	{"CONNECTOR_METRICS_ADDR", "127.0.0.1:8081", "host:port serving /metrics and /healthz"},
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
	bad := func(name, why string) error {
		return fmt.Errorf("invalid %s %q: %s", name, get(name), why)
	}
	var c Config
	var err error

	c.Gateway = get("GATEWAY_URL")
	if u, err := url.Parse(c.Gateway); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.User != nil || u.RawQuery != "" {
		return c, bad("GATEWAY_URL", "must be http(s)://host:port, without credentials or query")
	}
	c.User = get("GATEWAY_USER")
	c.Password = getenv("GATEWAY_PASSWORD")
	if c.Password == "" {
		path := filepath.Join(get("SECRETS_DIR"), PasswordFile)
		b, err := os.ReadFile(path)
		if err != nil {
			return c, fmt.Errorf("no gateway password: set GATEWAY_PASSWORD or SECRETS_DIR (%v)", err)
		}
		c.Password = strings.TrimSpace(string(b))
		if c.Password == "" {
			return c, fmt.Errorf("no gateway password: %s is empty", path)
		}
	}
	if c.Refresh, err = durationIn(get("CONNECTOR_REFRESH"), 100*time.Millisecond, time.Hour); err != nil {
		return c, bad("CONNECTOR_REFRESH", err.Error())
	}
	if c.MaxDeliver, err = intIn(get("CONNECTOR_MAX_DELIVER"), 1, 100); err != nil {
		return c, bad("CONNECTOR_MAX_DELIVER", err.Error())
	}
	for _, s := range strings.Split(get("CONNECTOR_BACKOFF"), ",") {
		d, err := durationIn(strings.TrimSpace(s), time.Millisecond, 24*time.Hour)
		if err != nil {
			return c, bad("CONNECTOR_BACKOFF", "must be comma-separated durations like 1s,5s,30s (each 1ms–24h)")
		}
		c.Backoff = append(c.Backoff, d)
	}
	if c.Timeout, err = durationIn(get("CONNECTOR_TIMEOUT"), time.Second, 24*time.Hour); err != nil {
		return c, bad("CONNECTOR_TIMEOUT", err.Error())
	}
	if c.Concurrency, err = intIn(get("CONNECTOR_CONCURRENCY"), 1, 1000); err != nil {
		return c, bad("CONNECTOR_CONCURRENCY", err.Error())
	}
	c.MetricsAddr = get("CONNECTOR_METRICS_ADDR")
	if _, port, err := net.SplitHostPort(c.MetricsAddr); err != nil {
		return c, bad("CONNECTOR_METRICS_ADDR", "must be host:port, e.g. 127.0.0.1:8081")
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return c, bad("CONNECTOR_METRICS_ADDR", "port must be 0–65535")
	}
	return c, nil
}

func durationIn(s string, lo, hi time.Duration) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil || d < lo || d > hi {
		return 0, fmt.Errorf("must be a duration from %s to %s, like 5s or 10m", lo, hi)
	}
	return d, nil
}

func intIn(s string, lo, hi int) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("must be a whole number from %d to %d", lo, hi)
	}
	return n, nil
}

// SettingsUsage writes the connector's variables with their defaults, for -h.
func SettingsUsage(w io.Writer) {
	for _, s := range Settings {
		fmt.Fprintf(w, "  %-24s %s (default %q)\n", s.Env, s.Usage, s.Default)
	}
}
