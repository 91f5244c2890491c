// Package signurl is the sign-url function: returns a short-lived, path-scoped playback URL for an authenticated caller.
//
// POST {"video": "<id>"} with "Authorization: Bearer <JWT>" answers
// {"url", "dash", "poster", "expires_at"}. The caller must be the video's
// uploader or hold one of PLAYBACK_ROLES. An unknown video and a video the
// caller may not see both get the same 404, so ids cannot be probed; a
// visible video that is not playable yet gets 409. Grants are audited as
// url.signed, refusals as access.denied.
package signurl

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/mieweb/pulsevault/shared/audit/event"
	"github.com/mieweb/pulsevault/shared/auth"
	"github.com/mieweb/pulsevault/shared/bus"
	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/platform/config"
	"github.com/mieweb/pulsevault/shared/platform/fnrun"
	"github.com/mieweb/pulsevault/shared/platform/logging"
	"github.com/mieweb/pulsevault/shared/platform/secrets"
	"github.com/mieweb/pulsevault/shared/playback/grant"
	"github.com/mieweb/pulsevault/shared/playback/token"
	"github.com/mieweb/pulsevault/shared/storage"
)

// Name is the function's name in stack.yml.
const Name = "sign-url"

// maxBody bounds the request body: it is one small JSON object.
const maxBody = 4 << 10

// signedURLs counts grants, on the default registry fnrun serves.
var signedURLs = promauto.NewCounter(prometheus.CounterOpts{
	Name: "pulsevault_signed_urls_total", Help: "Playback URLs signed (each audited).",
})

// Server is the sign-url function over its dependencies.
type Server struct {
	Meta     *meta.Store
	Verifier *auth.Verifier
	Keys     func() (*token.Keyring, error)
	Policy   grant.Config
	Audit    func(ctx context.Context, e event.Event) error
	Log      *slog.Logger
	Now      func() time.Time
}

// ServeHTTP answers one sign request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		fnrun.WriteJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "use POST with {\"video\": \"<id>\"}"})
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	who, ok := grant.Authenticate(s.Verifier, w, r)
	if !ok {
		return
	}
	var req struct {
		Video string `json:"video"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
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
	if !grant.Playable(v.Status) {
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
	if err := s.Audit(ctx, event.Event{Actor: who.Subject, Action: event.URLSigned, Object: v.ID, Outcome: event.Success, Grant: g.ID}); err != nil {
		s.Log.Error("sign-url: audit event not recorded; refusing", "err", err.Error())
		fnrun.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "audit unavailable, try again"})
		return
	}
	signedURLs.Inc()
	fnrun.WriteJSON(w, http.StatusOK, g)
}

func (s *Server) audit(ctx context.Context, e event.Event) {
	if err := s.Audit(ctx, e); err != nil {
		s.Log.Warn("sign-url: audit event not recorded", "action", e.Action, "err", err.Error())
	}
}

// server builds the Server from the environment on first use; see fnrun.Lazy
// for how a failure is retried.
var server = fnrun.Lazy(func() (*Server, error) {
	cfg, err := config.FromEnv(Name)
	if err != nil {
		return nil, err
	}
	pol, err := grant.LoadSettings(os.Getenv)
	if err != nil {
		return nil, err
	}
	ver, err := grant.Verifier(cfg)
	if err != nil {
		return nil, err
	}
	st, err := storage.FromConfig(cfg)
	if err != nil {
		return nil, err
	}
	b, err := bus.ForFunction(cfg.NATSURL, Name) // audit events
	if err != nil {
		return nil, err
	}
	return &Server{
		Meta:     meta.NewStore(st, cfg.MediaBucket),
		Verifier: ver,
		Keys:     token.NewFile(filepath.Join(secrets.Dir(), token.SecretName)).Keyring,
		Policy:   pol,
		Audit:    event.NewPublisher(b, Name).Publish,
		Log:      logging.New(os.Stderr, cfg.LogLevel, "fn/"+Name),
		Now:      time.Now,
	}, nil
})

// Handle serves one request of the sign-url function.
func Handle(w http.ResponseWriter, r *http.Request) {
	s, err := server()
	if err != nil {
		logging.New(os.Stderr, os.Getenv("LOG_LEVEL"), "fn/"+Name).Error("sign-url: not configured", "err", err.Error())
		fnrun.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "sign-url is not configured; see the function log"})
		return
	}
	s.ServeHTTP(w, r)
}
