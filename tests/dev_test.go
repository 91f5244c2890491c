// Package tests holds end-to-end tests that run the real pulsevault binary
// and the real parts of the stack.
package tests

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mieweb/pulsevault/shared/testutil/testenv"
	"github.com/mieweb/pulsevault/shared/testutil/tier"
)

// buildPulsevault compiles the command once per test binary.
func buildPulsevault(t *testing.T) string {
	t.Helper()
	tier.Integration(t, "a built pulsevault")
	bin := filepath.Join(t.TempDir(), "pulsevault")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/mieweb/pulsevault/cmd/pulsevault").CombinedOutput()
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// descendants lists the pids whose parent chain leads to pid.
func descendants(pid int) []int {
	parent := map[int]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// Field 4 follows the ")" closing the command name.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) > 1 {
			pp, _ := strconv.Atoi(f[1])
			parent[p] = pp
		}
	}
	var out []int
	for p := range parent {
		for q := parent[p]; q > 1; q = parent[q] {
			if q == pid {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

func TestDevStartsAndStopsCleanly(t *testing.T) {
	bin := buildPulsevault(t)
	data := t.TempDir()
	cmd := exec.Command(bin, "dev", "--data-dir", data, "--nats-port", "0", "--s3-port", "0", "--gateway-port", "0", "--public-port", "0", "--stack-file", "../stack.yml")
	proc := testenv.StartProc(t, cmd, testenv.ProcOptions{Name: "dev", Ready: 60 * time.Second, Grace: time.Second})
	banner, stderr := proc.Banner, proc.Stderr
	s3, s3line, gateway := proc.Value("S3"), proc.Line("S3"), proc.Value("gateway")
	if gateway == "" {
		t.Fatalf("banner lacks the gateway:\n%s", strings.Join(banner, "\n"))
	}
	// The local store's secret is generated, kept 0600 in the data dir, and
	// the banner names the file, never the value (issue 15, finding 8).
	secretFile := filepath.Join(data, "secrets", "pulsevault-s3-secret-key")
	if !strings.Contains(s3line, "secret in "+secretFile) {
		t.Errorf("banner S3 line %q does not name the secret file %s", s3line, secretFile)
	}
	if fi, err := os.Stat(secretFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("S3 secret file: %v %v, want mode 0600", fi, err)
	} else if b, _ := os.ReadFile(secretFile); len(b) < 32 || strings.Contains(strings.Join(banner, "\n")+stderr.String(), string(b)) {
		t.Errorf("S3 secret of %d bytes, or printed", len(b))
	}
	// stack.yml's functions are deployed and reachable through the public origin, which
	// checks the caller: sign-url without a token is refused.
	public := proc.Value("public")
	resp, err := http.Post(public+"/api/sign-url", "application/json", strings.NewReader(`{"video":"00000000-0000-0000-0000-000000000000"}`))
	if err != nil {
		t.Fatalf("public origin %q: %v", public, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("sign-url without a token through the public origin: %d, want 401", resp.StatusCode)
	}
	// The Pulse protocol is on the same origin: capabilities without credential, and the
	// function's keys and S3 user are set up by dev (a pairing needs a sign-in).
	resp, err = http.Get(public + "/pulsevault/capabilities")
	if err != nil {
		t.Fatal(err)
	}
	caps, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Protocol-Version") != "2" || !strings.Contains(string(caps), `"uploadUnit":"merged"`) {
		t.Fatalf("GET /pulsevault/capabilities through dev's origin: %d %s", resp.StatusCode, caps)
	}
	if resp, err = http.Post(public+"/api/pairings", "application/json", nil); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("POST /api/pairings without sign-in: %v %v, want 401", resp, err)
	}
	resp.Body.Close()
	resp, err = http.Get(s3 + "/health")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("S3 health: %v %v", err, resp)
	}
	resp.Body.Close()

	kids := descendants(cmd.Process.Pid)
	if len(kids) < 9 {
		t.Fatalf("dev has %d child processes; want versitygw and a replica per function", len(kids))
	}
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-proc.Done():
		if err := proc.Err(); err != nil {
			t.Fatalf("dev exited with %v; stderr:\n%s", err, stderr.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("dev did not stop within 5s of SIGTERM")
	}
	t.Logf("stopped in %s", time.Since(start).Round(time.Millisecond))
	for _, k := range kids {
		if syscall.Kill(k, 0) == nil {
			t.Errorf("child pid %d survived", k)
		}
	}
}

func TestBadConfigExitsWithOneLine(t *testing.T) {
	bin := buildPulsevault(t)
	cases := []struct {
		args []string
		env  string
		want string
	}{
		{[]string{"dev", "--s3-endpoint", "::bad"}, "", "S3_ENDPOINT"},
		{[]string{"dev"}, "S3_ENDPOINT=::bad", "S3_ENDPOINT"},
		{[]string{"dev"}, "MEDIA_RETENTION_DAYS=-1", "MEDIA_RETENTION_DAYS"},
		{[]string{"dev", "--nats-port", "x"}, "", "NATS_PORT"},
		{[]string{"frobnicate"}, "", "unknown command"},
		// No well-known S3 secret outside the local store (issue 15, finding 8).
		{[]string{"bootstrap", "--nats-url", "nats://127.0.0.1:1", "--s3-endpoint", "http://127.0.0.1:1"}, "", "S3_SECRET_KEY"},
		{[]string{"dev", "--s3-endpoint", "http://127.0.0.1:1", "--stack-file", "../stack.yml"}, "", "S3_SECRET_KEY"},
	}
	for _, tc := range cases {
		cmd := exec.Command(bin, tc.args...)
		cmd.Env = append(os.Environ(), "PULSEVAULT_DATA_DIR="+t.TempDir(), "SECRETS_DIR="+t.TempDir())
		if tc.env != "" {
			cmd.Env = append(cmd.Env, tc.env)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 2 {
			t.Errorf("%v %s: want exit 2, got %v", tc.args, tc.env, err)
			continue
		}
		// The last line is the error; usage text may precede it for unknown commands.
		msg := strings.TrimSpace(stderr.String())
		last := msg[strings.LastIndexByte(msg, '\n')+1:]
		if !strings.Contains(last, tc.want) {
			t.Errorf("%v %s: last stderr line %q lacks %q", tc.args, tc.env, last, tc.want)
		}
		if tc.want != "unknown command" && strings.Contains(msg, "\n") {
			t.Errorf("%v %s: want one line, got:\n%s", tc.args, tc.env, msg)
		}
	}
}
