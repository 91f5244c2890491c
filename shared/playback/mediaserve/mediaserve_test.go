package mediaserve

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/mieweb/pulsevault/shared/audit/event"
	"github.com/mieweb/pulsevault/shared/playback/token"
	"github.com/mieweb/pulsevault/shared/storage"
	"github.com/mieweb/pulsevault/shared/testutil/testenv"
	"github.com/mieweb/pulsevault/shared/topology"
)

// TestOffload runs against the real S3 server: a front proxy's offload
// header gets an X-Accel-Redirect whose presigned path and query fetch the
// object (and its ranges) from the store; everything the header must not
// change (refusals, HEAD, several ranges, a prefix that is not a plain
// path) is served as without it.
func TestOffload(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := testenv.Start(t)
	c := env.Config
	st, err := storage.FromConfig(c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.EnsureBucket(ctx, c.MediaBucket, false); err != nil {
		t.Fatal(err)
	}
	video := "0b4cffe1-eb47-5e4c-9ddd-f20af676546f"
	seg := topology.VideoPrefix(video) + "hls/360p/seg_00001.m4s"
	payload := []byte("fMP4 segment bytes, 0123456789")
	if _, err := st.PutBytes(ctx, c.MediaBucket, seg, payload, storage.PutOptions{ContentType: "video/iso.segment"}); err != nil {
		t.Fatal(err)
	}
	line, err := token.GenerateKeyLine("k1")
	if err != nil {
		t.Fatal(err)
	}
	ring, err := token.ParseKeys([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := ring.Sign(video, topology.VideoPrefix(video), time.Now().Add(time.Minute), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	accessed := 0
	s := NewServer(&Server{Store: st, Bucket: c.MediaBucket, Keys: func() (*token.Keyring, error) { return ring, nil },
		Audit: func(_ context.Context, e event.Event) error {
			mu.Lock()
			defer mu.Unlock()
			if e.Action == event.MediaAccessed {
				accessed++
			}
			return nil
		}})
	do := func(method, p string, hdr ...string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, p, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			r.Header.Set(hdr[i], hdr[i+1])
		}
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		return w
	}
	const prefix = "/_pulsevault_s3/"

	w := do(http.MethodGet, "/"+tok+"/"+seg, topology.HeaderOffload, prefix, "Range", "bytes=5-11")
	redirect := w.Header().Get("X-Accel-Redirect")
	if w.Code != http.StatusOK || w.Body.Len() != 0 || !strings.HasPrefix(redirect, prefix+c.MediaBucket+"/"+seg+"?") {
		t.Fatalf("offload answer: %d %q body %q", w.Code, redirect, w.Body.String())
	}
	// What the proxy does: GET the store with the client's Range.
	req, _ := http.NewRequest(http.MethodGet, c.S3Endpoint+"/"+strings.TrimPrefix(redirect, prefix), nil)
	req.Header.Set("Range", "bytes=5-11")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusPartialContent || string(b) != string(payload[5:12]) {
		t.Fatalf("store answered the redirect %d %q", res.StatusCode, b)
	}
	if n := testCounter(t, s.metrics.offloaded); n != 1 {
		t.Errorf("media_offloaded_total %v, want 1", n)
	}

	// Served as without the header.
	for name, c := range map[string]struct {
		method string
		hdr    []string
		code   int
	}{
		"forged token":     {http.MethodGet, []string{topology.HeaderOffload, prefix}, http.StatusForbidden},
		"HEAD":             {http.MethodHead, []string{topology.HeaderOffload, prefix}, http.StatusOK},
		"several ranges":   {http.MethodGet, []string{topology.HeaderOffload, prefix, "Range", "bytes=0-1,4-5"}, http.StatusOK},
		"relative prefix":  {http.MethodGet, []string{topology.HeaderOffload, "_pulsevault_s3/"}, http.StatusOK},
		"prefix with host": {http.MethodGet, []string{topology.HeaderOffload, "http://evil/"}, http.StatusOK},
		"prefix with ..":   {http.MethodGet, []string{topology.HeaderOffload, "/a/../b/"}, http.StatusOK},
		"prefix with ?":    {http.MethodGet, []string{topology.HeaderOffload, "/a?/"}, http.StatusOK},
	} {
		p := "/" + tok + "/" + seg
		if name == "forged token" {
			p = "/" + tok + "x/" + seg
		}
		w := do(c.method, p, c.hdr...)
		if w.Code != c.code || w.Header().Get("X-Accel-Redirect") != "" {
			t.Errorf("%s: %d %q, want %d and no redirect", name, w.Code, w.Header().Get("X-Accel-Redirect"), c.code)
		}
		if c.code == http.StatusOK && c.method == http.MethodGet && w.Body.String() != string(payload) {
			t.Errorf("%s: body %q, want the object", name, w.Body.String())
		}
	}
	if n := testCounter(t, s.metrics.offloaded); n != 1 {
		t.Errorf("media_offloaded_total %v after the refusals, want 1", n)
	}

	// A playlist is audited before it is offloaded.
	pl := topology.VideoPrefix(video) + "hls/master.m3u8"
	if _, err := st.PutBytes(ctx, c.MediaBucket, pl, []byte("#EXTM3U\n"), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if w := do(http.MethodGet, "/"+tok+"/"+pl, topology.HeaderOffload, prefix); w.Code != 200 || w.Header().Get("X-Accel-Redirect") == "" || accessed != 1 {
		t.Errorf("playlist: %d, %d media.accessed events", w.Code, accessed)
	}
}

func testCounter(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// Every refusal is audited with its reason (and, for a genuine token used
// out of its scope, the video and the grant id), within the bound: a flood
// of forged tokens writes at most RefusalAuditBurst records and then one
// with the count of the rest.
func TestRefusalsAuditedWithinBound(t *testing.T) {
	line, _ := token.GenerateKeyLine("k1")
	ring, _ := token.ParseKeys([]byte(line))
	video, grant := "0b4cffe1-eb47-5e4c-9ddd-f20af676546f", "6f1d3c2b-0a9e-4b8c-8d7e-1f2a3b4c5d6e"
	tok, err := ring.SignKeyGrant(video, topology.VideoPrefix(video)+"poster.jpg", grant, time.Now().Add(time.Minute), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []event.Event
	s := NewServer(&Server{Keys: func() (*token.Keyring, error) { return ring, nil },
		Audit: func(_ context.Context, e event.Event) error { mu.Lock(); got = append(got, e); mu.Unlock(); return nil }})
	wait := func(n int) []event.Event {
		deadline := time.Now().Add(5 * time.Second)
		for {
			mu.Lock()
			out := append([]event.Event(nil), got...)
			mu.Unlock()
			if len(out) >= n || time.Now().After(deadline) {
				return out
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/"+tok+"/"+topology.VideoPrefix(video)+"hls/master.m3u8", nil))
	evs := wait(1)
	if w.Code != http.StatusForbidden || len(evs) != 1 || evs[0].Action != event.AccessDenied || evs[0].Grant != grant ||
		evs[0].Object != video || evs[0].Reason != string(token.OutOfScope) || evs[0].Outcome != event.Denied {
		t.Fatalf("out-of-scope refusal: %d %+v", w.Code, evs)
	}
	const flood = 400
	for i := range flood {
		w := httptest.NewRecorder()
		s.ServeHTTP(w, httptest.NewRequest(http.MethodGet, fmt.Sprintf("/forged%d/videos/%s/hls/master.m3u8", i, video), nil))
		if w.Code != http.StatusForbidden {
			t.Fatalf("forged token: %d", w.Code)
		}
	}
	time.Sleep(200 * time.Millisecond) // a few tokens refill; then one more refusal carries the count
	w = httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/forged/videos/"+video+"/hls/master.m3u8", nil))
	evs = wait(0)
	time.Sleep(100 * time.Millisecond)
	evs = wait(0)
	suppressed := ""
	for _, e := range evs[1:] {
		if e.Grant != "" || (e.Object != "" && e.Object != video) {
			t.Fatalf("a forged token's refusal names a grant or video: %+v", e)
		}
		if strings.HasPrefix(e.Reason, "suppressed-") {
			suppressed = e.Reason
		}
	}
	if len(evs) > 1+RefusalAuditBurst+10 || suppressed == "" || testCounter(t, s.metrics.unaudited) < flood-RefusalAuditBurst-10 {
		t.Fatalf("%d refusal records for %d refusals, suppressed %q", len(evs), flood+2, suppressed)
	}
	t.Logf("%d refusals → %d audit records (%s)", flood+2, len(evs), suppressed)
}
