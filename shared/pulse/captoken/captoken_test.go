package captoken

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/mieweb/pulsevault/shared/playback/token"
)

const (
	artA   = "3f2b8c1e-5d4a-4e6b-9c7d-0a1b2c3d4e5f"
	issuer = "https://vault.example.org/pulsevault"
)

var (
	now    = time.Unix(1_800_000_000, 0)
	keyOld = "old=" + base64.RawURLEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	keyNew = "new=" + base64.RawURLEncoding.EncodeToString([]byte("fedcba9876543210fedcba9876543210"))
)

func signer(t testing.TB, lines ...string) Signer {
	t.Helper()
	k, err := token.ParseKeys([]byte(strings.Join(lines, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	return Signer{Keys: func() (*token.Keyring, error) { return k, nil }, Issuer: issuer}
}

// The app reads the first part as JSON with exactly these names.
func TestShapeTheAppReads(t *testing.T) {
	s := signer(t, keyNew, keyOld)
	tok, c, err := s.Sign(artA, "clinician-42", "", now, DefaultTTL)
	if err != nil {
		t.Fatal(err)
	}
	head, _, ok := strings.Cut(tok, ".")
	if !ok {
		t.Fatal("no dot")
	}
	b, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"artifactId", "iat", "exp", "kid", "issuer", "owner"} {
		if _, ok := m[k]; !ok {
			t.Errorf("claim %s missing: %s", k, b)
		}
	}
	if m["exp"].(float64) != float64(now.Add(DefaultTTL).Unix()) || m["kid"] != "new" || c.Owner != "clinician-42" {
		t.Fatalf("claims %s", b)
	}
	if _, ok := m["use"]; ok {
		t.Fatal("a capability carries no use")
	}
	got, err := s.Verify(tok, "", now.Add(time.Minute))
	if err != nil || got != c {
		t.Fatalf("verify: %+v %v", got, err)
	}
}

func TestVerifyRefusals(t *testing.T) {
	s := signer(t, keyNew, keyOld)
	good, _, _ := s.Sign(artA, "u", "", now, DefaultTTL)
	view, _, _ := s.Sign(artA, "u", UseView, now, 5*time.Minute)
	head, sig, _ := strings.Cut(good, ".")
	body, _ := base64.RawURLEncoding.DecodeString(head)
	reencode := func(edit func(map[string]any)) string {
		var m map[string]any
		_ = json.Unmarshal(body, &m)
		edit(m)
		b, _ := json.Marshal(m)
		return base64.RawURLEncoding.EncodeToString(b) + "." + sig
	}
	oldOnly := signer(t, keyOld)
	otherIssuer := signer(t, keyNew)
	otherIssuer.Issuer = "https://elsewhere.example.org/pulsevault"
	fromOther, _, _ := otherIssuer.Sign(artA, "u", "", now, DefaultTTL)
	long := signer(t, keyNew)
	longTok, _, _ := long.Sign(artA, "u", "", now, MaxTTL)
	for _, tc := range []struct {
		name, tok, use string
		at             time.Time
		want           Reason
	}{
		{"empty", "", "", now, Malformed},
		{"no dot", head, "", now, Malformed},
		{"two dots", good + ".x", "", now, Malformed},
		{"padding", head + "=." + sig, "", now, Malformed},
		{"short mac", head + "." + sig[:10], "", now, Malformed},
		{"not json", base64.RawURLEncoding.EncodeToString([]byte("hello")) + "." + sig, "", now, Malformed},
		{"unknown claim", reencode(func(m map[string]any) { m["scope"] = "all" }), "", now, Malformed},
		{"tampered artifact", reencode(func(m map[string]any) { m["artifactId"] = "9e8d7c6b-5a49-4382-a1b0-c9d8e7f6a5b4" }), "", now, BadSignature},
		{"tampered owner", reencode(func(m map[string]any) { m["owner"] = "attacker" }), "", now, BadSignature},
		{"tampered exp", reencode(func(m map[string]any) { m["exp"] = now.Add(time.Hour).Unix() }), "", now, BadSignature},
		{"use edited to view", reencode(func(m map[string]any) { m["use"] = "view" }), UseView, now, BadSignature},
		{"unknown kid", reencode(func(m map[string]any) { m["kid"] = "gone" }), "", now, UnknownKid},
		{"non-uuid artifact", reencode(func(m map[string]any) { m["artifactId"] = "../../x" }), "", now, Malformed},
		{"expired", good, "", now.Add(DefaultTTL), Expired},
		{"before iat", good, "", now.Add(-time.Hour), NotYetValid},
		{"another issuer", fromOther, "", now, WrongIssuer},
		{"view as capability", view, "", now, WrongUse},
		{"capability as view", good, UseView, now, WrongUse},
		{"oversize", strings.Repeat("A", MaxLen+1), "", now, Malformed},
	} {
		_, err := s.Verify(tc.tok, tc.use, tc.at)
		if got := ReasonOf(err); got != tc.want {
			t.Errorf("%s: reason %q (%v), want %q", tc.name, got, err, tc.want)
		}
	}
	// Rotation: a token of the old key verifies while the key is listed.
	old, _, _ := oldOnly.Sign(artA, "u", "", now, DefaultTTL)
	if _, err := s.Verify(old, "", now); err != nil {
		t.Fatalf("old kid: %v", err)
	}
	if _, err := signer(t, keyNew).Verify(old, "", now); ReasonOf(err) != UnknownKid {
		t.Fatalf("removed kid: %v", err)
	}
	if _, err := long.Verify(longTok, "", now.Add(MaxTTL-time.Second)); err != nil {
		t.Fatalf("MaxTTL token: %v", err)
	}
}

func TestSignBounds(t *testing.T) {
	s := signer(t, keyNew)
	for _, ttl := range []time.Duration{0, -time.Second, MaxTTL + time.Second} {
		if _, _, err := s.Sign(artA, "u", "", now, ttl); err == nil {
			t.Errorf("ttl %s accepted", ttl)
		}
	}
	for _, id := range []string{"", "not-a-uuid", strings.ToUpper(artA)} {
		if _, _, err := s.Sign(id, "u", "", now, time.Minute); err == nil {
			t.Errorf("artifact %q accepted", id)
		}
	}
	if _, _, err := s.Sign(artA, "u", "delete", now, time.Minute); err == nil {
		t.Error("use delete accepted")
	}
}

// FuzzVerify: no input is accepted that was never signed, none panics.
func FuzzVerify(f *testing.F) {
	s := signer(f, keyNew, keyOld)
	good, _, _ := s.Sign(artA, "u", "", now, DefaultTTL)
	view, _, _ := s.Sign(artA, "u", UseView, now, time.Minute)
	f.Add(good[:len(good)-1] + "A")
	f.Add(view[:len(view)-2])
	f.Add(strings.Replace(good, ".", "..", 1))
	f.Add("eyJhcnRpZmFjdElkIjoiIn0.AAAA")
	f.Fuzz(func(t *testing.T, tok string) {
		if tok == good || tok == view {
			return
		}
		for _, use := range []string{"", UseView} {
			if c, err := s.Verify(tok, use, now); err == nil {
				t.Fatalf("accepted a token never signed: %q → %+v", tok, c)
			}
		}
	})
}
