// Package config reads PulseVault's settings from the environment and
// command-line flags, and validates them so that a bad value stops the
// process with one line naming the variable and what it accepts.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/mieweb/pulsevault/shared/platform/secrets"
	"github.com/mieweb/pulsevault/shared/topology"
)

// Config is the validated configuration shared by every command.
type Config struct {
	DataDir string // where the local stack keeps NATS, S3 and secrets

	NATSURL      string // external NATS; empty runs the embedded server
	NATSPort     int    // embedded NATS port
	NATSReplicas int    // copies of every stream and key-value bucket PulseVault creates

	S3Endpoint  string // external S3 (http[s]://host:port); empty runs versitygw
	S3Port      int    // local versitygw port
	S3Region    string
	S3AccessKey string
	S3SecretKey string

	UploadsBucket string
	MediaBucket   string
	AuditBucket   string

	MediaRetentionDays int // COMPLIANCE retention stamped on every media object
	AuditRetentionDays int // COMPLIANCE retention stamped on every audit object

	GatewayPort int    // local OpenFaaS-compatible gateway (provider) port
	PublicPort  int    // the public origin (API + media + Vitals) of the local stack
	PublicTLS   string // "off", "self-signed", or "files" (PUBLIC_TLS_CERT/KEY)
	TLSCert     string
	TLSKey      string
	StackFile   string // stack.yml that `dev` deploys to the local provider

	JWKSURL       string // production: the OIDC provider's JWKS; empty = HS256 with the pulsevault-jwt-secret secret
	JWTIssuer     string
	JWTAudience   string
	JWTRolesClaim string // claim (or dotted path) of API tokens that holds the roles

	OIDCIssuer     string        // the OpenID provider API tokens come from (discovery + JWKS)
	OIDCAlgorithms []string      // signature algorithms accepted from the issuer
	OIDCVitalsID   string        // client id of Vitals at the issuer (public client, code + PKCE)
	OIDCCLIID      string        // client id of the CLI at the issuer (device authorization grant)
	OIDCCAFile     string        // extra CA (PEM) trusted for the issuer's discovery and JWKS
	AuthLeeway     time.Duration // the one clock-skew allowance on exp, nbf and iat
	AuthHS256      bool          // tests and scripts: HS256 tokens with the pulsevault-jwt-secret secret

	EventSubject string // NATS subject the S3 server publishes bucket events to
	LockCheck    string // "strict" refuses to start on a store without WORM; "warn" only logs
	LogLevel     string
}

var asymmetricAlg = regexp.MustCompile(`^(RS|PS|ES)(256|384|512)$|^EdDSA$`)

// Var describes one setting: its environment variable, its flag, its default
// and what it means. The README's configuration table lists every Var.
type Var struct {
	Env     string
	Default string
	Usage   string
	set     func(c *Config, v string) error
}

// Flag is the command-line flag name of the variable, e.g. S3_PORT → s3-port.
func (v Var) Flag() string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(v.Env, "PULSEVAULT_")), "_", "-")
}

// Vars lists every setting, in the order the README documents them.
var Vars = []Var{
	{"PULSEVAULT_DATA_DIR", "./.pulsevault", "data directory of the local stack (NATS store, S3 objects, logs)", func(c *Config, v string) error {
		if v == "" {
			return errors.New("must not be empty")
		}
		c.DataDir = v
		return nil
	}},
	{"NATS_URL", "", "external NATS server (nats://host:port); empty starts the embedded server", func(c *Config, v string) error {
		if v != "" {
			if err := checkURL(v, "nats", "tls"); err != nil {
				return err
			}
		}
		c.NATSURL = v
		return nil
	}},
	{"NATS_PORT", "4222", "port of the embedded NATS server on 127.0.0.1 (0 picks a free port)", intIn(0, 65535, func(c *Config, n int) { c.NATSPort = n })},
	{"NATS_REPLICAS", "1", "copies JetStream keeps of every PulseVault stream and key-value bucket (1–5, at most the cluster's size; 1 with the embedded server, 3 on the 3-node cluster of infra/); existing ones are converged to it", intIn(1, 5, func(c *Config, n int) { c.NATSReplicas = n })},
	{"S3_ENDPOINT", "", "external S3 endpoint with Object Lock (http[s]://host:port); empty starts versitygw", func(c *Config, v string) error {
		if v != "" {
			if err := checkURL(v, "http", "https"); err != nil {
				return err
			}
		}
		c.S3Endpoint = v
		return nil
	}},
	{"S3_PORT", "9000", "port of the local versitygw S3 server on 127.0.0.1 (0 picks a free port)", intIn(0, 65535, func(c *Config, n int) { c.S3Port = n })},
	{"S3_REGION", "us-east-1", "S3 region", nonEmpty(func(c *Config, v string) { c.S3Region = v })},
	{"S3_ACCESS_KEY", "pulsevault", "S3 access key (local versitygw is started with it); unset, read from SECRETS_DIR: a function's own pulsevault-s3-FUNCTION-access-key when its pair is there, else pulsevault-s3-access-key", nonEmpty(func(c *Config, v string) { c.S3AccessKey = v })},
	{"S3_SECRET_KEY", "", "S3 secret key; unset, read from SECRETS_DIR like S3_ACCESS_KEY (pulsevault-s3-FUNCTION-secret-key, else pulsevault-s3-secret-key: how functions get it in production). No default: pulsevault dev generates one for its local versitygw (kept in PULSEVAULT_DATA_DIR/secrets/pulsevault-s3-secret-key), everything else that talks to S3 refuses to start without it", func(c *Config, v string) error {
		if v != "" && len(v) < 8 {
			return errors.New("must be at least 8 characters")
		}
		c.S3SecretKey = v
		return nil
	}},
	{"BUCKET_UPLOADS", topology.DefaultUploadsBucket, "staging bucket for tus uploads (no lock, no versioning)", bucket(func(c *Config, v string) { c.UploadsBucket = v })},
	{"BUCKET_MEDIA", topology.DefaultMediaBucket, "media bucket (Object Lock, COMPLIANCE)", bucket(func(c *Config, v string) { c.MediaBucket = v })},
	{"BUCKET_AUDIT", topology.DefaultAuditBucket, "audit bucket (Object Lock, COMPLIANCE)", bucket(func(c *Config, v string) { c.AuditBucket = v })},
	{"MEDIA_RETENTION_DAYS", "2190", "days of COMPLIANCE retention on every media object (1–36500; 2190 = 6 years)", intIn(1, 36500, func(c *Config, n int) { c.MediaRetentionDays = n })},
	{"AUDIT_RETENTION_DAYS", "2190", "days of COMPLIANCE retention on every audit object (1–36500; 2190 = 6 years)", intIn(1, 36500, func(c *Config, n int) { c.AuditRetentionDays = n })},
	{"GATEWAY_PORT", "8080", "port of the local OpenFaaS-compatible gateway (provider) on 127.0.0.1 (0 picks a free port)", intIn(0, 65535, func(c *Config, n int) { c.GatewayPort = n })},
	{"PUBLIC_PORT", "3000", "port of the public origin on 127.0.0.1: /api/*, /media/* and the Vitals app (0 picks a free port)", intIn(0, 65535, func(c *Config, n int) { c.PublicPort = n })},
	{"PUBLIC_TLS", "off", "TLS on the public origin: off, self-signed (generated in the data dir; its fingerprint is printed) or files (PUBLIC_TLS_CERT and PUBLIC_TLS_KEY)", oneOf([]string{"off", "self-signed", "files"}, func(c *Config, v string) { c.PublicTLS = v })},
	{"PUBLIC_TLS_CERT", "", "PEM certificate (chain) for PUBLIC_TLS=files", func(c *Config, v string) error { c.TLSCert = v; return nil }},
	{"PUBLIC_TLS_KEY", "", "PEM private key for PUBLIC_TLS=files", func(c *Config, v string) error { c.TLSKey = v; return nil }},
	{"STACK_FILE", "stack.yml", "the OpenFaaS stack file whose functions `pulsevault dev` deploys to the local provider", nonEmpty(func(c *Config, v string) { c.StackFile = v })},
	{"JWKS_URL", "", "JWKS endpoint of the OIDC provider that signs API tokens; empty verifies HS256 tokens with the pulsevault-jwt-secret secret", func(c *Config, v string) error {
		if v != "" {
			u, err := url.Parse(v)
			if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				return errors.New("must be an http(s) URL")
			}
		}
		c.JWKSURL = v
		return nil
	}},
	{"JWT_ISSUER", "pulsevault", "required iss claim of API tokens", nonEmpty(func(c *Config, v string) { c.JWTIssuer = v })},
	{"JWT_AUDIENCE", "pulsevault-api", "required aud claim of API tokens", nonEmpty(func(c *Config, v string) { c.JWTAudience = v })},
	{"JWT_ROLES_CLAIM", "roles", "claim of API tokens that holds the caller's roles: a claim name, or a dotted path into nested claims such as realm_access.roles; no other claim (groups, say) is read", func(c *Config, v string) error {
		if v == "" || strings.ContainsAny(v, " \t") || strings.HasPrefix(v, ".") || strings.HasSuffix(v, ".") || strings.Contains(v, "..") {
			return errors.New("must be a claim name or a dotted path such as realm_access.roles")
		}
		c.JWTRolesClaim = v
		return nil
	}},
	{"OIDC_ISSUER", "", "OpenID provider that signs API tokens (https://idp.example/realms/clinic): its discovery document gives the JWKS, iss must equal it; pulsevault dev runs an embedded one when this is empty", func(c *Config, v string) error {
		if v != "" {
			u, err := url.Parse(v)
			if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
				return errors.New("must be an http(s) URL without query")
			}
		}
		c.OIDCIssuer = strings.TrimRight(v, "/")
		return nil
	}},
	{"OIDC_ALGORITHMS", "RS256,ES256", "signature algorithms accepted from the issuer (comma-separated, asymmetric only: RS*, PS*, ES*, EdDSA); HS256 and none are always refused in issuer mode", func(c *Config, v string) error {
		c.OIDCAlgorithms = nil
		for a := range strings.SplitSeq(v, ",") {
			a = strings.TrimSpace(a)
			if !asymmetricAlg.MatchString(a) {
				return errors.New("must list asymmetric JWS algorithms such as RS256,ES256")
			}
			c.OIDCAlgorithms = append(c.OIDCAlgorithms, a)
		}
		return nil
	}},
	{"OIDC_VITALS_CLIENT_ID", "pulsevault-vitals", "client id of Vitals at the issuer (public client, authorization code + PKCE S256)", nonEmpty(func(c *Config, v string) { c.OIDCVitalsID = v })},
	{"OIDC_CLI_CLIENT_ID", "pulsevault-cli", "client id of the pulsevault CLI at the issuer (public client, device authorization grant)", nonEmpty(func(c *Config, v string) { c.OIDCCLIID = v })},
	{"OIDC_CA_FILE", "", "PEM file of CA certificates trusted, besides the system's, for the issuer's discovery and JWKS (an IdP on an internal CA; pulsevault dev sets it to its self-signed certificate)", func(c *Config, v string) error { c.OIDCCAFile = v; return nil }},
	{"AUTH_LEEWAY", "30s", "the one clock-skew allowance on exp, nbf and iat of API tokens (0s–5m)", func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > 5*time.Minute {
			return errors.New("must be a duration from 0s to 5m, such as 30s")
		}
		c.AuthLeeway = d
		return nil
	}},
	{"AUTH_HS256", "off", "on: API tokens are HS256 JWTs signed with the pulsevault-jwt-secret secret (tests and scripts only; never with OIDC_ISSUER)", oneOf([]string{"off", "on"}, func(c *Config, v string) { c.AuthHS256 = v == "on" })},
	{"EVENT_SUBJECT", topology.DefaultEventSubject, "NATS subject the S3 server publishes bucket notifications to", func(c *Config, v string) error {
		if v == "" || strings.ContainsAny(v, " *>\t") {
			return errors.New("must be a literal NATS subject (no spaces or wildcards)")
		}
		c.EventSubject = v
		return nil
	}},
	{"LOCK_CHECK", "strict", "WORM canary at start: strict refuses to run on a store that lets a locked object go; warn only logs", oneOf([]string{"strict", "warn"}, func(c *Config, v string) { c.LockCheck = v })},
	{"LOG_LEVEL", "info", "log level: debug, info, warn or error", oneOf([]string{"debug", "info", "warn", "error"}, func(c *Config, v string) { c.LogLevel = v })},
}

// SecretFiles names the secret each credential falls back to when its
// variable is unset, so a deployment can keep credentials out of its
// environment (stack.yml lists the secrets instead). A function's own S3
// user (FunctionSecretFile) comes first.
var SecretFiles = map[string]string{
	"S3_ACCESS_KEY": "pulsevault-s3-access-key",
	"S3_SECRET_KEY": "pulsevault-s3-secret-key",
}

const s3SecretPrefix = "pulsevault-s3-"

// functionName is what a function (or command) name must look like to have
// secrets of its own.
var functionName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)

// FunctionSecretFile is the secret holding credential env (a SecretFiles
// key) of function's own S3 user, e.g. pulsevault-s3-upload-access-key:
// each function gets credentials whose policy grants what it needs only.
func FunctionSecretFile(env, function string) string {
	return s3SecretPrefix + function + "-" + strings.TrimPrefix(SecretFiles[env], s3SecretPrefix)
}

// CredentialOf reports which setting (S3_ACCESS_KEY or S3_SECRET_KEY) the
// secret named secret holds, for the shared names and every function's own.
func CredentialOf(secret string) (env string, ok bool) {
	for env, shared := range SecretFiles {
		suffix := "-" + strings.TrimPrefix(shared, s3SecretPrefix)
		fn, isFn := strings.CutSuffix(strings.TrimPrefix(secret, s3SecretPrefix), suffix)
		if secret == shared || (strings.HasPrefix(secret, s3SecretPrefix) && isFn && functionName.MatchString(fn)) {
			return env, true
		}
	}
	return "", false
}

// credentialSecrets are the secret names Load reads the S3 credentials
// from when their variables are unset: the function's own pair when its
// secret key is there (a pair is never mixed), else the shared pair.
func credentialSecrets(getenv func(string) string, name string) map[string]string {
	if functionName.MatchString(name) {
		own := map[string]string{}
		for env := range SecretFiles {
			own[env] = FunctionSecretFile(env, name)
		}
		if _, err := os.Stat(filepath.Join(secretsDir(getenv), own["S3_SECRET_KEY"])); err == nil {
			return own
		}
	}
	return SecretFiles
}

func secretsDir(getenv func(string) string) string {
	if dir := getenv(secrets.EnvDir); dir != "" {
		return dir
	}
	return secrets.DefaultDir
}

// fromSecret reads secret name from $SECRETS_DIR (OpenFaaS's mount point by
// default); a missing file is no error, just no value.
func fromSecret(getenv func(string) string, name string) (string, error) {
	dir := secretsDir(getenv)
	if _, err := os.Stat(filepath.Join(dir, name)); errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	b, err := secrets.ReadFrom(dir, name)
	return strings.TrimSpace(string(b)), err
}

// Load reads the configuration from the environment (via getenv) and then
// from args, which override it. The returned error is one line naming the
// offending variable and what it accepts.
func Load(name string, args []string, getenv func(string) string) (Config, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	vals := make([]*string, len(Vars))
	creds := credentialSecrets(getenv, name)
	for i, v := range Vars {
		def := v.Default
		if e := getenv(v.Env); e != "" {
			def = e
		} else if secret, ok := creds[v.Env]; ok {
			s, err := fromSecret(getenv, secret)
			if err != nil {
				return Config{}, fmt.Errorf("invalid %s: %v", v.Env, err)
			}
			if s != "" {
				def = s
			}
		}
		vals[i] = fs.String(v.Flag(), def, v.Usage+" (env "+v.Env+")")
	}
	if err := fs.Parse(args); err != nil {
		return Config{}, fmt.Errorf("%s: %v (run with -h for the settings)", name, err)
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("%s: unexpected argument %q", name, fs.Arg(0))
	}
	var c Config
	for i, v := range Vars {
		if err := v.set(&c, strings.TrimSpace(*vals[i])); err != nil {
			return Config{}, fmt.Errorf("invalid %s (--%s) %q: %v", v.Env, v.Flag(), *vals[i], err)
		}
	}
	if c.NATSURL == "" && c.NATSReplicas > 1 {
		return Config{}, fmt.Errorf("invalid NATS_REPLICAS (--nats-replicas) %d: the embedded NATS server is a single node, so 1 (set NATS_URL to a cluster for more)", c.NATSReplicas)
	}
	if c.PublicTLS == "files" && (c.TLSCert == "" || c.TLSKey == "") {
		return Config{}, errors.New("invalid PUBLIC_TLS (--public-tls) \"files\": needs both PUBLIC_TLS_CERT and PUBLIC_TLS_KEY")
	}
	if c.AuthHS256 && (c.OIDCIssuer != "" || c.JWKSURL != "") {
		return Config{}, errors.New("invalid AUTH_HS256 (--auth-hs256) \"on\": HS256 tokens are for tests and scripts, not together with OIDC_ISSUER or JWKS_URL")
	}
	if c.OIDCIssuer != "" && c.JWKSURL != "" {
		return Config{}, errors.New("invalid JWKS_URL (--jwks-url): set OIDC_ISSUER (its discovery gives the JWKS) or JWKS_URL with JWT_ISSUER, not both")
	}
	abs, err := filepath.Abs(c.DataDir)
	if err != nil {
		return Config{}, fmt.Errorf("invalid PULSEVAULT_DATA_DIR %q: %v", c.DataDir, err)
	}
	c.DataDir = abs
	return c, nil
}

// FromEnv is Load over the process environment with no flags.
func FromEnv(name string) (Config, error) { return Load(name, nil, os.Getenv) }

// Usage writes the settings with their defaults, for -h.
func Usage(w io.Writer) {
	for _, v := range Vars {
		fmt.Fprintf(w, "  --%-22s %-22s %s (default %q)\n", v.Flag(), v.Env, v.Usage, v.Default)
	}
}

// Env is the configuration as environment variables, with the addresses
// actually in use: what the provider passes to the functions it starts, so
// they reach the same store and bus as the stack around them.
func (c Config) Env() []string {
	env := []string{
		"PULSEVAULT_DATA_DIR=" + c.DataDir,
		"NATS_URL=" + c.NATSURL,
		"NATS_REPLICAS=" + strconv.Itoa(c.NATSReplicas),
		"S3_REGION=" + c.S3Region,
		"BUCKET_UPLOADS=" + c.UploadsBucket,
		"BUCKET_MEDIA=" + c.MediaBucket,
		"BUCKET_AUDIT=" + c.AuditBucket,
		"MEDIA_RETENTION_DAYS=" + strconv.Itoa(c.MediaRetentionDays),
		"AUDIT_RETENTION_DAYS=" + strconv.Itoa(c.AuditRetentionDays),
		"EVENT_SUBJECT=" + c.EventSubject,
		"LOCK_CHECK=" + c.LockCheck,
		"LOG_LEVEL=" + c.LogLevel,
		"JWT_ISSUER=" + c.JWTIssuer,
		"JWT_AUDIENCE=" + c.JWTAudience,
		"JWT_ROLES_CLAIM=" + c.JWTRolesClaim,
		"OIDC_ISSUER=" + c.OIDCIssuer,
		"OIDC_ALGORITHMS=" + strings.Join(c.OIDCAlgorithms, ","),
		"OIDC_VITALS_CLIENT_ID=" + c.OIDCVitalsID,
		"OIDC_CLI_CLIENT_ID=" + c.OIDCCLIID,
		"OIDC_CA_FILE=" + c.OIDCCAFile,
		"AUTH_LEEWAY=" + c.AuthLeeway.String(),
		"AUTH_HS256=" + map[bool]string{true: "on", false: "off"}[c.AuthHS256],
	}
	// Credentials go as a pair, and only when there is a secret: without one,
	// each function reads its own from its secrets.
	if c.S3SecretKey != "" {
		env = append(env, "S3_ACCESS_KEY="+c.S3AccessKey, "S3_SECRET_KEY="+c.S3SecretKey)
	}
	if c.JWKSURL != "" {
		env = append(env, "JWKS_URL="+c.JWKSURL)
	}
	if c.S3Endpoint != "" {
		env = append(env, "S3_ENDPOINT="+c.S3Endpoint)
	}
	return env
}

// CheckS3 reports a missing S3 secret key: there is no well-known default,
// and only the local versitygw gets a generated one (shared/localstack).
func (c Config) CheckS3() error {
	if c.S3SecretKey == "" {
		return fmt.Errorf("S3_SECRET_KEY is not set (nor %s in SECRETS_DIR): give the store's secret key; only pulsevault dev's own local store gets a generated one", SecretFiles["S3_SECRET_KEY"])
	}
	return nil
}

// LocalS3 reports whether the local versitygw should be started.
func (c Config) LocalS3() bool { return c.S3Endpoint == "" }

// LocalNATS reports whether the embedded NATS server should be started.
func (c Config) LocalNATS() bool { return c.NATSURL == "" }

func checkURL(v string, schemes ...string) error {
	u, err := url.Parse(v)
	if err != nil {
		return fmt.Errorf("not a URL: %v", err)
	}
	ok := false
	for _, s := range schemes {
		ok = ok || u.Scheme == s
	}
	if !ok {
		return fmt.Errorf("scheme must be one of %s://", strings.Join(schemes, ":// "))
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil || host == "" {
		return errors.New("must be scheme://host:port")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return errors.New("port must be 1–65535")
	}
	return nil
}

func intIn(lo, hi int, set func(*Config, int)) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < lo || n > hi {
			return fmt.Errorf("must be a whole number from %d to %d", lo, hi)
		}
		set(c, n)
		return nil
	}
}

func nonEmpty(set func(*Config, string)) func(*Config, string) error {
	return func(c *Config, v string) error {
		if v == "" {
			return errors.New("must not be empty")
		}
		set(c, v)
		return nil
	}
}

func oneOf(allowed []string, set func(*Config, string)) func(*Config, string) error {
	return func(c *Config, v string) error {
		for _, a := range allowed {
			if v == a {
				set(c, v)
				return nil
			}
		}
		return fmt.Errorf("must be one of %s", strings.Join(allowed, ", "))
	}
}

// bucket accepts S3 bucket names (3–63 lowercase letters, digits, dots, hyphens).
func bucket(set func(*Config, string)) func(*Config, string) error {
	return func(c *Config, v string) error {
		if len(v) < 3 || len(v) > 63 || strings.Trim(v, "abcdefghijklmnopqrstuvwxyz0123456789.-") != "" ||
			strings.Trim(v[:1]+v[len(v)-1:], "abcdefghijklmnopqrstuvwxyz0123456789") != "" {
			return errors.New("must be an S3 bucket name: 3–63 lowercase letters, digits, dots and hyphens")
		}
		set(c, v)
		return nil
	}
}
