package grant

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mieweb/pulsevault/shared/audit/event"
	"github.com/mieweb/pulsevault/shared/auth"
	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/playback/token"
)

// fakeMeta is meta.json by id; err, when set, is every read's answer.
type fakeMeta struct {
	videos map[string]*meta.Video
	err    error
}

func (f *fakeMeta) Get(_ context.Context, id string) (*meta.Video, string, error) {
	if f.err != nil {
		return nil, "", f.err
	}
	if v := f.videos[id]; v != nil {
		return v, `"etag"`, nil
	}
	return nil, "", meta.ErrNotFound
}

type auditLog struct {
	mu   sync.Mutex
	evs  []event.Event
	fail bool
}

func (a *auditLog) publish(_ context.Context, e event.Event) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.fail {
		return errors.New("nats down")
	}
	a.evs = append(a.evs, e)
	return nil
}

func (a *auditLog) actions() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, e := range a.evs {
		out = append(out, e.Action+":"+e.Actor+":"+e.Outcome)
	}
	return out
}

const (
	ownID     = "3f2b8c1e-5d4a-4e6b-9c7d-0a1b2c3d4e5f"
	pendingID = "0c9a6a1e-2b3c-4d5e-8f90-1a2b3c4d5e6f"
)

var jwtKey = []byte("grant-test-jwt-secret-0123456789abcdef")

func signServer(t *testing.T) (*SignServer, *fakeMeta, *auditLog) {
	t.Helper()
	ver, err := auth.New(auth.Options{HS256Secret: jwtKey})
	if err != nil {
		t.Fatal(err)
	}
	line, _ := token.GenerateKeyLine("k1")
	ring, err := token.ParseKeys([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	pol, err := LoadSettings(env())
	if err != nil {
		t.Fatal(err)
	}
	m := &fakeMeta{videos: map[string]*meta.Video{
		ownID:     {ID: ownID, Uploader: "u1", Status: meta.Ready},
		pendingID: {ID: pendingID, Uploader: "u1", Status: meta.Processing},
	}}
	a := &auditLog{}
	s := NewSignServer(&SignServer{Meta: m, Verifier: ver, Keys: func() (*token.Keyring, error) { return ring, nil },
		Policy: pol, Audit: a.publish})
	return s, m, a
}

func bearer(t *testing.T, sub string, roles ...string) string {
	t.Helper()
	tok, err := auth.SignHS256(jwtKey, "", "", sub, roles, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return "Bearer " + tok
}

func sign(s http.Handler, method, authz, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, "/", strings.NewReader(body))
	if authz != "" {
		r.Header.Set("Authorization", authz)
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return w
}

func TestSignServer(t *testing.T) {
	s, _, a := signServer(t)
	u1, u2 := bearer(t, "u1"), bearer(t, "u2")
	body := func(id string) string { return `{"video":"` + id + `"}` }

	if w := sign(s, http.MethodGet, u1, ""); w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "POST" {
		t.Errorf("GET: %d", w.Code)
	}
	if w := sign(s, http.MethodPost, "", body(ownID)); w.Code != http.StatusUnauthorized {
		t.Errorf("no token: %d", w.Code)
	}
	for _, b := range []string{`{"video":1}`, `{"video":"x","extra":1}`, `{"video":"` + strings.ToUpper(ownID) + `"}`, strings.Repeat(" ", 5<<10) + body(ownID)} {
		if w := sign(s, http.MethodPost, u1, b); w.Code != http.StatusBadRequest {
			t.Errorf("body %.40q: %d", b, w.Code)
		}
	}
	// Another user gets exactly what an unknown id gets, and both are audited as denied.
	other := sign(s, http.MethodPost, u2, body(ownID))
	unknown := sign(s, http.MethodPost, u1, body("11111111-2222-4333-8444-555555555555"))
	if other.Code != http.StatusNotFound || unknown.Code != http.StatusNotFound || other.Body.String() != unknown.Body.String() {
		t.Errorf("second user %d %q, unknown id %d %q", other.Code, other.Body, unknown.Code, unknown.Body)
	}
	if w := sign(s, http.MethodPost, u1, body(pendingID)); w.Code != http.StatusConflict {
		t.Errorf("not playable yet: %d", w.Code)
	}
	// A viewer role sees every video.
	if w := sign(s, http.MethodPost, bearer(t, "u3", ViewerRole), body(ownID)); w.Code != http.StatusOK {
		t.Errorf("viewer: %d %s", w.Code, w.Body)
	}
	w := sign(s, http.MethodPost, u1, body(ownID))
	var g Grant
	if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &g) != nil || !strings.Contains(g.URL, "/videos/"+ownID+"/") ||
		w.Header().Get("Cache-Control") != "no-store" || time.Until(g.ExpiresAt) > 300*time.Second {
		t.Fatalf("owner: %d %s", w.Code, w.Body)
	}
	want := []string{"access.denied:u2:denied", "access.denied:u1:denied", "url.signed:u3:success", "url.signed:u1:success"}
	if got := a.actions(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("audit: %v, want %v", got, want)
	}
	if n := testutil.ToFloat64(s.signed); n != 2 {
		t.Errorf("pulsevault_signed_urls_total = %v, want 2", n)
	}
}

// A grant that cannot be audited is not given; a store failure is 502.
func TestSignServerFailures(t *testing.T) {
	s, m, a := signServer(t)
	a.fail = true
	if w := sign(s, http.MethodPost, bearer(t, "u1"), `{"video":"`+ownID+`"}`); w.Code != http.StatusServiceUnavailable || strings.Contains(w.Body.String(), "url") {
		t.Errorf("audit down: %d %s", w.Code, w.Body)
	}
	if n := testutil.ToFloat64(s.signed); n != 0 {
		t.Errorf("an unaudited grant was counted: %v", n)
	}
	m.err = errors.New("s3 down")
	if w := sign(s, http.MethodPost, bearer(t, "u1"), `{"video":"`+ownID+`"}`); w.Code != http.StatusBadGateway {
		t.Errorf("store down: %d", w.Code)
	}
}
