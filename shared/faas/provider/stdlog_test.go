package provider

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestStdLogWriterCutsURLs(t *testing.T) {
	var buf bytes.Buffer
	w := stdLogWriter{slog.New(slog.NewJSONHandler(&buf, nil))}
	w.Write([]byte("error with proxy request to: http://127.0.0.1:4000/media/TOKEN123/videos/x?id=42, Get \"http://127.0.0.1:4000/media/TOKEN123?id=42\": EOF\n"))
	out := buf.String()
	if strings.Contains(out, "TOKEN123") || strings.Contains(out, "id=42") || !strings.Contains(out, "http://127.0.0.1:4000/…") {
		t.Fatalf("not redacted: %s", out)
	}
}

func TestNames(t *testing.T) {
	for _, ok := range []string{"echo", "upload-finalize", "a", "a1", strings.Repeat("a", 63)} {
		if err := checkFunctionName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "Echo", "a/b", "..", ".", "-a", "a-", "a_b", "a.b", strings.Repeat("a", 64), "a\x00"} {
		if checkFunctionName(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	for _, bad := range []string{"", "../x", "a/b", "a..b", ".a", "A"} {
		if checkSecretName(bad) == nil {
			t.Errorf("secret %q accepted", bad)
		}
	}
	if name, ns, err := splitFunction("echo.openfaas-fn"); err != nil || name != "echo" || ns != "openfaas-fn" {
		t.Errorf("split: %q %q %v", name, ns, err)
	}
	if _, _, err := splitFunction("echo.other"); err == nil {
		t.Error("other namespace accepted")
	}
}
