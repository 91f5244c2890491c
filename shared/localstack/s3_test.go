package localstack_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/mieweb/pulsevault/shared/localstack"
	"github.com/mieweb/pulsevault/shared/testutil/tier"
)

func healthy(endpoint string) bool {
	resp, err := http.Get(endpoint + "/health")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

// start runs versitygw with its NATS for one test; the caller stops it.
func start(t *testing.T) *localstack.S3 {
	t.Helper()
	tier.Integration(t, "versitygw")
	bin, err := localstack.FindBinary("versitygw")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ns, err := localstack.StartNATS(localstack.NATSOptions{StoreDir: filepath.Join(dir, "nats")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	s, err := localstack.StartS3(context.Background(), localstack.S3Options{
		Binary: bin, DataDir: filepath.Join(dir, "s3"), AccessKey: "test", SecretKey: "testsecret",
		Region: "us-east-1", NATSURL: ns.URL(), EventSubject: "t.events",
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A killed versitygw is restarted on the same endpoint, and Stop leaves no process behind.
func TestRestartAndStop(t *testing.T) {
	s := start(t)
	first := s.PID()
	if !healthy(s.Endpoint()) {
		t.Fatal("not healthy after Start")
	}
	if argv, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", first)); err != nil || bytes.Contains(argv, []byte("testsecret")) {
		t.Fatalf("the S3 secret is on versitygw's command line (readable by every local user): %q %v", argv, err)
	}
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && (s.PID() == first || !healthy(s.Endpoint())) {
		time.Sleep(50 * time.Millisecond)
	}
	second := s.PID()
	if second == first || !healthy(s.Endpoint()) {
		t.Fatalf("not restarted: pid %d → %d, healthy %v", first, second, healthy(s.Endpoint()))
	}
	s.Stop(3 * time.Second)
	time.Sleep(100 * time.Millisecond)
	if alive(second) {
		// A zombie would still answer kill(0); Stop reaps, so this is a real survivor.
		t.Fatalf("versitygw pid %d survived Stop", second)
	}
	if healthy(s.Endpoint()) {
		t.Fatal("endpoint still answers after Stop")
	}
}

// Connections to the store are reused: without keep-alive every S3 call
// costs a handshake and a TIME_WAIT socket, and a few hundred calls a
// second exhaust the ephemeral ports.
func TestKeepsConnectionsAlive(t *testing.T) {
	s := start(t)
	defer s.Stop(3 * time.Second)
	client := &http.Client{Transport: &http.Transport{}}
	reused := 0
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		GotConn: func(i httptrace.GotConnInfo) {
			if i.Reused {
				reused++
			}
		}})
	for range 5 {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.Endpoint()+"/health", nil)
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	if reused != 4 {
		t.Fatalf("5 sequential requests reused a connection %d times, want 4", reused)
	}
}

func TestStartFailsClearlyWithoutNATS(t *testing.T) {
	tier.Integration(t, "versitygw")
	bin, err := localstack.FindBinary("versitygw")
	if err != nil {
		t.Fatal(err)
	}
	_, err = localstack.StartS3(context.Background(), localstack.S3Options{
		Binary: bin, DataDir: t.TempDir(), AccessKey: "test", SecretKey: "testsecret",
		Region: "us-east-1", NATSURL: "nats://127.0.0.1:1", EventSubject: "t.events",
	})
	if err == nil {
		t.Fatal("started although NATS is down")
	}
	t.Log(err)
}
