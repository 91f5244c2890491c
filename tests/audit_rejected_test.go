package tests

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/mieweb/pulsevault/shared/ingest/tusclient"
	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/topology"
)

// A rejected upload keeps only what the audit needs: through the real
// upload and finalize path, a file that is not a video, uploaded with a
// PHI-like file name and client metadata, leaves meta.json with the reason,
// size and SHA-256, and no trace of the name or metadata in any version of
// any object of the media and uploads buckets.
func TestAuditRejectedUploadKeepsNoFileName(t *testing.T) {
	s := startIngestStack(t)
	s.deployPipeline()
	phi := "Jane Doe MRN 4711"
	path := filepath.Join(t.TempDir(), "clip.mp4")
	data := bytes.Repeat([]byte("this is not a video at all\n"), 400)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	c := &tusclient.Client{Endpoint: s.gateway + "/function/upload/", Token: s.token}
	if _, err := c.Upload(context.Background(), path, map[string]string{"filename": phi + ".mp4", "name": phi + " gait test", "filetype": "video/mp4"}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var v *meta.Video
	deadline := time.Now().Add(90 * time.Second)
	for v == nil {
		for o, err := range s.st.List(ctx, s.env.Config.MediaBucket, "videos/") {
			if err == nil && strings.HasSuffix(o.Key, "/meta.json") {
				id := strings.TrimSuffix(strings.TrimPrefix(o.Key, "videos/"), "/meta.json")
				if got, _, err := s.metas.Get(ctx, id); err == nil && got.Status == meta.Rejected {
					v = got
				}
			}
		}
		if v == nil && time.Now().After(deadline) {
			t.Fatal("no rejected meta.json within 90s")
		}
		time.Sleep(200 * time.Millisecond)
	}
	s.waitStagedGone(v.UploadID)
	if v.Reason == "" || v.Rejected == nil || v.Rejected.Size != int64(len(data)) || len(v.Rejected.SHA256) != 64 || len(v.Client) != 0 {
		t.Fatalf("rejected meta.json: reason %q rejected %+v client %v", v.Reason, v.Rejected, v.Client)
	}
	mc := s.st.Client()
	n := 0
	for _, bucket := range []string{s.env.Config.MediaBucket, s.env.Config.UploadsBucket} {
		for o := range mc.ListObjectsIter(ctx, bucket, minio.ListObjectsOptions{Recursive: true, WithVersions: true, WithMetadata: true}) {
			if o.Err != nil {
				t.Fatal(o.Err)
			}
			if o.IsDeleteMarker {
				continue
			}
			n++
			obj, err := mc.GetObject(ctx, bucket, o.Key, minio.GetObjectOptions{VersionID: o.VersionID})
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(obj)
			obj.Close()
			if err != nil {
				t.Fatalf("%s/%s@%s: %v", bucket, o.Key, o.VersionID, err)
			}
			st, _ := obj.Stat()
			meta := strings.Join(append([]string{o.Key}, flatten(st.UserMetadata)...), " ")
			if bytes.Contains(b, []byte("Jane Doe")) || strings.Contains(meta, "Jane Doe") {
				t.Errorf("%s/%s version %s keeps the file name", bucket, o.Key, o.VersionID)
			}
		}
	}
	if n == 0 {
		t.Fatal("nothing listed")
	}
	if _, err := s.st.Stat(ctx, s.env.Config.MediaBucket, topology.MetaKey(v.ID)); err != nil {
		t.Fatal(err)
	}
}

func flatten(m map[string]string) []string {
	var out []string
	for k, v := range m {
		out = append(out, k, v)
	}
	return out
}
