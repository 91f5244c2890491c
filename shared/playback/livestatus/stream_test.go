package livestatus_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mieweb/pulsevault/shared/auth"
	"github.com/mieweb/pulsevault/shared/playback/livestatus"
)

// The stream refuses other methods and callers without a valid token
// before it subscribes to anything (NATS is nil here).
func TestStreamRefusesBeforeSubscribing(t *testing.T) {
	ver, err := auth.New(auth.Options{HS256Secret: []byte("stream-test-jwt-secret-0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	s := &livestatus.Stream{Verifier: ver, MaxStream: time.Minute, Log: slog.New(slog.DiscardHandler)}
	for _, tc := range []struct {
		method, authz string
		want          int
	}{
		{http.MethodPost, "", http.StatusMethodNotAllowed},
		{http.MethodGet, "", http.StatusUnauthorized},
		{http.MethodGet, "Bearer not-a-jwt", http.StatusUnauthorized},
	} {
		r := httptest.NewRequest(tc.method, "/", nil)
		if tc.authz != "" {
			r.Header.Set("Authorization", tc.authz)
		}
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		if w.Code != tc.want || w.Header().Get("Content-Type") == "text/event-stream" {
			t.Errorf("%s %q: %d %s, want %d", tc.method, tc.authz, w.Code, w.Header().Get("Content-Type"), tc.want)
		}
	}
}

func TestLoadMaxStream(t *testing.T) {
	if d, err := livestatus.LoadMaxStream(func(string) string { return "" }); err != nil || d != 5*time.Minute {
		t.Fatalf("default: %s %v", d, err)
	}
	if d, err := livestatus.LoadMaxStream(func(string) string { return "30s" }); err != nil || d != 30*time.Second {
		t.Fatalf("30s: %s %v", d, err)
	}
	for _, bad := range []string{"5s", "2h", "soon"} {
		if _, err := livestatus.LoadMaxStream(func(string) string { return bad }); err == nil || !strings.Contains(err.Error(), "EVENTS_MAX_STREAM") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
