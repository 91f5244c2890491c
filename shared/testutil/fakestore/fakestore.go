// Package fakestore is an in-memory object store with the method set of
// storage.Store, for unit tests of the domain logic above it. It keeps the
// semantics that logic relies on, as the real store (versitygw, MinIO)
// shows them and shared/storage's tests pin down:
//
//   - ETags: the hex MD5 of the body, changed by every write, readable
//     with Stat, Get and List;
//   - conditional writes: IfNoneMatch (create-only) and IfMatch (replace
//     only that ETag, quoted or not) fail with storage.ErrPreconditionFailed;
//   - Object Lock: a bucket made with objectLock is versioned; a version
//     with retention cannot be removed or have its retention shortened or
//     downgraded (storage.ErrLocked); Remove without a version adds a delete
//     marker; retention on a bucket without Object Lock is refused;
//   - missing objects and buckets give storage.ErrNotFound (Remove of a
//     missing key is not an error).
//
// RunContract checks those semantics; it runs against this fake in the
// unit tier and against versitygw in shared/storage's integration tests, so
// the fake cannot drift from the store it stands in for.
package fakestore

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/mieweb/pulsevault/shared/storage"
)

// Store is the fake. The zero value is not usable: call New. Safe for
// concurrent use.
type Store struct {
	mu      sync.Mutex
	buckets map[string]*bucket
	seq     int
	hook    func(op, bucket, key string) error

	// Now is the clock that decides whether a retention is still in force
	// and stamps LastModified (default time.Now).
	Now func() time.Time
}

type bucket struct {
	locked  bool
	objects map[string][]*version // oldest first; the last one is the latest
}

type version struct {
	id           string
	data         []byte
	etag, ct     string
	modified     time.Time
	retention    *storage.Retention
	deleteMarker bool
}

// New returns an empty store.
func New() *Store { return &Store{buckets: map[string]*bucket{}, Now: time.Now} }

// Hook makes every operation call fn first (op is "put", "copy", "stat",
// "get", "presign", "remove", "put retention", "list", "list versions" or
// "ensure bucket"); a non-nil error is returned as that operation's error,
// and nothing is changed. It injects faults and races: a write between a
// reader's Get and its conditional Put, a store that fails. nil removes it.
func (s *Store) Hook(fn func(op, bucket, key string) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hook = fn
}

// call runs the hook without holding the lock (so it may use the store).
func (s *Store) call(op, bkt, key string) error {
	s.mu.Lock()
	h := s.hook
	s.mu.Unlock()
	if h == nil {
		return nil
	}
	if err := h(op, bkt, key); err != nil {
		return fmt.Errorf("fakestore: %s %s/%s: %w", op, bkt, key, err)
	}
	return nil
}

func notFound(op, bkt, key string) error {
	return fmt.Errorf("fakestore: %s %s/%s: %w", op, bkt, key, storage.ErrNotFound)
}

// bucketLocked returns the bucket or ErrNotFound; s.mu held.
func (s *Store) bucketLocked(op, name, key string) (*bucket, error) {
	b, ok := s.buckets[name]
	if !ok {
		return nil, notFound(op, name, key)
	}
	return b, nil
}

// EnsureBucket creates the bucket if missing and, like storage.Store,
// fails when an existing bucket's Object Lock state is not objectLock.
func (s *Store) EnsureBucket(ctx context.Context, name string, objectLock bool) (bool, error) {
	if err := s.call("ensure bucket", name, ""); err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if b, ok := s.buckets[name]; ok {
		if b.locked != objectLock {
			return false, fmt.Errorf("fakestore: bucket %s exists with Object Lock %v, want %v", name, b.locked, objectLock)
		}
		return false, nil
	}
	s.buckets[name] = &bucket{locked: objectLock, objects: map[string][]*version{}}
	return true, nil
}

// latest is the key's newest version, nil when none or a delete marker.
func (b *bucket) latest(key string) *version {
	vs := b.objects[key]
	if len(vs) == 0 || vs[len(vs)-1].deleteMarker {
		return nil
	}
	return vs[len(vs)-1]
}

func (s *Store) info(bkt, key string, v *version) storage.Info {
	var ret *storage.Retention
	if v.retention != nil {
		r := *v.retention
		ret = &r
	}
	return storage.Info{Bucket: bkt, Key: key, ETag: v.etag, VersionID: v.id, ContentType: v.ct,
		Size: int64(len(v.data)), LastModified: v.modified, Retention: ret, DeleteMarker: v.deleteMarker}
}

func validRetention(r *storage.Retention) error {
	if r == nil {
		return nil
	}
	if !r.Mode.IsValid() {
		return fmt.Errorf("fakestore: retention mode %q is not GOVERNANCE or COMPLIANCE", r.Mode)
	}
	if r.Until.IsZero() {
		return errors.New("fakestore: retention needs a retain-until date")
	}
	return nil
}

// Put stores the body, checking the conditions and retention as the real
// store does (a conditional Put needs a known size; IfNoneMatch and IfMatch
// are exclusive).
func (s *Store) Put(ctx context.Context, bkt, key string, r io.Reader, size int64, o storage.PutOptions) (storage.Info, error) {
	if err := validRetention(o.Retention); err != nil {
		return storage.Info{}, err
	}
	if o.IfNoneMatch || o.IfMatch != "" {
		if size < 0 {
			return storage.Info{}, fmt.Errorf("fakestore: put %s/%s: a conditional put needs a known size (it must be a single PUT)", bkt, key)
		}
		if o.IfNoneMatch && o.IfMatch != "" {
			return storage.Info{}, fmt.Errorf("fakestore: put %s/%s: IfNoneMatch and IfMatch are exclusive", bkt, key)
		}
	}
	if err := s.call("put", bkt, key); err != nil {
		return storage.Info{}, err
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return storage.Info{}, fmt.Errorf("fakestore: put %s/%s: %w", bkt, key, err)
	}
	if size >= 0 && int64(len(data)) != size {
		return storage.Info{}, fmt.Errorf("fakestore: put %s/%s: body of %d bytes, size %d", bkt, key, len(data), size)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := s.bucketLocked("put", bkt, key)
	if err != nil {
		return storage.Info{}, err
	}
	if o.Retention != nil && !b.locked {
		return storage.Info{}, fmt.Errorf("fakestore: put %s/%s: Bucket is missing Object Lock Configuration", bkt, key)
	}
	cur := b.latest(key)
	switch {
	case o.IfNoneMatch && cur != nil:
		return storage.Info{}, fmt.Errorf("fakestore: put %s/%s: %w (If-None-Match: *)", bkt, key, storage.ErrPreconditionFailed)
	case o.IfMatch != "" && cur == nil:
		return storage.Info{}, notFound("put", bkt, key)
	case o.IfMatch != "" && cur.etag != strings.Trim(o.IfMatch, `"`):
		return storage.Info{}, fmt.Errorf("fakestore: put %s/%s: %w (If-Match)", bkt, key, storage.ErrPreconditionFailed)
	}
	ct := o.ContentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	sum := md5.Sum(data)
	v := &version{data: data, etag: hex.EncodeToString(sum[:]), ct: ct, modified: s.Now().UTC(), retention: cloneRet(o.Retention)}
	s.store(b, key, v)
	return s.info(bkt, key, v), nil
}

// store adds v as the key's latest version (replacing it on a bucket
// without versioning); s.mu held.
func (s *Store) store(b *bucket, key string, v *version) {
	if b.locked {
		s.seq++
		v.id = "v" + strconv.Itoa(s.seq)
		b.objects[key] = append(b.objects[key], v)
		return
	}
	b.objects[key] = []*version{v}
}

func cloneRet(r *storage.Retention) *storage.Retention {
	if r == nil {
		return nil
	}
	c := *r
	c.Until = c.Until.UTC()
	return &c
}

// PutBytes is Put for an in-memory body.
func (s *Store) PutBytes(ctx context.Context, bkt, key string, b []byte, o storage.PutOptions) (storage.Info, error) {
	return s.Put(ctx, bkt, key, bytes.NewReader(b), int64(len(b)), o)
}

// Copy copies the latest version with o's retention; conditional copies
// are refused with errors.ErrUnsupported, as storage.Store refuses them.
func (s *Store) Copy(ctx context.Context, srcBucket, srcKey, dstBucket, dstKey string, o storage.PutOptions) (storage.Info, error) {
	if err := validRetention(o.Retention); err != nil {
		return storage.Info{}, err
	}
	if o.IfNoneMatch || o.IfMatch != "" {
		return storage.Info{}, fmt.Errorf("fakestore: copy to %s/%s: conditional copy: %w", dstBucket, dstKey, errors.ErrUnsupported)
	}
	if err := s.call("copy", dstBucket, dstKey); err != nil {
		return storage.Info{}, err
	}
	s.mu.Lock()
	sb, err := s.bucketLocked("copy from", srcBucket, srcKey)
	var src *version
	if err == nil {
		if src = sb.latest(srcKey); src == nil {
			err = notFound("copy from", srcBucket, srcKey)
		}
	}
	s.mu.Unlock()
	if err != nil {
		return storage.Info{}, err
	}
	if o.ContentType == "" {
		o.ContentType = src.ct
	}
	return s.PutBytes(ctx, dstBucket, dstKey, src.data, o)
}

// Stat describes the latest version, retention included.
func (s *Store) Stat(ctx context.Context, bkt, key string) (storage.Info, error) {
	if err := s.call("stat", bkt, key); err != nil {
		return storage.Info{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := s.bucketLocked("stat", bkt, key)
	if err != nil {
		return storage.Info{}, err
	}
	v := b.latest(key)
	if v == nil {
		return storage.Info{}, notFound("stat", bkt, key)
	}
	return s.info(bkt, key, v), nil
}

// Get returns length bytes from offset (-1: to the end) of the latest
// version; Info.Size is the whole object's.
func (s *Store) Get(ctx context.Context, bkt, key string, offset, length int64) (io.ReadCloser, storage.Info, error) {
	if offset < 0 || length < -1 {
		return nil, storage.Info{}, fmt.Errorf("fakestore: get %s/%s: bad range offset=%d length=%d", bkt, key, offset, length)
	}
	if err := s.call("get", bkt, key); err != nil {
		return nil, storage.Info{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := s.bucketLocked("get", bkt, key)
	if err != nil {
		return nil, storage.Info{}, err
	}
	v := b.latest(key)
	if v == nil {
		return nil, storage.Info{}, notFound("get", bkt, key)
	}
	n := int64(len(v.data))
	if offset > n || (offset == n && length != 0 && n > 0) {
		return nil, storage.Info{}, fmt.Errorf("fakestore: get %s/%s: InvalidRange (offset %d of %d bytes)", bkt, key, offset, n)
	}
	end := n
	if length >= 0 {
		end = min(n, offset+length)
	}
	return io.NopCloser(bytes.NewReader(v.data[offset:end])), s.info(bkt, key, v), nil
}

// PresignGet returns a fakestore: URL naming the object. Nothing serves it:
// code that hands presigned URLs to another program (ffprobe, ffmpeg)
// belongs to the integration tier.
func (s *Store) PresignGet(ctx context.Context, bkt, key string, expiry time.Duration) (*url.URL, error) {
	if err := s.call("presign", bkt, key); err != nil {
		return nil, err
	}
	if expiry < time.Second || expiry > 7*24*time.Hour {
		return nil, fmt.Errorf("fakestore: presign %s/%s: expiry %s out of range", bkt, key, expiry)
	}
	return &url.URL{Scheme: "fakestore", Host: bkt, Path: "/" + key,
		RawQuery: url.Values{"expires": {s.Now().Add(expiry).UTC().Format(time.RFC3339)}}.Encode()}, nil
}

// Remove deletes one version, or with versionID "" the latest: on a locked
// (versioned) bucket that adds a delete marker. A version under retention
// is refused with storage.ErrLocked.
func (s *Store) Remove(ctx context.Context, bkt, key, versionID string) error {
	if err := s.call("remove", bkt, key); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := s.bucketLocked("remove", bkt, key)
	if err != nil {
		return err
	}
	vs := b.objects[key]
	if versionID == "" {
		switch {
		case b.locked && len(vs) > 0:
			s.seq++
			b.objects[key] = append(vs, &version{id: "v" + strconv.Itoa(s.seq), deleteMarker: true, modified: s.Now().UTC()})
		case !b.locked:
			delete(b.objects, key)
		}
		return nil
	}
	for i, v := range vs {
		if v.id != versionID {
			continue
		}
		if v.retention != nil && v.retention.Until.After(s.Now()) {
			return fmt.Errorf("fakestore: remove %s/%s: %w: Access Denied because object protected by object lock", bkt, key, storage.ErrLocked)
		}
		b.objects[key] = append(vs[:i:i], vs[i+1:]...)
		if len(b.objects[key]) == 0 {
			delete(b.objects, key)
		}
		return nil
	}
	return notFound("remove", bkt, key)
}

// PutRetention sets a version's retention. While a retention is in force
// it may only be extended: shortening it or turning COMPLIANCE into
// GOVERNANCE is refused with storage.ErrLocked.
func (s *Store) PutRetention(ctx context.Context, bkt, key, versionID string, r storage.Retention) error {
	if err := validRetention(&r); err != nil {
		return err
	}
	if err := s.call("put retention", bkt, key); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := s.bucketLocked("put retention", bkt, key)
	if err != nil {
		return err
	}
	if !b.locked {
		return fmt.Errorf("fakestore: put retention %s/%s: Bucket is missing Object Lock Configuration", bkt, key)
	}
	for _, v := range b.objects[key] {
		if v.deleteMarker || (versionID != "" && v.id != versionID) || (versionID == "" && v != b.latest(key)) {
			continue
		}
		if cur := v.retention; cur != nil && cur.Until.After(s.Now()) {
			if r.Until.Before(cur.Until) || (cur.Mode == minio.Compliance && r.Mode != minio.Compliance) {
				return fmt.Errorf("fakestore: put retention %s/%s: %w: object protected by object lock", bkt, key, storage.ErrLocked)
			}
		}
		v.retention = cloneRet(&r)
		return nil
	}
	return notFound("put retention", bkt, key)
}

// List yields the latest version of every key under prefix in key order,
// delete markers hidden, retention left out (as S3 listings do).
func (s *Store) List(ctx context.Context, bkt, prefix string) iter.Seq2[storage.Info, error] {
	return s.list("list", bkt, prefix, false)
}

// ListVersions yields every version under prefix, delete markers
// included, by key and newest first.
func (s *Store) ListVersions(ctx context.Context, bkt, prefix string) iter.Seq2[storage.Info, error] {
	return s.list("list versions", bkt, prefix, true)
}

func (s *Store) list(op, bkt, prefix string, versions bool) iter.Seq2[storage.Info, error] {
	return func(yield func(storage.Info, error) bool) {
		if err := s.call(op, bkt, prefix); err != nil {
			yield(storage.Info{}, err)
			return
		}
		// A snapshot, so the loop body may write to the store.
		s.mu.Lock()
		b, err := s.bucketLocked(op, bkt, prefix)
		var out []storage.Info
		if err == nil {
			keys := make([]string, 0, len(b.objects))
			for k := range b.objects {
				if strings.HasPrefix(k, prefix) {
					keys = append(keys, k)
				}
			}
			sort.Strings(keys)
			for _, k := range keys {
				if !versions {
					if v := b.latest(k); v != nil {
						i := s.info(bkt, k, v)
						i.Retention = nil
						out = append(out, i)
					}
					continue
				}
				vs := b.objects[k]
				for i := len(vs) - 1; i >= 0; i-- {
					out = append(out, s.info(bkt, k, vs[i]))
				}
			}
		}
		s.mu.Unlock()
		if err != nil {
			yield(storage.Info{}, err)
			return
		}
		for _, i := range out {
			if !yield(i, nil) {
				return
			}
		}
	}
}
