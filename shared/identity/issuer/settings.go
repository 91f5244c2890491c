package issuer

import (
	"net/netip"
	"strings"
	"time"

	"github.com/mieweb/pulsevault/shared/platform/settings"
)

// Settings lists the variables of the embedded provider (pulsevault dev
// and pulsevault issuer); the client ids, audience and roles claim are the
// stack's (OIDC_VITALS_CLIENT_ID, OIDC_CLI_CLIENT_ID, JWT_AUDIENCE,
// JWT_ROLES_CLAIM).
var Settings = []settings.Setting{
	{Env: "IDENTITY_ADMIN_ROLE", Default: "pulsevault:admin", Usage: "role of the first user pulsevault dev creates (keep it in PLAYBACK_ROLES to let that user watch every video)"},
	{Env: "IDENTITY_USERS_FILE", Default: "", Usage: "users of the embedded OpenID provider (empty: PULSEVAULT_DATA_DIR/users.yaml)"},
	{Env: "IDENTITY_ACCESS_TTL", Default: "10m", Usage: "lifetime of the embedded provider's access and ID tokens (10s–1h)"},
	{Env: "IDENTITY_REFRESH_TTL", Default: "336h", Usage: "lifetime of its refresh tokens, rotated on every use (1h–2160h)"},
	{Env: "IDENTITY_SIGNING_ALG", Default: "RS256", Usage: "signature algorithm of its keys: RS256 or ES256 (keys rotate every 30 days, old ones stay published 24 h)"},
	{Env: "OIDC_VITALS_REDIRECT_URIS", Default: "", Usage: "exact redirect URIs of Vitals at the embedded provider, comma-separated (empty: PUBLIC_ORIGIN/auth/callback and PUBLIC_ORIGIN/)"},
	{Env: "ISSUER_PORT", Default: "3100", Usage: "port of `pulsevault issuer` on 127.0.0.1 (0 picks a free port)"},
	{Env: "ISSUER_URL", Default: "", Usage: "public URL of `pulsevault issuer` behind a proxy (empty: http://127.0.0.1:ISSUER_PORT)"},
	{Env: "IDENTITY_TRUSTED_PROXIES", Default: "127.0.0.1/8,::1/128", Usage: "peers (IPs or CIDRs, comma-separated) whose X-Forwarded-For gives the client address the sign-in throttle counts: the proxy in front (nginx)"},
	{Env: "VITALS_ORIGIN", Default: "", Usage: "`pulsevault issuer` only: the Vitals origin its default redirect URIs are under (empty: http://127.0.0.1:PUBLIC_PORT)"},
}

// Config is the validated Settings.
type Config struct {
	AdminRole    string
	UsersFile    string
	AccessTTL    time.Duration
	RefreshTTL   time.Duration
	SigningAlg   string
	RedirectURIs []string
	Port         int
	URL          string
	VitalsOrigin string
	Proxies      []netip.Prefix
}

// LoadSettings reads Settings through getenv.
func LoadSettings(getenv func(string) string) (Config, error) {
	r := settings.New(getenv, Settings)
	c := Config{UsersFile: r.String("IDENTITY_USERS_FILE"), AdminRole: r.String("IDENTITY_ADMIN_ROLE"),
		AccessTTL:    r.Duration("IDENTITY_ACCESS_TTL", 10*time.Second, time.Hour),
		RefreshTTL:   r.Duration("IDENTITY_REFRESH_TTL", time.Hour, 2160*time.Hour),
		SigningAlg:   r.String("IDENTITY_SIGNING_ALG"),
		Port:         r.Int("ISSUER_PORT", 0, 65535),
		URL:          strings.TrimRight(r.String("ISSUER_URL"), "/"),
		VitalsOrigin: strings.TrimRight(r.String("VITALS_ORIGIN"), "/"),
	}
	for p := range strings.SplitSeq(r.String("IDENTITY_TRUSTED_PROXIES"), ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		if !strings.Contains(p, "/") {
			if a, err := netip.ParseAddr(p); err == nil {
				p = netip.PrefixFrom(a, a.BitLen()).String()
			}
		}
		pre, err := netip.ParsePrefix(p)
		if err != nil {
			r.Fail("IDENTITY_TRUSTED_PROXIES", "must be IP addresses or CIDRs, comma-separated")
			continue
		}
		c.Proxies = append(c.Proxies, pre.Masked())
	}
	if c.SigningAlg != "RS256" && c.SigningAlg != "ES256" {
		r.Fail("IDENTITY_SIGNING_ALG", "must be RS256 or ES256")
	}
	for u := range strings.SplitSeq(r.String("OIDC_VITALS_REDIRECT_URIS"), ",") {
		if u = strings.TrimSpace(u); u != "" {
			if !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
				r.Fail("OIDC_VITALS_REDIRECT_URIS", "must be absolute http(s) URLs")
			}
			c.RedirectURIs = append(c.RedirectURIs, u)
		}
	}
	if c.URL != "" && !strings.HasPrefix(c.URL, "https://") && !strings.HasPrefix(c.URL, "http://") {
		r.Fail("ISSUER_URL", "must be an http(s) URL")
	}
	return c, r.Err()
}
