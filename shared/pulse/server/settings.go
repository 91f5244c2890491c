package server

import (
	"errors"
	"net/url"
	"strings"
	"time"

	"github.com/mieweb/pulsevault/shared/platform/settings"
	"github.com/mieweb/pulsevault/shared/pulse/captoken"
)

// Settings are the pulsevault function's own environment variables (the
// upload limits are tusupload's, the store and JWT settings config's).
var Settings = settings.Table{
	{Env: "PAIRING_TTL", Default: "30m", Usage: "how long a pairing link (its capability token) lets a phone upload (1m–24h)", Check: settings.Duration(time.Minute, captoken.MaxTTL)},
	{Env: "VIEW_LINK_TTL", Default: "300s", Usage: "lifetime of a view link minted by POST /pulsevault/artifacts/<id>/view-link (10s–24h, at most VIEW_LINK_MAX_TTL)", Check: settings.Duration(10*time.Second, captoken.MaxTTL)},
	{Env: "VIEW_LINK_MAX_TTL", Default: "24h", Usage: "upper bound of VIEW_LINK_TTL (1m–24h)", Check: settings.Duration(time.Minute, captoken.MaxTTL)},
	{Env: "PAIRING_ISSUER", Default: "pulsevault", Usage: "the issuer named in capability tokens; tokens of another issuer are refused (1–200 characters)", Check: issuer},
	{Env: "PAIRING_PUBLIC_URL", Default: "", Usage: "public origin put in pairing links, e.g. https://vault.example.org (empty: the origin the request came through)", Check: settings.Optional(publicURL)},
}

// Config is the validated settings.
type Config struct {
	PairingTTL, ViewTTL time.Duration
	Issuer              string
	PublicURL           string // "" or scheme://host[:port]
}

func issuer(v string) error {
	if v == "" || len(v) > 200 {
		return errors.New("must be 1–200 characters")
	}
	return nil
}

func publicURL(v string) error {
	u, err := url.Parse(strings.TrimSuffix(v, "/"))
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.User != nil {
		return errors.New("must be an origin such as https://vault.example.org")
	}
	return nil
}

// LoadSettings reads Settings through getenv; an error is one line naming
// the variable and what it accepts.
func LoadSettings(getenv func(string) string) (Config, error) {
	vs, err := settings.FromEnv(Settings, getenv)
	if err != nil {
		return Config{}, err
	}
	c := Config{PairingTTL: vs.Duration("PAIRING_TTL"), ViewTTL: vs.Duration("VIEW_LINK_TTL"), Issuer: vs.String("PAIRING_ISSUER")}
	if c.ViewTTL > vs.Duration("VIEW_LINK_MAX_TTL") {
		return Config{}, errors.New("VIEW_LINK_TTL: must not exceed VIEW_LINK_MAX_TTL")
	}
	if v := strings.TrimSuffix(vs.String("PAIRING_PUBLIC_URL"), "/"); v != "" {
		u, _ := url.Parse(v) // checked
		c.PublicURL = u.Scheme + "://" + u.Host
	}
	return c, nil
}
