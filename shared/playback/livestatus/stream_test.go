package livestatus_test

import (
	"bufio"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/mieweb/pulsevault/shared/auth"
	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/playback/grant"
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

// Each caller's stream carries the changes of its own videos only; a
// second user with a valid token of their own sees none of the first's.
func TestStreamShowsOnlyTheCallersVideos(t *testing.T) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	t.Cleanup(ns.Shutdown)
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("embedded NATS not ready")
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	key := []byte("stream-test-jwt-secret-0123456789abcdef")
	ver, _ := auth.New(auth.Options{HS256Secret: key})
	pol, err := grant.LoadSettings(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(&livestatus.Stream{NATS: nc, Verifier: ver, Policy: pol, MaxStream: 20 * time.Second, Log: slog.New(slog.DiscardHandler)})
	t.Cleanup(srv.Close) // after the streams' bodies are closed (cleanups run last first)
	open := func(sub string) chan string {
		tok, _ := auth.SignHS256(key, "", "", sub, nil, time.Minute)
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Accept", "text/event-stream")
		res, err := http.DefaultClient.Do(req)
		if err != nil || res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("%s: %v %v", sub, res, err)
		}
		t.Cleanup(func() { res.Body.Close() })
		lines := make(chan string, 64)
		go func() {
			sc := bufio.NewScanner(res.Body)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		for l := range lines { // subscribed once the stream says so
			if l == ": connected" {
				break
			}
		}
		return lines
	}
	u1, u2 := open("u1"), open("u2")
	v1 := &meta.Video{ID: "3f2b8c1e-5d4a-4e6b-9c7d-0a1b2c3d4e5f", Uploader: "u1", Status: meta.Ready}
	v2 := &meta.Video{ID: "0c9a6a1e-2b3c-4d5e-8f90-1a2b3c4d5e6f", Uploader: "u2", Status: meta.Complete}
	for _, v := range []*meta.Video{v1, v2} {
		if err := livestatus.PublishConn(context.Background(), nc, v); err != nil {
			t.Fatal(err)
		}
	}
	next := func(lines chan string) string {
		for {
			select {
			case l := <-lines:
				if strings.HasPrefix(l, "data: ") {
					return l
				}
			case <-time.After(5 * time.Second):
				return ""
			}
		}
	}
	if got := next(u1); !strings.Contains(got, v1.ID) || strings.Contains(got, "u1") {
		t.Errorf("u1's first event: %q", got)
	}
	if got := next(u2); !strings.Contains(got, v2.ID) {
		t.Errorf("u2's first event: %q", got)
	}
	// Nothing else arrives: each saw the other's change filtered out.
	select {
	case l := <-u1:
		if strings.HasPrefix(l, "data: ") {
			t.Errorf("u1 got another event: %q", l)
		}
	case <-time.After(300 * time.Millisecond):
	}
}
