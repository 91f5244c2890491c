// Package mediaserve serves media objects behind a playback token: the media
// function's handler. It checks the token, audits playlist fetches, and
// streams the object's bytes with ranges, or hands the fetch to a front
// proxy that can read the store itself (see topology.HeaderOffload).
//
// The path after the function's root is <token>/videos/<id>/<rest>. Any
// token problem (malformed, unknown kid, forged, expired, another video, a
// traversal or encoded path) gets 403 with the same body. Only the
// renditions (hls/, dash/) and poster.jpg are served: meta.json (it holds
// the client's metadata) and the original never are, whatever the token.
//
// Bytes come from the store through http.ServeContent: one Range gives 206
// or 416, several ranges are answered 200 with the whole object (allowed by
// RFC 9110; players ask for one range), If-None-Match/ETag gives 304. Every
// playlist fetch (.m3u8, .mpd) is audited as media.accessed before it is
// served; segments are not, a playlist is what starts a viewing.
//
// Offload: bytes that cross the function also cross the gateway, two more
// sockets and two more processes each. A front proxy that can read the
// store itself (nginx with X-Accel-Redirect, shared/playback/origin) says so
// with topology.HeaderOffload; a GET that passes every check is then answered with
// an empty 200 and X-Accel-Redirect naming a presigned GET of the object
// under the proxy's internal prefix, and the proxy serves the bytes (and
// the Range) straight from the store.
package mediaserve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mieweb/pulsevault/shared/audit/event"
	"github.com/mieweb/pulsevault/shared/platform/copybuf"
	"github.com/mieweb/pulsevault/shared/playback/token"
	"github.com/mieweb/pulsevault/shared/storage"
	"github.com/mieweb/pulsevault/shared/topology"
)

// MetricsPath serves this function's own metrics alone; they are also on
// the default registry for fnrun's /metrics (a token is never "_").
const MetricsPath = "/_/metrics"

// A front proxy sets topology.HeaderOffload to take the bytes from the
// store itself. Its value is the proxy's internal location prefix, e.g.
// "/_pulsevault_s3/": the answer's X-Accel-Redirect is that prefix, the
// presigned path without its leading slash, and the query.

// offloadExpiry bounds the presigned URL a proxy fetches at once.
const offloadExpiry = time.Minute

// forbidden is the one body of every refusal: it says nothing about why.
const forbidden = "forbidden\n"

// contentTypes maps the extensions the pipeline writes to their types.
var contentTypes = map[string]string{
	".m3u8": "application/vnd.apple.mpegurl",
	".mpd":  "application/dash+xml",
	".m4s":  "video/iso.segment",
	".mp4":  "video/mp4",
	".m4a":  "audio/mp4",
	".m4v":  "video/mp4",
	".ts":   "video/mp2t",
	".jpg":  "image/jpeg",
	".jpeg": "image/jpeg",
	".vtt":  "text/vtt",
}

// Server is the media function over its dependencies.
type Server struct {
	Store  *storage.Store
	Bucket string
	Keys   func() (*token.Keyring, error)
	Audit  func(ctx context.Context, e event.Event) error // nil: no audit (unit tests only)
	Log    *slog.Logger
	Now    func() time.Time

	metrics   *metrics
	refusals  *rate.Limiter // bounds the refusals audited (RefusalAuditRate)
	unaudited atomic.Uint64 // refusals over the bound since the last summary
}

// RefusalAuditRate and RefusalAuditBurst bound the refusals one replica
// writes to the audit log (access.denied, one per refused request): past
// them a refusal is counted (media_refusals_unaudited_total) and the
// count goes into the next audited refusal's companion record
// (access.denied, reason suppressed-<n>), so a flood of forged or expired
// tokens cannot flood the log.
const (
	RefusalAuditRate  = 10 // per second, sustained
	RefusalAuditBurst = 50
)

type metrics struct {
	reg       *prometheus.Registry
	bytes     prometheus.Counter
	forbidden *prometheus.CounterVec
	playlists prometheus.Counter
	offloaded prometheus.Counter
	unaudited prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "media_bytes_served_total", Help: "Bytes of media bodies written to clients.",
		}),
		forbidden: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "media_forbidden_total", Help: "Requests refused with 403, by reason (a bounded set of codes).",
		}, []string{"reason"}),
		playlists: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "media_playlist_fetches_total", Help: "Playlist and manifest fetches (each audited).",
		}),
		unaudited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "media_refusals_unaudited_total", Help: "Refusals not written to the audit log one by one because they came faster than the documented bound (their count is).",
		}),
		offloaded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "media_offloaded_total", Help: "GETs handed to the front proxy to serve from the store (X-Accel-Redirect); their bytes are not in media_bytes_served_total.",
		}),
	}
	m.reg.MustRegister(m.Collectors()...)
	return m
}

// Collectors lists the server's metrics, for a registry of the caller's.
func (s *Server) Collectors() []prometheus.Collector { return s.metrics.Collectors() }

func (m *metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.bytes, m.forbidden, m.playlists, m.offloaded, m.unaudited}
}

// ServeHTTP serves one media request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.metrics == nil {
		panic("media: use NewServer")
	}
	if r.URL.Path == MetricsPath {
		promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}).ServeHTTP(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	h := w.Header()
	h.Set("Cache-Control", "private, no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")

	tok, key, err := token.SplitPath(r.URL.EscapedPath())
	var claims token.Claims
	if err == nil {
		var ring *token.Keyring
		if ring, err = s.Keys(); err != nil {
			s.Log.Error("media: playback keys unavailable", "err", err.Error())
			http.Error(w, "service unavailable", http.StatusServiceUnavailable)
			return
		}
		claims, err = ring.Verify(tok, s.Now())
	}
	if err == nil {
		err = claims.Allows(key)
	}
	if err == nil && !servable(claims.Video, key) {
		err = &token.Error{Reason: token.OutOfScope}
	}
	if err != nil {
		s.refuse(w, token.ReasonOf(err))
		s.auditRefusal(claims, token.ReasonOf(err))
		return
	}

	ext := strings.ToLower(path.Ext(key))
	ct, ok := contentTypes[ext]
	if !ok {
		ct = "application/octet-stream"
	}
	if ext == ".m3u8" || ext == ".mpd" {
		s.metrics.playlists.Inc()
		if s.Audit != nil {
			ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
			err := s.Audit(ctx, event.Event{Action: event.MediaAccessed, Object: claims.Video, Outcome: event.Success, Reason: strings.TrimPrefix(ext, "."), Grant: claims.Grant})
			cancel()
			if err != nil {
				// No unaudited viewing: the player retries.
				s.Log.Error("media: audit event not recorded; refusing the playlist", "err", err.Error())
				http.Error(w, "service unavailable", http.StatusServiceUnavailable)
				return
			}
		}
	}
	if prefix, ok := offloadPrefix(r); ok {
		s.offload(w, r, prefix, key, ct)
		return
	}
	s.serveObject(w, r, key, ct)
}

// offloadPrefix is the front proxy's internal prefix when the request may
// be offloaded: a GET of one range at most (a proxy would pass several to
// the store, which answers them unlike serveObject), and a prefix that is
// a plain absolute path.
func offloadPrefix(r *http.Request) (string, bool) {
	p := r.Header.Get(topology.HeaderOffload)
	if r.Method != http.MethodGet || strings.Contains(r.Header.Get("Range"), ",") || len(p) < 2 || p[0] != '/' || p[len(p)-1] != '/' {
		return "", false
	}
	for _, c := range p {
		if !(c == '/' || c == '_' || c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return "", false
		}
	}
	return p, true
}

// offload answers with the presigned GET of key for the proxy to serve.
// The proxy consumes the header (it never reaches the client), and the URL
// names this one object for a minute. Its path and query are all the proxy
// needs; the host is the store the proxy is configured with.
func (s *Server) offload(w http.ResponseWriter, r *http.Request, prefix, key, ct string) {
	if offload(w, r, s.Store, s.Bucket, prefix, key, ct, s.Log) {
		s.metrics.offloaded.Inc()
	}
}

// Serve answers r (GET or HEAD) with the bytes of key as the media function
// does once its token check passed: offloaded to the front proxy when it
// asked (topology.HeaderOffload), else streamed with Range and ETag. For
// other functions that serve stored objects behind checks of their own
// (the Pulse artifact route); the caller sets the cache headers. It returns
// the bytes it wrote itself.
func Serve(w http.ResponseWriter, r *http.Request, st *storage.Store, bucket, key, ct string, log *slog.Logger) int64 {
	if prefix, ok := offloadPrefix(r); ok {
		offload(w, r, st, bucket, prefix, key, ct, log)
		return 0
	}
	return serveObject(w, r, st, bucket, key, ct, log)
}

func offload(w http.ResponseWriter, r *http.Request, st *storage.Store, bucket, prefix, key, ct string, log *slog.Logger) bool {
	u, err := st.PresignGet(r.Context(), bucket, key, offloadExpiry)
	if err != nil {
		log.Error("media: presign failed", "err", errClass(err))
		http.Error(w, "bad gateway", http.StatusBadGateway)
		return false
	}
	h := w.Header()
	h.Set("Content-Type", ct)
	h.Set("X-Accel-Redirect", prefix+strings.TrimPrefix(u.EscapedPath(), "/")+"?"+u.RawQuery)
	w.WriteHeader(http.StatusOK)
	return true
}

// servable lists what a player may fetch under a video.
func servable(video, key string) bool {
	rest := strings.TrimPrefix(key, topology.VideoPrefix(video))
	return strings.HasPrefix(rest, topology.HLSDir) || strings.HasPrefix(rest, topology.DASHDir) || rest == topology.PosterFile
}

// auditRefusal records a refused request (access.denied, the reason code,
// and the video and grant when the token was genuine), within the bound,
// without holding up the 403. A token that did not verify names nothing:
// its fields are not to be believed.
func (s *Server) auditRefusal(c token.Claims, reason token.Reason) {
	if s.Audit == nil {
		return
	}
	if reason == "" {
		reason = token.Malformed
	}
	if !s.refusals.Allow() {
		s.unaudited.Add(1)
		s.metrics.unaudited.Inc()
		return
	}
	evs := []event.Event{{Action: event.AccessDenied, Object: c.Video, Grant: c.Grant, Outcome: event.Denied, Reason: string(reason)}}
	if n := s.unaudited.Swap(0); n > 0 {
		evs = append(evs, event.Event{Action: event.AccessDenied, Outcome: event.Denied, Reason: fmt.Sprintf("suppressed-%d", n)})
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, e := range evs {
			if err := s.Audit(ctx, e); err != nil {
				s.Log.Warn("media: refusal not audited", "err", err.Error())
			}
		}
	}()
}

func (s *Server) refuse(w http.ResponseWriter, reason token.Reason) {
	if reason == "" {
		reason = token.Malformed
	}
	s.metrics.forbidden.WithLabelValues(string(reason)).Inc()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusForbidden)
	_, _ = io.WriteString(w, forbidden)
}

func (s *Server) serveObject(w http.ResponseWriter, r *http.Request, key, ct string) {
	s.metrics.bytes.Add(float64(serveObject(w, r, s.Store, s.Bucket, key, ct, s.Log)))
}

func serveObject(w http.ResponseWriter, r *http.Request, st *storage.Store, bucket, key, ct string, log *slog.Logger) int64 {
	ctx := r.Context()
	if strings.Contains(r.Header.Get("Range"), ",") {
		// Several ranges: answer with the whole object (see the package doc).
		r.Header.Del("Range")
	}
	obj := &object{ctx: ctx, st: st, bucket: bucket, key: key}
	defer obj.Close()
	var info storage.Info
	var err error
	if r.Header.Get("Range") == "" && r.Method == http.MethodGet {
		// The common case costs one store request: the body is opened now
		// and handed to ServeContent if it reads from the start.
		obj.body, info, err = st.Get(ctx, bucket, key, 0, -1)
	} else {
		info, err = st.Stat(ctx, bucket, key)
	}
	if errors.Is(err, storage.ErrNotFound) {
		http.Error(w, "not found", http.StatusNotFound)
		return 0
	}
	if err != nil {
		log.Error("media: store read failed", "err", errClass(err))
		http.Error(w, "bad gateway", http.StatusBadGateway)
		return 0
	}
	obj.size = info.Size
	h := w.Header()
	h.Set("Content-Type", ct)
	if info.ETag != "" {
		h.Set("ETag", `"`+strings.Trim(info.ETag, `"`)+`"`)
	}
	cw := &countingWriter{ResponseWriter: w}
	http.ServeContent(cw, r, "", time.Time{}, obj)
	if obj.err != nil && ctx.Err() == nil {
		log.Error("media: store read failed mid-response", "err", errClass(obj.err))
	}
	return cw.n
}

// errClass keeps object keys out of the log: storage errors name the key.
func errClass(err error) string {
	switch {
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, storage.ErrNotFound):
		return "not-found"
	}
	return "store-error"
}

// object is an io.ReadSeeker over a stored object for ServeContent:
// seeking is free, and reading opens a ranged GET from the current offset
// (reusing the body already open when it is at that offset).
type object struct {
	ctx         context.Context
	st          *storage.Store
	bucket, key string
	size, pos   int64
	body        io.ReadCloser
	bodyPos     int64
	err         error
}

func (o *object) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		off += o.pos
	case io.SeekEnd:
		off += o.size
	default:
		return 0, errors.New("media: bad whence")
	}
	if off < 0 {
		return 0, errors.New("media: negative offset")
	}
	o.pos = off
	return off, nil
}

func (o *object) Read(p []byte) (int, error) {
	if o.pos >= o.size {
		return 0, io.EOF
	}
	if o.body == nil || o.bodyPos != o.pos {
		o.Close()
		body, _, err := o.st.Get(o.ctx, o.bucket, o.key, o.pos, -1)
		if err != nil {
			o.err = err
			return 0, err
		}
		o.body, o.bodyPos = body, o.pos
	}
	n, err := o.body.Read(p)
	o.pos += int64(n)
	o.bodyPos += int64(n)
	if err != nil && err != io.EOF {
		o.err = err
	}
	return n, err
}

func (o *object) Close() {
	if o.body != nil {
		o.body.Close()
		o.body = nil
	}
}

type countingWriter struct {
	http.ResponseWriter
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.ResponseWriter.Write(b)
	c.n += int64(n)
	return n, err
}

func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// ReadFrom is what http.ServeContent's copy of the body calls: 256 KiB
// reads from the store and writes to the client instead of io.Copy's 32 KiB.
func (c *countingWriter) ReadFrom(r io.Reader) (int64, error) {
	return copybuf.Copy(copybuf.WriterOnly{Writer: c}, r)
}

// NewServer fills in defaults and the metrics.
func NewServer(s *Server) *Server {
	if s.Log == nil {
		s.Log = slog.New(slog.DiscardHandler)
	}
	if s.Now == nil {
		s.Now = time.Now
	}
	s.metrics = newMetrics()
	s.refusals = rate.NewLimiter(RefusalAuditRate, RefusalAuditBurst)
	return s
}
