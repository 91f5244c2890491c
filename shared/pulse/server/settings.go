package server

import (
	"net/url"
	"strings"
	"time"

	"github.com/mieweb/pulsevault/shared/platform/settings"
	"github.com/mieweb/pulsevault/shared/pulse/captoken"
)

// Settings are the pulsevault function's own environment variables (the
// upload limits are tusupload's, the store and JWT settings config's).
var Settings = []settings.Setting{
	{Env: "PAIRING_TTL", Default: "30m", Usage: "how long a pairing link (its capability token) lets a phone upload (1m–24h)"},
	{Env: "VIEW_LINK_TTL", Default: "300s", Usage: "lifetime of a view link minted by POST /pulsevault/artifacts/<id>/view-link (10s–VIEW_LINK_MAX_TTL)"},
	{Env: "VIEW_LINK_MAX_TTL", Default: "24h", Usage: "upper bound of VIEW_LINK_TTL (1m–24h)"},
	{Env: "PAIRING_ISSUER", Default: "pulsevault", Usage: "the issuer named in capability tokens; tokens of another issuer are refused (1–200 characters)"},
	{Env: "PAIRING_PUBLIC_URL", Default: "", Usage: "public origin put in pairing links, e.g. https://vault.example.org (empty: the origin the request came through)"},
}

// Config is the validated settings.
type Config struct {
	PairingTTL, ViewTTL time.Duration
	Issuer              string
	PublicURL           string // "" or scheme://host[:port]
}

// LoadSettings reads Settings through getenv.
func LoadSettings(getenv func(string) string) (Config, error) {
	r := settings.New(getenv, Settings)
	c := Config{PairingTTL: r.Duration("PAIRING_TTL", time.Minute, captoken.MaxTTL)}
	maxView := r.Duration("VIEW_LINK_MAX_TTL", time.Minute, captoken.MaxTTL)
	c.ViewTTL = r.Duration("VIEW_LINK_TTL", 10*time.Second, captoken.MaxTTL)
	if r.Err() == nil && c.ViewTTL > maxView {
		r.Fail("VIEW_LINK_TTL", "must not exceed VIEW_LINK_MAX_TTL")
	}
	c.Issuer = r.String("PAIRING_ISSUER")
	if c.Issuer == "" || len(c.Issuer) > 200 {
		r.Fail("PAIRING_ISSUER", "must be 1–200 characters")
	}
	if v := strings.TrimSuffix(r.String("PAIRING_PUBLIC_URL"), "/"); v != "" {
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.User != nil {
			r.Fail("PAIRING_PUBLIC_URL", "must be an origin such as https://vault.example.org")
		} else {
			c.PublicURL = u.Scheme + "://" + u.Host
		}
	}
	return c, r.Err()
}
