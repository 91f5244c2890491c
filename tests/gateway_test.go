package tests

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/types"

	"github.com/mieweb/pulsevault/shared/faas/stackfile"
	"github.com/mieweb/pulsevault/shared/ingest/tusclient"
	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/playback/livestatus"
	"github.com/mieweb/pulsevault/shared/testutil/testclip"
	"github.com/mieweb/pulsevault/shared/testutil/testenv"
	"github.com/mieweb/pulsevault/shared/testutil/tier"
)

// envNetNS marks the test process re-executed inside its private network namespace.
const envNetNS = "PULSEVAULT_IN_NETNS"

// inPrivateNetNS re-runs the calling test (name) in a private network namespace and reports
// whether the caller is already inside it. The real OpenFaaS gateway always listens on :8080
// and :8082 of every interface: in a namespace of its own (unshare -n, root) it collides with
// nothing, and whatever the test starts there (NATS, the store, the provider, Prometheus)
// stays on that namespace's loopback. Outside, it returns false after the inner run, whose
// output is shown when it fails, and whose "BENCH" lines (the measurements) always are.
func inPrivateNetNS(t *testing.T, name string) bool {
	t.Helper()
	if os.Getenv(envNetNS) != "" {
		if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
			t.Fatalf("ip link set lo up: %v\n%s", err, out)
		}
		return true
	}
	if out, err := exec.Command("unshare", "-n", "true").CombinedOutput(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("unshare -n (a private network namespace; needs root): %v\n%s", err, out)
		}
		t.Skipf("unshare -n needs root: %v %s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 9*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "unshare", "-n", "--", os.Args[0],
		"-test.run=^"+name+"$", "-test.count=1", "-test.v", "-test.timeout=8m")
	cmd.Env = append(os.Environ(), envNetNS+"=1")
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGQUIT) } // a stack dump
	var out testenv.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.Contains(l, "BENCH ") {
			t.Log(strings.TrimSpace(l))
		}
	}
	if err != nil {
		t.Fatalf("%s in a private network namespace: %v\n%s", name, err, out.String())
	}
	return false
}

// realGateway is the OpenFaaS CE gateway in front of a provider, with a real Prometheus.
type realGateway struct {
	url  string // http://127.0.0.1:8080
	user string
	pass string
}

// startRealGateway runs Debian's Prometheus (with our single-node scrape config, pointed at this
// provider and the gateway) and the OpenFaaS gateway built from ../shared/tools, configured as
// the chart configures it (basic auth, the provider's credentials as its own, timeouts), in
// front of p. Only inside the private network namespace: the gateway binds :8080 and :8082.
func startRealGateway(t *testing.T, p *providerCmd) *realGateway {
	t.Helper()
	gwBin := toolOrSkip(t, "of-gateway")
	promBin := toolOrSkip(t, "prometheus")
	dir := t.TempDir()

	b, err := os.ReadFile(filepath.Join(infraDir(t), "prometheus", "prometheus-single-node.yml"))
	if err != nil {
		t.Fatal(err)
	}
	providerAddr := strings.TrimPrefix(p.url, "http://")
	cfg := strings.ReplaceAll(string(b), "127.0.0.1:8080", providerAddr) +
		"  - job_name: openfaas-gateway\n    static_configs:\n      - targets: [\"127.0.0.1:8082\"]\n"
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	promAddr := freeAddr(t)
	prom := exec.Command(promBin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "tsdb"), "--web.listen-address="+promAddr)
	var promLog testenv.Buffer
	prom.Stdout, prom.Stderr = &promLog, &promLog
	startUntil(t, prom, "http://"+promAddr+"/-/ready", &promLog)

	secrets := filepath.Join(dir, "secrets")
	if err := os.MkdirAll(secrets, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]string{"basic-auth-user": p.user, "basic-auth-password": p.pass} {
		if err := os.WriteFile(filepath.Join(secrets, name), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	gw := exec.Command(gwBin)
	_, promPort, _ := strings.Cut(promAddr, ":")
	gw.Env = append(os.Environ(),
		"functions_provider_url="+p.url+"/", "basic_auth=true", "secret_mount_path="+secrets,
		"faas_prometheus_host=127.0.0.1", "faas_prometheus_port="+promPort,
		"read_timeout=5m", "write_timeout=5m", "upstream_timeout=4m55s",
		"function_namespace=openfaas-fn", "scale_from_zero=true", "direct_functions=false")
	var gwLog testenv.Buffer
	gw.Stdout, gw.Stderr = &gwLog, &gwLog
	startUntil(t, gw, "http://127.0.0.1:8080/healthz", &gwLog)
	return &realGateway{url: "http://127.0.0.1:8080", user: p.user, pass: p.pass}
}

// startUntil starts cmd, stops it with the test, and waits until url answers 200.
func startUntil(t *testing.T, cmd *exec.Cmd, url string, log *testenv.Buffer) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("%s:\n%s", filepath.Base(cmd.Path), log.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if res, err := http.Get(url); err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return
			}
		}
		select {
		case <-exited:
			t.Fatalf("%s exited before %s answered:\n%s", filepath.Base(cmd.Path), url, log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s not ready in 30s:\n%s", filepath.Base(cmd.Path), url, log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (g *realGateway) system(t *testing.T, method, path string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, g.url+path, nil)
	req.SetBasicAuth(g.user, g.pass)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// The real OpenFaaS CE gateway in front of `pulsevault provider`, with a real Prometheus, as a
// platform team runs it: /system/info shows our provider; faas-cli (0.13.13 and 0.18.12) logs
// in, manages secrets, deploys stack.yml, lists (through Prometheus), describes, invokes and
// reads logs through it; and the clients' paths work through it: a tus upload of a real clip
// (the gateway forwards bodies chunked), sign-url, media with Range, the events stream. With
// PULSEVAULT_BENCH=1 it also measures tus throughput through the gateway against the
// provider's own proxy.
func TestRealGateway(t *testing.T) {
	tier.Integration(t, "the OpenFaaS gateway, Prometheus and a private network namespace")
	if !inPrivateNetNS(t, "TestRealGateway") {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	st := startPlayback(t, "60s")
	p := st.p
	if code, _, body := p.do(http.MethodPost, "/system/functions", types.FunctionDeployment{
		Service: "upload", Image: "pulsevault-upload:dev", Secrets: []string{"pulsevault-jwt-secret"},
		EnvVars: map[string]string{"write_timeout": "5m", "read_timeout": "5m", "exec_timeout": "5m"},
	}, true); code != http.StatusAccepted {
		t.Fatalf("deploy upload: %d %s", code, body)
	}
	gw := startRealGateway(t, p)

	t.Run("system info", func(t *testing.T) {
		code, body := gw.system(t, http.MethodGet, "/system/info")
		var info struct {
			Provider *types.ProviderInfo `json:"provider"`
			Version  *types.VersionInfo  `json:"version"`
		}
		if err := json.Unmarshal([]byte(body), &info); code != 200 || err != nil || info.Provider == nil ||
			info.Provider.Name != "pulsevault" || info.Provider.Orchestration != "pulsevault-process" ||
			info.Provider.Version == nil || info.Version == nil || info.Version.Release == "" {
			t.Fatalf("/system/info through the gateway: %d %s (%v)", code, body, err)
		}
	})

	jwt := st.jwt(t, "uploader-1")
	t.Run("tus upload", func(t *testing.T) {
		clip := filepath.Join(t.TempDir(), phiName+".mp4")
		if err := testclip.Make(ctx, clip, testclip.Options{Seconds: 3}); err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(clip)
		if err != nil {
			t.Fatal(err)
		}
		tc := &tusclient.Client{Endpoint: gw.url + "/function/upload/", Token: jwt, ChunkSize: int64(len(want))}
		up, err := tc.Upload(ctx, clip, map[string]string{"filename": phiName + ".mp4", "filetype": "video/mp4"})
		if err != nil {
			t.Fatalf("tus upload through the gateway: %v", err)
		}
		if !strings.HasPrefix(up, gw.url+"/function/upload/") || strings.Contains(up, "Jane") {
			t.Errorf("upload URL %q", up)
		}
		req, _ := http.NewRequest(http.MethodHead, up, nil)
		req.Header.Set("Tus-Resumable", "1.0.0")
		req.Header.Set("Authorization", "Bearer "+jwt)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 || res.Header.Get("Upload-Offset") != fmt.Sprint(len(want)) {
			t.Fatalf("HEAD through the gateway: %d offset %q, want 200 and %d", res.StatusCode, res.Header.Get("Upload-Offset"), len(want))
		}
		// The staged bytes are the clip's.
		found := false
		for o, err := range st.st.List(ctx, "pulse-uploads", "") {
			if err != nil {
				t.Fatal(err)
			}
			if o.Size != int64(len(want)) {
				continue
			}
			rc, _, err := st.st.Get(ctx, "pulse-uploads", o.Key, 0, -1)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(rc)
			rc.Close()
			found = found || bytes.Equal(got, want)
		}
		if !found {
			t.Fatal("no staged object holds the uploaded clip")
		}
	})

	t.Run("sign-url and media", func(t *testing.T) {
		code, signed, raw := signURL(t, http.DefaultClient, gw.url+"/function/sign-url", jwt, fmt.Sprintf(`{"video":%q}`, st.video))
		if code != 200 || !strings.HasPrefix(signed.URL, "/media/") {
			t.Fatalf("sign-url through the gateway: %d %s", code, raw)
		}
		media := gw.url + "/function/media" + strings.TrimPrefix(signed.URL, "/media")
		if code, _, body := get(t, http.DefaultClient, media); code != 200 || !bytes.HasPrefix(body, []byte("#EXTM3U")) {
			t.Fatalf("master playlist through the gateway: %d %.80q", code, body)
		}
		tok := strings.SplitN(strings.TrimPrefix(signed.URL, "/media/"), "/", 2)[0]
		var seg string
		for k := range st.hlsFiles {
			if strings.HasSuffix(k, ".m4s") && (seg == "" || k < seg) {
				seg = k
			}
		}
		want := st.hlsFiles[seg]
		code, hdr, body := get(t, http.DefaultClient, gw.url+"/function/media/"+tok+"/"+seg, "Range", "bytes=0-9")
		if code != http.StatusPartialContent || !bytes.Equal(body, want[:10]) || hdr.Get("Content-Range") != fmt.Sprintf("bytes 0-9/%d", len(want)) {
			t.Fatalf("range through the gateway: %d %q %q", code, hdr.Get("Content-Range"), body)
		}
	})

	t.Run("events", func(t *testing.T) {
		sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
		defer scancel()
		req, _ := http.NewRequestWithContext(sctx, http.MethodGet, gw.url+"/function/events", nil)
		req.Header.Set("Authorization", "Bearer "+jwt)
		req.Header.Set("Accept", "text/event-stream")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("events through the gateway: %d %v", res.StatusCode, res.Header)
		}
		// Events arrive while the stream stays open: the gateway does not buffer them.
		rd := bufio.NewReader(res.Body)
		event := func() string {
			var ev []string
			for {
				l, err := rd.ReadString('\n')
				if err != nil {
					t.Fatalf("events through the gateway: %v after %q", err, ev)
				}
				if l = strings.TrimSuffix(l, "\n"); l == "" && len(ev) > 0 {
					return strings.Join(ev, "\n")
				} else if l != "" {
					ev = append(ev, l)
				}
			}
		}
		if first := event(); !strings.Contains(first, ": connected") {
			t.Fatalf("first event through the gateway: %q", first)
		}
		if err := livestatus.Publish(ctx, st.pnats, &meta.Video{ID: st.video, Status: meta.Complete, Uploader: "uploader-1"}); err != nil {
			t.Fatal(err)
		}
		if ev, want := event(), fmt.Sprintf("event: status\ndata: {\"status\":\"complete\",\"video\":%q}", st.video); ev != want {
			t.Fatalf("event through the gateway %q, want %q", ev, want)
		}
	})

	if os.Getenv("PULSEVAULT_BENCH") != "" {
		t.Run("tus throughput", func(t *testing.T) { benchTusThroughGateway(t, ctx, gw, p, jwt) })
	}

	for _, v := range faasCLIVersions(t) {
		t.Run("faas-cli "+v.version, func(t *testing.T) { faasCLIThroughGateway(t, gw, v.version, v.bin) })
	}
}

// faasCLIThroughGateway is what a platform team does with faas-cli against the gateway.
func faasCLIThroughGateway(t *testing.T, gw *realGateway, version, cli string) {
	f := faas{t: t, bin: cli, home: t.TempDir(), gateway: gw.url}
	if out, err := f.run("wrong-password", "login", "-g", gw.url, "-u", gw.user, "--password-stdin"); err == nil {
		t.Fatalf("login with a wrong password succeeded:\n%s", out)
	}
	f.must(gw.pass, "login", "-g", gw.url, "-u", gw.user, "--password-stdin")
	if out := f.must("", "version", "--warn-update=false", "-g", gw.url); !strings.Contains(out, "pulsevault") {
		t.Errorf("version through the gateway does not name the provider:\n%s", out)
	}
	sf, err := stackfile.ReadFile(filepath.Join(repoRoot(t), "stack.yml"), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	// The secrets stack.yml lists; the playback stack made some already (409: kept).
	for _, d := range sf.Deployments() {
		for _, name := range d.Secrets {
			if out, err := f.run("", "secret", "create", name, "--from-literal="+randomSecret(t), "-g", gw.url); err != nil &&
				!strings.Contains(out, "already exists") && !strings.Contains(out, "409") {
				t.Fatalf("secret create %s through the gateway: %v\n%s", name, err, out)
			}
		}
	}
	if out := f.must("", "secret", "list", "-g", gw.url); !strings.Contains(out, "pulsevault-ca") {
		t.Errorf("secret list through the gateway:\n%s", out)
	}
	inRepo := f
	inRepo.dir = repoRoot(t)
	if out := inRepo.must("", "deploy", "-f", "stack.yml", "-g", gw.url); strings.Count(out, "Deployed. 202 Accepted.") != len(sf.Functions) {
		t.Fatalf("deploy -f stack.yml through the gateway:\n%s", out)
	}
	f.must("", "deploy", "--image", "pulsevault-echo:dev", "--name", "echo", "-g", gw.url)
	list := f.must("", "list", "-g", gw.url)
	for _, fn := range append(stackFunctions, "echo") {
		if !strings.Contains(list, fn) {
			t.Errorf("list through the gateway lacks %s:\n%s", fn, list)
		}
	}
	if out := f.must("", "describe", "echo", "-g", gw.url); !strings.Contains(out, "Ready") {
		t.Errorf("describe echo through the gateway:\n%s", out)
	}
	out := f.must("twelve bytes", "invoke", "echo", "-g", gw.url)
	var e struct {
		Function  string
		BodyBytes int64
	}
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &e); err != nil || e.Function != "echo" || e.BodyBytes != 12 {
		t.Fatalf("invoke echo through the gateway: %v\n%s", err, out)
	}
	if out := f.must("", "logs", "echo", "--tail=false", "-g", gw.url); !strings.Contains(out, "echo") {
		t.Errorf("logs echo through the gateway:\n%s", out)
	}
	f.must("", "remove", "echo", "-g", gw.url)
}

// benchTusThroughGateway uploads the same 64 MiB file with tus (one PATCH, as Pulse and
// tus-js-client send it) through the real gateway and through the provider's own proxy, A B A B
// over three rounds, and reports both rates and their ratio: what the extra hop costs.
func benchTusThroughGateway(t *testing.T, ctx context.Context, gw *realGateway, p *providerCmd, jwt string) {
	const size = 64 << 20
	file := filepath.Join(t.TempDir(), "bench.bin")
	data := make([]byte, size)
	_, _ = rand.Read(data)
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	data = nil
	rate := func(base string) float64 {
		tc := &tusclient.Client{Endpoint: base + "/function/upload/", Token: jwt, ChunkSize: size}
		start := time.Now()
		if _, err := tc.Upload(ctx, file, map[string]string{"filename": "bench.bin"}); err != nil {
			t.Fatalf("upload through %s: %v", base, err)
		}
		return size / time.Since(start).Seconds() / (1 << 20)
	}
	var viaGW, viaProvider float64
	const rounds = 3
	for range rounds {
		viaGW += rate(gw.url)
		viaProvider += rate(p.url)
	}
	viaGW, viaProvider = viaGW/rounds, viaProvider/rounds
	t.Logf("BENCH tus upload of 64 MiB, mean of %d rounds: through the OpenFaaS gateway %.1f MiB/s, through the provider's own proxy %.1f MiB/s (ratio %.2f)",
		rounds, viaGW, viaProvider, viaGW/viaProvider)
}
