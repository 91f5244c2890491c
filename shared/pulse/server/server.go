// Package server is the Pulse upload protocol on PulseVault's store: what
// the pulsevault function serves, under the public paths
//
//	GET    /pulsevault/capabilities                 discovery, no credential
//	POST   /pulsevault/upload                       tus create (capability token)
//	HEAD|PATCH|DELETE /pulsevault/upload/<id>       tus; <id> = base64url("<kind>/<artifactId><ext>")
//	GET|HEAD /pulsevault/artifacts/<id>             the finished video (Range), ?token= or Bearer
//	POST   /pulsevault/artifacts/<id>/view-link     a read-only view token
//	GET    /pulsevault/artifacts/<id>/status        where the upload is
//	GET    /pulsevault/artifacts/<id>/poster        the poster still
//	DELETE /pulsevault/artifacts/<id>               withdraw (the locked original stays)
//	POST   /api/pairings                            a pairing link for the signed-in person (JWT)
//
// The tus protocol is shared/ingest/tusupload (tusd and its s3store) with
// this package as its Authorizer: a capability token authorizes its anchor
// artifact (the video) and the companions created relatedTo it, nothing
// else. Uploads are staged under topology's Pulse object ids, so the
// finalizer gives the video its artifact id as video id and the pairing's
// owner as uploader, and attaches the companions when the video lands.
// Every error body is {"ok": false, "error"}; every /pulsevault response
// carries Protocol-Version; a Pulse-Client whose range misses ours gets 426.
package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/mieweb/pulsevault/shared/audit/event"
	"github.com/mieweb/pulsevault/shared/auth"
	"github.com/mieweb/pulsevault/shared/ingest/staging"
	"github.com/mieweb/pulsevault/shared/ingest/tusupload"
	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/pulse/captoken"
	"github.com/mieweb/pulsevault/shared/pulse/protocol"
	"github.com/mieweb/pulsevault/shared/storage"
)

// Public path prefixes.
const (
	Prefix       = "/pulsevault"
	UploadPath   = Prefix + "/upload"
	ArtifactPath = Prefix + "/artifacts/"
	PairingsPath = "/api/pairings"
)

// Options configures New.
type Options struct {
	Store         *storage.Store
	UploadsBucket string
	MediaBucket   string
	// RetentionDays is the COMPLIANCE retention of each meta.json version
	// the server writes (a withdrawal); 0 writes without (unit tests).
	RetentionDays int
	// Tus is the tus endpoint's configuration; New sets its Authorizer,
	// Bucket, Staged and BasePath.
	Tus    tusupload.Options
	Signer captoken.Signer
	JWT    *auth.Verifier // for POST /api/pairings
	Config Config
	Audit  func(ctx context.Context, e event.Event) error // nil: no audit (unit tests only)
	// Announce tells the feeds a video changed (a withdrawal changes no
	// status, so meta.Store announces nothing); nil announces nothing.
	Announce func(ctx context.Context, v *meta.Video) error
	Log      *slog.Logger
	Now      func() time.Time
}

// Server serves the protocol.
type Server struct {
	o      Options
	tus    http.Handler
	staged *staging.Store
	metas  *meta.Store

	mu     sync.Mutex
	hashes map[string]*running // object id → checksum state of its upload so far
}

// New builds the Server and its tus handler.
func New(o Options) (*Server, error) {
	if o.Store == nil || o.UploadsBucket == "" || o.MediaBucket == "" || o.Signer.Keys == nil || o.JWT == nil {
		return nil, errors.New("pulse: Store, both buckets, Signer and JWT are required")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Server{o: o, staged: staging.New(o.Store, o.UploadsBucket), metas: meta.NewStore(o.Store, o.MediaBucket).Retain(o.RetentionDays), hashes: map[string]*running{}}
	t := o.Tus
	t.Authorizer = s
	t.Verifier = nil
	t.Bucket = o.UploadsBucket
	t.Staged = s.staged
	t.Limits.BasePath = UploadPath + "/"
	t.Limits.CORSOrigins = nil // the app is no browser
	h, err := tusupload.New(t)
	if err != nil {
		return nil, err
	}
	s.tus = h
	return s, nil
}

// ServeHTTP routes one request by its public path.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	if p == PairingsPath {
		s.pairings(w, r)
		return
	}
	if p != Prefix && !strings.HasPrefix(p, Prefix+"/") {
		protocol.WriteError(w, http.StatusNotFound, "not found")
		return
	}
	w.Header().Set(protocol.HeaderProtocolVersion, "2")
	switch {
	case p == Prefix+"/capabilities":
		s.capabilities(w, r)
	case p == UploadPath || strings.HasPrefix(p, UploadPath+"/"):
		if protocol.CheckClient(w, r) {
			s.upload(w, r)
		}
	case strings.HasPrefix(p, ArtifactPath):
		if protocol.CheckClient(w, r) {
			s.artifacts(w, r, strings.TrimPrefix(p, ArtifactPath))
		}
	default:
		protocol.WriteError(w, http.StatusNotFound, "not found: the Pulse protocol lives under /pulsevault (capabilities, upload, artifacts)")
	}
}

func (s *Server) capabilities(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		protocol.WriteError(w, http.StatusMethodNotAllowed, "use GET")
		return
	}
	writeJSON(w, http.StatusOK, protocol.NewCapabilities(s.o.Tus.Limits.MaxBytes))
}

// bearer is the request's token: the Authorization header, or (query
// allowed, for artifact GETs a browser opens) ?token=.
func bearer(r *http.Request, query bool) (string, bool) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
			return "", true // a credential, but not one of ours: 403
		}
		return strings.TrimSpace(tok), true
	}
	if query {
		if t := r.URL.Query().Get("token"); t != "" {
			return t, true
		}
	}
	return "", false
}

// tokenMessage is what a person reads when a token is refused.
func tokenMessage(reason captoken.Reason) string {
	switch reason {
	case captoken.Expired:
		return "this pairing link has expired: make a new pairing link and scan it again"
	case captoken.UnknownKid:
		return "this pairing link was signed with a key the server no longer has: make a new pairing link"
	}
	return "this link is not valid for this server: make a new pairing link and scan it again"
}

// authorize checks r's token for use ("" capability, or view), answering
// 401/403 itself when it returns false.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, query bool, uses ...string) (captoken.Claims, bool) {
	tok, present := bearer(r, query)
	if !present {
		w.Header().Set("WWW-Authenticate", `Bearer realm="pulsevault"`)
		protocol.WriteError(w, http.StatusUnauthorized, "no credential: send the pairing token as Authorization: Bearer <token>")
		return captoken.Claims{}, false
	}
	var last error
	for _, use := range uses {
		c, err := s.o.Signer.Verify(tok, use, s.o.Now())
		if err == nil {
			return c, true
		}
		if captoken.ReasonOf(err) == "" {
			s.o.Log.Error("pulse: capability keys unavailable", "err", err.Error())
			protocol.WriteError(w, http.StatusServiceUnavailable, "the server cannot check tokens right now: retry in a minute")
			return captoken.Claims{}, false
		}
		if last == nil || captoken.ReasonOf(err) != captoken.WrongUse {
			last = err
		}
	}
	s.deny(r.Context(), captoken.ReasonOf(last))
	protocol.WriteError(w, http.StatusForbidden, tokenMessage(captoken.ReasonOf(last)))
	return captoken.Claims{}, false
}

// deny audits a refused token (no object: the token's claims are not trusted).
func (s *Server) deny(ctx context.Context, reason captoken.Reason) {
	_ = s.audit(ctx, event.Event{Actor: "anonymous", Action: event.AccessDenied, Outcome: event.Denied, Reason: "capability-" + string(reason)})
}

func (s *Server) audit(ctx context.Context, e event.Event) error {
	if s.o.Audit == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := s.o.Audit(ctx, e)
	if err != nil {
		s.o.Log.Error("pulse: audit event not recorded", "action", e.Action, "err", err.Error())
	}
	return err
}

func writeJSON(w http.ResponseWriter, status int, v any) { protocol.WriteJSON(w, status, v) }
