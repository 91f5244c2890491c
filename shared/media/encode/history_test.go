package encode_test

import (
	"context"
	"errors"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/mieweb/pulsevault/shared/storage"
	"github.com/mieweb/pulsevault/shared/testutil/testclip"
	"github.com/mieweb/pulsevault/shared/topology"
)

// Every version of meta.json and of the manifests is kept and locked on
// the real versitygw: after a transcode each version has COMPLIANCE
// retention, and after a PutObject over meta.json by the service
// credentials, deleting the version it replaced is refused.
func TestMetaAndManifestHistoryLocked(t *testing.T) {
	r := newRig(t)
	id, v := r.stage(testclip.Options{NoAudio: true, Seconds: 2}, nil)
	for name, res := range r.runJobs(id, v, 1) {
		if res.Outcome != "done" {
			t.Fatalf("rendition %s: %+v", name, res)
		}
	}
	ctx := context.Background()
	bucket := r.cfg.MediaBucket
	versions := func(key string) []storage.Info {
		t.Helper()
		var out []storage.Info
		for info, err := range r.st.ListVersions(ctx, bucket, key) {
			if err != nil {
				t.Fatal(err)
			}
			if info.Key == key && !info.DeleteMarker {
				out = append(out, info)
			}
		}
		return out
	}
	for _, key := range []string{topology.MetaKey(id), topology.VideoKey(id, "hls/master.m3u8"), topology.VideoKey(id, "dash/manifest.mpd")} {
		vs := versions(key)
		if len(vs) == 0 {
			t.Fatalf("%s: no versions", key)
		}
		// versitygw's HEAD names the lock of the current version only
		// (older versions answer without the lock headers), so the lock of
		// each version is proved by the store refusing to delete it.
		if st, err := r.st.Stat(ctx, bucket, key); err != nil || st.Retention == nil || st.Retention.Mode != minio.Compliance {
			t.Errorf("%s latest: retention %+v %v, want COMPLIANCE", key, st.Retention, err)
		}
		for _, info := range vs {
			if err := r.st.Remove(ctx, bucket, key, info.VersionID); !errors.Is(err, storage.ErrLocked) {
				t.Errorf("deleting %s version %s: %v, want ErrLocked", key, info.VersionID, err)
			}
		}
		if n := len(versions(key)); n != len(vs) {
			t.Errorf("%s: %d versions after the delete attempts, want %d", key, n, len(vs))
		}
		t.Logf("%s: %d versions, none deletable", key, len(vs))
	}

	// The service user writes over meta.json; the version it replaced stays.
	key := topology.MetaKey(id)
	before, err := r.st.Stat(ctx, bucket, key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.st.PutBytes(ctx, bucket, key, []byte(`{"id":"`+id+`","status":"ready"}`), storage.PutOptions{ContentType: "application/json"}); err != nil {
		t.Fatal(err)
	}
	if err := r.st.Remove(ctx, bucket, key, before.VersionID); !errors.Is(err, storage.ErrLocked) {
		t.Fatalf("deleting the replaced meta.json version: %v, want ErrLocked", err)
	}
	if st, err := r.st.StatVersion(ctx, bucket, key, before.VersionID); err != nil || st.Size != before.Size {
		t.Fatalf("replaced version after the delete attempt: %+v %v", st, err)
	}
}
