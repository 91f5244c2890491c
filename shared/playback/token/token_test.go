package token

import (
	"encoding/base64"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mieweb/pulsevault/shared/topology"
)

const (
	videoA = "3f2b8c1e-5d4a-4e6b-9c7d-0a1b2c3d4e5f"
	videoB = "9e8d7c6b-5a49-4382-a1b0-c9d8e7f6a5b4"
)

var now = time.Unix(1_800_000_000, 0)

func ring(t testing.TB, lines ...string) *Keyring {
	t.Helper()
	k, err := ParseKeys([]byte(strings.Join(lines, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

var (
	keyOld = "old=" + base64.RawURLEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	keyNew = "new=" + base64.RawURLEncoding.EncodeToString([]byte("fedcba9876543210fedcba9876543210"))
)

func sign(t testing.TB, k *Keyring, video string, ttl time.Duration) string {
	t.Helper()
	tok, err := k.Sign(video, topology.VideoPrefix(video), now.Add(ttl), now)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestVerifyTable(t *testing.T) {
	k := ring(t, keyNew, keyOld)
	good := sign(t, k, videoA, 60*time.Second)
	raw, _ := base64.RawURLEncoding.DecodeString(good)
	flip := func(i int) string {
		b := append([]byte(nil), raw...)
		b[i] ^= 1
		return base64.RawURLEncoding.EncodeToString(b)
	}
	c, err := k.Verify(good, now)
	if err != nil || c.Video != videoA || c.Kid != "new" || c.Prefix != topology.VideoPrefix(videoA) || !c.Expiry.Equal(now.Add(60*time.Second)) {
		t.Fatalf("good token: %+v %v", c, err)
	}
	for _, tc := range []struct {
		name string
		tok  string
		at   time.Time
		want Reason
	}{
		{"empty", "", now, Malformed},
		{"not base64", "!!!!", now, Malformed},
		{"padded", good + "=", now, Malformed},
		{"truncated", good[:len(good)-4], now, Malformed},
		{"short", good[:20], now, Malformed},
		{"huge", strings.Repeat("A", MaxLen+1), now, Malformed},
		{"tampered mac", flip(len(raw) - 1), now, BadSignature},
		{"tampered expiry", flip(len(raw) - macSize - 1), now, BadSignature},
		{"tampered video (prefix no longer matches)", flip(1 + 1 + 3 + 5), now, Malformed},
		{"tampered kid", flip(2), now, UnknownKid},
		{"tampered version", flip(0), now, Malformed},
		{"expired", good, now.Add(60 * time.Second), Expired},
		{"long expired", good, now.Add(time.Hour), Expired},
	} {
		_, err := k.Verify(tc.tok, tc.at)
		if got := ReasonOf(err); got != tc.want {
			t.Errorf("%s: reason %q (%v), want %q", tc.name, got, err, tc.want)
		}
	}

	// Each byte of the token matters: flipping any of them is refused.
	for i := range raw {
		if _, err := k.Verify(flip(i), now); err == nil {
			t.Fatalf("byte %d flipped: accepted", i)
		}
	}
}

func TestScope(t *testing.T) {
	k := ring(t, keyNew)
	c, err := k.Verify(sign(t, k, videoA, time.Minute), now)
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]Reason{
		"videos/" + videoA + "/hls/master.m3u8":       "",
		"videos/" + videoA + "/hls/240p/seg_001.m4s":  "",
		"videos/" + videoB + "/hls/master.m3u8":       OutOfScope, // token of video A used on video B
		"videos/" + videoA + "/../" + videoB + "/x":   BadPath,
		"videos/" + videoA + "//hls/master.m3u8":      BadPath,
		"videos/" + videoA + "/./hls/master.m3u8":     BadPath,
		"videos/" + videoA + "/hls/%2e%2e/meta.json":  BadPath,
		"videos/" + videoA + `/hls\..\meta.json`:      BadPath,
		"videos/" + videoA + "/":                      BadPath,
		"other/" + videoA + "/x":                      OutOfScope,
		"videos/" + videoA:                            OutOfScope,
		"videos/" + videoA + "/hls/a b.m3u8":          BadPath,
		"videos/" + videoA + "/hls/\x00.m3u8":         BadPath,
		"videos/" + strings.ToUpper(videoA) + "/hls/": BadPath,
	} {
		if got := ReasonOf(c.Allows(key)); got != want {
			t.Errorf("%q: %q, want %q", key, got, want)
		}
	}
	// A token cannot be signed for a prefix outside its video.
	if _, err := k.Sign(videoA, topology.VideoPrefix(videoB), now.Add(time.Minute), now); err == nil {
		t.Error("signed a prefix of another video")
	}
	if _, err := k.Sign(videoA, topology.VideoPrefix(videoA)+"../", now.Add(time.Minute), now); err == nil {
		t.Error("signed a traversing prefix")
	}
}

// A key token (SignKey, the feed's posters) grants its one key: not the
// rest of the video, not a longer key that starts with it.
func TestKeyScope(t *testing.T) {
	k := ring(t, keyNew)
	poster := topology.VideoPrefix(videoA) + "poster.jpg"
	tok, err := k.SignKey(videoA, poster, now.Add(time.Minute), now)
	if err != nil {
		t.Fatal(err)
	}
	c, err := k.Verify(tok, now)
	if err != nil || !c.Exact || c.Prefix != poster || c.Video != videoA {
		t.Fatalf("key token: %+v %v", c, err)
	}
	for key, want := range map[string]Reason{
		poster: "",
		topology.VideoPrefix(videoA) + "poster.jpgX":                  OutOfScope,
		topology.VideoPrefix(videoA) + "poster.jpg.m3u8":              OutOfScope,
		topology.VideoPrefix(videoA) + "poster.jpg/x":                 OutOfScope,
		topology.VideoPrefix(videoA) + "poster.jp":                    OutOfScope,
		topology.VideoPrefix(videoA) + "hls/master.m3u8":              OutOfScope,
		topology.VideoPrefix(videoA) + "hls/240p/seg_0.m4s":           OutOfScope,
		topology.VideoPrefix(videoA) + "dash/manifest.mpd":            OutOfScope,
		topology.VideoPrefix(videoA) + "original.mp4":                 OutOfScope,
		topology.VideoPrefix(videoA) + "meta.json":                    OutOfScope,
		topology.VideoPrefix(videoA) + "thumb.jpg":                    OutOfScope,
		topology.VideoPrefix(videoB) + "poster.jpg":                   OutOfScope,
		topology.VideoPrefix(videoA) + "poster.jpg/":                  BadPath,
		topology.VideoPrefix(videoA) + "./poster.jpg":                 BadPath,
		topology.VideoPrefix(videoA) + "hls/../poster.jpg":            BadPath,
		topology.VideoPrefix(videoA) + "hls/%2e%2e/poster.jpg":        BadPath,
		topology.VideoPrefix(videoA) + "poster.jpg\x00":               BadPath,
		strings.ToUpper(topology.VideoPrefix(videoA)) + "poster.jpg":  OutOfScope,
		topology.VideoPrefix(videoA) + "poster.jpg" + "?x=hls/master": BadPath,
	} {
		if got := ReasonOf(c.Allows(key)); got != want {
			t.Errorf("%q: %q, want %q", key, got, want)
		}
	}

	// The kind of grant is under the MAC: a key token relabelled a prefix
	// token (or the reverse) is refused.
	raw, _ := base64.RawURLEncoding.DecodeString(tok)
	raw[0] = version
	// (Malformed since prefixes must end in "/", else a bad signature.)
	if _, err := k.Verify(base64.RawURLEncoding.EncodeToString(raw), now); err == nil {
		t.Error("key token relabelled a prefix token: accepted")
	}
	pre, _ := base64.RawURLEncoding.DecodeString(sign(t, k, videoA, time.Minute))
	pre[0] = versionKey
	if _, err := k.Verify(base64.RawURLEncoding.EncodeToString(pre), now); err == nil {
		t.Error("prefix token relabelled a key token: accepted")
	}

	for _, bad := range []string{
		topology.VideoPrefix(videoA),                // a folder is not a key
		topology.VideoPrefix(videoA) + "hls/",       // nor is any prefix
		topology.VideoPrefix(videoB) + "poster.jpg", // another video
		topology.VideoPrefix(videoA) + "../x.jpg",
		topology.VideoPrefix(videoA) + "a//b",
		"poster.jpg",
	} {
		if _, err := k.SignKey(videoA, bad, now.Add(time.Minute), now); err == nil {
			t.Errorf("SignKey(%q) accepted", bad)
		}
	}
	if _, err := k.SignKey(videoA, poster, now.Add(MaxTTL+time.Second), now); err == nil {
		t.Error("SignKey accepted a lifetime over MaxTTL")
	}
}

func TestSplitPath(t *testing.T) {
	for _, tc := range []struct {
		path, tok, key string
		ok             bool
	}{
		{"/TOK/videos/" + videoA + "/hls/master.m3u8", "TOK", "videos/" + videoA + "/hls/master.m3u8", true},
		{"/TOK/videos/" + videoA + "/hls/%2e%2e/meta.json", "", "", false},
		{"/TOK/videos/" + videoA + "/hls/%2E%2E/meta.json", "", "", false},
		{"/TOK/videos%2f" + videoA + "/hls/master.m3u8", "", "", false},
		{"/TOK/videos/" + videoA + "/../x", "", "", false},
		{"/TOK//videos/x", "", "", false},
		{"//videos/x", "", "", false},
		{"/TOK", "", "", false},
		{"TOK/videos/x", "", "", false},
	} {
		tok, key, err := SplitPath(tc.path)
		if (err == nil) != tc.ok || tok != tc.tok || key != tc.key {
			t.Errorf("%q: %q %q %v", tc.path, tok, key, err)
		}
		if err != nil && ReasonOf(err) != BadPath {
			t.Errorf("%q: reason %q", tc.path, ReasonOf(err))
		}
	}
}

func TestRotation(t *testing.T) {
	oldOnly := ring(t, keyOld)
	tok := sign(t, oldOnly, videoA, time.Minute)

	// New key signs, old key still verifies while configured.
	both := ring(t, keyNew, keyOld)
	if _, err := both.Verify(tok, now); err != nil {
		t.Fatalf("old kid while configured: %v", err)
	}
	if both.SigningKid() != "new" {
		t.Fatalf("signing kid %q", both.SigningKid())
	}
	if c, err := both.Verify(sign(t, both, videoA, time.Minute), now); err != nil || c.Kid != "new" {
		t.Fatalf("new kid: %+v %v", c, err)
	}
	// Old key removed: its tokens are refused as unknown.
	newOnly := ring(t, keyNew)
	if _, err := newOnly.Verify(tok, now); ReasonOf(err) != UnknownKid {
		t.Fatalf("old kid after removal: %v", err)
	}
	// Same kid, different secret: a signature failure, not acceptance.
	swapped := ring(t, "old="+strings.SplitN(keyNew, "=", 2)[1])
	if _, err := swapped.Verify(tok, now); ReasonOf(err) != BadSignature {
		t.Fatalf("same kid other secret: %v", err)
	}
}

func TestLifetime(t *testing.T) {
	k := ring(t, keyNew)
	for _, ttl := range []time.Duration{0, -time.Second, MaxTTL + time.Second, time.Hour} {
		if _, err := k.Sign(videoA, topology.VideoPrefix(videoA), now.Add(ttl), now); err == nil {
			t.Errorf("signed a %s token", ttl)
		}
	}
	if _, err := k.Sign(videoA, topology.VideoPrefix(videoA), now.Add(MaxTTL), now); err != nil {
		t.Errorf("max ttl: %v", err)
	}
	// A token verified on a clock far behind the signer's is refused, so a
	// long-lived token cannot exist even if a signer misbehaves.
	tok := sign(t, k, videoA, MaxTTL)
	if _, err := k.Verify(tok, now.Add(-time.Minute)); ReasonOf(err) != TooLong {
		t.Errorf("verify far before signing: %v", err)
	}
}

func TestParseKeys(t *testing.T) {
	long := base64.RawURLEncoding.EncodeToString(make([]byte, 32))
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"# comment\n\nk1=" + long + "\n", true},
		{"k1=" + long + "==", true},
		{"", false},
		{"k1", false},
		{"k1=" + base64.RawURLEncoding.EncodeToString(make([]byte, 31)), false},
		{"k 1=" + long, false},
		{"k1=" + long + "\nk1=" + long, false},
		{"k1=not base64!", false},
	} {
		_, err := ParseKeys([]byte(tc.in))
		if (err == nil) != tc.ok {
			t.Errorf("%q: %v", tc.in, err)
		}
		if err != nil && strings.Contains(err.Error(), long) {
			t.Errorf("error quotes the secret: %v", err)
		}
	}
	line, err := GenerateKeyLine("k2")
	if err != nil {
		t.Fatal(err)
	}
	if k, err := ParseKeys([]byte(line)); err != nil || k.SigningKid() != "k2" {
		t.Fatalf("generated line: %v", err)
	}
}

// FuzzVerify: random input never panics and is never accepted (a valid
// token needs the key), and paths never escape a granted scope.
func FuzzVerify(f *testing.F) {
	k := ring(f, keyNew, keyOld)
	good, _ := k.Sign(videoA, topology.VideoPrefix(videoA), now.Add(time.Minute), now)
	poster, _ := k.SignKey(videoA, topology.VideoPrefix(videoA)+"poster.jpg", now.Add(time.Minute), now)
	f.Add(good[:len(good)-1]+"A", "videos/"+videoA+"/hls/master.m3u8")
	f.Add(poster[:len(poster)-1]+"A", "videos/"+videoA+"/poster.jpgX")
	f.Add(good[:10], "videos/"+videoB+"/x")
	f.Add("AQNuZXc", "../../etc/passwd")
	f.Fuzz(func(t *testing.T, tok, key string) {
		if tok == good || tok == poster {
			return
		}
		if c, err := k.Verify(tok, now); err == nil {
			t.Fatalf("accepted a token that was never signed: %q → %+v", tok, c)
		}
		if _, key2, err := SplitPath("/" + tok + "/" + key); err == nil {
			if hasDotSegment(key2) || strings.Contains(key2, "//") || strings.Contains(key2, "%") {
				t.Fatalf("unclean key passed: %q", key2)
			}
		}
		c := Claims{Video: videoA, Prefix: topology.VideoPrefix(videoA)}
		if c.Allows(key) == nil && (!strings.HasPrefix(key, topology.VideoPrefix(videoA)) || hasDotSegment(key)) {
			t.Fatalf("out-of-scope key allowed: %q", key)
		}
		exact := Claims{Video: videoA, Prefix: topology.VideoPrefix(videoA) + "poster.jpg", Exact: true}
		if exact.Allows(key) == nil && key != exact.Prefix {
			t.Fatalf("key token allowed another key: %q", key)
		}
	})
}

func hasDotSegment(key string) bool {
	for _, s := range strings.Split(key, "/") {
		if s == "." || s == ".." {
			return true
		}
	}
	return false
}

func TestFileReloads(t *testing.T) {
	path := t.TempDir() + "/" + SecretName
	if _, err := NewFile(path).Keyring(); err == nil {
		t.Fatal("missing file accepted")
	}
	if err := os.WriteFile(path, []byte(keyNew+"\n"+keyOld+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := NewFile(path)
	k, err := f.Keyring()
	if err != nil || k.SigningKid() != "new" || k.lookup("old") == nil {
		t.Fatalf("first read: %v", err)
	}
	// Rotation: the old key removed (the size changes, so it is noticed).
	if err := os.WriteFile(path, []byte(keyNew+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if k, err := f.Keyring(); err != nil || k.lookup("old") != nil {
		t.Fatalf("after removal: %v", err)
	}
	// A broken file is an error, never the stale keys.
	if err := os.WriteFile(path, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Keyring(); err == nil {
		t.Fatal("broken file: stale keys kept")
	}
}

// A grant id rides in versions 3 and 4 under the MAC: it reads back, it
// cannot be changed or dropped without breaking the signature, and tokens
// without one still verify.
func TestGrantIDInToken(t *testing.T) {
	ring := ring(t, keyNew)
	var err error
	video := videoA
	grant := "0b7f1c4e-2a8e-4d5e-9a57-0d2f3c4b5a69"
	for _, exact := range []bool{false, true} {
		var tok string
		if exact {
			tok, err = ring.SignKeyGrant(video, "videos/"+video+"/poster.jpg", grant, now.Add(time.Minute), now)
		} else {
			tok, err = ring.SignGrant(video, "videos/"+video+"/", grant, now.Add(time.Minute), now)
		}
		if err != nil {
			t.Fatal(err)
		}
		c, err := ring.Verify(tok, now)
		if err != nil || c.Grant != grant || c.Exact != exact || c.Video != video {
			t.Fatalf("exact=%v: %+v %v", exact, c, err)
		}
		raw, _ := base64.RawURLEncoding.DecodeString(tok)
		i := 1 + 1 + 3 + 16 // version, kid length, "new", video id
		raw[i] ^= 1         // first byte of the grant id
		if _, err := ring.Verify(base64.RawURLEncoding.EncodeToString(raw), now); ReasonOf(err) != BadSignature {
			t.Fatalf("altered grant id: %v", err)
		}
	}
	old, _ := ring.Sign(video, "videos/"+video+"/", now.Add(time.Minute), now)
	if c, err := ring.Verify(old, now); err != nil || c.Grant != "" {
		t.Fatalf("version 1 token: %+v %v", c, err)
	}
	if _, err := ring.SignGrant(video, "videos/"+video+"/", "not-a-uuid", now.Add(time.Minute), now); err == nil {
		t.Fatal("non-UUID grant id accepted")
	}
}
