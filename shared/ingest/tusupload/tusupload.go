// Package tusupload is the tus 1.0 upload endpoint: tusd v2 storing into the
// uploads bucket through its s3store, with PulseVault's rules around it.
//
//   - Every request but a CORS preflight needs a bearer JWT; creation checks
//     it in tusd's pre-create hook and records the token's subject in the
//     upload's metadata (.info), beside the client's own metadata. With an
//     Authorizer instead (the Pulse capability tokens), it decides creation
//     and names the staged object a request is for; the .info must agree
//     (same object, same owner) or the answer is its 404, and tusd gets the
//     .info's own upload id. Everything else below holds for both.
//   - An upload belongs to the subject that created it: another subject's
//     HEAD, PATCH, DELETE (or GET) gets the same 404 as an unknown upload.
//     The id checked is the one tusd serves, derived as tusd and s3store
//     derive it (see id.go); a path that is not exactly one upload id of
//     s3store's shape ("<32 hex>+<multipart id>", no '/', one '+') names
//     no upload and gets that 404 before anything is read. A POST with
//     X-HTTP-Method-Override is checked as the method tusd will run.
//   - Extensions: creation, creation-with-upload, creation-defer-length,
//     termination, expiration. Concatenation is not supported: a request
//     with Upload-Concat gets 400 (a final upload could otherwise take any
//     upload's bytes). Downloads are disabled.
//   - Client metadata is bounded at creation: only MetadataKeys, each
//     value at most MaxMetadataValue bytes, MaxMetadataBytes in all;
//     anything else gets 400 ERR_INVALID_METADATA.
//   - An upload whose bytes are all in but whose last PATCH died before tusd
//     finished it is finished at the client's next HEAD.
//   - The client's metadata never leaves the .info: tusd would copy it into
//     the staged object's S3 metadata, and from there it would follow the
//     original into the media bucket, so it is dropped on the way to S3.
//   - Object keys are tusd's random ids.
//   - Location headers are right behind the gateway (/function/upload/),
//     behind proxies that send X-Forwarded-Host/Proto, and behind a path
//     prefix announced with X-Forwarded-Prefix. Forwarded is ignored, as is
//     an X-Forwarded-Host that is not one plain host[:port].
package tusupload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/tus/tusd/v2/pkg/handler"
	"github.com/tus/tusd/v2/pkg/memorylocker"
	"github.com/tus/tusd/v2/pkg/s3store"
	expslog "golang.org/x/exp/slog"

	"github.com/mieweb/pulsevault/shared/auth"
	"github.com/mieweb/pulsevault/shared/bus/lease"
	"github.com/mieweb/pulsevault/shared/ingest/staging"
	"github.com/mieweb/pulsevault/shared/ingest/videoid"
	"github.com/mieweb/pulsevault/shared/platform/logging"
)

// Options configures New.
type Options struct {
	S3Endpoint, S3Region, S3AccessKey, S3SecretKey string
	Bucket                                         string // the uploads bucket (no lock, no versioning)
	Limits                                         Limits
	Verifier                                       *auth.Verifier
	// Authorizer, when set, replaces Verifier: it authorizes creation and
	// names the upload a request is for (the Pulse capability tokens,
	// shared/pulse/server). The tus handling is this package's either way.
	Authorizer Authorizer
	// Staged reads the .info tusd writes, to find who owns an upload;
	// it must be over Bucket.
	Staged *staging.Store
	// Locks serialises requests on one upload across replicas. Nil keeps
	// locks in this process: then run one replica only.
	Locks *lease.Bucket
	// LogWriter receives tusd's own log (warnings and errors, redacted as
	// shared/platform/logging does); default: discarded.
	LogWriter io.Writer
	// TempDir holds the parts s3store buffers before sending them; default
	// the system's temporary directory.
	TempDir string
}

// New returns the tus handler. It serves paths relative to the function
// root ("/" creates, "/<id>" is an upload), which is what the gateway
// passes on.
func New(o Options) (http.Handler, error) {
	if o.Verifier == nil && o.Authorizer == nil {
		return nil, errors.New("tusupload: a token verifier or an authorizer is required")
	}
	if o.Staged == nil || o.Staged.Bucket() != o.Bucket {
		return nil, errors.New("tusupload: a staging store over the uploads bucket is required")
	}
	if o.LogWriter == nil {
		o.LogWriter = io.Discard
	}
	u, err := url.Parse(o.S3Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("tusupload: S3 endpoint %q is not an http(s) URL", o.S3Endpoint)
	}
	client := s3.New(s3.Options{
		BaseEndpoint: aws.String(u.Scheme + "://" + u.Host),
		Region:       o.S3Region,
		Credentials:  credentials.NewStaticCredentialsProvider(o.S3AccessKey, o.S3SecretKey, ""),
		UsePathStyle: true,
		// tusd sends Content-MD5 and SHA-256 itself; the SDK's default
		// CRC32 trailers are not understood by every S3 store.
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
	store := s3store.New(o.Bucket, noMetadata{client})
	store.TemporaryDirectory = o.TempDir
	// Not store.UseIn: that registers the Concater too (and serving
	// content, for downloads we disable).
	composer := handler.NewStoreComposer()
	composer.UseCore(store)
	composer.UseTerminater(store)
	composer.UseLengthDeferrer(store)
	if o.Locks != nil {
		composer.UseLocker(leaseLocker{o.Locks})
	} else {
		memorylocker.New().UseIn(composer)
	}

	cors := handler.DefaultCorsConfig
	cors.AllowOrigin = originRegexp(o.Limits.CORSOrigins)
	cors.ExposeHeaders += ", Upload-Expires"
	h := &tusHandler{o: o, uploads: map[string]staged{}, store: store}
	th, err := handler.NewHandler(handler.Config{
		StoreComposer:           composer,
		MaxSize:                 o.Limits.MaxBytes,
		BasePath:                o.Limits.BasePath,
		DisableDownload:         true,
		DisableConcatenation:    true,
		RespectForwardedHeaders: true,
		Cors:                    &cors,
		Logger:                  tusdLogger(o.LogWriter),
		PreUploadCreateCallback: h.preCreate,
		NetworkTimeout:          o.Limits.IdleTimeout,
		// Longer than a dead replica's lease lives (see functions/upload), so
		// a request after a crash waits for the lock instead of failing.
		AcquireLockTimeout: 20 * time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("tusupload: %w", err)
	}
	h.tus = th
	h.cors = cors.AllowOrigin
	return h, nil
}

// originRegexp matches exactly the listed origins (nothing when empty).
func originRegexp(origins []string) *regexp.Regexp {
	if len(origins) == 0 {
		return regexp.MustCompile(`^\b$`) // matches no origin
	}
	q := make([]string, len(origins))
	for i, o := range origins {
		q[i] = regexp.QuoteMeta(o)
	}
	return regexp.MustCompile("^(" + strings.Join(q, "|") + ")$")
}

type tusHandler struct {
	o    Options
	tus  http.Handler
	cors *regexp.Regexp

	store   handler.DataStore
	mu      sync.Mutex
	uploads map[string]staged // object id → its .info, once its length is known
}

// maxUploads bounds the .info cache; when full it starts over, which costs
// one .info read per live upload.
const maxUploads = 10000

// prefixRe is what X-Forwarded-Prefix may hold: a plain absolute path.
var prefixRe = regexp.MustCompile(`^(/[A-Za-z0-9._~-]+)+/?$`)

func (h *tusHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// tusd runs a POST carrying X-HTTP-Method-Override as that method:
	// apply it here, so that every check below sees the method tusd runs.
	// (On a copy: the server must still answer the POST it read.)
	if m := r.Header.Get("X-HTTP-Method-Override"); m != "" && r.Method == http.MethodPost {
		if m != http.MethodPatch && m != http.MethodDelete {
			tusError(w, http.StatusBadRequest, "ERR_INVALID_METHOD_OVERRIDE", "X-HTTP-Method-Override may only be PATCH or DELETE")
			return
		}
		r = r.Clone(r.Context())
		r.Method = m
		r.Header.Del("X-HTTP-Method-Override")
	}
	if r.Header.Get("Upload-Concat") != "" {
		// Concatenation would let a final upload take any other upload's
		// bytes (tusd checks neither owner nor partial), and no client of
		// ours needs it. Without a Concater tusd ignores the header and
		// would create a plain upload: refuse it instead.
		tusError(w, http.StatusBadRequest, "ERR_CONCATENATION_UNSUPPORTED", "concatenation (Upload-Concat) is not supported: send the file as one upload")
		return
	}
	forwarded(r)
	root := strings.Trim(r.URL.Path, "/") == "" // as tusd routes
	// Creation is authorised in the pre-create hook; everything else
	// (offset, data, termination) here, as a preflight carries no token.
	if a := h.o.Authorizer; a != nil && r.Method != http.MethodOptions && (r.Method != http.MethodPost || !root) {
		// The authorizer names the object; its .info names the upload id
		// tusd is then handed, so the id authorized is the id served.
		object, subject, ok := a.Locate(w, r, strings.Trim(r.URL.Path, "/"))
		if !ok {
			return
		}
		u, err := h.lookup(r, object)
		switch {
		case errors.Is(err, staging.ErrNotFound) || err == nil && (u.owner != subject || videoid.ObjectID(u.id) != object):
			a.Refuse(w, r, http.StatusNotFound)
			return
		case err != nil:
			a.Refuse(w, r, http.StatusServiceUnavailable)
			return
		}
		r = r.Clone(r.Context())
		r.URL.Path, r.URL.RawPath = "/"+u.id, ""
		if r.Method == http.MethodPatch {
			a.Patch(r, Staged{ID: u.id, Object: object, Size: u.size, MetaData: u.meta})
			if r.ContentLength < 0 && !u.deferred {
				exactBody(r, u.size)
			}
		}
		if r.Method == http.MethodHead && !u.deferred {
			h.finishIfComplete(r, u.id)
		}
	} else if r.Method != http.MethodOptions && (r.Method != http.MethodPost || !root) {
		claims, err := h.o.Verifier.FromRequest(r)
		if err != nil {
			h.unauthorized(w, r)
			return
		}
		if !root {
			id, object, ok := uploadID(r.URL.Path)
			if !ok {
				notFound(w)
				return
			}
			u, ok := h.owns(w, r, id, object, claims.Subject)
			if !ok {
				return
			}
			if r.Method == http.MethodPatch && r.ContentLength < 0 && !u.deferred {
				exactBody(r, u.size)
			}
			if r.Method == http.MethodHead && !u.deferred {
				h.finishIfComplete(r, id)
			}
		}
	}
	if p := r.Header.Get("X-Forwarded-Prefix"); p != "" && prefixRe.MatchString(p) && !strings.Contains(p, "..") {
		w = &locationRewriter{ResponseWriter: w, from: h.o.Limits.BasePath, to: strings.TrimSuffix(p, "/") + "/"}
	}
	if r.Method == http.MethodPost {
		w = &expiresWriter{ResponseWriter: w, expiry: h.o.Limits.Expiry}
	}
	h.tus.ServeHTTP(w, r)
}

// hostRe is what X-Forwarded-Host may hold: a host name or address and
// an optional port.
var hostRe = regexp.MustCompile(`^([A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?$`)

// forwarded keeps, of the forwarding headers tusd reads for Location, the
// ones our proxies set (X-Forwarded-Host and -Proto) and only when they
// are plain: Forwarded (which tusd prefers) is dropped, since neither
// nginx nor the public origin sets it and a client could.
func forwarded(r *http.Request) {
	r.Header.Del("Forwarded")
	if v := r.Header.Values("X-Forwarded-Host"); len(v) != 1 || !hostRe.MatchString(v[0]) {
		r.Header.Del("X-Forwarded-Host")
	}
}

func (h *tusHandler) unauthorized(w http.ResponseWriter, r *http.Request) {
	if o := r.Header.Get("Origin"); o != "" && h.cors.MatchString(o) {
		w.Header().Set("Access-Control-Allow-Origin", o)
		w.Header().Set("Vary", "Origin")
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="pulsevault"`)
	w.Header().Set("Tus-Resumable", "1.0.0")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusUnauthorized)
	_, _ = w.Write([]byte("unauthorized\n"))
}

// staged is what the handler keeps of an upload's .info: its id, who
// owns it, and its declared length (never changes once declared).
type staged struct {
	id       string
	owner    string
	size     int64
	deferred bool
	meta     map[string]string // the client's metadata (bounded at creation)
}

// lookup reads the .info of the upload with object id object, from the
// cache when its length is known.
func (h *tusHandler) lookup(r *http.Request, object string) (staged, error) {
	h.mu.Lock()
	u, ok := h.uploads[object]
	h.mu.Unlock()
	if ok && !u.deferred {
		return u, nil
	}
	info, err := h.o.Staged.Info(r.Context(), object)
	if err != nil {
		return staged{}, err
	}
	u = staged{id: info.ID, owner: info.Subject(), size: info.Size, deferred: info.SizeIsDeferred, meta: info.Client()}
	h.mu.Lock()
	if len(h.uploads) >= maxUploads {
		clear(h.uploads)
	}
	h.uploads[object] = u
	h.mu.Unlock()
	return u, nil
}

// owns answers for r unless subject created the upload id (object id
// object) exactly as named: the .info's own id must be id, so no other
// multipart id or spelling reaches tusd. Another subject's upload is
// reported as not found, exactly like an unknown one (which tusd's
// s3store would otherwise let DELETE "succeed"), so ids cannot be probed.
// It returns what it read of the upload.
func (h *tusHandler) owns(w http.ResponseWriter, r *http.Request, id, object, subject string) (staged, bool) {
	u, err := h.lookup(r, object)
	switch {
	case errors.Is(err, staging.ErrNotFound):
		notFound(w)
		return u, false
	case err != nil:
		w.Header().Set("Tus-Resumable", "1.0.0")
		http.Error(w, "upload state unavailable, retry", http.StatusServiceUnavailable)
		return u, false
	case u.id != id || u.owner != subject:
		notFound(w)
		return u, false
	}
	return u, true
}

// finishIfComplete finishes the upload id if all its bytes are in
// but it was never finished: tusd finishes an upload at the end of the
// PATCH that completes it, so a replica killed between its last part and
// the finish leaves a multipart upload open — no object, no bucket event,
// no video — while HEAD reports offset == length and the client stops.
// Finishing an upload that was finished fails harmlessly (NoSuchUpload).
func (h *tusHandler) finishIfComplete(r *http.Request, id string) {
	up, err := h.store.GetUpload(r.Context(), id)
	if err != nil {
		return
	}
	info, err := up.GetInfo(r.Context())
	if err != nil || info.SizeIsDeferred || info.Offset != info.Size {
		return
	}
	_ = up.FinishUpload(r.Context())
}

// notFound answers as tusd does for an unknown upload.
func notFound(w http.ResponseWriter) {
	tusError(w, http.StatusNotFound, "ERR_UPLOAD_NOT_FOUND", "upload not found")
}

// tusError answers as tusd does for its own errors.
func tusError(w http.ResponseWriter, code int, errCode, msg string) {
	w.Header().Set("Tus-Resumable", "1.0.0")
	http.Error(w, errCode+": "+msg, code)
}

// preCreate authorises a new upload and records who made it.
func (h *tusHandler) preCreate(ev handler.HookEvent) (handler.HTTPResponse, handler.FileInfoChanges, error) {
	if a := h.o.Authorizer; a != nil {
		if err := checkMetadata(ev.HTTPRequest.Header, ev.Upload.MetaData); err != nil {
			return handler.HTTPResponse{}, handler.FileInfoChanges{}, err
		}
		if ev.Upload.IsPartial || ev.Upload.IsFinal || len(ev.Upload.PartialUploads) > 0 {
			return handler.HTTPResponse{}, handler.FileInfoChanges{}, handler.ErrConcatenationUnsupported
		}
		object, subject, err := a.Create(ev)
		if err != nil {
			return handler.HTTPResponse{}, handler.FileInfoChanges{}, err
		}
		md := handler.MetaData{}
		for k, v := range ev.Upload.MetaData {
			md[k] = v
		}
		md[staging.SubjectKey] = subject
		return handler.HTTPResponse{}, handler.FileInfoChanges{ID: object, MetaData: md}, nil
	}
	req := &http.Request{Header: ev.HTTPRequest.Header}
	claims, err := h.o.Verifier.FromRequest(req.WithContext(ev.Context))
	if err != nil {
		return handler.HTTPResponse{}, handler.FileInfoChanges{}, handler.NewError("ERR_UNAUTHORIZED", "unauthorized", http.StatusUnauthorized)
	}
	if err := checkMetadata(ev.HTTPRequest.Header, ev.Upload.MetaData); err != nil {
		return handler.HTTPResponse{}, handler.FileInfoChanges{}, err
	}
	if ev.Upload.IsPartial || ev.Upload.IsFinal || len(ev.Upload.PartialUploads) > 0 {
		// ServeHTTP refuses Upload-Concat already; this hook must not let
		// one through should that ever change.
		return handler.HTTPResponse{}, handler.FileInfoChanges{}, handler.ErrConcatenationUnsupported
	}
	md := handler.MetaData{}
	for k, v := range ev.Upload.MetaData {
		md[k] = v
	}
	md[staging.SubjectKey] = claims.Subject
	return handler.HTTPResponse{}, handler.FileInfoChanges{MetaData: md}, nil
}

// noMetadata keeps the client's metadata out of S3 object metadata (and
// thereby out of every copy of the object): it stays in the .info only.
type noMetadata struct{ s3store.S3API }

func (n noMetadata) CreateMultipartUpload(ctx context.Context, in *s3.CreateMultipartUploadInput, opt ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error) {
	c := *in
	c.Metadata = nil
	c.ContentType = aws.String("application/octet-stream") // the client's filetype is not trusted either
	return n.S3API.CreateMultipartUpload(ctx, &c, opt...)
}

// locationRewriter moves Location under the prefix a proxy announced.
type locationRewriter struct {
	http.ResponseWriter
	from, to string
}

func (l *locationRewriter) WriteHeader(code int) {
	if loc := l.Header().Get("Location"); loc != "" {
		if u, err := url.Parse(loc); err == nil && strings.HasPrefix(u.Path, l.from) {
			u.Path = l.to + strings.TrimPrefix(u.Path, l.from)
			l.Header().Set("Location", u.String())
		}
	}
	l.ResponseWriter.WriteHeader(code)
}

func (l *locationRewriter) Unwrap() http.ResponseWriter { return l.ResponseWriter }

// expiresWriter announces when an incomplete upload will be removed (the
// tus expiration extension); the reconciler enforces it.
type expiresWriter struct {
	http.ResponseWriter
	expiry time.Duration
}

func (e *expiresWriter) WriteHeader(code int) {
	if code == http.StatusCreated && e.expiry > 0 {
		e.Header().Set("Upload-Expires", time.Now().Add(e.expiry).UTC().Format(http.TimeFormat))
	}
	e.ResponseWriter.WriteHeader(code)
}

func (e *expiresWriter) Unwrap() http.ResponseWriter { return e.ResponseWriter }

// tusdLogger is a logger of the slog flavour tusd takes (x/exp/slog): JSON,
// warnings and up (tusd logs every request at info), with the sensitive
// attributes redacted like every other PulseVault log.
func tusdLogger(w io.Writer) *expslog.Logger {
	h := expslog.NewJSONHandler(w, &expslog.HandlerOptions{
		Level: expslog.LevelWarn,
		ReplaceAttr: func(_ []string, a expslog.Attr) expslog.Attr {
			switch a.Key {
			case expslog.MessageKey, expslog.LevelKey, expslog.TimeKey:
				return a
			}
			if logging.Sensitive(a.Key) {
				return expslog.String(a.Key, logging.Redacted)
			}
			return a
		},
	})
	return expslog.New(h).With("component", "tusd")
}
