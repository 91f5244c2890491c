// Package pulsevault is the pulsevault function: the Pulse capture
// protocol (pairing links, capabilities, tus uploads with capability
// tokens, artifacts), served by shared/pulse/server under the public
// paths /pulsevault/... and /api/pairings, which the public origin and
// nginx forward unchanged.
package pulsevault

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/mieweb/pulsevault/shared/audit/event"
	"github.com/mieweb/pulsevault/shared/auth"
	"github.com/mieweb/pulsevault/shared/bus"
	"github.com/mieweb/pulsevault/shared/bus/lease"
	"github.com/mieweb/pulsevault/shared/ingest/tusupload"
	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/platform/config"
	"github.com/mieweb/pulsevault/shared/platform/fnrun"
	"github.com/mieweb/pulsevault/shared/platform/logging"
	"github.com/mieweb/pulsevault/shared/platform/secrets"
	"github.com/mieweb/pulsevault/shared/playback/livestatus"
	"github.com/mieweb/pulsevault/shared/playback/token"
	"github.com/mieweb/pulsevault/shared/pulse/captoken"
	"github.com/mieweb/pulsevault/shared/pulse/protocol"
	"github.com/mieweb/pulsevault/shared/pulse/server"
	"github.com/mieweb/pulsevault/shared/storage"
	"github.com/mieweb/pulsevault/shared/topology"
)

// Name is the function's name in stack.yml.
const Name = "pulsevault"

// JWTSecret is the secret holding the HS256 key, used when JWKS_URL is empty.
const JWTSecret = "pulsevault-jwt-secret"

var srv = fnrun.Lazy(func() (*server.Server, error) {
	cfg, err := config.FromEnv(Name)
	if err != nil {
		return nil, err
	}
	if cfg.S3Endpoint == "" {
		return nil, errors.New("pulsevault: S3_ENDPOINT is not set")
	}
	lim, err := tusupload.LoadSettings(os.Getenv)
	if err != nil {
		return nil, err
	}
	pc, err := server.LoadSettings(os.Getenv)
	if err != nil {
		return nil, err
	}
	v, err := verifier(cfg)
	if err != nil {
		return nil, err
	}
	st, err := storage.FromConfig(cfg)
	if err != nil {
		return nil, err
	}
	o := server.Options{
		Store: st, UploadsBucket: cfg.UploadsBucket, MediaBucket: cfg.MediaBucket, JWT: v, Config: pc,
		Signer: captoken.Signer{Keys: token.NewFile(filepath.Join(secrets.Dir(), captoken.SecretName)).Keyring, Issuer: pc.Issuer},
		Tus: tusupload.Options{S3Endpoint: cfg.S3Endpoint, S3Region: cfg.S3Region, S3AccessKey: cfg.S3AccessKey, S3SecretKey: cfg.S3SecretKey,
			Limits: lim, LogWriter: os.Stderr},
		Log: logging.New(os.Stderr, cfg.LogLevel, "fn/"+Name),
	}
	if cfg.NATSURL != "" {
		b, err := bus.ForFunction(cfg.NATSURL, Name)
		if err != nil {
			return nil, err
		}
		o.Audit = event.NewPublisher(b, Name).Publish
		o.Announce = func(ctx context.Context, v *meta.Video) error { return livestatus.Publish(ctx, b, v) }
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// The same lock bucket as the upload function: both are tusd over one staging bucket.
		if o.Tus.Locks, err = lease.OpenReplicated(ctx, b.JetStream(), topology.KVUploadLocks, "tus upload locks shared by the upload function's replicas", 10*time.Second, cfg.NATSReplicas); err != nil {
			b.Close()
			return nil, err
		}
	}
	return server.New(o)
})

// Handle serves one request of the pulsevault function.
func Handle(w http.ResponseWriter, r *http.Request) {
	s, err := srv()
	if err != nil {
		logging.New(os.Stderr, os.Getenv("LOG_LEVEL"), "fn/"+Name).Error("pulsevault: not configured", "err", err.Error())
		w.Header().Set(protocol.HeaderProtocolVersion, "2")
		protocol.WriteError(w, http.StatusServiceUnavailable, "the server is starting or misconfigured: retry in a minute")
		return
	}
	s.ServeHTTP(w, r)
}

// verifier checks sign-in tokens against the OIDC provider's JWKS when
// configured, else with the HS256 secret (as the upload function does).
func verifier(cfg config.Config) (*auth.Verifier, error) {
	if cfg.JWKSURL != "" {
		return auth.New(auth.Options{JWKSURL: cfg.JWKSURL, Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience})
	}
	secret, err := secrets.ReadString(JWTSecret)
	if err != nil {
		return nil, err
	}
	v, err := auth.New(auth.Options{HS256Secret: []byte(secret), Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience})
	if err != nil {
		return nil, fmt.Errorf("pulsevault: secret %s: %w", JWTSecret, err)
	}
	return v, nil
}
