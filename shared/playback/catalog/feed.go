package catalog

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/mieweb/pulsevault/shared/audit/event"
	"github.com/mieweb/pulsevault/shared/auth"
	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/platform/fnrun"
	"github.com/mieweb/pulsevault/shared/platform/settings"
	"github.com/mieweb/pulsevault/shared/playback/grant"
	"github.com/mieweb/pulsevault/shared/playback/token"
)

// Page sizes.
const (
	DefaultLimit = 20
	MaxLimit     = 100
)

// FeedSettings are the feed's own environment variables.
var FeedSettings = []settings.Setting{
	{Env: "VIDEOS_RESCAN", Default: "2m", Usage: "how often the feed index is rebuilt from a full scan of the store, to repair changes nobody announced (10s–24h)"},
}

// LoadRescan reads VIDEOS_RESCAN.
func LoadRescan(getenv func(string) string) (time.Duration, error) {
	r := settings.New(getenv, FeedSettings)
	d := r.Duration("VIDEOS_RESCAN", 10*time.Second, 24*time.Hour)
	return d, r.Err()
}

// Item is one video as the API shows it.
type Item struct {
	ID       string      `json:"id"`
	Status   meta.Status `json:"status"`
	Created  time.Time   `json:"created"`
	Duration float64     `json:"duration,omitempty"`
	Width    int         `json:"width,omitempty"`
	Height   int         `json:"height,omitempty"`
	Poster   string      `json:"poster,omitempty"` // signed; absent until playable
}

// List is the answer of GET /.
type List struct {
	Videos []Item `json:"videos"`
	Next   string `json:"next,omitempty"`
}

// ReasonPoster is the audit reason of a poster grant (action url.signed).
const ReasonPoster = "poster"

// MetaReader reads a video's meta.json (meta.Store does).
type MetaReader interface {
	Get(ctx context.Context, id string) (*meta.Video, string, error)
}

// Feed is the feed API of Vitals (the videos function):
//
//	GET /?limit=N&cursor=C  videos the caller may see, newest first
//	GET /<id>               one video (404 when unknown or not visible: the same answer)
//
// Each item carries id, status, created, duration, width, height and, when
// playable, a signed poster path whose token grants that poster alone;
// each poster grant is audited (url.signed, reason poster) before it is
// handed out. Never any client metadata: that is where PHI lives.
type Feed struct {
	Catalog  *Catalog
	Meta     MetaReader
	Verifier *auth.Verifier
	Keys     func() (*token.Keyring, error)
	Policy   grant.Config
	Audit    func(ctx context.Context, e event.Event) error
	Log      *slog.Logger
	Now      func() time.Time
}

// ServeHTTP answers one feed request.
func (s *Feed) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		fnrun.WriteJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "use GET"})
		return
	}
	w.Header().Set("Cache-Control", "private, no-store")
	who, ok := grant.Authenticate(s.Verifier, w, r)
	if !ok {
		return
	}
	ring, err := s.Keys()
	if err != nil {
		s.Log.Error("videos: playback keys unavailable", "err", err.Error())
		fnrun.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "signing unavailable"})
		return
	}
	p := strings.Trim(r.URL.Path, "/")
	if p != "" {
		s.one(w, r, who, ring, p)
		return
	}
	limit := DefaultLimit
	if q := r.URL.Query().Get("limit"); q != "" {
		n, err := strconv.Atoi(q)
		if err != nil || n < 1 || n > MaxLimit {
			fnrun.WriteJSON(w, http.StatusBadRequest, map[string]string{"error": "limit must be 1–100"})
			return
		}
		limit = n
	}
	page, err := s.Catalog.List(r.Context(), func(v *meta.Video) bool { return s.Policy.CanView(who, v) }, r.URL.Query().Get("cursor"), limit)
	if errors.Is(err, ErrBadCursor) {
		fnrun.WriteJSON(w, http.StatusBadRequest, map[string]string{"error": "bad cursor: use the next value of a previous page"})
		return
	}
	if err != nil {
		s.Log.Error("videos: listing failed", "err", "store-error")
		fnrun.WriteJSON(w, http.StatusBadGateway, map[string]string{"error": "store unavailable"})
		return
	}
	out := List{Videos: make([]Item, 0, len(page.Videos)), Next: page.Next}
	for _, v := range page.Videos {
		out.Videos = append(out.Videos, item(v))
	}
	s.posters(r.Context(), who, ring, out.Videos)
	fnrun.WriteJSON(w, http.StatusOK, out)
}

func (s *Feed) one(w http.ResponseWriter, r *http.Request, who *auth.Claims, ring *token.Keyring, id string) {
	if u, err := uuid.Parse(id); err != nil || u.String() != id {
		fnrun.WriteJSON(w, http.StatusNotFound, map[string]string{"error": "no such video"})
		return
	}
	v, _, err := s.Meta.Get(r.Context(), id)
	if err != nil && !errors.Is(err, meta.ErrNotFound) {
		s.Log.Error("videos: meta read failed", "err", "store-error")
		fnrun.WriteJSON(w, http.StatusBadGateway, map[string]string{"error": "store unavailable"})
		return
	}
	if v == nil || !s.Policy.CanView(who, v) {
		fnrun.WriteJSON(w, http.StatusNotFound, map[string]string{"error": "no such video"})
		return
	}
	items := []Item{item(v)}
	s.posters(r.Context(), who, ring, items)
	fnrun.WriteJSON(w, http.StatusOK, items[0])
}

func item(v *meta.Video) Item {
	it := Item{ID: v.ID, Status: v.Status, Created: v.Created}
	if v.Probe != nil {
		it.Duration, it.Width, it.Height = v.Probe.Duration, v.Probe.Width, v.Probe.Height
	}
	return it
}

// posters signs the poster of every playable item for who, each token
// granting that one poster, and audits each grant (url.signed, reason
// poster; the events are published side by side). A poster whose grant
// could not be audited is left out: no grant goes unrecorded.
func (s *Feed) posters(ctx context.Context, who *auth.Claims, ring *token.Keyring, items []Item) {
	var wg sync.WaitGroup
	var failed atomic.Int32
	for i := range items {
		if !grant.Playable(items[i].Status) {
			continue
		}
		wg.Go(func() {
			u, err := s.Policy.Poster(ring, items[i].ID, s.Now())
			if err == nil {
				err = s.Audit(ctx, event.Event{Actor: who.Subject, Action: event.URLSigned, Object: items[i].ID,
					Outcome: event.Success, Reason: ReasonPoster})
			}
			if err != nil {
				failed.Add(1)
				return
			}
			items[i].Poster = u
		})
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		s.Log.Warn("videos: posters left out: their grant was not audited", "posters", n)
	}
}
