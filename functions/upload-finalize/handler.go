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
	"io"
	"net/http"

	"github.com/mieweb/pulsevault/shared/ingest/finalize"
	"github.com/mieweb/pulsevault/shared/ingest/s3event"
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
	return handler{f}, nil
})

type handler struct{ f *finalize.Finalizer }

// ServeHTTP routes to the event handler or the reconciler.
func (h handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f := h.f
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		fnrun.WriteJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "POST an S3 event to / or POST /reconcile"})
		return
	}
	switch r.URL.Path {
	case "/", "":
		body, err := io.ReadAll(io.LimitReader(r.Body, s3event.MaxMessageSize+1))
		if err != nil {
			// The connection failed, not the event: let the sender retry.
			fnrun.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "could not read the event; retry"})
			return
		}
		// Read an over-long event through (bounded) before answering, so the
		// connection it came on stays usable for the next one.
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 8<<20))
		out, err := f.HandleEvent(r.Context(), body)
		switch {
		case errors.Is(err, finalize.ErrBadEvent):
			fnrun.WriteJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		case err != nil:
			fnrun.WriteJSON(w, http.StatusInternalServerError, map[string]string{"error": "finalize failed; retry"})
		default:
			if out == nil {
				out = []finalize.Outcome{}
			}
			fnrun.WriteJSON(w, http.StatusOK, map[string]any{"uploads": out})
		}
	case "/reconcile":
		rep, err := f.Reconcile(r.Context())
		if err != nil {
			fnrun.WriteJSON(w, http.StatusInternalServerError, map[string]string{"error": "reconcile failed; retry"})
			return
		}
		fnrun.WriteJSON(w, http.StatusOK, rep)
	default:
		fnrun.WriteJSON(w, http.StatusNotFound, map[string]string{"error": "not found: POST / or /reconcile"})
	}
}
