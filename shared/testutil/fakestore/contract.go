package fakestore

import (
	"context"
	"errors"
	"io"
	"iter"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/mieweb/pulsevault/shared/storage"
)

// API is the method set Store shares with storage.Store: what RunContract
// exercises.
type API interface {
	EnsureBucket(ctx context.Context, name string, objectLock bool) (bool, error)
	Put(ctx context.Context, bucket, key string, r io.Reader, size int64, o storage.PutOptions) (storage.Info, error)
	PutBytes(ctx context.Context, bucket, key string, b []byte, o storage.PutOptions) (storage.Info, error)
	Copy(ctx context.Context, srcBucket, srcKey, dstBucket, dstKey string, o storage.PutOptions) (storage.Info, error)
	Stat(ctx context.Context, bucket, key string) (storage.Info, error)
	Get(ctx context.Context, bucket, key string, offset, length int64) (io.ReadCloser, storage.Info, error)
	Remove(ctx context.Context, bucket, key, versionID string) error
	PutRetention(ctx context.Context, bucket, key, versionID string, r storage.Retention) error
	List(ctx context.Context, bucket, prefix string) iter.Seq2[storage.Info, error]
	ListVersions(ctx context.Context, bucket, prefix string) iter.Seq2[storage.Info, error]
}

var (
	_ API = (*Store)(nil)
	_ API = (*storage.Store)(nil)
)

// RunContract checks, on st, the semantics the domain packages rely on:
// ETags, conditional writes, Object Lock refusals, delete markers, not
// found. locked and unlocked name two buckets it creates (or finds) with
// and without Object Lock; prefix keeps its keys apart from other tests'.
func RunContract(t *testing.T, st API, locked, unlocked, prefix string) {
	t.Helper()
	ctx := context.Background()
	for name, lock := range map[string]bool{locked: true, unlocked: false} {
		if _, err := st.EnsureBucket(ctx, name, lock); err != nil {
			t.Fatal(err)
		}
		if _, err := st.EnsureBucket(ctx, name, !lock); err == nil {
			t.Errorf("bucket %s: EnsureBucket with the other lock state accepted", name)
		}
	}
	read := func(bucket, key string) (string, storage.Info, error) {
		rc, info, err := st.Get(ctx, bucket, key, 0, -1)
		if err != nil {
			return "", info, err
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		return string(b), info, err
	}
	ret := storage.Compliance(1)

	t.Run("etag and conditional writes", func(t *testing.T) {
		for _, bucket := range []string{unlocked, locked} {
			o := func(p storage.PutOptions) storage.PutOptions {
				if bucket == locked {
					p.Retention = &ret
				}
				return p
			}
			key := prefix + "cond/meta.json"
			first, err := st.PutBytes(ctx, bucket, key, []byte("v1"), o(storage.PutOptions{ContentType: "application/json", IfNoneMatch: true}))
			if err != nil || first.ETag == "" {
				t.Fatalf("%s: create-only on a new key: %+v %v", bucket, first, err)
			}
			if _, err := st.PutBytes(ctx, bucket, key, []byte("v2"), o(storage.PutOptions{IfNoneMatch: true})); !errors.Is(err, storage.ErrPreconditionFailed) {
				t.Fatalf("%s: create-only on an existing key: %v, want ErrPreconditionFailed", bucket, err)
			}
			if _, err := st.PutBytes(ctx, bucket, key, []byte("v2"), o(storage.PutOptions{IfMatch: "0123456789abcdef0123456789abcdef"})); !errors.Is(err, storage.ErrPreconditionFailed) {
				t.Fatalf("%s: If-Match with a wrong etag: %v, want ErrPreconditionFailed", bucket, err)
			}
			body, info, err := read(bucket, key)
			if err != nil || body != "v1" || info.ETag != first.ETag || info.ContentType != "application/json" || info.Size != 2 {
				t.Fatalf("%s: after refused writes: %q %+v %v", bucket, body, info, err)
			}
			second, err := st.PutBytes(ctx, bucket, key, []byte("v2"), o(storage.PutOptions{IfMatch: first.ETag}))
			if err != nil || second.ETag == first.ETag {
				t.Fatalf("%s: If-Match with the right etag: %+v %v", bucket, second, err)
			}
			if _, err := st.PutBytes(ctx, bucket, key, []byte("v3"), o(storage.PutOptions{IfMatch: first.ETag})); !errors.Is(err, storage.ErrPreconditionFailed) {
				t.Fatalf("%s: If-Match with a stale etag: %v, want ErrPreconditionFailed", bucket, err)
			}
			if _, err := st.PutBytes(ctx, bucket, key, []byte("v3"), o(storage.PutOptions{IfMatch: `"` + second.ETag + `"`})); err != nil {
				t.Fatalf("%s: If-Match with a quoted etag: %v", bucket, err)
			}
			if s, err := st.Stat(ctx, bucket, key); err != nil || s.ETag == second.ETag {
				t.Fatalf("%s: stat after a write: %+v %v", bucket, s, err)
			}
			if body, _, err := read(bucket, key); err != nil || body != "v3" {
				t.Fatalf("%s: content %q %v, want v3", bucket, body, err)
			}
		}
		if _, err := st.Put(ctx, unlocked, prefix+"cond/x", strings.NewReader("x"), -1, storage.PutOptions{IfNoneMatch: true}); err == nil {
			t.Fatal("conditional put of unknown size accepted")
		}
		if _, err := st.Copy(ctx, unlocked, prefix+"cond/meta.json", unlocked, prefix+"cond/copy", storage.PutOptions{IfNoneMatch: true}); !errors.Is(err, errors.ErrUnsupported) {
			t.Fatalf("conditional copy: %v, want ErrUnsupported", err)
		}
	})

	t.Run("retention refusals", func(t *testing.T) {
		key := prefix + "lock/original.mp4"
		put, err := st.PutBytes(ctx, locked, key, []byte("original"), storage.PutOptions{ContentType: "video/mp4", Retention: &ret})
		if err != nil || put.VersionID == "" {
			t.Fatalf("locked put: %+v %v", put, err)
		}
		s, err := st.Stat(ctx, locked, key)
		if err != nil || s.Retention == nil || s.Retention.Mode != minio.Compliance || !s.Retention.Until.Equal(ret.Until) {
			t.Fatalf("stat of a locked object: %+v %v", s, err)
		}
		if err := st.Remove(ctx, locked, key, put.VersionID); !errors.Is(err, storage.ErrLocked) {
			t.Fatalf("remove of a retained version: %v, want ErrLocked", err)
		}
		shorter := storage.Retention{Mode: minio.Compliance, Until: ret.Until.Add(-time.Hour)}
		if err := st.PutRetention(ctx, locked, key, put.VersionID, shorter); !errors.Is(err, storage.ErrLocked) {
			t.Fatalf("shortening COMPLIANCE: %v, want ErrLocked", err)
		}
		if err := st.PutRetention(ctx, locked, key, put.VersionID, storage.Retention{Mode: minio.Governance, Until: ret.Until}); !errors.Is(err, storage.ErrLocked) {
			t.Fatalf("COMPLIANCE to GOVERNANCE: %v, want ErrLocked", err)
		}
		longer := storage.Retention{Mode: minio.Compliance, Until: ret.Until.Add(time.Hour)}
		if err := st.PutRetention(ctx, locked, key, put.VersionID, longer); err != nil {
			t.Fatalf("extending COMPLIANCE: %v", err)
		}
		// Remove without a version: a delete marker hides the key, the
		// retained version stays.
		if err := st.Remove(ctx, locked, key, ""); err != nil {
			t.Fatalf("remove latest: %v", err)
		}
		if _, err := st.Stat(ctx, locked, key); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("stat under a delete marker: %v, want ErrNotFound", err)
		}
		var marker, kept bool
		for v, err := range st.ListVersions(ctx, locked, key) {
			if err != nil {
				t.Fatal(err)
			}
			marker = marker || v.DeleteMarker
			kept = kept || (v.VersionID == put.VersionID && !v.DeleteMarker)
		}
		if !marker || !kept {
			t.Fatalf("versions after remove: delete marker %v, retained version %v", marker, kept)
		}
		if err := st.Remove(ctx, locked, key, put.VersionID); !errors.Is(err, storage.ErrLocked) {
			t.Fatalf("remove of a retained version under a marker: %v, want ErrLocked", err)
		}
		// Without retention an object in a locked bucket can be removed;
		// retention on a bucket without Object Lock is refused.
		free, err := st.PutBytes(ctx, locked, prefix+"lock/meta.json", []byte("{}"), storage.PutOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if s, err := st.Stat(ctx, locked, prefix+"lock/meta.json"); err != nil || s.Retention != nil {
			t.Fatalf("unretained object: %+v %v", s, err)
		}
		if err := st.Remove(ctx, locked, prefix+"lock/meta.json", free.VersionID); err != nil {
			t.Fatalf("remove of an unretained version: %v", err)
		}
		if _, err := st.PutBytes(ctx, unlocked, prefix+"lock/x", []byte("x"), storage.PutOptions{Retention: &ret}); err == nil || errors.Is(err, storage.ErrLocked) {
			t.Fatalf("retention on a bucket without Object Lock: %v", err)
		}
	})

	t.Run("copy, range, list, not found", func(t *testing.T) {
		src := prefix + "list/a"
		if _, err := st.PutBytes(ctx, unlocked, src, []byte("0123456789"), storage.PutOptions{ContentType: "text/plain"}); err != nil {
			t.Fatal(err)
		}
		cp, err := st.Copy(ctx, unlocked, src, locked, prefix+"list/b", storage.PutOptions{Retention: &ret})
		if err != nil || cp.Size != 10 || cp.ContentType != "text/plain" {
			t.Fatalf("copy: %+v %v", cp, err)
		}
		if s, err := st.Stat(ctx, locked, prefix+"list/b"); err != nil || s.Retention == nil || s.ContentType != "text/plain" {
			t.Fatalf("stat of the copy: %+v %v", s, err)
		}
		rc, info, err := st.Get(ctx, unlocked, src, 2, 3)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		if string(b) != "234" || info.Size != 10 {
			t.Fatalf("range 2+3: %q, size %d", b, info.Size)
		}
		for _, k := range []string{prefix + "list/c", prefix + "list/sub/d", prefix + "lister"} {
			if _, err := st.PutBytes(ctx, unlocked, k, []byte(k), storage.PutOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		var keys []string
		for info, err := range st.List(ctx, unlocked, prefix+"list/") {
			if err != nil {
				t.Fatal(err)
			}
			keys = append(keys, strings.TrimPrefix(info.Key, prefix))
		}
		if strings.Join(keys, " ") != "list/a list/c list/sub/d" {
			t.Fatalf("list: %v", keys)
		}
		missing := prefix + "missing"
		if _, err := st.Stat(ctx, unlocked, missing); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("stat of a missing key: %v", err)
		}
		if _, _, err := st.Get(ctx, unlocked, missing, 0, -1); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("get of a missing key: %v", err)
		}
		if _, err := st.Copy(ctx, unlocked, missing, unlocked, prefix+"x", storage.PutOptions{}); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("copy of a missing key: %v", err)
		}
		if err := st.Remove(ctx, unlocked, missing, ""); err != nil {
			t.Fatalf("remove of a missing key: %v", err)
		}
		if err := st.Remove(ctx, unlocked, src, ""); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Stat(ctx, unlocked, src); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("stat after remove: %v", err)
		}
		if _, err := st.Stat(ctx, "pv-no-such-bucket", missing); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("stat in a missing bucket: %v", err)
		}
		for _, err := range st.List(ctx, "pv-no-such-bucket", "") {
			if !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("list of a missing bucket: %v", err)
			}
		}
	})
}
