package grant

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mieweb/pulsevault/shared/audit/event"
	"github.com/mieweb/pulsevault/shared/auth"
	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/platform/fnrun"
	"github.com/mieweb/pulsevault/shared/playback/token"
)

// maxSignBody bounds a sign request's body: it is one small JSON object.
const maxSignBody = 4 << 10

// MetaReader reads a video's meta.json (meta.Store does).
type MetaReader interface {
	Get(ctx context.Context, id string) (*meta.Video, string, error)
}

// SignServer is the sign-url API: POST {"video": "<id>"} with a bearer
// token answers a Grant. The caller must be the video's uploader or hold
// one of the policy's roles; an unknown video and one the caller may not
// see both get the same 404, so ids cannot be probed; a visible video that
// is not playable yet gets 409. Grants are audited as url.signed (a grant
// that cannot be audited is not given), refusals as access.denied. Build
// it with NewSignServer.
type SignServer struct {
	Meta     MetaReader
	Verifier *auth.Verifier
	Keys     func() (*token.Keyring, error)
	Policy   Config
	Audit    func(ctx context.Context, e event.Event) error
	Log      *slog.Logger
	Now      func() time.Time // default time.Now

	signed prometheus.Counter
}

// NewSignServer completes s with its metrics.
func NewSignServer(s *SignServer) *SignServer {
	if s.Now == nil {
		s.Now = time.Now
	}
	if s.Log == nil {
		s.Log = slog.New(slog.DiscardHandler)
	}
	s.signed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "pulsevault_signed_urls_total", Help: "Playback URLs signed (each audited).",
	})
	return s
}

// Collectors lists the server's metrics, for the function's registry.
func (s *SignServer) Collectors() []prometheus.Collector { return []prometheus.Collector{s.signed} }

// ServeHTTP answers one sign request.
func (s *SignServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.signed == nil {
		panic("grant: use NewSignServer")
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		fnrun.WriteJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "use POST with {\"video\": \"<id>\"}"})
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	who, ok := Authenticate(s.Verifier, w, r)
	if !ok {
		return
	}
	var req struct {
		Video string `json:"video"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxSignBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		fnrun.WriteJSON(w, http.StatusBadRequest, map[string]string{"error": `body must be {"video": "<id>"} (at most 4 KiB)`})
		return
	}
	if id, err := uuid.Parse(req.Video); err != nil || id.String() != req.Video {
		fnrun.WriteJSON(w, http.StatusBadRequest, map[string]string{"error": "video must be a video id (a lower-case UUID)"})
		return
	}
	ctx := r.Context()
	v, _, err := s.Meta.Get(ctx, req.Video)
	if err != nil && !errors.Is(err, meta.ErrNotFound) {
		s.Log.Error("sign-url: meta read failed", "err", "store-error")
		fnrun.WriteJSON(w, http.StatusBadGateway, map[string]string{"error": "store unavailable"})
		return
	}
	if v == nil || !s.Policy.CanView(who, v) {
		s.audit(ctx, event.Event{Actor: who.Subject, Action: event.AccessDenied, Object: req.Video, Outcome: event.Denied, Reason: "sign-url"})
		fnrun.WriteJSON(w, http.StatusNotFound, map[string]string{"error": "no such video"})
		return
	}
	if !Playable(v.Status) {
		fnrun.WriteJSON(w, http.StatusConflict, map[string]string{"error": "the video is not playable yet", "status": string(v.Status)})
		return
	}
	ring, err := s.Keys()
	if err != nil {
		s.Log.Error("sign-url: playback keys unavailable", "err", err.Error())
		fnrun.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "signing unavailable"})
		return
	}
	g, err := s.Policy.Grant(ring, v.ID, s.Now())
	if err != nil {
		s.Log.Error("sign-url: signing failed", "err", err.Error())
		fnrun.WriteJSON(w, http.StatusInternalServerError, map[string]string{"error": "signing failed"})
		return
	}
	// A grant that cannot be audited is not given.
	if err := s.Audit(ctx, event.Event{Actor: who.Subject, Action: event.URLSigned, Object: v.ID, Outcome: event.Success}); err != nil {
		s.Log.Error("sign-url: audit event not recorded; refusing", "err", err.Error())
		fnrun.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "audit unavailable, try again"})
		return
	}
	s.signed.Inc()
	fnrun.WriteJSON(w, http.StatusOK, g)
}

func (s *SignServer) audit(ctx context.Context, e event.Event) {
	if err := s.Audit(ctx, e); err != nil {
		s.Log.Warn("sign-url: audit event not recorded", "action", e.Action, "err", err.Error())
	}
}
