package storage

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/mieweb/pulsevault/shared/testutil/testenv"
)

// fixture is a Store on a fresh versitygw with a locked and an unlocked bucket.
type fixture struct {
	s        *Store
	env      *testenv.Env
	locked   string
	unlocked string
}

func setup(t *testing.T) fixture {
	t.Helper()
	env := testenv.Start(t)
	s, err := New(Options{
		Endpoint: env.Config.S3Endpoint, AccessKey: env.Config.S3AccessKey,
		SecretKey: env.Config.S3SecretKey, Region: env.Config.S3Region,
	})
	if err != nil {
		t.Fatal(err)
	}
	f := fixture{s: s, env: env, locked: env.Config.MediaBucket, unlocked: env.Config.UploadsBucket}
	if _, err := s.EnsureBucket(t.Context(), f.locked, true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.EnsureBucket(t.Context(), f.unlocked, false); err != nil {
		t.Fatal(err)
	}
	return f
}

// videoKey is a key in the shape the system uses: no user text in it.
func videoKey(name string) string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("videos/%x-%x-%x-%x-%x/%s", b[0:4], b[4:6], b[6:8], b[8:10], b[10:], name)
}

func payload(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func readAll(t *testing.T, rc io.ReadCloser) []byte {
	t.Helper()
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// getVersion reads one version through the raw client (the Store API reads
// the latest only).
func getVersion(t *testing.T, s *Store, bucket, key, versionID string) ([]byte, error) {
	t.Helper()
	o, err := s.Client().GetObject(t.Context(), bucket, key, minio.GetObjectOptions{VersionID: versionID})
	if err != nil {
		return nil, err
	}
	defer o.Close()
	return io.ReadAll(o)
}

func assertRetention(t *testing.T, info Info, want Retention) {
	t.Helper()
	if info.Retention == nil {
		t.Fatalf("%s: no retention read back", info.Key)
	}
	if info.Retention.Mode != want.Mode || !info.Retention.Until.Equal(want.Until) {
		t.Fatalf("%s: retention = %s until %s, want %s until %s", info.Key,
			info.Retention.Mode, info.Retention.Until, want.Mode, want.Until)
	}
}

func TestNewBadEndpoint(t *testing.T) {
	for _, ep := range []string{"", "::bad", "ftp://x", "127.0.0.1:9000", "http://", "http://h:99999", "http://h:9000/sub"} {
		_, err := New(Options{Endpoint: ep, AccessKey: "a", SecretKey: "b"})
		if err == nil {
			t.Errorf("New(%q): no error", ep)
			continue
		}
		if !strings.Contains(err.Error(), "endpoint") || !strings.Contains(err.Error(), "http://") {
			t.Errorf("New(%q): unclear error %q", ep, err)
		}
	}
	for _, ep := range []string{"http://127.0.0.1:9000", "https://s3.example.org", "http://[::1]:9000/"} {
		if _, err := New(Options{Endpoint: ep}); err != nil {
			t.Errorf("New(%q): %v", ep, err)
		}
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		code, msg string
		status    int
		want      error
	}{
		{"NoSuchKey", "The specified key does not exist.", 404, ErrNotFound},
		{"NoSuchBucket", "", 404, ErrNotFound},
		{"NoSuchVersion", "", 404, ErrNotFound},
		{"", "", 404, ErrNotFound},
		{"PreconditionFailed", "", 412, ErrPreconditionFailed},
		{"ConditionalRequestConflict", "", 409, ErrPreconditionFailed},
		{"AccessDenied", "Access Denied because object protected by object lock.", 403, ErrLocked},
		{"InvalidRequest", "Object is WORM protected and cannot be overwritten", 400, ErrLocked},
		{"ObjectLocked", "", 400, ErrLocked},
		{"AccessDenied", "Access Denied.", 403, nil},
		{"InvalidRequest", "Bucket is missing Object Lock Configuration", 400, nil},
		{"InternalError", "", 500, nil},
	} {
		if got := classify(minio.ErrorResponse{Code: tc.code, Message: tc.msg, StatusCode: tc.status}); got != tc.want {
			t.Errorf("classify(%s %q %d) = %v, want %v", tc.code, tc.msg, tc.status, got, tc.want)
		}
	}
	// The S3 error stays reachable behind the sentinel.
	err := wrap("stat", "b", "k", minio.ErrorResponse{Code: "NoSuchKey", Message: "gone", StatusCode: 404})
	var resp minio.ErrorResponse
	if !errors.Is(err, ErrNotFound) || !errors.As(err, &resp) || resp.Code != "NoSuchKey" || !strings.Contains(err.Error(), "gone") {
		t.Fatalf("wrap: %v", err)
	}
}

func TestEnsureBucket(t *testing.T) {
	env := testenv.Start(t)
	s, err := New(Options{Endpoint: env.Config.S3Endpoint, AccessKey: env.Config.S3AccessKey,
		SecretKey: env.Config.S3SecretKey, Region: env.Config.S3Region})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for _, tc := range []struct {
		name string
		lock bool
	}{{"pv-locked", true}, {"pv-unlocked", false}} {
		created, err := s.EnsureBucket(ctx, tc.name, tc.lock)
		if err != nil || !created {
			t.Fatalf("EnsureBucket(%s, %v) first = %v, %v; want created", tc.name, tc.lock, created, err)
		}
		created, err = s.EnsureBucket(ctx, tc.name, tc.lock)
		if err != nil || created {
			t.Fatalf("EnsureBucket(%s, %v) again = %v, %v; want not created, no error", tc.name, tc.lock, created, err)
		}
	}
	// Object Lock is on (and with it versioning) only where asked.
	if st, _, _, _, err := s.Client().GetObjectLockConfig(ctx, "pv-locked"); err != nil || st != "Enabled" {
		t.Fatalf("pv-locked lock config = %q, %v", st, err)
	}
	if v, err := s.Client().GetBucketVersioning(ctx, "pv-locked"); err != nil || !v.Enabled() {
		t.Fatalf("pv-locked versioning = %+v, %v; want enabled", v, err)
	}
	// A mismatch with what exists is refused, clearly.
	if _, err := s.EnsureBucket(ctx, "pv-unlocked", true); err == nil || !strings.Contains(err.Error(), "without Object Lock") {
		t.Fatalf("lock requested on unlocked bucket: err = %v", err)
	}
	if _, err := s.EnsureBucket(ctx, "pv-locked", false); err == nil || !strings.Contains(err.Error(), "has Object Lock") {
		t.Fatalf("no lock requested on locked bucket: err = %v", err)
	}
}

func TestLockedObject(t *testing.T) {
	f := setup(t)
	ctx := t.Context()
	key := videoKey("original.mp4")
	body := payload(64 << 10)
	ret := Compliance(1)

	put, err := f.s.PutBytes(ctx, f.locked, key, body, PutOptions{ContentType: "video/mp4", Retention: &ret})
	if err != nil {
		t.Fatal(err)
	}
	if put.VersionID == "" || put.ETag == "" {
		t.Fatalf("put info lacks version/etag: %+v", put)
	}
	st, err := f.s.Stat(ctx, f.locked, key)
	if err != nil {
		t.Fatal(err)
	}
	assertRetention(t, st, ret)
	if st.ContentType != "video/mp4" || st.Size != int64(len(body)) || st.VersionID != put.VersionID || st.ETag != put.ETag {
		t.Fatalf("stat = %+v, put = %+v", st, put)
	}

	// Deleting the retained version is refused, and the data stays.
	err = f.s.Remove(ctx, f.locked, key, put.VersionID)
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("remove locked version: err = %v, want ErrLocked", err)
	}
	t.Logf("remove of locked version: %v", err)
	if got, err := getVersion(t, f.s, f.locked, key, put.VersionID); err != nil || !bytes.Equal(got, body) {
		t.Fatalf("locked version after refused delete: err = %v, equal = %v", err, bytes.Equal(got, body))
	}

	// Shortening COMPLIANCE retention is refused; extending it is allowed.
	shorter := Retention{Mode: minio.Compliance, Until: ret.Until.Add(-time.Hour)}
	err = f.s.PutRetention(ctx, f.locked, key, put.VersionID, shorter)
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("shorten retention: err = %v, want ErrLocked", err)
	}
	t.Logf("shorten retention: %v", err)
	governance := Retention{Mode: minio.Governance, Until: ret.Until}
	if err := f.s.PutRetention(ctx, f.locked, key, put.VersionID, governance); !errors.Is(err, ErrLocked) {
		t.Fatalf("downgrade to GOVERNANCE: err = %v, want ErrLocked", err)
	}
	longer := Retention{Mode: minio.Compliance, Until: ret.Until.Add(time.Hour)}
	if err := f.s.PutRetention(ctx, f.locked, key, put.VersionID, longer); err != nil {
		t.Fatalf("extend retention: %v", err)
	}
	if st, err := f.s.Stat(ctx, f.locked, key); err != nil {
		t.Fatal(err)
	} else {
		assertRetention(t, st, longer)
	}

	// Remove without a version on the versioned bucket: a delete marker
	// hides the key, the retained version is still there.
	if err := f.s.Remove(ctx, f.locked, key, ""); err != nil {
		t.Fatalf("remove latest (delete marker expected): %v", err)
	}
	if _, err := f.s.Stat(ctx, f.locked, key); !errors.Is(err, ErrNotFound) {
		t.Fatalf("stat after delete marker: err = %v, want ErrNotFound", err)
	}
	var marker bool
	for v := range f.s.Client().ListObjectsIter(ctx, f.locked, minio.ListObjectsOptions{Prefix: key, WithVersions: true}) {
		if v.Err != nil {
			t.Fatal(v.Err)
		}
		t.Logf("version %s latest=%v deleteMarker=%v", v.VersionID, v.IsLatest, v.IsDeleteMarker)
		marker = marker || (v.IsDeleteMarker && v.IsLatest)
	}
	if !marker {
		t.Fatal("no delete marker on top after Remove without version")
	}
	if got, err := getVersion(t, f.s, f.locked, key, put.VersionID); err != nil || !bytes.Equal(got, body) {
		t.Fatalf("retained version after delete marker: err = %v, equal = %v", err, bytes.Equal(got, body))
	}
	if err := f.s.Remove(ctx, f.locked, key, put.VersionID); !errors.Is(err, ErrLocked) {
		t.Fatalf("remove locked version under a marker: err = %v, want ErrLocked", err)
	}
}

// TestPutWithoutRetention documents that versitygw stores an object in a
// locked bucket without any retention when none is sent (it does not apply
// a bucket default), so the object can be deleted: why Put callers must
// always pass Retention for locked buckets.
func TestPutWithoutRetention(t *testing.T) {
	f := setup(t)
	ctx := t.Context()
	key := videoKey("meta.json")
	put, err := f.s.PutBytes(ctx, f.locked, key, []byte(`{}`), PutOptions{ContentType: "application/json"})
	if err != nil {
		t.Fatalf("put without retention into locked bucket: %v", err)
	}
	st, err := f.s.Stat(ctx, f.locked, key)
	if err != nil {
		t.Fatal(err)
	}
	if st.Retention != nil {
		t.Fatalf("retention %+v appeared without being asked for", *st.Retention)
	}
	if err := f.s.Remove(ctx, f.locked, key, put.VersionID); err != nil {
		t.Fatalf("remove unretained version: %v", err)
	}
	// The reverse mistake, retention on an unlocked bucket, is refused.
	ret := Compliance(1)
	_, err = f.s.PutBytes(ctx, f.unlocked, key, []byte(`{}`), PutOptions{Retention: &ret})
	if err == nil || errors.Is(err, ErrLocked) {
		t.Fatalf("retention on an unlocked bucket: err = %v", err)
	}
	t.Logf("retention on an unlocked bucket: %v", err)
	if _, err := getVersion(t, f.s, f.locked, key, put.VersionID); err == nil {
		t.Fatal("unretained version still readable after delete")
	}
}

func TestMultipartRetention(t *testing.T) {
	f := setup(t)
	f.s.partSize = 5 << 20 // the S3 minimum, so 12 MiB takes three parts
	ctx := t.Context()
	body := payload(12 << 20)
	ret := Compliance(1)
	for _, size := range []int64{-1, int64(len(body))} {
		key := videoKey("original.mp4")
		// A plain io.Reader, so minio-go cannot take the ReadAt path.
		r := io.MultiReader(bytes.NewReader(body))
		put, err := f.s.Put(ctx, f.locked, key, r, size, PutOptions{ContentType: "video/mp4", Retention: &ret})
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		st, err := f.s.Stat(ctx, f.locked, key)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(st.ETag, "-3") {
			t.Fatalf("size %d: etag %q: not a 3-part upload", size, st.ETag)
		}
		assertRetention(t, st, ret)
		if st.Size != int64(len(body)) || put.VersionID == "" || st.ContentType != "video/mp4" {
			t.Fatalf("size %d: stat %+v put %+v", size, st, put)
		}
		rc, _, err := f.s.Get(ctx, f.locked, key, 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(readAll(t, rc), body) {
			t.Fatalf("size %d: content differs", size)
		}
		if err := f.s.Remove(ctx, f.locked, key, put.VersionID); !errors.Is(err, ErrLocked) {
			t.Fatalf("size %d: remove multipart locked version: %v", size, err)
		}
	}
}

func TestCopyRetention(t *testing.T) {
	f := setup(t)
	ctx := t.Context()
	src := "uploads-" + videoKey("staged")[len("videos/"):]
	body := payload(12 << 20)
	if _, err := f.s.PutBytes(ctx, f.unlocked, src, body, PutOptions{ContentType: "video/mp4"}); err != nil {
		t.Fatal(err)
	}
	ret := Compliance(1)
	for _, tc := range []struct {
		name     string
		partSize int64
		ct       string
		wantCT   string
	}{
		{"single", maxCopySize, "", "video/mp4"},
		// 6 MiB: minio-go splits evenly, and 12/3 MiB parts would be below
		// the 5 MiB minimum.
		{"multipart", 6 << 20, "video/quicktime", "video/quicktime"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.s.copyPartSize = tc.partSize
			dst := videoKey("original.mp4")
			info, err := f.s.Copy(ctx, f.unlocked, src, f.locked, dst, PutOptions{ContentType: tc.ct, Retention: &ret})
			if err != nil {
				t.Fatal(err)
			}
			st, err := f.s.Stat(ctx, f.locked, dst)
			if err != nil {
				t.Fatal(err)
			}
			assertRetention(t, st, ret)
			if st.ContentType != tc.wantCT || st.Size != int64(len(body)) || info.VersionID == "" || st.VersionID != info.VersionID {
				t.Fatalf("stat %+v copy %+v", st, info)
			}
			rc, _, err := f.s.Get(ctx, f.locked, dst, 0, -1)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(readAll(t, rc), body) {
				t.Fatal("copied content differs")
			}
			if err := f.s.Remove(ctx, f.locked, dst, info.VersionID); !errors.Is(err, ErrLocked) {
				t.Fatalf("remove copied locked version: %v", err)
			}
		})
	}
	if _, err := f.s.Copy(ctx, f.unlocked, src, f.locked, videoKey("x"), PutOptions{IfNoneMatch: true}); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("conditional copy: err = %v, want ErrUnsupported", err)
	}
	if _, err := f.s.Copy(ctx, f.unlocked, "missing/key", f.locked, videoKey("x"), PutOptions{Retention: &ret}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("copy of missing source: err = %v, want ErrNotFound", err)
	}
}

func TestConditionalPut(t *testing.T) {
	f := setup(t)
	ctx := t.Context()
	ret := Compliance(1)
	for _, bucket := range []string{f.unlocked, f.locked} {
		t.Run(bucket, func(t *testing.T) {
			o := func(p PutOptions) PutOptions {
				if bucket == f.locked {
					p.Retention = &ret
				}
				return p
			}
			key := videoKey("meta.json")
			first, err := f.s.PutBytes(ctx, bucket, key, []byte("v1"), o(PutOptions{IfNoneMatch: true}))
			if err != nil {
				t.Fatalf("create-only on a new key: %v", err)
			}
			_, err = f.s.PutBytes(ctx, bucket, key, []byte("v2"), o(PutOptions{IfNoneMatch: true}))
			if !errors.Is(err, ErrPreconditionFailed) {
				t.Fatalf("create-only on an existing key: err = %v, want ErrPreconditionFailed", err)
			}
			t.Logf("create-only on an existing key: %v", err)
			_, err = f.s.PutBytes(ctx, bucket, key, []byte("v2"), o(PutOptions{IfMatch: "0123456789abcdef0123456789abcdef"}))
			if !errors.Is(err, ErrPreconditionFailed) {
				t.Fatalf("If-Match with a wrong etag: err = %v, want ErrPreconditionFailed", err)
			}
			second, err := f.s.PutBytes(ctx, bucket, key, []byte("v2"), o(PutOptions{IfMatch: first.ETag}))
			if err != nil {
				t.Fatalf("If-Match with the right etag: %v", err)
			}
			// A quoted etag, as it appears in HTTP, is accepted too.
			if _, err := f.s.PutBytes(ctx, bucket, key, []byte("v3"), o(PutOptions{IfMatch: `"` + second.ETag + `"`})); err != nil {
				t.Fatalf("If-Match with a quoted etag: %v", err)
			}
			rc, _, err := f.s.Get(ctx, bucket, key, 0, -1)
			if err != nil {
				t.Fatal(err)
			}
			if got := readAll(t, rc); string(got) != "v3" {
				t.Fatalf("content = %q, want v3", got)
			}
		})
	}
	// Conditional puts never go multipart, so they need a known size.
	_, err := f.s.Put(ctx, f.unlocked, videoKey("x"), strings.NewReader("x"), -1, PutOptions{IfNoneMatch: true})
	if err == nil || !strings.Contains(err.Error(), "known size") {
		t.Fatalf("conditional put of unknown size: err = %v", err)
	}
}

// TestConditionalPutLarge checks that a conditional Put above the multipart
// threshold still goes as one PUT, so the condition is not silently dropped.
func TestConditionalPutLarge(t *testing.T) {
	f := setup(t)
	f.s.partSize = 5 << 20
	ctx := t.Context()
	key := videoKey("original.mp4")
	ret := Compliance(1)
	body := payload(12 << 20)
	put, err := f.s.PutBytes(ctx, f.locked, key, body, PutOptions{IfNoneMatch: true, Retention: &ret})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(put.ETag, "-") {
		t.Fatalf("etag %q: conditional put went multipart", put.ETag)
	}
	if _, err := f.s.PutBytes(ctx, f.locked, key, body, PutOptions{IfNoneMatch: true, Retention: &ret}); !errors.Is(err, ErrPreconditionFailed) {
		t.Fatalf("second create-only: err = %v", err)
	}
}

func TestGetRangeAndNotFound(t *testing.T) {
	f := setup(t)
	ctx := t.Context()
	key := videoKey("hls/720p/seg-00001.m4s")
	body := payload(100_000)
	if _, err := f.s.PutBytes(ctx, f.unlocked, key, body, PutOptions{ContentType: "video/iso.segment"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ off, n int64 }{{0, -1}, {0, 1}, {10, 100}, {99_000, -1}, {99_999, 1}, {5, 0}, {50_000, 50_000}} {
		rc, info, err := f.s.Get(ctx, f.unlocked, key, tc.off, tc.n)
		if err != nil {
			t.Fatalf("get %d+%d: %v", tc.off, tc.n, err)
		}
		end := int64(len(body))
		if tc.n >= 0 {
			end = tc.off + tc.n
		}
		if got := readAll(t, rc); !bytes.Equal(got, body[tc.off:end]) {
			t.Fatalf("get %d+%d: %d bytes, not the range", tc.off, tc.n, len(got))
		}
		if info.Size != int64(len(body)) || info.ContentType != "video/iso.segment" {
			t.Fatalf("get %d+%d: info %+v", tc.off, tc.n, info)
		}
	}
	if _, _, err := f.s.Get(ctx, f.unlocked, key, -1, 5); err == nil {
		t.Fatal("negative offset accepted")
	}

	missing := videoKey("missing.mp4")
	if _, err := f.s.Stat(ctx, f.unlocked, missing); !errors.Is(err, ErrNotFound) {
		t.Fatalf("stat missing key: err = %v, want ErrNotFound", err)
	}
	if _, _, err := f.s.Get(ctx, f.unlocked, missing, 0, -1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get missing key: err = %v, want ErrNotFound", err)
	} else {
		t.Logf("get missing key: %v", err)
	}
	if _, err := f.s.Stat(ctx, "pv-no-such-bucket", missing); !errors.Is(err, ErrNotFound) {
		t.Fatalf("stat in missing bucket: err = %v, want ErrNotFound", err)
	}
	if err := f.s.Remove(ctx, f.unlocked, missing, ""); err != nil {
		t.Fatalf("remove missing key: %v", err)
	}
}

func TestPresignGet(t *testing.T) {
	f := setup(t)
	ctx := t.Context()
	key := videoKey("poster.jpg")
	body := payload(3000)
	ret := Compliance(1)
	if _, err := f.s.PutBytes(ctx, f.locked, key, body, PutOptions{ContentType: "image/jpeg", Retention: &ret}); err != nil {
		t.Fatal(err)
	}
	u, err := f.s.PresignGet(ctx, f.locked, key, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	get := func(rng string) (*http.Response, []byte) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	if resp, b := get(""); resp.StatusCode != http.StatusOK || !bytes.Equal(b, body) {
		t.Fatalf("presigned GET: %s, %d bytes", resp.Status, len(b))
	}
	if resp, b := get("bytes=100-199"); resp.StatusCode != http.StatusPartialContent || !bytes.Equal(b, body[100:200]) {
		t.Fatalf("presigned ranged GET: %s, %d bytes", resp.Status, len(b))
	}
	// A tampered signature is refused.
	q := u.Query()
	q.Set("X-Amz-Signature", strings.Repeat("0", 64))
	u.RawQuery = q.Encode()
	if resp, _ := get(""); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("tampered presigned GET: %s", resp.Status)
	}
}

func TestList(t *testing.T) {
	f := setup(t)
	ctx := t.Context()
	prefix := videoKey("")
	want := map[string]int{prefix + "original.mp4": 10, prefix + "meta.json": 2, prefix + "hls/360p/seg-00001.m4s": 5}
	ret := Compliance(1)
	for k, n := range want {
		if _, err := f.s.PutBytes(ctx, f.locked, k, payload(n), PutOptions{Retention: &ret}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.s.PutBytes(ctx, f.locked, videoKey("original.mp4"), []byte("other"), PutOptions{Retention: &ret}); err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for info, err := range f.s.List(ctx, f.locked, prefix) {
		if err != nil {
			t.Fatal(err)
		}
		got[info.Key] = int(info.Size)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("list = %v, want %v", got, want)
	}
	n := 0
	for range f.s.List(ctx, f.locked, "videos/") {
		n++
		break
	}
	if n != 1 {
		t.Fatalf("early break: %d", n)
	}
	for _, err := range f.s.List(ctx, "pv-no-such-bucket", "") {
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("list of missing bucket: err = %v, want ErrNotFound", err)
		}
	}
}

// TestChecksumVariants probes which checksum headers versitygw accepts on
// locked writes, beside the Content-MD5 the Store sends: x-amz-checksum-*
// (trailing-header checksums in minio-go), single and multipart.
func TestChecksumVariants(t *testing.T) {
	f := setup(t)
	ctx := t.Context()
	c, err := minio.New(f.s.Client().EndpointURL().Host, &minio.Options{
		Creds:           credentials.NewStaticV4(f.env.Config.S3AccessKey, f.env.Config.S3SecretKey, ""),
		Region:          f.env.Config.S3Region,
		TrailingHeaders: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	ret := Compliance(1)
	body := payload(12 << 20)
	for _, tc := range []struct {
		name string
		size int64
		opts minio.PutObjectOptions
	}{
		{"sha256-single", 1 << 20, minio.PutObjectOptions{Checksum: minio.ChecksumSHA256}},
		{"sha256-multipart", int64(len(body)), minio.PutObjectOptions{Checksum: minio.ChecksumSHA256, PartSize: 5 << 20}},
		{"sha256-single-unsigned", 1 << 20, minio.PutObjectOptions{Checksum: minio.ChecksumSHA256, DisableContentSha256: true}},
		{"sha256-header-single", 1 << 20, minio.PutObjectOptions{UserMetadata: map[string]string{"x-amz-checksum-sha256": sha256b64(body[:1<<20])}}},
		{"crc32c-single", 1 << 20, minio.PutObjectOptions{Checksum: minio.ChecksumCRC32C}},
		{"crc32c-auto-multipart-unknown-size", -1, minio.PutObjectOptions{PartSize: 5 << 20}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := videoKey("original.mp4")
			o := tc.opts
			o.Mode, o.RetainUntilDate = ret.Mode, ret.Until
			n := tc.size
			if n < 0 {
				n = int64(len(body))
			}
			ui, err := c.PutObject(ctx, f.locked, key, bytes.NewReader(body[:n]), tc.size, o)
			if err != nil {
				t.Logf("%s: REFUSED: %v", tc.name, err)
				return
			}
			st, err := f.s.Stat(ctx, f.locked, key)
			if err != nil {
				t.Fatal(err)
			}
			assertRetention(t, st, ret)
			t.Logf("%s: ok etag=%s sha256=%q crc32c=%q", tc.name, ui.ETag, ui.ChecksumSHA256, ui.ChecksumCRC32C)
		})
	}
}

func sha256b64(b []byte) string {
	h := sha256.Sum256(b)
	return base64.StdEncoding.EncodeToString(h[:])
}

// recorder keeps the requests a Store sends.
type recorder struct {
	mu   sync.Mutex
	reqs []*http.Request
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.reqs = append(r.reqs, req.Clone(context.Background()))
	r.mu.Unlock()
	return http.DefaultTransport.RoundTrip(req)
}

// TestWritesCarryChecksumAndRetention checks on the wire that every object
// write to the locked bucket carries a checksum and explicit retention:
// single PUT, multipart (initiate + parts), copy and multipart copy.
func TestWritesCarryChecksumAndRetention(t *testing.T) {
	f := setup(t)
	rec := &recorder{}
	s, err := newStore(Options{Endpoint: f.env.Config.S3Endpoint, AccessKey: f.env.Config.S3AccessKey,
		SecretKey: f.env.Config.S3SecretKey, Region: f.env.Config.S3Region}, rec)
	if err != nil {
		t.Fatal(err)
	}
	s.partSize, s.copyPartSize = 5<<20, 6<<20
	ctx := t.Context()
	ret := Compliance(1)
	o := PutOptions{Retention: &ret}
	big := payload(12 << 20)
	src := videoKey("original.mp4")
	if _, err := s.PutBytes(ctx, f.locked, videoKey("meta.json"), []byte(`{}`), o); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, f.locked, videoKey("original.mp4"), io.MultiReader(bytes.NewReader(big)), -1, o); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, f.locked, src, bytes.NewReader(big), int64(len(big)), o); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Copy(ctx, f.locked, src, f.locked, videoKey("original.mp4"), o); err != nil {
		t.Fatal(err)
	}
	s.copyPartSize = maxCopySize
	if _, err := s.Copy(ctx, f.locked, src, f.locked, videoKey("original.mp4"), o); err != nil {
		t.Fatal(err)
	}

	counts := map[string]int{}
	for _, r := range rec.reqs {
		q, h := r.URL.Query(), r.Header
		if strings.Count(strings.Trim(r.URL.Path, "/"), "/") == 0 {
			continue // bucket-level
		}
		hasLock := h.Get("X-Amz-Object-Lock-Mode") == string(ret.Mode) &&
			h.Get("X-Amz-Object-Lock-Retain-Until-Date") == ret.Until.Format(time.RFC3339)
		var kind string
		switch {
		case r.Method == http.MethodPost && q.Has("uploads"):
			kind = "initiate"
			if !hasLock {
				t.Errorf("multipart initiate without retention: %v", h)
			}
		case r.Method == http.MethodPut && q.Has("uploadId") && h.Get("X-Amz-Copy-Source") != "":
			kind = "part-copy" // no body: nothing to checksum
		case r.Method == http.MethodPut && q.Has("uploadId"):
			kind = "part"
			if h.Get("Content-Md5") == "" {
				t.Errorf("part without Content-MD5: %v", h)
			}
		case r.Method == http.MethodPut && h.Get("X-Amz-Copy-Source") != "":
			kind = "copy"
			if !hasLock || h.Get("X-Amz-Checksum-Algorithm") != "SHA256" {
				t.Errorf("copy without retention or checksum algorithm: %v", h)
			}
		case r.Method == http.MethodPut:
			kind = "put"
			if !hasLock || h.Get("Content-Md5") == "" {
				t.Errorf("put without retention or Content-MD5: %v", h)
			}
		default:
			continue
		}
		counts[kind]++
	}
	// 1 single put; 3 parts each for the two multipart puts; 2 part copies.
	want := map[string]int{"put": 1, "initiate": 3, "part": 6, "part-copy": 2, "copy": 1}
	if fmt.Sprint(counts) != fmt.Sprint(want) {
		t.Fatalf("requests seen = %v, want %v", counts, want)
	}
}

// GetVersion and StatVersion read the version asked for, not the latest:
// a plain PUT over a locked object (a new latest version) is not what a
// pinned reader gets, whole or by range.
func TestGetVersionIgnoresNewerVersions(t *testing.T) {
	f := setup(t)
	ctx := t.Context()
	key := videoKey("original.mp4")
	body := payload(50_000)
	ret := Compliance(1)
	pinned, err := f.s.PutBytes(ctx, f.locked, key, body, PutOptions{ContentType: "video/mp4", Retention: &ret})
	if err != nil {
		t.Fatal(err)
	}
	over := []byte("shadow")
	if _, err := f.s.PutBytes(ctx, f.locked, key, over, PutOptions{ContentType: "video/mp4"}); err != nil {
		t.Fatal(err)
	}
	if latest, err := f.s.Stat(ctx, f.locked, key); err != nil || latest.Size != int64(len(over)) {
		t.Fatalf("latest: %+v %v", latest, err)
	}
	st, err := f.s.StatVersion(ctx, f.locked, key, pinned.VersionID)
	if err != nil || st.VersionID != pinned.VersionID || st.Size != int64(len(body)) {
		t.Fatalf("stat pinned: %+v %v", st, err)
	}
	for _, tc := range []struct{ off, n int64 }{{0, -1}, {100, 1000}, {49_000, -1}, {7, 0}} {
		rc, info, err := f.s.GetVersion(ctx, f.locked, key, pinned.VersionID, tc.off, tc.n)
		if err != nil {
			t.Fatalf("get %d+%d: %v", tc.off, tc.n, err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		end := int64(len(body))
		if tc.n >= 0 {
			end = tc.off + tc.n
		}
		if tc.n == 0 {
			end = tc.off
		}
		if err != nil || !bytes.Equal(got, body[tc.off:end]) || info.Size != int64(len(body)) {
			t.Fatalf("get %d+%d of the pinned version: %d bytes, size %d, %v", tc.off, tc.n, len(got), info.Size, err)
		}
	}
}
