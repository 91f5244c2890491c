package stackfile

import (
	"strings"
	"testing"
)

func TestRepositoryStackYML(t *testing.T) {
	env := map[string]string{"TAG": "1.2.3", "NATS_URL": "nats://127.0.0.1:4999"}
	s, err := ReadFile("../../../stack.yml", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if s.Provider.Name != "openfaas" || s.Provider.Gateway != "http://127.0.0.1:8080" {
		t.Fatalf("provider: %+v", s.Provider)
	}
	byName := map[string]bool{}
	for _, d := range s.Deployments() {
		byName[d.Service] = true
		if !strings.HasSuffix(d.Image, ":1.2.3") {
			t.Errorf("%s: image %q does not carry TAG", d.Service, d.Image)
		}
		if d.EnvVars["NATS_URL"] != "nats://127.0.0.1:4999" {
			t.Errorf("%s: NATS_URL not substituted: %q", d.Service, d.EnvVars["NATS_URL"])
		}
	}
	for _, want := range []string{"upload", "upload-finalize", "transcode", "sign-url", "media", "audit-append"} {
		if !byName[want] {
			t.Errorf("stack.yml lacks %s", want)
		}
	}
	// audit-append consumes PULSE_AUDIT itself (batching), so it has no topic.
	topics := map[string]string{"upload-finalize": "pulse.s3.events", "transcode": "pulse.jobs.transcode", "audit-append": ""}
	for fn, topic := range topics {
		if got := s.Functions[fn].Annotations["topic"]; got != topic {
			t.Errorf("%s topic = %q, want %q", fn, got, topic)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, bad := range []string{"", "functions: {}", "functions:\n  a:\n    lang: x\n", "functions: [", "x: ${A:=}"} {
		if _, err := Parse([]byte(bad), func(string) string { return "" }); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}
