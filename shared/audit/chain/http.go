package chain

import (
	"net/http"
	"os"

	"github.com/mieweb/pulsevault/shared/platform/fnrun"
	"github.com/mieweb/pulsevault/shared/topology"
)

// httpStatus is the status answer: the writer's and the process's id, so
// replicas can be told apart.
type httpStatus struct {
	Status
	PID int `json:"pid"`
}

// ServeHTTP is audit-append's HTTP side: GET / answers the writer's status
// and POST /checkpoint commits a signed checkpoint now (when records wait
// for one). The events themselves come from JetStream (Run), never over HTTP.
func (c *Chain) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/":
		fnrun.WriteJSON(w, http.StatusOK, httpStatus{Status: c.Status(), PID: os.Getpid()})
	case r.Method == http.MethodPost && r.URL.Path == "/checkpoint":
		res, err := c.Append(r.Context(), nil, true)
		if err != nil {
			fnrun.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
			return
		}
		fnrun.WriteJSON(w, http.StatusOK, map[string]any{"checkpoint": res.Checkpoint, "status": c.Status()})
	default:
		w.Header().Set("Allow", "GET /, POST /checkpoint")
		fnrun.WriteJSON(w, http.StatusMethodNotAllowed, map[string]string{
			"error": "audit-append consumes " + topology.SubjectAudit + ".> from JetStream itself; use GET / for status or POST /checkpoint",
		})
	}
}
