package tests

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mieweb/pulsevault/shared/playback/origin"
	"github.com/mieweb/pulsevault/shared/topology"
)

// TestHTTPDetails holds the small HTTP faults outside clients found
// (issue 23, item 5), through the gateway and the public origin with the
// store offload that `make dev` runs.
func TestHTTPDetails(t *testing.T) {
	s := startPlayback(t, "1m")
	gw := s.p.url
	h, err := origin.Handler(origin.Options{GatewayURL: gw, Store: s.s3})
	if err != nil {
		t.Fatal(err)
	}
	pub := httptest.NewServer(h)
	defer pub.Close()
	noRedirect := &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	owner := s.jwt(t, "uploader-1")
	code, g, raw := signURL(t, noRedirect, pub.URL+"/api/sign-url", owner, fmt.Sprintf(`{"video":%q}`, s.video))
	if code != 200 {
		t.Fatalf("sign: %d %s", code, raw)
	}
	base := strings.TrimSuffix(g.URL, "hls/master.m3u8") // /media/<token>/videos/<id>/
	tok := strings.SplitN(strings.TrimPrefix(g.URL, "/media/"), "/", 2)[0]

	t.Run("416 names the size", func(t *testing.T) {
		key := "hls/360p/seg_000.m4s"
		n := len(s.hlsFiles[topology.VideoPrefix(s.video)+key])
		for name, url := range map[string]string{
			"public origin (offloaded to the store)": pub.URL + base + key,
			"gateway (the function's own bytes)":     gw + "/function" + base + key,
		} {
			for _, rng := range []string{fmt.Sprintf("bytes=%d-", n), fmt.Sprintf("bytes=%d-%d", n+5, n+10)} {
				c, hdr, _ := get(t, noRedirect, url, "Range", rng)
				if c != http.StatusRequestedRangeNotSatisfiable || hdr.Get("Content-Range") != fmt.Sprintf("bytes */%d", n) {
					t.Errorf("%s, %s: %d Content-Range %q, want 416 %q", name, rng, c, hdr.Get("Content-Range"), fmt.Sprintf("bytes */%d", n))
				}
			}
		}
	})

	t.Run("no internal path in any answer", func(t *testing.T) {
		other := "00000000-0000-4000-8000-000000000000"
		for _, p := range []string{
			"/media/" + tok + "/videos/" + other + "/../" + s.video + "/hls/master.m3u8",
			"/media/" + tok + "/videos/" + s.video + "/hls/./master.m3u8",
			"/media/" + tok + "/videos/" + s.video + "//hls/master.m3u8",
			"/media/" + tok + "/videos/" + s.video + "/hls/360p/../master.m3u8",
			"/api/videos/../videos",
			"/api/videos//" + s.video,
			"/api/upload/./x",
			"/media/./" + tok + "/videos/" + s.video + "/hls/master.m3u8",
		} {
			for name, url := range map[string]string{"public origin": pub.URL + p, "gateway": gw + "/function" + strings.TrimPrefix(strings.TrimPrefix(p, "/api"), "")} {
				req, _ := http.NewRequest(http.MethodGet, url, nil)
				req.Header.Set("Authorization", "Bearer "+owner)
				res, err := noRedirect.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if res.StatusCode/100 == 3 {
					t.Errorf("%s %s: %d redirect to %q", name, p, res.StatusCode, res.Header.Get("Location"))
				}
				if name == "public origin" && res.StatusCode/100 == 2 {
					t.Errorf("%s %s: %d, an unclean path must be refused", name, p, res.StatusCode)
				}
				if name == "public origin" {
					for k, vs := range res.Header {
						for _, v := range vs {
							if strings.Contains(v, "/function/") || strings.Contains(v, "/_/") {
								t.Errorf("%s %s: header %s: %q names an internal path", name, p, k, v)
							}
						}
					}
					if strings.Contains(string(b), "/function/") {
						t.Errorf("%s %s: body names an internal path: %q", name, p, b)
					}
				}
			}
		}
	})

	t.Run("events without Accept", func(t *testing.T) {
		// curl and most HTTP libraries send "Accept: */*" or nothing; the
		// stream must still flow instead of being buffered by the gateway.
		for _, accept := range []string{"", "*/*", "application/json"} {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, pub.URL+"/api/events", nil)
			req.Header.Set("Authorization", "Bearer "+owner)
			if accept != "" {
				req.Header.Set("Accept", accept)
			}
			res, err := (&http.Client{}).Do(req)
			if err != nil {
				cancel()
				t.Fatalf("Accept %q: %v", accept, err)
			}
			first := make(chan string, 1)
			go func() {
				buf := make([]byte, 256)
				n, _ := res.Body.Read(buf)
				first <- string(buf[:n])
			}()
			select {
			case got := <-first:
				if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" || !strings.Contains(got, "connected") {
					t.Errorf("Accept %q: %d %s, first bytes %q", accept, res.StatusCode, res.Header.Get("Content-Type"), got)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("Accept %q: no event within 10 s (the stream is buffered)", accept)
			}
			res.Body.Close()
			cancel()
		}
	})
}
