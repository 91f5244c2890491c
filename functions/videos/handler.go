// Package videos is the videos function: the feed API of Vitals.
//
//	GET /?limit=N&cursor=C  videos the caller may see, newest first
//	GET /<id>               one video (404 when unknown or not visible: the same answer)
//
// Each item carries id, status, created, duration, width, height and, when
// playable, a signed poster path (valid PLAYBACK_TTL) whose token grants
// that poster alone; each poster grant is audited (url.signed, reason
// poster) before it is handed out. Listing reads an in-memory index of the
// store's meta.json objects kept current from the live status subject and
// rescanned every VIDEOS_RESCAN. Never any client metadata: that is where PHI
// lives. The API is shared/playback/catalog's Feed; this is its adapter.
package videos

import (
	"net/http"
	"path/filepath"
	"time"

	"github.com/mieweb/pulsevault/shared/audit/event"
	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/platform/fnrun"
	"github.com/mieweb/pulsevault/shared/platform/secrets"
	"github.com/mieweb/pulsevault/shared/playback/catalog"
	"github.com/mieweb/pulsevault/shared/playback/grant"
	"github.com/mieweb/pulsevault/shared/playback/token"
)

// Name is the function's name in stack.yml.
const Name = "videos"

// Function is the videos function over its dependencies.
var Function = fnrun.Function(Name, func(d *fnrun.Deps) (http.Handler, error) {
	pol, err := grant.LoadSettings(d.Getenv)
	if err != nil {
		return nil, err
	}
	rescan, err := catalog.LoadRescan(d.Getenv)
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
	b, err := d.Bus() // poster grants are audited; the index follows the status subject
	if err != nil {
		return nil, err
	}
	cat := catalog.New(st, d.Config().MediaBucket)
	if err := d.Register(cat.Collectors()...); err != nil {
		return nil, err
	}
	if err := cat.Follow(d.Context(), b.Conn(), rescan, d.Logger()); err != nil {
		return nil, err
	}
	return &catalog.Feed{
		Catalog:  cat,
		Meta:     meta.NewStore(st, d.Config().MediaBucket),
		Verifier: ver,
		Keys:     token.NewFile(filepath.Join(secrets.Dir(), token.SecretName)).Keyring,
		Policy:   pol,
		Audit:    event.NewPublisher(b, Name).Publish,
		Log:      d.Logger(),
		Now:      time.Now,
	}, nil
})
