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
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
)

// NewAPI applies the one Leeway in both modes: a token 10 s past exp
// passes, one past the leeway fails, with HS256 and with a JWKS alike.
func TestNewAPILeewayInBothModes(t *testing.T) {
	hs, err := NewAPI(API{Issuer: "pv"}, func(name string) (string, error) {
		if name != SecretName {
			return "", os.ErrNotExist
		}
		return string(secret), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	jwks := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { json.NewEncoder(w).Encode(jwks) }))
	defer srv.Close()
	oidc, err := NewAPI(API{JWKSURL: srv.URL, Issuer: "pv"}, func(string) (string, error) {
		t.Error("JWKS mode read the HS256 secret")
		return "", nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		past time.Duration
		ok   bool
	}{{10 * time.Second, true}, {Leeway + 10*time.Second, false}} {
		exp := time.Now().Add(-tc.past)
		hsTok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "u1", "iss": "pv", "exp": exp.Unix()}).SignedString(secret)
		rs := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"sub": "u1", "iss": "pv", "exp": exp.Unix()})
		rs.Header["kid"] = "k1"
		rsTok, _ := rs.SignedString(key)
		for mode, v := range map[string]struct {
			v   *Verifier
			tok string
		}{"HS256": {hs, hsTok}, "JWKS": {oidc, rsTok}} {
			_, err := v.v.Verify(context.Background(), v.tok)
			if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrUnauthorized)) {
				t.Errorf("%s, %s past exp: %v, want accepted=%v", mode, tc.past, err, tc.ok)
			}
		}
	}
	if _, err := NewAPI(API{}, func(string) (string, error) { return "", nil }); err == nil {
		t.Error("an empty HS256 secret was accepted")
	}
}
