package logging

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/mieweb/pulsevault/shared/platform/tracing"
)

func TestRedactsSensitiveAttributes(t *testing.T) {
	var buf bytes.Buffer
	log := New(&buf, "debug", "test")
	log.Info("upload created",
		"filename", "jane-doe-wound.mp4",
		"PatientName", "Jane Doe",
		"upload", map[string]string{"k": "v"},
		"authorization", "Bearer abc.def.ghi",
		"video", "0b9c4f5e-8d1a-4c55-9a43-1d2f0f7e6a11",
		"function_name", "upload",
	)
	log.WithGroup("meta").Info("nested", "title", "Jane's gait test")
	log.Info("err", "err", errors.New("boom"))
	out := buf.String()
	for _, leak := range []string{"jane-doe", "Jane Doe", "abc.def.ghi", "gait test"} {
		if strings.Contains(out, leak) {
			t.Errorf("log leaks %q:\n%s", leak, out)
		}
	}
	for _, keep := range []string{"0b9c4f5e-8d1a-4c55-9a43-1d2f0f7e6a11", `"function_name":"upload"`, `"component":"test"`, "boom"} {
		if !strings.Contains(out, keep) {
			t.Errorf("log lost %q:\n%s", keep, out)
		}
	}
}

func TestParseLevel(t *testing.T) {
	if ParseLevel("warn").String() != "WARN" || ParseLevel("bogus").String() != "INFO" {
		t.Fatal("ParseLevel")
	}
}

func TestRequestAttributesFromContext(t *testing.T) {
	var buf bytes.Buffer
	log := New(&buf, "info", "test")
	ctx := tracing.WithRequestID(context.Background(), "req-123")
	log.InfoContext(ctx, "with context")
	log.Info("without context")
	tagged := With(ctx, log).With("k", "v")
	tagged.Info("tagged")
	tagged.InfoContext(ctx, "tagged with context")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("want 4 lines, got:\n%s", buf.String())
	}
	for i, want := range []int{1, 0, 1, 1} {
		if n := strings.Count(lines[i], `"request_id":"req-123"`); n != want {
			t.Errorf("line %d has request_id %d times, want %d: %s", i, n, want, lines[i])
		}
	}
	if With(context.Background(), log) != log {
		t.Error("With without request attributes should return the logger itself")
	}
}
