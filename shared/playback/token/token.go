// Package token is the playback token: a short-lived, path-scoped HMAC
// grant that the media function checks on every request.
//
// A token is base64url (no padding) of
//
//	version(1) | len(kid)(1) kid | video id(16, UUID bytes) | len(scope)(1) scope | expiry(8, unix s, big endian) | HMAC-SHA256(32)
//
// Version 1 (Sign) grants every key under the scope, a key prefix; version 2
// (SignKey) grants the scope alone, one whole key (a poster): the version is
// under the MAC, so neither kind can be passed off as the other.
//
// Versions 3 and 4 are 1 and 2 with a grant id (16 bytes, a UUID) after
// the video id: the id the issuing url.signed audit record carries, so
// every access and refusal logged with it names the person it was granted
// to (`pulsevault audit who-watched`). Tokens of versions 1 and 2 stay valid.
//
// A token travels in the URL path (/media/<token>/videos/<id>/hls/master.m3u8),
// so that the relative segment URLs of a playlist inherit it: HLS players
// drop query strings. The MAC covers every byte before it; it is compared in
// constant time. Tokens live at most MaxTTL, and keys rotate by kid.
package token

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/mieweb/pulsevault/shared/topology"
)

// MaxTTL is the longest a token may live: a leaked URL is useless soon.
const MaxTTL = 300 * time.Second

// clockSkew is how far a verifier's clock may be behind the signer's.
const clockSkew = 5 * time.Second

const (
	version         = 1 // scope is a key prefix
	versionKey      = 2 // scope is exactly one key
	versionGrant    = 3 // version 1 with a grant id
	versionKeyGrant = 4 // version 2 with a grant id
	macSize         = sha256.Size
	// MaxLen bounds the encoded token; longer input is rejected before decoding.
	MaxLen = 256
)

// Reason says why a token was refused. Values are bounded machine codes:
// they are safe as metric labels and audit reasons.
type Reason string

// Reasons a token or a requested key is refused.
const (
	Malformed    Reason = "malformed"     // not a token of this format
	UnknownKid   Reason = "unknown-kid"   // signed by a key no longer (or never) configured
	BadSignature Reason = "bad-signature" // forged or altered
	Expired      Reason = "expired"
	TooLong      Reason = "too-long-lived" // expiry further out than MaxTTL allows
	BadPath      Reason = "bad-path"       // traversal, encoded separators, empty segments
	OutOfScope   Reason = "out-of-scope"   // key not under the token's prefix or video
)

// Error is a refusal with its Reason.
type Error struct{ Reason Reason }

func (e *Error) Error() string { return "token: refused: " + string(e.Reason) }

func refuse(r Reason) error { return &Error{Reason: r} }

// ReasonOf returns the Reason of a refusal, or "" for other errors.
func ReasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

// Claims are what a valid token grants: reading keys under Prefix of Video
// (or, when Exact, the key Prefix alone) until Expiry.
type Claims struct {
	Kid    string
	Video  string // UUID, canonical lower-case form
	Prefix string // videos/<id>/...
	Exact  bool   // Prefix is one whole key, granted alone (SignKey)
	Grant  string // UUID of the grant (versions 3 and 4), "" for older tokens
	Expiry time.Time
}

// Sign issues a token for claims with the keyring's signing key. The expiry
// must lie within MaxTTL of now; the prefix must be inside the video's folder.
func (k *Keyring) Sign(video, prefix string, expiry, now time.Time) (string, error) {
	if !strings.HasPrefix(prefix, topology.VideoPrefix(video)) || len(prefix) > 255 || !cleanKey(prefix, true) {
		return "", fmt.Errorf("token: prefix must be a clean key prefix under %s", topology.VideoPrefix(video))
	}
	return k.sign(version, video, prefix, "", expiry, now)
}

// SignGrant is Sign with a grant id (a UUID) in the token.
func (k *Keyring) SignGrant(video, prefix, grant string, expiry, now time.Time) (string, error) {
	if !strings.HasPrefix(prefix, topology.VideoPrefix(video)) || len(prefix) > 255 || !cleanKey(prefix, true) {
		return "", fmt.Errorf("token: prefix must be a clean key prefix under %s", topology.VideoPrefix(video))
	}
	return k.sign(versionGrant, video, prefix, grant, expiry, now)
}

// SignKeyGrant is SignKey with a grant id (a UUID) in the token.
func (k *Keyring) SignKeyGrant(video, key, grant string, expiry, now time.Time) (string, error) {
	if !strings.HasPrefix(key, topology.VideoPrefix(video)) || len(key) > 255 || !cleanKey(key, false) {
		return "", fmt.Errorf("token: key must be a clean key under %s", topology.VideoPrefix(video))
	}
	return k.sign(versionKeyGrant, video, key, grant, expiry, now)
}

// SignKey issues a token for the one object key of video (a poster), valid
// until expiry (within MaxTTL of now): it grants that key and no other, not
// even a longer key that starts with it.
func (k *Keyring) SignKey(video, key string, expiry, now time.Time) (string, error) {
	if !strings.HasPrefix(key, topology.VideoPrefix(video)) || len(key) > 255 || !cleanKey(key, false) {
		return "", fmt.Errorf("token: key must be a clean key under %s", topology.VideoPrefix(video))
	}
	return k.sign(versionKey, video, key, "", expiry, now)
}

func (k *Keyring) sign(ver byte, video, scope, grant string, expiry, now time.Time) (string, error) {
	id, err := uuid.Parse(video)
	if err != nil || id.String() != video {
		return "", fmt.Errorf("token: video id must be a canonical UUID")
	}
	var gid uuid.UUID
	if ver == versionGrant || ver == versionKeyGrant {
		if gid, err = uuid.Parse(grant); err != nil || gid.String() != grant {
			return "", fmt.Errorf("token: grant id must be a canonical UUID")
		}
	}
	if d := expiry.Sub(now); d <= 0 || d > MaxTTL {
		return "", fmt.Errorf("token: lifetime %s is outside (0, %s]", d, MaxTTL)
	}
	sk := k.keys[0]
	var b bytes.Buffer
	b.WriteByte(ver)
	b.WriteByte(byte(len(sk.kid)))
	b.WriteString(sk.kid)
	b.Write(id[:])
	if ver == versionGrant || ver == versionKeyGrant {
		b.Write(gid[:])
	}
	b.WriteByte(byte(len(scope)))
	b.WriteString(scope)
	_ = binary.Write(&b, binary.BigEndian, expiry.Unix())
	b.Write(mac(sk.secret, b.Bytes()))
	return base64.RawURLEncoding.EncodeToString(b.Bytes()), nil
}

func mac(secret, msg []byte) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write(msg)
	return h.Sum(nil)
}

// Verify parses tok and checks its signature and expiry at now. Every
// failure is an *Error; nothing about the token is echoed in it.
func (k *Keyring) Verify(tok string, now time.Time) (Claims, error) {
	// Strict decoding still skips CR and LF: refused here, so one token has
	// one spelling (found by FuzzVerify).
	if len(tok) == 0 || len(tok) > MaxLen || strings.ContainsAny(tok, "\r\n") {
		return Claims{}, refuse(Malformed)
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(tok)
	if err != nil {
		return Claims{}, refuse(Malformed)
	}
	c, signed, sum, ok := parse(raw)
	if !ok {
		return Claims{}, refuse(Malformed)
	}
	secret := k.lookup(c.Kid)
	if secret == nil {
		return Claims{}, refuse(UnknownKid)
	}
	if !hmac.Equal(mac(secret, signed), sum) {
		return Claims{}, refuse(BadSignature)
	}
	if !now.Before(c.Expiry) {
		return Claims{}, refuse(Expired)
	}
	if c.Expiry.Sub(now) > MaxTTL+clockSkew {
		return Claims{}, refuse(TooLong)
	}
	return c, nil
}

// parse splits raw into claims, the signed bytes and the MAC.
func parse(raw []byte) (c Claims, signed, sum []byte, ok bool) {
	if len(raw) < 1+1+16+1+8+macSize || raw[0] < version || raw[0] > versionKeyGrant {
		return c, nil, nil, false
	}
	c.Exact = raw[0] == versionKey || raw[0] == versionKeyGrant
	withGrant := raw[0] == versionGrant || raw[0] == versionKeyGrant
	signed, sum = raw[:len(raw)-macSize], raw[len(raw)-macSize:]
	p := signed[1:]
	kl := int(p[0])
	p = p[1:]
	if kl == 0 || len(p) < kl+16+1 {
		return c, nil, nil, false
	}
	c.Kid = string(p[:kl])
	if !validKid(c.Kid) {
		return c, nil, nil, false
	}
	p = p[kl:]
	id, err := uuid.FromBytes(p[:16])
	if err != nil {
		return c, nil, nil, false
	}
	c.Video = id.String()
	p = p[16:]
	if withGrant {
		if len(p) < 16+1 {
			return c, nil, nil, false
		}
		g, err := uuid.FromBytes(p[:16])
		if err != nil {
			return c, nil, nil, false
		}
		c.Grant = g.String()
		p = p[16:]
	}
	pl := int(p[0])
	p = p[1:]
	if len(p) != pl+8 {
		return c, nil, nil, false
	}
	c.Prefix = string(p[:pl])
	if !strings.HasPrefix(c.Prefix, topology.VideoPrefix(c.Video)) || !cleanKey(c.Prefix, !c.Exact) {
		return c, nil, nil, false
	}
	exp := int64(binary.BigEndian.Uint64(p[pl:]))
	if exp <= 0 {
		return c, nil, nil, false
	}
	c.Expiry = time.Unix(exp, 0)
	return c, signed, sum, true
}

// Allows checks that key (an object key, already taken from a request
// path) is one the claims grant: clean, inside the token's video, and under
// the token's prefix (or, for an Exact token, that very key).
func (c Claims) Allows(key string) error {
	if !cleanKey(key, false) {
		return refuse(BadPath)
	}
	if !strings.HasPrefix(key, topology.VideoPrefix(c.Video)) || c.Exact && key != c.Prefix || !strings.HasPrefix(key, c.Prefix) {
		return refuse(OutOfScope)
	}
	return nil
}

// cleanKey accepts keys made of non-empty segments of safe characters, with
// no "." or ".." segment; a prefix must end with "/": it grants a folder,
// never every key that starts alike (hls/360 would grant hls/3600p/...).
func cleanKey(key string, prefix bool) bool {
	if key == "" || len(key) > 1024 {
		return false
	}
	if prefix {
		var ok bool
		if key, ok = strings.CutSuffix(key, "/"); !ok {
			return false
		}
	}
	for seg := range strings.SplitSeq(key, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
		for i := 0; i < len(seg); i++ {
			ch := seg[i]
			if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '_' || ch == '.') {
				return false
			}
		}
	}
	return true
}

// SplitPath splits a request path "/<token>/<key>" as it arrived (the
// escaped form). Any percent-encoding, backslash or unclean segment is
// refused: a key never needs one, and decoding first would let "%2e%2e" or
// "%2f" past the checks.
func SplitPath(escaped string) (tok, key string, err error) {
	p, ok := strings.CutPrefix(escaped, "/")
	if !ok {
		return "", "", refuse(BadPath)
	}
	tok, key, ok = strings.Cut(p, "/")
	if !ok || tok == "" || !cleanKey(key, false) {
		return "", "", refuse(BadPath)
	}
	return tok, key, nil
}
