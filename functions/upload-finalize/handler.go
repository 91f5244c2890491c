// Package uploadfinalize is the upload-finalize function: it turns a
// completed upload into a locked original, meta.json and transcode jobs
// (shared/ingest/finalize).
//
//   - POST / takes one S3 bucket notification (the connector delivers
//     pulse.s3.events): 200 when done or nothing to do, 400 for a malformed
//     message (dead-lettered at once), 500 when a step failed (retried).
//   - POST /reconcile finalizes completed uploads nobody finalized and
//     removes expired incomplete ones (run it periodically).
package uploadfinalize

import (
	"errors"
	"net/http"

	"github.com/mieweb/pulsevault/shared/ingest/finalize"
	"github.com/mieweb/pulsevault/shared/platform/fnrun"
)

// Name is the function's name in stack.yml.
const Name = "upload-finalize"

// Function is the upload-finalize function over its dependencies.
var Function = fnrun.Function(Name, func(d *fnrun.Deps) (http.Handler, error) {
	cfg := d.Config()
	if cfg.S3Endpoint == "" || cfg.NATSURL == "" {
		return nil, errors.New("upload-finalize: S3_ENDPOINT and NATS_URL must be set")
	}
	lim, err := finalize.LoadSettings(d.Getenv)
	if err != nil {
		return nil, err
	}
	st, err := d.Store()
	if err != nil {
		return nil, err
	}
	b, err := d.Bus()
	if err != nil {
		return nil, err
	}
	f, err := finalize.New(d.Context(), finalize.Options{
		Store: st, Bus: b, UploadsBucket: cfg.UploadsBucket, MediaBucket: cfg.MediaBucket,
		RetentionDays: cfg.MediaRetentionDays, Limits: lim, Replicas: cfg.NATSReplicas,
		Logger: d.Logger(), Registerer: d.Registerer(),
	})
	if err != nil {
		return nil, err
	}
	return f, nil
})
