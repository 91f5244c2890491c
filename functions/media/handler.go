// Package media is the media function: a playback token's bytes, served by
// shared/playback/mediaserve.
package media

import (
	"net/http"
	"path/filepath"

	"github.com/mieweb/pulsevault/shared/audit/event"
	"github.com/mieweb/pulsevault/shared/platform/fnrun"
	"github.com/mieweb/pulsevault/shared/platform/secrets"
	"github.com/mieweb/pulsevault/shared/playback/mediaserve"
	"github.com/mieweb/pulsevault/shared/playback/token"
)

// Name is the function's name in stack.yml.
const Name = "media"

// Function is the media function over its dependencies.
var Function = fnrun.Function(Name, func(d *fnrun.Deps) (http.Handler, error) {
	st, err := d.Store()
	if err != nil {
		return nil, err
	}
	b, err := d.Bus() // audit events
	if err != nil {
		return nil, err
	}
	s := mediaserve.NewServer(&mediaserve.Server{
		Store:  st,
		Bucket: d.Config().MediaBucket,
		Keys:   token.NewFile(filepath.Join(secrets.Dir(), token.SecretName)).Keyring,
		Audit:  event.NewPublisher(b, Name).Publish,
		Log:    d.Logger(),
	})
	return s, d.Register(s.Collectors()...)
})
