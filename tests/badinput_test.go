package tests

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	jwtlib "github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/openfaas/faas-provider/types"

	"github.com/mieweb/pulsevault/shared/audit/event"
	"github.com/mieweb/pulsevault/shared/auth"
	"github.com/mieweb/pulsevault/shared/ingest/tusclient"
	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/playback/token"
	"github.com/mieweb/pulsevault/shared/testutil/testclip"
	"github.com/mieweb/pulsevault/shared/topology"
)

// badCase is one hostile or broken input. do sends it and returns the
// HTTP status the stack answered. reason is set for files that upload
// completely: upload-finalize must reject them with that meta.json reason.
type badCase struct {
	name   string
	want   int
	do     func(t *testing.T) int
	reason string
}

// TestBadInputCorpus sends every bad input of the corpus through the real
// stack (provider process with upload, upload-finalize, transcode,
// sign-url, media and videos; the connector; NATS; versitygw; ffprobe) and
// checks, after each one, the answer and that nothing was stored: no new
// object in the media bucket (for a fully uploaded bad file: only its
// meta.json, status rejected with the expected reason, an upload.rejected
// audit event, and the staged upload removed), no transcode job, no completed upload left in staging,
// nothing dead-lettered.
func TestBadInputCorpus(t *testing.T) {
	s := startIngestStack(t)
	ring := s.deployPlayback()
	cfg := s.env.Config
	dir := t.TempDir()
	gw := s.gateway
	uploadURL := gw + "/function/upload/"
	finalizeURL := gw + "/function/upload-finalize"
	client := &http.Client{Timeout: 2 * time.Minute}

	jwt := func(secret, iss, aud, sub string, ttl time.Duration) string {
		tok, err := auth.SignHS256([]byte(secret), iss, aud, sub, nil, ttl)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	other := jwt(ingestSecret, cfg.JWTIssuer, cfg.JWTAudience, "clinician-99", time.Hour)
	enc := base64.RawURLEncoding.EncodeToString
	parts := strings.Split(s.token, ".")
	algNone := enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "."
	claims, _ := base64.RawURLEncoding.DecodeString(parts[1])
	tampered := parts[0] + "." + enc(bytes.ReplaceAll(claims, []byte("clinician-42"), []byte("admin-000042"))) + "." + parts[2]
	badJWTs := []struct{ name, token string }{
		{"no token", ""},
		{"garbage token", "not-a-jwt"},
		{"expired JWT", jwt(ingestSecret, cfg.JWTIssuer, cfg.JWTAudience, "clinician-42", -time.Minute)},
		{"JWT with alg none", algNone},
		{"JWT with wrong audience", jwt(ingestSecret, cfg.JWTIssuer, "someone-else", "clinician-42", time.Hour)},
		{"JWT with wrong issuer", jwt(ingestSecret, "evil-issuer", cfg.JWTAudience, "clinician-42", time.Hour)},
		{"JWT signed with another key", jwt("another-key-another-key-0123456789abcd", cfg.JWTIssuer, cfg.JWTAudience, "clinician-42", time.Hour)},
		{"JWT with tampered claims", tampered},
	}

	// do sends one request and returns its status.
	do := func(t *testing.T, method, url, bearer string, body io.Reader, hdr ...string) int {
		t.Helper()
		req, err := http.NewRequest(method, url, body)
		if err != nil {
			t.Fatal(err)
		}
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		res, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
		defer res.Body.Close()
		io.Copy(io.Discard, res.Body)
		return res.StatusCode
	}
	// create makes a valid, empty tus upload of size bytes and returns its URL.
	create := func(t *testing.T, size int) string {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, uploadURL, nil)
		req.Header.Set("Authorization", "Bearer "+s.token)
		req.Header.Set("Tus-Resumable", "1.0.0")
		req.Header.Set("Upload-Length", fmt.Sprint(size))
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		loc := res.Header.Get("Location")
		if res.StatusCode != http.StatusCreated || loc == "" {
			t.Fatalf("creating a valid upload: %d %q", res.StatusCode, loc)
		}
		if strings.HasPrefix(loc, "/") {
			loc = gw + loc
		}
		return loc
	}
	tus := func(method, url, bearer string, body []byte, hdr ...string) func(t *testing.T) int {
		return func(t *testing.T) int {
			return do(t, method, url, bearer, bytes.NewReader(body), append([]string{"Tus-Resumable", "1.0.0"}, hdr...)...)
		}
	}
	patch := func(size int, bearer string, body []byte, hdr ...string) func(t *testing.T) int {
		return func(t *testing.T) int {
			u := create(t, size)
			return do(t, http.MethodPatch, u, bearer, bytes.NewReader(body), append([]string{"Tus-Resumable", "1.0.0"}, hdr...)...)
		}
	}
	octet := "application/offset+octet-stream"

	// Files that upload completely but are not acceptable videos.
	clip := ingestClip(t, dir, "good", testclip.Options{Seconds: 2})
	good, err := os.ReadFile(clip)
	if err != nil {
		t.Fatal(err)
	}
	file := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ffmpeg := func(name string, args ...string) string {
		p := filepath.Join(dir, name)
		args = append(append([]string{"-hide_banner", "-loglevel", "error", "-y"}, args...), p)
		if out, err := exec.Command("ffmpeg", args...).CombinedOutput(); err != nil {
			t.Fatalf("ffmpeg %s: %v\n%s", name, err, out)
		}
		return p
	}
	// A real H.264 stream 16384 pixels wide (or tall) is cheap when the
	// other side is 16: VIDEO_MAX_SIDE (8192) must refuse it before any
	// decoder allocates a frame.
	wide := ffmpeg("wide.mp4", "-f", "lavfi", "-i", "color=c=gray:s=16384x16:d=0.4:r=5", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p")
	tall := ffmpeg("tall.mp4", "-f", "lavfi", "-i", "color=c=gray:s=16x16384:d=0.4:r=5", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p")
	short := ffmpeg("short.mp4", "-f", "lavfi", "-i", "testsrc=s=64x64:d=1:r=10", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p")
	shortB, _ := os.ReadFile(short)
	tenHours := file("ten-hours.mp4", claimDuration(t, shortB, 10*3600))
	audioOnly := ffmpeg("audio-only.mp4", "-f", "lavfi", "-i", "sine=d=1", "-c:a", "aac")
	png := ffmpeg("image.mp4", "-f", "lavfi", "-i", "color=s=64x64", "-frames:v", "1", "-f", "image2", "-c:v", "png")
	corrupt := append([]byte(nil), good...)
	if i := bytes.Index(corrupt, []byte("moov")); i > 0 {
		for j := i + 4; j < len(corrupt) && j < i+400; j++ {
			corrupt[j] ^= 0x5a // the movie header and the track tables turn to noise
		}
	} else {
		t.Fatal("test clip has no moov box")
	}

	cases := []badCase{
		// tus: malformed protocol headers, before anything is stored.
		{name: "tus create without Tus-Resumable", want: 412, do: func(t *testing.T) int {
			return do(t, http.MethodPost, uploadURL, s.token, nil, "Upload-Length", "10")
		}},
		{name: "tus create with unsupported Tus-Resumable", want: 412, do: tus(http.MethodPost, uploadURL, s.token, nil, "Tus-Resumable", "0.2.2", "Upload-Length", "10")},
		{name: "tus create with negative Upload-Length", want: 400, do: tus(http.MethodPost, uploadURL, s.token, nil, "Upload-Length", "-1")},
		{name: "tus create with non-numeric Upload-Length", want: 400, do: tus(http.MethodPost, uploadURL, s.token, nil, "Upload-Length", "12abc")},
		{name: "tus create with huge Upload-Length", want: 413, do: tus(http.MethodPost, uploadURL, s.token, nil, "Upload-Length", "9223372036854775807")},
		{name: "tus create one byte over the limit", want: 413, do: tus(http.MethodPost, uploadURL, s.token, nil, "Upload-Length", fmt.Sprint(16<<20+1))},
		{name: "tus create without Upload-Length", want: 400, do: tus(http.MethodPost, uploadURL, s.token, nil)},
		{name: "tus create with both Upload-Length and Upload-Defer-Length", want: 400, do: tus(http.MethodPost, uploadURL, s.token, nil, "Upload-Length", "10", "Upload-Defer-Length", "1")},
		// tus ignores a creation body that is not application/offset+octet-stream:
		// the upload is created empty, and must not complete.
		{name: "tus creation-with-upload with wrong Content-Type", want: 201, do: tus(http.MethodPost, uploadURL, s.token, []byte("0123456789"), "Upload-Length", "10", "Content-Type", "application/json")},
		{name: "tus PATCH with wrong Content-Type", want: 400, do: patch(10, s.token, []byte("0123456789"), "Upload-Offset", "0", "Content-Type", "video/mp4")},
		{name: "tus PATCH with offset mismatch", want: 409, do: patch(10, s.token, []byte("56789"), "Upload-Offset", "5", "Content-Type", octet)},
		{name: "tus PATCH with negative offset", want: 400, do: patch(10, s.token, []byte("0123456789"), "Upload-Offset", "-3", "Content-Type", octet)},
		{name: "tus PATCH without Upload-Offset", want: 400, do: patch(10, s.token, []byte("0123456789"), "Content-Type", octet)},
		{name: "tus PATCH past Upload-Length", want: 413, do: patch(10, s.token, bytes.Repeat([]byte("x"), 64), "Upload-Offset", "0", "Content-Type", octet)},
		{name: "tus PATCH by another user", want: 404, do: patch(10, other, []byte("0123456789"), "Upload-Offset", "0", "Content-Type", octet)},
		{name: "tus PATCH of an unknown upload", want: 404, do: tus(http.MethodPatch, uploadURL+"0123456789abcdef0123456789abcdef", s.token, []byte("x"), "Upload-Offset", "0", "Content-Type", octet)},
		{name: "tus PATCH with path traversal in the upload id", want: 404, do: tus(http.MethodPatch, uploadURL+"..%2f..%2fpulse-media%2fvideos", s.token, []byte("x"), "Upload-Offset", "0", "Content-Type", octet)},
		{name: "tus create with oversized headers", want: 431, do: tus(http.MethodPost, uploadURL, s.token, nil, "Upload-Length", "10", "X-Padding", strings.Repeat("a", 2<<20))},
		// Under Go's 1 MiB default, over the gateway's bound (issue 15: it made an unreadable meta.json).
		{name: "tus create with a 233 KB Upload-Metadata at the gateway", want: 431, do: tus(http.MethodPost, uploadURL, s.token, nil, "Upload-Length", "10",
			"Upload-Metadata", tusclient.EncodeMetadata(map[string]string{"filename": strings.Repeat("a", 233<<10)}))},

		// Complete uploads of files that are not acceptable videos.
		{name: "plain text named .mp4", reason: "not-a-video", do: s.uploadFile(file("notes.mp4", []byte("Patient says the knee hurts. Not a video.\n")))},
		{name: "zero bytes", reason: "empty", do: s.uploadFile(file("empty.mp4", nil))},
		{name: "truncated mp4 (first third)", reason: "truncated", do: s.uploadFile(file("cut.mp4", good[:len(good)/3]))},
		{name: "mp4 cut inside ftyp", reason: "truncated", do: s.uploadFile(file("ftyp.mp4", good[:12]))},
		{name: "corrupted moov (no stream left)", reason: "not-a-video", do: s.uploadFile(file("corrupt.mp4", corrupt))},
		{name: "audio-only mp4", reason: "not-a-video", do: s.uploadFile(audioOnly)},
		{name: "PNG image named .mp4", reason: "not-a-video", do: s.uploadFile(png)},
		{name: "HLS playlist pointing at local files", reason: "not-a-video", do: s.uploadFile(file("list.mp4", []byte("#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n")))},
		{name: "16384 pixels wide", reason: "dimensions-too-large", do: s.uploadFile(wide)},
		{name: "16384 pixels tall", reason: "dimensions-too-large", do: s.uploadFile(tall)},
		{name: "container claims 10 hours", reason: "too-long", do: s.uploadFile(tenHours)},

		// upload-finalize: malformed and hostile S3 events.
		{name: "event: not JSON", want: 400, do: func(t *testing.T) int { return do(t, http.MethodPost, finalizeURL, "", strings.NewReader("{{{")) }},
		{name: "event: empty body", want: 400, do: func(t *testing.T) int { return do(t, http.MethodPost, finalizeURL, "", nil) }},
		{name: "event: Records not a list", want: 400, do: func(t *testing.T) int {
			return do(t, http.MethodPost, finalizeURL, "", strings.NewReader(`{"Records":"nope"}`))
		}},
		{name: "event: record without bucket or key", want: 400, do: func(t *testing.T) int {
			return do(t, http.MethodPost, finalizeURL, "", strings.NewReader(`{"Records":[{"eventName":"s3:ObjectCreated:Put","s3":{}}]}`))
		}},
		{name: "event: over 1 MiB", want: 400, do: func(t *testing.T) int {
			// On a connection of its own: the answer comes before the body is
			// read through, and a loaded machine has shown the next request
			// on the same kept-alive connection answered 400 as well.
			return do(t, http.MethodPost, finalizeURL, "", bytes.NewReader(s3Event(cfg.UploadsBucket, strings.Repeat("a", 2<<20), "s3:ObjectCreated:Put")), "Connection", "close")
		}},
		{name: "event: path traversal in the key", want: 200, do: func(t *testing.T) int {
			return do(t, http.MethodPost, finalizeURL, "", bytes.NewReader(s3Event(cfg.UploadsBucket, "../pulse-media/videos/x", "s3:ObjectCreated:Put")))
		}},
		{name: "event: other bucket", want: 200, do: func(t *testing.T) int {
			return do(t, http.MethodPost, finalizeURL, "", bytes.NewReader(s3Event(cfg.MediaBucket, "0123456789abcdef0123456789abcdef", "s3:ObjectCreated:Put")))
		}},
		{name: "event: upload that does not exist", want: 200, do: func(t *testing.T) int {
			return do(t, http.MethodPost, finalizeURL, "", bytes.NewReader(s3Event(cfg.UploadsBucket, "0123456789abcdef0123456789abcdef", "s3:ObjectCreated:Put")))
		}},
		{name: "event: incomplete upload (only its .info)", want: 200, do: func(t *testing.T) int {
			u := create(t, 10)
			id := u[strings.LastIndex(u, "/")+1:]
			id, _, _ = strings.Cut(id, "+")
			return do(t, http.MethodPost, finalizeURL, "", bytes.NewReader(s3Event(cfg.UploadsBucket, id, "s3:ObjectCreated:Put")))
		}},
		{name: "event: GET instead of POST", want: 405, do: func(t *testing.T) int { return do(t, http.MethodGet, finalizeURL, "", nil) }},

		// sign-url and videos: malformed JSON bodies and bad ids.
		{name: "sign-url: malformed JSON", want: 400, do: func(t *testing.T) int {
			return do(t, http.MethodPost, gw+"/function/sign-url", s.token, strings.NewReader(`{"video":`))
		}},
		{name: "sign-url: oversize JSON body", want: 400, do: func(t *testing.T) int {
			return do(t, http.MethodPost, gw+"/function/sign-url", s.token, strings.NewReader(`{"video":"`+strings.Repeat("a", 1<<20)+`"}`))
		}},
		{name: "sign-url: path traversal as video id", want: 400, do: func(t *testing.T) int {
			return do(t, http.MethodPost, gw+"/function/sign-url", s.token, strings.NewReader(`{"video":"../../pulse-audit"}`))
		}},
		{name: "videos: bad cursor", want: 400, do: func(t *testing.T) int {
			return do(t, http.MethodGet, gw+"/function/videos/?cursor=%21%21", s.token, nil)
		}},
	}
	// Bad JWTs, on each API that takes one.
	for _, j := range badJWTs {
		cases = append(cases,
			badCase{name: "upload create: " + j.name, want: 401, do: tus(http.MethodPost, uploadURL, j.token, nil, "Upload-Length", "10")},
			badCase{name: "sign-url: " + j.name, want: 401, do: func(t *testing.T) int {
				return do(t, http.MethodPost, gw+"/function/sign-url", j.token, strings.NewReader(fmt.Sprintf(`{"video":%q}`, uuid.NewString())))
			}},
			badCase{name: "videos: " + j.name, want: 401, do: func(t *testing.T) int { return do(t, http.MethodGet, gw+"/function/videos/", j.token, nil) }},
		)
	}
	// Roles (issue 15, finding 9): another clinician's ready video is refused
	// (the same 404 as an unknown one) to a token whose groups claim, which
	// users may fill at their IdP, says viewer, and to generic role names.
	theirs := uuid.NewString()
	if err := s.metas.Create(context.Background(), &meta.Video{ID: theirs, Status: meta.Ready, Uploader: "clinician-7"}); err != nil {
		t.Fatal(err)
	}
	claimed := func(extra jwtlib.MapClaims) string {
		c := jwtlib.MapClaims{"sub": "clinician-99", "iss": cfg.JWTIssuer, "aud": cfg.JWTAudience, "exp": time.Now().Add(time.Hour).Unix()}
		maps.Copy(c, extra)
		tok, err := jwtlib.NewWithClaims(jwtlib.SigningMethodHS256, c).SignedString([]byte(ingestSecret))
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	signTheirs := func(bearer string) func(t *testing.T) int {
		return func(t *testing.T) int {
			return do(t, http.MethodPost, gw+"/function/sign-url", bearer, strings.NewReader(fmt.Sprintf(`{"video":%q}`, theirs)))
		}
	}
	cases = append(cases,
		badCase{name: "sign-url: viewer from the groups claim", want: 404, do: signTheirs(claimed(jwtlib.MapClaims{"groups": []string{"viewer", "admin", "pulsevault:viewer"}}))},
		badCase{name: "sign-url: generic viewer and admin roles", want: 404, do: signTheirs(claimed(jwtlib.MapClaims{"roles": []string{"viewer", "admin"}}))},
	)

	// Playback tokens: forged, expired, tampered, other prefix, traversal.
	vid, vid2 := uuid.NewString(), uuid.NewString()
	now := time.Now()
	sign := func(prefix string, expiry, at time.Time) string {
		tok, err := ring.Sign(vid, prefix, expiry, at)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	valid := sign(topology.VideoPrefix(vid), now.Add(5*time.Minute), now)
	raw, _ := base64.RawURLEncoding.DecodeString(valid)
	flipped := append([]byte(nil), raw...)
	flipped[len(flipped)-3] ^= 1
	mediaGet := func(path string) func(t *testing.T) int {
		return func(t *testing.T) int { return do(t, http.MethodGet, gw+"/function/media/"+path, "", nil) }
	}
	cases = append(cases,
		badCase{name: "media: forged token", want: 403, do: mediaGet(enc(bytes.Repeat([]byte{1}, len(raw))) + "/videos/" + vid + "/hls/master.m3u8")},
		badCase{name: "media: expired token", want: 403, do: mediaGet(sign(topology.VideoPrefix(vid), now.Add(-time.Minute), now.Add(-2*time.Minute)) + "/videos/" + vid + "/hls/master.m3u8")},
		badCase{name: "media: tampered token", want: 403, do: mediaGet(enc(flipped) + "/videos/" + vid + "/hls/master.m3u8")},
		badCase{name: "media: token of another video", want: 403, do: mediaGet(valid + "/videos/" + vid2 + "/hls/master.m3u8")},
		badCase{name: "media: token for another prefix", want: 403, do: mediaGet(sign(topology.VideoPrefix(vid)+"hls/360p/", now.Add(time.Minute), now) + "/videos/" + vid + "/poster.jpg")},
		badCase{name: "media: dot-dot out of the video", want: 403, do: mediaGet(valid + "/videos/" + vid + "/hls/%2e%2e/%2e%2e/" + vid2 + "/hls/master.m3u8")},
		badCase{name: "media: meta.json", want: 403, do: mediaGet(valid + "/videos/" + vid + "/meta.json")},
		badCase{name: "media: the original", want: 403, do: mediaGet(valid + "/videos/" + vid + "/original.mp4")},
	)
	// The feed's poster tokens grant the poster alone (token.SignKey).
	posterTok, err := ring.SignKey(vid, topology.VideoPrefix(vid)+"poster.jpg", now.Add(time.Minute), now)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"hls/master.m3u8", "hls/240p/index.m3u8", "dash/manifest.mpd", "original.mp4", "poster.jpgX"} {
		cases = append(cases, badCase{name: "media: poster token used for " + key, want: 403, do: mediaGet(posterTok + "/videos/" + vid + "/" + key)})
	}
	cases = append(cases, badCase{name: "media: poster token used for another video's poster", want: 403, do: mediaGet(posterTok + "/videos/" + vid2 + "/poster.jpg")})

	// Issue 15: a second user's attacks on another's uploads and on the
	// functions' own endpoints, through the public origin.
	attacks := newAttackRig(s, publicOrigin(t, s), client, http.StatusRequestHeaderFieldsTooLarge)
	cases = append(cases, secondUserAttacks(attacks)...)
	// Issue 17: the Pulse capture protocol's bad inputs, through the public origin to the
	// pulsevault function on this same stack.
	pulse := pulseBadCases(t, deployPulse(t, s))
	cases = append(cases, pulse.cases...)
	// Before any listing: the videos function's first scan meets them.
	listed := plantUndecodableMeta(t, attacks)

	failures := 0
	failed := map[string]bool{}
	for _, c := range cases {
		ok := t.Run(c.name, func(t *testing.T) {
			before := s.snapshot(t)
			code := c.do(t)
			if c.reason == "" && code != c.want {
				t.Errorf("status %d, want %d", code, c.want)
			}
			s.checkNothingStored(t, before, c.reason)
		})
		if !ok {
			failures++
			failed[c.name] = true
		}
	}
	pulse.after(t)
	// One meta.json nobody can read does not take the feed down.
	feedSurvives(t, attacks, listed)

	// Secrets never reach a log: no JWT or playback token of the corpus
	// appears in the provider's, the connector's or any function's log.
	logs, _ := filepath.Glob(filepath.Join(s.data, "logs", "functions", "*"))
	var logText strings.Builder
	logText.WriteString(s.stderr.String() + s.connErr.String())
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		logText.Write(b)
	}
	if !strings.Contains(logText.String(), `"msg":"upload rejected"`) {
		t.Error("the function logs were not collected (no rejection logged)")
	}
	secrets := append([]string{s.token, other, valid, ingestSecret, attacks.attacker, victimName}, pulse.secrets...)
	for _, j := range badJWTs {
		if len(j.token) > 20 {
			secrets = append(secrets, j.token)
		}
	}
	for _, sec := range secrets {
		if strings.Contains(logText.String(), sec) {
			t.Errorf("a token or secret reached a log: %.16s…", sec)
		}
	}
	// Every socket the provider and its functions listen on is on loopback.
	if bad := nonLoopbackListeners(t, s.data); len(bad) > 0 {
		t.Errorf("listening beyond 127.0.0.1: %v", bad)
	}

	if len(cases) < 40 {
		t.Errorf("the corpus has %d cases, want at least 40", len(cases))
	}
	pulseFailures := 0
	for _, c := range cases {
		if strings.HasPrefix(c.name, "pulse: ") && failed[c.name] {
			pulseFailures++
		}
	}
	fmt.Printf("SUMMARY family=bad-input cases=%d failures=%d (pulse protocol: cases=%d failures=%d)\n", len(cases), failures, len(pulse.cases), pulseFailures)
}

// deployPlayback is deployPipeline (transcode, videos, the connector)
// plus sign-url and media; it returns the playback keyring.
func (s *ingestStack) deployPlayback() *token.Keyring {
	s.t.Helper()
	ring := s.deployPipeline()
	both := []string{"pulsevault-jwt-secret", token.SecretName}
	s.system(http.MethodPost, "/system/functions", types.FunctionDeployment{Service: "sign-url", Image: "pulsevault-sign-url:dev", Secrets: both}, http.StatusAccepted)
	s.system(http.MethodPost, "/system/functions", types.FunctionDeployment{Service: "media", Image: "pulsevault-media:dev", Secrets: []string{token.SecretName}}, http.StatusAccepted)
	return ring
}

// uploadFile uploads path completely with the tus client; the answer of
// the last PATCH is the case's status (204 once the upload is complete).
func (s *ingestStack) uploadFile(path string) func(t *testing.T) int {
	return func(t *testing.T) int {
		c := &tusclient.Client{Endpoint: s.gateway + "/function/upload/", Token: s.token}
		if _, err := c.Upload(context.Background(), path, map[string]string{"filename": filepath.Base(path)}); err != nil {
			t.Fatalf("upload %s: %v", filepath.Base(path), err)
		}
		return http.StatusNoContent
	}
}

// storeState is what the checks compare before and after a case.
type storeState struct {
	media  map[string]bool // keys in the media bucket
	staged map[string]bool // data objects (completed uploads) in staging
	jobs   uint64          // messages on PULSE_JOBS
	dlq    uint64          // messages on PULSE_DLQ
}

func (s *ingestStack) snapshot(t *testing.T) storeState {
	t.Helper()
	ctx := context.Background()
	st := storeState{media: map[string]bool{}, staged: map[string]bool{}}
	for o, err := range s.st.List(ctx, s.env.Config.MediaBucket, "") {
		if err != nil {
			t.Fatal(err)
		}
		st.media[o.Key] = true
	}
	for o, err := range s.st.List(ctx, s.env.Config.UploadsBucket, "") {
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(o.Key, ".") {
			st.staged[o.Key] = true
		}
	}
	for name, n := range map[string]*uint64{"PULSE_JOBS": &st.jobs, "PULSE_DLQ": &st.dlq} {
		str, err := s.bus.JetStream().Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		info, err := str.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		*n = info.State.Msgs
	}
	return st
}

// checkNothingStored compares the store with before. For a file rejected
// by finalize (reason set) it first waits for its meta.json, the one new
// object allowed, and for its staged upload to go; then redelivers the
// bucket event, which must be answered 200 with the same rejection (no
// retry loop, no second copy).
func (s *ingestStack) checkNothingStored(t *testing.T, before storeState, reason string) {
	t.Helper()
	allowed := map[string]bool{}
	if reason != "" {
		var id string
		deadline := time.Now().Add(90 * time.Second)
		for id == "" {
			for k := range s.snapshot(t).media {
				if !before.media[k] && strings.HasSuffix(k, "/meta.json") {
					id = strings.TrimSuffix(strings.TrimPrefix(k, "videos/"), "/meta.json")
				}
			}
			if id == "" && time.Now().After(deadline) {
				t.Fatalf("no meta.json for the rejected upload (waited 90s)")
			}
			time.Sleep(200 * time.Millisecond)
		}
		v, _, err := s.metas.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if v.Status != meta.Rejected || v.Reason != reason || v.Original != nil || len(v.Renditions) != 0 {
			t.Errorf("meta.json: status %s reason %q original %v renditions %d; want rejected %q and nothing else",
				v.Status, v.Reason, v.Original, len(v.Renditions), reason)
		}
		for ks := s.stagedKeys(t, v.UploadID); len(ks) != 0; ks = s.stagedKeys(t, v.UploadID) {
			if time.Now().After(deadline) {
				t.Fatalf("the rejected upload is still staged: %v", ks)
			}
			time.Sleep(200 * time.Millisecond)
		}
		// The rejection is audited, with the reason and the video only.
		if str, err := s.bus.JetStream().Stream(context.Background(), "PULSE_AUDIT"); err != nil {
			t.Fatal(err)
		} else if m, err := str.GetLastMsgForSubject(context.Background(), topology.SubjectAudit+"."+event.UploadRejected); err != nil {
			t.Errorf("no %s audit event: %v", event.UploadRejected, err)
		} else {
			var e event.Event
			if err := json.Unmarshal(m.Data, &e); err != nil || e.Object != id || e.Reason != reason {
				t.Errorf("last %s audit event: %s, want video %s reason %s", event.UploadRejected, m.Data, id, reason)
			}
		}
		res, err := http.Post(s.gateway+"/function/upload-finalize", "application/json",
			bytes.NewReader(s3Event(s.env.Config.UploadsBucket, v.UploadID, "s3:ObjectCreated:CompleteMultipartUpload")))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`"status":"rejected"`)) {
			t.Errorf("redelivered event: %d %s, want 200 and the rejection", res.StatusCode, body)
		}
		allowed[topology.MetaKey(id)] = true
	}
	after := s.snapshot(t)
	for k := range after.media {
		if !before.media[k] && !allowed[k] {
			t.Errorf("stored in the media bucket: %s", k)
		}
	}
	for k := range after.staged {
		if !before.staged[k] {
			t.Errorf("a completed upload is left in staging: %s", k)
		}
	}
	if after.jobs != before.jobs {
		t.Errorf("%d transcode jobs published", after.jobs-before.jobs)
	}
	if after.dlq != before.dlq {
		t.Errorf("%d messages dead-lettered", after.dlq-before.dlq)
	}
}

// stagedKeys lists the staging objects of one upload.
func (s *ingestStack) stagedKeys(t *testing.T, upload string) []string {
	t.Helper()
	var keys []string
	for o, err := range s.st.List(context.Background(), s.env.Config.UploadsBucket, upload) {
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, o.Key)
	}
	return keys
}

// nonLoopbackListeners returns the TCP listeners of the provider whose
// data dir is data, and of its child processes, that are not bound to
// 127.0.0.1, as "pid addr:port" (from /proc: socket inodes per process,
// then /proc/net/tcp and tcp6).
func nonLoopbackListeners(t *testing.T, data string) []string {
	t.Helper()
	root := 0
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && bytes.Contains(cmdline, []byte("\x00provider\x00")) && bytes.Contains(cmdline, []byte(data)) {
			fmt.Sscan(e.Name(), &root)
		}
	}
	if root == 0 {
		t.Fatal("provider process not found")
	}
	owner := map[string]int{} // socket inode → pid
	for _, pid := range append(descendants(root), root) {
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		for _, fd := range fds {
			l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
			if inode, ok := strings.CutPrefix(l, "socket:["); ok {
				owner[strings.TrimSuffix(inode, "]")] = pid
			}
		}
	}
	var bad []string
	listening := 0
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, _ := os.ReadFile(table)
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 || f[3] != "0A" { // 0A: LISTEN
				continue
			}
			pid, ok := owner[f[9]]
			if !ok {
				continue
			}
			listening++
			addr, _, _ := strings.Cut(f[1], ":")
			if addr != "0100007F" && addr != "0000000000000000FFFF00000100007F" {
				bad = append(bad, fmt.Sprintf("%d %s", pid, f[1]))
			}
		}
	}
	if listening < 2 {
		t.Errorf("found %d listeners of the provider tree; the check cannot see them", listening)
	}
	return bad
}

// s3Event is a minimal bucket notification in versitygw's shape.
func s3Event(bucket, key, name string) []byte {
	b, _ := json.Marshal(map[string]any{"Records": []any{map[string]any{
		"eventVersion": "2.2", "eventSource": "aws:s3", "eventName": name, "eventTime": time.Now().UTC().Format(time.RFC3339),
		"s3": map[string]any{"bucket": map[string]any{"name": bucket}, "object": map[string]any{"key": key, "size": 1}},
	}}})
	return b
}

// claimDuration rewrites the duration fields of an MP4's mvhd, tkhd, mdhd
// and elst boxes to seconds, leaving the samples as they are: a one-second
// file whose container claims a length it does not have.
func claimDuration(t *testing.T, in []byte, seconds uint64) []byte {
	t.Helper()
	b := slices.Clone(in)
	var movieScale uint64
	patched := 0
	var walk func(off, end int)
	walk = func(off, end int) {
		for off+8 <= end {
			size := int(binary.BigEndian.Uint32(b[off:]))
			typ := string(b[off+4 : off+8])
			if size < 8 || off+size > end {
				return
			}
			body := b[off+8 : off+size]
			v1 := len(body) > 0 && body[0] == 1
			// put writes a duration field at (v0, v1) offsets into the box body.
			put := func(at0, at1 int, scale uint64) {
				if v1 {
					binary.BigEndian.PutUint64(body[at1:], seconds*scale)
				} else {
					binary.BigEndian.PutUint32(body[at0:], uint32(seconds*scale))
				}
				patched++
			}
			switch typ {
			case "moov", "trak", "mdia", "edts":
				walk(off+8, off+size)
			case "mvhd":
				movieScale = uint64(binary.BigEndian.Uint32(body[map[bool]int{false: 12, true: 20}[v1]:]))
				put(16, 24, movieScale)
			case "tkhd":
				put(20, 28, movieScale)
			case "mdhd":
				put(16, 24, uint64(binary.BigEndian.Uint32(body[map[bool]int{false: 12, true: 20}[v1]:])))
			case "elst":
				for i := range int(binary.BigEndian.Uint32(body[4:])) {
					put(8+i*12, 8+i*20, movieScale)
				}
			}
			off += size
		}
	}
	walk(0, len(b))
	if patched < 3 {
		t.Fatalf("claimDuration: patched %d duration fields, the clip's boxes were not found", patched)
	}
	return b
}
