// Package upload is the upload function: the tus 1.0 resumable upload
// endpoint (tusd v2 writing to the uploads bucket), behind
// /function/upload/ on the gateway. See shared/ingest/tusupload.
package upload

import (
	"context"
	"errors"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/mieweb/pulsevault/shared/auth"
	"github.com/mieweb/pulsevault/shared/bus"
	"github.com/mieweb/pulsevault/shared/bus/lease"
	"github.com/mieweb/pulsevault/shared/ingest/staging"
	"github.com/mieweb/pulsevault/shared/ingest/tusupload"
	"github.com/mieweb/pulsevault/shared/platform/config"
	"github.com/mieweb/pulsevault/shared/platform/fnrun"
	"github.com/mieweb/pulsevault/shared/storage"
	"github.com/mieweb/pulsevault/shared/topology"
)

// Name is the function's name in stack.yml.
const Name = "upload"

// JWTSecret is the secret holding the HS256 key, used when JWKS_URL is empty.
const JWTSecret = "pulsevault-jwt-secret"

var (
	mu sync.Mutex
	h  http.Handler
)

// Handle serves the tus protocol.
func Handle(w http.ResponseWriter, r *http.Request) {
	th, err := handler()
	if err != nil {
		fnrun.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error(), "function": Name})
		return
	}
	th.ServeHTTP(w, r)
}

// handler builds the tus handler on first use; a failure (a missing secret,
// say) is retried on the next request rather than kept.
func handler() (http.Handler, error) {
	mu.Lock()
	defer mu.Unlock()
	if h != nil {
		return h, nil
	}
	cfg, err := config.FromEnv(Name)
	if err != nil {
		return nil, err
	}
	if cfg.S3Endpoint == "" {
		return nil, errors.New("upload: S3_ENDPOINT is not set")
	}
	lim, err := tusupload.LoadSettings(os.Getenv)
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
	locks, err := lockBucket(cfg)
	if err != nil {
		return nil, err
	}
	th, err := tusupload.New(tusupload.Options{
		S3Endpoint: cfg.S3Endpoint, S3Region: cfg.S3Region, S3AccessKey: cfg.S3AccessKey, S3SecretKey: cfg.S3SecretKey,
		Bucket: cfg.UploadsBucket, Staged: staging.New(st, cfg.UploadsBucket), Locks: locks,
		Limits: lim, Verifier: v, LogWriter: os.Stderr,
	})
	if err != nil {
		return nil, err
	}
	h = th
	return h, nil
}

// lockBucket shares tus locks between replicas through NATS; without
// NATS_URL they stay in this process, which is safe for one replica only.
func lockBucket(cfg config.Config) (*lease.Bucket, error) {
	if cfg.NATSURL == "" {
		return nil, nil
	}
	b, err := bus.ForFunction(cfg.NATSURL, Name)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	locks, err := lease.OpenReplicated(ctx, b.JetStream(), topology.KVUploadLocks, "tus upload locks shared by the upload function's replicas", lockTTL, cfg.NATSReplicas)
	if err != nil {
		b.Close()
		return nil, err
	}
	return locks, nil
}

// lockTTL is how long a killed replica keeps an upload locked: under
// tusupload's lock wait (20 s), so a client's first request after the
// crash waits and succeeds. A live holder renews every lockTTL/3.
const lockTTL = 10 * time.Second

// verifier checks API tokens (auth.NewVerifier: the OIDC issuer, or HS256
// with AUTH_HS256=on).
func verifier(cfg config.Config) (*auth.Verifier, error) { return auth.NewVerifier(cfg) }
