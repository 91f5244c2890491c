// Package staging reads and clears the tus uploads that tusd's s3store
// stages in the uploads bucket: for an upload with object id X, the data is
// X (a multipart upload until the last byte arrives), tusd's state is
// X.info (JSON) and a short tail part may wait in X.part.
//
// Keys are tusd's random object ids, never anything the client sent.
package staging

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/mieweb/pulsevault/shared/platform/settings"
	"github.com/mieweb/pulsevault/shared/storage"
	"github.com/mieweb/pulsevault/shared/topology"
)

// SubjectKey is the metadata entry in which the upload function records the
// uploader's JWT subject. It overwrites whatever a client sent under it.
const SubjectKey = "pulsevault-subject"

// maxInfoSize bounds a .info read: tusd writes a few hundred bytes plus the
// client's metadata, which tusd itself does not bound.
const maxInfoSize = 1 << 20

// ErrNotFound means the upload has no .info (never created, or cleared).
var ErrNotFound = errors.New("staging: no such upload")

// Info is the part of tusd's FileInfo (the .info object) PulseVault reads.
type Info struct {
	ID             string            // "<object id>+<multipart id>"
	Size           int64             // declared length
	SizeIsDeferred bool              // length not declared yet
	Offset         int64             // as of the last .info write: s3store does not keep it current
	MetaData       map[string]string // client metadata plus SubjectKey
	IsPartial      bool              // a concatenation part, never a video by itself
	IsFinal        bool              // the result of a concatenation
}

// Subject is the uploader recorded by the upload function.
func (i Info) Subject() string { return i.MetaData[SubjectKey] }

// Client is the client's own metadata (file name, type, ...), without the
// entries the server added.
func (i Info) Client() map[string]string {
	out := map[string]string{}
	for k, v := range i.MetaData {
		if k != SubjectKey {
			out[k] = v
		}
	}
	return out
}

// IsUploadKey reports whether key names an upload's data object, as
// opposed to its .info or .part companion (or anything else in the bucket).
func IsUploadKey(key string) bool {
	return key != "" && !strings.HasSuffix(key, topology.InfoSuffix) && !strings.HasSuffix(key, topology.PartSuffix) && !strings.Contains(key, "/")
}

// Store reads and clears staged uploads in one bucket.
type Store struct {
	st     *storage.Store
	bucket string
}

// New returns a Store over bucket.
func New(st *storage.Store, bucket string) *Store { return &Store{st: st, bucket: bucket} }

// Bucket is the uploads bucket.
func (s *Store) Bucket() string { return s.bucket }

// Info reads the .info of the upload with object id id.
func (s *Store) Info(ctx context.Context, id string) (Info, error) {
	rc, _, err := s.st.Get(ctx, s.bucket, topology.InfoKey(id), 0, -1)
	if errors.Is(err, storage.ErrNotFound) {
		return Info{}, ErrNotFound
	}
	if err != nil {
		return Info{}, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxInfoSize+1))
	if err != nil {
		return Info{}, fmt.Errorf("staging: read info: %w", err)
	}
	if len(b) > maxInfoSize {
		return Info{}, fmt.Errorf("staging: info of upload %s is over %d bytes", id, maxInfoSize)
	}
	var i Info
	if err := json.Unmarshal(b, &i); err != nil {
		return Info{}, fmt.Errorf("staging: info of upload %s: %w", id, err)
	}
	return i, nil
}

// Remove terminates the upload as a tus DELETE would: it aborts a multipart
// upload still open, then removes the data, the .part and, last, the
// .info, so that a crash half-way leaves the .info behind for the next
// attempt. Removing an upload that is already gone is not an error.
func (s *Store) Remove(ctx context.Context, id string) error {
	info, err := s.Info(ctx, id)
	switch {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		// Unreadable state must not keep the data alive forever.
	case info.ID != "":
		// The .info does not say whether the multipart upload was
		// completed (s3store never rewrites it); aborting a completed one
		// answers NoSuchUpload, which is fine.
		if i := strings.LastIndexByte(info.ID, '+'); i >= 0 {
			aerr := minio.Core{Client: s.st.Client()}.AbortMultipartUpload(ctx, s.bucket, id, info.ID[i+1:])
			if r := minio.ToErrorResponse(aerr); aerr != nil && r.Code != "NoSuchUpload" && r.StatusCode != 404 {
				return fmt.Errorf("staging: abort upload %s: %w", id, aerr)
			}
		}
	}
	for _, k := range []string{id, topology.PartKey(id), topology.InfoKey(id)} {
		if err := s.st.Remove(ctx, s.bucket, k, ""); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return err
		}
	}
	return nil
}

// Upload is one staged upload as a listing shows it.
type Upload struct {
	ID       string    // object id
	Complete bool      // the data object exists: every byte arrived
	HasInfo  bool      // the .info exists
	Modified time.Time // of the data object when complete, else of the .info
}

// List returns every staged upload in the bucket.
func (s *Store) List(ctx context.Context) ([]Upload, error) {
	byID := map[string]*Upload{}
	var order []string
	get := func(id string) *Upload {
		u := byID[id]
		if u == nil {
			u = &Upload{ID: id}
			byID[id] = u
			order = append(order, id)
		}
		return u
	}
	for o, err := range s.st.List(ctx, s.bucket, "") {
		if err != nil {
			return nil, err
		}
		switch {
		case strings.HasSuffix(o.Key, topology.InfoSuffix) && IsUploadKey(strings.TrimSuffix(o.Key, topology.InfoSuffix)):
			u := get(strings.TrimSuffix(o.Key, topology.InfoSuffix))
			u.HasInfo = true
			if !u.Complete {
				u.Modified = o.LastModified
			}
		case IsUploadKey(o.Key):
			u := get(o.Key)
			u.Complete = true
			u.Modified = o.LastModified
		}
	}
	out := make([]Upload, 0, len(order))
	for _, id := range order {
		out = append(out, *byID[id])
	}
	return out, nil
}

// The settings both sides of staging read: the upload function enforces
// them as uploads arrive, upload-finalize and its reconciler after. They
// are declared here once, and both packages' tables include them.
var (
	// MaxBytesVar is the largest upload, in bytes.
	MaxBytesVar = settings.Var{Env: "UPLOAD_MAX_BYTES", Default: "4294967296", Check: settings.Size(1, MaxObject),
		Usage: "largest upload, in bytes (1 B–5 TiB; default 4 GiB): the upload function answers 413 at creation, upload-finalize rejects a larger one as too-big"}
	// ExpiryVar is how long an incomplete upload is kept.
	ExpiryVar = settings.Var{Env: "UPLOAD_EXPIRY", Default: "24h", Check: settings.Duration(time.Minute, 720*time.Hour),
		Usage: "incomplete uploads older than this are removed by upload-finalize's reconciler; the upload function announces it as Upload-Expires (1m–720h)"}
)

// MaxObject is S3's largest object, 5 TiB.
const MaxObject = 5 << 40
