package tests

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mieweb/pulsevault/shared/bus"
	"github.com/mieweb/pulsevault/shared/faas/stackfile"
	"github.com/mieweb/pulsevault/shared/localstack"
	"github.com/mieweb/pulsevault/shared/testutil/testenv"
	"github.com/mieweb/pulsevault/shared/testutil/tier"
)

// stackFunctions are the functions stack.yml must declare.
var stackFunctions = []string{"upload", "upload-finalize", "transcode", "sign-url", "media", "audit-append"}

func faasCLI(t *testing.T) string {
	t.Helper()
	tier.Integration(t, "faas-cli")
	p, err := localstack.FindBinary("faas-cli")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// repoRoot is the module root (tests run in tests/).
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// copyProject copies what faas-cli needs (stack.yml, templates, the module) into a temp dir so
// that ./build/ is written there, not into the work tree.
func copyProject(t *testing.T) string {
	t.Helper()
	root, dir := repoRoot(t), t.TempDir()
	for _, p := range []string{"stack.yml", "templates", "go.mod", "go.sum", "cmd", "shared", "functions"} {
		if out, err := exec.Command("cp", "-r", filepath.Join(root, p), filepath.Join(dir, p)).CombinedOutput(); err != nil {
			t.Fatalf("copy %s: %v\n%s", p, err, out)
		}
	}
	if err := os.Symlink("templates", filepath.Join(dir, "template")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// `faas-cli build --shrinkwrap` writes one Docker build context per function; each must compile
// with plain `go build` and no network (GOPROXY=off: only the local module cache).
func TestShrinkwrapBuildContextsCompile(t *testing.T) {
	dir := copyProject(t)
	cmd := exec.Command(faasCLI(t), "build", "--shrinkwrap", "-f", "stack.yml")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("faas-cli build --shrinkwrap: %v\n%s", err, out)
	}
	var first map[string]string
	for i, fn := range stackFunctions {
		ctxDir := filepath.Join(dir, "build", fn)
		for _, f := range []string{"Dockerfile", "template.yml", "function/go.mod", "function/cmd/pulsevault/main.go", "function/README.md"} {
			if _, err := os.Stat(filepath.Join(ctxDir, f)); err != nil {
				t.Errorf("%s: build context lacks %s", fn, f)
			}
		}
		df, _ := os.ReadFile(filepath.Join(ctxDir, "Dockerfile"))
		if !strings.Contains(string(df), "USER 10001") {
			t.Errorf("%s: Dockerfile does not run as non-root", fn)
		}
		tree := hashTree(t, filepath.Join(ctxDir, "function"))
		if i > 0 {
			// Same module sources as the first context (which is compiled below): only the
			// function's own handler files at the root differ, and the build does not read them.
			for p, h := range tree {
				if !strings.Contains(p, "/") {
					continue
				}
				if first[p] != h {
					t.Errorf("%s: %s differs from %s's build context", fn, p, stackFunctions[0])
				}
			}
			continue
		}
		first = tree
		build := exec.Command("go", "build", "-o", filepath.Join(t.TempDir(), "pulsevault"), "./cmd/pulsevault")
		build.Dir = filepath.Join(ctxDir, "function")
		build.Env = append(os.Environ(), "GOPROXY=off", "GOFLAGS=-mod=mod")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("%s: go build in the shrinkwrapped context: %v\n%s", fn, err, out)
		}
	}
}

// randomSecret is a fresh 32-byte value, base64-encoded.
func randomSecret(t *testing.T) string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// hashTree maps every file under dir (slash-separated relative path) to its SHA-256.
func hashTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		sum := sha256.Sum256(b)
		out[filepath.ToSlash(rel)] = hex.EncodeToString(sum[:])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// faas runs the real faas-cli against the provider with an isolated HOME
// (faas-cli keeps credentials in ~/.openfaas) and returns its combined output.
type faas struct {
	t       *testing.T
	bin     string
	home    string
	gateway string
	dir     string // working directory; HOME when empty
}

func (f faas) run(stdin string, args ...string) (string, error) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, f.bin, args...)
	// Not the repository by default: faas-cli reads ./stack.yml even with --image/--name.
	cmd.Dir = f.home
	if f.dir != "" {
		cmd.Dir = f.dir
	}
	cmd.Env = append(f.env(), "OPENFAAS_URL="+f.gateway, "NO_COLOR=1")
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// env isolates faas-cli's credentials: it keeps them in ~/.openfaas, or in
// ./.openfaas when CI=true, unless OPENFAAS_CONFIG names the place.
func (f faas) env() []string {
	return append(os.Environ(), "HOME="+f.home, "OPENFAAS_CONFIG="+filepath.Join(f.home, ".openfaas"))
}

func (f faas) must(stdin string, args ...string) string {
	f.t.Helper()
	out, err := f.run(stdin, args...)
	if err != nil {
		f.t.Fatalf("faas-cli %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// faasCLIVersions are the faas-cli releases the tests drive: 0.13.13 (October 2021, what the
// Go module proxy serves) and 0.18.12 (July 2026, what platform teams use today, built from
// ../shared/tools by `make tools`).
func faasCLIVersions(t *testing.T) []struct{ version, bin string } {
	return []struct{ version, bin string }{{"0.13.13", faasCLI(t)}, {"0.18.12", toolOrSkip(t, "faas-cli-0.18")}}
}

// The real faas-cli, each version, drives the local provider: login, deploy of stack.yml, list
// (and --json), describe, diff, ready, invoke (sync and async with a callback), logs, secrets,
// namespaces, remove, version and `up`; and a message on a topic reaches the annotated function
// through the real connector process.
func TestFaasCLIAgainstProvider(t *testing.T) {
	bin := buildPulsevault(t)
	for _, v := range faasCLIVersions(t) {
		t.Run(v.version, func(t *testing.T) { faasCLIAgainstProvider(t, bin, v.version, v.bin) })
	}
}

func faasCLIAgainstProvider(t *testing.T, bin, version, cli string) {
	p := startProviderCmd(t, bin)
	f := faas{t: t, bin: cli, home: t.TempDir(), gateway: p.url}
	newCLI := version != "0.13.13" // 0.18: diff, ready, list --json, `namespace list`

	if out, err := f.run("wrong-password", "login", "-g", p.url, "-u", p.user, "--password-stdin"); err == nil {
		t.Fatalf("login with a wrong password succeeded:\n%s", out)
	}
	f.must(p.pass, "login", "-g", p.url, "-u", p.user, "--password-stdin")
	if out := f.must("", "version", "--warn-update=false", "-g", p.url); !strings.Contains(out, "pulsevault") || !strings.Contains(out, version) {
		t.Errorf("version does not show the provider and faas-cli %s:\n%s", version, out)
	}
	if newCLI {
		f.must("", "ready", "-g", p.url, "--attempts", "20", "--interval", "100ms")
	}

	// The secrets stack.yml's functions list must exist before they deploy, as on OpenFaaS.
	sf, err := stackfile.ReadFile(filepath.Join(repoRoot(t), "stack.yml"), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	created := map[string]bool{}
	for _, d := range sf.Deployments() {
		for _, name := range d.Secrets {
			if !created[name] {
				created[name] = true
				f.must("", "secret", "create", name, "--from-literal="+randomSecret(t), "-g", p.url)
			}
		}
	}
	if list := f.must("", "secret", "list", "-g", p.url); len(created) > 0 && !strings.Contains(list, "pulsevault-") {
		t.Errorf("secret list:\n%s", list)
	}
	f.must("", "secret", "update", "pulsevault-jwt-secret", "--from-literal="+randomSecret(t), "-g", p.url)

	inRepo := f
	inRepo.dir = repoRoot(t) // deploy -f reads ./template/<lang>
	out := inRepo.must("", "deploy", "-f", "stack.yml", "-g", p.url)
	if strings.Count(out, "Deployed. 202 Accepted.") != len(sf.Functions) {
		t.Fatalf("deploy -f stack.yml:\n%s", out)
	}
	if newCLI {
		// What stack.yml says against what the gateway runs: the same functions, so no function
		// is missing or extra (the provider's own settings replace some environment values).
		if out := inRepo.must("", "diff", "-f", "stack.yml", "-g", p.url); !strings.Contains(out, "no differences") {
			t.Errorf("diff after deploy -f:\n%s", out)
		}
	}
	f.must("", "deploy", "--image", "pulsevault-echo:dev", "--name", "echo", "--annotation", "topic=pulse.jobs.echo", "-g", p.url)
	if newCLI {
		f.must("", "ready", "echo", "-g", p.url, "--attempts", "50", "--interval", "100ms")
	}
	list := f.must("", "list", "-g", p.url)
	for _, fn := range append(stackFunctions, "echo") {
		if !strings.Contains(list, fn) {
			t.Errorf("list lacks %s:\n%s", fn, list)
		}
	}
	if newCLI {
		var fns []struct {
			Name     string `json:"name"`
			Image    string `json:"image"`
			Replicas int    `json:"replicas"`
		}
		out := f.must("", "list", "--json", "-g", p.url)
		if err := json.Unmarshal([]byte(out), &fns); err != nil || len(fns) != len(sf.Functions)+1 {
			t.Errorf("list --json: %v, %d functions, want %d:\n%s", err, len(fns), len(sf.Functions)+1, out)
		}
	} else if out := f.must("", "list", "-v", "-g", p.url); !strings.Contains(out, "pulsevault-echo:dev") {
		t.Errorf("list -v does not show echo's image:\n%s", out)
	}
	if out := f.must("", "describe", "echo", "-g", p.url); !strings.Contains(out, "Status:") || !strings.Contains(out, "Ready") {
		t.Errorf("describe echo:\n%s", out)
	}
	ns := []string{"namespaces"}
	if newCLI {
		ns = []string{"namespace", "list"}
	}
	if out := f.must("", append(ns, "-g", p.url)...); !strings.Contains(out, "openfaas-fn") {
		t.Errorf("%s:\n%s", strings.Join(ns, " "), out)
	}

	out = f.must("twelve bytes", "invoke", "echo", "-g", p.url)
	var e struct {
		Function  string
		BodyBytes int64
		PID       int
	}
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &e); err != nil || e.Function != "echo" || e.BodyBytes != 12 || e.PID == 0 {
		t.Fatalf("invoke echo: %v\n%s", err, out)
	}
	// A function's error comes back through the gateway: sign-url without a JWT
	// (0.13 words any 401 as "Unauthorized access", 0.18 quotes the status).
	if out, err := f.run("{}", "invoke", "sign-url", "-g", p.url); err == nil || !strings.Contains(out, "Unauthorized") && !strings.Contains(out, "401") {
		t.Errorf("invoke sign-url without a token should fail with 401: %v\n%s", err, out)
	}

	// Async with a callback.
	got := make(chan http.Header, 1)
	cb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		select {
		case got <- r.Header.Clone():
		default:
		}
	}))
	defer cb.Close()
	callback := "X-Callback-Url=" + cb.URL // 0.13 takes key=value only; 0.18 prefers "Key: Value"
	if newCLI {
		callback = "X-Callback-Url: " + cb.URL
	}
	if out := f.must("async body", "invoke", "echo", "--async", "-H", callback, "-g", p.url); !strings.Contains(out, "submitted asynchronously") {
		t.Errorf("invoke --async:\n%s", out)
	}
	select {
	case h := <-got:
		if h.Get("X-Call-Id") == "" || h.Get("X-Function-Status") != "200" {
			t.Errorf("callback headers: %v", h)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no async callback within 15s")
	}

	if out := f.must("", "logs", "echo", "--tail=false", "-g", p.url); !strings.Contains(out, "echo") {
		t.Errorf("logs echo shows nothing:\n%s", out)
	}

	// The connector, as its own process, delivers a topic's messages to the annotated function.
	connectorDelivers(t, bin, p, "pulse.jobs.echo", "echo")

	f.must("", "remove", "echo", "-g", p.url)
	if list := f.must("", "list", "-g", p.url); strings.Contains(list, "echo") {
		t.Errorf("echo still listed after remove:\n%s", list)
	}
	f.must("", "secret", "remove", "pulsevault-audit-key", "-g", p.url)
	if list := f.must("", "secret", "list", "-g", p.url); strings.Contains(list, "pulsevault-audit-key") {
		t.Errorf("secret still listed after remove:\n%s", list)
	}

	// `faas-cli up` builds (shrinkwrapped: no Docker here), skips the push and deploys.
	f.must("", "secret", "create", "pulsevault-audit-key", "--from-literal="+randomSecret(t), "-g", p.url)
	dir := copyProject(t)
	up := exec.Command(f.bin, "up", "--shrinkwrap", "--skip-push", "-f", "stack.yml", "-g", p.url)
	up.Dir = dir
	up.Env = f.env()
	if out, err := up.CombinedOutput(); err != nil || strings.Count(string(out), "Deployed. 202 Accepted.") != len(sf.Functions) {
		t.Fatalf("faas-cli up --shrinkwrap --skip-push: %v\n%s", err, out)
	}
}

// connectorDelivers runs `pulsevault connector` against the provider and checks that a message
// published on subject reaches fn (the connector counts a 200 from it).
func connectorDelivers(t *testing.T, bin string, p *providerCmd, subject, fn string) {
	t.Helper()
	natsURL := p.natsURL
	b, err := bus.Connect(natsURL, "faascli-test")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.EnsureStream(context.Background(), bus.StreamConfig{Name: "PULSE_JOBS", Subjects: []string{"pulse.jobs.>"}}); err != nil {
		t.Fatal(err)
	}
	metrics := freeAddr(t)
	cmd := exec.Command(bin, "connector", "--nats-url", natsURL)
	cmd.Env = append(os.Environ(), "GATEWAY_URL="+p.url, "GATEWAY_USER="+p.user, "GATEWAY_PASSWORD="+p.pass,
		"CONNECTOR_REFRESH=200ms", "CONNECTOR_METRICS_ADDR="+metrics)
	var stderr testenv.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	if err := b.Publish(context.Background(), subject, []byte(`{"job":1}`), "faascli-test-1"); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`connector_invocations_total{code="200",function=%q} 1`, fn)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if res, err := http.Get("http://" + metrics + "/metrics"); err == nil {
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if strings.Contains(string(body), want) {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("connector did not deliver %s to %s within 20s; stderr:\n%s", subject, fn, stderr.String())
}
