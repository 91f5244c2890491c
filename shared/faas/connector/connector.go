// Package connector invokes OpenFaaS functions for NATS JetStream messages,
// like OpenFaaS's connector-sdk: each function's "topic" annotation lists the
// subjects (wildcards allowed) it is invoked for.
//
// The connector polls the gateway's /system/functions, and for every
// (function, topic) pair runs a durable JetStream consumer (shared/bus) on
// every stream that captures the topic. A message is POSTed to
// /function/<name>; a 2xx answer acks it, anything else naks it with backoff,
// and after MaxDeliver failed deliveries it is published on the function's
// dead-letter subject (pulse.dlq.<function>). Durables live on the server,
// so a restarted connector, or another replica, resumes where the last one
// stopped: a message that was being handled when the connector stopped is
// delivered again, and messages published while it was down wait for it.
//
// It also runs timers, which OpenFaaS lacks: a function's
// "com.pulsevault.schedule" annotation ("/reconcile@1m, /dead-letters@1m")
// makes the connector POST to /function/<name>/<path> every interval, the
// first call after a random part of one interval, never two calls of one
// entry at once. A failed call is logged and counted
// (connector_scheduled_failures_total) and the next tick tries again.
// Schedules follow the annotations at every refresh, like topics. Every
// connector replica runs every schedule, so the targets must be idempotent.
package connector

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/openfaas/faas-provider/types"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mieweb/pulsevault/shared/bus"
	"github.com/mieweb/pulsevault/shared/topology"
)

// Defaults of Options.
const (
	DefaultRefresh     = 5 * time.Second
	DefaultMaxDeliver  = 5
	DefaultTimeout     = 10 * time.Minute
	DefaultAckWait     = 60 * time.Second
	DefaultConcurrency = 1
)

// DefaultBackoff is the redelivery delay after the 1st, 2nd, 3rd and later
// failed deliveries.
var DefaultBackoff = []time.Duration{time.Second, 5 * time.Second, 30 * time.Second}

// listTimeout bounds one /system/functions request.
const listTimeout = 30 * time.Second

// maxListBody bounds the function list read from the gateway.
const maxListBody = 16 << 20

// Options configures a Connector. Gateway and Bus are required.
type Options struct {
	// Gateway is the OpenFaaS gateway's base URL, e.g. http://127.0.0.1:8080.
	Gateway string
	// User and Password are the gateway's basic-auth credentials, sent to
	// /system/functions only (never to functions).
	User, Password string
	// Bus is the JetStream connection; the caller closes it after Run returns.
	Bus *bus.Bus
	// Refresh is how often the function list is read again; default 5s.
	Refresh time.Duration
	// MaxDeliver is how many failed deliveries a message gets before it is
	// dead-lettered; default 5.
	MaxDeliver int
	// Backoff is the delay before redelivery after failed delivery n, indexed
	// by n-1, the last entry repeating; default 1s, 5s, 30s.
	Backoff []time.Duration
	// Timeout bounds one invocation; default 10m (transcodes are long).
	Timeout time.Duration
	// AckWait is how long JetStream waits for a verdict before redelivering
	// on its own (a connector that died mid-invocation); default 60s. Long
	// invocations report progress every AckWait/2, so it does not bound them.
	AckWait time.Duration
	// Concurrency is how many messages of one (function, topic) pair are
	// invoked at once; default 1 (in order).
	Concurrency int
	// DeadLetterPrefix: failed messages go to <prefix>.<function>; default
	// pulse.dlq (topology.SubjectDLQ), captured by topology.StreamDLQ.
	DeadLetterPrefix string
	// Logger receives the connector's logs; nil discards them (pass a
	// redacting logger: shared/platform/logging).
	Logger *slog.Logger
	// Registerer receives the metrics; default none (kept unexported): the
	// caller serves its own registry.
	Registerer prometheus.Registerer
	// Client makes the HTTP calls; default a client without an overall
	// timeout (Timeout bounds each invocation).
	Client *http.Client
}

// Connector maps NATS subjects to functions. Create it with New, then Run it.
type Connector struct {
	o       Options
	gateway string // base URL without trailing slash
	log     *slog.Logger
	m       *metrics
	client  *http.Client

	base   context.Context // parent of every consumer; cancelled by Close
	cancel context.CancelFunc

	runMu   sync.Mutex
	running bool

	mu        sync.Mutex // guards everything below; held for a whole Refresh
	closed    bool
	bindings  map[pairKey]*binding
	scheduled map[scheduleKey]func() // running schedule entries → stop (waits for the call in flight)
	reported  map[string]string      // problem key → message, so each is logged once
	gwErr     error                  // last /system/functions error, nil when fine
	gwErrAt   time.Time              // when gwErr was last logged
	lastOK    time.Time              // last successful refresh
	lagSeen   map[string]bool        // functions with a connector_lag_messages series

	statusMu sync.Mutex
	status   Status // snapshot taken at the end of each Refresh
}

// Status is what the connector is doing, for health checks and tests. It
// holds function names and topics only: nothing from any message.
type Status struct {
	// GatewayError is the last error reading the function list; empty
	// when the last refresh read it.
	GatewayError string `json:"gateway_error,omitempty"`
	// LastRefresh is when the function list was last read and applied.
	LastRefresh time.Time `json:"last_refresh"`
	Bindings    []Binding `json:"bindings"`
	// Schedules are the running schedule entries, sorted.
	Schedules []Scheduled `json:"schedules,omitempty"`
}

// Binding is one (function, topic) pair and the streams it consumes from;
// no streams means no stream captures the topic yet.
type Binding struct {
	Function string   `json:"function"`
	Topic    string   `json:"topic"`
	Durable  string   `json:"durable"`
	Streams  []string `json:"streams"`
}

// Status returns the state as of the last Refresh. It does not block on a
// Refresh in progress.
func (c *Connector) Status() Status {
	c.statusMu.Lock()
	defer c.statusMu.Unlock()
	s := c.status
	s.Bindings = slices.Clone(s.Bindings)
	s.Schedules = slices.Clone(s.Schedules)
	return s
}

// snapshot publishes the state for Status; c.mu is held.
func (c *Connector) snapshot() {
	s := Status{LastRefresh: c.lastOK}
	if c.gwErr != nil {
		s.GatewayError = c.gwErr.Error()
	}
	for _, k := range slices.SortedFunc(maps.Keys(c.bindings), comparePairs) {
		b := c.bindings[k]
		s.Bindings = append(s.Bindings, Binding{
			Function: k.function, Topic: k.topic, Durable: b.durable,
			Streams: slices.Sorted(maps.Keys(b.consumers)),
		})
	}
	for k := range c.scheduled {
		s.Schedules = append(s.Schedules, Scheduled{Function: k.function, Path: k.Path, Every: k.Every.String()})
	}
	slices.SortFunc(s.Schedules, func(a, b Scheduled) int {
		return cmp.Or(strings.Compare(a.Function, b.Function), strings.Compare(a.Path, b.Path), strings.Compare(a.Every, b.Every))
	})
	c.statusMu.Lock()
	c.status = s
	c.statusMu.Unlock()
}

type pairKey struct{ function, topic string }

// binding is one (function, topic) pair and its consumers, one per stream
// that captures the topic.
type binding struct {
	pairKey
	durable   string
	consumers map[string]*bus.Consumer // by stream name
}

// New checks o and prepares a connector; nothing runs until Run or Refresh.
func New(o Options) (*Connector, error) {
	if o.Bus == nil {
		return nil, errors.New("connector: Options.Bus is required")
	}
	u, err := url.Parse(strings.TrimSpace(o.Gateway))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("connector: gateway %q must be an http(s)://host:port URL", o.Gateway)
	}
	if u.User != nil {
		return nil, errors.New("connector: put the gateway credentials in User and Password, not in the URL")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("connector: gateway %q must not have a query or fragment", o.Gateway)
	}
	if o.Refresh == 0 {
		o.Refresh = DefaultRefresh
	}
	if o.MaxDeliver == 0 {
		o.MaxDeliver = DefaultMaxDeliver
	}
	if len(o.Backoff) == 0 {
		o.Backoff = DefaultBackoff
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.AckWait == 0 {
		o.AckWait = DefaultAckWait
	}
	if o.Concurrency == 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.DeadLetterPrefix == "" {
		o.DeadLetterPrefix = topology.SubjectDLQ
	}
	switch {
	case o.Refresh < 0, o.Timeout < 0, o.AckWait < 0:
		return nil, errors.New("connector: Refresh, Timeout and AckWait must be positive")
	case o.AckWait < time.Second:
		return nil, errors.New("connector: AckWait must be at least 1s")
	case o.MaxDeliver < 0:
		return nil, errors.New("connector: MaxDeliver must be positive")
	case o.Concurrency < 0:
		return nil, errors.New("connector: Concurrency must be positive")
	case !ValidSubject(o.DeadLetterPrefix) || strings.ContainsAny(o.DeadLetterPrefix, "*>"):
		return nil, fmt.Errorf("connector: dead-letter prefix %q must be a literal NATS subject", o.DeadLetterPrefix)
	}
	for _, d := range o.Backoff {
		if d <= 0 {
			return nil, errors.New("connector: Backoff delays must be positive")
		}
	}
	o.Backoff = slices.Clone(o.Backoff)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	if o.Client == nil {
		o.Client = &http.Client{}
	}
	m, err := newMetrics(o.Registerer)
	if err != nil {
		return nil, fmt.Errorf("connector: metrics: %w", err)
	}
	c := &Connector{
		o:         o,
		gateway:   strings.TrimRight(u.String(), "/"),
		log:       o.Logger,
		m:         m,
		client:    o.Client,
		bindings:  map[pairKey]*binding{},
		scheduled: map[scheduleKey]func(){},
		reported:  map[string]string{},
		lagSeen:   map[string]bool{},
	}
	c.base, c.cancel = context.WithCancel(context.Background())
	return c, nil
}

// Run refreshes the function list now and every Refresh until ctx is done,
// then stops every consumer (in-flight invocations are cancelled and their
// messages handed back for redelivery) and returns nil. A gateway that cannot
// be reached is logged and retried; consumers already running keep running.
// A connector runs once: Run closes it.
func (c *Connector) Run(ctx context.Context) error {
	c.runMu.Lock()
	if c.running {
		c.runMu.Unlock()
		return errors.New("connector: already running")
	}
	c.running = true
	c.runMu.Unlock()
	defer c.Close()

	t := time.NewTicker(c.o.Refresh)
	defer t.Stop()
	for {
		// Refresh logs what went wrong; all there is to do is retry.
		if err := c.Refresh(ctx); errors.Is(err, errClosed) {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

var errClosed = errors.New("connector: closed")

// Close stops every consumer and waits for in-flight invocations, which are
// cancelled; their messages are redelivered to the next connector. The
// durables stay on the server. Close is idempotent.
func (c *Connector) Close() {
	c.cancel()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for k, b := range c.bindings {
		c.stopBinding(b)
		delete(c.bindings, k)
	}
	for k, stop := range c.scheduled {
		stop()
		delete(c.scheduled, k)
	}
	c.snapshot()
}

// Refresh reads the function list once and starts and stops consumers to
// match it. It returns the gateway error, if any (bindings are then left as
// they are), or the consumers that could not be started (they are retried at
// the next refresh). Problems with annotations are logged, not returned.
func (c *Connector) Refresh(ctx context.Context) error {
	fns, err := c.listFunctions(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	defer c.snapshot()
	if c.closed {
		return errClosed
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err() // stopping, not a gateway problem
		}
		c.gatewayFailed(err)
		return err
	}
	if c.gwErr != nil {
		c.log.Info("connector: gateway reachable again", "gateway", c.gateway)
		c.gwErr = nil
	}

	want := c.pairs(fns)
	for k, b := range c.bindings {
		if !want[k] {
			c.stopBinding(b)
			delete(c.bindings, k)
			c.log.Info("connector: topic unbound", "function", k.function, "topic", k.topic)
		}
	}
	var errs []error
	for _, k := range slices.SortedFunc(maps.Keys(want), comparePairs) {
		if err := c.bind(ctx, k); err != nil {
			errs = append(errs, err)
		}
	}
	c.applySchedules(c.schedules(fns))
	c.sampleLag(ctx)
	c.lastOK = time.Now()
	return errors.Join(errs...)
}

func comparePairs(a, b pairKey) int {
	if c := strings.Compare(a.function, b.function); c != 0 {
		return c
	}
	return strings.Compare(a.topic, b.topic)
}

// listFunctions GETs /system/functions with basic auth.
func (c *Connector) listFunctions(ctx context.Context) ([]types.FunctionStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, listTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.gateway+"/system/functions", nil)
	if err != nil {
		return nil, err
	}
	if c.o.User != "" || c.o.Password != "" {
		req.SetBasicAuth(c.o.User, c.o.Password)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("connector: list functions: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		hint := ""
		if resp.StatusCode == http.StatusUnauthorized {
			hint = " (check the gateway user and password)"
		}
		return nil, fmt.Errorf("connector: list functions: gateway answered %s%s", resp.Status, hint)
	}
	var fns []types.FunctionStatus
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxListBody)).Decode(&fns); err != nil {
		return nil, fmt.Errorf("connector: list functions: bad JSON from gateway: %w", err)
	}
	return fns, nil
}

// gatewayFailed logs a gateway error when it changes, and otherwise once a
// minute, so an outage is visible without flooding the log.
func (c *Connector) gatewayFailed(err error) {
	if c.gwErr == nil || c.gwErr.Error() != err.Error() || time.Since(c.gwErrAt) >= time.Minute {
		c.log.Warn("connector: cannot read the function list; keeping current bindings", "gateway", c.gateway, "err", err)
		c.gwErrAt = time.Now()
	}
	c.gwErr = err
}

// pairs turns the function list into the wanted (function, topic) pairs,
// logging (once) what it has to leave out.
func (c *Connector) pairs(fns []types.FunctionStatus) map[pairKey]bool {
	want := map[pairKey]bool{}
	for _, fn := range fns {
		if fn.Annotations == nil {
			continue
		}
		ann, ok := (*fn.Annotations)[TopicAnnotation]
		if !ok {
			continue
		}
		if !validFunctionName(fn.Name) {
			c.reportOnce("name:"+fn.Name, "connector: function name unusable as a subject token; its topics are ignored",
				"function", fn.Name)
			continue
		}
		topics, invalid := ParseTopics(ann)
		for _, t := range invalid {
			c.reportOnce("topic:"+fn.Name+":"+t, "connector: topic annotation entry is not a NATS subject; ignored",
				"function", fn.Name, "topic", t)
		}
		dlq := c.deadLetterSubject(fn.Name)
		for _, t := range topics {
			if subjectMatches(t, dlq) {
				c.reportOnce("loop:"+fn.Name+":"+t, "connector: topic would feed the function its own dead letters; ignored",
					"function", fn.Name, "topic", t, "dead_letter_subject", dlq)
				continue
			}
			want[pairKey{fn.Name, t}] = true
		}
	}
	return want
}

func (c *Connector) deadLetterSubject(function string) string {
	return c.o.DeadLetterPrefix + "." + function
}

// reportOnce logs a configuration problem the first time it is seen.
func (c *Connector) reportOnce(key, msg string, args ...any) {
	if c.reported[key] == msg {
		return
	}
	c.reported[key] = msg
	c.log.Warn(msg, args...)
}

// bind makes the consumers of pair k match the streams that capture its
// topic now: streams can be created (bootstrap) or changed after start.
func (c *Connector) bind(ctx context.Context, k pairKey) error {
	streams, err := c.streamsFor(ctx, k.topic)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.log.Warn("connector: cannot look up streams", "function", k.function, "topic", k.topic, "err", err)
		return err
	}
	b := c.bindings[k]
	if b == nil {
		b = &binding{pairKey: k, durable: DurableName(k.function, k.topic), consumers: map[string]*bus.Consumer{}}
		c.bindings[k] = b
		// Series start at zero, so rate() and alerts see the first event.
		c.m.delivered.WithLabelValues(k.function, k.topic)
		for _, v := range []*prometheus.CounterVec{c.m.failures, c.m.redeliveries, c.m.deadLetters} {
			v.WithLabelValues(k.function)
		}
	}
	if len(streams) == 0 {
		c.reportOnce("nostream:"+k.function+":"+k.topic,
			"connector: no JetStream stream captures this topic; nothing is delivered until one does",
			"function", k.function, "topic", k.topic)
	} else {
		delete(c.reported, "nostream:"+k.function+":"+k.topic)
	}
	for stream, cons := range b.consumers {
		if !slices.Contains(streams, stream) {
			cons.Stop()
			delete(b.consumers, stream)
			c.log.Info("connector: stream no longer captures topic", "function", k.function, "topic", k.topic, "stream", stream)
		}
	}
	var errs []error
	for _, stream := range streams {
		if b.consumers[stream] != nil {
			continue
		}
		cons, err := c.o.Bus.Consume(c.base, bus.ConsumeOptions{
			Stream:         stream,
			Durable:        b.durable,
			FilterSubjects: []string{k.topic},
			MaxDeliver:     c.o.MaxDeliver,
			Backoff:        c.o.Backoff,
			AckWait:        c.o.AckWait,
			DeadLetter:     c.deadLetterSubject(k.function),
			Concurrency:    c.o.Concurrency,
			Logger:         c.log,
		}, c.handler(k))
		if err != nil {
			c.log.Warn("connector: cannot start consumer; will retry", "function", k.function, "topic", k.topic,
				"stream", stream, "durable", b.durable, "err", err)
			errs = append(errs, err)
			continue
		}
		b.consumers[stream] = cons
		c.log.Info("connector: topic bound", "function", k.function, "topic", k.topic, "stream", stream, "durable", b.durable)
	}
	return errors.Join(errs...)
}

// streamsFor lists the streams whose subjects overlap topic.
func (c *Connector) streamsFor(ctx context.Context, topic string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	l := c.o.Bus.JetStream().StreamNames(ctx, jetstream.WithStreamListSubject(topic))
	var names []string
	for n := range l.Name() {
		names = append(names, n)
	}
	if err := l.Err(); err != nil {
		return nil, err
	}
	slices.Sort(names)
	return names, nil
}

func (c *Connector) stopBinding(b *binding) {
	for stream, cons := range b.consumers {
		cons.Stop()
		delete(b.consumers, stream)
	}
}

// sampleLag sets connector_lag_messages from the consumers' NumPending, and
// drops the series of functions that have no binding any more.
func (c *Connector) sampleLag(ctx context.Context) {
	lag := map[string]float64{}
	for _, b := range c.bindings {
		lag[b.function] += 0
		for stream := range b.consumers {
			cons, err := c.o.Bus.JetStream().Consumer(ctx, stream, b.durable)
			if err != nil {
				continue
			}
			lag[b.function] += float64(cons.CachedInfo().NumPending)
		}
	}
	for fn := range c.lagSeen {
		if _, ok := lag[fn]; !ok {
			c.m.lag.DeleteLabelValues(fn)
			delete(c.lagSeen, fn)
		}
	}
	for fn, n := range lag {
		c.m.lag.WithLabelValues(fn).Set(n)
		c.lagSeen[fn] = true
	}
}
