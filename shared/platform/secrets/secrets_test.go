package secrets_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mieweb/pulsevault/shared/platform/secrets"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(secrets.EnvDir, dir)
	if err := os.WriteFile(filepath.Join(dir, "jwt-key"), []byte("k3y-value\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := secrets.Read("jwt-key"); err != nil || string(b) != "k3y-value\n" {
		t.Fatalf("Read: %q %v", b, err)
	}
	if s, err := secrets.ReadString("jwt-key"); err != nil || s != "k3y-value" {
		t.Fatalf("ReadString: %q %v", s, err)
	}
	_, err := secrets.Read("hmac-key")
	if err == nil || !strings.Contains(err.Error(), `"hmac-key"`) || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "SECRETS_DIR") {
		t.Fatalf("missing secret: %v", err)
	}
	for _, bad := range []string{"", ".", "..", "../jwt-key", "a/b", `a\b`} {
		if _, err := secrets.Read(bad); err == nil || strings.Contains(err.Error(), "k3y") {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if err := os.Chmod(filepath.Join(dir, "jwt-key"), 0); err == nil && os.Geteuid() != 0 {
		if _, err := secrets.Read("jwt-key"); err == nil || strings.Contains(err.Error(), "k3y") {
			t.Errorf("unreadable secret: %v", err)
		}
	}
}

func TestDefaultDir(t *testing.T) {
	t.Setenv(secrets.EnvDir, "")
	if secrets.Dir() != "/var/openfaas/secrets/" {
		t.Fatal(secrets.Dir())
	}
}

func TestEnsure(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	v, created, err := secrets.Ensure(dir, "s3-key", secrets.Random(32))
	if err != nil || !created || len(v) != 43 {
		t.Fatalf("first Ensure: %q %v %v", v, created, err)
	}
	for p, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, "s3-key"): 0o600} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: %v %v, want %v", p, fi, err, want)
		}
	}
	again, created, err := secrets.Ensure(dir, "s3-key", func() (string, error) { t.Fatal("generated again"); return "", nil })
	if err != nil || created || again != v {
		t.Fatalf("second Ensure: %q %v %v, want the first value", again, created, err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("left behind %v", ents)
	}
}
