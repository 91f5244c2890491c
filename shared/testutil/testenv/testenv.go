// Package testenv starts the real local stack parts (embedded NATS with
// JetStream and a supervised versitygw) on free loopback ports for
// integration tests, and tears them down when the test ends.
package testenv

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/mieweb/pulsevault/shared/localstack"
	"github.com/mieweb/pulsevault/shared/platform/config"
	"github.com/mieweb/pulsevault/shared/testutil/tier"
)

// Env is a running NATS + S3 pair and the configuration that points at it.
type Env = localstack.Stack

// testGetenv is the environment the test stack's configuration sees:
// nothing but AUTH_HS256, the scripts' token mode the end-to-end tests
// switch on (tests/authmode_test.go), so that cfg.Env() hands it to the
// functions they start.
func testGetenv(k string) string {
	if k == "AUTH_HS256" {
		return os.Getenv(k)
	}
	return ""
}

// Start brings up NATS and versitygw for t. Every test gets its own data
// dir and ports, so tests run in parallel and beside a running `make dev`.
// Under -short (the unit tier) it skips t: versitygw is a program `make
// tools` builds.
func Start(t testing.TB) *Env {
	t.Helper()
	tier.Integration(t, "versitygw")
	dir := t.TempDir()
	cfg, err := config.Load("testenv", []string{
		"--data-dir", dir, "--nats-port", "0", "--s3-port", "0",
		"--media-retention-days", "1", "--audit-retention-days", "1",
	}, testGetenv)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	st, err := localstack.Start(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		b, _ := os.ReadFile(filepath.Join(dir, "logs", "versitygw.log"))
		t.Fatalf("testenv: %v\nversitygw log:\n%s", err, b)
	}
	t.Cleanup(st.Stop)
	return st
}
