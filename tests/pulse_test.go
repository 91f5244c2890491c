package tests

// The Pulse capture protocol, conformance from the spec (mieweb/pulsevault PROTOCOL.md,
// protocol/schemas, and the app's client in mieweb/pulse src/features/upload): a small client
// written here from those documents — not from shared/pulse — drives the real stack through the
// public origin the way the app does: captions, beat manifest and thumbnail first, each relatedTo
// the pairing's artifact, then the video under the link's artifactId; HEAD before every PATCH, one
// whole-file PATCH, a checksum. Then the bad inputs, and a second user's attempts.

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/openfaas/faas-provider/types"

	"github.com/mieweb/pulsevault/shared/ingest/tusclient"
	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/testutil/testclip"
)

// pulseKeySecret is the capability key the test gives the stack (kid=base64url secret), so it
// can forge the tokens a hostile client would.
var pulseKeySecret = []byte("pulse-e2e-capability-key-0123456789abcdef")

const pulseMaxBytes = 16 << 20

type pulseRig struct {
	s      *ingestStack
	origin string
	http   *http.Client // never follows a redirect: the app treats one as fatal
}

func startPulse(t *testing.T) *pulseRig {
	t.Helper()
	s := startIngestStack(t)
	s.deployPipeline()
	return deployPulse(t, s)
}

// pairing is a pairing link as the app reads it (PROTOCOL.md §3).
type pairing struct{ artifact, server, token string }

func (p *pulseRig) pair(t *testing.T, jwt string) pairing {
	t.Helper()
	var body struct {
		Link, HTTPSLink, ArtifactID string
		ExpiresAt                   int64
	}
	var res *http.Response
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		req, _ := http.NewRequest(http.MethodPost, p.origin+"/api/pairings", nil)
		req.Header.Set("Authorization", "Bearer "+jwt)
		var err error
		if res, err = p.http.Do(req); err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode == http.StatusCreated {
			if err := json.Unmarshal(b, &body); err != nil {
				t.Fatal(err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("POST /api/pairings: %d %s", res.StatusCode, b)
		}
	}
	u, err := url.Parse(body.Link)
	if err != nil || u.Scheme != "pulsecam" {
		t.Fatalf("link %q", body.Link)
	}
	q := u.Query()
	if q.Get("v") != "1" || q.Get("artifactId") != body.ArtifactID || q.Get("uploadUnit") != "merged" {
		t.Fatalf("link parameters %v", q)
	}
	h, err := url.Parse(body.HTTPSLink)
	if err != nil || h.Scheme != "https" || h.Host != "mieweb.github.io" || h.Path != "/pulse/open" {
		t.Fatalf("https link %q", body.HTTPSLink)
	}
	if f, _ := url.ParseQuery(h.Fragment); f.Get("token") != q.Get("token") || f.Get("server") != q.Get("server") {
		t.Fatalf("https link fragment %q", h.Fragment)
	}
	// The app reads exp from the token's first part.
	head, _, _ := strings.Cut(q.Get("token"), ".")
	raw, err := base64.RawURLEncoding.DecodeString(head)
	var claims struct {
		ArtifactID, Kid, Issuer string
		Iat, Exp                int64
	}
	if err != nil || json.Unmarshal(raw, &claims) != nil || claims.ArtifactID != body.ArtifactID || claims.Exp != body.ExpiresAt || claims.Exp-claims.Iat != 1800 || claims.Kid == "" {
		t.Fatalf("token claims %s", raw)
	}
	return pairing{artifact: q.Get("artifactId"), server: q.Get("server"), token: q.Get("token")}
}

// client is one app generation: Pulse 2.0 sends no Pulse-Client header; 2.1+ does.
type client struct {
	rig    *pulseRig
	header string
}

func (c client) do(t *testing.T, method, u, token string, body []byte, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if c.header != "" {
		req.Header.Set("Pulse-Client", c.header)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := c.rig.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode >= 300 && res.StatusCode < 400 {
		t.Fatalf("%s: a redirect (%d), which the app treats as fatal", method, res.StatusCode)
	}
	if res.Header.Get("Protocol-Version") == "" && strings.Contains(u, "/pulsevault") {
		t.Errorf("%s %s: no Protocol-Version header", method, u)
	}
	return res, b
}

// tusHeaders are the headers of every tus request.
func tusHeaders(h ...string) []string { return append([]string{"Tus-Resumable", "1.0.0"}, h...) }

// create answers the status, the absolute upload URL and the body.
func (c client) create(t *testing.T, p pairing, token string, md map[string]string, length int) (int, string, []byte) {
	t.Helper()
	res, b := c.do(t, http.MethodPost, p.server+"/upload", token, nil, tusHeaders("Upload-Length", strconv.Itoa(length), "Upload-Metadata", tusclient.EncodeMetadata(md))...)
	if res.StatusCode != http.StatusCreated {
		return res.StatusCode, "", b
	}
	loc, err := url.Parse(res.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := url.Parse(p.server)
	abs := srv.ResolveReference(loc)
	if abs.Scheme != srv.Scheme || abs.Host != srv.Host || !strings.HasPrefix(abs.Path, srv.Path+"/upload/") {
		t.Fatalf("Location %q is not same-origin under %s/upload/ (PROTOCOL.md §4.3)", loc, p.server)
	}
	return res.StatusCode, abs.String(), b
}

// send uploads one file as the app does: create, HEAD, one whole-file PATCH.
func (c client) send(t *testing.T, p pairing, md map[string]string, data []byte) string {
	t.Helper()
	code, u, b := c.create(t, p, p.token, md, len(data))
	if code != http.StatusCreated {
		t.Fatalf("create %s: %d %s", md["kind"], code, b)
	}
	c.headAt(t, u, p.token, 0, len(data))
	res, b := c.do(t, http.MethodPatch, u, p.token, data, tusHeaders("Upload-Offset", "0", "Content-Type", "application/offset+octet-stream")...)
	if res.StatusCode != http.StatusNoContent || res.Header.Get("Upload-Offset") != strconv.Itoa(len(data)) {
		t.Fatalf("PATCH %s: %d offset %q %s", md["kind"], res.StatusCode, res.Header.Get("Upload-Offset"), b)
	}
	return u
}

func (c client) headAt(t *testing.T, u, token string, offset, length int) {
	t.Helper()
	res, b := c.do(t, http.MethodHead, u, token, nil, tusHeaders()...)
	if res.StatusCode != http.StatusOK || res.Header.Get("Upload-Offset") != strconv.Itoa(offset) ||
		res.Header.Get("Upload-Length") != strconv.Itoa(length) || !strings.Contains(res.Header.Get("Cache-Control"), "no-store") {
		t.Fatalf("HEAD %s: %d offset %q length %q cache %q %s", u, res.StatusCode, res.Header.Get("Upload-Offset"),
			res.Header.Get("Upload-Length"), res.Header.Get("Cache-Control"), b)
	}
}

// errorBody checks the spec's error shape (PROTOCOL.md §5.3) and returns its error.
func errorBody(t *testing.T, what string, res *http.Response, b []byte) string {
	t.Helper()
	if res.Request.Method == http.MethodHead {
		return ""
	}
	var e struct {
		OK    *bool  `json:"ok"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(b, &e); err != nil || e.OK == nil || *e.OK || e.Error == "" {
		t.Errorf("%s: body %q is not {\"ok\": false, \"error\": ...}", what, b)
	}
	return e.Error
}

func jpegBytes(t *testing.T) []byte {
	img := image.NewRGBA(image.Rect(0, 0, 64, 112))
	for i := range img.Pix {
		img.Pix[i] = byte(i)
	}
	img.Set(1, 1, color.RGBA{255, 0, 0, 255})
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func b64id(kind, artifact, ext string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(kind + "/" + artifact + ext))
}

func TestPulseConformance(t *testing.T) {
	p := startPulse(t)
	clip := filepath.Join(t.TempDir(), "clip.mp4")
	if err := testclip.Make(context.Background(), clip, testclip.Options{Width: 360, Height: 640, Seconds: 2}); err != nil {
		t.Fatal(err)
	}
	video, err := os.ReadFile(clip)
	if err != nil {
		t.Fatal(err)
	}
	for _, gen := range []struct {
		name, header, checksum string
	}{
		{"pulse-2.0", "", "md5"},
		{"pulse-2.1", "Pulse/2.1.0 (45; ios); protocol=1-2", "sha256"},
	} {
		t.Run(gen.name, func(t *testing.T) {
			c := client{rig: p, header: gen.header}
			pr := p.pair(t, p.s.token)
			res, b := c.do(t, http.MethodGet, pr.server+"/capabilities", "", nil)
			var caps map[string]any
			if res.StatusCode != 200 || json.Unmarshal(b, &caps) != nil {
				t.Fatalf("capabilities: %d %s", res.StatusCode, b)
			}
			for _, k := range []string{"protocolVersion", "protocolRevision", "minSupportedVersion", "maxSupportedVersion", "uploadUnit", "kinds", "allowedExtensions", "maxUploadSize", "checksum", "viewLinks"} {
				if _, ok := caps[k]; !ok {
					t.Errorf("capabilities lack %s", k)
				}
			}
			if caps["uploadUnit"] != "merged" || caps["minSupportedVersion"] != 1.0 || caps["maxSupportedVersion"] != 2.0 || caps["maxUploadSize"] != float64(pulseMaxBytes) {
				t.Fatalf("capabilities %s", b)
			}
			if _, ok := caps["directUpload"]; ok {
				t.Error("capabilities advertise directUpload, which is not built")
			}
			draft := uuid.NewString()
			captions := []byte("WEBVTT\n\n00:00.000 --> 00:01.000\nLeft knee, flexion\n")
			beats := []byte(`{"version":1,"type":"beat-manifest","durationMs":2000,"beats":[{"segmentId":"a","order":0,"startMs":0,"endMs":2000}]}`)
			thumb := jpegBytes(t)
			c.send(t, pr, map[string]string{"artifactId": uuid.NewString(), "filename": draft + ".vtt", "kind": "captions", "relatedTo": pr.artifact}, captions)
			c.send(t, pr, map[string]string{"artifactId": uuid.NewString(), "filename": draft + "-beats.pulse", "kind": "project", "relatedTo": pr.artifact}, beats)
			c.send(t, pr, map[string]string{"artifactId": uuid.NewString(), "filename": draft + ".jpg", "kind": "thumbnail", "relatedTo": pr.artifact}, thumb)
			var sum string
			if gen.checksum == "md5" {
				h := md5.Sum(video)
				sum = "md5:" + hex.EncodeToString(h[:])
			} else {
				h := sha256.Sum256(video)
				sum = "sha256:" + hex.EncodeToString(h[:])
			}
			name := "Genou gauche — flexion 😀 " + gen.name
			vmd := map[string]string{"artifactId": pr.artifact, "filename": draft + ".mp4", "kind": "video", "checksum": sum, "name": name}
			if gen.header != "" {
				vmd["appVersion"] = "2.1.0 (45)"
			}
			u := c.send(t, pr, vmd, video)
			if gen.header != "" {
				// 2.1+: an artifact id is single-use; after a 409 the app HEADs the upload URL it derives.
				if code, _, b := c.create(t, pr, pr.token, vmd, len(video)); code != http.StatusConflict {
					t.Fatalf("second create: %d %s, want 409", code, b)
				}
				c.headAt(t, pr.server+"/upload/"+b64id("video", pr.artifact, ".mp4"), pr.token, len(video), len(video))
			}
			_ = u
			defer func() {
				// No PHI in the logs: the title and the file names stay in meta.json.
				for _, phi := range []string{name, draft, "Genou"} {
					if strings.Contains(p.s.stderr.String()+p.s.connErr.String(), phi) {
						t.Errorf("the logs hold client metadata %q", phi)
					}
				}
			}()
			// Complete, and the web MP4 made (a copy of the original without its container metadata).
			v := waitPulse(t, p.s, pr.artifact, 4*time.Minute, func(v *meta.Video) bool { return v.Status == meta.Complete && v.WebMP4 != "" })
			rc, _, err := p.s.st.Get(context.Background(), p.s.env.Config.MediaBucket, v.WebMP4, 0, -1)
			if err != nil {
				t.Fatal(err)
			}
			served, _ := io.ReadAll(rc)
			rc.Close()
			if v.Uploader != "clinician-42" || v.Client["name"] != name {
				t.Fatalf("meta: uploader %q name %q", v.Uploader, v.Client["name"])
			}
			// The pipeline used the companions: a subtitles track, chapters, the thumbnail as poster.
			v = waitPulse(t, p.s, pr.artifact, time.Minute, func(v *meta.Video) bool {
				return len(v.Subtitles) == 1 && len(v.Chapters) == 1 && v.PosterSource == meta.PosterFromThumbnail
			})
			if len(v.Ignored) != 0 {
				t.Fatalf("companions ignored: %+v", v.Ignored)
			}
			if v.Companions == nil || len(v.Companions.Captions) != 1 || v.Companions.Thumbnail == "" || v.Companions.Beats == "" {
				t.Fatalf("companions %+v", v.Companions)
			}
			for key, want := range map[string][]byte{v.Companions.Captions[0].Key: captions, v.Companions.Thumbnail: thumb, v.Companions.Beats: beats} {
				rc, _, err := p.s.st.Get(context.Background(), p.s.env.Config.MediaBucket, key, 0, -1)
				if err != nil {
					t.Fatalf("companion %s: %v", key, err)
				}
				got, _ := io.ReadAll(rc)
				rc.Close()
				info, err := p.s.st.Stat(context.Background(), p.s.env.Config.MediaBucket, key)
				same := bytes.Equal(got, want)
				if strings.HasSuffix(key, ".vtt") { // captions are kept as canonical WebVTT
					same = bytes.HasPrefix(got, []byte("WEBVTT")) && bytes.Contains(got, []byte("Left knee, flexion"))
				}
				if err != nil || !same || info.Retention == nil || info.Retention.Mode != "COMPLIANCE" {
					t.Fatalf("companion %s: %d bytes, retention %v", key, len(got), info.Retention)
				}
			}
			// The artifact: the app probes with Range: bytes=0-0, a phone browser plays it.
			art := pr.server + "/artifacts/" + pr.artifact
			res, b = c.do(t, http.MethodGet, art+"?token="+url.QueryEscape(pr.token), "", nil, "Range", "bytes=0-0")
			if res.StatusCode != http.StatusPartialContent || len(b) != 1 || res.Header.Get("Content-Range") != fmt.Sprintf("bytes 0-0/%d", len(served)) {
				t.Fatalf("Range probe: %d %q %d bytes", res.StatusCode, res.Header.Get("Content-Range"), len(b))
			}
			res, b = c.do(t, http.MethodPost, art+"/view-link", pr.token, nil)
			var vl struct {
				Token     string `json:"token"`
				ExpiresAt int64  `json:"expiresAt"`
			}
			if res.StatusCode != 200 || json.Unmarshal(b, &vl) != nil || vl.Token == "" || vl.ExpiresAt <= time.Now().Unix() {
				t.Fatalf("view-link: %d %s", res.StatusCode, b)
			}
			res, b = c.do(t, http.MethodGet, art+"?token="+url.QueryEscape(vl.Token), "", nil)
			if res.StatusCode != 200 || sha256.Sum256(b) != sha256.Sum256(served) || !strings.HasPrefix(res.Header.Get("Content-Type"), "video/") {
				t.Fatalf("GET with the view link: %d %s, %d bytes", res.StatusCode, res.Header.Get("Content-Type"), len(b))
			}
			// A view token opens, nothing more.
			if res, b := c.do(t, http.MethodDelete, art, vl.Token, nil); res.StatusCode != http.StatusForbidden {
				t.Fatalf("DELETE with a view token: %d %s", res.StatusCode, b)
			}
			if code, _, b := c.create(t, pr, vl.Token, map[string]string{"artifactId": uuid.NewString(), "filename": "x.vtt", "kind": "captions", "relatedTo": pr.artifact}, 5); code != http.StatusForbidden {
				t.Fatalf("create with a view token: %d %s", code, b)
			}
			res, b = c.do(t, http.MethodGet, art+"/status", pr.token, nil)
			var st struct{ ArtifactID, State, Kind, Name string }
			if res.StatusCode != 200 || json.Unmarshal(b, &st) != nil || st.State != "ready" || st.ArtifactID != pr.artifact || st.Name != name {
				t.Fatalf("status: %d %s", res.StatusCode, b)
			}
			if gen.header == "" {
				pulseAudited(t, p.s, pr.artifact, "pairing.created", "artifact.received", "upload.created", "view-link.granted", "artifact.served")
				return
			}
			if res, b := c.do(t, http.MethodGet, p.origin+"/api/videos/"+pr.artifact, p.s.token, nil); res.StatusCode != 200 {
				t.Fatalf("the owner's feed lacks the Pulse video: %d %s", res.StatusCode, b)
			}
			// DELETE withdraws: the locked original cannot go, and the answer says so.
			res, b = c.do(t, http.MethodDelete, art, pr.token, nil)
			var wd struct {
				OK, Withdrawn, Deleted bool
				Message                string
			}
			if res.StatusCode != 200 || json.Unmarshal(b, &wd) != nil || !wd.OK || !wd.Withdrawn || wd.Deleted || !strings.Contains(wd.Message, "retention") {
				t.Fatalf("withdraw: %d %s", res.StatusCode, b)
			}
			if res, b := c.do(t, http.MethodGet, art+"?token="+url.QueryEscape(vl.Token), "", nil); res.StatusCode != http.StatusForbidden {
				t.Fatalf("GET after withdrawal: %d %s", res.StatusCode, b)
			}
			if _, err := p.s.st.Stat(context.Background(), p.s.env.Config.MediaBucket, v.Original.Key); err != nil {
				t.Fatalf("the locked original went: %v", err)
			}
			// Gone from the owner's feed, and no playback link either.
			for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
				res, b := c.do(t, http.MethodGet, p.origin+"/api/videos", p.s.token, nil)
				if res.StatusCode == 200 && !strings.Contains(string(b), pr.artifact) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the feed still lists the withdrawn video: %d %s", res.StatusCode, b)
				}
			}
			if res, b := c.do(t, http.MethodGet, p.origin+"/api/videos/"+pr.artifact, p.s.token, nil); res.StatusCode != http.StatusNotFound {
				t.Fatalf("GET /api/videos/<withdrawn>: %d %s", res.StatusCode, b)
			}
			pulseAudited(t, p.s, pr.artifact, "pairing.created", "artifact.received", "upload.created", "view-link.granted", "artifact.served", "artifact.withdrawn")
		})
	}
}

func waitPulse(t *testing.T, s *ingestStack, id string, d time.Duration, cond func(*meta.Video) bool) *meta.Video {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		v, _, err := s.metas.Get(context.Background(), id)
		if err == nil && cond(v) {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("meta.json of %s: %+v %v (waited %s)\nprovider stderr tail:\n%s", id, v, err, d, lastBytes(s.stderr.String(), 4000))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func lastBytes(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// forge signs claims with the stack's capability key (or another), as the spec's token shape
// says (PROTOCOL.md §5.4): base64url(JSON).base64url(HMAC-SHA256).
func forgeCapability(key []byte, claims map[string]any) string {
	b, _ := json.Marshal(claims)
	head := base64.RawURLEncoding.EncodeToString(b)
	m := hmac.New(sha256.New, key)
	m.Write([]byte(head))
	return head + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func TestPulseBadInput(t *testing.T) {
	p := startPulse(t)
	corpus := pulseBadCases(t, p)
	for _, c := range corpus.cases {
		t.Run(c.name, func(t *testing.T) {
			before := p.s.snapshot(t)
			if code := c.do(t); code != c.want {
				t.Errorf("status %d, want %d", code, c.want)
			}
			p.s.checkNothingStored(t, before, "")
		})
	}
	corpus.after(t)
	// No PHI in the logs: the file names and titles the clients sent, nor a token.
	for _, phi := range append([]string{"Jane", "d.mp4", "d.vtt"}, corpus.secrets...) {
		if strings.Contains(p.s.stderr.String(), phi) {
			t.Errorf("the logs hold client metadata or a token %.16q", phi)
		}
	}
	if len(corpus.cases) < 30 {
		t.Errorf("%d Pulse bad-input cases, the issue asks for at least 30", len(corpus.cases))
	}
}

// A PATCH cut mid-body (the phone lost its network), then the 2.1 recovery: the app lost the
// Location too, creates again, gets 409, HEADs the upload URL it derives, and resumes there.
// The checksum covers both PATCHes; the video's bytes arrive intact.
func TestPulseResume(t *testing.T) {
	p := startPulse(t)
	c := client{rig: p, header: "Pulse/2.1.0 (45; ios); protocol=1-2"}
	pr := p.pair(t, p.s.token)
	clip := filepath.Join(t.TempDir(), "clip.mp4")
	if err := testclip.Make(context.Background(), clip, testclip.Options{Width: 360, Height: 640, Seconds: 3}); err != nil {
		t.Fatal(err)
	}
	video, err := os.ReadFile(clip)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(video)
	md := map[string]string{"artifactId": pr.artifact, "filename": "draft.mp4", "kind": "video", "checksum": "sha256:" + hex.EncodeToString(h[:])}
	code, u, b := c.create(t, pr, pr.token, md, len(video))
	if code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, b)
	}
	c.headAt(t, u, pr.token, 0, len(video))
	cut := len(video) / 2
	cutPatch(t, u, pr.token, video[:cut], len(video))
	if code, _, b := c.create(t, pr, pr.token, md, len(video)); code != http.StatusConflict {
		t.Fatalf("create after the cut: %d %s, want 409", code, b)
	}
	derived := pr.server + "/upload/" + b64id("video", pr.artifact, ".mp4")
	var off int
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		res, _ := c.do(t, http.MethodHead, derived, pr.token, nil, tusHeaders()...)
		off, _ = strconv.Atoi(res.Header.Get("Upload-Offset"))
		if res.StatusCode == 200 && off > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("HEAD after the cut: %d offset %d", res.StatusCode, off)
		}
	}
	if off > cut {
		t.Fatalf("offset %d beyond the %d bytes sent", off, cut)
	}
	res, b := c.do(t, http.MethodPatch, derived, pr.token, video[off:], tusHeaders("Upload-Offset", strconv.Itoa(off), "Content-Type", "application/offset+octet-stream")...)
	if res.StatusCode != http.StatusNoContent || res.Header.Get("Upload-Offset") != strconv.Itoa(len(video)) {
		t.Fatalf("resume PATCH: %d %q %s", res.StatusCode, res.Header.Get("Upload-Offset"), b)
	}
	v := waitPulse(t, p.s, pr.artifact, 2*time.Minute, func(v *meta.Video) bool { return v.Original != nil })
	// The locked original is the file the phone sent, byte for byte.
	rc, _, err := p.s.st.Get(context.Background(), p.s.env.Config.MediaBucket, v.Original.Key, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	orig, _ := io.ReadAll(rc)
	rc.Close()
	if sha256.Sum256(orig) != h {
		t.Fatalf("original after resume: %d bytes, sha256 differs", len(orig))
	}
	waitPulse(t, p.s, pr.artifact, 2*time.Minute, func(v *meta.Video) bool { return v.WebMP4 != "" })
	res, b = c.do(t, http.MethodGet, pr.server+"/artifacts/"+pr.artifact+"?token="+url.QueryEscape(pr.token), "", nil, "Range", "bytes=0-0")
	if res.StatusCode != http.StatusPartialContent || len(b) != 1 {
		t.Fatalf("artifact after resume: %d, %d bytes", res.StatusCode, len(b))
	}
	t.Logf("cut at %d of %d bytes, resumed from %d", cut, len(video), off)
	if strings.Contains(p.s.stderr.String(), "checksum not verifiable") {
		t.Fatal("the resumed upload's checksum was not verified")
	}

	// The digest spans the PATCHes: a wrong one is caught at the resumed end, 422.
	pr2 := p.pair(t, p.s.token)
	md2 := map[string]string{"artifactId": pr2.artifact, "filename": "draft.mp4", "kind": "video", "checksum": "sha256:" + strings.Repeat("ab", 32)}
	code, u2, b := c.create(t, pr2, pr2.token, md2, len(video))
	if code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, b)
	}
	cutPatch(t, u2, pr2.token, video[:cut], len(video))
	var off2 int
	for deadline := time.Now().Add(30 * time.Second); off2 == 0; time.Sleep(200 * time.Millisecond) {
		res, _ := c.do(t, http.MethodHead, u2, pr2.token, nil, tusHeaders()...)
		off2, _ = strconv.Atoi(res.Header.Get("Upload-Offset"))
		if time.Now().After(deadline) {
			t.Fatal("no offset after the cut")
		}
	}
	res, b = c.do(t, http.MethodPatch, u2, pr2.token, video[off2:], tusHeaders("Upload-Offset", strconv.Itoa(off2), "Content-Type", "application/offset+octet-stream")...)
	if res.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("resumed PATCH with a wrong checksum: %d %s, want 422", res.StatusCode, b)
	}
	if res, _ := c.do(t, http.MethodHead, u2, pr2.token, nil, tusHeaders()...); res.StatusCode != http.StatusNotFound {
		t.Fatalf("HEAD after the 422: %d, want 404 (nothing kept)", res.StatusCode)
	}
}

// cutPatch sends a PATCH that declares the whole rest but stops after part, then drops the
// connection, as a phone losing its network does.
func cutPatch(t *testing.T, u, token string, part []byte, total int) {
	t.Helper()
	pu, _ := url.Parse(u)
	conn, err := netDial(pu.Host)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "PATCH %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\n"+
		"Content-Type: application/offset+octet-stream\r\nContent-Length: %d\r\n\r\n", pu.RequestURI(), pu.Host, token, total)
	_, _ = conn.Write(part)
	time.Sleep(500 * time.Millisecond)
	conn.Close()
}

func netDial(host string) (net.Conn, error) { return net.DialTimeout("tcp", host, 5*time.Second) }

// TestPulseThroughput measures one whole-file PATCH of 200 MiB through the public origin on the
// Pulse path (capability token, sha256 checksum verified on the way) against the plain tus path
// (/api/upload/, JWT), alternating A B A B in one run. A measurement, not a check: it runs with
// PULSEVAULT_BENCH=1 and prints one BENCH line.
func TestPulseThroughput(t *testing.T) {
	if os.Getenv("PULSEVAULT_BENCH") == "" {
		t.Skip("a measurement: set PULSEVAULT_BENCH=1")
	}
	const size = 200 << 20
	p := startPulse(t)
	big := map[string]string{"UPLOAD_MAX_BYTES": strconv.Itoa(256 << 20), "read_timeout": "5m", "write_timeout": "5m", "exec_timeout": "5m"}
	p.s.system(http.MethodPut, "/system/functions", types.FunctionDeployment{Service: "upload", Image: "pulsevault-upload:dev",
		Secrets: []string{"pulsevault-jwt-secret"}, EnvVars: big}, http.StatusAccepted)
	p.s.system(http.MethodPut, "/system/functions", types.FunctionDeployment{Service: "pulsevault", Image: "pulsevault-pulsevault:dev",
		Secrets: []string{"pulsevault-jwt-secret", "pulsevault-pulse-keys"}, EnvVars: big}, http.StatusAccepted)
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i*7 + i>>11)
	}
	sum := sha256.Sum256(data)
	p.http.Timeout = 5 * time.Minute
	c := client{rig: p, header: "Pulse/2.1.0 (45; ios); protocol=1-2"}
	patch := func(u, token string) time.Duration {
		start := time.Now()
		res, b := c.do(t, http.MethodPatch, u, token, data, tusHeaders("Upload-Offset", "0", "Content-Type", "application/offset+octet-stream")...)
		if res.StatusCode != http.StatusNoContent {
			t.Fatalf("PATCH %s: %d %s", u, res.StatusCode, b)
		}
		return time.Since(start)
	}
	var pulse, plain []time.Duration
	for round := 0; round < 2; round++ {
		var u string
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(300 * time.Millisecond) {
			pr := p.pair(t, p.s.token)
			var code int
			code, u, _ = c.create(t, pr, pr.token, map[string]string{"artifactId": pr.artifact, "filename": "big.mp4", "kind": "video",
				"checksum": "sha256:" + hex.EncodeToString(sum[:])}, size)
			if code == http.StatusCreated {
				c.headAt(t, u, pr.token, 0, size)
				pulse = append(pulse, patch(u, pr.token))
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("create on the Pulse path: %d (the redeployed function with the larger limit never came)", code)
			}
		}
		var res *http.Response
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(300 * time.Millisecond) {
			var b []byte
			res, b = c.do(t, http.MethodPost, p.origin+"/api/upload/", p.s.token, nil, tusHeaders("Upload-Length", strconv.Itoa(size),
				"Upload-Metadata", tusclient.EncodeMetadata(map[string]string{"filename": "big.mp4"}))...)
			if res.StatusCode == http.StatusCreated {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("create on the tus path: %d %s", res.StatusCode, b)
			}
		}
		loc, _ := url.Parse(res.Header.Get("Location"))
		base, _ := url.Parse(p.origin)
		plain = append(plain, patch(base.ResolveReference(loc).String(), p.s.token))
	}
	mibs := func(ds []time.Duration) float64 {
		var sum time.Duration
		for _, d := range ds {
			sum += d
		}
		return float64(size) / (1 << 20) / (sum.Seconds() / float64(len(ds)))
	}
	t.Logf("BENCH pulse_whole_file_patch_200MiB pulse=%.1fMiB/s plain_tus=%.1fMiB/s ratio=%.2f rounds=%d (pulse %v, plain %v)",
		mibs(pulse), mibs(plain), mibs(pulse)/mibs(plain), len(pulse), pulse, plain)
}

// pulseAudited checks that the audit stream holds each action about artifact, with the
// pairing's owner as actor where a person acted.
func pulseAudited(t *testing.T, s *ingestStack, artifact string, actions ...string) {
	t.Helper()
	ctx := context.Background()
	str, err := s.bus.JetStream().Stream(ctx, "PULSE_AUDIT")
	if err != nil {
		t.Fatal(err)
	}
	info, err := str.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := str.GetMsg(ctx, seq)
		if err != nil {
			continue
		}
		var e struct{ Actor, Action, Object string }
		if json.Unmarshal(m.Data, &e) == nil && e.Object == artifact {
			seen[e.Action] = e.Actor
		}
	}
	for _, a := range actions {
		actor, ok := seen[a]
		if !ok {
			t.Errorf("no %s audited for the artifact (seen %v)", a, seen)
		} else if actor != "clinician-42" {
			t.Errorf("%s audited with actor %q, want the pairing's owner", a, actor)
		}
	}
}
