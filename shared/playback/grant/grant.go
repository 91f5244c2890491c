// Package grant decides who may watch a video and grants it: the viewing
// policy, the signed playback URLs, and the settings the HTTP functions
// (sign-url, videos, events) share.
package grant

import (
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/mieweb/pulsevault/shared/auth"
	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/platform/fnrun"
	"github.com/mieweb/pulsevault/shared/platform/settings"
	"github.com/mieweb/pulsevault/shared/playback/token"
	"github.com/mieweb/pulsevault/shared/topology"
)

// The default roles that may watch every video. They are namespaced: an IdP
// shared with other applications has generic "viewer" or "admin" roles (or
// groups its users create) that must grant nothing here.
const (
	ViewerRole = "pulsevault:viewer"
	AdminRole  = "pulsevault:admin"
)

// Settings lists the variables LoadSettings reads.
var Settings = settings.Table{
	{Env: "PLAYBACK_TTL", Default: "300s", Usage: "lifetime of a signed playback URL (1s–300s)", Check: settings.Duration(time.Second, token.MaxTTL)},
	{Env: "MEDIA_BASE", Default: "/media", Usage: "URL prefix of the media function in signed URLs (a path such as /media, or https://host/media)", Check: settings.PathOrURL},
	{Env: "PLAYBACK_ROLES", Default: ViewerRole + "," + AdminRole, Usage: "roles (in the `JWT_ROLES_CLAIM` claim) that may watch every video, comma-separated; namespaced, so an IdP's generic `viewer`/`admin` (or a group users made) grants nothing; uploaders always see their own"},
}

// Config is the validated playback settings.
type Config struct {
	TTL       time.Duration
	MediaBase string
	Roles     []string
}

// LoadSettings reads Settings through getenv; an error is one line naming
// the variable and what it accepts.
func LoadSettings(getenv func(string) string) (Config, error) {
	vs, err := settings.FromEnv(Settings, getenv)
	if err != nil {
		return Config{}, err
	}
	return Config{
		TTL:       vs.Duration("PLAYBACK_TTL"),
		MediaBase: strings.TrimRight(vs.String("MEDIA_BASE"), "/"),
		Roles:     vs.List("PLAYBACK_ROLES"),
	}, nil
}

// CanView is the viewing policy: the uploader, or a caller with one of the
// configured roles.
func (c Config) CanView(who *auth.Claims, v *meta.Video) bool {
	if who == nil || v == nil {
		return false
	}
	if v.Uploader != "" && v.Uploader == who.Subject {
		return true
	}
	return slices.ContainsFunc(c.Roles, who.HasRole)
}

// SeesAll reports whether who may view every video (a role, not ownership).
func (c Config) SeesAll(who *auth.Claims) bool {
	return who != nil && slices.ContainsFunc(c.Roles, who.HasRole)
}

// Playable reports whether a video in status s has something to play.
func Playable(s meta.Status) bool { return s == meta.Ready || s == meta.Complete }

// Grant is a set of signed URLs for one video.
type Grant struct {
	URL       string    `json:"url"`    // HLS master playlist
	DASH      string    `json:"dash"`   // DASH manifest
	Poster    string    `json:"poster"` // poster image
	ExpiresAt time.Time `json:"expires_at"`
}

// Poster signs the URL of video id's poster alone (token.SignKey), valid
// for c.TTL from now: what the feed hands out with each playable item. It
// grants nothing else of the video.
func (c Config) Poster(ring *token.Keyring, id string, now time.Time) (string, error) {
	key := topology.VideoPrefix(id) + topology.PosterFile
	tok, err := ring.SignKey(id, key, now.Add(c.TTL).Truncate(time.Second), now)
	if err != nil {
		return "", err
	}
	return c.MediaBase + "/" + tok + "/" + key, nil
}

// Grant signs URLs for video id, valid for c.TTL from now.
func (c Config) Grant(ring *token.Keyring, id string, now time.Time) (Grant, error) {
	exp := now.Add(c.TTL).Truncate(time.Second)
	tok, err := ring.Sign(id, topology.VideoPrefix(id), exp, now)
	if err != nil {
		return Grant{}, err
	}
	base := c.MediaBase + "/" + tok + "/" + topology.VideoPrefix(id)
	return Grant{URL: base + topology.MasterFile, DASH: base + topology.MPDFile, Poster: base + topology.PosterFile, ExpiresAt: exp.UTC()}, nil
}

// Authenticate verifies the request's bearer token, answering 401 (JSON,
// no detail) when it is missing or invalid; ok reports whether to go on.
func Authenticate(v *auth.Verifier, w http.ResponseWriter, r *http.Request) (who *auth.Claims, ok bool) {
	who, err := v.FromRequest(r)
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="pulsevault"`)
		fnrun.WriteJSON(w, http.StatusUnauthorized, map[string]string{"error": "unauthorized"})
		return nil, false
	}
	return who, true
}
