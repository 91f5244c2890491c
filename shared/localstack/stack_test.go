package localstack

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/mieweb/pulsevault/shared/platform/config"
	"github.com/mieweb/pulsevault/shared/storage"
	"github.com/mieweb/pulsevault/shared/testutil/tier"
)

// Regression (issue 15, finding 8): without S3_SECRET_KEY the local store
// gets a secret generated on first start, kept 0600 in the data dir and
// reused by the next start, never a well-known one.
func TestGeneratedS3Secret(t *testing.T) {
	tier.Integration(t, "versitygw")
	dir := t.TempDir()
	cfg, err := config.Load("t", []string{"--data-dir", dir, "--nats-port", "0", "--s3-port", "0"},
		func(k string) string { return map[string]string{"SECRETS_DIR": t.TempDir()}[k] })
	if err != nil {
		t.Fatal(err)
	}
	start := func() *Stack {
		st, err := Start(context.Background(), cfg, slog.New(slog.DiscardHandler))
		if err != nil {
			b, _ := os.ReadFile(filepath.Join(dir, "logs", "versitygw.log"))
			t.Fatalf("start: %v\n%s", err, b)
		}
		return st
	}
	st := start()
	first := st.Config.S3SecretKey
	if len(first) < 32 || first == "pulsevault-dev-secret" {
		t.Fatalf("secret %q: want a generated one", first)
	}
	file := filepath.Join(dir, "secrets", "pulsevault-s3-secret-key")
	fi, err := os.Stat(file)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret file: %v %v, want mode 0600", fi, err)
	}
	if b, _ := os.ReadFile(file); string(b) != first {
		t.Fatal("the secret file does not hold the secret in use")
	}
	s3, err := storage.FromConfig(st.Config)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s3.EnsureBucket(context.Background(), "kept-bucket", false); err != nil {
		t.Fatalf("the store refuses its generated secret: %v", err)
	}
	st.Stop()

	st = start()
	defer st.Stop()
	if st.Config.S3SecretKey != first {
		t.Fatal("a restart generated another secret")
	}
	if s3, err = storage.FromConfig(st.Config); err != nil {
		t.Fatal(err)
	}
	if created, err := s3.EnsureBucket(context.Background(), "kept-bucket", false); err != nil || created {
		t.Fatalf("after a restart: created %v, %v", created, err)
	}
}
