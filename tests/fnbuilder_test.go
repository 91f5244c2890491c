package tests

// Tests of issue 16 items 1–2 through the real binary: every function runs
// as `pulsevault fn NAME` on a real NATS + versitygw, and the three drift
// bugs of the hand-wired functions (upload's JWT leeway, dev ignoring
// CONNECTOR_*, audit-append's writer outliving SIGTERM) stay fixed.

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mieweb/pulsevault/shared/audit/record"
	"github.com/mieweb/pulsevault/shared/auth"
	"github.com/mieweb/pulsevault/shared/playback/token"
	"github.com/mieweb/pulsevault/shared/testutil/testenv"
)

// fnProc is one `pulsevault fn NAME` process.
type fnProc struct {
	url    string
	cmd    *exec.Cmd
	stderr *testenv.Buffer
}

// startFn runs `pulsevault fn name` with env on a free port and waits until
// it answers its health check; it is killed when the test ends.
func startFn(t *testing.T, bin, name string, env []string) *fnProc {
	t.Helper()
	addr := freeAddr(t)
	p := &fnProc{url: "http://" + addr, stderr: &testenv.Buffer{}}
	p.cmd = exec.Command(bin, "fn", name)
	p.cmd.Env = append(append(os.Environ(), env...), "port="+addr)
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil { // not waited for by the test
			_ = p.cmd.Process.Kill()
			_ = p.cmd.Wait()
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		res, err := http.Get(p.url + "/_/health")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("fn %s not healthy in 15s: %v\n%s", name, err, p.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *fnProc) do(t *testing.T, method, path string, body string, hdr ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, p.url+path, strings.NewReader(body))
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// fnStack is a bootstrapped NATS + versitygw and the environment and
// secrets every function needs to build.
type fnStack struct {
	env       []string
	secrets   string
	jwtSecret []byte
	iss, aud  string
}

func startFnStack(t *testing.T, withSecrets bool) *fnStack {
	t.Helper()
	e := testenv.Start(t)
	bootstrapped(t, e.Config, "fnbuilder-test")
	s := &fnStack{secrets: t.TempDir(), jwtSecret: []byte("fnbuilder-jwt-secret-0123456789abcdefgh"),
		iss: e.Config.JWTIssuer, aud: e.Config.JWTAudience}
	s.env = append(e.Config.Env(), "SECRETS_DIR="+s.secrets, "LOG_LEVEL=info")
	if withSecrets {
		s.writeSecrets(t)
	}
	return s
}

func (s *fnStack) writeSecrets(t *testing.T) {
	t.Helper()
	line, err := token.GenerateKeyLine("k1")
	if err != nil {
		t.Fatal(err)
	}
	seed := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	for name, v := range map[string]string{auth.SecretName: string(s.jwtSecret), token.SecretName: line + "\n", record.SecretName: seed} {
		if err := os.WriteFile(filepath.Join(s.secrets, name), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func (s *fnStack) token(t *testing.T, ttl time.Duration) string {
	t.Helper()
	tok, err := auth.SignHS256(s.jwtSecret, s.iss, s.aud, "fnbuilder-user", nil, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// runtimeFamily: what every function's /metrics has besides its own.
var runtimeFamily = regexp.MustCompile(`^(function_|go_|process_|promhttp_)`)

// metricOwners names the functions each PulseVault metric family belongs
// to. A family a function exports that is not its own (or not listed here)
// fails TestFunctionMetricsAreTheirOwn: dashboards sum by job.
var metricOwners = map[string][]string{
	"pulsevault_signed_urls_total":               {"sign-url"},
	"pulsevault_audit_appended_total":            {"audit-append"},
	"pulsevault_audit_chain_length":              {"audit-append"},
	"pulsevault_audit_append_seconds":            {"audit-append"},
	"pulsevault_audit_pending_messages":          {"audit-append"},
	"pulsevault_audit_dead_letters_total":        {"audit-append"},
	"pulsevault_audit_witness_failures_total":    {"audit-append"},
	"pulsevault_transcode_seconds":               {"transcode"},
	"pulsevault_transcode_failures_total":        {"transcode"},
	"pulsevault_time_to_playable_seconds":        {"transcode"},
	"pulsevault_transcode_cpu_seconds_total":     {"transcode"},
	"pulsevault_original_shadowed_total":         {"transcode"},
	"pulsevault_uploads_completed_total":         {"upload-finalize"},
	"pulsevault_upload_bytes_total":              {"upload-finalize"},
	"pulsevault_uploads_rejected_total":          {"upload-finalize"},
	"pulsevault_finalize_seconds":                {"upload-finalize"},
	"pulsevault_finalize_event_mismatches_total": {"upload-finalize"},
	"pulsevault_loopback_refused_total":          {"upload-finalize", "transcode"},
	"pulsevault_catalog_undecodable_total":       {"videos"},
	"media_bytes_served_total":                   {"media"},
	"media_forbidden_total":                      {"media"},
	"media_playlist_fetches_total":               {"media"},
	"media_offloaded_total":                      {"media"},
	"media_refusals_unaudited_total":             {"media"},
}

// foreignFamilies lists the families of fams that fn has no business
// exporting: another function's, or one nobody owns.
func foreignFamilies(fn string, fams []string) []string {
	var bad []string
	for _, f := range fams {
		if runtimeFamily.MatchString(f) {
			continue
		}
		if !slices.Contains(metricOwners[f], fn) {
			bad = append(bad, f)
		}
	}
	sort.Strings(bad)
	return bad
}

// Every function of the binary, built on a real stack (one request each),
// exports its own metric families plus the runtime's and nothing else —
// before this, `pulsevault fn echo` served pulsevault_signed_urls_total
// and every other package-level metric of the binary.
func TestFunctionMetricsAreTheirOwn(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the real stack: NATS and versitygw")
	}
	bin := buildPulsevault(t)
	out, err := exec.Command(bin, "fn", "-h").CombinedOutput()
	m := regexp.MustCompile(`Functions: (.+)`).FindSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("fn -h: %v\n%s", err, out)
	}
	names := strings.Split(strings.TrimSpace(string(m[1])), ", ")
	if len(names) < 9 {
		t.Fatalf("fn -h lists %v", names)
	}
	s := startFnStack(t, true)
	// Families every function must show once built (counters and gauges
	// without labels are exported at zero).
	own := map[string][]string{
		"sign-url":        {"pulsevault_signed_urls_total"},
		"audit-append":    {"pulsevault_audit_appended_total", "pulsevault_audit_chain_length", "pulsevault_audit_pending_messages"},
		"transcode":       {"pulsevault_time_to_playable_seconds", "pulsevault_loopback_refused_total"},
		"upload-finalize": {"pulsevault_uploads_completed_total", "pulsevault_upload_bytes_total", "pulsevault_loopback_refused_total"},
		"videos":          {"pulsevault_catalog_undecodable_total"},
		"media":           {"media_bytes_served_total", "media_playlist_fetches_total"},
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			p := startFn(t, bin, name, s.env)
			// One request builds the function (audit-append is built at start).
			code, body := p.do(t, http.MethodGet, "/", "", "Authorization", "Bearer "+s.token(t, time.Minute))
			if code == http.StatusServiceUnavailable && strings.Contains(body, "not configured") {
				t.Fatalf("%s did not build: %s\n%s", name, body, p.stderr.String())
			}
			fams := scrapeMetrics(t, p.url+"/metrics")
			var got []string
			for f := range fams {
				got = append(got, f)
			}
			if bad := foreignFamilies(name, got); len(bad) > 0 {
				t.Errorf("fn %s exports families that are not its own: %v", name, bad)
			}
			for _, want := range append(own[name], "function_requests_total", "go_goroutines", "process_cpu_seconds_total") {
				if fams[want] == nil {
					t.Errorf("fn %s lacks its family %s", name, want)
				}
			}
		})
	}
}

// A token 10 s past its exp is inside the one documented leeway
// (auth.Leeway) on upload as on sign-url; one past the leeway fails on
// both. Before, upload built its verifier without the leeway.
func TestJWTLeewaySameOnUploadAndSignURL(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the real stack: NATS and versitygw")
	}
	bin := buildPulsevault(t)
	s := startFnStack(t, true)
	up := startFn(t, bin, "upload", s.env)
	sign := startFn(t, bin, "sign-url", s.env)
	for _, tc := range []struct {
		name   string
		ttl    time.Duration
		passes bool
	}{{"10s past exp", -10 * time.Second, true}, {"past the leeway", -auth.Leeway - 10*time.Second, false}} {
		tok := s.token(t, tc.ttl)
		upCode, upBody := up.do(t, http.MethodPost, "/", "", "Authorization", "Bearer "+tok,
			"Tus-Resumable", "1.0.0", "Upload-Length", "10")
		// An unknown video: 404 once the token is accepted.
		signCode, signBody := sign.do(t, http.MethodPost, "/", `{"video":"`+uuid.NewString()+`"}`, "Authorization", "Bearer "+tok)
		if (upCode == http.StatusUnauthorized) != (signCode == http.StatusUnauthorized) {
			t.Errorf("%s: upload %d %q, sign-url %d %q: one accepts what the other refuses", tc.name, upCode, upBody, signCode, signBody)
		}
		if passes := upCode != http.StatusUnauthorized; passes != tc.passes {
			t.Errorf("%s: upload %d %q, want accepted=%v", tc.name, upCode, upBody, tc.passes)
		}
		if passes := signCode != http.StatusUnauthorized; passes != tc.passes {
			t.Errorf("%s: sign-url %d %q, want accepted=%v", tc.name, signCode, signBody, tc.passes)
		}
	}
}

// audit-append whose start failed (no signing seed yet) builds its writer
// on a later request; SIGTERM must still reach that writer, and the
// process waits for it to stop. Before, that writer ran under
// context.Background() and the process never waited for it.
func TestAuditAppendWriterStopsOnSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the real stack: NATS and versitygw")
	}
	bin := buildPulsevault(t)
	s := startFnStack(t, false)
	p := startFn(t, bin, "audit-append", s.env)
	if code, _ := p.do(t, http.MethodGet, "/", ""); code != http.StatusServiceUnavailable {
		t.Fatalf("audit-append without its seed: %d, want 503", code)
	}
	s.writeSecrets(t)
	time.Sleep(2100 * time.Millisecond) // past the retry pause of a failed start
	if code, body := p.do(t, http.MethodGet, "/", ""); code != http.StatusOK {
		t.Fatalf("audit-append after its seed appeared: %d %s\n%s", code, body, p.stderr.String())
	}
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(p.stderr.String(), "audit: appending events") {
		if time.Now().After(deadline) {
			t.Fatalf("the writer did not start:\n%s", p.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- p.cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("audit-append after SIGTERM: %v\n%s", err, p.stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("audit-append still running 20s after SIGTERM:\n%s", p.stderr.String())
	}
	logs := p.stderr.String()
	if !strings.Contains(logs, "background work stopped") || strings.Contains(logs, "did not stop") {
		t.Fatalf("the writer did not stop on SIGTERM (%s):\n%s", time.Since(start).Round(time.Millisecond), logs)
	}
	t.Logf("SIGTERM → writer stopped and process exited: %s", time.Since(start).Round(time.Millisecond))
}

// `pulsevault dev` reads the connector's settings as `pulsevault connector`
// does: a bad CONNECTOR_* value stops it with one line naming the variable,
// before anything starts. Before, dev never read them.
func TestDevReadsConnectorSettings(t *testing.T) {
	bin := buildPulsevault(t)
	for _, kv := range []string{"CONNECTOR_BACKOFF=soon", "CONNECTOR_MAX_DELIVER=0", "CONNECTOR_TIMEOUT=forever"} {
		cmd := exec.Command(bin, "dev")
		cmd.Env = append(os.Environ(), "PULSEVAULT_DATA_DIR="+t.TempDir(), "SECRETS_DIR="+t.TempDir(),
			"NATS_PORT=0", "S3_PORT=0", "GATEWAY_PORT=0", "PUBLIC_PORT=0", "STACK_FILE=../stack.yml", kv)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		var err error
		select {
		case err = <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Signal(syscall.SIGTERM)
			<-done
			t.Errorf("%s: dev started instead of refusing the setting", kv)
			continue
		}
		msg := strings.TrimSpace(stderr.String())
		name, _, _ := strings.Cut(kv, "=")
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(msg, name) || strings.Contains(msg, "\n") {
			t.Errorf("%s: want exit 2 and one line naming %s, got %v:\n%s", kv, name, err, msg)
		}
	}
}
