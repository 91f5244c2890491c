package provider

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openfaas/faas-provider/types"
)

// function is one deployment and its replicas.
type function struct {
	p    *Provider
	name string
	logs *logRing
	file *os.File // optional copy of the output

	op sync.Mutex // serializes deploy, update, scale and delete

	mu       sync.Mutex
	dep      types.FunctionDeployment
	created  time.Time
	env      []string // of the current generation
	runDir   string   // of the current generation; holds secrets/
	replicas []*replica
	nextID   int
	wake     chan struct{} // closed and replaced when readiness changes
	gone     bool

	rr          atomic.Uint64
	invocations atomic.Uint64
}

func (p *Provider) newFunction(name string) (*function, error) {
	file, err := openLogFile(p.opts.LogDir, name)
	if err != nil {
		return nil, fmt.Errorf("provider: log file for %s: %w", name, err)
	}
	f := &function{p: p, name: name, file: file, wake: make(chan struct{}), created: time.Now().UTC()}
	f.logs = newLogRing(name, p.opts.LogLines, nil)
	if file != nil { // not a nil *os.File in a non-nil io.Writer
		f.logs.file = file
	}
	return f, nil
}

// changed wakes everyone waiting for a ready replica.
func (f *function) changed() {
	f.mu.Lock()
	close(f.wake)
	f.wake = make(chan struct{})
	f.mu.Unlock()
}

func (f *function) markGone() {
	f.mu.Lock()
	f.gone = true
	f.mu.Unlock()
	f.changed()
}

func (f *function) isGone() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.gone
}

func (f *function) close() {
	if f.file != nil {
		f.file.Close()
	}
}

var errNoReplica = errors.New("no replica became ready")

// pick returns the address of a ready replica, round robin. With none
// ready it waits up to timeout; a function scaled to zero is scaled to one
// first, as the OpenFaaS gateway does.
func (f *function) pick(ctx context.Context, timeout time.Duration) (string, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	fromZero := false
	for {
		f.mu.Lock()
		gone, n, wake := f.gone, len(f.replicas), f.wake
		var ready []string
		for _, r := range f.replicas {
			if a, ok := r.ready(); ok {
				ready = append(ready, a)
			}
		}
		f.mu.Unlock()
		switch {
		case gone:
			return "", fmt.Errorf("%w: function %q", ErrNotFound, f.name)
		case len(ready) > 0:
			return ready[(f.rr.Add(1)-1)%uint64(len(ready))], nil
		case n == 0 && !fromZero:
			fromZero = true
			go func() {
				if err := f.p.scale(context.WithoutCancel(ctx), f.name, 1, true); err != nil {
					f.p.log.Warn("scale from zero failed", "function_name", f.name, "err", err)
				}
			}()
		}
		select {
		case <-wake:
		case <-deadline.C:
			return "", fmt.Errorf("%w: function %q has no ready replica after %s", errNoReplica, f.name, timeout)
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}

// startReplica creates and supervises a new replica with env.
func (p *Provider) startReplica(f *function, env []string) (*replica, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errors.New("provider: closed")
	}
	f.mu.Lock()
	f.nextID++
	id := f.nextID
	f.mu.Unlock()
	r := &replica{
		p: p, f: f, env: env,
		instance: f.name + "-" + strconv.Itoa(id),
		stopCh:   make(chan struct{}),
		done:     make(chan struct{}),
	}
	p.live[r] = struct{}{}
	go func() {
		r.supervise()
		p.mu.Lock()
		delete(p.live, r)
		p.mu.Unlock()
	}()
	return r, nil
}

// waitReady waits until every replica in rs is ready, up to the ready
// timeout; it reports whether they all were.
func (f *function) waitReady(ctx context.Context, rs []*replica) bool {
	deadline := time.NewTimer(f.p.opts.ReadyTimeout)
	defer deadline.Stop()
	for {
		f.mu.Lock()
		wake := f.wake
		f.mu.Unlock()
		all := true
		for _, r := range rs {
			if _, ok := r.ready(); !ok {
				all = false
			}
		}
		if all {
			return true
		}
		select {
		case <-wake:
		case <-deadline.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

const (
	modeCreate = iota
	modeUpdate
	modeUpsert
)

// Deploy creates the function or, if it exists, replaces its replicas with
// ones running dep (a rolling update: the new replicas start, then the old
// ones stop). It returns once the new replicas are ready or the ready
// timeout has passed (they keep being restarted in the background).
// Errors wrap ErrInvalid for a deployment that cannot run.
func (p *Provider) Deploy(ctx context.Context, dep types.FunctionDeployment) error {
	_, err := p.deploy(ctx, dep, modeUpsert)
	return err
}

func (p *Provider) validate(dep *types.FunctionDeployment) error {
	if err := checkFunctionName(dep.Service); err != nil {
		return err
	}
	if err := checkNamespace(dep.Namespace); err != nil {
		return err
	}
	if !p.known(dep.Service) {
		known := append([]string(nil), p.opts.Functions...)
		sort.Strings(known)
		return fmt.Errorf("%w: no function named %q in %s (the service name picks the function; the image is not pulled): known functions are %s",
			ErrInvalid, dep.Service, filepath.Base(p.opts.BinPath), strings.Join(known, ", "))
	}
	for k := range dep.EnvVars {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return fmt.Errorf("%w: invalid environment variable name %q", ErrInvalid, k)
		}
	}
	for _, s := range dep.Secrets {
		if err := checkSecretName(s); err != nil {
			return err
		}
	}
	if missing := p.secrets.missing(dep.Secrets); len(missing) > 0 {
		return fmt.Errorf("%w: function %q lists secret(s) that do not exist: %s; create them first (faas-cli secret create NAME)",
			ErrInvalid, dep.Service, strings.Join(missing, ", "))
	}
	if n, err := scaleMin(dep); err != nil {
		return err
	} else if n > p.opts.MaxReplicas {
		return fmt.Errorf("%w: com.openfaas.scale.min %d is above this provider's limit of %d replicas", ErrInvalid, n, p.opts.MaxReplicas)
	}
	return nil
}

// scaleMin reads the com.openfaas.scale.min label (default 1).
func scaleMin(dep *types.FunctionDeployment) (int, error) {
	if dep.Labels == nil {
		return 1, nil
	}
	v, ok := (*dep.Labels)["com.openfaas.scale.min"]
	if !ok {
		return 1, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%w: label com.openfaas.scale.min %q is not a whole number", ErrInvalid, v)
	}
	return max(n, 1), nil
}

func (p *Provider) deploy(ctx context.Context, dep types.FunctionDeployment, mode int) (created bool, err error) {
	if err := p.validate(&dep); err != nil {
		return false, err
	}
	dep = cloneDeployment(dep)
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return false, errors.New("provider: closed")
		}
		f := p.fns[dep.Service]
		fresh := f == nil
		switch {
		case fresh && mode == modeUpdate:
			p.mu.Unlock()
			return false, fmt.Errorf("%w: function %q is not deployed (create it with POST)", ErrNotFound, dep.Service)
		case !fresh && mode == modeCreate:
			p.mu.Unlock()
			return false, fmt.Errorf("%w: function %q is already deployed (update it with PUT)", ErrExists, dep.Service)
		case fresh:
			if f, err = p.newFunction(dep.Service); err != nil {
				p.mu.Unlock()
				return false, err
			}
			p.fns[dep.Service] = f
		}
		p.mu.Unlock()

		f.op.Lock()
		if f.isGone() {
			// Deleted while we waited; an upsert starts over.
			f.op.Unlock()
			if mode == modeUpsert {
				continue
			}
			return false, fmt.Errorf("%w: function %q was deleted", ErrNotFound, dep.Service)
		}
		n, _ := scaleMin(&dep)
		if !fresh {
			f.mu.Lock()
			n = max(n, len(f.replicas))
			f.mu.Unlock()
		}
		err := f.rollout(ctx, dep, n)
		f.op.Unlock()
		if err != nil && fresh {
			p.remove(f)
		}
		return fresh, err
	}
}

// rollout starts n replicas running dep, waits for them, swaps them in and
// stops the previous ones.
func (f *function) rollout(ctx context.Context, dep types.FunctionDeployment, n int) error {
	p := f.p
	runDir, err := os.MkdirTemp(p.runRoot, f.name+"-")
	if err != nil {
		return fmt.Errorf("provider: run dir: %w", err)
	}
	secretsDir := filepath.Join(runDir, "secrets")
	if err := p.secrets.copyTo(secretsDir, dep.Secrets); err != nil {
		os.RemoveAll(runDir)
		return err
	}
	env := p.childEnv(dep, secretsDir)
	var fresh []*replica
	for range n {
		r, err := p.startReplica(f, env)
		if err != nil {
			stopAll(fresh)
			os.RemoveAll(runDir)
			return err
		}
		fresh = append(fresh, r)
	}
	if !f.waitReady(ctx, fresh) {
		p.log.Warn("function deployed but not ready yet; its replicas keep restarting (see faas-cli logs)",
			"function_name", f.name, "ready_timeout", p.opts.ReadyTimeout.String())
	}
	f.mu.Lock()
	old, oldDir := f.replicas, f.runDir
	f.replicas, f.runDir, f.env, f.dep = fresh, runDir, env, dep
	f.mu.Unlock()
	f.changed()
	p.metrics.setReplicas(f.name, n)
	stopAll(old)
	if oldDir != "" {
		os.RemoveAll(oldDir)
	}
	p.log.Info("function deployed", "function_name", f.name, "replicas", n, "image", dep.Image)
	return nil
}

// childEnv is a replica's environment but port: a few basics of the
// provider's own and its OTEL_* variables, the deployment's variables, Options.Env over them, then
// SECRETS_DIR.
func (p *Provider) childEnv(dep types.FunctionDeployment, secretsDir string) []string {
	vars := map[string]string{}
	for _, k := range []string{"PATH", "HOME", "USER", "TMPDIR", "TZ", "LANG", "LC_ALL"} {
		if v, ok := os.LookupEnv(k); ok {
			vars[k] = v
		}
	}
	// OpenTelemetry settings (OTEL_EXPORTER_OTLP_ENDPOINT, ...): a traced
	// provider traces its functions too, unless a deployment says otherwise.
	for _, kv := range os.Environ() {
		if k, v, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "OTEL_") {
			vars[k] = v
		}
	}
	for k, v := range dep.EnvVars {
		vars[k] = v
	}
	var overridden []string
	for _, kv := range p.opts.Env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			continue
		}
		if old, set := dep.EnvVars[k]; set && old != v {
			overridden = append(overridden, k)
		}
		vars[k] = v
	}
	if len(overridden) > 0 {
		sort.Strings(overridden)
		p.log.Info("deployment environment overridden by the provider's", "function_name", dep.Service, "keys", overridden)
	}
	vars["SECRETS_DIR"] = secretsDir
	delete(vars, "port")
	env := make([]string, 0, len(vars))
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	return env
}

// scale sets the number of replicas. fromZero only scales a function that
// has none.
func (p *Provider) scale(ctx context.Context, name string, n int, fromZero bool) error {
	if n < 0 || n > p.opts.MaxReplicas {
		return fmt.Errorf("%w: replicas must be 0–%d, got %d", ErrInvalid, p.opts.MaxReplicas, n)
	}
	f := p.lookup(name)
	if f == nil {
		return fmt.Errorf("%w: function %q is not deployed", ErrNotFound, name)
	}
	f.op.Lock()
	defer f.op.Unlock()
	f.mu.Lock()
	if f.gone {
		f.mu.Unlock()
		return fmt.Errorf("%w: function %q is not deployed", ErrNotFound, name)
	}
	cur, env := len(f.replicas), f.env
	if fromZero && cur > 0 {
		f.mu.Unlock()
		return nil
	}
	var drop []*replica
	if n < cur {
		drop = f.replicas[n:]
		f.replicas = append([]*replica(nil), f.replicas[:n]...)
	}
	f.mu.Unlock()
	var added []*replica
	for i := cur; i < n; i++ {
		r, err := p.startReplica(f, env)
		if err != nil {
			return err
		}
		added = append(added, r)
		f.mu.Lock()
		f.replicas = append(f.replicas, r)
		f.mu.Unlock()
	}
	p.metrics.setReplicas(name, n)
	if len(drop) > 0 {
		f.changed()
		stopAll(drop)
	}
	if len(added) > 0 {
		f.waitReady(ctx, added)
	}
	p.log.Info("function scaled", "function_name", name, "from", cur, "to", n)
	return nil
}

// remove deletes a function: its replicas are stopped before it returns.
func (p *Provider) remove(f *function) {
	p.mu.Lock()
	if p.fns[f.name] == f {
		delete(p.fns, f.name)
	}
	p.mu.Unlock()
	f.markGone()
	f.mu.Lock()
	rs, dir := f.replicas, f.runDir
	f.replicas = nil
	f.mu.Unlock()
	stopAll(rs)
	if dir != "" {
		os.RemoveAll(dir)
	}
	f.close()
	p.metrics.forget(f.name)
}

func (p *Provider) delete(name string) error {
	f := p.lookup(name)
	if f == nil {
		return fmt.Errorf("%w: function %q is not deployed", ErrNotFound, name)
	}
	f.op.Lock()
	defer f.op.Unlock()
	if f.isGone() {
		return fmt.Errorf("%w: function %q is not deployed", ErrNotFound, name)
	}
	p.remove(f)
	p.log.Info("function removed", "function_name", name)
	return nil
}

// status describes a function as OpenFaaS does.
func (f *function) status() types.FunctionStatus {
	f.mu.Lock()
	dep, created := f.dep, f.created
	rs := append([]*replica(nil), f.replicas...)
	f.mu.Unlock()
	var avail uint64
	var mem float64
	for _, r := range rs {
		if _, ok := r.ready(); ok {
			avail++
			mem += rssBytes(r.pidNow())
		}
	}
	d := cloneDeployment(dep)
	st := types.FunctionStatus{
		Name: f.name, Image: d.Image, Namespace: Namespace, EnvProcess: d.EnvProcess, EnvVars: d.EnvVars,
		Constraints: d.Constraints, Secrets: d.Secrets, Labels: d.Labels, Annotations: d.Annotations,
		Limits: d.Limits, Requests: d.Requests, ReadOnlyRootFilesystem: d.ReadOnlyRootFilesystem,
		InvocationCount:   float64(f.invocations.Load()),
		Replicas:          uint64(len(rs)),
		AvailableReplicas: avail,
		CreatedAt:         created,
	}
	if mem > 0 {
		st.Usage = &types.FunctionUsage{TotalMemoryBytes: mem}
	}
	return st
}

func (p *Provider) list() []types.FunctionStatus {
	p.mu.Lock()
	fns := make([]*function, 0, len(p.fns))
	for _, f := range p.fns {
		fns = append(fns, f)
	}
	p.mu.Unlock()
	sort.Slice(fns, func(i, j int) bool { return fns[i].name < fns[j].name })
	out := make([]types.FunctionStatus, 0, len(fns))
	for _, f := range fns {
		out = append(out, f.status())
	}
	return out
}

// refreshSecret rewrites the copies of a changed secret in the deployments
// that list it, so they see the new value as Kubernetes' mounts eventually do.
func (p *Provider) refreshSecret(name string) {
	p.mu.Lock()
	fns := make([]*function, 0, len(p.fns))
	for _, f := range p.fns {
		fns = append(fns, f)
	}
	p.mu.Unlock()
	for _, f := range fns {
		f.mu.Lock()
		uses, dir := slices.Contains(f.dep.Secrets, name), f.runDir
		f.mu.Unlock()
		if uses && dir != "" {
			if err := p.secrets.copyTo(filepath.Join(dir, "secrets"), []string{name}); err != nil {
				p.log.Warn("could not refresh a secret's copy", "function_name", f.name, "ref", name, "err", err)
			}
		}
	}
}

// rssBytes is a process's resident memory, from /proc (0 if unknown).
func rssBytes(pid int) float64 {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseFloat(f[1], 64)
	return pages * float64(os.Getpagesize())
}

func cloneDeployment(d types.FunctionDeployment) types.FunctionDeployment {
	d.Namespace = Namespace
	if d.EnvVars != nil {
		m := make(map[string]string, len(d.EnvVars))
		for k, v := range d.EnvVars {
			m[k] = v
		}
		d.EnvVars = m
	}
	d.Constraints = append([]string(nil), d.Constraints...)
	d.Secrets = append([]string(nil), d.Secrets...)
	cloneMap := func(p *map[string]string) *map[string]string {
		if p == nil {
			return nil
		}
		m := make(map[string]string, len(*p))
		for k, v := range *p {
			m[k] = v
		}
		return &m
	}
	d.Labels, d.Annotations = cloneMap(d.Labels), cloneMap(d.Annotations)
	if d.Limits != nil {
		l := *d.Limits
		d.Limits = &l
	}
	if d.Requests != nil {
		r := *d.Requests
		d.Requests = &r
	}
	return d
}
