// Package auth verifies the bearer tokens (JWT) of PulseVault's API: HS256
// with a shared secret on a single machine, or RS/ES tokens checked against
// an OIDC provider's JWKS in production.
package auth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/mieweb/pulsevault/shared/platform/config"
	"github.com/mieweb/pulsevault/shared/platform/secrets"
)

// ErrUnauthorized is returned for any token that is missing, malformed,
// expired or not signed by a trusted key. Callers answer 401 without detail.
var ErrUnauthorized = errors.New("unauthorized")

// Claims is what PulseVault reads from a verified token.
type Claims struct {
	Subject string   // who: the uploader identity stored in meta.json and the audit log
	Roles   []string // from the configured roles claim (Options.RolesClaim)
}

// HasRole reports whether the token carries role.
func (c *Claims) HasRole(role string) bool { return slices.Contains(c.Roles, role) }

// Options selects the verification mode: an OIDC issuer (Issuer with
// Discover, or with JWKSURL), or HS256Secret for tests and scripts.
type Options struct {
	HS256Secret []byte // tests and scripts: tokens signed with this secret (AUTH_HS256=on)
	JWKSURL     string // the issuer's JWKS endpoint, when it is not discovered
	// Discover reads the JWKS endpoint from Issuer's
	// /.well-known/openid-configuration (OIDC_ISSUER); done on the first
	// token and retried while the issuer is unreachable, so the API may
	// start before its issuer.
	Discover bool
	Issuer   string // required "iss" (required with JWKSURL and Discover, optional with HS256)
	Audience string // required "aud" when set
	// Leeway is the one clock-skew allowance on exp, nbf and iat (AUTH_LEEWAY).
	Leeway time.Duration
	// Algorithms pins the signature algorithms an issuer's token may use;
	// default RS256 and ES256. HS256 and "none" are refused in issuer mode
	// whatever this says, so a public key can never serve as an HMAC secret.
	Algorithms []string
	// RolesClaim is the claim holding the caller's roles: a name, or a dotted
	// path into nested claims such as "realm_access.roles"; default "roles".
	// No other claim is read for roles (a "groups" claim that users fill
	// themselves at the IdP must not grant anything unless chosen here).
	RolesClaim string
	// HTTPClient fetches discovery and JWKS; default a client with a 10 s timeout.
	HTTPClient *http.Client
}

// DefaultRolesClaim is the roles claim when Options.RolesClaim is empty.
const DefaultRolesClaim = "roles"

// DefaultAlgorithms are the signature algorithms accepted from an issuer.
var DefaultAlgorithms = []string{"RS256", "ES256"}

// asymmetric is every algorithm Options.Algorithms may name.
var asymmetric = []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.ES256, jose.ES384, jose.ES512, jose.PS256, jose.PS384, jose.PS512, jose.EdDSA}

// Verifier checks tokens. It is safe for concurrent use.
type Verifier struct {
	o    Options
	algs []jose.SignatureAlgorithm

	mu      sync.Mutex
	keys    *oidc.RemoteKeySet // nil until discovered
	lastTry time.Time
	lastErr error
	client  *http.Client
}

// discoveryRetry is how long a failed discovery is remembered before the
// next token tries again.
const discoveryRetry = 2 * time.Second

// New builds a Verifier. Exactly one of HS256Secret and an issuer
// (JWKSURL or Discover) must be set.
func New(o Options) (*Verifier, error) {
	issuerMode := o.JWKSURL != "" || o.Discover
	switch {
	case len(o.HS256Secret) > 0 && issuerMode:
		return nil, errors.New("auth: set either an HS256 secret or an OIDC issuer, not both")
	case o.JWKSURL != "" && o.Discover:
		return nil, errors.New("auth: set either a JWKS URL or discovery, not both")
	case issuerMode:
		if o.Issuer == "" {
			return nil, errors.New("auth: an OIDC verifier needs the issuer its tokens come from")
		}
		if o.Leeway < 0 || o.Leeway > MaxLeeway {
			return nil, fmt.Errorf("auth: leeway must be from 0 to %s", MaxLeeway)
		}
		names := o.Algorithms
		if len(names) == 0 {
			names = DefaultAlgorithms
		}
		v := &Verifier{o: o}
		for _, n := range names {
			i := slices.Index(asymmetric, jose.SignatureAlgorithm(n))
			if i < 0 {
				return nil, fmt.Errorf("auth: algorithm %q is not an asymmetric JWS algorithm", n)
			}
			v.algs = append(v.algs, asymmetric[i])
		}
		v.client = o.HTTPClient
		if v.client == nil {
			v.client = &http.Client{Timeout: 10 * time.Second}
		}
		if o.JWKSURL != "" {
			v.keys = oidc.NewRemoteKeySet(oidc.ClientContext(context.Background(), v.client), o.JWKSURL)
		}
		return v, nil
	case len(o.HS256Secret) >= 32:
		return &Verifier{o: o}, nil
	case len(o.HS256Secret) > 0:
		return nil, errors.New("auth: the HS256 secret must be at least 32 bytes")
	default:
		return nil, errors.New("auth: no OIDC issuer and no HS256 secret configured")
	}
}

// MaxLeeway bounds Options.Leeway.
const MaxLeeway = 5 * time.Minute

// keySet is the issuer's JWKS, discovering it on first use. A RemoteKeySet
// refetches the JWKS when a token names a key it does not hold, which is
// how a rotated signing key is picked up.
func (v *Verifier) keySet(ctx context.Context) (*oidc.RemoteKeySet, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.keys != nil {
		return v.keys, nil
	}
	if v.lastErr != nil && time.Since(v.lastTry) < discoveryRetry {
		return nil, v.lastErr
	}
	v.lastTry = time.Now()
	dctx, cancel := context.WithTimeout(oidc.ClientContext(context.WithoutCancel(ctx), v.client), 10*time.Second)
	defer cancel()
	p, err := oidc.NewProvider(dctx, v.o.Issuer)
	if err != nil {
		v.lastErr = fmt.Errorf("discovery of %s: %w", v.o.Issuer, err)
		return nil, v.lastErr
	}
	var doc struct {
		JWKSURI string `json:"jwks_uri"`
	}
	if err := p.Claims(&doc); err != nil || doc.JWKSURI == "" {
		v.lastErr = fmt.Errorf("discovery of %s: no jwks_uri", v.o.Issuer)
		return nil, v.lastErr
	}
	v.keys = oidc.NewRemoteKeySet(oidc.ClientContext(context.Background(), v.client), doc.JWKSURI)
	v.lastErr = nil
	return v.keys, nil
}

// tokenClaims is the body SignHS256 writes.
type tokenClaims struct {
	jwt.RegisteredClaims
	Roles []string `json:"roles,omitempty"`
}

// Verify checks raw and returns its claims, or an error wrapping ErrUnauthorized.
func (v *Verifier) Verify(ctx context.Context, raw string) (*Claims, error) {
	if raw == "" {
		return nil, fmt.Errorf("%w: no token", ErrUnauthorized)
	}
	body := jwt.MapClaims{}
	if v.algs != nil {
		// The algorithm is pinned before any key is looked at: "none",
		// HS256 (an RSA public key used as an HMAC secret) and anything not
		// configured fail here.
		if _, err := jose.ParseSigned(raw, v.algs); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrUnauthorized, err)
		}
		keys, err := v.keySet(ctx)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrUnauthorized, err)
		}
		payload, err := keys.VerifySignature(ctx, raw)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrUnauthorized, err)
		}
		if err := json.Unmarshal(payload, &body); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrUnauthorized, err)
		}
		opts := []jwt.ParserOption{jwt.WithExpirationRequired(), jwt.WithIssuedAt(), jwt.WithLeeway(v.o.Leeway), jwt.WithIssuer(v.o.Issuer)}
		if v.o.Audience != "" {
			opts = append(opts, jwt.WithAudience(v.o.Audience))
		}
		if err := jwt.NewValidator(opts...).Validate(body); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrUnauthorized, err)
		}
	} else {
		opts := []jwt.ParserOption{jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired(), jwt.WithLeeway(v.o.Leeway)}
		if v.o.Issuer != "" {
			opts = append(opts, jwt.WithIssuer(v.o.Issuer))
		}
		if v.o.Audience != "" {
			opts = append(opts, jwt.WithAudience(v.o.Audience))
		}
		_, err := jwt.ParseWithClaims(raw, body, func(*jwt.Token) (any, error) { return v.o.HS256Secret, nil }, opts...)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrUnauthorized, err)
		}
	}
	sub, err := body.GetSubject()
	if err != nil || sub == "" {
		return nil, fmt.Errorf("%w: token has no subject", ErrUnauthorized)
	}
	claim := v.o.RolesClaim
	if claim == "" {
		claim = DefaultRolesClaim
	}
	return &Claims{Subject: sub, Roles: rolesAt(body, claim)}, nil
}

// rolesAt reads the roles at claim: a top-level claim of that exact name
// (names such as "https://example.org/roles" hold dots), else the dotted
// path into nested objects. A list of strings or a single string is read;
// anything else is no role.
func rolesAt(body map[string]any, claim string) []string {
	v, ok := body[claim]
	if !ok {
		v = body
		for name := range strings.SplitSeq(claim, ".") {
			m, isMap := v.(map[string]any)
			if !isMap {
				return nil
			}
			v = m[name]
		}
	}
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		var roles []string
		for _, r := range x {
			if s, ok := r.(string); ok {
				roles = append(roles, s)
			}
		}
		return roles
	}
	return nil
}

// FromRequest verifies the request's "Authorization: Bearer" token.
func (v *Verifier) FromRequest(r *http.Request) (*Claims, error) {
	h := r.Header.Get("Authorization")
	scheme, raw, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return nil, fmt.Errorf("%w: no bearer token", ErrUnauthorized)
	}
	return v.Verify(r.Context(), strings.TrimSpace(raw))
}

// SignHS256 issues a token for subject with roles, valid for ttl: the dev
// login token and tests. Production tokens come from the OIDC provider.
func SignHS256(secret []byte, issuer, audience, subject string, roles []string, ttl time.Duration) (string, error) {
	now := time.Now()
	tc := tokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject: subject, Issuer: issuer, IssuedAt: jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now.Add(-time.Minute)), ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
		Roles: roles,
	}
	if audience != "" {
		tc.Audience = jwt.ClaimStrings{audience}
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, tc).SignedString(secret)
}

// SecretName is the secret holding the HS256 key of AUTH_HS256=on.
const SecretName = "pulsevault-jwt-secret"

// HS256SecretName is SecretName.
const HS256SecretName = SecretName

// Leeway is the default of AUTH_LEEWAY: the one clock skew every check of an
// API token allows on exp, nbf and iat, in every mode, so that no function
// accepts a token another refuses.
const Leeway = 30 * time.Second

// NewVerifier builds the API's token verifier from the configuration, the
// one constructor every function uses: OIDC_ISSUER (discovery + JWKS), or
// JWKS_URL with JWT_ISSUER, or — only with AUTH_HS256=on — HS256 with the
// pulsevault-jwt-secret secret. With none of them it refuses to start, so
// an API is never left open nor silently on a shared secret.
func NewVerifier(cfg config.Config) (*Verifier, error) {
	o := Options{Audience: cfg.JWTAudience, RolesClaim: cfg.JWTRolesClaim, Leeway: cfg.AuthLeeway, Algorithms: cfg.OIDCAlgorithms}
	switch {
	case cfg.OIDCIssuer != "":
		o.Issuer, o.Discover = cfg.OIDCIssuer, true
		if cfg.OIDCCAFile != "" {
			pem, err := os.ReadFile(cfg.OIDCCAFile)
			if err != nil {
				return nil, fmt.Errorf("auth: OIDC_CA_FILE: %w", err)
			}
			pool, err := x509.SystemCertPool()
			if err != nil {
				pool = x509.NewCertPool()
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, errors.New("auth: OIDC_CA_FILE holds no PEM certificate")
			}
			tr := http.DefaultTransport.(*http.Transport).Clone()
			tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
			o.HTTPClient = &http.Client{Timeout: 10 * time.Second, Transport: tr}
		}
	case cfg.JWKSURL != "":
		o.Issuer, o.JWKSURL = cfg.JWTIssuer, cfg.JWKSURL
	case cfg.AuthHS256:
		s, err := secrets.ReadString(HS256SecretName)
		if err != nil {
			return nil, err
		}
		if s == "" {
			return nil, errors.New("auth: secret " + HS256SecretName + " is empty")
		}
		o.Issuer, o.HS256Secret, o.Algorithms = cfg.JWTIssuer, []byte(s), nil
	default:
		return nil, errors.New("auth: no token issuer: set OIDC_ISSUER (or AUTH_HS256=on with the " + HS256SecretName + " secret, for tests and scripts)")
	}
	return New(o)
}
