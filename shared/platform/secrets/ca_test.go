package secrets_test

import (
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mieweb/pulsevault/shared/platform/secrets"
)

// A function whose secrets hold pulsevault-ca reaches a TLS server whose
// certificate that CA signed, as a function reaches MinIO over https; with
// only a placeholder there it does not (the system roots do not know the
// CA). Each case runs in a child process: Go reads the roots once.
func TestTrustCA(t *testing.T) {
	if url := os.Getenv("TRUSTCA_URL"); url != "" {
		if _, err := secrets.TrustCA(); err != nil {
			t.Fatal(err)
		}
		res, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return
	}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	run := func(content []byte) (string, error) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, secrets.CAName), content, 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(os.Args[0], "-test.run=^TestTrustCA$", "-test.count=1")
		cmd.Env = append(os.Environ(), "TRUSTCA_URL="+srv.URL, secrets.EnvDir+"="+dir, "SSL_CERT_FILE=")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := run(ca); err != nil {
		t.Fatalf("with the CA in pulsevault-ca: %v\n%s", err, out)
	}
	out, err := run([]byte("# no private CA\n"))
	if err == nil || !strings.Contains(out, "certificate") {
		t.Fatalf("with a placeholder, the private server must be refused: %v\n%s", err, out)
	}
}
