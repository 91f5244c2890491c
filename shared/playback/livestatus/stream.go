package livestatus

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/mieweb/pulsevault/shared/auth"
	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/platform/fnrun"
	"github.com/mieweb/pulsevault/shared/playback/grant"
)

// Heartbeat is the interval of keep-alive comments.
const Heartbeat = 15 * time.Second

// Stream is the live status API (the events function): GET / with a
// bearer token and "Accept: text/event-stream" streams, as server-sent
// events, each status change of the videos the caller may see:
//
//	event: status
//	data: {"video":"<id>","status":"ready"}
//
// A comment line every Heartbeat keeps proxies from timing the stream out;
// the stream ends after MaxStream and the client reconnects (retry: 2000),
// re-reading the list to catch up.
type Stream struct {
	NATS      *nats.Conn
	Verifier  *auth.Verifier
	Policy    grant.Config
	MaxStream time.Duration
	Log       *slog.Logger
}

// ServeHTTP streams one client's events until it leaves or MaxStream passes.
func (s *Stream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		fnrun.WriteJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "use GET"})
		return
	}
	who, ok := grant.Authenticate(s.Verifier, w, r)
	if !ok {
		return
	}
	rc := http.NewResponseController(w)
	ch := make(chan Change, 64)
	sub, err := Subscribe(s.NATS, func(c Change) {
		if !s.Policy.CanView(who, &meta.Video{ID: c.Video, Uploader: c.Uploader}) {
			return
		}
		select {
		case ch <- c:
		default: // a client too slow to read loses live updates, not the process
		}
	})
	if err != nil {
		s.Log.Error("events: subscribe failed", "err", err.Error())
		fnrun.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "events unavailable"})
		return
	}
	defer sub.Unsubscribe()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer
	w.WriteHeader(http.StatusOK)
	if _, err := fmt.Fprint(w, "retry: 2000\n: connected\n\n"); err != nil {
		return
	}
	_ = rc.Flush()
	_ = rc.SetWriteDeadline(time.Time{})
	end := time.NewTimer(s.MaxStream)
	defer end.Stop()
	tick := time.NewTicker(Heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-end.C:
			return
		case <-tick.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return
			}
		case c := <-ch:
			data, _ := json.Marshal(map[string]string{"video": c.Video, "status": string(c.Status)})
			if _, err := fmt.Fprintf(w, "event: status\ndata: %s\n\n", data); err != nil {
				return
			}
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

// LoadMaxStream reads EVENTS_MAX_STREAM (default 5m, 10s–1h).
func LoadMaxStream(getenv func(string) string) (time.Duration, error) {
	v := strings.TrimSpace(getenv("EVENTS_MAX_STREAM"))
	if v == "" {
		return 5 * time.Minute, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 10*time.Second || d > time.Hour {
		return 0, fmt.Errorf("invalid EVENTS_MAX_STREAM %q: must be a duration from 10s to 1h", v)
	}
	return d, nil
}
