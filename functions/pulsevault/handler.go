// Package pulsevault is the pulsevault function: the Pulse capture
// protocol (pairing links, capabilities, tus uploads with capability
// tokens, artifacts), served by shared/pulse/server under the public
// paths /pulsevault/... and /api/pairings, which the public origin and
// nginx forward unchanged.
package pulsevault

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/mieweb/pulsevault/shared/audit/event"
	"github.com/mieweb/pulsevault/shared/ingest/tusupload"
	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/platform/fnrun"
	"github.com/mieweb/pulsevault/shared/platform/secrets"
	"github.com/mieweb/pulsevault/shared/playback/livestatus"
	"github.com/mieweb/pulsevault/shared/playback/token"
	"github.com/mieweb/pulsevault/shared/pulse/captoken"
	"github.com/mieweb/pulsevault/shared/pulse/server"
)

// Name is the function's name in stack.yml.
const Name = "pulsevault"

// Function is the pulsevault function over its dependencies.
var Function = fnrun.Function(Name, func(d *fnrun.Deps) (http.Handler, error) {
	cfg := d.Config()
	if cfg.S3Endpoint == "" {
		return nil, errors.New("pulsevault: S3_ENDPOINT is not set")
	}
	lim, err := tusupload.LoadSettings(d.Getenv)
	if err != nil {
		return nil, err
	}
	pc, err := server.LoadSettings(d.Getenv)
	if err != nil {
		return nil, err
	}
	v, err := d.Verifier()
	if err != nil {
		return nil, err
	}
	st, err := d.Store()
	if err != nil {
		return nil, err
	}
	o := server.Options{
		Store: st, UploadsBucket: cfg.UploadsBucket, MediaBucket: cfg.MediaBucket, RetentionDays: cfg.MediaRetentionDays, JWT: v, Config: pc,
		Signer: captoken.Signer{Keys: token.NewFile(filepath.Join(secrets.Dir(), captoken.SecretName)).Keyring, Issuer: pc.Issuer},
		Tus: tusupload.Options{S3Endpoint: cfg.S3Endpoint, S3Region: cfg.S3Region, S3AccessKey: cfg.S3AccessKey, S3SecretKey: cfg.S3SecretKey,
			Limits: lim, LogWriter: os.Stderr},
		Log: d.Logger(),
	}
	if cfg.NATSURL != "" {
		b, err := d.Bus()
		if err != nil {
			return nil, err
		}
		o.Audit = event.NewPublisher(b, Name).Publish
		o.Announce = func(ctx context.Context, v *meta.Video) error { return livestatus.Publish(ctx, b, v) }
		ctx, cancel := context.WithTimeout(d.Context(), 10*time.Second)
		defer cancel()
		if o.Tus.Locks, err = tusupload.OpenLocks(ctx, b.JetStream(), cfg.NATSReplicas); err != nil {
			return nil, err
		}
	}
	return server.New(o)
})
