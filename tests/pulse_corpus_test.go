package tests

// The Pulse protocol's bad inputs as badCases, so that TestBadInputCorpus (and so make test-faults'
// SUMMARY family=bad-input) counts them beside the rest, and TestPulseBadInput runs the same cases
// on a stack of its own. Each case answers a status that is checked, an error body of the spec's
// shape, and (the corpus's check) nothing stored in the media bucket, no completed staged upload,
// no job, nothing dead-lettered; on top of that, no new pulse-* object in staging.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/openfaas/faas-provider/types"

	"github.com/mieweb/pulsevault/shared/auth"
	"github.com/mieweb/pulsevault/shared/ingest/tusclient"
)

// deployPulse gives s the capability keys and the pulsevault function, and a public origin in
// front of its gateway.
func deployPulse(t *testing.T, s *ingestStack) *pulseRig {
	t.Helper()
	s.system(http.MethodPost, "/system/secrets", types.Secret{Name: "pulsevault-pulse-keys",
		Value: "e2e=" + base64.RawURLEncoding.EncodeToString(pulseKeySecret)}, http.StatusCreated)
	s.system(http.MethodPost, "/system/functions", types.FunctionDeployment{Service: "pulsevault", Image: "pulsevault-pulsevault:dev",
		Secrets: []string{"pulsevault-jwt-secret", "pulsevault-pulse-keys"},
		EnvVars: map[string]string{"UPLOAD_MAX_BYTES": strconv.Itoa(pulseMaxBytes), "read_timeout": "2m", "write_timeout": "2m", "exec_timeout": "2m"}}, http.StatusAccepted)
	return &pulseRig{s: s, origin: publicOrigin(t, s), http: &http.Client{Timeout: time.Minute,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// pulseCorpus is the Pulse part of the bad-input corpus.
type pulseCorpus struct {
	cases   []badCase
	secrets []string         // tokens that must never reach a log
	after   func(*testing.T) // checks once every case ran
}

// pulseStaged counts the pulse-* objects in staging (uploads, their .info, claims).
func pulseStaged(t *testing.T, p *pulseRig) int {
	t.Helper()
	n := 0
	for o, err := range p.s.st.List(context.Background(), p.s.env.Config.UploadsBucket, "") {
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(o.Key, "pulse-") {
			n++
		}
	}
	return n
}

// pulseBadCases builds the cases on p: two pairings (mine, and another person's), one real upload
// of mine to attack, tokens forged with the stack's key and with others.
func pulseBadCases(t *testing.T, p *pulseRig) pulseCorpus {
	t.Helper()
	c := client{rig: p, header: "Pulse/2.1.0 (45; ios); protocol=1-2"}
	mine := p.pair(t, p.s.token)
	other, err := auth.SignHS256([]byte(ingestSecret), p.s.env.Config.JWTIssuer, p.s.env.Config.JWTAudience, "clinician-77", nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	theirs := p.pair(t, other)
	now := time.Now().Unix()
	claims := func(edit func(map[string]any)) map[string]any {
		m := map[string]any{"artifactId": mine.artifact, "iat": now, "exp": now + 600, "kid": "e2e", "issuer": "pulsevault", "owner": "clinician-42"}
		edit(m)
		return m
	}
	head, sig, _ := strings.Cut(mine.token, ".")
	raw, _ := base64.RawURLEncoding.DecodeString(head)
	tampered := base64.RawURLEncoding.EncodeToString(bytes.Replace(raw, []byte("clinician-42"), []byte("clinician-99"), 1)) + "." + sig
	vtt := []byte("WEBVTT\n\n00:00.000 --> 00:01.000\nhello\n")
	comp := func(edit func(map[string]string)) map[string]string {
		m := map[string]string{"artifactId": uuid.NewString(), "filename": "d.vtt", "kind": "captions", "relatedTo": mine.artifact}
		edit(m)
		return m
	}
	vid := func(edit func(map[string]string)) map[string]string {
		m := map[string]string{"artifactId": mine.artifact, "filename": "d.mp4", "kind": "video"}
		edit(m)
		return m
	}
	// pulse wraps a case: no new pulse-* object in staging once it ran (the corpus's own check
	// sees only completed uploads), and the error body has the spec's shape and quotes no input.
	pulse := func(name string, want int, do func(t *testing.T) (int, []byte, string)) badCase {
		return badCase{name: "pulse: " + name, want: want, do: func(t *testing.T) int {
			before := pulseStaged(t, p)
			code, b, method := do(t)
			if code == want && method != http.MethodHead && b != nil {
				msg := errorBody(t, name, &http.Response{Request: &http.Request{Method: method}}, b)
				for _, in := range []string{"Jane", "passwd", "script", "d.mp4", "d.vtt"} {
					if strings.Contains(msg, in) {
						t.Errorf("the error quotes the input: %s", msg)
					}
				}
			}
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
				got := pulseStaged(t, p)
				if got == before {
					break
				}
				if time.Now().After(deadline) {
					t.Errorf("%d new pulse-* objects in staging", got-before)
					break
				}
			}
			return code
		}}
	}
	var cases []badCase
	for _, tc := range []struct {
		name  string
		token string
		md    map[string]string
		size  int
		want  int
	}{
		{"no credential", "", comp(func(map[string]string) {}), 10, 401},
		{"tampered token", tampered, comp(func(map[string]string) {}), 10, 403},
		{"expired token", forgeCapability(pulseKeySecret, claims(func(m map[string]any) { m["iat"], m["exp"] = now-4000, now-2200 })), comp(func(map[string]string) {}), 10, 403},
		{"unknown kid", forgeCapability(pulseKeySecret, claims(func(m map[string]any) { m["kid"] = "gone" })), comp(func(map[string]string) {}), 10, 403},
		{"another issuer", forgeCapability(pulseKeySecret, claims(func(m map[string]any) { m["issuer"] = "https://elsewhere" })), comp(func(map[string]string) {}), 10, 403},
		{"another key", forgeCapability([]byte("not-the-servers-key-0123456789abcdef"), claims(func(map[string]any) {})), comp(func(map[string]string) {}), 10, 403},
		{"lifetime over the bound", forgeCapability(pulseKeySecret, claims(func(m map[string]any) { m["exp"] = now + 400000 })), comp(func(map[string]string) {}), 10, 403},
		{"not a token", "hello.world", comp(func(map[string]string) {}), 10, 403},
		{"wrong kind", mine.token, comp(func(m map[string]string) { m["kind"] = "segment" }), 10, 400},
		{"wrong extension for captions", mine.token, comp(func(m map[string]string) { m["filename"] = "d.srt.exe" }), 10, 400},
		{"video with a .vtt", mine.token, vid(func(m map[string]string) { m["filename"] = "d.vtt" }), 10, 400},
		{"thumbnail as .png", mine.token, comp(func(m map[string]string) { m["kind"], m["filename"] = "thumbnail", "d.png" }), 10, 400},
		{"companion for another video", mine.token, comp(func(m map[string]string) { m["relatedTo"] = theirs.artifact }), 10, 403},
		{"companion without relatedTo", mine.token, comp(func(m map[string]string) { delete(m, "relatedTo") }), 10, 403},
		{"companion with the video's id", mine.token, comp(func(m map[string]string) { m["artifactId"] = mine.artifact }), 10, 400},
		{"video under another artifact id", mine.token, vid(func(m map[string]string) { m["artifactId"] = uuid.NewString() }), 10, 403},
		{"non-UUID artifact id", mine.token, vid(func(m map[string]string) { m["artifactId"] = "../../etc/passwd" }), 10, 400},
		{"no artifact id", mine.token, vid(func(m map[string]string) { delete(m, "artifactId") }), 10, 400},
		{"aliases disagree", mine.token, vid(func(m map[string]string) { m["videoid"] = uuid.NewString() }), 10, 400},
		{"no filename", mine.token, vid(func(m map[string]string) { delete(m, "filename") }), 10, 400},
		{"hostile name", mine.token, vid(func(m map[string]string) { m["name"] = "Jane\x00Doe\r\n<script>" }), 10, 400},
		{"unknown checksum algorithm", mine.token, vid(func(m map[string]string) { m["checksum"] = "crc32:deadbeef" }), 10, 400},
		{"malformed checksum", mine.token, vid(func(m map[string]string) { m["checksum"] = "sha256:xyz" }), 10, 400},
		{"unknown metadata key", mine.token, vid(func(m map[string]string) { m["patient"] = "Jane Doe" }), 10, 400},
		{"oversize video", mine.token, vid(func(map[string]string) {}), pulseMaxBytes + 1, 413},
		{"oversize captions", mine.token, comp(func(map[string]string) {}), 5 << 20, 413},
		{"empty file", mine.token, comp(func(map[string]string) {}), 0, 400},
		{"their token for my video", theirs.token, vid(func(map[string]string) {}), 10, 403},
		{"their token, companion of my video", theirs.token, comp(func(map[string]string) {}), 10, 403},
	} {
		cases = append(cases, pulse("create: "+tc.name, tc.want, func(t *testing.T) (int, []byte, string) {
			code, _, b := c.create(t, mine, tc.token, tc.md, tc.size)
			return code, b, http.MethodPost
		}))
	}
	cases = append(cases,
		// An old client (protocol 3+ only) gets 426 with the range.
		pulse("create: client protocol range 3-4", http.StatusUpgradeRequired, func(t *testing.T) (int, []byte, string) {
			res, b := client{rig: p, header: "Pulse/9.0.0 (1; ios); protocol=3-4"}.do(t, http.MethodPost, mine.server+"/upload", mine.token, nil, tusHeaders("Upload-Length", "1")...)
			var up struct{ MinSupportedVersion, MaxSupportedVersion int }
			if json.Unmarshal(b, &up) != nil || up.MinSupportedVersion != 1 || up.MaxSupportedVersion != 2 {
				t.Errorf("426 body %s lacks the range 1-2", b)
			}
			return res.StatusCode, b, http.MethodPost
		}),
		// Creation-with-upload would skip the checksum: refused.
		pulse("create: creation-with-upload", http.StatusBadRequest, func(t *testing.T) (int, []byte, string) {
			res, b := c.do(t, http.MethodPost, mine.server+"/upload", mine.token, vtt, tusHeaders("Upload-Length", strconv.Itoa(len(vtt)),
				"Upload-Metadata", tusclient.EncodeMetadata(comp(func(map[string]string) {})), "Content-Type", "application/offset+octet-stream")...)
			return res.StatusCode, b, http.MethodPost
		}),
	)

	// A real upload to attack: my captions, created, nothing sent.
	cmd := comp(func(map[string]string) {})
	code, u, b := c.create(t, mine, mine.token, cmd, len(vtt))
	if code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, b)
	}
	cases = append(cases, pulse("second create of one artifact id", http.StatusConflict, func(t *testing.T) (int, []byte, string) {
		code, _, b := c.create(t, mine, mine.token, cmd, len(vtt))
		return code, b, http.MethodPost
	}))
	octet := []string{"Content-Type", "application/offset+octet-stream"}
	for _, tc := range []struct {
		name, method, url, token string
		body                     []byte
		hdr                      []string
		want                     int
		noBody                   bool // answers that need not be {"ok": false, ...}
	}{
		{"PATCH with a wrong content type", http.MethodPatch, u, mine.token, vtt, tusHeaders("Upload-Offset", "0", "Content-Type", "application/json"), 415, false},
		{"PATCH at a wrong offset", http.MethodPatch, u, mine.token, vtt[3:], tusHeaders(append([]string{"Upload-Offset", "3"}, octet...)...), 409, false},
		{"PATCH without credential", http.MethodPatch, u, "", vtt, tusHeaders(append([]string{"Upload-Offset", "0"}, octet...)...), 401, false},
		{"their token: HEAD my upload", http.MethodHead, u, theirs.token, nil, tusHeaders(), 404, false},
		{"their token: PATCH my upload", http.MethodPatch, u, theirs.token, vtt, tusHeaders(append([]string{"Upload-Offset", "0"}, octet...)...), 404, false},
		{"their token: DELETE my upload", http.MethodDelete, u, theirs.token, nil, tusHeaders(), 404, false},
		{"their token: HEAD my video's derived URL", http.MethodHead, mine.server + "/upload/" + b64id("video", mine.artifact, ".mp4"), theirs.token, nil, tusHeaders(), 403, false},
		{"an upload id that is no artifact", http.MethodHead, mine.server + "/upload/0123456789abcdef0123456789abcdef+x", mine.token, nil, tusHeaders(), 404, false},
		{"traversal in the upload id", http.MethodHead, mine.server + "/upload/" + b64id("captions", "../../"+mine.artifact, ".vtt"), mine.token, nil, tusHeaders(), 404, false},
		{"their token: my artifact", http.MethodGet, mine.server + "/artifacts/" + mine.artifact + "?token=" + url.QueryEscape(theirs.token), "", nil, nil, 403, false},
		{"their token: my view link", http.MethodPost, mine.server + "/artifacts/" + mine.artifact + "/view-link", theirs.token, nil, nil, 403, false},
		{"their token: my status", http.MethodGet, mine.server + "/artifacts/" + mine.artifact + "/status", theirs.token, nil, nil, 403, false},
		{"their token: withdraw mine", http.MethodDelete, mine.server + "/artifacts/" + mine.artifact, theirs.token, nil, nil, 403, false},
		{"artifact before it exists", http.MethodGet, mine.server + "/artifacts/" + mine.artifact + "?token=" + url.QueryEscape(mine.token), "", nil, nil, 404, false},
		{"a non-UUID artifact", http.MethodGet, mine.server + "/artifacts/..%2F..%2Fetc?token=x", "", nil, nil, 404, true},
		{"pairing without sign-in", http.MethodPost, p.origin + "/api/pairings", "", nil, nil, 401, false},
		{"pairing with a capability token", http.MethodPost, p.origin + "/api/pairings", mine.token, nil, nil, 401, false},
		{"the function's metrics", http.MethodGet, mine.server + "/metrics", "", nil, nil, 404, true},
	} {
		cases = append(cases, pulse(tc.name, tc.want, func(t *testing.T) (int, []byte, string) {
			res, b := c.do(t, tc.method, tc.url, tc.token, tc.body, tc.hdr...)
			if tc.noBody {
				return res.StatusCode, nil, tc.method
			}
			return res.StatusCode, b, tc.method
		}))
	}

	// A checksum mismatch: 422, nothing finalized or kept, and the id may be used again. On a
	// pairing of its own, so the cases stay independent.
	sums := p.pair(t, p.s.token)
	cases = append(cases, pulse("checksum mismatch", http.StatusUnprocessableEntity, func(t *testing.T) (int, []byte, string) {
		clip := []byte("not really a video, but the checksum fails first")
		bad := map[string]string{"artifactId": sums.artifact, "filename": "d.mp4", "kind": "video", "checksum": "sha256:" + strings.Repeat("0", 64)}
		code, vu, b := c.create(t, sums, sums.token, bad, len(clip))
		if code != http.StatusCreated {
			t.Fatalf("create video: %d %s", code, b)
		}
		c.headAt(t, vu, sums.token, 0, len(clip))
		res, b := c.do(t, http.MethodPatch, vu, sums.token, clip, tusHeaders(append([]string{"Upload-Offset", "0"}, octet...)...)...)
		if res.StatusCode != http.StatusUnprocessableEntity {
			return res.StatusCode, b, http.MethodPatch
		}
		if !strings.Contains(errorBody(t, "checksum mismatch", res, b), "checksum") {
			t.Errorf("the 422 does not say checksum: %s", b)
		}
		time.Sleep(2 * time.Second) // a finalize would have started by now
		if _, _, err := p.s.metas.Get(context.Background(), sums.artifact); err == nil {
			t.Error("a video with a wrong checksum was finalized")
		}
		for o, err := range p.s.st.List(context.Background(), p.s.env.Config.UploadsBucket, "pulse-"+sums.artifact) {
			if err == nil && !strings.Contains(o.Key, "_") {
				t.Errorf("the rejected upload is still staged: %s", o.Key)
			}
		}
		// The id is free again: a create with the right checksum is accepted (then cancelled,
		// which frees it once more and leaves nothing staged).
		good := map[string]string{"artifactId": sums.artifact, "filename": "d.mp4", "kind": "video"}
		h := sha256.Sum256(clip)
		good["checksum"] = "sha256:" + hex.EncodeToString(h[:])
		code, gu, gb := c.create(t, sums, sums.token, good, len(clip))
		if code != http.StatusCreated {
			t.Errorf("create again after a 422: %d %s", code, gb)
		} else if res, db := c.do(t, http.MethodDelete, gu, sums.token, nil, tusHeaders()...); res.StatusCode != http.StatusNoContent {
			t.Errorf("DELETE of the new upload: %d %s", res.StatusCode, db)
		}
		return http.StatusUnprocessableEntity, b, http.MethodPatch
	}))
	return pulseCorpus{
		cases:   cases,
		secrets: []string{mine.token, theirs.token, sums.token, tampered, other},
		after: func(t *testing.T) {
			t.Helper()
			c.headAt(t, u, mine.token, 0, len(vtt)) // none of the cases moved my upload
		},
	}
}
