package server

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"hash"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/tus/tusd/v2/pkg/handler"

	"github.com/mieweb/pulsevault/shared/audit/event"
	"github.com/mieweb/pulsevault/shared/ingest/tusupload"
	"github.com/mieweb/pulsevault/shared/media/companion"
	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/pulse/captoken"
	"github.com/mieweb/pulsevault/shared/pulse/protocol"
	"github.com/mieweb/pulsevault/shared/storage"
	"github.com/mieweb/pulsevault/shared/topology"
)

// note carries, through the request context, what the authorizer learnt
// to the response the handler writes.
type note struct {
	uploadID  string // the derived upload id of a creation
	object    string // the staged object a request wrote to
	artifact  string
	anchor    string
	owner     string
	size      int64
	mismatch  bool // the checksum did not match: the upload is to be removed
	claimed   string
	completed bool
}

type noteKey struct{}

func noteOf(ctx context.Context) *note {
	n, _ := ctx.Value(noteKey{}).(*note)
	if n == nil {
		return &note{}
	}
	return n
}

// upload serves /pulsevault/upload[/<id>] through tusupload.
func (s *Server) upload(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPatch {
		if ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";"); strings.TrimSpace(strings.ToLower(ct)) != "application/offset+octet-stream" {
			protocol.WriteError(w, http.StatusUnsupportedMediaType, "a PATCH body must be sent as Content-Type: application/offset+octet-stream")
			return
		}
	}
	if r.Method == http.MethodPost && (r.ContentLength > 0 || r.Header.Get("Content-Type") == "application/offset+octet-stream") {
		// Creation-with-upload would write bytes past the checksum check
		// (which sees PATCHes): the app never sends it.
		protocol.WriteError(w, http.StatusBadRequest, "send the file's bytes with PATCH after creating the upload, not in the POST")
		return
	}
	n := &note{}
	r = r.WithContext(context.WithValue(r.Context(), noteKey{}, n))
	r.URL.Path = strings.TrimPrefix(r.URL.Path, UploadPath)
	if r.URL.Path == "" {
		r.URL.Path = "/"
	}
	r.URL.RawPath = ""
	jw := &jsonErrors{ResponseWriter: w, n: n, max: s.o.Tus.Limits.MaxBytes}
	s.tus.ServeHTTP(jw, r)
	jw.finish()
	switch {
	case n.mismatch:
		// Nothing of it is kept: the app may create the upload again.
		ctx := context.WithoutCancel(r.Context())
		if err := s.staged.Remove(ctx, n.object); err != nil {
			s.o.Log.Warn("pulse: removing an upload with a wrong checksum failed", "err", err.Error())
		}
		_ = s.o.Store.Remove(ctx, s.o.UploadsBucket, topology.PulseClaimKey(n.artifact), "")
		s.forget(n.object)
	case r.Method == http.MethodDelete && jw.code == http.StatusNoContent && n.artifact != "":
		_ = s.o.Store.Remove(context.WithoutCancel(r.Context()), s.o.UploadsBucket, topology.PulseClaimKey(n.artifact), "")
		s.forget(n.object)
	case n.claimed != "" && jw.code != http.StatusCreated:
		// The creation failed after the claim: release it.
		_ = s.o.Store.Remove(context.WithoutCancel(r.Context()), s.o.UploadsBucket, topology.PulseClaimKey(n.claimed), "")
	case n.completed && jw.code == http.StatusNoContent:
		s.forget(n.object)
		_ = s.audit(r.Context(), event.Event{Actor: actor(n.owner), Action: event.ArtifactReceived, Object: n.anchor, Outcome: event.Success})
	}
}

func actor(owner string) string {
	if owner == "" {
		return "anonymous"
	}
	return owner
}

// Create authorizes a tus creation (tusupload.Authorizer).
func (s *Server) Create(ev handler.HookEvent) (string, string, error) {
	r := &http.Request{Header: ev.HTTPRequest.Header}
	tok, present := bearer(r, false)
	if !present {
		return "", "", handler.NewError("ERR_UNAUTHORIZED", "no credential: send the pairing token as Authorization: Bearer <token>", http.StatusUnauthorized)
	}
	c, err := s.o.Signer.Verify(tok, "", s.o.Now())
	if err != nil {
		if captoken.ReasonOf(err) == "" {
			return "", "", handler.NewError("ERR_UNAVAILABLE", "the server cannot check tokens right now: retry in a minute", http.StatusServiceUnavailable)
		}
		s.deny(ev.Context, captoken.ReasonOf(err))
		return "", "", handler.NewError("ERR_FORBIDDEN", tokenMessage(captoken.ReasonOf(err)), http.StatusForbidden)
	}
	u, err := protocol.ParseUpload(ev.Upload.MetaData)
	var ref *protocol.Refusal
	if errors.As(err, &ref) {
		return "", "", handler.NewError("ERR_INVALID_METADATA", ref.Msg, ref.Status)
	} else if err != nil {
		return "", "", err
	}
	if ev.Upload.SizeIsDeferred {
		return "", "", handler.NewError("ERR_LENGTH_REQUIRED", "send Upload-Length: the whole file's size", http.StatusBadRequest)
	}
	if ev.Upload.Size == 0 {
		return "", "", handler.NewError("ERR_EMPTY", "the file is empty: nothing to upload", http.StatusBadRequest)
	}
	var object string
	if u.Kind == protocol.KindVideo {
		if u.ArtifactID != c.ArtifactID {
			return "", "", handler.NewError("ERR_FORBIDDEN", "this pairing link is for another video: the video's artifactId must be the link's", http.StatusForbidden)
		}
		if u.RelatedTo != "" && u.RelatedTo != c.ArtifactID {
			return "", "", handler.NewError("ERR_FORBIDDEN", "relatedTo must name this pairing's video", http.StatusForbidden)
		}
		object = topology.PulseVideoObject(c.ArtifactID)
	} else {
		if u.RelatedTo != c.ArtifactID {
			return "", "", handler.NewError("ERR_FORBIDDEN", "a "+u.Kind+" upload must be relatedTo this pairing's video", http.StatusForbidden)
		}
		if u.ArtifactID == c.ArtifactID {
			return "", "", handler.NewError("ERR_INVALID_METADATA", "a "+u.Kind+" upload needs an artifactId of its own, not the video's", http.StatusBadRequest)
		}
		// The companion bounds are the checks' own (shared/media/companion).
		if max := companion.MaxSize(u.Kind); ev.Upload.Size > max {
			return "", "", handler.NewError("ERR_MAX_SIZE_EXCEEDED", "a "+u.Kind+" file may be at most "+strconv.FormatInt(max, 10)+" bytes", http.StatusRequestEntityTooLarge)
		}
		object = topology.PulseCompanionObject(c.ArtifactID, u.ArtifactID)
	}
	// The pairing's video already arrived (or was withdrawn): companions
	// come before it, and nothing is taken after.
	if v, _, err := s.metas.Get(ev.Context, c.ArtifactID); err == nil {
		if v.Withdrawn != nil {
			return "", "", handler.NewError("ERR_WITHDRAWN", "this video was withdrawn: make a new pairing link", http.StatusForbidden)
		}
		return "", "", handler.NewError("ERR_EXISTS", "this pulse's video was already received: start a new pairing for another upload", http.StatusConflict)
	} else if !errors.Is(err, meta.ErrNotFound) {
		return "", "", handler.NewError("ERR_UNAVAILABLE", "upload state unavailable: retry", http.StatusServiceUnavailable)
	}
	claim, _ := json.Marshal(map[string]string{"anchor": c.ArtifactID, "kind": u.Kind})
	_, err = s.o.Store.PutBytes(ev.Context, s.o.UploadsBucket, topology.PulseClaimKey(u.ArtifactID), claim, storage.PutOptions{ContentType: "application/json", IfNoneMatch: true})
	if errors.Is(err, storage.ErrPreconditionFailed) {
		return "", "", handler.NewError("ERR_EXISTS", "an upload of this artifactId exists already: HEAD its upload URL and resume, or use a new artifactId", http.StatusConflict)
	} else if err != nil {
		return "", "", handler.NewError("ERR_UNAVAILABLE", "upload state unavailable: retry", http.StatusServiceUnavailable)
	}
	n := noteOf(ev.Context)
	n.claimed, n.uploadID, n.artifact, n.anchor, n.owner = u.ArtifactID, protocol.UploadID(u.Kind, u.ArtifactID, u.Ext), u.ArtifactID, c.ArtifactID, c.Owner
	return object, c.Owner, nil
}

// Locate names the staged upload of a request (tusupload.Authorizer).
func (s *Server) Locate(w http.ResponseWriter, r *http.Request, id string) (string, string, bool) {
	c, ok := s.authorize(w, r, false, "")
	if !ok {
		return "", "", false
	}
	kind, artifact, _, ok := protocol.ParseUploadID(id)
	if !ok {
		protocol.WriteError(w, http.StatusNotFound, "upload not found: create it again with POST /pulsevault/upload")
		return "", "", false
	}
	object := topology.PulseCompanionObject(c.ArtifactID, artifact)
	if kind == protocol.KindVideo {
		if artifact != c.ArtifactID {
			protocol.WriteError(w, http.StatusForbidden, "this pairing link is for another video")
			return "", "", false
		}
		object = topology.PulseVideoObject(c.ArtifactID)
	}
	n := noteOf(r.Context())
	n.object, n.artifact, n.anchor, n.owner = object, artifact, c.ArtifactID, c.Owner
	if kind == protocol.KindVideo && r.Method == http.MethodHead {
		// A video that was finalized is no longer staged: it is complete.
		if v, _, err := s.metas.Get(r.Context(), c.ArtifactID); err == nil && v.Original != nil {
			h := w.Header()
			h.Set("Tus-Resumable", "1.0.0")
			h.Set("Cache-Control", "no-store")
			h.Set("Upload-Offset", strconv.FormatInt(v.Original.Size, 10))
			h.Set("Upload-Length", strconv.FormatInt(v.Original.Size, 10))
			w.WriteHeader(http.StatusOK)
			return "", "", false
		}
	}
	return object, c.Owner, true
}

// Refuse answers a located request whose upload is not there (tusupload.Authorizer).
func (s *Server) Refuse(w http.ResponseWriter, r *http.Request, status int) {
	if status == http.StatusNotFound {
		protocol.WriteError(w, status, "upload not found: create it again with POST /pulsevault/upload")
		return
	}
	protocol.WriteError(w, status, "upload state unavailable: retry")
}

// running is the checksum of an upload's bytes so far, kept in this
// process between the PATCHes of one upload.
type running struct {
	alg, want string
	h         hash.Hash
	offset    int64
}

// Patch verifies a checksum as the bytes pass (tusupload.Authorizer): the
// PATCH that would complete the upload keeps its last bytes back until
// the digest of the whole file matches, so a mismatch completes nothing
// (422) — no object, no bucket event, nothing finalized. The digest is
// this replica's: a resume that reaches another replica (or this one
// restarted) cannot be verified and is logged as such.
func (s *Server) Patch(r *http.Request, u tusupload.Staged) {
	sum := u.MetaData["checksum"]
	n := noteOf(r.Context())
	n.size = u.Size
	off, err := strconv.ParseInt(r.Header.Get("Upload-Offset"), 10, 64)
	if err != nil || off < 0 || off > u.Size {
		return // tusd refuses it
	}
	if sum == "" {
		return
	}
	alg, want, _ := strings.Cut(strings.ToLower(sum), ":")
	s.mu.Lock()
	st := s.hashes[u.Object]
	if off == 0 {
		st = &running{alg: alg, want: want, h: newHash(alg)}
		if len(s.hashes) > 10000 {
			clear(s.hashes)
		}
		s.hashes[u.Object] = st
	}
	s.mu.Unlock()
	if st == nil || st.offset != off || st.h == nil {
		s.o.Log.Warn("pulse: checksum not verifiable: the upload resumed where this replica did not see its start", "kind", "resume")
		return
	}
	r.Body = &checking{body: r.Body, st: st, size: u.Size, n: n}
}

func (s *Server) forget(object string) {
	s.mu.Lock()
	delete(s.hashes, object)
	s.mu.Unlock()
}

func newHash(alg string) hash.Hash {
	switch alg {
	case "sha256":
		return sha256.New()
	case "sha1":
		return sha1.New()
	case "md5":
		return md5.New()
	}
	return nil
}

// errChecksum is what tusd answers when the digest does not match.
var errChecksum = handler.NewError("ERR_CHECKSUM_MISMATCH", "the file's checksum does not match the one sent in Upload-Metadata: nothing was kept, upload the file again", http.StatusUnprocessableEntity)

type checking struct {
	body io.ReadCloser
	st   *running
	size int64
	n    *note
}

func (c *checking) Read(p []byte) (int, error) {
	if left := c.size - c.st.offset; int64(len(p)) > left {
		p = p[:left]
	}
	if len(p) == 0 {
		return c.body.Read(p)
	}
	k, err := c.body.Read(p)
	if k > 0 {
		c.st.h.Write(p[:k])
		if c.st.offset+int64(k) == c.size && hex.EncodeToString(c.st.h.Sum(nil)) != c.st.want {
			c.n.mismatch = true
			return 0, errChecksum // the completing bytes are withheld
		}
		c.st.offset += int64(k)
	}
	return k, err
}

func (c *checking) Close() error { return c.body.Close() }

// jsonErrors turns tusd's plain-text errors into {"ok": false, "error"}
// bodies and its Location into the protocol's derived upload URL.
type jsonErrors struct {
	http.ResponseWriter
	n       *note
	max     int64
	code    int
	errBody bytes.Buffer
	wrote   bool
}

func (j *jsonErrors) WriteHeader(code int) {
	if j.wrote {
		return
	}
	j.wrote, j.code = true, code
	if code >= 400 {
		return // the body is rewritten in finish
	}
	if code == http.StatusNoContent && j.n.size > 0 && j.Header().Get("Upload-Offset") == strconv.FormatInt(j.n.size, 10) {
		j.n.completed = true // the last byte is in
	}
	if loc := j.Header().Get("Location"); loc != "" && code == http.StatusCreated && j.n.uploadID != "" {
		if u, err := url.Parse(loc); err == nil {
			u.Path, u.RawPath = UploadPath+"/"+j.n.uploadID, ""
			j.Header().Set("Location", u.String())
		}
	}
	j.ResponseWriter.WriteHeader(code)
}

func (j *jsonErrors) Write(b []byte) (int, error) {
	if !j.wrote {
		j.WriteHeader(http.StatusOK)
	}
	if j.code >= 400 {
		if j.errBody.Len() < 4096 {
			j.errBody.Write(b)
		}
		return len(b), nil
	}
	return j.ResponseWriter.Write(b)
}

func (j *jsonErrors) Unwrap() http.ResponseWriter { return j.ResponseWriter }

func (j *jsonErrors) finish() {
	if j.code < 400 {
		return
	}
	msg := strings.TrimSpace(j.errBody.String())
	code, text, found := strings.Cut(msg, ": ")
	if !found {
		code, text = "", msg
	}
	switch code {
	case "ERR_UPLOAD_NOT_FOUND":
		text = "upload not found: create it again with POST /pulsevault/upload"
	case "ERR_MISMATCHED_OFFSET":
		text = "Upload-Offset is not where this upload stands: HEAD it and resume from its Upload-Offset"
	case "ERR_MAX_SIZE_EXCEEDED", "ERR_UPLOAD_SIZE_EXCEEDED":
		if text == "" || strings.HasPrefix(text, "maximum") || strings.Contains(text, "size exceeded") {
			text = "the file is larger than this server accepts (maxUploadSize " + strconv.FormatInt(j.max, 10) + " bytes)"
		}
	case "ERR_UPLOAD_LOCKED":
		text = "this upload is busy with another request: retry in a few seconds"
	}
	if text == "" {
		text = http.StatusText(j.code)
	}
	h := j.Header()
	h.Del("Content-Length")
	protocol.WriteError(j.ResponseWriter, j.code, text)
}
