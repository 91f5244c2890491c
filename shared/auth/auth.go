// Package auth verifies the bearer tokens (JWT) of PulseVault's API: HS256
// with a shared secret on a single machine, or RS/ES tokens checked against
// an OIDC provider's JWKS in production.
package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/golang-jwt/jwt/v5"
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

// Options selects the verification mode: HS256Secret, or JWKSURL (with Issuer).
type Options struct {
	HS256Secret []byte // single-machine mode: tokens signed with this secret
	JWKSURL     string // production: the OIDC provider's JWKS endpoint
	Issuer      string // required "iss" (required with JWKSURL, optional with HS256)
	Audience    string // required "aud" when set
	// Leeway is the clock skew allowed on exp and nbf; functions use
	// NewAPI, which sets the package's Leeway.
	Leeway time.Duration
	// RolesClaim is the claim holding the caller's roles: a name, or a dotted
	// path into nested claims such as "realm_access.roles"; default "roles".
	// No other claim is read for roles (a "groups" claim that users fill
	// themselves at the IdP must not grant anything unless chosen here).
	RolesClaim string
}

// DefaultRolesClaim is the roles claim when Options.RolesClaim is empty.
const DefaultRolesClaim = "roles"

// Verifier checks tokens. It is safe for concurrent use.
type Verifier struct {
	o    Options
	oidc *oidc.IDTokenVerifier
}

// New builds a Verifier. Exactly one of HS256Secret and JWKSURL must be set.
func New(o Options) (*Verifier, error) {
	switch {
	case len(o.HS256Secret) > 0 && o.JWKSURL != "":
		return nil, errors.New("auth: set either an HS256 secret or a JWKS URL, not both")
	case o.JWKSURL != "":
		if o.Issuer == "" {
			return nil, errors.New("auth: a JWKS URL needs the issuer it belongs to")
		}
		keys := oidc.NewRemoteKeySet(context.Background(), o.JWKSURL)
		oc := &oidc.Config{ClientID: o.Audience, SkipClientIDCheck: o.Audience == ""}
		if o.Leeway > 0 {
			// go-oidc has no leeway of its own: it compares exp with Now.
			oc.Now = func() time.Time { return time.Now().Add(-o.Leeway) }
		}
		v := oidc.NewVerifier(o.Issuer, keys, oc)
		return &Verifier{o: o, oidc: v}, nil
	case len(o.HS256Secret) >= 32:
		return &Verifier{o: o}, nil
	case len(o.HS256Secret) > 0:
		return nil, errors.New("auth: the HS256 secret must be at least 32 bytes")
	default:
		return nil, errors.New("auth: no HS256 secret and no JWKS URL configured")
	}
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
	if v.oidc != nil {
		tok, err := v.oidc.Verify(ctx, raw)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrUnauthorized, err)
		}
		if err := tok.Claims(&body); err != nil {
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

// Leeway is the clock skew every check of an API token allows on its exp
// and nbf claims, in both modes: a caller's clock a little ahead of ours, or
// a token that expired while its request was in flight, must not make one
// function accept what another refuses. NewAPI applies it; nothing else
// should pick another value.
const Leeway = 30 * time.Second

// SecretName is the secret holding the HS256 key, read when no JWKS URL is set.
const SecretName = "pulsevault-jwt-secret"

// API selects how API tokens are checked: the JWT settings of the
// configuration (JWKS_URL, JWT_ISSUER, JWT_AUDIENCE, JWT_ROLES_CLAIM).
type API struct {
	JWKSURL, Issuer, Audience, RolesClaim string
}

// NewAPI is the one constructor of the verifier every function uses: tokens
// checked against the JWKS when a.JWKSURL is set, else HS256 with the key
// readSecret(SecretName) returns; always with Leeway.
func NewAPI(a API, readSecret func(name string) (string, error)) (*Verifier, error) {
	o := Options{JWKSURL: a.JWKSURL, Issuer: a.Issuer, Audience: a.Audience, RolesClaim: a.RolesClaim, Leeway: Leeway}
	if a.JWKSURL == "" {
		s, err := readSecret(SecretName)
		if err != nil {
			return nil, err
		}
		if s == "" {
			return nil, errors.New("auth: secret " + SecretName + " is empty")
		}
		o.HS256Secret = []byte(s)
	}
	return New(o)
}
