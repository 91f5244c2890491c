package tests

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/openfaas/faas-provider/types"

	"github.com/mieweb/pulsevault/shared/audit/event"
	"github.com/mieweb/pulsevault/shared/audit/record"
	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/playback/grant"
	"github.com/mieweb/pulsevault/shared/playback/origin"
	"github.com/mieweb/pulsevault/shared/storage"
	"github.com/mieweb/pulsevault/shared/topology"
)

// TestFeedPosterTokenGrantsOnlyThePoster is the feed attack through the
// public origin: a second user lists the feed (GET /api/videos?limit=100),
// takes the poster URL of a video and swaps poster.jpg for the master
// playlist, the DASH manifest, the original, meta.json, a longer key, or
// another video's poster. The poster token grants the poster alone, so
// every swap is refused (403), and every poster the feed hands out is a
// grant recorded in the locked audit log (audit-append running), with the
// user and the video.
func TestFeedPosterTokenGrantsOnlyThePoster(t *testing.T) {
	s := startPlayback(t, "300s")
	ctx := t.Context()
	gw := s.p.url

	seed := make([]byte, 32)
	_, _ = rand.Read(seed)
	s.secret(http.MethodPost, record.SecretName, base64.StdEncoding.EncodeToString(seed))
	dep := types.FunctionDeployment{Service: "audit-append", Image: "pulsevault-audit-append:dev",
		Secrets: []string{record.SecretName}, EnvVars: map[string]string{"AUDIT_BATCH_WAIT": "50ms"}}
	if code, _, body := s.p.do(http.MethodPost, "/system/functions", dep, true); code != http.StatusAccepted {
		t.Fatalf("deploy audit-append: %d %s", code, body)
	}
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		if code, _, _ := s.p.do(http.MethodGet, "/function/audit-append", nil, false); code == http.StatusOK {
			break // its writer runs from its first request on
		}
		if time.Now().After(deadline) {
			t.Fatal("audit-append did not answer within 2 min")
		}
	}

	// Another patient's video, playable, with its own poster.
	other := uuid.NewString()
	ret := storage.Compliance(1)
	if _, err := s.st.PutBytes(ctx, s.bucket, topology.VideoPrefix(other)+"poster.jpg", []byte("other patient's poster"),
		storage.PutOptions{ContentType: "image/jpeg", Retention: &ret}); err != nil {
		t.Fatal(err)
	}
	if err := meta.NewStore(s.st, s.bucket).Create(ctx, &meta.Video{ID: other, Status: meta.Ready, Uploader: "uploader-3",
		Probe: &meta.Probe{Duration: 3, Width: 360, Height: 640, VideoCodec: "h264", Format: "mp4"}}); err != nil {
		t.Fatal(err)
	}

	h, err := origin.Handler(origin.Options{GatewayURL: gw})
	if err != nil {
		t.Fatal(err)
	}
	pub := httptest.NewServer(h)
	defer pub.Close()
	client := &http.Client{Timeout: 30 * time.Second}
	viewer := s.jwt(t, "clinician-2", grant.ViewerRole) // a second user: not the uploader, sees the feed by role

	feed := func(path string) []byte {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			req, _ := http.NewRequest(http.MethodGet, pub.URL+path, nil)
			req.Header.Set("Authorization", "Bearer "+viewer)
			res, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				t.Fatalf("GET %s: %d %s", path, res.StatusCode, b)
			}
			// The index learns of the second video by its rescan or status event.
			if path != "/api/videos?limit=100" || bytes.Contains(b, []byte(other)) {
				return b
			}
			if time.Now().After(deadline) {
				t.Fatalf("the feed does not list %s: %s", other, b)
			}
		}
	}
	var page struct {
		Videos []struct{ ID, Poster string }
	}
	if err := json.Unmarshal(feed("/api/videos?limit=100"), &page); err != nil {
		t.Fatal(err)
	}
	posters := map[string]string{}
	for _, v := range page.Videos {
		posters[v.ID] = v.Poster
	}
	var one struct{ Poster string }
	if err := json.Unmarshal(feed("/api/videos/"+s.video), &one); err != nil {
		t.Fatal(err)
	}

	for _, poster := range []string{posters[s.video], one.Poster} {
		tok, key, ok := strings.Cut(strings.TrimPrefix(poster, "/media/"), "/")
		if !strings.HasPrefix(poster, "/media/") || !ok || key != topology.VideoPrefix(s.video)+"poster.jpg" {
			t.Fatalf("poster URL %q", poster)
		}
		if code, _, b := get(t, client, pub.URL+poster); code != http.StatusOK || !bytes.Equal(b, s.hlsFiles[key]) {
			t.Fatalf("the poster itself: %d", code)
		}
		for _, swap := range []string{
			topology.VideoPrefix(s.video) + "hls/master.m3u8",
			topology.VideoPrefix(s.video) + "hls/360p/index.m3u8",
			topology.VideoPrefix(s.video) + "dash/manifest.mpd",
			topology.VideoPrefix(s.video) + "original.mp4",
			topology.VideoPrefix(s.video) + "meta.json",
			topology.VideoPrefix(s.video) + "thumb.jpg",
			topology.VideoPrefix(s.video) + "poster.jpgX",
			topology.VideoPrefix(other) + "poster.jpg",
		} {
			if code, _, _ := get(t, client, pub.URL+"/media/"+tok+"/"+swap); code != http.StatusForbidden {
				t.Errorf("poster token used for %s: %d, want 403", strings.TrimPrefix(swap, "videos/"), code)
			}
		}
	}

	// Every poster handed out is in the locked audit log: who, which video.
	want := map[string]bool{s.video: true, other: true}
	for deadline := time.Now().Add(time.Minute); len(want) > 0; time.Sleep(200 * time.Millisecond) {
		for _, r := range auditRecords(t, s.st, s.auditBkt) {
			if r.Action == event.URLSigned && r.Reason == "poster" && r.Actor == "clinician-2" && r.Outcome == event.Success {
				delete(want, r.Object)
			}
		}
		if len(want) > 0 && time.Now().After(deadline) {
			t.Fatalf("no poster grant in the audit log for %v (waited 1 min)", want)
		}
	}
}

// auditRecords reads every record of the audit log's batches.
func auditRecords(t *testing.T, st *storage.Store, bucket string) []record.Record {
	t.Helper()
	var out []record.Record
	for info, err := range st.List(t.Context(), bucket, "") {
		if err != nil {
			t.Fatal(err)
		}
		if topology.ParseAuditKey(info.Key).Kind != topology.AuditKindBatch {
			continue
		}
		rc, _, err := st.Get(t.Context(), bucket, info.Key, 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(rc)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			r, err := record.ParseLine(sc.Bytes())
			if err != nil {
				t.Fatalf("%s: %v", info.Key, err)
			}
			out = append(out, r)
		}
		rc.Close()
	}
	return out
}
