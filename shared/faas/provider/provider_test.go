package provider_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/auth"
	"github.com/openfaas/faas-provider/types"

	"github.com/mieweb/pulsevault/shared/bus"
	"github.com/mieweb/pulsevault/shared/faas/provider"
	"github.com/mieweb/pulsevault/shared/localstack"
)

// binPath is the real pulsevault binary, built once: replicas are its
// `fn NAME` processes.
var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "provider-test-")
	if err != nil {
		panic(err)
	}
	binPath = filepath.Join(dir, "pulsevault")
	out, err := exec.Command("go", "build", "-o", binPath, "github.com/mieweb/pulsevault/cmd/pulsevault").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build pulsevault: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var functions = []string{"echo", "upload", "upload-finalize", "transcode", "sign-url", "media", "audit-append"}

type gw struct {
	t    *testing.T
	p    *provider.Provider
	url  string
	user string
	pass string
	dir  string
}

func start(t *testing.T, mod func(*provider.Options)) *gw {
	t.Helper()
	dir := t.TempDir()
	o := provider.Options{
		BinPath:        binPath,
		Functions:      functions,
		DataDir:        dir,
		CreateAuth:     true,
		Logger:         slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Grace:          3 * time.Second,
		RestartBackoff: 50 * time.Millisecond,
		Env:            []string{"LOG_LEVEL=debug"},
	}
	if mod != nil {
		mod(&o)
	}
	p, err := provider.New(o)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p.Handler())
	g := &gw{t: t, p: p, url: srv.URL, dir: dir, user: p.User()}
	t.Cleanup(func() { srv.Close(); p.Close() })
	if f := p.PasswordFile(); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		g.pass = strings.TrimSpace(string(b))
	} else {
		g.pass = o.Auth.Password
	}
	return g
}

// testWriter sends the provider's log to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Logf("%s", bytes.TrimSpace(b))
	return len(b), nil
}

type resp struct {
	code int
	hdr  http.Header
	body string
}

func (g *gw) do(method, path string, body any, authed bool, hdr ...string) resp {
	g.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			g.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, g.url+path, rd)
	if err != nil {
		g.t.Fatal(err)
	}
	if authed {
		req.SetBasicAuth(g.user, g.pass)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		g.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{res.StatusCode, res.Header, string(b)}
}

func (g *gw) must(want int, r resp, what string) resp {
	g.t.Helper()
	if r.code != want {
		g.t.Fatalf("%s: status %d, want %d; body %q", what, r.code, want, r.body)
	}
	return r
}

func echoDep(env map[string]string, secrets ...string) types.FunctionDeployment {
	labels := map[string]string{"com.openfaas.scale.min": "1"}
	ann := map[string]string{"topic": "pulse.test"}
	return types.FunctionDeployment{Service: "echo", Image: "ghcr.io/mieweb/pulsevault-echo:dev", EnvVars: env,
		Secrets: secrets, Labels: &labels, Annotations: &ann}
}

type echoed struct {
	Method    string            `json:"method"`
	Path      string            `json:"path"`
	Query     string            `json:"query"`
	Headers   map[string]string `json:"headers"`
	BodyBytes int64             `json:"bodyBytes"`
	PID       int               `json:"pid"`
	Env       map[string]string `json:"env"`
	Secrets   struct {
		Dir   string   `json:"dir"`
		Names []string `json:"names"`
	} `json:"secrets"`
}

func (g *gw) echo(path string, hdr ...string) echoed {
	g.t.Helper()
	r := g.must(200, g.do(http.MethodGet, path, nil, false, hdr...), "GET "+path)
	var e echoed
	if err := json.Unmarshal([]byte(r.body), &e); err != nil {
		g.t.Fatalf("echo answer %q: %v", r.body, err)
	}
	return e
}

func (g *gw) status(name string) types.FunctionStatus {
	g.t.Helper()
	r := g.must(200, g.do(http.MethodGet, "/system/function/"+name, nil, true), "status")
	var st types.FunctionStatus
	if err := json.Unmarshal([]byte(r.body), &st); err != nil {
		g.t.Fatal(err)
	}
	return st
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestDeployInvokeUpdateDelete(t *testing.T) {
	t.Parallel()
	g := start(t, nil)
	g.must(202, g.do(http.MethodPost, "/system/functions", echoDep(map[string]string{"ECHO_GREETING": "hi"}), true), "deploy")

	var list []types.FunctionStatus
	r := g.must(200, g.do(http.MethodGet, "/system/functions", nil, true), "list")
	if err := json.Unmarshal([]byte(r.body), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Name != "echo" || list[0].Replicas != 1 || list[0].AvailableReplicas != 1 ||
		list[0].Image != "ghcr.io/mieweb/pulsevault-echo:dev" || list[0].Namespace != "openfaas-fn" ||
		list[0].Annotations == nil || (*list[0].Annotations)["topic"] != "pulse.test" || list[0].EnvVars["ECHO_GREETING"] != "hi" {
		t.Fatalf("list: %s", r.body)
	}

	e := g.echo("/function/echo")
	if e.Path != "/" || e.Env["ECHO_GREETING"] != "hi" || !alive(e.PID) {
		t.Fatalf("echo: %+v", e)
	}
	e2 := g.echo("/function/echo.openfaas-fn/sub/path?q=1&r=a%20b", "X-Topic", "pulse.test", "Authorization", "Bearer x")
	if e2.Path != "/sub/path" || e2.Query != "q=1&r=a%20b" || e2.Headers["X-Topic"] != "pulse.test" || e2.PID != e.PID {
		t.Fatalf("echo with namespace and path: %+v", e2)
	}
	if _, ok := e2.Headers["Authorization"]; ok {
		t.Fatal("echo repeated Authorization")
	}
	// POST body reaches the function; a status the function picks comes back.
	r = g.must(418, g.do(http.MethodPost, "/function/echo", `{"status":418}`, false), "echo 418")
	if !strings.Contains(r.body, `"bodyBytes":14`) {
		t.Fatalf("body size not echoed: %s", r.body)
	}
	if st := g.status("echo"); st.InvocationCount != 3 {
		t.Fatalf("invocationCount %v, want 3", st.InvocationCount)
	}

	// A second POST is a conflict; PUT is the rolling update.
	g.must(409, g.do(http.MethodPost, "/system/functions", echoDep(nil), true), "second create")
	g.must(202, g.do(http.MethodPut, "/system/functions", echoDep(map[string]string{"ECHO_GREETING": "bye"}), true), "update")
	e3 := g.echo("/function/echo")
	if e3.Env["ECHO_GREETING"] != "bye" || e3.PID == e.PID {
		t.Fatalf("after update: %+v (old pid %d)", e3, e.PID)
	}
	eventually(t, 5*time.Second, "old replica gone", func() bool { return !alive(e.PID) })

	g.must(202, g.do(http.MethodDelete, "/system/functions", types.DeleteFunctionRequest{FunctionName: "echo"}, true), "delete")
	if alive(e3.PID) {
		t.Fatal("replica still running after delete returned")
	}
	r = g.must(404, g.do(http.MethodGet, "/function/echo", nil, false), "invoke deleted")
	if !strings.Contains(r.body, `"echo" is not deployed`) {
		t.Fatalf("404 body: %q", r.body)
	}
	r = g.must(200, g.do(http.MethodGet, "/system/functions", nil, true), "list after delete")
	if strings.TrimSpace(r.body) != "[]" {
		t.Fatalf("list after delete: %s", r.body)
	}
	g.must(404, g.do(http.MethodDelete, "/system/functions", types.DeleteFunctionRequest{FunctionName: "echo"}, true), "delete again")
	g.must(404, g.do(http.MethodPut, "/system/functions", echoDep(nil), true), "update missing")
	// faas-cli's deploy: PUT, then POST on 404.
	g.must(202, g.do(http.MethodPost, "/system/functions", echoDep(nil), true), "create after delete")
	g.echo("/function/echo")
}

func TestRestartAfterKillAndScale(t *testing.T) {
	t.Parallel()
	g := start(t, nil)
	g.must(202, g.do(http.MethodPost, "/system/functions", echoDep(nil), true), "deploy")
	pid := g.echo("/function/echo").PID
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "killed replica reaped", func() bool { return !alive(pid) })
	pid2 := g.echo("/function/echo").PID // waits for the restarted replica
	if pid2 == pid {
		t.Fatal("same pid after SIGKILL")
	}
	logs := g.must(200, g.do(http.MethodGet, "/system/logs?name=echo&follow=false", nil, true), "logs").body
	if strings.Count(logs, "function listening") < 2 {
		t.Fatalf("logs do not show both starts:\n%s", logs)
	}

	g.must(202, g.do(http.MethodPost, "/system/scale-function/echo", types.ScaleServiceRequest{ServiceName: "echo", Replicas: 3}, true), "scale")
	if st := g.status("echo"); st.Replicas != 3 || st.AvailableReplicas != 3 {
		t.Fatalf("after scale: replicas %d available %d", st.Replicas, st.AvailableReplicas)
	}
	pids := map[int]int{}
	for range 30 {
		pids[g.echo("/function/echo").PID]++
	}
	if len(pids) != 3 {
		t.Fatalf("30 requests reached %d processes: %v", len(pids), pids)
	}
	for p, n := range pids {
		if n != 10 {
			t.Errorf("pid %d got %d of 30 requests, want 10 (round robin)", p, n)
		}
	}
	g.must(202, g.do(http.MethodPost, "/system/scale-function/echo", types.ScaleServiceRequest{ServiceName: "echo", Replicas: 1}, true), "scale down")
	left := 0
	for p := range pids {
		if alive(p) {
			left++
		}
	}
	if left != 1 {
		t.Fatalf("%d processes left after scaling to 1", left)
	}
	// Scaled to zero, the next call scales it back to one.
	g.must(202, g.do(http.MethodPost, "/system/scale-function/echo", types.ScaleServiceRequest{ServiceName: "echo", Replicas: 0}, true), "scale to zero")
	if st := g.status("echo"); st.Replicas != 0 {
		t.Fatalf("replicas %d after scaling to zero", st.Replicas)
	}
	g.echo("/function/echo")
	if st := g.status("echo"); st.Replicas != 1 {
		t.Fatalf("replicas %d after a call scaled from zero", st.Replicas)
	}
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	g := start(t, nil)
	check := func(want int, r resp, what, bodyHas string) {
		t.Helper()
		g.must(want, r, what)
		if !strings.Contains(r.body, bodyHas) {
			t.Errorf("%s: body %q lacks %q", what, r.body, bodyHas)
		}
	}
	check(404, g.do(http.MethodGet, "/function/nope", nil, false), "unknown function", `function "nope" is not deployed`)
	check(404, g.do(http.MethodPost, "/async-function/nope", nil, false), "unknown async function", `function "nope" is not deployed`)
	check(400, g.do(http.MethodGet, "/function/../system/info", nil, false), "dot-dot name", "function name is empty")
	check(400, g.do(http.MethodGet, "/function/Echo", nil, false), "upper-case name", "invalid function name")
	check(400, g.do(http.MethodGet, "/function/echo.other-ns", nil, false), "other namespace", "only \"openfaas-fn\"")
	check(401, g.do(http.MethodGet, "/system/functions", nil, false), "no credentials", "invalid credentials")
	g.pass += "x"
	check(401, g.do(http.MethodGet, "/system/functions", nil, true), "wrong password", "invalid credentials")
	g.pass = strings.TrimSuffix(g.pass, "x")
	check(400, g.do(http.MethodPost, "/system/functions", `{"service": "echo",`, true), "malformed JSON", "malformed request")
	check(400, g.do(http.MethodPost, "/system/functions", "", true), "empty body", "malformed request")
	for _, name := range []string{"a/b", "../x", "..", "echo/../x", "-echo", strings.Repeat("a", 64)} {
		check(400, g.do(http.MethodPost, "/system/functions", types.FunctionDeployment{Service: name, Image: "x"}, true), "name "+name, "invalid function name")
	}
	check(400, g.do(http.MethodPost, "/system/functions", types.FunctionDeployment{Service: "", Image: "x"}, true), "empty name", "function name is empty")
	check(400, g.do(http.MethodPost, "/system/functions", types.FunctionDeployment{Service: "nginx", Image: "nginx"}, true), "unknown service", "known functions are audit-append, echo, media")
	check(400, g.do(http.MethodPost, "/system/functions", echoDep(nil, "missing-secret"), true), "missing secret", "missing-secret")
	d := echoDep(nil)
	d.Namespace = "kube-system"
	check(400, g.do(http.MethodPost, "/system/functions", d, true), "other namespace deploy", "not served here")
	check(404, g.do(http.MethodPost, "/system/scale-function/echo", types.ScaleServiceRequest{ServiceName: "echo", Replicas: 2}, true), "scale missing", "not deployed")
	check(400, g.do(http.MethodPost, "/system/scale-function/echo", types.ScaleServiceRequest{ServiceName: "echo", Replicas: 1000}, true), "scale too far", "replicas must be")
	check(404, g.do(http.MethodGet, "/system/function/echo", nil, true), "status missing", "not deployed")
	check(404, g.do(http.MethodGet, "/system/logs?name=echo", nil, true), "logs missing", "not deployed")
	check(405, g.do(http.MethodPatch, "/system/functions", nil, true), "bad method", "not allowed")
	check(404, g.do(http.MethodGet, "/nothing", nil, false), "unknown path", "not found")
	if st := g.do(http.MethodGet, "/system/functions", nil, true); st.body != "[]" {
		t.Fatalf("bad deploys left functions behind: %s", st.body)
	}
}

func TestSecrets(t *testing.T) {
	t.Parallel()
	g := start(t, nil)
	g.must(201, g.do(http.MethodPost, "/system/secrets", types.Secret{Name: "api-key", Value: "s3cr3t-value"}, true), "create")
	g.must(201, g.do(http.MethodPost, "/system/secrets", types.Secret{Name: "other", RawValue: []byte{0, 1, 2}}, true), "create raw")
	g.must(409, g.do(http.MethodPost, "/system/secrets", types.Secret{Name: "api-key", Value: "x"}, true), "create again")
	g.must(400, g.do(http.MethodPost, "/system/secrets", types.Secret{Name: "../etc", Value: "x"}, true), "bad name")
	g.must(400, g.do(http.MethodPost, "/system/secrets", types.Secret{Name: "empty"}, true), "no value")
	g.must(404, g.do(http.MethodPut, "/system/secrets", types.Secret{Name: "nope", Value: "x"}, true), "update missing")
	g.must(401, g.do(http.MethodGet, "/system/secrets", nil, false), "list without auth")
	r := g.must(200, g.do(http.MethodGet, "/system/secrets", nil, true), "list")
	if r.body != `[{"name":"api-key","namespace":"openfaas-fn"},{"name":"other","namespace":"openfaas-fn"}]` {
		t.Fatalf("list: %s", r.body)
	}
	fi, err := os.Stat(filepath.Join(g.dir, "secrets", "api-key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("stored secret: %v %v", fi, err)
	}

	g.must(202, g.do(http.MethodPost, "/system/functions", echoDep(nil, "api-key"), true), "deploy with secret")
	e := g.echo("/function/echo")
	if strings.Join(e.Secrets.Names, ",") != "api-key" {
		t.Fatalf("function sees secrets %v, want only api-key", e.Secrets.Names)
	}
	if b, err := os.ReadFile(filepath.Join(e.Secrets.Dir, "api-key")); err != nil || string(b) != "s3cr3t-value" {
		t.Fatalf("secret in SECRETS_DIR: %q %v", b, err)
	}
	g.must(200, g.do(http.MethodPut, "/system/secrets", types.Secret{Name: "api-key", Value: "rotated"}, true), "update")
	if b, _ := os.ReadFile(filepath.Join(e.Secrets.Dir, "api-key")); string(b) != "rotated" {
		t.Fatalf("deployed copy not refreshed: %q", b)
	}
	g.must(202, g.do(http.MethodPut, "/system/functions", echoDep(nil), true), "update without secrets")
	if e := g.echo("/function/echo"); len(e.Secrets.Names) != 0 {
		t.Fatalf("function without secrets sees %v", e.Secrets.Names)
	}
	g.must(200, g.do(http.MethodDelete, "/system/secrets", types.Secret{Name: "other"}, true), "delete")
	g.must(404, g.do(http.MethodDelete, "/system/secrets", types.Secret{Name: "other"}, true), "delete again")
}

func TestMetricsInfoLogs(t *testing.T) {
	t.Parallel()
	g := start(t, func(o *provider.Options) {
		o.Auth = &auth.BasicAuthCredentials{User: "ops", Password: "a-long-password"}
		o.Version = "1.2.3"
		o.SHA = "abc123"
	})
	if g.user != "ops" || g.p.PasswordFile() != "" {
		t.Fatalf("user %q, password file %q", g.user, g.p.PasswordFile())
	}
	g.must(202, g.do(http.MethodPost, "/system/functions", echoDep(nil), true), "deploy")
	for range 3 {
		g.echo("/function/echo/some/path?id=123")
	}
	g.must(503, g.do(http.MethodGet, "/function/echo", nil, false, "X-Echo-Status", "503"), "failing call")
	m := g.must(200, g.do(http.MethodGet, "/metrics", nil, false), "metrics").body
	for _, want := range []string{
		`gateway_function_invocation_total{code="200",function_name="echo"} 3`,
		`gateway_function_invocation_total{code="503",function_name="echo"} 1`,
		`gateway_function_invocation_started{function_name="echo"} 4`,
		`gateway_service_count{function_name="echo"} 1`,
		`gateway_functions_seconds_count{code="200",function_name="echo"} 3`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(m, "some/path") || strings.Contains(m, "123") && strings.Contains(m, "id=") {
		t.Error("metrics mention a path or query")
	}

	var info provider.GatewayInfo
	r := g.must(200, g.do(http.MethodGet, "/system/info", nil, true), "info")
	if err := json.Unmarshal([]byte(r.body), &info); err != nil || info.Provider == nil || info.Version == nil ||
		info.Provider.Name != "pulsevault" || info.Provider.Orchestration != "pulsevault-process" ||
		info.Version.Release != "1.2.3" || info.Version.SHA != "abc123" || info.Arch == "" {
		t.Fatalf("info: %s", r.body)
	}
	if r := g.must(200, g.do(http.MethodGet, "/system/namespaces", nil, true), "namespaces"); r.body != `["openfaas-fn"]` {
		t.Fatalf("namespaces: %s", r.body)
	}
	g.must(200, g.do(http.MethodGet, "/healthz", nil, false), "healthz")

	// Logs: the replica's own lines, in faas-provider's NDJSON.
	r = g.must(200, g.do(http.MethodGet, "/system/logs?name=echo&namespace=openfaas-fn&follow=false&tail=1", nil, true), "logs")
	if n := strings.Count(strings.TrimSpace(r.body), "\n"); n != 0 {
		t.Fatalf("tail=1 gave %d lines:\n%s", n+1, r.body)
	}
	var msg struct{ Name, Namespace, Instance, Text string }
	if err := json.Unmarshal([]byte(r.body), &msg); err != nil || msg.Name != "echo" || msg.Instance != "echo-1" || msg.Text == "" {
		t.Fatalf("log message: %s (%v)", r.body, err)
	}

	// Following: a line written after the request starts arrives.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, g.url+"/system/logs?name=echo&follow=true&tail=1", nil)
	req.SetBasicAuth(g.user, g.pass)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	if !sc.Scan() {
		t.Fatal("follow: no first line")
	}
	// Restarting the replica prints "function listening" again.
	g.must(202, g.do(http.MethodPut, "/system/functions", echoDep(nil), true), "update")
	found := false
	for !found && sc.Scan() {
		found = strings.Contains(sc.Text(), "function listening") && strings.Contains(sc.Text(), "echo-2")
	}
	if !found {
		t.Fatalf("follow: the new replica's start never arrived (%v)", sc.Err())
	}
}

func TestAsyncWithCallback(t *testing.T) {
	t.Parallel()
	ns, err := localstack.StartNATS(localstack.NATSOptions{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	b, err := bus.Connect(ns.URL(), "provider-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	g := start(t, func(o *provider.Options) { o.Bus = b })

	type callback struct {
		hdr  http.Header
		body string
	}
	got := make(chan callback, 10)
	cb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- callback{r.Header.Clone(), string(body)}
	}))
	t.Cleanup(cb.Close)

	g.must(202, g.do(http.MethodPost, "/system/functions", echoDep(nil), true), "deploy")
	r := g.must(202, g.do(http.MethodPost, "/async-function/echo/jobs?x=1", `{"hello":"world"}`, false,
		"X-Callback-Url", cb.URL+"/done?token=abc", "Content-Type", "application/json"), "async")
	callID := r.hdr.Get("X-Call-Id")
	if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(callID) {
		t.Fatalf("X-Call-Id %q", callID)
	}
	var c callback
	select {
	case c = <-got:
	case <-time.After(15 * time.Second):
		t.Fatal("no callback within 15s")
	}
	if c.hdr.Get("X-Call-Id") != callID || c.hdr.Get("X-Function-Status") != "200" || c.hdr.Get("X-Function-Name") != "echo" ||
		c.hdr.Get("X-Duration-Seconds") == "" || c.hdr.Get("Content-Type") != "application/json" {
		t.Fatalf("callback headers: %v", c.hdr)
	}
	var e echoed
	if err := json.Unmarshal([]byte(c.body), &e); err != nil || e.Path != "/jobs" || e.Query != "x=1" || e.BodyBytes != 17 ||
		e.Headers["X-Call-Id"] != callID || e.Method != http.MethodPost {
		t.Fatalf("callback body: %s (%v)", c.body, err)
	}

	// A failing function: the callback says so.
	r = g.must(202, g.do(http.MethodPost, "/async-function/echo.openfaas-fn", `{"status":500}`, false,
		"X-Callback-Url", cb.URL, "X-Call-Id", "my-call-1"), "async failing")
	if r.hdr.Get("X-Call-Id") != "my-call-1" {
		t.Fatalf("caller's X-Call-Id not kept: %q", r.hdr.Get("X-Call-Id"))
	}
	select {
	case c = <-got:
	case <-time.After(15 * time.Second):
		t.Fatal("no callback for the failing call")
	}
	if c.hdr.Get("X-Function-Status") != "500" || c.hdr.Get("X-Call-Id") != "my-call-1" {
		t.Fatalf("failing callback headers: %v", c.hdr)
	}
	g.must(400, g.do(http.MethodPost, "/async-function/echo", "x", false, "X-Callback-Url", "ftp://x/y"), "bad callback URL")
	m := g.do(http.MethodGet, "/metrics", nil, false).body
	if !strings.Contains(m, `gateway_function_invocation_total{code="500",function_name="echo"} 1`) {
		t.Error("async invocations are not in the metrics")
	}
}

func TestCloseLeavesNothingRunning(t *testing.T) {
	t.Parallel()
	g := start(t, nil)
	labels := map[string]string{"com.openfaas.scale.min": "3"}
	dep := echoDep(nil)
	dep.Labels = &labels
	g.must(202, g.do(http.MethodPost, "/system/functions", dep, true), "deploy")
	g.must(202, g.do(http.MethodPost, "/system/functions", types.FunctionDeployment{Service: "media", Image: "x"}, true), "deploy media")
	// media without a store answers 503 through the gateway: a second function's child is running.
	g.must(503, g.do(http.MethodGet, "/function/media/videos/x", nil, false), "media without a store")
	pids := map[int]bool{}
	for range 9 {
		pids[g.echo("/function/echo").PID] = true
	}
	if len(pids) != 3 {
		t.Fatalf("scale.min 3 gave %d processes", len(pids))
	}
	start := time.Now()
	g.p.Close()
	for p := range pids {
		if alive(p) {
			t.Errorf("pid %d survived Close", p)
		}
	}
	t.Logf("Close took %s", time.Since(start))
	if err := g.p.Deploy(context.Background(), echoDep(nil)); err == nil {
		t.Fatal("Deploy after Close succeeded")
	}
	ents, _ := os.ReadDir(filepath.Join(g.dir, "run"))
	if len(ents) != 0 {
		t.Fatalf("run dir left behind: %v", ents)
	}
}

func TestDeployAPIUpserts(t *testing.T) {
	t.Parallel()
	g := start(t, nil)
	ctx := context.Background()
	if err := g.p.Deploy(ctx, echoDep(map[string]string{"ECHO_V": "1"})); err != nil {
		t.Fatal(err)
	}
	if err := g.p.Deploy(ctx, echoDep(map[string]string{"ECHO_V": "2", "port": "1", "SECRETS_DIR": "/etc"})); err != nil {
		t.Fatal(err)
	}
	e := g.echo("/function/echo")
	if e.Env["ECHO_V"] != "2" || !strings.HasPrefix(e.Secrets.Dir, g.dir) {
		t.Fatalf("after upsert: %+v", e)
	}
	err := g.p.Deploy(ctx, types.FunctionDeployment{Service: "x/y"})
	if err == nil || !strings.Contains(err.Error(), "invalid function name") {
		t.Fatalf("bad name: %v", err)
	}
}

// wrapper writes a script that stands in for the binary: it runs prelude,
// then execs the real pulsevault with the same arguments.
func wrapper(t *testing.T, prelude string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pulsevault-wrapper")
	script := "#!/bin/sh\n" + prelude + "\nexec " + binPath + " \"$@\"\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestGrandchildrenDoNotOutliveTheReplica(t *testing.T) {
	t.Parallel()
	marks := t.TempDir()
	bin := wrapper(t, `sleep 300 & echo $! > "$MARK_DIR/$$"`)
	g := start(t, func(o *provider.Options) { o.BinPath = bin })
	g.must(202, g.do(http.MethodPost, "/system/functions", echoDep(map[string]string{"MARK_DIR": marks}), true), "deploy")
	pid := g.echo("/function/echo").PID
	b, err := os.ReadFile(filepath.Join(marks, fmt.Sprint(pid)))
	if err != nil {
		t.Fatal(err)
	}
	var sleeper int
	fmt.Sscan(string(b), &sleeper)
	if sleeper == 0 || !alive(sleeper) {
		t.Fatalf("grandchild %q not running", b)
	}
	g.must(202, g.do(http.MethodDelete, "/system/functions", types.DeleteFunctionRequest{FunctionName: "echo"}, true), "delete")
	eventually(t, 5*time.Second, "grandchild killed", func() bool {
		// Killed but not ours to reap: it may linger as a zombie of init.
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", sleeper))
		return err != nil || strings.Contains(string(st), ") Z ")
	})
}

func TestCrashingFunction(t *testing.T) {
	t.Parallel()
	bin := wrapper(t, `echo "cannot start: missing config" >&2; exit 3`)
	g := start(t, func(o *provider.Options) {
		o.BinPath = bin
		o.ReadyTimeout = 500 * time.Millisecond
	})
	g.must(202, g.do(http.MethodPost, "/system/functions", echoDep(nil), true), "deploy")
	st := g.status("echo")
	if st.Replicas != 1 || st.AvailableReplicas != 0 {
		t.Fatalf("crashing function: replicas %d available %d", st.Replicas, st.AvailableReplicas)
	}
	r := g.must(503, g.do(http.MethodGet, "/function/echo", nil, false), "invoke crashing function")
	if !strings.Contains(r.body, "No endpoints available for: echo") {
		t.Fatalf("body: %q", r.body)
	}
	logs := g.must(200, g.do(http.MethodGet, "/system/logs?name=echo&follow=false", nil, true), "logs").body
	if strings.Count(logs, "cannot start: missing config") < 2 {
		t.Fatalf("logs do not show the restarts:\n%s", logs)
	}
	g.must(202, g.do(http.MethodDelete, "/system/functions", types.DeleteFunctionRequest{FunctionName: "echo"}, true), "delete")
}
