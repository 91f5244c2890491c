// Package captoken is the Pulse capability token (PROTOCOL.md §5.4 of
// mieweb/pulsevault): the credential a pairing link hands the Pulse app,
// and the read-only view token minted from it.
//
// A token is
//
//	base64url(JSON claims) "." base64url(HMAC-SHA256(key, first part))
//
// with claims {artifactId, iat, exp, kid, issuer} as the app reads them
// (it decodes the first part to show the expiry and to stop 10 s before
// exp), plus owner (the signed-in person who paired: the upload's
// uploader) and use ("view" on a view token, absent on a capability).
//
// Keys come from a keyring of the playback keys' format (kid=secret lines,
// shared/playback/token), in a secret of its own (SecretName): the first
// key signs, every key verifies, so keys rotate by kid. A view token is
// signed with a key derived from the secret (HMAC(secret, "view")), so no
// capability token is a view token and the reverse, even with use edited.
// The MAC is compared in constant time; the issuer must be ours; tokens
// live at most MaxTTL (view tokens at most the caller's bound).
package captoken

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/mieweb/pulsevault/shared/playback/token"
)

// SecretName is the secret holding the capability keys (the playback keys'
// format, a separate secret: a capability must not be mintable with a
// playback key or the reverse).
const SecretName = "pulsevault-pulse-keys"

// DefaultTTL is a pairing's lifetime unless configured: long enough to
// record and upload a pulse, short enough that a photographed QR code is
// soon useless.
const DefaultTTL = 30 * time.Minute

// MaxTTL bounds every token's lifetime (exp - iat).
const MaxTTL = 24 * time.Hour

// MaxLen bounds an encoded token; longer input is refused before decoding.
const MaxLen = 2048

// clockSkew is how far iat may lie in the verifier's future.
const clockSkew = 30 * time.Second

// UseView marks a view token.
const UseView = "view"

// Claims are a token's signed content. JSON names are the protocol's.
type Claims struct {
	ArtifactID string `json:"artifactId"`
	IssuedAt   int64  `json:"iat"`
	Expires    int64  `json:"exp"`
	Kid        string `json:"kid"`
	Issuer     string `json:"issuer"`
	Owner      string `json:"owner,omitempty"`
	Use        string `json:"use,omitempty"`
}

// ExpiresAt is exp as a time.
func (c Claims) ExpiresAt() time.Time { return time.Unix(c.Expires, 0) }

// Reason says why a token was refused: bounded machine codes, safe as
// metric labels and audit reasons.
type Reason string

// Refusal reasons.
const (
	Malformed    Reason = "malformed"
	UnknownKid   Reason = "unknown-kid"
	BadSignature Reason = "bad-signature"
	Expired      Reason = "expired"
	NotYetValid  Reason = "not-yet-valid"
	TooLong      Reason = "too-long-lived"
	WrongIssuer  Reason = "wrong-issuer"
	WrongUse     Reason = "wrong-use"
)

// Error is a refusal with its Reason; it never quotes the token.
type Error struct{ Reason Reason }

func (e *Error) Error() string { return "captoken: refused: " + string(e.Reason) }

func refuse(r Reason) error { return &Error{Reason: r} }

// ReasonOf returns the Reason of a refusal, or "" for other errors.
func ReasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

// Signer mints and checks tokens of one issuer with a keyring.
type Signer struct {
	Keys   func() (*token.Keyring, error)
	Issuer string // our public base URL incl. prefix, e.g. https://vault.example.org/pulsevault
}

// Sign mints a token for artifact (a canonical UUID) owned by owner, valid
// from now for ttl (0 < ttl <= MaxTTL). use is "" (capability) or UseView.
func (s Signer) Sign(artifact, owner, use string, now time.Time, ttl time.Duration) (string, Claims, error) {
	if id, err := uuid.Parse(artifact); err != nil || id.String() != artifact {
		return "", Claims{}, errors.New("captoken: artifact id must be a canonical UUID")
	}
	if ttl <= 0 || ttl > MaxTTL {
		return "", Claims{}, fmt.Errorf("captoken: lifetime %s is outside (0, %s]", ttl, MaxTTL)
	}
	if use != "" && use != UseView {
		return "", Claims{}, errors.New("captoken: use must be empty or view")
	}
	ring, err := s.Keys()
	if err != nil {
		return "", Claims{}, err
	}
	c := Claims{ArtifactID: artifact, IssuedAt: now.Unix(), Expires: now.Add(ttl).Unix(), Kid: ring.SigningKid(),
		Issuer: s.Issuer, Owner: owner, Use: use}
	body, err := json.Marshal(c)
	if err != nil {
		return "", Claims{}, err
	}
	head := base64.RawURLEncoding.EncodeToString(body)
	sum := mac(key(ring.Secret(c.Kid), use), head)
	return head + "." + base64.RawURLEncoding.EncodeToString(sum), c, nil
}

// Verify checks tok at now and that its use is want ("" or UseView). Every
// failure is an *Error.
func (s Signer) Verify(tok, want string, now time.Time) (Claims, error) {
	if len(tok) == 0 || len(tok) > MaxLen || strings.ContainsAny(tok, "\r\n= +/") {
		return Claims{}, refuse(Malformed)
	}
	head, sig, ok := strings.Cut(tok, ".")
	if !ok || head == "" || strings.Contains(sig, ".") {
		return Claims{}, refuse(Malformed)
	}
	body, err := base64.RawURLEncoding.Strict().DecodeString(head)
	if err != nil {
		return Claims{}, refuse(Malformed)
	}
	sum, err := base64.RawURLEncoding.Strict().DecodeString(sig)
	if err != nil || len(sum) != sha256.Size {
		return Claims{}, refuse(Malformed)
	}
	var c Claims
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if dec.Decode(&c) != nil || dec.More() {
		return Claims{}, refuse(Malformed)
	}
	if id, err := uuid.Parse(c.ArtifactID); err != nil || id.String() != c.ArtifactID || c.Kid == "" || c.IssuedAt <= 0 || c.Expires <= 0 {
		return Claims{}, refuse(Malformed)
	}
	ring, err := s.Keys()
	if err != nil {
		return Claims{}, err // not a refusal: the keys are unavailable
	}
	secret := ring.Secret(c.Kid)
	if secret == nil {
		return Claims{}, refuse(UnknownKid)
	}
	// The MAC first: nothing unsigned decides anything below.
	if c.Use != "" && c.Use != UseView {
		return Claims{}, refuse(BadSignature)
	}
	if !hmac.Equal(mac(key(secret, c.Use), head), sum) {
		return Claims{}, refuse(BadSignature)
	}
	switch {
	case c.Issuer != s.Issuer:
		return Claims{}, refuse(WrongIssuer)
	case c.Use != want:
		return Claims{}, refuse(WrongUse)
	case time.Duration(c.Expires-c.IssuedAt)*time.Second > MaxTTL || c.Expires <= c.IssuedAt:
		return Claims{}, refuse(TooLong)
	case time.Unix(c.IssuedAt, 0).After(now.Add(clockSkew)):
		return Claims{}, refuse(NotYetValid)
	case !now.Before(c.ExpiresAt()):
		return Claims{}, refuse(Expired)
	}
	return c, nil
}

// key is the HMAC key of a use: the secret itself for capabilities, a key
// derived from it for view tokens.
func key(secret []byte, use string) []byte {
	if use == "" {
		return secret
	}
	return mac(secret, "pulsevault/captoken/"+use)
}

func mac(k []byte, msg string) []byte {
	h := hmac.New(sha256.New, k)
	h.Write([]byte(msg))
	return h.Sum(nil)
}
