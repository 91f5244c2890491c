package fnrun

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/mieweb/pulsevault/shared/auth"
	"github.com/mieweb/pulsevault/shared/bus"
	"github.com/mieweb/pulsevault/shared/platform/config"
	"github.com/mieweb/pulsevault/shared/platform/logging"
	"github.com/mieweb/pulsevault/shared/storage"
)

// Func is one declared function: its stack.yml name and how to build its
// handler. Declare it with Function and run it with Run.
type Func struct {
	name  string
	build func(*Deps) (http.Handler, error)
	eager bool
}

// FuncOption modifies a Function declaration.
type FuncOption func(*Func)

// Eager builds the function as soon as its process starts instead of on its
// first request, for functions with background work of their own (a
// consumer that pulls from JetStream). A failed build is still retried on
// the next request.
func Eager() FuncOption { return func(f *Func) { f.eager = true } }

// Function declares the function called name. build turns its dependencies
// into its handler; it runs once, on first use (see Eager), and after a
// failure again on a later request (as Lazy does), with a fresh Deps
// whose store and bus connection are kept from the failed attempt.
func Function(name string, build func(*Deps) (http.Handler, error), opts ...FuncOption) *Func {
	f := &Func{name: name, build: build}
	for _, o := range opts {
		o(f)
	}
	return f
}

// Name is the function's name in stack.yml.
func (f *Func) Name() string { return f.name }

// Deps is what a function is built from. Everything it hands out belongs
// to this function alone: its logger is named fn/NAME, its registerer feeds
// only this function's /metrics, and its bus is the one connection of the
// process (bus.ForFunction). The store and the bus are made on first use,
// so a function that needs neither never dials them.
type Deps struct {
	name   string
	ctx    context.Context
	getenv func(string) string
	cfg    config.Config
	log    *slog.Logger
	reg    *prometheus.Registry
	shared *resources
}

// resources outlive a failed build: the retry reuses the connections.
type resources struct {
	mu    sync.Mutex
	store *storage.Store
	bus   *bus.Bus
	ver   *auth.Verifier
	bg    sync.WaitGroup // work started with Deps.Go
	nbg   atomic.Int32
}

// Name is the function's name.
func (d *Deps) Name() string { return d.name }

// Context is the process's context: cancelled on SIGTERM. Long-running work
// the function starts (consumers, followers) must run under it so shutdown
// reaches it; a request's work uses the request's context instead.
func (d *Deps) Context() context.Context { return d.ctx }

// Go runs fn in the background under the process's context (Context):
// a consumer the function pulls from JetStream itself, say. fn must return
// once ctx is done; Run waits for it (within the grace period) before the
// process exits, so SIGTERM ends the work cleanly instead of cutting it.
// Call it last, once the build can no longer fail: work a failed build
// started keeps running beside the retry's.
func (d *Deps) Go(fn func(ctx context.Context)) {
	d.shared.nbg.Add(1)
	d.shared.bg.Go(func() { fn(d.ctx) })
}

// Config is the process's configuration (shared/platform/config), read
// and validated before the build.
func (d *Deps) Config() config.Config { return d.cfg }

// Getenv reads the function's own environment variables (its package's
// settings); tests give a fake environment here.
func (d *Deps) Getenv(key string) string { return d.getenv(key) }

// Logger is the function's logger: redacting JSON, component fn/NAME.
func (d *Deps) Logger() *slog.Logger { return d.log }

// Registerer takes the function's metrics. They are served on this
// function's /metrics beside the runtime's own and the Go and process
// collectors, and nowhere else.
func (d *Deps) Registerer() prometheus.Registerer { return d.reg }

// Register puts collectors on the function's registry (Registerer).
func (d *Deps) Register(cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := d.reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// Store is the object store of the configuration, made on first call.
func (d *Deps) Store() (*storage.Store, error) {
	d.shared.mu.Lock()
	defer d.shared.mu.Unlock()
	if d.shared.store == nil {
		st, err := storage.FromConfig(d.cfg)
		if err != nil {
			return nil, err
		}
		d.shared.store = st
	}
	return d.shared.store, nil
}

// Bus is the function's one NATS connection (bus.ForFunction: named
// pulsevault-fn-NAME), dialled on first call. The function must not close it.
func (d *Deps) Bus() (*bus.Bus, error) {
	d.shared.mu.Lock()
	defer d.shared.mu.Unlock()
	if d.shared.bus == nil {
		b, err := bus.ForFunction(d.cfg.NATSURL, d.name)
		if err != nil {
			return nil, err
		}
		d.shared.bus = b
	}
	return d.shared.bus, nil
}

// Verifier checks the API's bearer tokens: auth.NewVerifier over the
// configuration (OIDC_ISSUER, or AUTH_HS256=on with the pulsevault-jwt-secret
// secret), so every function allows the same AUTH_LEEWAY.
func (d *Deps) Verifier() (*auth.Verifier, error) {
	d.shared.mu.Lock()
	defer d.shared.mu.Unlock()
	if d.shared.ver == nil {
		v, err := auth.NewVerifier(d.cfg)
		if err != nil {
			return nil, fmt.Errorf("%s: API token verifier: %w", d.name, err)
		}
		d.shared.ver = v
	}
	return d.shared.ver, nil
}

// close releases what the builds opened, when the process ends.
func (r *resources) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.bus != nil {
		r.bus.Close()
	}
}

// Instance is a Func made ready to serve: its handler (built on first use)
// and its metrics. Run uses it; tests can serve it in process.
type Instance struct {
	f      *Func
	ctx    context.Context
	getenv func(string) string
	log    *slog.Logger
	shared *resources
	get    func() (*built, error)
	ready  atomic.Pointer[built]
}

type built struct {
	h   http.Handler
	reg *prometheus.Registry
}

// InstanceOptions configures NewInstance; zero values take the process's.
type InstanceOptions struct {
	Getenv func(string) string // default os.Getenv
	Logger *slog.Logger        // default: JSON to stderr at $LOG_LEVEL, component fn/NAME
}

// NewInstance prepares f to serve under ctx (the process's context).
func NewInstance(ctx context.Context, f *Func, o InstanceOptions) *Instance {
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.Logger == nil {
		o.Logger = logging.New(os.Stderr, o.Getenv("LOG_LEVEL"), "fn/"+f.name)
	}
	in := &Instance{f: f, ctx: ctx, getenv: o.Getenv, log: o.Logger, shared: &resources{}}
	in.get = Lazy(in.build)
	return in
}

func (in *Instance) build() (*built, error) {
	if in.ctx.Err() != nil {
		return nil, errors.New(in.f.name + ": stopping")
	}
	cfg, err := config.Load(in.f.name, nil, in.getenv)
	if err != nil {
		return nil, err
	}
	d := &Deps{name: in.f.name, ctx: in.ctx, getenv: in.getenv, cfg: cfg, log: in.log,
		reg: prometheus.NewRegistry(), shared: in.shared}
	h, err := in.f.build(d)
	if err != nil {
		return nil, err
	}
	if h == nil {
		return nil, errors.New(in.f.name + ": build returned no handler")
	}
	b := &built{h: h, reg: d.reg}
	in.ready.Store(b)
	return b, nil
}

// Start builds the function now if it is Eager; a failure is logged and
// retried on a later request.
func (in *Instance) Start() {
	if !in.f.eager {
		return
	}
	if _, err := in.get(); err != nil {
		in.log.Error(in.f.name+": cannot start; will retry", "err", err.Error())
	}
}

// ServeHTTP builds the function on first use and hands it the request;
// while it cannot be built the answer is 503 and the reason goes to the log.
func (in *Instance) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, err := in.get()
	if err != nil {
		in.log.ErrorContext(r.Context(), in.f.name+": not configured", "err", err.Error())
		WriteJSON(w, http.StatusServiceUnavailable, map[string]string{
			"error": in.f.name + " is not configured; see the function log", "function": in.f.name,
		})
		return
	}
	b.h.ServeHTTP(w, r)
}

// Gather collects the function's own metrics: none until it is built (a
// scrape does not build it).
func (in *Instance) Gather() ([]*dto.MetricFamily, error) {
	b := in.ready.Load()
	if b == nil {
		return nil, nil
	}
	return b.reg.Gather()
}

// Wait waits until the work started with Deps.Go has returned (it ends
// with the instance's context), or until timeout; it reports whether it all
// returned.
func (in *Instance) Wait(timeout time.Duration) bool {
	done := make(chan struct{})
	go func() { in.shared.bg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// Close releases the instance's connections.
func (in *Instance) Close() { in.shared.close() }

// Run serves f until ctx is cancelled (SIGTERM): as Serve, with f's handler
// and f's metrics on /metrics. o.Name and o.Handler are set from f.
func Run(ctx context.Context, f *Func, o Options) error {
	in := NewInstance(ctx, f, InstanceOptions{Getenv: o.Getenv, Logger: o.Logger})
	defer in.Close()
	o.Name, o.Handler, o.Gatherer = f.name, in, in
	if o.Logger == nil {
		o.Logger = in.log
	}
	in.Start()
	err := Serve(ctx, o)
	if in.shared.nbg.Load() > 0 {
		if in.Wait(max(o.Grace, DefaultTimeout)) {
			in.log.Info("background work stopped")
		} else {
			in.log.Error("background work did not stop within the grace period")
		}
	}
	return err
}
