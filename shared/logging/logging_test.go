package logging

import (
	"bytes"
	"errors"
	"strings"
	"testing"
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
