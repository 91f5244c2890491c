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
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/mieweb/pulsevault/shared/platform/secrets"
	"github.com/mieweb/pulsevault/shared/platform/settings"
	"github.com/mieweb/pulsevault/shared/topology"
)

// Config is the validated configuration shared by every command, split by
// concern. The parts are embedded, so cfg.NATSURL, cfg.MediaBucket, ... read
// as before; a package that needs one concern takes that part alone.
type Config struct {
	Store  // the object store: endpoint, credentials, buckets, retention
	Bus    // NATS
	Auth   // API tokens
	Local  // the local stack of pulsevault dev
	Public // the public origin

	LogLevel string
}

// Store is the object store's settings. Its S3 method gives shared/storage
// what it needs, so storage does not depend on this package.
type Store struct {
	S3Endpoint  string // external S3 (http[s]://host:port); empty runs versitygw
	S3Region    string
	S3AccessKey string
	S3SecretKey string

	UploadsBucket string
	MediaBucket   string
	AuditBucket   string

	MediaRetentionDays int    // COMPLIANCE retention stamped on every media object
	AuditRetentionDays int    // COMPLIANCE retention stamped on every audit object
	LockCheck          string // "strict" refuses to start on a store without WORM; "warn" only logs
}

// Bus is the NATS settings.
type Bus struct {
	NATSURL      string // external NATS; empty runs the embedded server
	NATSReplicas int    // copies of every stream and key-value bucket PulseVault creates
	EventSubject string // NATS subject the S3 server publishes bucket events to
}

// Auth is how API tokens are verified.
type Auth struct {
	JWKSURL       string // an issuer's JWKS without discovery (with JWT_ISSUER); prefer OIDCIssuer
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
}

// Local is the local stack's settings (pulsevault dev, provider).
type Local struct {
	DataDir     string // where the local stack keeps NATS, S3 and secrets
	NATSPort    int    // embedded NATS port
	S3Port      int    // local versitygw port
	GatewayPort int    // local OpenFaaS-compatible gateway (provider) port
	StackFile   string // stack.yml that `dev` deploys to the local provider
}

// Public is the public origin's settings (API + media + Vitals).
type Public struct {
	PublicPort int
	PublicTLS  string // "off", "self-signed", or "files" (PUBLIC_TLS_CERT/KEY)
	TLSCert    string
	TLSKey     string
}

// Vars lists every shared setting, in the order the README documents them;
// the README's configuration table is generated from it.
var Vars = settings.Table{
	{Env: "PULSEVAULT_DATA_DIR", Flag: "data-dir", Default: "./.pulsevault", Usage: "data directory of the local stack (NATS store, S3 objects, logs)", Check: settings.NonEmpty},
	{Env: "NATS_URL", Flag: "nats-url", Usage: "external NATS server (nats://host:port); empty starts the embedded server", Check: settings.Optional(settings.ServiceURL("nats", "tls"))},
	{Env: "NATS_PORT", Flag: "nats-port", Default: "4222", Usage: "port of the embedded NATS server on 127.0.0.1 (0 picks a free port)", Check: settings.Port},
	{Env: "NATS_REPLICAS", Flag: "nats-replicas", Default: "1", Usage: "copies JetStream keeps of every PulseVault stream and key-value bucket (1–5, at most the cluster's size; 1 with the embedded server, 3 on the 3-node cluster of infra/); existing ones are converged to it", Check: settings.IntRange(1, 5)},
	{Env: "S3_ENDPOINT", Flag: "s3-endpoint", Usage: "external S3 endpoint with Object Lock (http[s]://host:port); empty starts versitygw", Check: settings.Optional(settings.ServiceURL("http", "https"))},
	{Env: "S3_PORT", Flag: "s3-port", Default: "9000", Usage: "port of the local versitygw S3 server on 127.0.0.1 (0 picks a free port)", Check: settings.Port},
	{Env: "S3_REGION", Flag: "s3-region", Default: "us-east-1", Usage: "S3 region", Check: settings.NonEmpty},
	{Env: "S3_ACCESS_KEY", Flag: "s3-access-key", Default: "pulsevault", Usage: "S3 access key (local versitygw is started with it); unset, read from `SECRETS_DIR`: a function's own `pulsevault-s3-FUNCTION-access-key` when its pair is there, else `pulsevault-s3-access-key`", Check: settings.NonEmpty},
	{Env: "S3_SECRET_KEY", Flag: "s3-secret-key", Usage: "S3 secret key; unset, read from `SECRETS_DIR` like `S3_ACCESS_KEY` (`pulsevault-s3-FUNCTION-secret-key`, else `pulsevault-s3-secret-key`: how functions get it in production). No default: `pulsevault dev` generates one for its local versitygw (kept in `PULSEVAULT_DATA_DIR/secrets/pulsevault-s3-secret-key`), everything else that talks to S3 refuses to start without it", Check: settings.Optional(settings.MinLen(8))},
	{Env: "BUCKET_UPLOADS", Flag: "bucket-uploads", Default: topology.DefaultUploadsBucket, Usage: "staging bucket for tus uploads (no lock, no versioning)", Check: settings.Bucket},
	{Env: "BUCKET_MEDIA", Flag: "bucket-media", Default: topology.DefaultMediaBucket, Usage: "media bucket (Object Lock, COMPLIANCE)", Check: settings.Bucket},
	{Env: "BUCKET_AUDIT", Flag: "bucket-audit", Default: topology.DefaultAuditBucket, Usage: "audit bucket (Object Lock, COMPLIANCE)", Check: settings.Bucket},
	{Env: "MEDIA_RETENTION_DAYS", Flag: "media-retention-days", Default: "2190", Usage: "days of COMPLIANCE retention on every media object (1–36500; 2190 = 6 years)", Check: settings.IntRange(1, 36500)},
	{Env: "AUDIT_RETENTION_DAYS", Flag: "audit-retention-days", Default: "2190", Usage: "days of COMPLIANCE retention on every audit object (1–36500; 2190 = 6 years)", Check: settings.IntRange(1, 36500)},
	{Env: "GATEWAY_PORT", Flag: "gateway-port", Default: "8080", Usage: "port of the local OpenFaaS-compatible gateway (provider) on 127.0.0.1 (0 picks a free port)", Check: settings.Port},
	{Env: "PUBLIC_PORT", Flag: "public-port", Default: "3000", Usage: "port of the public origin on 127.0.0.1: /api/*, /media/* and the Vitals app (0 picks a free port)", Check: settings.Port},
	{Env: "PUBLIC_TLS", Flag: "public-tls", Default: "off", Usage: "TLS on the public origin: off, self-signed (generated in the data dir; its fingerprint is printed) or files (PUBLIC_TLS_CERT and PUBLIC_TLS_KEY)", Check: settings.OneOf("off", "self-signed", "files")},
	{Env: "PUBLIC_TLS_CERT", Flag: "public-tls-cert", Usage: "PEM certificate (chain) for PUBLIC_TLS=files"},
	{Env: "PUBLIC_TLS_KEY", Flag: "public-tls-key", Usage: "PEM private key for PUBLIC_TLS=files"},
	{Env: "STACK_FILE", Flag: "stack-file", Default: "stack.yml", Usage: "the OpenFaaS stack file whose functions pulsevault dev deploys to the local provider", Check: settings.NonEmpty},
	{Env: "JWKS_URL", Flag: "jwks-url", Usage: "JWKS endpoint of an issuer without discovery (with JWT_ISSUER); prefer OIDC_ISSUER", Check: settings.Optional(jwksURL)},
	{Env: "JWT_ISSUER", Flag: "jwt-issuer", Default: "pulsevault", Usage: "required iss claim of API tokens", Check: settings.NonEmpty},
	{Env: "JWT_AUDIENCE", Flag: "jwt-audience", Default: "pulsevault-api", Usage: "required aud claim of API tokens", Check: settings.NonEmpty},
	{Env: "JWT_ROLES_CLAIM", Flag: "jwt-roles-claim", Default: "roles", Usage: "claim of API tokens that holds the caller's roles: a claim name, or a dotted path into nested claims such as realm_access.roles; no other claim (groups, say) is read", Check: rolesClaim},
	{Env: "OIDC_ISSUER", Flag: "oidc-issuer", Usage: "OpenID provider that signs API tokens (https://idp.example/realms/clinic): its discovery document gives the JWKS, iss must equal it; pulsevault dev runs an embedded one when this is empty", Check: settings.Optional(issuerURL)},
	{Env: "OIDC_ALGORITHMS", Flag: "oidc-algorithms", Default: "RS256,ES256", Usage: "signature algorithms accepted from the issuer (comma-separated, asymmetric only: RS*, PS*, ES*, EdDSA); HS256 and none are always refused in issuer mode", Check: algorithms},
	{Env: "OIDC_VITALS_CLIENT_ID", Flag: "oidc-vitals-client-id", Default: "pulsevault-vitals", Usage: "client id of Vitals at the issuer (public client, authorization code + PKCE S256)", Check: settings.NonEmpty},
	{Env: "OIDC_CLI_CLIENT_ID", Flag: "oidc-cli-client-id", Default: "pulsevault-cli", Usage: "client id of the pulsevault CLI at the issuer (public client, device authorization grant)", Check: settings.NonEmpty},
	{Env: "OIDC_CA_FILE", Flag: "oidc-ca-file", Usage: "PEM file of CA certificates trusted, besides the system's, for the issuer's discovery and JWKS (an IdP on an internal CA; pulsevault dev sets it to its self-signed certificate)"},
	{Env: "AUTH_LEEWAY", Flag: "auth-leeway", Default: "30s", Usage: "the one clock-skew allowance on exp, nbf and iat of API tokens (0s–5m)", Check: settings.Duration(0, 5*time.Minute)},
	{Env: "AUTH_HS256", Flag: "auth-hs256", Default: "off", Usage: "on: API tokens are HS256 JWTs signed with the pulsevault-jwt-secret secret (tests and scripts only; never with OIDC_ISSUER)", Check: settings.OneOf("off", "on")},
	{Env: "EVENT_SUBJECT", Flag: "event-subject", Default: topology.DefaultEventSubject, Usage: "NATS subject the S3 server publishes bucket notifications to", Check: subject},
	{Env: "LOCK_CHECK", Flag: "lock-check", Default: "strict", Usage: "WORM canary at start: strict refuses to run on a store that lets a locked object go; warn only logs", Check: settings.OneOf("strict", "warn")},
	{Env: "LOG_LEVEL", Flag: "log-level", Default: "info", Usage: "log level: debug, info, warn or error", Check: settings.OneOf("debug", "info", "warn", "error")},
}

func jwksURL(v string) error {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return errors.New("must be an http(s) URL")
	}
	return nil
}

func issuerURL(v string) error {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return errors.New("must be an http(s) URL without query")
	}
	return nil
}

var asymmetricAlg = regexp.MustCompile(`^(RS|PS|ES)(256|384|512)$|^EdDSA$`)

func algorithms(v string) error {
	for a := range strings.SplitSeq(v, ",") {
		if !asymmetricAlg.MatchString(strings.TrimSpace(a)) {
			return errors.New("must list asymmetric JWS algorithms such as RS256,ES256")
		}
	}
	return nil
}

func rolesClaim(v string) error {
	if v == "" || strings.ContainsAny(v, " \t") || strings.HasPrefix(v, ".") || strings.HasSuffix(v, ".") || strings.Contains(v, "..") {
		return errors.New("must be a claim name or a dotted path such as realm_access.roles")
	}
	return nil
}

func subject(v string) error {
	if v == "" || strings.ContainsAny(v, " *>\t") {
		return errors.New("must be a literal NATS subject (no spaces or wildcards)")
	}
	return nil
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
	c, check, err := Bind(fs, name, getenv)
	if err != nil {
		return Config{}, err
	}
	if err := fs.Parse(args); err != nil {
		return Config{}, fmt.Errorf("%s: %v (run with -h for the settings)", name, err)
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("%s: unexpected argument %q", name, fs.Arg(0))
	}
	if err := check(); err != nil {
		return Config{}, err
	}
	return *c, nil
}

// Bind declares every setting's flag on fs, for a command with flags of its
// own (pulsevault audit). After fs.Parse, check validates the values and
// fills the Config. An error is a credential secret that cannot be read.
func Bind(fs *flag.FlagSet, name string, getenv func(string) string) (*Config, func() error, error) {
	// Unset S3 credentials come from the secrets: feed them in as if they
	// were the environment, so that flags still win.
	fromSecrets := map[string]string{}
	for env, secret := range credentialSecrets(getenv, name) {
		if strings.TrimSpace(getenv(env)) != "" {
			continue
		}
		s, err := fromSecret(getenv, secret)
		if err != nil {
			return nil, nil, fmt.Errorf("invalid %s: %v", env, err)
		}
		fromSecrets[env] = s
	}
	vs := settings.Bind(fs, Vars, func(k string) string {
		if v, ok := fromSecrets[k]; ok {
			return v
		}
		return getenv(k)
	})
	c := new(Config)
	return c, func() error {
		if err := vs.Validate(); err != nil {
			return err
		}
		got, err := fill(vs)
		*c = got
		return err
	}, nil
}

// fill builds the Config from validated values and checks what spans
// several settings.
func fill(vs *settings.Values) (Config, error) {
	c := Config{
		Store: Store{
			S3Endpoint: vs.String("S3_ENDPOINT"), S3Region: vs.String("S3_REGION"),
			S3AccessKey: vs.String("S3_ACCESS_KEY"), S3SecretKey: vs.String("S3_SECRET_KEY"),
			UploadsBucket: vs.String("BUCKET_UPLOADS"), MediaBucket: vs.String("BUCKET_MEDIA"), AuditBucket: vs.String("BUCKET_AUDIT"),
			MediaRetentionDays: vs.Int("MEDIA_RETENTION_DAYS"), AuditRetentionDays: vs.Int("AUDIT_RETENTION_DAYS"),
			LockCheck: vs.String("LOCK_CHECK"),
		},
		Bus: Bus{NATSURL: vs.String("NATS_URL"), NATSReplicas: vs.Int("NATS_REPLICAS"), EventSubject: vs.String("EVENT_SUBJECT")},
		Auth: Auth{
			JWKSURL: vs.String("JWKS_URL"), JWTIssuer: vs.String("JWT_ISSUER"),
			JWTAudience: vs.String("JWT_AUDIENCE"), JWTRolesClaim: vs.String("JWT_ROLES_CLAIM"),
			OIDCIssuer: strings.TrimRight(vs.String("OIDC_ISSUER"), "/"), OIDCAlgorithms: vs.List("OIDC_ALGORITHMS"),
			OIDCVitalsID: vs.String("OIDC_VITALS_CLIENT_ID"), OIDCCLIID: vs.String("OIDC_CLI_CLIENT_ID"),
			OIDCCAFile: vs.String("OIDC_CA_FILE"), AuthLeeway: vs.Duration("AUTH_LEEWAY"), AuthHS256: vs.String("AUTH_HS256") == "on",
		},
		Local: Local{
			DataDir: vs.String("PULSEVAULT_DATA_DIR"), NATSPort: vs.Int("NATS_PORT"), S3Port: vs.Int("S3_PORT"),
			GatewayPort: vs.Int("GATEWAY_PORT"), StackFile: vs.String("STACK_FILE"),
		},
		Public: Public{
			PublicPort: vs.Int("PUBLIC_PORT"), PublicTLS: vs.String("PUBLIC_TLS"),
			TLSCert: vs.String("PUBLIC_TLS_CERT"), TLSKey: vs.String("PUBLIC_TLS_KEY"),
		},
		LogLevel: vs.String("LOG_LEVEL"),
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
func Usage(w io.Writer) { settings.Usage(w, Vars) }

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
func (s Store) CheckS3() error {
	if s.S3SecretKey == "" {
		return fmt.Errorf("S3_SECRET_KEY is not set (nor %s in SECRETS_DIR): give the store's secret key; only pulsevault dev's own local store gets a generated one", SecretFiles["S3_SECRET_KEY"])
	}
	return nil
}

// S3 is where the store is and how to sign requests, or CheckS3's error:
// what storage.FromConfig takes (storage.Configured), so that shared/storage
// does not depend on this package.
func (s Store) S3() (endpoint, region, accessKey, secretKey string, err error) {
	if err := s.CheckS3(); err != nil {
		return "", "", "", "", err
	}
	return s.S3Endpoint, s.S3Region, s.S3AccessKey, s.S3SecretKey, nil
}

// LocalS3 reports whether the local versitygw should be started.
func (s Store) LocalS3() bool { return s.S3Endpoint == "" }

// LocalNATS reports whether the embedded NATS server should be started.
func (b Bus) LocalNATS() bool { return b.NATSURL == "" }
