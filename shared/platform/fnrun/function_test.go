package fnrun_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mieweb/pulsevault/shared/auth"
	"github.com/mieweb/pulsevault/shared/platform/fnrun"
)

func noEnv(k string) string { return testEnv[k] }

// testEnv is what noEnv answers: nothing, unless a test sets it.
var testEnv map[string]string

// serveFunc runs f as `pulsevault fn` would (fnrun.Run) on a free port and
// returns its base URL; the function stops when the test ends or stop is
// called, and done yields Run's result.
func serveFunc(t *testing.T, f *fnrun.Func) (url string, stop context.CancelFunc, done chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done = make(chan error, 1)
	go func() {
		done <- fnrun.Run(ctx, f, fnrun.Options{Listener: ln, Getenv: noEnv, Logger: slog.New(slog.DiscardHandler)})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Error("Run did not return")
		}
	})
	return "http://" + ln.Addr().String(), cancel, done
}

func counterFunc(name, metric string, fail *atomic.Int32) *fnrun.Func {
	return fnrun.Function(name, func(d *fnrun.Deps) (http.Handler, error) {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: metric, Help: "test"})
		if err := d.Registerer().Register(c); err != nil {
			return nil, err // a retry that reused the registry would fail here
		}
		if fail != nil && fail.Add(-1) >= 0 {
			return nil, errors.New("nats down")
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { c.Inc() }), nil
	})
}

// A failed build answers 503 and is tried again after the pause, with a
// fresh registry: what the failed attempt registered is gone.
func TestFunctionRetriesFailedBuild(t *testing.T) {
	var fail atomic.Int32
	fail.Store(1)
	url, _, _ := serveFunc(t, counterFunc("flaky", "flaky_calls_total", &fail))
	if code, body := get(t, url+"/"); code != http.StatusServiceUnavailable || !strings.Contains(body, "flaky is not configured") || strings.Contains(body, "nats down") {
		t.Fatalf("failed build: %d %q", code, body)
	}
	if _, m := get(t, url+"/metrics"); strings.Contains(m, "flaky_calls_total") {
		t.Fatal("a failed build's metrics are exported")
	}
	time.Sleep(1100 * time.Millisecond)
	if code, body := get(t, url+"/"); code != http.StatusOK {
		t.Fatalf("retried build: %d %q", code, body)
	}
	if _, m := get(t, url+"/metrics"); !strings.Contains(m, "flaky_calls_total 1") {
		t.Fatalf("the built function's metric is missing:\n%s", m)
	}
}

// Two functions in one process: each /metrics has its own families, the
// runtime's, and the Go and process collectors; nothing of the other's and
// nothing registered on the default registry.
func TestFunctionMetricsAreItsOwn(t *testing.T) {
	stray := prometheus.NewCounter(prometheus.CounterOpts{Name: "stray_package_level_total", Help: "test"})
	prometheus.MustRegister(stray)
	defer prometheus.Unregister(stray)
	a, _, _ := serveFunc(t, counterFunc("a", "a_calls_total", nil))
	b, _, _ := serveFunc(t, counterFunc("b", "b_calls_total", nil))
	get(t, a+"/")
	get(t, b+"/")
	_, m := get(t, a+"/metrics")
	for _, want := range []string{"a_calls_total 1", `function_requests_total{code="200",function_name="a"} 1`, "go_goroutines", "process_cpu_seconds_total"} {
		if !strings.Contains(m, want) {
			t.Errorf("a's metrics lack %s", want)
		}
	}
	for _, bad := range []string{"b_calls_total", "stray_package_level_total", `function_name="b"`} {
		if strings.Contains(m, bad) {
			t.Errorf("a's metrics have %s", bad)
		}
	}
}

// Work started with Deps.Go runs under the process context: cancelling it
// (SIGTERM) ends the work, and Run returns only after it has.
func TestDepsGoEndsWithTheProcessContext(t *testing.T) {
	var stopped atomic.Bool
	started := make(chan struct{})
	f := fnrun.Function("consumer", func(d *fnrun.Deps) (http.Handler, error) {
		d.Go(func(ctx context.Context) {
			close(started)
			<-ctx.Done()
			time.Sleep(200 * time.Millisecond) // finishing the batch in hand
			stopped.Store(true)
		})
		return http.NotFoundHandler(), nil
	}, fnrun.Eager())
	_, stop, done := serveFunc(t, f)
	select {
	case <-started: // Eager: no request needed
	case <-time.After(5 * time.Second):
		t.Fatal("an Eager function was not built at start")
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	done <- nil
	if !stopped.Load() {
		t.Fatal("Run returned before the background work ended")
	}
}

// Deps.Verifier is auth.NewVerifier: with AUTH_HS256=on the jwt secret, and auth.Leeway.
func TestDepsVerifierLeeway(t *testing.T) {
	dir := t.TempDir()
	secret := "0123456789abcdef0123456789abcdef-test"
	if err := os.WriteFile(filepath.Join(dir, auth.SecretName), []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SECRETS_DIR", dir)
	testEnv = map[string]string{"AUTH_HS256": "on"} // the scripts' mode: HS256 tokens with the secret
	t.Cleanup(func() { testEnv = nil })
	var iss, aud string
	f := fnrun.Function("api", func(d *fnrun.Deps) (http.Handler, error) {
		iss, aud = d.Config().JWTIssuer, d.Config().JWTAudience
		v, err := d.Verifier()
		if err != nil {
			return nil, err
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if _, err := v.FromRequest(r); err != nil {
				w.WriteHeader(http.StatusUnauthorized)
			}
		}), nil
	})
	url, _, _ := serveFunc(t, f)
	get(t, url+"/") // builds it
	for _, tc := range []struct {
		ttl  time.Duration
		want int
	}{{time.Minute, 200}, {-10 * time.Second, 200}, {-auth.Leeway - 5*time.Second, 401}} {
		tok, err := auth.SignHS256([]byte(secret), iss, aud, "u1", nil, tc.ttl)
		if err != nil {
			t.Fatal(err)
		}
		if code, _ := get(t, url+"/", "Authorization", "Bearer "+tok); code != tc.want {
			t.Errorf("token with ttl %s: %d, want %d", tc.ttl, code, tc.want)
		}
	}
}
