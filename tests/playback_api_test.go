package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/playback/grant"
	"github.com/mieweb/pulsevault/shared/playback/livestatus"
)

// signURLPolicy: who gets a signed URL for which video, and how a refusal looks.
func (r *playbackRun) signURLPolicy(t *testing.T) {
	s, gw, client, owner, body := r.s, r.gw, r.client, r.owner, r.body
	code, g, raw := signURL(t, client, gw+"/function/sign-url", owner, body)
	if code != 200 || !strings.HasPrefix(g.URL, "/media/") || !strings.HasSuffix(g.URL, "/videos/"+s.video+"/hls/master.m3u8") ||
		!strings.HasSuffix(g.DASH, "/dash/manifest.mpd") || !strings.HasSuffix(g.Poster, "/poster.jpg") {
		t.Fatalf("owner: %d %s", code, raw)
	}
	if ttl := time.Until(g.ExpiresAt); ttl <= 0 || ttl > 7*time.Second {
		t.Fatalf("expires_at %s is not within PLAYBACK_TTL (6s)", g.ExpiresAt)
	}
	if code, _, raw := signURL(t, client, gw+"/function/sign-url", s.jwt(t, "someone-else", grant.ViewerRole), body); code != 200 {
		t.Fatalf("viewer role: %d %s", code, raw)
	}
	// Forbidden and unknown are the same answer.
	c1, _, b1 := signURL(t, client, gw+"/function/sign-url", s.jwt(t, "someone-else"), body)
	c2, _, b2 := signURL(t, client, gw+"/function/sign-url", owner, fmt.Sprintf(`{"video":%q}`, uuid.NewString()))
	if c1 != 404 || c2 != 404 || b1 != b2 {
		t.Fatalf("forbidden %d %s / unknown %d %s", c1, b1, c2, b2)
	}
	if code, _, _ := signURL(t, client, gw+"/function/sign-url", "", body); code != 401 {
		t.Fatalf("no JWT: %d", code)
	}
	if code, _, _ := signURL(t, client, gw+"/function/sign-url", owner, `{"video":"../../x"}`); code != 400 {
		t.Fatalf("bad id: %d", code)
	}
	if code, _, _ := signURL(t, client, gw+"/function/sign-url", owner, strings.Repeat("x", 10000)); code != 400 {
		t.Fatalf("oversize body: %d", code)
	}
}

// videos: the listing is newest first, paged, only the caller's (all of them for an admin), with no PHI.
func (r *playbackRun) videos(t *testing.T) {
	ctx, s, gw, client, owner := r.ctx, r.s, r.gw, r.client, r.owner
	ms := meta.NewStore(s.st, s.bucket)
	var mine []string
	for i := range 3 {
		id := uuid.NewString()
		mine = append(mine, id)
		if err := ms.Create(ctx, &meta.Video{ID: id, Status: meta.Processing, Uploader: "uploader-1",
			Created: time.Now().Add(time.Duration(i+1) * time.Second), Client: map[string]string{"filename": phiName}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := ms.Create(ctx, &meta.Video{ID: uuid.NewString(), Status: meta.Ready, Uploader: "uploader-2"}); err != nil {
		t.Fatal(err)
	}
	list := func(jwt, query string) (int, struct {
		Videos []struct {
			ID, Status, Poster string
			Width, Height      int
			Duration           float64
		}
		Next string
	}, string) {
		req, _ := http.NewRequest(http.MethodGet, gw+"/function/videos/"+query, nil)
		req.Header.Set("Authorization", "Bearer "+jwt)
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		var out struct {
			Videos []struct {
				ID, Status, Poster string
				Width, Height      int
				Duration           float64
			}
			Next string
		}
		_ = json.Unmarshal(b, &out)
		return res.StatusCode, out, string(b)
	}
	// Newest first, two per page, only the caller's.
	var got []string
	cursor := ""
	for page := 0; ; page++ {
		code, l, raw := list(owner, "?limit=2"+cursor)
		if code != 200 || strings.Contains(raw, "Jane") {
			t.Fatalf("page %d: %d %s", page, code, raw)
		}
		for _, v := range l.Videos {
			got = append(got, v.ID)
			if v.ID == s.video && (v.Poster == "" || v.Width != 360 || v.Duration != 5 || v.Status != "ready") {
				t.Errorf("ready video item: %+v", v)
			}
			if v.ID != s.video && v.Poster != "" {
				t.Errorf("poster signed for a video still processing: %+v", v)
			}
		}
		if l.Next == "" {
			break
		}
		cursor = "&cursor=" + l.Next
	}
	want := []string{mine[2], mine[1], mine[0], s.video}
	if !slices.Equal(got, want) {
		t.Fatalf("owner's listing %v, want %v", got, want)
	}
	if code, l, _ := list(s.jwt(t, "stranger"), ""); code != 200 || len(l.Videos) != 0 {
		t.Errorf("stranger sees %d videos (%d)", len(l.Videos), code)
	}
	if code, l, _ := list(s.jwt(t, "auditor", grant.AdminRole), ""); code != 200 || len(l.Videos) != 5 {
		t.Errorf("admin sees %d videos (%d)", len(l.Videos), code)
	}
	if code, _, _ := list(s.jwt(t, "stranger"), s.video); code != 404 {
		t.Errorf("stranger GET one: %d", code)
	}
	if code, _, raw := list(owner, s.video); code != 200 || !strings.Contains(raw, `"poster":"/media/`) {
		t.Errorf("owner GET one: %d %s", code, raw)
	}
	if code, _, _ := list(owner, "?cursor=%21%21"); code != 400 {
		t.Errorf("bad cursor: %d", code)
	}
}

// events: the live status stream is unbuffered and carries only the caller's videos.
func (r *playbackRun) events(t *testing.T) {
	ctx, s, gw, pub, pubClient, owner := r.ctx, r.s, r.gw, r.pub, r.pubClient, r.owner
	for _, via := range []struct {
		url string
		c   *http.Client
	}{{gw + "/function/events", &http.Client{}}, {pub.URL + "/api/events", pubClient}} {
		sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
		req, _ := http.NewRequestWithContext(sctx, http.MethodGet, via.url, nil)
		req.Header.Set("Authorization", "Bearer "+owner)
		req.Header.Set("Accept", "text/event-stream")
		c := *via.c
		c.Timeout = 0
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("%s: %d %v", via.url, res.StatusCode, res.Header)
		}
		lines := make(chan string, 16)
		go func() {
			defer close(lines)
			buf := make([]byte, 4096)
			var acc string
			for {
				n, err := res.Body.Read(buf)
				acc += string(buf[:n])
				for {
					i := strings.Index(acc, "\n\n")
					if i < 0 {
						break
					}
					lines <- acc[:i]
					acc = acc[i+2:]
				}
				if err != nil {
					return
				}
			}
		}()
		// The first event arrives before anything else is written: the
		// stream is not buffered by the gateway or the router.
		if first := <-lines; !strings.Contains(first, ": connected") {
			t.Fatalf("%s: first event %q", via.url, first)
		}
		other := uuid.NewString()
		if err := livestatus.Publish(ctx, s.pnats, &meta.Video{ID: other, Status: meta.Ready, Uploader: "uploader-2"}); err != nil {
			t.Fatal(err)
		}
		if err := livestatus.Publish(ctx, s.pnats, &meta.Video{ID: s.video, Status: meta.Complete, Uploader: "uploader-1"}); err != nil {
			t.Fatal(err)
		}
		ev, ok := <-lines
		want := fmt.Sprintf(`event: status
data: {"status":"complete","video":%q}`, s.video)
		if !ok || ev != want {
			t.Fatalf("%s: event %q, want %q", via.url, ev, want)
		}
		scancel()
		res.Body.Close()
	}
}
