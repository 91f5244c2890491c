// Package upload is the upload function: the tus 1.0 resumable upload
// endpoint (tusd v2 writing to the uploads bucket), behind
// /function/upload/ on the gateway. See shared/ingest/tusupload.
package upload

import (
	"context"
	"errors"
	"net/http"
	"os"
	"time"

	"github.com/mieweb/pulsevault/shared/bus/lease"
	"github.com/mieweb/pulsevault/shared/ingest/staging"
	"github.com/mieweb/pulsevault/shared/ingest/tusupload"
	"github.com/mieweb/pulsevault/shared/platform/fnrun"
)

// Name is the function's name in stack.yml.
const Name = "upload"

// Function is the upload function over its dependencies.
var Function = fnrun.Function(Name, func(d *fnrun.Deps) (http.Handler, error) {
	cfg := d.Config()
	if cfg.S3Endpoint == "" {
		return nil, errors.New("upload: S3_ENDPOINT is not set")
	}
	lim, err := tusupload.LoadSettings(d.Getenv)
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
	locks, err := lockBucket(d)
	if err != nil {
		return nil, err
	}
	return tusupload.New(tusupload.Options{
		S3Endpoint: cfg.S3Endpoint, S3Region: cfg.S3Region, S3AccessKey: cfg.S3AccessKey, S3SecretKey: cfg.S3SecretKey,
		Bucket: cfg.UploadsBucket, Staged: staging.New(st, cfg.UploadsBucket), Locks: locks,
		Limits: lim, Verifier: v, LogWriter: os.Stderr,
	})
})

// lockBucket shares tus locks between replicas through NATS; without
// NATS_URL they stay in this process, which is safe for one replica only.
func lockBucket(d *fnrun.Deps) (*lease.Bucket, error) {
	if d.Config().NATSURL == "" {
		return nil, nil
	}
	b, err := d.Bus()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(d.Context(), 10*time.Second)
	defer cancel()
	return tusupload.OpenLocks(ctx, b.JetStream(), d.Config().NATSReplicas)
}
