// Package signurl is the sign-url function: returns a short-lived, path-scoped playback URL for an authenticated caller.
//
// POST {"video": "<id>"} with "Authorization: Bearer <JWT>" answers
// {"url", "dash", "poster", "expires_at"}. The caller must be the video's
// uploader or hold one of PLAYBACK_ROLES. An unknown video and a video the
// caller may not see both get the same 404, so ids cannot be probed; a
// visible video that is not playable yet gets 409. Grants are audited as
// url.signed, refusals as access.denied.
//
// The API lives in shared/playback/grant (SignServer); this is its adapter.
package signurl

import (
	"net/http"
	"path/filepath"

	"github.com/mieweb/pulsevault/shared/audit/event"
	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/platform/fnrun"
	"github.com/mieweb/pulsevault/shared/platform/secrets"
	"github.com/mieweb/pulsevault/shared/playback/grant"
	"github.com/mieweb/pulsevault/shared/playback/token"
)

// Name is the function's name in stack.yml.
const Name = "sign-url"

// Function is the sign-url function over its dependencies.
var Function = fnrun.Function(Name, func(d *fnrun.Deps) (http.Handler, error) {
	pol, err := grant.LoadSettings(d.Getenv)
	if err != nil {
		return nil, err
	}
	ver, err := d.Verifier()
	if err != nil {
		return nil, err
	}
	st, err := d.Store()
	if err != nil {
		return nil, err
	}
	b, err := d.Bus() // audit events
	if err != nil {
		return nil, err
	}
	s := grant.NewSignServer(&grant.SignServer{
		Meta:     meta.NewStore(st, d.Config().MediaBucket),
		Verifier: ver,
		Keys:     token.NewFile(filepath.Join(secrets.Dir(), token.SecretName)).Keyring,
		Policy:   pol,
		Audit:    event.NewPublisher(b, Name).Publish,
		Log:      d.Logger(),
	})
	return s, d.Register(s.Collectors()...)
})
