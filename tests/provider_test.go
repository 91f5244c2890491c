package tests

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/types"

	"github.com/mieweb/pulsevault/shared/localstack"
	"github.com/mieweb/pulsevault/shared/testutil/testenv"
)

// providerCmd is a running `pulsevault provider`.
type providerCmd struct {
	t       *testing.T
	proc    *testenv.Proc
	cmd     *exec.Cmd
	url     string
	natsURL string
	user    string
	pass    string
	data    string
	stdout  *testenv.Buffer
	stderr  *testenv.Buffer
}

// startProviderCmd runs the real binary's provider against an embedded
// NATS on free ports and waits for its banner.
func startProviderCmd(t *testing.T, bin string) *providerCmd {
	t.Helper()
	ns, err := localstack.StartNATS(localstack.NATSOptions{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	data := t.TempDir()
	cmd := exec.Command(bin, "provider", "--data-dir", data, "--nats-url", ns.URL())
	cmd.Env = append(os.Environ(), "GATEWAY_PORT=0", "LOG_LEVEL=info")
	proc := testenv.StartProc(t, cmd, testenv.ProcOptions{Name: "provider"})
	p := &providerCmd{t: t, proc: proc, cmd: cmd, data: data, natsURL: ns.URL(), stdout: proc.Stdout, stderr: proc.Stderr}
	p.url, p.user, p.pass = proc.Gateway(t)
	return p
}

func (p *providerCmd) do(method, path string, body any, authed bool, hdr ...string) (int, http.Header, string) {
	p.t.Helper()
	var rd io.Reader
	if body != nil {
		j, err := json.Marshal(body)
		if err != nil {
			p.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, p.url+path, rd)
	if err != nil {
		p.t.Fatal(err)
	}
	if authed {
		req.SetBasicAuth(p.user, p.pass)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, string(b)
}

func (p *providerCmd) deployEcho() {
	p.t.Helper()
	dep := types.FunctionDeployment{Service: "echo", Image: "pulsevault-echo:dev",
		EnvVars: map[string]string{"NATS_URL": "nats://nats.openfaas:4222"}}
	if code, _, body := p.do(http.MethodPost, "/system/functions", dep, true); code != http.StatusAccepted {
		p.t.Fatalf("deploy echo: %d %s", code, body)
	}
}

// echoPID invokes echo through the gateway and returns the PID it reports.
func echoPID(t *testing.T, url string) int {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var e struct{ PID int }
	if err := json.NewDecoder(res.Body).Decode(&e); err != nil || res.StatusCode != 200 {
		t.Fatalf("echo: %d %v", res.StatusCode, err)
	}
	return e.PID
}

func TestProviderCommand(t *testing.T) {
	t.Parallel()
	p := startProviderCmd(t, buildPulsevault(t))

	if code, _, _ := p.do(http.MethodGet, "/system/functions", nil, false); code != http.StatusUnauthorized {
		t.Fatalf("no credentials: %d", code)
	}
	if code, _, body := p.do(http.MethodGet, "/system/info", nil, true); code != 200 || !strings.Contains(body, `"orchestration":"pulsevault-process"`) {
		t.Fatalf("info: %d %s", code, body)
	}
	p.deployEcho()
	pid := echoPID(t, p.url+"/function/echo")

	// The child got the provider's NATS_URL, not the deployment's.
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(env, []byte("nats.openfaas")) || !bytes.Contains(env, []byte("NATS_URL=nats://127.0.0.1:")) {
		t.Fatalf("child NATS_URL: %q", env)
	}

	// Async through the real stream, with a callback.
	got := make(chan http.Header, 1)
	cb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got <- r.Header.Clone() }))
	defer cb.Close()
	code, hdr, body := p.do(http.MethodPost, "/async-function/echo", map[string]int{"status": 201}, false, "X-Callback-Url", cb.URL)
	if code != http.StatusAccepted || hdr.Get("X-Call-Id") == "" {
		t.Fatalf("async: %d %v %s", code, hdr, body)
	}
	select {
	case h := <-got:
		if h.Get("X-Call-Id") != hdr.Get("X-Call-Id") || h.Get("X-Function-Status") != "201" {
			t.Fatalf("callback headers: %v", h)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no callback")
	}

	// The function's output is in the log file too.
	if b, err := os.ReadFile(p.data + "/logs/functions/echo.log"); err != nil || !bytes.Contains(b, []byte("function listening")) {
		t.Fatalf("function log file: %v\n%s", err, b)
	}

	// SIGTERM: the provider stops its children and exits 0.
	kids := descendants(p.cmd.Process.Pid)
	if len(kids) == 0 {
		t.Fatal("provider has no child process")
	}
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.proc.Done():
		if err := p.proc.Err(); err != nil {
			t.Fatalf("provider exit: %v; stderr:\n%s", err, p.stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("provider did not exit within 15s of SIGTERM")
	}
	t.Logf("provider stopped in %s", time.Since(start))
	for _, k := range kids {
		if syscall.Kill(k, 0) == nil {
			t.Errorf("child %d survived the provider", k)
		}
	}
	if !strings.Contains(p.stdout.String(), "Stopping...") {
		t.Errorf("stdout: %s", p.stdout.String())
	}
	if strings.Contains(p.stderr.String(), p.pass) {
		t.Error("the gateway password reached the log")
	}
}

func TestProviderCommandBadSettings(t *testing.T) {
	t.Parallel()
	bin := buildPulsevault(t)
	for _, c := range []struct {
		env  []string
		want string
	}{
		{nil, "provider needs NATS_URL"},
		{[]string{"NATS_URL=nats://127.0.0.1:1", "GATEWAY_PORT=http"}, "invalid GATEWAY_PORT"},
	} {
		cmd := exec.Command(bin, "provider", "--data-dir", t.TempDir())
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "NATS_URL=") && !strings.HasPrefix(kv, "GATEWAY_PORT=") {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		cmd.Env = append(cmd.Env, c.env...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), c.want) {
			t.Errorf("%v: %v\n%s", c.env, err, out)
		}
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestFnCommandDrainsOnSIGTERM(t *testing.T) {
	t.Parallel()
	bin := buildPulsevault(t)
	if out, err := exec.Command(bin, "fn", "nope").CombinedOutput(); err == nil ||
		!strings.Contains(string(out), "unknown function \"nope\"") || !strings.Contains(string(out), "echo, events, media") {
		t.Fatalf("unknown function: %v %s", err, out)
	}

	addr := freeAddr(t)
	cmd := exec.Command(bin, "fn", "echo")
	cmd.Env = append(os.Environ(), "port="+addr)
	var stderr testenv.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	url := "http://" + addr
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := http.Get(url + "/_/health")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("fn echo not healthy in 10s: %v\n%s", err, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	res, err := http.Get(url + "/metrics")
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("metrics: %v %v", res, err)
	}
	res.Body.Close()

	type result struct {
		code int
		err  error
		took time.Duration
	}
	got := make(chan result, 1)
	start := time.Now()
	go func() {
		req, _ := http.NewRequest(http.MethodGet, url+"/slow", nil)
		req.Header.Set("X-Echo-Sleep-Ms", "1500")
		res, err := http.DefaultClient.Do(req)
		r := result{err: err}
		if err == nil {
			_, r.err = io.ReadAll(res.Body)
			res.Body.Close()
			r.code = res.StatusCode
		}
		r.took = time.Since(start)
		got <- r
	}()
	time.Sleep(300 * time.Millisecond) // the slow request is in flight
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if r.err != nil || r.code != 200 || r.took < 1500*time.Millisecond {
		t.Fatalf("in-flight request across SIGTERM: %+v\n%s", r, stderr.String())
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("fn exit after drain: %v\n%s", err, stderr.String())
	}
	for _, want := range []string{`"msg":"function stopping: draining in-flight requests"`, `"in_flight":1`, `"msg":"function stopped"`} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("fn log lacks %s:\n%s", want, stderr.String())
		}
	}
}

// TestInvocationOverhead measures (does not assert) requests per second
// through the gateway's /function/echo against the same replica called
// directly, in the same run.
func TestInvocationOverhead(t *testing.T) {
	if os.Getenv("PULSEVAULT_BENCH") == "" {
		t.Skip("a measurement, not a check: run by `make bench` (PULSEVAULT_BENCH=1)")
	}
	t.Parallel()
	p := startProviderCmd(t, buildPulsevault(t))
	p.deployEcho()
	pid := echoPID(t, p.url+"/function/echo")
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatal(err)
	}
	var direct string
	for _, kv := range bytes.Split(env, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("port=")); ok {
			direct = "http://" + string(v)
		}
	}
	if direct == "" {
		t.Fatalf("no port in the child's environment")
	}

	const n = 2000
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	run := func(url string, workers int) float64 {
		var wg sync.WaitGroup
		var mu sync.Mutex
		var failed error
		start := time.Now()
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < n; i += workers {
					res, err := client.Get(url)
					if err == nil {
						_, err = io.Copy(io.Discard, res.Body)
						res.Body.Close()
						if res.StatusCode != 200 {
							err = fmt.Errorf("status %d", res.StatusCode)
						}
					}
					if err != nil {
						mu.Lock()
						failed = err
						mu.Unlock()
						return
					}
				}
			}()
		}
		wg.Wait()
		if failed != nil {
			t.Fatalf("%s: %v", url, failed)
		}
		return n / time.Since(start).Seconds()
	}
	for _, workers := range []int{1, 16} {
		run(direct+"/", workers) // warm up connections
		d := run(direct+"/", workers)
		g := run(p.url+"/function/echo", workers)
		t.Logf("%d GETs, %2d client(s): direct %6.0f req/s, through the gateway %6.0f req/s (%.2fx the direct rate)",
			n, workers, d, g, g/d)
	}
}
