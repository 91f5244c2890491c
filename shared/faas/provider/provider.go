// Package provider is PulseVault's local OpenFaaS provider: the gateway API
// (deploy, list, describe, scale, logs, secrets, invoke, async invoke,
// metrics) on a handler the caller serves on 127.0.0.1, with every function
// replica a child process of the pulsevault binary (`pulsevault fn NAME`).
//
// It is built from faas-provider's types, proxy, auth and logs packages, on
// its own router: faas-provider's bootstrap.Serve binds every interface,
// calls log.Fatal and panics when started twice. faas-provider's proxy and
// log handler write through the standard library's log package; New routes
// that package's output to a JSON logger on stderr with URLs cut to their
// host, so no path or query (tokens, ids) reaches a log.
//
// A deployment's service name picks the function the binary runs; its image
// is recorded, not pulled. Each replica gets the deployment's environment,
// the provider's own (Options.Env, which wins: it says where NATS and the
// store really are), port=127.0.0.1:PORT and SECRETS_DIR, a directory
// holding copies of the secrets the deployment lists and no others.
package provider

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/openfaas/faas-provider/auth"
	"github.com/openfaas/faas-provider/logs"
	"github.com/openfaas/faas-provider/proxy"
	"github.com/openfaas/faas-provider/types"

	"github.com/mieweb/pulsevault/shared/bus"
	"github.com/mieweb/pulsevault/shared/platform/logging"
)

// Options configures New. DataDir and Functions are required.
type Options struct {
	// BinPath is the executable started as `BinPath fn NAME` for each
	// replica; default os.Executable() (the running pulsevault).
	BinPath string
	// Functions lists the function names BinPath can run; a deployment of
	// any other service is refused with 400.
	Functions []string

	DataDir    string // provider state: secrets, per-deployment secret copies, credentials
	SecretsDir string // the secret store behind /system/secrets; default DataDir/secrets
	// AuthDir holds basic-auth-user and basic-auth-password, the gateway's
	// credentials (kept apart from the functions' secrets); default
	// DataDir/gateway. Ignored when Auth is set.
	AuthDir string
	// Auth, when set, are the credentials for /system/*.
	Auth *auth.BasicAuthCredentials
	// CreateAuth creates AuthDir's files, user "admin" and a random
	// password, when neither exists (first start of a dev stack).
	CreateAuth bool

	Bus *bus.Bus // NATS JetStream for /async-function; nil answers 503 there
	// NATSReplicas is the copies of the async stream (NATS_REPLICAS); 0
	// keeps the stream's.
	NATSReplicas int
	Logger       *slog.Logger // provider's own log; default discards
	// Env is passed to every replica and overrides the deployment's
	// variables of the same name (NATS_URL, S3_ENDPOINT, ...).
	Env []string
	// LogDir, when set, also appends each function's output to
	// LogDir/NAME.log.
	LogDir string

	Version string // release shown by /system/info; default "dev"
	SHA     string // commit shown by /system/info

	LogLines          int           // lines of output kept per function; default 2000
	Grace             time.Duration // SIGTERM→SIGKILL when stopping a replica; default its drain (write_timeout) + 5s, at least 10s
	ReadyTimeout      time.Duration // how long a replica may take to answer /_/health; default 10s
	InvokeTimeout     time.Duration // one invocation through the gateway, response included; default 30m
	LogsTimeout       time.Duration // how long /system/logs follows a function; default 30s (faas-cli's "up to 30s")
	RestartBackoff    time.Duration // first restart delay of a crashed replica; default 100ms
	MaxRestartBackoff time.Duration // default 10s
	MaxReplicas       int           // per function; default 20
	AsyncConcurrency  int           // async invocations run at once; default 8
}

func (o *Options) setDefaults() error {
	if o.DataDir == "" {
		return errors.New("provider: Options.DataDir is required")
	}
	if len(o.Functions) == 0 {
		return errors.New("provider: Options.Functions is required (the functions the binary can run)")
	}
	abs, err := filepath.Abs(o.DataDir)
	if err != nil {
		return fmt.Errorf("provider: data dir: %w", err)
	}
	o.DataDir = abs
	if o.BinPath == "" {
		if o.BinPath, err = os.Executable(); err != nil {
			return fmt.Errorf("provider: cannot find the running executable: %w", err)
		}
	}
	if o.SecretsDir == "" {
		o.SecretsDir = filepath.Join(o.DataDir, "secrets")
	}
	if o.AuthDir == "" {
		o.AuthDir = filepath.Join(o.DataDir, "gateway")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Version == "" {
		o.Version = "dev"
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.ReadyTimeout, 10*time.Second)
	def(&o.InvokeTimeout, 30*time.Minute)
	def(&o.LogsTimeout, 30*time.Second)
	def(&o.RestartBackoff, 100*time.Millisecond)
	def(&o.MaxRestartBackoff, 10*time.Second)
	if o.LogLines <= 0 {
		o.LogLines = 2000
	}
	if o.MaxReplicas <= 0 {
		o.MaxReplicas = 20
	}
	if o.AsyncConcurrency <= 0 {
		o.AsyncConcurrency = 8
	}
	return nil
}

// Provider runs functions as child processes and serves the gateway API.
type Provider struct {
	opts    Options
	log     *slog.Logger
	secrets *secretStore
	metrics *metrics
	creds   *auth.BasicAuthCredentials
	pwFile  string
	runRoot string // per-deployment secret copies, removed on Close

	health    *http.Client
	invoker   *http.Client
	proxy     http.HandlerFunc
	logsQuery http.HandlerFunc
	handler   http.Handler

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	async  *bus.Consumer

	mu     sync.Mutex
	fns    map[string]*function
	closed bool
	live   map[*replica]struct{} // every supervised replica, for Close
}

// New prepares the provider: loads (or creates) the gateway credentials,
// the secret store, and, with a Bus, the PULSE_ASYNC stream and its worker.
// No function runs until one is deployed. Call Close to stop everything.
func New(o Options) (*Provider, error) {
	if err := o.setDefaults(); err != nil {
		return nil, err
	}
	captureStdLog()
	p := &Provider{
		opts:    o,
		log:     o.Logger,
		metrics: newMetrics(),
		fns:     map[string]*function{},
		live:    map[*replica]struct{}{},
		health:  &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}},
		invoker: proxy.NewProxyClient(o.InvokeTimeout, 1024, 1024),
	}
	var err error
	if p.secrets, err = newSecretStore(o.SecretsDir); err != nil {
		return nil, err
	}
	if err := p.loadAuth(); err != nil {
		return nil, err
	}
	if p.runRoot, err = makeRunRoot(o.DataDir); err != nil {
		return nil, err
	}
	cfg := types.FaaSConfig{ReadTimeout: o.InvokeTimeout, MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024}
	p.proxy = proxy.NewHandlerFunc(cfg, resolver{p}, false)
	p.logsQuery = logs.NewLogHandlerFunc(logRequester{p}, o.LogsTimeout)
	p.handler = p.routes()
	p.ctx, p.cancel = context.WithCancel(context.Background())
	if o.Bus != nil {
		if err := p.startAsync(); err != nil {
			p.cancel()
			os.RemoveAll(p.runRoot)
			return nil, err
		}
	}
	return p, nil
}

// Handler serves the gateway API. Serve it on a loopback address, with
// MaxHeaderBytes.
func (p *Provider) Handler() http.Handler { return p.handler }

// MaxHeaderBytes bounds a request's header at the gateway, as at the public
// origin (origin.MaxHeaderBytes, nginx's 4 × 8k): a function never
// receives more (Go's default, 1 MiB, let a 233 KB Upload-Metadata through).
const MaxHeaderBytes = 32 << 10

// User is the basic-auth user of /system/*.
func (p *Provider) User() string { return p.creds.User }

// PasswordFile is the file holding the basic-auth password, or "" when
// the credentials came from Options.Auth.
func (p *Provider) PasswordFile() string { return p.pwFile }

// Close stops the async worker and every replica (SIGTERM, then SIGKILL
// after the grace period) and waits for them: nothing it started is left
// running. The provider serves 503 afterwards.
func (p *Provider) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	fns := p.fns
	p.fns = map[string]*function{}
	live := make([]*replica, 0, len(p.live))
	for r := range p.live {
		live = append(live, r)
	}
	p.mu.Unlock()

	p.cancel()
	if p.async != nil {
		p.async.Stop()
	}
	for _, f := range fns {
		f.markGone()
	}
	stopAll(live)
	for _, f := range fns {
		f.close()
	}
	os.RemoveAll(p.runRoot)
	p.log.Info("provider stopped")
}

func (p *Provider) lookup(name string) *function {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fns[name]
}

func (p *Provider) known(name string) bool { return slices.Contains(p.opts.Functions, name) }

// loadAuth reads the gateway credentials, creating them if asked to.
func (p *Provider) loadAuth() error {
	if p.opts.Auth != nil {
		p.creds = p.opts.Auth
	} else {
		dir := p.opts.AuthDir
		userFile, pwFile := filepath.Join(dir, "basic-auth-user"), filepath.Join(dir, "basic-auth-password")
		_, uerr := os.Stat(userFile)
		_, perr := os.Stat(pwFile)
		if p.opts.CreateAuth && errors.Is(uerr, fs.ErrNotExist) && errors.Is(perr, fs.ErrNotExist) {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return fmt.Errorf("provider: credentials dir: %w", err)
			}
			pw := make([]byte, 20)
			if _, err := rand.Read(pw); err != nil {
				return err
			}
			if err := writeFileAtomic(userFile, []byte("admin\n")); err != nil {
				return fmt.Errorf("provider: write %s: %w", userFile, err)
			}
			if err := writeFileAtomic(pwFile, []byte(hex.EncodeToString(pw)+"\n")); err != nil {
				return fmt.Errorf("provider: write %s: %w", pwFile, err)
			}
			p.log.Info("created gateway credentials", "user", "admin", "file", pwFile)
		}
		creds, err := (&auth.ReadBasicAuthFromDisk{SecretMountPath: dir}).Read()
		if err != nil {
			return fmt.Errorf("provider: gateway credentials: %v: put the user in %s and the password in %s", err, userFile, pwFile)
		}
		p.creds, p.pwFile = creds, pwFile
	}
	if p.creds.User == "" || len(p.creds.Password) < 8 {
		return errors.New("provider: gateway credentials: the user must not be empty and the password must have at least 8 characters")
	}
	return nil
}

// makeRunRoot makes DataDir/run/PID, after removing the directories of
// providers that are no longer running (a crash leaves its secret copies).
func makeRunRoot(dataDir string) (string, error) {
	base := filepath.Join(dataDir, "run")
	if ents, err := os.ReadDir(base); err == nil {
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == os.Getpid() || syscall.Kill(pid, 0) == syscall.ESRCH {
				os.RemoveAll(filepath.Join(base, e.Name()))
			}
		}
	}
	dir := filepath.Join(base, strconv.Itoa(os.Getpid()))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("provider: run dir: %w", err)
	}
	return dir, nil
}

// resolver gives faas-provider's proxy the address of a ready replica,
// round robin, waiting up to the ready timeout for one (a replica that is
// restarting, or scaling up from zero).
type resolver struct{ p *Provider }

func (r resolver) Resolve(name string) (u url.URL, err error) {
	f := r.p.lookup(name)
	if f == nil {
		return u, fmt.Errorf("%w: function %q", ErrNotFound, name)
	}
	addr, err := f.pick(r.p.ctx, r.p.opts.ReadyTimeout)
	if err != nil {
		return u, err
	}
	u.Scheme, u.Host = "http", addr
	return u, nil
}

// stopAll stops replicas in parallel and waits for all of them.
func stopAll(rs []*replica) {
	var wg sync.WaitGroup
	for _, r := range rs {
		wg.Add(1)
		go func() { defer wg.Done(); r.stop() }()
	}
	wg.Wait()
}

// Standard-library log output of faas-provider (proxy errors, log
// streams) goes through a JSON logger, with URLs cut to scheme://host.
var stdLogOnce sync.Once

func captureStdLog() {
	stdLogOnce.Do(func() {
		l := logging.New(os.Stderr, os.Getenv("LOG_LEVEL"), "faas-provider")
		log.SetFlags(0)
		log.SetOutput(stdLogWriter{l})
	})
}

var urlRE = regexp.MustCompile(`(https?://[^/\s,"']+)[^\s,"']*`)

type stdLogWriter struct{ l *slog.Logger }

func (w stdLogWriter) Write(b []byte) (int, error) {
	msg := urlRE.ReplaceAllString(strings.TrimSpace(string(b)), "$1/…")
	level := slog.LevelWarn
	if strings.HasPrefix(msg, "LogHandler:") {
		level = slog.LevelDebug
	}
	w.l.Log(context.Background(), level, msg)
	return len(b), nil
}
