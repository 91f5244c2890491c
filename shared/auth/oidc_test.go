package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/mieweb/pulsevault/shared/platform/config"
	"github.com/mieweb/pulsevault/shared/platform/secrets"
)

// fakeIssuer serves a discovery document and a JWKS whose keys the test
// can rotate, like an OpenID provider.
type fakeIssuer struct {
	srv  *httptest.Server
	mu   sync.Mutex
	keys []jose.JSONWebKey
	hits int // discovery requests
}

func newFakeIssuer(t *testing.T) *fakeIssuer {
	f := &fakeIssuer{}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.hits++
		f.mu.Unlock()
		json.NewEncoder(w).Encode(map[string]any{"issuer": f.srv.URL, "jwks_uri": f.srv.URL + "/keys",
			"authorization_endpoint": f.srv.URL + "/auth", "token_endpoint": f.srv.URL + "/token"})
	})
	mux.HandleFunc("/keys", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: f.keys})
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeIssuer) publish(kid, alg string, pub any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys = append(f.keys, jose.JSONWebKey{Key: pub, KeyID: kid, Algorithm: alg, Use: "sig"})
}

func signWith(t *testing.T, m jwt.SigningMethod, kid string, key any, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, claims)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func claimsFor(iss string, exp time.Duration) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{"sub": "nurse-3", "iss": iss, "aud": []string{"pulsevault-vitals", "pulsevault-api"},
		"iat": now.Unix(), "exp": now.Add(exp).Unix(), "roles": []string{"pulsevault:viewer"}}
}

// Issuer mode: discovery + JWKS, pinned algorithms, iss/aud/exp/nbf with
// the one leeway, key rotation; every refusal is ErrUnauthorized.
func TestIssuerMode(t *testing.T) {
	f := newFakeIssuer(t)
	k1, _ := rsa.GenerateKey(rand.Reader, 2048)
	f.publish("k1", "RS256", &k1.PublicKey)
	const leeway = 30 * time.Second
	v, err := New(Options{Discover: true, Issuer: f.srv.URL, Audience: "pulsevault-api", Leeway: leeway})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	good := signWith(t, jwt.SigningMethodRS256, "k1", k1, claimsFor(f.srv.URL, time.Minute))
	c, err := v.Verify(ctx, good)
	if err != nil || c.Subject != "nurse-3" || !c.HasRole("pulsevault:viewer") {
		t.Fatalf("good token: %+v %v", c, err)
	}
	within := claimsFor(f.srv.URL, -leeway/2)
	if _, err := v.Verify(ctx, signWith(t, jwt.SigningMethodRS256, "k1", k1, within)); err != nil {
		t.Errorf("expired %s ago, within the %s leeway: %v", leeway/2, leeway, err)
	}

	// Rotation: a key published after the first fetch is picked up.
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	f.publish("k2", "ES256", &ec.PublicKey)
	if _, err := v.Verify(ctx, signWith(t, jwt.SigningMethodES256, "k2", ec, claimsFor(f.srv.URL, time.Minute))); err != nil {
		t.Errorf("ES256 token of a rotated-in key: %v", err)
	}

	pubDER, _ := x509.MarshalPKIXPublicKey(&k1.PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	past := claimsFor(f.srv.URL, -2*leeway)
	future := claimsFor(f.srv.URL, time.Hour)
	future["nbf"] = time.Now().Add(2 * leeway).Unix()
	wrongAud := claimsFor(f.srv.URL, time.Minute)
	wrongAud["aud"] = "someone-else"
	noExp := claimsFor(f.srv.URL, time.Minute)
	delete(noExp, "exp")
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, claimsFor(f.srv.URL, time.Minute)).SignedString(jwt.UnsafeAllowNoneSignatureType)
	rs512, _ := rsa.GenerateKey(rand.Reader, 2048)
	f.publish("k3", "RS512", &rs512.PublicKey)
	parts := strings.Split(good, ".")
	sig := []byte(parts[2])
	sig[5] ^= 1
	for name, tok := range map[string]string{
		"alg none":                   none,
		"HS256 with the public key":  signWith(t, jwt.SigningMethodHS256, "k1", pubPEM, claimsFor(f.srv.URL, time.Minute)),
		"HS256 with a shared secret": signWith(t, jwt.SigningMethodHS256, "k1", secret, claimsFor(f.srv.URL, time.Minute)),
		"tampered signature":         parts[0] + "." + parts[1] + "." + string(sig),
		"tampered payload":           parts[0] + "." + strings.TrimRight(parts[1], "=") + "x." + parts[2],
		"unknown key":                signWith(t, jwt.SigningMethodRS256, "k1", other, claimsFor(f.srv.URL, time.Minute)),
		"another issuer":             signWith(t, jwt.SigningMethodRS256, "k1", k1, claimsFor("https://evil.example", time.Minute)),
		"expired past the leeway":    signWith(t, jwt.SigningMethodRS256, "k1", k1, past),
		"not yet valid past leeway":  signWith(t, jwt.SigningMethodRS256, "k1", k1, future),
		"wrong audience":             signWith(t, jwt.SigningMethodRS256, "k1", k1, wrongAud),
		"no expiry":                  signWith(t, jwt.SigningMethodRS256, "k1", k1, noExp),
		"algorithm not pinned":       signWith(t, jwt.SigningMethodRS512, "k3", rs512, claimsFor(f.srv.URL, time.Minute)),
	} {
		if _, err := v.Verify(ctx, tok); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("%s: want ErrUnauthorized, got %v", name, err)
		}
	}
}

// A token from another issuer is refused even when it is signed with a
// key the JWKS holds: iss must equal OIDC_ISSUER.
func TestOtherIssuerRefused(t *testing.T) {
	a, b := newFakeIssuer(t), newFakeIssuer(t)
	ka, _ := rsa.GenerateKey(rand.Reader, 2048)
	kb, _ := rsa.GenerateKey(rand.Reader, 2048)
	a.publish("a", "RS256", &ka.PublicKey)
	b.publish("b", "RS256", &kb.PublicKey)
	v, err := New(Options{Discover: true, Issuer: a.srv.URL, Audience: "pulsevault-api"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), signWith(t, jwt.SigningMethodRS256, "b", kb, claimsFor(b.srv.URL, time.Minute))); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("token of issuer B accepted by a verifier of A: %v", err)
	}
}

// The API may start before its issuer: discovery is retried, not fatal.
func TestDiscoveryRetried(t *testing.T) {
	f := newFakeIssuer(t)
	k, _ := rsa.GenerateKey(rand.Reader, 2048)
	f.publish("k", "RS256", &k.PublicKey)
	url := f.srv.URL
	f.srv.Close()
	v, err := New(Options{Discover: true, Issuer: url, Audience: "pulsevault-api"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), signWith(t, jwt.SigningMethodRS256, "k", k, claimsFor(url, time.Minute))); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("issuer down: want ErrUnauthorized, got %v", err)
	}
	f2 := newFakeIssuer(t) // a live issuer, same verifier type, proves a later try discovers
	f2.publish("k", "RS256", &k.PublicKey)
	v2, _ := New(Options{Discover: true, Issuer: f2.srv.URL, Audience: "pulsevault-api"})
	for range 2 {
		if _, err := v2.Verify(context.Background(), signWith(t, jwt.SigningMethodRS256, "k", k, claimsFor(f2.srv.URL, time.Minute))); err != nil {
			t.Fatal(err)
		}
	}
	if f2.hits != 1 {
		t.Errorf("discovery fetched %d times, want once", f2.hits)
	}
}

// NewVerifier is the one constructor: OIDC_ISSUER, or HS256 only when
// AUTH_HS256=on, and nothing at all refuses to start.
func TestNewVerifierModes(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(secrets.EnvDir, dir)
	if err := os.WriteFile(filepath.Join(dir, HS256SecretName), secret, 0o600); err != nil {
		t.Fatal(err)
	}
	load := func(env map[string]string) config.Config {
		c, err := config.Load("t", nil, func(k string) string { return env[k] })
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if _, err := NewVerifier(load(nil)); err == nil || !strings.Contains(err.Error(), "OIDC_ISSUER") {
		t.Fatalf("no issuer and HS256 off: %v, want a refusal naming OIDC_ISSUER", err)
	}
	hs, err := NewVerifier(load(map[string]string{"AUTH_HS256": "on"}))
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := SignHS256(secret, "pulsevault", "pulsevault-api", "script", nil, time.Minute)
	if _, err := hs.Verify(context.Background(), tok); err != nil {
		t.Fatalf("AUTH_HS256=on refused an HS256 token: %v", err)
	}
	f := newFakeIssuer(t)
	k, _ := rsa.GenerateKey(rand.Reader, 2048)
	f.publish("k", "RS256", &k.PublicKey)
	ov, err := NewVerifier(load(map[string]string{"OIDC_ISSUER": f.srv.URL}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ov.Verify(context.Background(), tok); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("OIDC mode accepted an HS256 token: %v", err)
	}
	if _, err := ov.Verify(context.Background(), signWith(t, jwt.SigningMethodRS256, "k", k, claimsFor(f.srv.URL, time.Minute))); err != nil {
		t.Fatalf("OIDC mode refused its issuer's token: %v", err)
	}
	if _, err := config.Load("t", nil, func(k string) string {
		return map[string]string{"AUTH_HS256": "on", "OIDC_ISSUER": f.srv.URL}[k]
	}); err == nil {
		t.Fatal("AUTH_HS256=on with OIDC_ISSUER accepted")
	}
}

// An issuer on a private CA (pulsevault dev's self-signed origin) is
// trusted only through OIDC_CA_FILE.
func TestIssuerCAFile(t *testing.T) {
	k, _ := rsa.GenerateKey(rand.Reader, 2048)
	var srv *httptest.Server
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"issuer": srv.URL, "jwks_uri": srv.URL + "/keys"})
	})
	mux.HandleFunc("/keys", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &k.PublicKey, KeyID: "k", Algorithm: "RS256", Use: "sig"}}})
	})
	srv = httptest.NewTLSServer(mux)
	defer srv.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600)
	tok := signWith(t, jwt.SigningMethodRS256, "k", k, claimsFor(srv.URL, time.Minute))
	for _, tc := range []struct {
		ca   string
		want bool
	}{{"", false}, {caFile, true}} {
		cfg, err := config.Load("t", nil, func(key string) string {
			return map[string]string{"OIDC_ISSUER": srv.URL, "OIDC_CA_FILE": tc.ca}[key]
		})
		if err != nil {
			t.Fatal(err)
		}
		v, err := NewVerifier(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Verify(context.Background(), tok); (err == nil) != tc.want {
			t.Errorf("OIDC_CA_FILE %q: %v", tc.ca, err)
		}
	}
}
