package tests

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Every audit flag is in its subcommand's -h, and the key formats round-trip:
// keygen's secret → pubkey --from-secret prints the verifier key keygen
// printed, which --public-key accepts (a wrong one is refused).
func TestAuditCLIFlagsAndKeyFormats(t *testing.T) {
	bin := buildPulsevault(t)
	for sub, flags := range map[string][]string{
		"verify":      {"-from-dir", "-public-key", "-witness-key", "-witness-quorum", "-witnessed", "S3_ENDPOINT"},
		"prove":       {"-from-dir", "-public-key"},
		"check-proof": {"-public-key"},
		"pubkey":      {"-from-dir", "-from-secret", "-origin"},
		"keygen":      {"-origin"},
	} {
		out, err := exec.Command(bin, "audit", sub, "-h").CombinedOutput()
		if err != nil {
			t.Fatalf("audit %s -h: %v\n%s", sub, err, out)
		}
		for _, f := range flags {
			if !bytes.Contains(out, []byte(f)) {
				t.Errorf("audit %s -h does not list %s:\n%s", sub, f, out)
			}
		}
	}
	for _, f := range []string{"-key", "-state", "-log-key", "-listen"} {
		if out, _ := exec.Command(bin, "witness", "serve", "-h").CombinedOutput(); !bytes.Contains(out, []byte(f)) {
			t.Errorf("witness serve -h does not list %s:\n%s", f, out)
		}
	}
	cmd := exec.Command(bin, "audit", "keygen", "--origin", "audit.example.org/log")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(t.TempDir(), "secret")
	_ = os.WriteFile(secret, stdout.Bytes(), 0o600)
	_, vkey, _ := strings.Cut(strings.TrimSpace(stderr.String()), ": ")
	out, err := exec.Command(bin, "audit", "pubkey", "--from-secret", secret, "--origin", "audit.example.org/log").Output()
	if err != nil || strings.TrimSpace(string(out)) != vkey || !strings.HasPrefix(vkey, "audit.example.org/log+") {
		t.Fatalf("pubkey --from-secret %q (%v), keygen printed %q", out, err, vkey)
	}
	dir := t.TempDir()
	if out, err := exec.Command(bin, "audit", "verify", "--from-dir", dir, "--public-key", vkey).CombinedOutput(); err != nil || !bytes.Contains(out, []byte("RESULT: OK")) {
		t.Fatalf("--public-key with pubkey's output: %v\n%s", err, out)
	}
	bad := vkey[:len(vkey)-3] + "AAA"
	if out, err := exec.Command(bin, "audit", "verify", "--from-dir", dir, "--public-key", bad).CombinedOutput(); err == nil {
		t.Fatalf("a corrupted key was accepted:\n%s", out)
	}
}
