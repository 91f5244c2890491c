package finalize

import (
	"errors"
	"io"
	"net/http"

	"github.com/mieweb/pulsevault/shared/ingest/s3event"
	"github.com/mieweb/pulsevault/shared/platform/fnrun"
)

// ServeHTTP is the upload-finalize function's HTTP side: POST / takes one
// S3 bucket notification (200 done or nothing to do, 400 malformed, so
// dead-lettered at once, 500 a step failed, so retried); POST /reconcile
// runs Reconcile.
func (f *Finalizer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
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
		case errors.Is(err, ErrBadEvent):
			fnrun.WriteJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		case err != nil:
			fnrun.WriteJSON(w, http.StatusInternalServerError, map[string]string{"error": "finalize failed; retry"})
		default:
			if out == nil {
				out = []Outcome{}
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
