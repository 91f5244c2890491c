package tests

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mieweb/pulsevault/shared/playback/token"
	"github.com/mieweb/pulsevault/shared/topology"
)

// headers: media answers with the stored bytes, their type, no-store and an ETag (304 on a match).
func (r *playbackRun) headers(t *testing.T) {
	s, client, base := r.s, r.client, r.base
	for key, ct := range map[string]string{"hls/master.m3u8": "application/vnd.apple.mpegurl", "hls/360p/init.mp4": "video/mp4",
		"hls/360p/seg_000.m4s": "video/iso.segment", "poster.jpg": "image/jpeg"} {
		code, h, b := get(t, client, base+key)
		if code != 200 || h.Get("Content-Type") != ct || h.Get("Cache-Control") != "private, no-store" ||
			!bytes.Equal(b, s.hlsFiles[topology.VideoPrefix(s.video)+key]) || h.Get("ETag") == "" {
			t.Errorf("%s: %d %v (%d bytes)", key, code, h, len(b))
		}
	}
	code, h, _ := get(t, client, base+"hls/360p/seg_000.m4s")
	if c, _, b := get(t, client, base+"hls/360p/seg_000.m4s", "If-None-Match", h.Get("ETag")); code != 200 || c != 304 || len(b) != 0 {
		t.Errorf("If-None-Match: %d %d", c, len(b))
	}
}

// ranges: Range requests give 206 with the right slice, 416 past the end, the whole body for multiple ranges.
func (r *playbackRun) ranges(t *testing.T) {
	s, client, base := r.s, r.client, r.base
	key := "hls/360p/seg_000.m4s"
	full := s.hlsFiles[topology.VideoPrefix(s.video)+key]
	n := len(full)
	for _, c := range []struct {
		rng     string
		code    int
		body    []byte
		content string
	}{
		{"bytes=0-99", 206, full[:100], fmt.Sprintf("bytes 0-99/%d", n)},
		{"bytes=100-", 206, full[100:], fmt.Sprintf("bytes 100-%d/%d", n-1, n)},
		{"bytes=-100", 206, full[n-100:], fmt.Sprintf("bytes %d-%d/%d", n-100, n-1, n)},
		{fmt.Sprintf("bytes=%d-%d", n-10, n+1000), 206, full[n-10:], fmt.Sprintf("bytes %d-%d/%d", n-10, n-1, n)},
		{"bytes=0-1,5-6", 200, full, ""},
		{fmt.Sprintf("bytes=%d-", n), 416, nil, fmt.Sprintf("bytes */%d", n)},
		{fmt.Sprintf("bytes=%d-%d", n+5, n+10), 416, nil, fmt.Sprintf("bytes */%d", n)},
	} {
		code, h, b := get(t, client, base+key, "Range", c.rng)
		if code != c.code || h.Get("Content-Range") != c.content || (c.body != nil && !bytes.Equal(b, c.body)) {
			t.Errorf("%s: %d %q (%d bytes), want %d %q (%d bytes)", c.rng, code, h.Get("Content-Range"), len(b), c.code, c.content, len(c.body))
		}
	}
}

// refusals: every path or token outside the grant is refused, through the gateway and the public router.
func (r *playbackRun) refusals(t *testing.T) {
	s, gw, client, pub, pubClient, tok := r.s, r.gw, r.client, r.pub, r.pubClient, r.tok
	other := uuid.NewString()
	raw, _ := base64.RawURLEncoding.DecodeString(tok)
	tampered := append([]byte(nil), raw...)
	tampered[len(tampered)-5] ^= 0x20
	foreign, err := token.ParseKeys([]byte("zz=" + base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))))
	if err != nil {
		t.Fatal(err)
	}
	unknownKid, err := foreign.Sign(s.video, topology.VideoPrefix(s.video), time.Now().Add(time.Minute), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	v := "/videos/" + s.video + "/"
	for name, path := range map[string]string{
		"token of A on B":      "/" + tok + "/videos/" + other + "/hls/master.m3u8",
		"tampered byte":        "/" + base64.RawURLEncoding.EncodeToString(tampered) + v + "hls/master.m3u8",
		"dot-dot":              "/" + tok + v + "hls/../meta.json",
		"encoded dot-dot":      "/" + tok + v + "hls/%2e%2e/meta.json",
		"encoded dot-dot (uc)": "/" + tok + v + "hls/%2E%2E/%2E%2E/" + other + "/hls/master.m3u8",
		"encoded slash":        "/" + tok + "/videos%2f" + s.video + "/hls/master.m3u8",
		"double slash":         "/" + tok + v + "hls//master.m3u8",
		"unknown kid":          "/" + unknownKid + v + "hls/master.m3u8",
		"meta.json":            "/" + tok + v + "meta.json",
		"original":             "/" + tok + v + "original.mp4",
		"no token":             v + "hls/master.m3u8",
		"garbage token":        "/not-a-token" + v + "hls/master.m3u8",
	} {
		for _, via := range []struct {
			url string
			c   *http.Client
		}{{gw + "/function/media", client}, {pub.URL + "/media", pubClient}} {
			req, _ := http.NewRequest(http.MethodGet, via.url+path, nil)
			res, err := via.c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			// Go's client and router may answer a "//" or "..": anything
			// but a 2xx with the bytes is a refusal; media's own is 403.
			if (res.StatusCode/100 == 2 && (via.c != client || name != "encoded slash")) || (res.StatusCode == 403 && string(b) != "forbidden\n") {
				t.Errorf("%s via %s: %d %q", name, via.url, res.StatusCode, b)
			}
			// faas-provider's proxy decodes %2f before media sees the
			// path, so there it is an ordinary in-scope key; the public
			// router refuses it.
			if via.c == client && res.StatusCode != 403 && name != "encoded slash" {
				t.Errorf("%s via the gateway: %d, want 403", name, res.StatusCode)
			}
		}
	}
}

// rotation: a key keeps verifying while it is configured and is refused once removed.
func (r *playbackRun) rotation(t *testing.T) {
	s, client, base, tok := r.s, r.client, r.base, r.tok
	oldTok := tok // signed with k2, the first key
	newLine, err := token.GenerateKeyLine("k3")
	if err != nil {
		t.Fatal(err)
	}
	// k3 signs now; k2 still verifies while it is configured.
	s.secret(http.MethodPut, token.SecretName, newLine+"\n"+s.keys[0]+"\n")
	if code, _, _ := get(t, client, base+"poster.jpg"); code != 200 {
		t.Fatalf("old kid while configured: %d", code)
	}
	_ = oldTok
	// k2 removed: its tokens are refused.
	s.secret(http.MethodPut, token.SecretName, newLine+"\n")
	if code, _, _ := get(t, client, base+"poster.jpg"); code != 403 {
		t.Fatalf("old kid after removal: %d", code)
	}
	// Put the original keys back for what follows.
	s.secret(http.MethodPut, token.SecretName, strings.Join(s.keys, "\n")+"\n")
	if code, _, _ := get(t, client, base+"poster.jpg"); code != 200 {
		t.Fatalf("keys restored: %d", code)
	}
}
