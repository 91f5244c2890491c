package auth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

func TestHS256(t *testing.T) {
	v, err := New(Options{HS256Secret: secret, Issuer: "pulsevault", Audience: "pulsevault-api"})
	if err != nil {
		t.Fatal(err)
	}
	good, _ := SignHS256(secret, "pulsevault", "pulsevault-api", "clinician-7", []string{"viewer"}, time.Minute)
	c, err := v.Verify(context.Background(), good)
	if err != nil || c.Subject != "clinician-7" || !c.HasRole("viewer") || c.HasRole("admin") {
		t.Fatalf("good token: %+v %v", c, err)
	}

	expired, _ := SignHS256(secret, "pulsevault", "pulsevault-api", "u", nil, -time.Minute)
	otherKey, _ := SignHS256([]byte("another-secret-another-secret-xx"), "pulsevault", "pulsevault-api", "u", nil, time.Minute)
	wrongAud, _ := SignHS256(secret, "pulsevault", "someone-else", "u", nil, time.Minute)
	wrongIss, _ := SignHS256(secret, "evil", "pulsevault-api", "u", nil, time.Minute)
	noSub, _ := SignHS256(secret, "pulsevault", "pulsevault-api", "", nil, time.Minute)
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "u", "iss": "pulsevault", "aud": "pulsevault-api",
		"exp": time.Now().Add(time.Minute).Unix()}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	noExp, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "u", "iss": "pulsevault", "aud": "pulsevault-api"}).SignedString(secret)
	for name, tok := range map[string]string{
		"empty": "", "garbage": "not.a.jwt", "expired": expired, "other key": otherKey, "wrong audience": wrongAud,
		"wrong issuer": wrongIss, "no subject": noSub, "alg none": none, "no expiry": noExp, "tampered": tamper(good),
	} {
		if _, err := v.Verify(context.Background(), tok); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("%s: want ErrUnauthorized, got %v", name, err)
		}
	}
}

// tamper changes one signature character well inside it: the last ones
// carry padding bits a lenient decoder ignores, so "…xx" at the end could
// leave the signature as it was (about 1 run in 1,000).
func tamper(tok string) string {
	i := len(tok) - 10
	c := byte('A')
	if tok[i] == 'A' {
		c = 'B'
	}
	return tok[:i] + string(c) + tok[i+1:]
}

func TestFromRequest(t *testing.T) {
	v, _ := New(Options{HS256Secret: secret})
	tok, _ := SignHS256(secret, "", "", "u1", nil, time.Minute)
	r := httptest.NewRequest("GET", "/", nil)
	if _, err := v.FromRequest(r); !errors.Is(err, ErrUnauthorized) {
		t.Fatal("no header accepted")
	}
	r.Header.Set("Authorization", "Basic "+tok)
	if _, err := v.FromRequest(r); !errors.Is(err, ErrUnauthorized) {
		t.Fatal("Basic scheme accepted")
	}
	r.Header.Set("Authorization", "bearer "+tok)
	if c, err := v.FromRequest(r); err != nil || c.Subject != "u1" {
		t.Fatalf("bearer: %v", err)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	for _, o := range []Options{{}, {HS256Secret: []byte("short")}, {HS256Secret: secret, JWKSURL: "http://x"}, {JWKSURL: "http://x"}} {
		if _, err := New(o); err == nil {
			t.Errorf("accepted %+v", o)
		}
	}
}

// JWKS mode, against a JWKS served over HTTP like an OIDC provider's.
func TestJWKS(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	jwks := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { json.NewEncoder(w).Encode(jwks) }))
	defer srv.Close()
	v, err := New(Options{JWKSURL: srv.URL, Issuer: "https://idp.example", Audience: "pulsevault-api", RolesClaim: "realm_access.roles"})
	if err != nil {
		t.Fatal(err)
	}
	sign := func(k *rsa.PrivateKey, claims jwt.MapClaims) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
		tok.Header["kid"] = "k1"
		s, err := tok.SignedString(k)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	base := func() jwt.MapClaims {
		return jwt.MapClaims{"sub": "nurse-3", "iss": "https://idp.example", "aud": "pulsevault-api",
			"exp": time.Now().Add(time.Minute).Unix(), "groups": []string{"pulsevault:admin"},
			"realm_access": map[string]any{"roles": []string{"pulsevault:viewer"}}}
	}
	c, err := v.Verify(context.Background(), sign(key, base()))
	if err != nil || c.Subject != "nurse-3" || !c.HasRole("pulsevault:viewer") || c.HasRole("pulsevault:admin") {
		t.Fatalf("good RS256 token: %+v %v", c, err)
	}
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	wrongAud := base()
	wrongAud["aud"] = "x"
	expired := base()
	expired["exp"] = time.Now().Add(-time.Hour).Unix()
	for name, tok := range map[string]string{"other key": sign(other, base()), "wrong audience": sign(key, wrongAud), "expired": sign(key, expired)} {
		if _, err := v.Verify(context.Background(), tok); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("%s: want ErrUnauthorized, got %v", name, err)
		}
	}
}

// Regression (issue 15, finding 9): a group a user could create themselves at
// the IdP ("viewer" in groups) is no role: only the configured claim counts.
func TestGroupsAreNoRolesByDefault(t *testing.T) {
	v, err := New(Options{HS256Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "anyone",
		"exp": time.Now().Add(time.Minute).Unix(), "groups": []string{"pulsevault:viewer", "viewer"}}).SignedString(secret)
	c, err := v.Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Roles) != 0 {
		t.Fatalf("roles %v taken from the groups claim", c.Roles)
	}
}

// The roles claim is configurable: a name, a dotted path into nested
// claims, or a name that itself holds dots; only that claim is read.
func TestRolesClaim(t *testing.T) {
	body := jwt.MapClaims{"sub": "u", "exp": time.Now().Add(time.Minute).Unix(),
		"roles":                            []string{"pulsevault:viewer"},
		"groups":                           []string{"pulsevault:admin"},
		"realm_access":                     map[string]any{"roles": []string{"pulsevault:admin", "offline_access"}},
		"https://pulsevault.example/roles": []string{"pulsevault:viewer", "x"},
		"scalar":                           "pulsevault:admin",
		"mixed":                            []any{"pulsevault:viewer", 7, map[string]any{}},
		"number":                           7,
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, body).SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	for claim, want := range map[string][]string{
		"":                                 {"pulsevault:viewer"},
		"roles":                            {"pulsevault:viewer"},
		"groups":                           {"pulsevault:admin"},
		"realm_access.roles":               {"pulsevault:admin", "offline_access"},
		"https://pulsevault.example/roles": {"pulsevault:viewer", "x"},
		"scalar":                           {"pulsevault:admin"},
		"mixed":                            {"pulsevault:viewer"},
		"number":                           nil,
		"realm_access":                     nil,
		"realm_access.roles.deeper":        nil,
		"missing.path":                     nil,
	} {
		v, err := New(Options{HS256Secret: secret, RolesClaim: claim})
		if err != nil {
			t.Fatal(err)
		}
		c, err := v.Verify(context.Background(), tok)
		if err != nil {
			t.Fatalf("%q: %v", claim, err)
		}
		if !slices.Equal(c.Roles, want) {
			t.Errorf("roles claim %q: %v, want %v", claim, c.Roles, want)
		}
	}
}
