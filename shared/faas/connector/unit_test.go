package connector

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseTopics(t *testing.T) {
	for _, tc := range []struct {
		in              string
		topics, invalid []string
	}{
		{"", nil, nil},
		{" , ,, ", nil, nil},
		{"pulse.s3.events", []string{"pulse.s3.events"}, nil},
		{" a.b ,\tc.* ,, d.> , a.b", []string{"a.b", "c.*", "d.>"}, nil},
		{"a b, a..b, .a, a., a.>.b, a.b*, >x, a\x00b, ok", []string{"ok"}, []string{"a b", "a..b", ".a", "a.", "a.>.b", "a.b*", ">x", "a\x00b"}},
		{">", []string{">"}, nil},
	} {
		topics, invalid := ParseTopics(tc.in)
		if !slices.Equal(topics, tc.topics) || !slices.Equal(invalid, tc.invalid) {
			t.Errorf("ParseTopics(%q) = %q, %q; want %q, %q", tc.in, topics, invalid, tc.topics, tc.invalid)
		}
	}
}

func TestSubjectMatches(t *testing.T) {
	for _, tc := range []struct {
		pattern, subject string
		want             bool
	}{
		{"pulse.dlq.>", "pulse.dlq.f", true},
		{"pulse.>", "pulse.dlq.f", true},
		{"pulse.*.f", "pulse.dlq.f", true},
		{"pulse.*", "pulse.dlq.f", false},
		{"pulse.dlq.f.>", "pulse.dlq.f", false},
		{"pulse.dlq.g", "pulse.dlq.f", false},
		{">", "a", true},
		{"a.b", "a.b", true},
		{"a.b", "a.b.c", false},
	} {
		if got := subjectMatches(tc.pattern, tc.subject); got != tc.want {
			t.Errorf("subjectMatches(%q, %q) = %v", tc.pattern, tc.subject, got)
		}
	}
}

func TestDurableName(t *testing.T) {
	a := DurableName("transcode", "pulse.jobs.transcode.>")
	if a != DurableName("transcode", "pulse.jobs.transcode.>") {
		t.Fatal("not deterministic")
	}
	if !strings.HasPrefix(a, "fn-transcode-") || len(a) != len("fn-transcode-")+8 {
		t.Errorf("DurableName = %q", a)
	}
	if strings.ContainsAny(a, ".*> \t/\\") {
		t.Errorf("DurableName %q is not a valid consumer name", a)
	}
	if a == DurableName("transcode", "pulse.jobs.transcode.*") || a == DurableName("transcod", "pulse.jobs.transcode.>") {
		t.Error("different pairs share a durable")
	}
}

func TestFunctionNames(t *testing.T) {
	for name, want := range map[string]bool{
		"upload-finalize": true, "audit_append": true, "a": true, "A1": true,
		"": false, "-x": false, "a.b": false, "a/b": false, "a b": false, "a*": false, "a>": false,
		strings.Repeat("x", 64): false,
	} {
		if got := validFunctionName(name); got != want {
			t.Errorf("validFunctionName(%q) = %v", name, got)
		}
	}
}

func TestPermanentCodes(t *testing.T) {
	for code, want := range map[int]bool{400: true, 410: true, 413: true, 415: true, 422: true,
		401: false, 403: false, 404: false, 408: false, 409: false, 429: false, 500: false, 501: false, 503: false} {
		if permanent(code) != want {
			t.Errorf("permanent(%d) = %v", code, !want)
		}
	}
}

func TestLooksJSON(t *testing.T) {
	for in, want := range map[string]bool{`{"a":1}`: true, " \n[1,2]": true, `"str"`: false, `{bad`: false, ``: false, `12`: false} {
		if looksJSON([]byte(in)) != want {
			t.Errorf("looksJSON(%q) = %v", in, !want)
		}
	}
}

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestLoadConfig(t *testing.T) {
	c, err := LoadConfig(env(map[string]string{"GATEWAY_PASSWORD": "pw"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Gateway != "http://127.0.0.1:8080" || c.User != "admin" || c.Password != "pw" || c.Refresh != 5*time.Second ||
		c.MaxDeliver != 5 || c.Timeout != 10*time.Minute || c.Concurrency != 1 || c.MetricsAddr != "127.0.0.1:8081" ||
		!slices.Equal(c.Backoff, []time.Duration{time.Second, 5 * time.Second, 30 * time.Second}) {
		t.Errorf("defaults: %+v", c)
	}

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, PasswordFile), []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err = LoadConfig(env(map[string]string{"SECRETS_DIR": dir, "CONNECTOR_REFRESH": "250ms",
		"CONNECTOR_BACKOFF": "100ms, 2s", "CONNECTOR_MAX_DELIVER": "9", "GATEWAY_URL": "https://gw.example:8443/"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Password != "from-file" || c.Refresh != 250*time.Millisecond || c.MaxDeliver != 9 ||
		!slices.Equal(c.Backoff, []time.Duration{100 * time.Millisecond, 2 * time.Second}) {
		t.Errorf("from env: %+v", c)
	}

	if _, err := LoadConfig(env(map[string]string{"SECRETS_DIR": t.TempDir()})); err == nil ||
		!strings.Contains(err.Error(), "GATEWAY_PASSWORD") {
		t.Errorf("missing password: %v", err)
	}
	for k, v := range map[string]string{
		"GATEWAY_URL":            "127.0.0.1:8080",
		"CONNECTOR_REFRESH":      "5",
		"CONNECTOR_MAX_DELIVER":  "0",
		"CONNECTOR_BACKOFF":      "1s,,2s",
		"CONNECTOR_TIMEOUT":      "-1m",
		"CONNECTOR_CONCURRENCY":  "lots",
		"CONNECTOR_METRICS_ADDR": "8081",
	} {
		_, err := LoadConfig(env(map[string]string{"GATEWAY_PASSWORD": "pw", k: v}))
		if err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("%s=%q: error %v should name the variable", k, v, err)
		}
	}
}
