// Package tusupload is the tus 1.0 upload endpoint: tusd v2 storing into the
// uploads bucket through its s3store, with PulseVault's rules around it.
//
//   - Every request but a CORS preflight needs a bearer JWT; creation checks
//     it in tusd's pre-create hook and records the token's subject in the
//     upload's metadata (.info), beside the client's own metadata.
//   - An upload belongs to the subject that created it: another subject's
//     HEAD, PATCH or DELETE gets the same 404 as an unknown upload.
//   - An upload whose bytes are all in but whose last PATCH died before tusd
//     finished it is finished at the client's next HEAD.
//   - The client's metadata never leaves the .info: tusd would copy it into
//     the staged object's S3 metadata, and from there it would follow the
//     original into the media bucket, so it is dropped on the way to S3.
//   - Object keys are tusd's random ids; downloads are disabled.
//   - Location headers are right behind the gateway (/function/upload/),
//     behind proxies that send X-Forwarded-Host/Proto, and behind a path
//     prefix announced with X-Forwarded-Prefix.
package tusupload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
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
	"github.com/mieweb/pulsevault/shared/lease"
	"github.com/mieweb/pulsevault/shared/logging"
	"github.com/mieweb/pulsevault/shared/staging"
)

// Options configures New.
type Options struct {
	S3Endpoint, S3Region, S3AccessKey, S3SecretKey string
	Bucket                                         string // the uploads bucket (no lock, no versioning)
	Limits                                         Limits
	Verifier                                       *auth.Verifier
	// Staged reads the .info tusd writes, to find who owns an upload;
	// it must be over Bucket.
	Staged *staging.Store
	// Locks serialises requests on one upload across replicas. Nil keeps
	// locks in this process: then run one replica only.
	Locks *lease.Bucket
	// LogWriter receives tusd's own log (warnings and errors, redacted as
	// shared/logging does); default: discarded.
	LogWriter io.Writer
	// TempDir holds the parts s3store buffers before sending them; default
	// the system's temporary directory.
	TempDir string
}

// New returns the tus handler. It serves paths relative to the function
// root ("/" creates, "/<id>" is an upload), which is what the gateway
// passes on.
func New(o Options) (http.Handler, error) {
	if o.Verifier == nil {
		return nil, errors.New("tusupload: a token verifier is required")
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
	composer := handler.NewStoreComposer()
	store.UseIn(composer)
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
	// Creation is authorised in the pre-create hook; everything else
	// (offset, data, termination) here, as a preflight carries no token.
	if r.Method != http.MethodOptions && r.Method != http.MethodPost {
		claims, err := h.o.Verifier.FromRequest(r)
		if err != nil {
			h.unauthorized(w, r)
			return
		}
		u, ok := h.owns(w, r, claims.Subject)
		if !ok {
			return
		}
		if r.Method == http.MethodPatch && r.ContentLength < 0 && !u.deferred {
			exactBody(r, u.size)
		}
		if r.Method == http.MethodHead && !u.deferred {
			h.finishIfComplete(r)
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

// staged is what the handler keeps of an upload's .info: who owns it,
// and its declared length (never changes once declared).
type staged struct {
	owner    string
	size     int64
	deferred bool
}

// lookup reads the .info of the upload r names, from the cache when its
// length is known. ok is false when r names no upload.
func (h *tusHandler) lookup(r *http.Request) (u staged, ok bool, err error) {
	id := path.Base(strings.TrimSuffix(r.URL.Path, "/"))
	if i := strings.IndexByte(id, '+'); i >= 0 {
		id = id[:i] // the object id, as s3store names the .info
	}
	if id == "" || id == "/" || id == "." || strings.ContainsAny(id, "/\\") {
		return staged{}, false, nil
	}
	h.mu.Lock()
	u, ok = h.uploads[id]
	h.mu.Unlock()
	if ok && !u.deferred {
		return u, true, nil
	}
	info, err := h.o.Staged.Info(r.Context(), id)
	if err != nil {
		return staged{}, false, err
	}
	u = staged{owner: info.Subject(), size: info.Size, deferred: info.SizeIsDeferred}
	h.mu.Lock()
	if len(h.uploads) >= maxUploads {
		clear(h.uploads)
	}
	h.uploads[id] = u
	h.mu.Unlock()
	return u, true, nil
}

// owns answers for r unless subject created the upload r names. Another
// subject's upload is reported as not found, exactly like an unknown one
// (which tusd's s3store would otherwise let DELETE "succeed"), so ids
// cannot be probed. It returns what it read of the upload.
func (h *tusHandler) owns(w http.ResponseWriter, r *http.Request, subject string) (staged, bool) {
	u, ok, err := h.lookup(r)
	switch {
	case errors.Is(err, staging.ErrNotFound):
		notFound(w)
		return u, false
	case err != nil:
		w.Header().Set("Tus-Resumable", "1.0.0")
		http.Error(w, "upload state unavailable, retry", http.StatusServiceUnavailable)
		return u, false
	case !ok:
		return u, true // no upload named: tusd answers (405, 404)
	case u.owner != subject:
		notFound(w)
		return u, false
	}
	return u, true
}

// finishIfComplete finishes the upload r names if all its bytes are in
// but it was never finished: tusd finishes an upload at the end of the
// PATCH that completes it, so a replica killed between its last part and
// the finish leaves a multipart upload open — no object, no bucket event,
// no video — while HEAD reports offset == length and the client stops.
// Finishing an upload that was finished fails harmlessly (NoSuchUpload).
func (h *tusHandler) finishIfComplete(r *http.Request) {
	id := path.Base(strings.TrimSuffix(r.URL.Path, "/"))
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
	w.Header().Set("Tus-Resumable", "1.0.0")
	http.Error(w, "ERR_UPLOAD_NOT_FOUND: upload not found", http.StatusNotFound)
}

// preCreate authorises a new upload and records who made it.
func (h *tusHandler) preCreate(ev handler.HookEvent) (handler.HTTPResponse, handler.FileInfoChanges, error) {
	req := &http.Request{Header: ev.HTTPRequest.Header}
	claims, err := h.o.Verifier.FromRequest(req.WithContext(ev.Context))
	if err != nil {
		return handler.HTTPResponse{}, handler.FileInfoChanges{}, handler.NewError("ERR_UNAUTHORIZED", "unauthorized", http.StatusUnauthorized)
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
