package server

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/mieweb/pulsevault/shared/audit/event"
	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/playback/mediaserve"
	"github.com/mieweb/pulsevault/shared/pulse/captoken"
	"github.com/mieweb/pulsevault/shared/pulse/protocol"
	"github.com/mieweb/pulsevault/shared/storage"
	"github.com/mieweb/pulsevault/shared/topology"
)

// artifacts serves /pulsevault/artifacts/<id>[/view-link|/status|/poster].
func (s *Server) artifacts(w http.ResponseWriter, r *http.Request, rest string) {
	id, sub, _ := strings.Cut(rest, "/")
	if c, err := protocol.CanonicalUUID(id); err != nil || c != id {
		protocol.WriteError(w, http.StatusNotFound, "not found: an artifact id is a UUID")
		return
	}
	allow := map[string]string{"": "GET, HEAD, DELETE", "view-link": "POST", "status": "GET, HEAD", "poster": "GET, HEAD"}[sub]
	if allow == "" {
		protocol.WriteError(w, http.StatusNotFound, "not found")
		return
	}
	if !strings.Contains(allow, r.Method) {
		w.Header().Set("Allow", allow)
		protocol.WriteError(w, http.StatusMethodNotAllowed, "use "+allow)
		return
	}
	read := r.Method == http.MethodGet || r.Method == http.MethodHead
	uses := []string{""}
	if read {
		uses = append(uses, captoken.UseView) // view tokens only open things
	}
	c, ok := s.authorize(w, r, read, uses...)
	if !ok {
		return
	}
	if c.ArtifactID != id {
		s.deny(r.Context(), "other-artifact")
		protocol.WriteError(w, http.StatusForbidden, "this link is for another video")
		return
	}
	switch {
	case sub == "" && read:
		s.serveArtifact(w, r, c)
	case sub == "":
		s.withdraw(w, r, c)
	case sub == "view-link":
		s.viewLink(w, r, c)
	case sub == "status":
		s.status(w, r, c)
	case sub == "poster":
		s.poster(w, r, c)
	}
}

// video reads the artifact's meta.json, answering for it when it is not
// (or no longer) servable.
func (s *Server) video(w http.ResponseWriter, r *http.Request, c captoken.Claims) (*meta.Video, bool) {
	v, _, err := s.metas.Get(r.Context(), c.ArtifactID)
	switch {
	case errors.Is(err, meta.ErrNotFound):
		protocol.WriteError(w, http.StatusNotFound, "not received yet: the video appears here once its upload is complete")
		return nil, false
	case err != nil:
		protocol.WriteError(w, http.StatusServiceUnavailable, "the store is unavailable: retry")
		return nil, false
	case v.Withdrawn != nil:
		protocol.WriteError(w, http.StatusForbidden, "this video was withdrawn by its owner")
		return nil, false
	case v.Status == meta.Rejected || v.Original == nil:
		protocol.WriteError(w, http.StatusNotFound, "this upload was not accepted as a video")
		return nil, false
	case c.Owner != "" && v.Uploader != c.Owner:
		protocol.WriteError(w, http.StatusForbidden, "this link is for another video")
		return nil, false
	}
	return v, true
}

// grant names the token a use came from, for the audit log.
func grant(c captoken.Claims) string {
	use := c.Use
	if use == "" {
		use = "capability"
	}
	return fmt.Sprintf("%s.%d", use, c.IssuedAt)
}

func mediaHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Cache-Control", "private, no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
}

// serveArtifact serves the video's web MP4, through the front proxy when
// it offers. Never the original: its container metadata (a phone's
// location, make and model) is the uploader's, not a viewer's; transcode
// writes a copy without it, and until then the artifact is not ready.
func (s *Server) serveArtifact(w http.ResponseWriter, r *http.Request, c captoken.Claims) {
	v, ok := s.video(w, r, c)
	if !ok {
		return
	}
	if v.WebMP4 == "" || !strings.HasPrefix(v.WebMP4, topology.VideoPrefix(v.ID)) {
		protocol.WriteError(w, http.StatusNotFound, "the video is still being prepared for playback: try again in a moment")
		return
	}
	key, ct := v.WebMP4, "video/mp4"
	// A viewing starts with a request from the first byte: that one is
	// audited (not every range a player asks for), before any byte goes.
	if rg := r.Header.Get("Range"); r.Method == http.MethodGet && (rg == "" || strings.HasPrefix(rg, "bytes=0-")) {
		if err := s.audit(r.Context(), event.Event{Actor: actor(c.Owner), Action: event.ArtifactServed, Object: v.ID, Outcome: event.Success, Reason: grant(c)}); err != nil && s.o.Audit != nil {
			protocol.WriteError(w, http.StatusServiceUnavailable, "the audit log is unavailable: retry in a minute")
			return
		}
	}
	mediaHeaders(w)
	mediaserve.Serve(w, r, s.o.Store, s.o.MediaBucket, key, ct, s.o.Log)
}

func (s *Server) poster(w http.ResponseWriter, r *http.Request, c captoken.Claims) {
	v, ok := s.video(w, r, c)
	if !ok {
		return
	}
	key := topology.VideoKey(v.ID, topology.PosterFile)
	if _, err := s.o.Store.Stat(r.Context(), s.o.MediaBucket, key); errors.Is(err, storage.ErrNotFound) {
		protocol.WriteError(w, http.StatusNotFound, "no poster yet: it is made while the video is processed")
		return
	} else if err != nil {
		protocol.WriteError(w, http.StatusServiceUnavailable, "the store is unavailable: retry")
		return
	}
	mediaHeaders(w)
	mediaserve.Serve(w, r, s.o.Store, s.o.MediaBucket, key, "image/jpeg", s.o.Log)
}

// ViewLink is the answer of POST .../view-link (view-link.schema.json).
type ViewLink struct {
	Token     string `json:"token"`
	ExpiresAt int64  `json:"expiresAt"`
}

func (s *Server) viewLink(w http.ResponseWriter, r *http.Request, c captoken.Claims) {
	v, ok := s.video(w, r, c)
	if !ok {
		return
	}
	tok, vc, err := s.o.Signer.Sign(v.ID, c.Owner, captoken.UseView, s.o.Now(), s.o.Config.ViewTTL)
	if err != nil {
		s.o.Log.Error("pulse: view token not signed", "err", err.Error())
		protocol.WriteError(w, http.StatusServiceUnavailable, "the server cannot sign links right now: retry in a minute")
		return
	}
	if err := s.audit(r.Context(), event.Event{Actor: actor(c.Owner), Action: event.ViewLinkGranted, Object: v.ID, Outcome: event.Success, Reason: grant(c)}); err != nil && s.o.Audit != nil {
		protocol.WriteError(w, http.StatusServiceUnavailable, "the audit log is unavailable: retry in a minute")
		return
	}
	writeJSON(w, http.StatusOK, ViewLink{Token: tok, ExpiresAt: vc.Expires})
}

// Status is the answer of GET .../status (artifact-status.schema.json).
type Status struct {
	ArtifactID    string         `json:"artifactId"`
	State         string         `json:"state"` // unknown, uploading, processing, ready
	Kind          string         `json:"kind,omitempty"`
	Name          string         `json:"name,omitempty"`
	BytesReceived int64          `json:"bytesReceived,omitempty"`
	Size          int64          `json:"size,omitempty"`
	Acknowledged  bool           `json:"acknowledged,omitempty"`
	Outcome       map[string]any `json:"outcome,omitempty"`
}

func (s *Server) status(w http.ResponseWriter, r *http.Request, c captoken.Claims) {
	ctx := r.Context()
	st := Status{ArtifactID: c.ArtifactID, State: "unknown"}
	v, _, err := s.metas.Get(ctx, c.ArtifactID)
	switch {
	case err == nil && v.Withdrawn != nil:
		protocol.WriteError(w, http.StatusForbidden, "this video was withdrawn by its owner")
		return
	case err == nil:
		st.Kind, st.Name, st.Acknowledged = protocol.KindVideo, v.Client["name"], true
		st.Outcome = map[string]any{"status": v.Status}
		if v.Reason != "" {
			st.Outcome["reason"] = v.Reason
		}
		if v.Original != nil {
			st.State, st.Size, st.BytesReceived = "ready", v.Original.Size, v.Original.Size
		}
	case !errors.Is(err, meta.ErrNotFound):
		protocol.WriteError(w, http.StatusServiceUnavailable, "the store is unavailable: retry")
		return
	default:
		obj := topology.PulseVideoObject(c.ArtifactID)
		if info, err := s.staged.Info(ctx, obj); err == nil {
			st.Kind, st.Name, st.Size, st.State = protocol.KindVideo, info.MetaData["name"], info.Size, "uploading"
			if _, err := s.o.Store.Stat(ctx, s.o.UploadsBucket, obj); err == nil {
				st.State, st.BytesReceived = "processing", info.Size // complete, finalize running
			}
		}
	}
	writeJSON(w, http.StatusOK, st)
}

// Withdrawal is the answer of DELETE /pulsevault/artifacts/<id>.
type Withdrawal struct {
	OK            bool      `json:"ok"`
	ArtifactID    string    `json:"artifactId"`
	Withdrawn     bool      `json:"withdrawn"`
	Deleted       bool      `json:"deleted"` // always false: the original is locked
	RetainedUntil time.Time `json:"retainedUntil"`
	Message       string    `json:"message"`
}

// withdraw answers DELETE: a COMPLIANCE-locked original cannot be deleted
// by anyone, so the video is withdrawn instead — gone from feeds, every
// token for it refused — and its bytes stay until retention ends.
func (s *Server) withdraw(w http.ResponseWriter, r *http.Request, c captoken.Claims) {
	if _, ok := s.video(w, r, c); !ok {
		return
	}
	now := s.o.Now().UTC()
	v, err := s.metas.Update(r.Context(), c.ArtifactID, func(v *meta.Video) error {
		if v.Withdrawn == nil {
			v.Withdrawn = &now
		}
		return nil
	})
	if err != nil {
		protocol.WriteError(w, http.StatusServiceUnavailable, "the store is unavailable: retry")
		return
	}
	_ = s.audit(r.Context(), event.Event{Actor: actor(c.Owner), Action: event.ArtifactWithdrawn, Object: v.ID, Outcome: event.Success, Reason: grant(c)})
	if s.o.Announce != nil {
		if err := s.o.Announce(r.Context(), v); err != nil {
			s.o.Log.Warn("pulse: withdrawal not announced; the feed drops it at its next rescan", "err", "bus-error")
		}
	}
	until := v.Original.RetainUntil
	writeJSON(w, http.StatusOK, Withdrawal{OK: true, ArtifactID: v.ID, Withdrawn: true, RetainedUntil: until,
		Message: "Withdrawn: the video is gone from feeds and every link to it stops working. Its original is locked " +
			"(COMPLIANCE retention) and cannot be deleted by anyone; the store removes it after " + until.Format(time.DateOnly) + "."})
}
