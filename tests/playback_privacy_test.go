package tests

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// audit: signing and refusals are audited, with no PHI in the events.
func (r *playbackRun) audit(t *testing.T) {
	s := r.s
	if s.audit.waitCount("url.signed", 3) < 3 || s.audit.waitCount("access.denied", 2) < 2 {
		t.Errorf("audit events: %v", s.audit.all())
	}
	for _, e := range s.audit.all() {
		if strings.Contains(e, "Jane") || strings.Contains(e, "4471923") {
			t.Errorf("audit event carries PHI: %s", e)
		}
	}
}

// noPHI: no PHI, token or JWT in logs, URLs, headers, metrics or the router's access lines.
func (r *playbackRun) noPHI(t *testing.T) {
	s, gw, client, rec, owner, g, g2, base, tok := r.s, r.gw, r.client, r.rec, r.owner, r.g, r.g2, r.base, r.tok
	var everything bytes.Buffer
	everything.WriteString(s.p.stdout.String())
	everything.WriteString(s.p.stderr.String())
	logs, _ := filepath.Glob(filepath.Join(s.p.data, "logs", "functions", "*.log"))
	if len(logs) < 2 {
		t.Fatalf("function logs: %v", logs)
	}
	for _, f := range logs {
		b, _ := os.ReadFile(f)
		everything.Write(b)
	}
	logText := everything.String()
	for _, u := range []string{g.URL, g.DASH, g.Poster, g2.URL} {
		everything.WriteString(u + "\n")
	}
	for _, l := range rec.lines() {
		everything.WriteString(l + "\n")
	}
	_, h, _ := get(t, client, base+"hls/master.m3u8")
	for k, v := range h {
		fmt.Fprintf(&everything, "%s: %s\n", k, v)
	}
	for _, m := range []string{gw + "/metrics", gw + "/function/media/_/metrics"} {
		_, _, b := get(t, client, m)
		everything.Write(b)
	}
	_, _, mb := get(t, client, gw+"/function/media/_/metrics")
	if !bytes.Contains(mb, []byte(`media_forbidden_total{reason="out-of-scope"}`)) || !bytes.Contains(mb, []byte("media_bytes_served_total")) {
		t.Errorf("media metrics:\n%s", mb)
	}
	if !strings.Contains(everything.String(), `"component":"fn/media"`) {
		t.Errorf("the function logs were not collected")
	}
	for _, phi := range []string{phiName, "Jane_Doe", "MRN-4471923", "1961-03-02"} {
		if i := strings.Index(everything.String(), phi); i >= 0 {
			t.Errorf("PHI %q found: …%s…", phi, everything.String()[max(0, i-200):min(everything.Len(), i+100)])
		}
	}
	// Tokens and JWTs are not logged either.
	if strings.Contains(logText, tok) || strings.Contains(logText, owner) {
		t.Errorf("a token reached a log")
	}
}
