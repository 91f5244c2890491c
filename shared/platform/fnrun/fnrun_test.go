package fnrun_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mieweb/pulsevault/shared/platform/fnrun"
	"github.com/mieweb/pulsevault/shared/platform/logging"
	"github.com/mieweb/pulsevault/shared/platform/tracing"
	"github.com/mieweb/pulsevault/shared/testutil/testenv"
)

type server struct {
	url  string
	logs *testenv.Buffer
	stop context.CancelFunc
	done chan error
}

func serve(t *testing.T, h http.HandlerFunc, mod func(*fnrun.Options)) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs := &testenv.Buffer{}
	o := fnrun.Options{
		Name: "test", Handler: h, Listener: ln,
		Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Getenv: func(string) string { return "" },
	}
	if mod != nil {
		mod(&o)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{url: "http://" + ln.Addr().String(), logs: logs, stop: cancel, done: make(chan error, 1)}
	go func() { s.done <- fnrun.Serve(ctx, o) }()
	t.Cleanup(func() {
		cancel()
		<-s.done
	})
	return s
}

func get(t *testing.T, url string, hdr ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func TestRoutesHealthMetricsAndFunction(t *testing.T) {
	s := serve(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fail" {
			w.WriteHeader(http.StatusTeapot)
		}
		io.WriteString(w, "fn:"+r.URL.Path)
	}, nil)
	if code, body := get(t, s.url+"/_/health"); code != 200 || body != "ok" {
		t.Fatalf("health: %d %q", code, body)
	}
	if code, body := get(t, s.url+"/any/path?id=secret-id"); code != 200 || body != "fn:/any/path" {
		t.Fatalf("function: %d %q", code, body)
	}
	if code, _ := get(t, s.url+"/fail"); code != 418 {
		t.Fatalf("status: %d", code)
	}
	code, m := get(t, s.url+"/metrics")
	if code != 200 {
		t.Fatalf("metrics: %d", code)
	}
	for _, want := range []string{
		`function_requests_total{code="200",function_name="test"} 1`,
		`function_requests_total{code="418",function_name="test"} 1`,
		`function_request_duration_seconds_count{code="200",function_name="test"} 1`,
		`function_requests_in_flight{function_name="test"} 0`,
		`go_goroutines`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(m, "/any/path") || strings.Contains(s.logs.String(), "secret-id") || strings.Contains(s.logs.String(), "/any/path") {
		t.Error("a path or query reached the metrics or the log")
	}
}

func TestPanicBecomes500(t *testing.T) {
	s := serve(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/late" {
			io.WriteString(w, "partial")
			w.(http.Flusher).Flush()
		}
		panic(errors.New("patient Jane Doe broke it"))
	}, nil)
	code, body := get(t, s.url+"/")
	if code != 500 || !strings.Contains(body, `"internal error"`) {
		t.Fatalf("panic: %d %q", code, body)
	}
	// After the status line went out, the connection is cut instead.
	res, err := http.Get(s.url + "/late")
	if err == nil {
		_, err = io.ReadAll(res.Body)
		res.Body.Close()
	}
	if err == nil {
		t.Fatal("a panic after writing gave a clean response")
	}
	logs := s.logs.String()
	if !strings.Contains(logs, "function handler panicked") || !strings.Contains(logs, "*errors.errorString") {
		t.Fatalf("panic not logged: %s", logs)
	}
	if strings.Contains(logs, "Jane") {
		t.Fatal("panic value (may quote input) was logged")
	}
	if _, m := get(t, s.url+"/metrics"); !strings.Contains(m, `function_requests_total{code="500",function_name="test"} 2`) {
		t.Fatalf("panics not counted as 500:\n%s", m)
	}
	if code, _ := get(t, s.url+"/_/health"); code != 200 {
		t.Fatal("server died after a panic")
	}
}

func TestExecTimeoutAndBodyLimit(t *testing.T) {
	s := serve(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			if _, err := io.ReadAll(r.Body); err != nil {
				var tooBig *http.MaxBytesError
				if errors.As(err, &tooBig) {
					w.WriteHeader(http.StatusRequestEntityTooLarge)
					return
				}
			}
			return
		}
		select {
		case <-r.Context().Done():
			w.WriteHeader(http.StatusGatewayTimeout)
		case <-time.After(5 * time.Second):
		}
	}, func(o *fnrun.Options) {
		env := map[string]string{"exec_timeout": "100ms", "max_request_bytes": "10"}
		o.Getenv = func(k string) string { return env[k] }
	})
	start := time.Now()
	if code, _ := get(t, s.url+"/"); code != http.StatusGatewayTimeout || time.Since(start) > 3*time.Second {
		t.Fatalf("exec timeout: %d after %s", code, time.Since(start))
	}
	res, err := http.Post(s.url+"/", "text/plain", strings.NewReader(strings.Repeat("x", 11)))
	if err != nil || res.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversize body: %v %v", res, err)
	}
	res.Body.Close()
	res, err = http.Post(s.url+"/", "text/plain", strings.NewReader(strings.Repeat("x", 10)))
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("body at the limit: %v %v", res, err)
	}
	res.Body.Close()
}

func TestGracefulDrain(t *testing.T) {
	entered := make(chan struct{})
	s := serve(t, func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		time.Sleep(500 * time.Millisecond)
		io.WriteString(w, "done")
	}, nil)
	type result struct {
		code int
		body string
	}
	got := make(chan result, 1)
	go func() {
		code, body := get(t, s.url+"/slow")
		got <- result{code, body}
	}()
	<-entered
	s.stop()
	time.Sleep(50 * time.Millisecond)
	if _, err := http.Get(s.url + "/_/health"); err == nil {
		t.Error("new connections accepted while draining")
	}
	if r := <-got; r.code != 200 || r.body != "done" {
		t.Fatalf("in-flight request: %+v", r)
	}
	if err := <-s.done; err != nil {
		t.Fatalf("Serve after a clean drain: %v", err)
	}
	s.done <- nil // for the cleanup
}

func TestGraceExceeded(t *testing.T) {
	entered := make(chan struct{})
	s := serve(t, func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		time.Sleep(3 * time.Second)
	}, func(o *fnrun.Options) { o.Grace = 200 * time.Millisecond })
	go func() {
		if res, err := http.Get(s.url + "/stuck"); err == nil {
			res.Body.Close()
		}
	}()
	<-entered
	start := time.Now()
	s.stop()
	err := <-s.done
	s.done <- nil
	if err == nil || !strings.Contains(err.Error(), "cut off") || time.Since(start) > 2*time.Second {
		t.Fatalf("Serve past the grace: %v after %s", err, time.Since(start))
	}
}

func TestBadEnvironment(t *testing.T) {
	for env, want := range map[[2]string]string{
		{"write_timeout", "soon"}:    "invalid write_timeout",
		{"read_timeout", "-5s"}:      "invalid read_timeout",
		{"port", "99999"}:            "invalid port",
		{"port", "localhost"}:        "invalid port",
		{"max_request_bytes", "-1"}:  "invalid max_request_bytes",
		{"exec_timeout", "1h-"}:      "invalid exec_timeout",
		{"max_request_bytes", "1kb"}: "invalid max_request_bytes",
	} {
		err := fnrun.Serve(context.Background(), fnrun.Options{
			Name: "t", Handler: http.NotFoundHandler(),
			Getenv: func(k string) string {
				if k == env[0] {
					return env[1]
				}
				return ""
			},
		})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s=%q: %v, want %q", env[0], env[1], err, want)
		}
	}
	if err := fnrun.Serve(context.Background(), fnrun.Options{Name: "t"}); err == nil {
		t.Error("Serve without a handler succeeded")
	}
}

func TestAddrFromPortEnv(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ready := make(chan net.Addr, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- fnrun.Serve(ctx, fnrun.Options{
			Name: "t", Handler: http.NotFoundHandler(), Ready: func(a net.Addr) { ready <- a },
			Logger: slog.New(slog.DiscardHandler),
			Getenv: func(k string) string {
				if k == "port" {
					return addr
				}
				return ""
			},
		})
	}()
	select {
	case a := <-ready:
		if a.String() != addr {
			t.Fatalf("listening on %s, want %s", a, addr)
		}
	case err := <-done:
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// The handler's context carries the request id (assigned when the caller
// sent none or an unsafe one) and the caller's trace, and the runtime's own
// log line of the request carries both.
func TestRequestIDAndTraceInContext(t *testing.T) {
	type seen struct{ rid, trace, hdr string }
	got := make(chan seen, 3)
	logs := &testenv.Buffer{}
	s := serve(t, func(w http.ResponseWriter, r *http.Request) {
		got <- seen{tracing.RequestID(r.Context()), tracing.TraceID(r.Context()), r.Header.Get(tracing.HeaderRequestID)}
	}, func(o *fnrun.Options) {
		o.Logger = logging.New(logs, "debug", "fn/test")
	})
	get(t, s.url+"/", tracing.HeaderRequestID, "req-7",
		"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	if g := <-got; g.rid != "req-7" || g.trace != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Fatalf("handler saw request id %q, trace %q", g.rid, g.trace)
	}
	for _, bad := range []string{"", "jane doe wound.mp4"} {
		get(t, s.url+"/", tracing.HeaderRequestID, bad)
		g := <-got
		if !tracing.ValidRequestID(g.rid) || g.rid != g.hdr || strings.Contains(g.rid, "jane") {
			t.Fatalf("sent %q: handler saw request id %q (header %q)", bad, g.rid, g.hdr)
		}
	}
	// The request's log line is written before the response completes.
	if l := logs.String(); !strings.Contains(l, `"request_id":"req-7"`) || !strings.Contains(l, `"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"`) {
		t.Fatalf("the request's log line lacks its ids:\n%s", l)
	}
}
