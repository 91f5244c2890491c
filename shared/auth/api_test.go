package auth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/mieweb/pulsevault/shared/platform/config"
	"github.com/mieweb/pulsevault/shared/platform/secrets"
)

// NewVerifier applies the one leeway (AUTH_LEEWAY, default Leeway) in
// every mode: a token 10 s past exp passes, one past the leeway fails,
// with HS256 (AUTH_HS256=on) and with a JWKS alike.
func TestNewVerifierLeewayInEveryMode(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(secrets.EnvDir, dir)
	if err := os.WriteFile(filepath.Join(dir, SecretName), secret, 0o600); err != nil {
		t.Fatal(err)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	jwks := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { json.NewEncoder(w).Encode(jwks) }))
	defer srv.Close()
	load := func(env map[string]string) *Verifier {
		env["JWT_ISSUER"] = "pv"
		c, err := config.Load("t", nil, func(k string) string { return env[k] })
		if err != nil {
			t.Fatal(err)
		}
		if c.AuthLeeway != Leeway {
			t.Fatalf("AUTH_LEEWAY default %s, want %s", c.AuthLeeway, Leeway)
		}
		v, err := NewVerifier(c)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	hs := load(map[string]string{"AUTH_HS256": "on"})
	jw := load(map[string]string{"JWKS_URL": srv.URL})
	for _, tc := range []struct {
		past time.Duration
		ok   bool
	}{{10 * time.Second, true}, {Leeway + 10*time.Second, false}} {
		exp := time.Now().Add(-tc.past)
		claims := jwt.MapClaims{"sub": "u1", "iss": "pv", "aud": "pulsevault-api", "exp": exp.Unix()}
		hsTok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
		rs := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
		rs.Header["kid"] = "k1"
		rsTok, _ := rs.SignedString(key)
		for mode, v := range map[string]struct {
			v   *Verifier
			tok string
		}{"HS256": {hs, hsTok}, "JWKS": {jw, rsTok}} {
			_, err := v.v.Verify(context.Background(), v.tok)
			if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrUnauthorized)) {
				t.Errorf("%s, %s past exp: %v, want accepted=%v", mode, tc.past, err, tc.ok)
			}
		}
	}
	os.WriteFile(filepath.Join(dir, SecretName), nil, 0o600)
	c, _ := config.Load("t", nil, func(k string) string { return map[string]string{"AUTH_HS256": "on"}[k] })
	if _, err := NewVerifier(c); err == nil {
		t.Error("an empty HS256 secret was accepted")
	}
}
