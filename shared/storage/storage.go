// Package storage is the project's thin layer over minio-go for any S3 store
// with Object Lock (AWS S3, MinIO, Ceph RGW, versitygw).
//
// It exists to enforce, in one place, the rules that keep WORM storage honest
// across stores that disagree on the details:
//
//   - Every write to a locked bucket must name its retention explicitly
//     (Put, multipart Put and Copy alike): versitygw does not stamp the
//     bucket's default retention on new objects, so relying on the default
//     would leave objects unprotected there.
//   - Every upload carries Content-MD5 (per part for multipart uploads):
//     AWS refuses Object Lock writes without a checksum, and Content-MD5 is
//     the one every store verifies. Copies ask the server for a SHA-256.
//   - Retention is read from HEAD headers, never GetObjectRetention, because
//     minio-go cannot parse versitygw's retention XML.
//   - Conditional writes (If-None-Match / If-Match) are only honoured on a
//     single PUT: minio-go drops custom headers on CompleteMultipartUpload,
//     so a conditional Put never goes multipart.
package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Options says where the store is and how to sign requests.
type Options struct {
	Endpoint  string // URL with scheme: http://127.0.0.1:9000 or https://s3.example.org
	AccessKey string
	SecretKey string
	Region    string // defaults to us-east-1
}

// Store is a client of one S3 endpoint. It is safe for concurrent use.
type Store struct {
	c      *minio.Client
	region string

	// partSize is the multipart part size. It also bounds an unknown-size
	// Put to partSize*10000 bytes, because minio-go would otherwise buffer a
	// ~540 MiB part for every such upload.
	partSize uint64
	// copyPartSize is the largest source Copy sends as one CopyObject;
	// larger ones go through UploadPartCopy. S3 caps CopyObject at 5 GiB.
	copyPartSize int64
}

const (
	defaultPartSize = 16 << 20
	maxCopySize     = 5 << 30
	maxParts        = 10000
)

// New checks the endpoint and builds a client; it does not contact the store.
func New(o Options) (*Store, error) { return newStore(o, nil) }

// newStore lets tests watch the wire through rt (nil: minio-go's default).
func newStore(o Options, rt http.RoundTripper) (*Store, error) {
	u, err := parseEndpoint(o.Endpoint)
	if err != nil {
		return nil, err
	}
	region := o.Region
	if region == "" {
		region = "us-east-1"
	}
	c, err := minio.New(u.Host, &minio.Options{
		Creds:     credentials.NewStaticV4(o.AccessKey, o.SecretKey, ""),
		Secure:    u.Scheme == "https",
		Region:    region,
		Transport: rt,
	})
	if err != nil {
		return nil, fmt.Errorf("storage: endpoint %q: %w", o.Endpoint, err)
	}
	return &Store{c: c, region: region, partSize: defaultPartSize, copyPartSize: maxCopySize}, nil
}

func parseEndpoint(s string) (*url.URL, error) {
	bad := func(why string) error {
		return fmt.Errorf("storage: endpoint %q: %s (want a URL such as http://127.0.0.1:9000 or https://s3.example.org)", s, why)
	}
	if s == "" {
		return nil, bad("empty")
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, bad(err.Error())
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, bad("scheme must be http or https")
	}
	if u.Host == "" || u.Hostname() == "" {
		return nil, bad("no host")
	}
	if u.Path != "" && u.Path != "/" {
		// minio-go addresses the store at the root; a path would be dropped
		// silently and requests would go somewhere else than configured.
		return nil, bad("must not have a path")
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, bad("must not have a query, fragment or user info")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, bad("bad port")
		}
	}
	return u, nil
}

// Client is the escape hatch for what this package does not wrap, such as
// bucket notification setup.
func (s *Store) Client() *minio.Client { return s.c }

// Retention is an Object Lock retention: mode plus retain-until date.
type Retention struct {
	Mode  minio.RetentionMode
	Until time.Time
}

// Compliance is COMPLIANCE retention for days from now. It is truncated to
// seconds because S3 transmits the date with second precision; comparing
// with what Stat reads back then works.
func Compliance(days int) Retention {
	return Retention{
		Mode:  minio.Compliance,
		Until: time.Now().UTC().Add(time.Duration(days) * 24 * time.Hour).Truncate(time.Second),
	}
}

func (r *Retention) validate() error {
	if r == nil {
		return nil
	}
	if !r.Mode.IsValid() {
		return fmt.Errorf("storage: retention mode %q is not GOVERNANCE or COMPLIANCE", r.Mode)
	}
	if r.Until.IsZero() {
		return errors.New("storage: retention needs a retain-until date")
	}
	return nil
}

// PutOptions qualify a write.
type PutOptions struct {
	ContentType string
	// Retention must be set for every write to a locked bucket (see the
	// package comment); nil writes without retention.
	Retention *Retention
	// IfNoneMatch makes the write create-only (If-None-Match: *).
	IfNoneMatch bool
	// IfMatch makes the write replace only the object with this ETag.
	IfMatch string
}

func (o PutOptions) conditional() bool { return o.IfNoneMatch || o.IfMatch != "" }

// Info describes one object version.
type Info struct {
	Bucket, Key, ETag, VersionID, ContentType string
	Size                                      int64 // whole object, also after a ranged Get
	LastModified                              time.Time
	Retention                                 *Retention // nil when the object has none (or the store did not say)
	DeleteMarker                              bool       // a delete marker (ListVersions only)
}

// Sentinel errors; the S3 error is wrapped alongside them, so its code and
// message stay visible and errors.As(err, &minio.ErrorResponse{}) works.
var (
	ErrNotFound           = errors.New("not found")
	ErrPreconditionFailed = errors.New("precondition failed")
	ErrLocked             = errors.New("object is locked")
)

// Put stores r under bucket/key. size -1 means unknown (multipart, at most
// 16 MiB × 10000 parts). A conditional Put (IfNoneMatch/IfMatch) needs a
// known size and is always sent as one PUT, so it is limited to the store's
// single-PUT maximum (5 GiB on AWS), and a body that is not an io.Seeker is
// held in memory to compute its Content-MD5: meant for small objects
// (meta.json, playlists, audit batches).
func (s *Store) Put(ctx context.Context, bucket, key string, r io.Reader, size int64, o PutOptions) (Info, error) {
	if err := o.Retention.validate(); err != nil {
		return Info{}, err
	}
	po := minio.PutObjectOptions{
		ContentType:    o.ContentType,
		SendContentMd5: true,
	}
	if size < 0 || uint64(size) <= s.partSize*maxParts {
		// For larger known sizes minio-go picks a part size that fits.
		po.PartSize = s.partSize
	}
	if o.Retention != nil {
		po.Mode = o.Retention.Mode
		po.RetainUntilDate = o.Retention.Until.UTC()
	}
	if o.conditional() {
		if size < 0 {
			return Info{}, fmt.Errorf("storage: put %s/%s: a conditional put needs a known size (it must be a single PUT)", bucket, key)
		}
		if o.IfNoneMatch && o.IfMatch != "" {
			return Info{}, fmt.Errorf("storage: put %s/%s: IfNoneMatch and IfMatch are exclusive", bucket, key)
		}
		// minio-go drops If-* headers on CompleteMultipartUpload; a
		// multipart "conditional" write would be unconditional.
		po.DisableMultipart = true
		if o.IfNoneMatch {
			po.SetMatchETagExcept("*")
		} else {
			po.SetMatchETag(strings.Trim(o.IfMatch, `"`))
		}
	}
	ui, err := s.c.PutObject(ctx, bucket, key, r, size, po)
	if err != nil {
		return Info{}, wrap("put", bucket, key, err)
	}
	ct := o.ContentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	return Info{
		Bucket: bucket, Key: key, ETag: ui.ETag, VersionID: ui.VersionID, ContentType: ct,
		Size: ui.Size, LastModified: ui.LastModified, Retention: cloneRetention(o.Retention),
	}, nil
}

// PutBytes is Put for an in-memory body.
func (s *Store) PutBytes(ctx context.Context, bucket, key string, b []byte, o PutOptions) (Info, error) {
	return s.Put(ctx, bucket, key, bytes.NewReader(b), int64(len(b)), o)
}

// Copy copies the current version of srcBucket/srcKey server-side, with the
// retention of o (the source's retention is not inherited). ContentType ""
// keeps the source's. Sources above 5 GiB are copied in parts. Conditional
// copies are refused with errors.ErrUnsupported: S3 stores differ on
// If-None-Match for CopyObject (versitygw ignores it) and minio-go cannot
// send it on a multipart copy.
func (s *Store) Copy(ctx context.Context, srcBucket, srcKey, dstBucket, dstKey string, o PutOptions) (Info, error) {
	if err := o.Retention.validate(); err != nil {
		return Info{}, err
	}
	if o.conditional() {
		return Info{}, fmt.Errorf("storage: copy to %s/%s: conditional copy: %w", dstBucket, dstKey, errors.ErrUnsupported)
	}
	oi, err := s.c.StatObject(ctx, srcBucket, srcKey, minio.StatObjectOptions{})
	if err != nil {
		return Info{}, wrap("copy from", srcBucket, srcKey, err)
	}
	src := infoFrom(srcBucket, oi)
	ct := o.ContentType
	if ct == "" {
		ct = src.ContentType
	}
	// Metadata is replaced, not copied, so that the content type survives a
	// multipart copy (minio-go would otherwise initiate it as
	// application/octet-stream); user metadata is carried over by hand.
	meta := map[string]string{}
	if ct != "" {
		meta["Content-Type"] = ct
	}
	for k, v := range oi.UserMetadata {
		meta["x-amz-meta-"+k] = v
	}
	dst := minio.CopyDestOptions{
		Bucket: dstBucket, Object: dstKey,
		ReplaceMetadata: true, UserMetadata: meta,
		// No body travels on a copy, so there is nothing for Content-MD5 to
		// cover; ask the server to compute and keep a SHA-256 instead.
		ChecksumType: minio.ChecksumSHA256,
	}
	if o.Retention != nil {
		dst.Mode = o.Retention.Mode
		dst.RetainUntilDate = o.Retention.Until.UTC()
	}
	srcOpts := minio.CopySrcOptions{Bucket: srcBucket, Object: srcKey, VersionID: src.VersionID}
	var ui minio.UploadInfo
	if src.Size <= s.copyPartSize {
		ui, err = s.c.CopyObject(ctx, dst, srcOpts)
	} else {
		dst.PartSize = uint64(s.copyPartSize)
		ui, err = s.c.ComposeObject(ctx, dst, srcOpts)
	}
	if err != nil {
		return Info{}, wrap("copy to", dstBucket, dstKey, err)
	}
	return Info{
		Bucket: dstBucket, Key: dstKey, ETag: ui.ETag, VersionID: ui.VersionID, ContentType: ct,
		Size: src.Size, LastModified: ui.LastModified, Retention: cloneRetention(o.Retention),
	}, nil
}

// Stat reads the latest version's metadata, retention included.
func (s *Store) Stat(ctx context.Context, bucket, key string) (Info, error) {
	return s.StatVersion(ctx, bucket, key, "")
}

// StatVersion reads one version's metadata (versionID "": the latest).
func (s *Store) StatVersion(ctx context.Context, bucket, key, versionID string) (Info, error) {
	oi, err := s.c.StatObject(ctx, bucket, key, minio.StatObjectOptions{VersionID: versionID})
	if err != nil {
		return Info{}, wrap("stat", bucket, key, err)
	}
	return infoFrom(bucket, oi), nil
}

// Get streams length bytes from offset (length -1: to the end). The caller
// closes the reader. Info.Size is the whole object's size.
func (s *Store) Get(ctx context.Context, bucket, key string, offset, length int64) (io.ReadCloser, Info, error) {
	return s.GetVersion(ctx, bucket, key, "", offset, length)
}

// GetVersion is Get of one version (versionID "": the latest). Reading a
// pinned version is what keeps a later PutObject over the same key (a
// new, unlocked latest version) from being read in its place.
func (s *Store) GetVersion(ctx context.Context, bucket, key, versionID string, offset, length int64) (io.ReadCloser, Info, error) {
	if offset < 0 || length < -1 {
		return nil, Info{}, fmt.Errorf("storage: get %s/%s: bad range offset=%d length=%d", bucket, key, offset, length)
	}
	if length == 0 {
		// S3 has no way to ask for zero bytes.
		info, err := s.StatVersion(ctx, bucket, key, versionID)
		if err != nil {
			return nil, Info{}, err
		}
		return io.NopCloser(bytes.NewReader(nil)), info, nil
	}
	g := minio.GetObjectOptions{VersionID: versionID}
	switch {
	case length > 0:
		_ = g.SetRange(offset, offset+length-1)
	case offset > 0:
		_ = g.SetRange(offset, 0)
	}
	body, oi, h, err := minio.Core{Client: s.c}.GetObject(ctx, bucket, key, g)
	if err != nil {
		return nil, Info{}, wrap("get", bucket, key, err)
	}
	info := infoFrom(bucket, oi)
	if total, ok := rangeTotal(h.Get("Content-Range")); ok {
		info.Size = total
	}
	return body, info, nil
}

// rangeTotal reads the complete length from "bytes a-b/total".
func rangeTotal(cr string) (int64, bool) {
	i := strings.LastIndexByte(cr, '/')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(cr[i+1:], 10, 64)
	return n, err == nil
}

// PresignGet returns a URL that GETs the object without credentials until
// expiry (1 s to 7 days).
func (s *Store) PresignGet(ctx context.Context, bucket, key string, expiry time.Duration) (*url.URL, error) {
	u, err := s.c.PresignedGetObject(ctx, bucket, key, expiry, nil)
	if err != nil {
		return nil, wrap("presign", bucket, key, err)
	}
	return u, nil
}

// Remove deletes one version, or with versionID "" the latest: on a
// versioned (locked) bucket that adds a delete marker and keeps the data.
// It never sends the governance bypass, so deleting a retained version
// fails with an error wrapping ErrLocked. Removing a key that does not
// exist is not an error (S3 semantics).
func (s *Store) Remove(ctx context.Context, bucket, key, versionID string) error {
	err := s.c.RemoveObject(ctx, bucket, key, minio.RemoveObjectOptions{VersionID: versionID})
	if err != nil {
		return wrap("remove", bucket, key, err)
	}
	return nil
}

// PutRetention sets a version's retention. Stores refuse to shorten
// COMPLIANCE retention; that refusal is returned (wrapping ErrLocked when
// recognisable), which is what the WORM canary relies on.
func (s *Store) PutRetention(ctx context.Context, bucket, key, versionID string, r Retention) error {
	if err := r.validate(); err != nil {
		return err
	}
	until := r.Until.UTC()
	err := s.c.PutObjectRetention(ctx, bucket, key, minio.PutObjectRetentionOptions{
		Mode: &r.Mode, RetainUntilDate: &until, VersionID: versionID,
	})
	if err != nil {
		return wrap("put retention", bucket, key, err)
	}
	return nil
}

// EnsureBucket creates the bucket if missing (with Object Lock, hence
// versioning, when objectLock) and otherwise checks that its lock state is
// what was asked: a bucket meant to be WORM that is not is an error, and so
// is the reverse. A store that cannot report lock state is trusted.
func (s *Store) EnsureBucket(ctx context.Context, name string, objectLock bool) (created bool, err error) {
	exists, err := s.c.BucketExists(ctx, name)
	if err != nil {
		return false, wrap("bucket exists", name, "", err)
	}
	if !exists {
		err := s.c.MakeBucket(ctx, name, minio.MakeBucketOptions{Region: s.region, ObjectLocking: objectLock})
		switch code := minio.ToErrorResponse(err).Code; {
		case err == nil:
			created = true
		case code == "BucketAlreadyOwnedByYou":
			// Lost a creation race with ourselves: verify below.
		default:
			return false, wrap("make bucket", name, "", err)
		}
	}
	// Also checked right after creation: a store that ignores the Object
	// Lock header on CreateBucket must not pass for a WORM store.
	locked, known, err := s.lockEnabled(ctx, name)
	if err != nil {
		return created, err
	}
	if known && locked != objectLock {
		if objectLock {
			return created, fmt.Errorf("storage: bucket %s exists without Object Lock, but it must have it; Object Lock can only be enabled when a bucket is created: use a new bucket name or recreate it", name)
		}
		return created, fmt.Errorf("storage: bucket %s has Object Lock, but it must not (its objects could never be removed); use a bucket without Object Lock", name)
	}
	return created, nil
}

// lockEnabled reports the bucket's Object Lock state; known is false when
// the store cannot tell (not implemented, unparseable answer, ...).
func (s *Store) lockEnabled(ctx context.Context, name string) (locked, known bool, err error) {
	enabled, _, _, _, err := s.c.GetObjectLockConfig(ctx, name)
	if err == nil {
		return enabled == "Enabled", true, nil
	}
	resp := minio.ToErrorResponse(err)
	switch {
	case resp.Code == "ObjectLockConfigurationNotFoundError":
		return false, true, nil
	case resp.Code == "NoSuchBucket":
		return false, false, wrap("object lock config", name, "", err)
	case ctx.Err() != nil:
		return false, false, ctx.Err()
	}
	return false, false, nil
}

// List yields every object under prefix (latest versions only, delete
// markers hidden), recursively. Retention is not part of a listing: Stat
// the objects that need it. Stop early by breaking out of the loop.
func (s *Store) List(ctx context.Context, bucket, prefix string) iter.Seq2[Info, error] {
	return func(yield func(Info, error) bool) {
		for oi := range s.c.ListObjectsIter(ctx, bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
			if oi.Err != nil {
				yield(Info{}, wrap("list", bucket, prefix, oi.Err))
				return
			}
			info := Info{
				Bucket: bucket, Key: oi.Key, ETag: oi.ETag, VersionID: oi.VersionID,
				ContentType: oi.ContentType, Size: oi.Size, LastModified: oi.LastModified,
			}
			if !yield(info, nil) {
				return
			}
		}
	}
}

// ListVersions yields every version under prefix, delete markers
// included (DeleteMarker set), recursively: what an auditor lists to see
// whether anything was written over or hidden in a versioned bucket.
func (s *Store) ListVersions(ctx context.Context, bucket, prefix string) iter.Seq2[Info, error] {
	return func(yield func(Info, error) bool) {
		for oi := range s.c.ListObjectsIter(ctx, bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true, WithVersions: true}) {
			if oi.Err != nil {
				yield(Info{}, wrap("list versions", bucket, prefix, oi.Err))
				return
			}
			info := infoFrom(bucket, oi)
			info.DeleteMarker = oi.IsDeleteMarker
			if !yield(info, nil) {
				return
			}
		}
	}
}

func infoFrom(bucket string, oi minio.ObjectInfo) Info {
	return Info{
		Bucket: bucket, Key: oi.Key, ETag: oi.ETag, VersionID: oi.VersionID,
		ContentType: oi.ContentType, Size: oi.Size, LastModified: oi.LastModified,
		Retention: retentionFrom(oi.Metadata),
	}
}

// retentionFrom parses the lock headers of a HEAD/GET answer.
func retentionFrom(h http.Header) *Retention {
	mode := minio.RetentionMode(strings.ToUpper(h.Get("X-Amz-Object-Lock-Mode")))
	until := h.Get("X-Amz-Object-Lock-Retain-Until-Date")
	if mode == "" && until == "" {
		return nil
	}
	r := &Retention{Mode: mode}
	if t, err := time.Parse(time.RFC3339Nano, until); err == nil {
		r.Until = t.UTC()
	}
	return r
}

func cloneRetention(r *Retention) *Retention {
	if r == nil {
		return nil
	}
	c := *r
	c.Until = c.Until.UTC()
	return &c
}

// wrap turns a minio-go error into one that names the operation and the
// object, matches the sentinels, and keeps S3's code and message.
func wrap(op, bucket, key string, err error) error {
	where := bucket
	if key != "" {
		where += "/" + key
	}
	var resp minio.ErrorResponse
	if !errors.As(err, &resp) {
		return fmt.Errorf("storage: %s %s: %w", op, where, err)
	}
	if sentinel := classify(resp); sentinel != nil {
		return fmt.Errorf("storage: %s %s: %w: %w (%s)", op, where, sentinel, err, resp.Code)
	}
	return fmt.Errorf("storage: %s %s: %w (%s, HTTP %d)", op, where, err, resp.Code, resp.StatusCode)
}

func classify(resp minio.ErrorResponse) error {
	switch resp.Code {
	case "NoSuchKey", "NoSuchBucket", "NoSuchVersion", "NotFound":
		return ErrNotFound
	case "PreconditionFailed", "ConditionalRequestConflict":
		return ErrPreconditionFailed
	case "ObjectLocked":
		return ErrLocked
	case "AccessDenied", "InvalidRequest":
		// The same codes also mean "no permission" or "bad request" (such as
		// "Bucket is missing Object Lock Configuration"); only the message
		// tells a lock refusal apart. Seen: AWS and versitygw "Access Denied
		// because object protected by object lock.", MinIO "Object is WORM
		// protected and cannot be overwritten".
		m := strings.ToLower(resp.Message)
		for _, w := range []string{"protected by object lock", "worm protected", "object is locked"} {
			if strings.Contains(m, w) {
				return ErrLocked
			}
		}
		return nil
	}
	switch resp.StatusCode {
	case http.StatusNotFound:
		return ErrNotFound
	case http.StatusPreconditionFailed:
		return ErrPreconditionFailed
	}
	return nil
}

// Configured is anything that can say where the store is. The app's
// configuration (shared/platform/config) implements it, so storage knows
// nothing of that configuration beyond these four values.
type Configured interface {
	// S3 is the endpoint, region and credentials, or why they are missing.
	S3() (endpoint, region, accessKey, secretKey string, err error)
}

// FromConfig connects to the store that c names (S3_ENDPOINT and its keys).
func FromConfig(c Configured) (*Store, error) {
	endpoint, region, access, secret, err := c.S3()
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	return New(Options{Endpoint: endpoint, AccessKey: access, SecretKey: secret, Region: region})
}
