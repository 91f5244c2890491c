package tests

import (
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/openfaas/faas-provider/types"

	"github.com/mieweb/pulsevault/shared/audit/record"
)

// A real playback (sign-url, media, audit-append on a real provider,
// NATS and versitygw): `audit who-watched VIDEO` lists the grant and each
// access with the person it was granted to, a refused request with that
// grant included; `audit what-watched USER` lists the same from the
// person's side, and another user's name lists none of it.
func TestAuditWhoWatched(t *testing.T) {
	s := startPlayback(t, "60s")
	gw := s.p.url
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = byte(i * 3)
	}
	s.secret(http.MethodPost, record.SecretName, base64.StdEncoding.EncodeToString(seed))
	dep := types.FunctionDeployment{Service: "audit-append", Image: "pulsevault-audit-append:dev",
		Secrets: []string{record.SecretName}, EnvVars: map[string]string{"AUDIT_BATCH_WAIT": "20ms"}}
	if code, _, body := s.p.do(http.MethodPost, "/system/functions", dep, true); code != http.StatusAccepted {
		t.Fatalf("deploy audit-append: %d %s", code, body)
	}
	client := &http.Client{Timeout: 30 * time.Second}
	code, g, raw := signURL(t, client, gw+"/function/sign-url", s.jwt(t, "uploader-1"), fmt.Sprintf(`{"video":%q}`, s.video))
	if code != 200 {
		t.Fatalf("sign-url: %d %s", code, raw)
	}
	direct := gw + "/function/media" + strings.TrimPrefix(g.URL, "/media")
	if code, _, _ := get(t, client, direct); code != 200 {
		t.Fatalf("master playlist: %d", code)
	}
	// The same grant used for another video: refused, and audited with it.
	other := strings.Replace(direct, s.video, uuid.NewString(), 1)
	if code, _, _ := get(t, client, other); code != http.StatusForbidden {
		t.Fatalf("out-of-scope request: %d", code)
	}
	// Start the writer (it starts on its first request) and wait for the log.
	_, _, _ = s.p.do(http.MethodGet, "/function/audit-append", nil, false)
	bin := buildPulsevault(t)
	run := func(args ...string) string {
		out, err := exec.Command(bin, append([]string{"audit"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("audit %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	var who string
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, _, _ = s.p.do(http.MethodGet, "/function/audit-append", nil, false)
		who = run("who-watched", s.video)
		if strings.Contains(who, "access.denied") && strings.Contains(who, "media.accessed") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("who-watched after 60s:\n%s", who)
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Logf("who-watched:\n%s", who)
	for _, line := range strings.Split(strings.TrimSpace(who), "\n")[1:] {
		if !strings.Contains(line, "uploader-1") {
			t.Errorf("a line names no person: %s", line)
		}
	}
	for _, want := range []string{"url.signed", "media.accessed", "access.denied", "out-of-scope"} {
		if !strings.Contains(who, want) {
			t.Errorf("who-watched lacks %s", want)
		}
	}
	what := run("what-watched", "uploader-1")
	if !strings.Contains(what, s.video) || !strings.Contains(what, "access.denied") {
		t.Errorf("what-watched uploader-1:\n%s", what)
	}
	if none := run("what-watched", "someone-else"); len(strings.Split(strings.TrimSpace(none), "\n")) != 1 {
		t.Errorf("what-watched of another user lists rows:\n%s", none)
	}
}
