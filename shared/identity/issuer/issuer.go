// Package issuer is PulseVault's embedded OpenID provider, for one machine
// or a lab without an identity provider of its own. The protocol is
// github.com/zitadel/oidc/v3's certified op package; this package supplies
// its storage (JetStream KV, so any replica answers any step), the users
// (users.yaml), the signing keys (rotated with overlap) and the login and
// device-approval pages.
//
// Two public clients: Vitals (authorization code + PKCE S256 only, exact
// redirect URIs) and the CLI (device authorization grant, RFC 8628). Both
// get JWT access tokens (default 10 min) whose audience holds the API's
// (JWT_AUDIENCE) and whose roles claim (JWT_ROLES_CLAIM) holds the user's
// roles, and rotating refresh tokens.
package issuer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"

	"github.com/mieweb/pulsevault/shared/audit/event"
	"github.com/mieweb/pulsevault/shared/bus"
	"github.com/mieweb/pulsevault/shared/identity/users"
	"github.com/mieweb/pulsevault/shared/topology"
)

// Options configures an Issuer.
type Options struct {
	// Issuer is the provider's public URL, e.g. http://127.0.0.1:3000/oidc:
	// the iss of its tokens and the prefix of every endpoint.
	Issuer string
	Users  *users.Store
	JS     jetstream.JetStream
	// Replicas of the two KV buckets (NATS_REPLICAS).
	Replicas int
	// Audit receives login.succeeded, login.failed and logout; nil skips.
	Audit *event.Publisher
	Log   *slog.Logger

	VitalsClientID     string
	VitalsRedirectURIs []string // exact redirect URIs of Vitals
	VitalsLogoutURIs   []string // exact post_logout_redirect_uri values
	CLIClientID        string

	APIAudience string // added to every access token's aud (JWT_AUDIENCE)
	RolesClaim  string // claim the roles go in (JWT_ROLES_CLAIM; a plain name)

	AccessTTL   time.Duration // access and ID tokens; default 10 min
	RefreshTTL  time.Duration // refresh tokens; default 14 days
	DeviceTTL   time.Duration // device codes; default 10 min
	SigningAlg  string        // RS256 (default) or ES256
	KeyRotation time.Duration // a signing key signs this long; default 30 days
	KeyOverlap  time.Duration // then stays in the JWKS this long; default 24 h

	// Throttling of failed sign-ins in a sliding window.
	ThrottleWindow     time.Duration // default 15 min
	MaxFailsPerAccount int           // default 5
	MaxFailsPerAddress int           // default 20
	// TrustedProxies are the peers whose X-Forwarded-For names the client
	// address (nginx in front); default loopback only.
	TrustedProxies []netip.Prefix

	// AllowInsecure permits an http:// issuer (loopback dev stacks).
	AllowInsecure bool
}

// Issuer is a running provider; Handler serves it.
type Issuer struct {
	o        Options
	users    *users.Store
	keys     *keyring
	st       state
	log      *slog.Logger
	provider *op.Provider
	clients  map[string]*client
	throttle *throttle
	prefix   string // URL path of the issuer, e.g. /oidc
	handler  http.Handler
	// formTargets are the origins of the registered redirect URIs, for the
	// login page's CSP form-action (" http://a:1 https://b").
	formTargets string
}

func (o *Options) defaults() {
	if o.AccessTTL == 0 {
		o.AccessTTL = 10 * time.Minute
	}
	if o.RefreshTTL == 0 {
		o.RefreshTTL = 14 * 24 * time.Hour
	}
	if o.DeviceTTL == 0 {
		o.DeviceTTL = 10 * time.Minute
	}
	if o.SigningAlg == "" {
		o.SigningAlg = "RS256"
	}
	if o.KeyRotation == 0 {
		o.KeyRotation = 30 * 24 * time.Hour
	}
	if o.KeyOverlap == 0 {
		o.KeyOverlap = 24 * time.Hour
	}
	if o.ThrottleWindow == 0 {
		o.ThrottleWindow = 15 * time.Minute
	}
	if o.MaxFailsPerAccount == 0 {
		o.MaxFailsPerAccount = 5
	}
	if o.MaxFailsPerAddress == 0 {
		o.MaxFailsPerAddress = 20
	}
	if o.TrustedProxies == nil {
		o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	}
	if o.RolesClaim == "" {
		o.RolesClaim = "roles"
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
}

// New creates the KV buckets when missing and builds the provider.
func New(ctx context.Context, o Options) (*Issuer, error) {
	o.defaults()
	u, err := url.Parse(o.Issuer)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || u.RawQuery != "" {
		return nil, fmt.Errorf("issuer: %q is not an http(s) URL", o.Issuer)
	}
	if u.Scheme == "http" && !o.AllowInsecure {
		return nil, errors.New("issuer: an http:// issuer is only for a loopback dev stack")
	}
	if o.Users == nil || o.JS == nil || o.VitalsClientID == "" || o.CLIClientID == "" {
		return nil, errors.New("issuer: users, JetStream and both client ids are required")
	}
	if o.AccessTTL < 10*time.Second || o.AccessTTL > time.Hour {
		return nil, errors.New("issuer: the access token lifetime must be from 10s to 1h")
	}
	if strings.ContainsAny(o.RolesClaim, ".") {
		return nil, errors.New("issuer: the roles claim must be a plain claim name (JWT_ROLES_CLAIM) to be filled by the embedded provider")
	}
	stKV, err := bus.EnsureKeyValue(ctx, o.JS, jetstream.KeyValueConfig{Bucket: topology.KVIdentity,
		Description: "embedded OpenID provider state: auth requests, codes, refresh tokens, device codes",
		TTL:         o.RefreshTTL + time.Hour, Replicas: o.Replicas, History: 1})
	if err != nil {
		return nil, err
	}
	keyKV, err := bus.EnsureKeyValue(ctx, o.JS, jetstream.KeyValueConfig{Bucket: topology.KVIdentityKeys,
		Description: "embedded OpenID provider signing keys", Replicas: o.Replicas, History: 1})
	if err != nil {
		return nil, err
	}
	iss := &Issuer{o: o, users: o.Users, st: state{stKV}, log: o.Log,
		keys:     &keyring{kv: keyKV, alg: jose.SignatureAlgorithm(o.SigningAlg), rotate: o.KeyRotation, overlap: o.KeyOverlap, now: time.Now},
		throttle: newThrottle(o.ThrottleWindow, o.MaxFailsPerAccount, o.MaxFailsPerAddress),
		prefix:   strings.TrimRight(u.Path, "/"),
	}
	if _, err := iss.keys.current(ctx); err != nil {
		return nil, err
	}
	key, err := cryptoKey(ctx, keyKV)
	if err != nil {
		return nil, err
	}
	iss.clients = map[string]*client{
		o.VitalsClientID: {id: o.VitalsClientID, appType: op.ApplicationTypeUserAgent, redirects: o.VitalsRedirectURIs, logouts: o.VitalsLogoutURIs,
			grants: []oidc.GrantType{oidc.GrantTypeCode, oidc.GrantTypeRefreshToken}, pkce: true, iss: iss},
		o.CLIClientID: {id: o.CLIClientID, appType: op.ApplicationTypeNative,
			grants: []oidc.GrantType{oidc.GrantTypeDeviceCode, oidc.GrantTypeRefreshToken}, iss: iss},
	}
	seen := map[string]bool{}
	for _, r := range o.VitalsRedirectURIs {
		if ru, err := url.Parse(r); err == nil && ru.Host != "" && !seen[ru.Scheme+"://"+ru.Host] {
			seen[ru.Scheme+"://"+ru.Host] = true
			iss.formTargets += " " + ru.Scheme + "://" + ru.Host
		}
	}
	cfg := &op.Config{
		CryptoKey:                key,
		DefaultLogoutRedirectURI: iss.prefix + "/signed-out",
		CodeMethodS256:           true,
		GrantTypeRefreshToken:    true,
		SupportedUILocales:       []language.Tag{language.English},
		DeviceAuthorization: op.DeviceAuthorizationConfig{
			Lifetime: o.DeviceTTL, PollInterval: 5 * time.Second, UserFormPath: iss.prefix + "/device", UserCode: op.UserCodeBase20,
		},
	}
	opts := []op.Option{op.WithLogger(o.Log)}
	if o.AllowInsecure {
		opts = append(opts, op.WithAllowInsecure())
	}
	iss.provider, err = op.NewProvider(cfg, &storage{iss: iss, st: iss.st}, op.StaticIssuer(strings.TrimRight(o.Issuer, "/")), opts...)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+iss.prefix+"/login", iss.loginPage)
	mux.HandleFunc("POST "+iss.prefix+"/login", iss.loginSubmit)
	mux.HandleFunc("GET "+iss.prefix+"/device", iss.devicePage)
	mux.HandleFunc("POST "+iss.prefix+"/device", iss.deviceSubmit)
	mux.HandleFunc("GET "+iss.prefix+"/signed-out", iss.signedOut)
	var protocol http.Handler = iss.provider
	if iss.prefix != "" {
		protocol = http.StripPrefix(iss.prefix, protocol)
	}
	mux.Handle(iss.prefix+"/", protocol)
	iss.handler = op.NewIssuerInterceptor(iss.provider.IssuerFromRequest).Handler(mux)
	return iss, nil
}

// Handler serves the provider under the issuer URL's path (mount it at
// that path, or at / when the issuer has none).
func (i *Issuer) Handler() http.Handler { return i.handler }

// URL is the issuer.
func (i *Issuer) URL() string { return strings.TrimRight(i.o.Issuer, "/") }

// audience of the tokens a client gets: itself and the API.
func (i *Issuer) audience(clientID string) []string {
	if i.o.APIAudience == "" || i.o.APIAudience == clientID {
		return []string{clientID}
	}
	return []string{clientID, i.o.APIAudience}
}

// audit publishes e (best effort: a sign-in is not refused because the bus is slow).
func (i *Issuer) audit(ctx context.Context, e event.Event) {
	if i.o.Audit == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := i.o.Audit.Publish(ctx, e); err != nil {
		i.log.Warn("audit event not published", "action", e.Action, "error", err)
	}
}

// client is one registered application.
type client struct {
	id        string
	appType   op.ApplicationType
	redirects []string
	logouts   []string
	grants    []oidc.GrantType
	pkce      bool
	iss       *Issuer
}

func (c *client) GetID() string                       { return c.id }
func (c *client) RedirectURIs() []string              { return c.redirects }
func (c *client) PostLogoutRedirectURIs() []string    { return c.logouts }
func (c *client) ApplicationType() op.ApplicationType { return c.appType }
func (c *client) AuthMethod() oidc.AuthMethod         { return oidc.AuthMethodNone }
func (c *client) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (c *client) GrantTypes() []oidc.GrantType { return c.grants }
func (c *client) LoginURL(id string) string {
	return c.iss.URL() + "/login?authRequestID=" + url.QueryEscape(id)
}
func (c *client) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeJWT }
func (c *client) IDTokenLifetime() time.Duration      { return c.iss.o.AccessTTL }

// DevMode lets an http:// redirect URI through — still only one of the
// registered ones, matched exactly — for a loopback dev stack.
func (c *client) DevMode() bool {
	for _, r := range c.redirects {
		if strings.HasPrefix(r, "http://") {
			return true
		}
	}
	return false
}
func (c *client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *client) IsScopeAllowed(string) bool           { return false }
func (c *client) IDTokenUserinfoClaimsAssertion() bool { return true }
func (c *client) ClockSkew() time.Duration             { return 0 }

// consoleRequest is the token request of AccessToken.
type consoleRequest struct {
	sub string
	aud []string
}

func (c consoleRequest) GetSubject() string    { return c.sub }
func (c consoleRequest) GetAudience() []string { return c.aud }
func (c consoleRequest) GetScopes() []string   { return []string{oidc.ScopeOpenID} }

// AccessToken issues an access token for userID valid for ttl, signed and
// shaped like the CLI client's: the console token `pulsevault dev` prints
// for curl and scripts. It is never served over HTTP.
func (i *Issuer) AccessToken(ctx context.Context, userID string, ttl time.Duration) (string, error) {
	u, ok, err := i.users.Get(userID)
	if err != nil {
		return "", err
	}
	if !ok || u.Disabled {
		return "", fmt.Errorf("issuer: no active user %q", userID)
	}
	c := i.clients[i.o.CLIClientID]
	ctx = op.ContextWithIssuer(ctx, i.URL())
	return op.CreateJWT(ctx, i.URL(), consoleRequest{sub: u.ID, aud: i.audience(c.id)}, time.Now().Add(ttl), "console-"+u.ID, c, &storage{iss: i, st: i.st})
}
