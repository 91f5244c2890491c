package connector

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/openfaas/faas-provider/types"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mieweb/pulsevault/shared/bus"
	"github.com/mieweb/pulsevault/shared/faas/bootstrap"
	"github.com/mieweb/pulsevault/shared/localstack"
	"github.com/mieweb/pulsevault/shared/platform/config"
	"github.com/mieweb/pulsevault/shared/platform/logging"
	"github.com/mieweb/pulsevault/shared/testutil/testenv"
)

const (
	testUser     = "admin"
	testPassword = "gateway-test-password"
)

// startNATS starts a real embedded NATS server with PulseVault's streams, as
// bootstrap creates them, and returns its URL and a connected Bus.
func startNATS(t *testing.T) (string, *bus.Bus) {
	t.Helper()
	s, err := localstack.StartNATS(localstack.NATSOptions{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	b := connectBus(t, s.URL())
	cfg, err := config.Load("test", nil, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	for _, sc := range bootstrap.Streams(cfg) {
		if _, err := b.EnsureStream(t.Context(), sc); err != nil {
			t.Fatal(err)
		}
	}
	return s.URL(), b
}

func connectBus(t *testing.T, url string) *bus.Bus {
	t.Helper()
	b, err := bus.Connect(url, t.Name())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// call is one invocation the fake gateway received.
type call struct {
	at     time.Time
	header http.Header
	body   []byte
}

// gateway stands in for the OpenFaaS gateway, which is not under test: it
// serves /system/functions from a list the test sets and records every
// /function/<name> call, answering with the function's behaviour (200 by
// default).
type gateway struct {
	t   *testing.T
	srv *httptest.Server

	mu       sync.Mutex
	fns      []types.FunctionStatus
	behave   map[string]http.HandlerFunc
	calls    map[string][]call
	listCode int // non-zero: /system/functions answers this
	more     chan struct{}
}

func newGateway(t *testing.T) *gateway {
	g := &gateway{t: t, behave: map[string]http.HandlerFunc{}, calls: map[string][]call{}, more: make(chan struct{}, 1)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /system/functions", func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		g.mu.Lock()
		code, fns := g.listCode, append([]types.FunctionStatus(nil), g.fns...)
		g.mu.Unlock()
		switch {
		case !ok || u != testUser || p != testPassword:
			http.Error(w, "unauthorized", http.StatusUnauthorized)
		case code != 0:
			http.Error(w, "failing on purpose", code)
		default:
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(fns)
		}
	})
	// Scheduled calls to /function/<name>/<path> are recorded as "<name>/<path>".
	mux.HandleFunc("POST /function/{name}/{path...}", func(w http.ResponseWriter, r *http.Request) {
		g.record(r.PathValue("name")+"/"+r.PathValue("path"), w, r)
	})
	mux.HandleFunc("POST /function/{name}", func(w http.ResponseWriter, r *http.Request) {
		g.record(r.PathValue("name"), w, r)
	})
	g.srv = httptest.NewServer(mux)
	t.Cleanup(g.srv.Close)
	return g
}

// record keeps the call and answers it with name's behaviour.
func (g *gateway) record(name string, w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	g.mu.Lock()
	g.calls[name] = append(g.calls[name], call{at: time.Now(), header: r.Header.Clone(), body: body})
	h := g.behave[name]
	g.mu.Unlock()
	select {
	case g.more <- struct{}{}:
	default:
	}
	if h != nil {
		h(w, r)
	}
}

// annotate adds (or, with "", clears) annotations of the deployed function fn.
func (g *gateway) annotate(fn string, ann map[string]string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i := range g.fns {
		if g.fns[i].Name == fn {
			// A new map: /system/functions may be encoding the old one.
			m := maps.Clone(*g.fns[i].Annotations)
			maps.Copy(m, ann)
			g.fns[i].Annotations = &m
			return
		}
	}
	g.t.Fatalf("no function %s", fn)
}

// setFunctions replaces the deployed functions: name → topic annotation;
// "-" deploys the function without a topic annotation.
func (g *gateway) setFunctions(fns map[string]string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.fns = nil
	for name, topic := range fns {
		ann := map[string]string{"com.openfaas.scale.min": "1"}
		if topic != "-" {
			ann[TopicAnnotation] = topic
		}
		g.fns = append(g.fns, types.FunctionStatus{Name: name, Image: "pulsevault/" + name + ":dev", Annotations: &ann})
	}
}

func (g *gateway) setBehaviour(fn string, h http.HandlerFunc) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.behave[fn] = h
}

func (g *gateway) setListCode(code int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.listCode = code
}

func (g *gateway) callsOf(fn string) []call {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]call(nil), g.calls[fn]...)
}

// wait blocks until fn received at least n calls.
func (g *gateway) wait(fn string, n int, timeout time.Duration) []call {
	g.t.Helper()
	deadline := time.After(timeout)
	for {
		if c := g.callsOf(fn); len(c) >= n {
			return c
		}
		select {
		case <-g.more:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			g.t.Fatalf("%s got %d calls, want %d", fn, len(g.callsOf(fn)), n)
		}
	}
}

// syncBuffer is a log sink tests can read while the connector writes.
type harness struct {
	g   *gateway
	b   *bus.Bus
	url string
	reg *prometheus.Registry
	log *testenv.Buffer
}

func newHarness(t *testing.T) *harness {
	url, b := startNATS(t)
	return &harness{g: newGateway(t), b: b, url: url, reg: prometheus.NewRegistry(), log: &testenv.Buffer{}}
}

// options are fast test defaults; edit the result before newConnector.
func (h *harness) options() Options {
	return Options{
		Gateway:    h.g.srv.URL,
		User:       testUser,
		Password:   testPassword,
		Bus:        h.b,
		Refresh:    100 * time.Millisecond,
		MaxDeliver: 3,
		Backoff:    []time.Duration{50 * time.Millisecond},
		Timeout:    10 * time.Second,
		Logger:     logging.New(h.log, "debug", "connector"),
		Registerer: h.reg,
	}
}

func newConnector(t *testing.T, o Options) *Connector {
	t.Helper()
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// run runs c until the returned stop is called (or the test ends); stop
// waits for Run to return.
func run(t *testing.T, c *Connector) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("Run did not return within 10s of cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// waitBound waits until the connector has a consumer for every listed
// "function topic" pair.
func waitBound(t *testing.T, c *Connector, pairs ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		bound := map[string]bool{}
		for _, b := range c.Status().Bindings {
			if len(b.Streams) > 0 {
				bound[b.Function+" "+b.Topic] = true
			}
		}
		ok := true
		for _, p := range pairs {
			ok = ok && bound[p]
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("bindings %+v, want %q", c.Status().Bindings, pairs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// publish stores a message through JetStream, with optional headers given
// as key, value pairs.
func publish(t *testing.T, b *bus.Bus, subject, body string, kv ...string) {
	t.Helper()
	m := &nats.Msg{Subject: subject, Data: []byte(body), Header: nats.Header{}}
	for i := 0; i+1 < len(kv); i += 2 {
		m.Header.Add(kv[i], kv[i+1])
	}
	if _, err := b.JetStream().PublishMsg(t.Context(), m); err != nil {
		t.Fatal(err)
	}
}

// quiet asserts fn gets no call for d.
func quiet(t *testing.T, g *gateway, fn string, d time.Duration, before int) {
	t.Helper()
	time.Sleep(d)
	if n := len(g.callsOf(fn)); n != before {
		t.Fatalf("%s got %d calls, want %d", fn, n, before)
	}
}

// settled reports whether the consumer has nothing pending or unacked.
func settled(t *testing.T, b *bus.Bus, stream, durable string) bool {
	t.Helper()
	cons, err := b.JetStream().Consumer(t.Context(), stream, durable)
	if err != nil {
		t.Fatal(err)
	}
	info := cons.CachedInfo()
	return info.NumPending == 0 && info.NumAckPending == 0
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// blockUntilCancelled is a function that hangs until the caller gives up.
func blockUntilCancelled(w http.ResponseWriter, r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-time.After(20 * time.Second):
	}
}

func noLeak(t *testing.T, logs string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("logs contain %q:\n%s", s, logs)
		}
	}
}
