package encode

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/mieweb/pulsevault/shared/bus"
	"github.com/mieweb/pulsevault/shared/media/ladder"
	"github.com/mieweb/pulsevault/shared/platform/fnrun"
	"github.com/mieweb/pulsevault/shared/topology"
)

// maxJobBody bounds a job message; a real one is under 100 bytes.
const maxJobBody = 64 << 10

// Handler is the transcode function's HTTP side: POST / runs the job in the
// body (a ladder.Job from the connector) and answers what the connector
// should do with the message — 200 ack, 5xx redeliver, 400/422
// dead-letter now; POST /dead-letters settles the dead-lettered jobs on
// DeadLetter (Worker.DrainDeadLetters).
type Handler struct {
	Worker     *Worker
	Bus        *bus.Bus
	DeadLetter string // the subject the connector dead-letters this function's jobs on
	Name       string // the function's name, in error answers
	Log        *slog.Logger
}

// ServeHTTP runs the job in the request body, or drains the dead letters
// on /dead-letters.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	wk, b, log, Name := h.Worker, h.Bus, h.Log, h.Name
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		fnrun.WriteJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "POST a media.Job to / or POST /dead-letters", "function": Name})
		return
	}
	if r.URL.Path != "/" && r.URL.Path != "" && r.URL.Path != "/dead-letters" {
		fnrun.WriteJSON(w, http.StatusNotFound, map[string]string{"error": "not found: POST / or /dead-letters", "function": Name})
		return
	}
	if r.URL.Path == "/dead-letters" {
		rep, err := wk.DrainDeadLetters(r.Context(), b, h.DeadLetter)
		switch {
		case err != nil:
			log.Error("transcode: dead letters not drained", "err", err)
			fnrun.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "dead letters not drained; retry", "function": Name})
		case rep.Errors > 0:
			fnrun.WriteJSON(w, http.StatusInternalServerError, rep) // counted by the connector's schedule metric
		default:
			fnrun.WriteJSON(w, http.StatusOK, rep)
		}
		return
	}
	var job ladder.Job
	body, err := io.ReadAll(io.LimitReader(r.Body, maxJobBody+1))
	if err != nil || len(body) > maxJobBody || json.Unmarshal(body, &job) != nil || job.Video == "" || job.Rendition == "" {
		fnrun.WriteJSON(w, http.StatusBadRequest, map[string]string{"error": `body must be a JSON job {"video": "<id>", "rendition": "<name>"} under 64 KiB`, "function": Name})
		return
	}
	delivered := 1
	if n, err := strconv.Atoi(r.Header.Get(topology.HeaderDelivered)); err == nil && n > 0 {
		delivered = n
	}
	res := wk.Do(r.Context(), job, delivered)
	fnrun.WriteJSON(w, res.Status, res)
}
