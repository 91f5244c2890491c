package catalog_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mieweb/pulsevault/shared/audit/event"
	"github.com/mieweb/pulsevault/shared/auth"
	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/playback/catalog"
	"github.com/mieweb/pulsevault/shared/playback/grant"
	"github.com/mieweb/pulsevault/shared/playback/token"
)

type metaByID map[string]*meta.Video

func (m metaByID) Get(_ context.Context, id string) (*meta.Video, string, error) {
	if v := m[id]; v != nil {
		return v, `"e"`, nil
	}
	return nil, "", meta.ErrNotFound
}

const feedVideo = "3f2b8c1e-5d4a-4e6b-9c7d-0a1b2c3d4e5f"

var feedKey = []byte("feed-test-jwt-secret-0123456789abcdefgh")

// The one-video route of the feed (GET /<id>), without a store: visibility,
// the signed and audited poster, and the answers that must not differ.
func TestFeedOneVideo(t *testing.T) {
	ver, err := auth.New(auth.Options{HS256Secret: feedKey})
	if err != nil {
		t.Fatal(err)
	}
	line, _ := token.GenerateKeyLine("k1")
	ring, _ := token.ParseKeys([]byte(line))
	pol, err := grant.LoadSettings(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	var audited atomic.Int32
	var auditDown atomic.Bool
	f := &catalog.Feed{
		Meta: metaByID{feedVideo: {ID: feedVideo, Uploader: "u1", Status: meta.Ready, Created: time.Now(),
			Client: map[string]string{"filename": "jane-doe.mp4"}, Probe: &meta.Probe{Width: 360, Height: 640, Duration: 2}}},
		Verifier: ver, Keys: func() (*token.Keyring, error) { return ring, nil }, Policy: pol, Now: time.Now,
		Audit: func(_ context.Context, e event.Event) error {
			if auditDown.Load() {
				return errors.New("nats down")
			}
			if e.Action == event.URLSigned && e.Reason == catalog.ReasonPoster && e.Object == feedVideo {
				audited.Add(1)
			}
			return nil
		},
		Log: slog.New(slog.DiscardHandler),
	}
	get := func(method, path, sub string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, path, nil)
		if sub != "" {
			tok, _ := auth.SignHS256(feedKey, "", "", sub, nil, time.Minute)
			r.Header.Set("Authorization", "Bearer "+tok)
		}
		w := httptest.NewRecorder()
		f.ServeHTTP(w, r)
		return w
	}
	if w := get(http.MethodPost, "/"+feedVideo, "u1"); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", w.Code)
	}
	if w := get(http.MethodGet, "/"+feedVideo, ""); w.Code != http.StatusUnauthorized {
		t.Errorf("no token: %d", w.Code)
	}
	w := get(http.MethodGet, "/"+feedVideo, "u1")
	var it catalog.Item
	if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &it) != nil || it.ID != feedVideo || it.Width != 360 ||
		!strings.Contains(it.Poster, "/videos/"+feedVideo+"/poster") || audited.Load() != 1 {
		t.Fatalf("owner: %d %s (audited %d)", w.Code, w.Body, audited.Load())
	}
	if strings.Contains(w.Body.String(), "jane") || w.Header().Get("Cache-Control") != "private, no-store" {
		t.Errorf("client metadata or caching: %s %v", w.Body, w.Header())
	}
	// A second user, an unknown id and a malformed id: the same 404.
	other := get(http.MethodGet, "/"+feedVideo, "u2")
	unknown := get(http.MethodGet, "/11111111-2222-4333-8444-555555555555", "u1")
	bad := get(http.MethodGet, "/not-an-id", "u1")
	if other.Code != 404 || unknown.Code != 404 || bad.Code != 404 || other.Body.String() != unknown.Body.String() || bad.Body.String() != unknown.Body.String() {
		t.Errorf("second user %d %q, unknown %d %q, malformed %d %q", other.Code, other.Body, unknown.Code, unknown.Body, bad.Code, bad.Body)
	}
	// No poster whose grant went unaudited.
	auditDown.Store(true)
	w = get(http.MethodGet, "/"+feedVideo, "u1")
	if w.Code != http.StatusOK || strings.Contains(w.Body.String(), "poster") {
		t.Errorf("audit down: %d %s", w.Code, w.Body)
	}
	if _, err := catalog.LoadRescan(func(string) string { return "5s" }); err == nil || !strings.Contains(err.Error(), "VIDEOS_RESCAN") {
		t.Errorf("VIDEOS_RESCAN=5s: %v", err)
	}
}
