package finalize

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"image"
	"image/jpeg"
	"io"
	"os"
	"testing"

	"github.com/mieweb/pulsevault/shared/ingest/staging"
	"github.com/mieweb/pulsevault/shared/storage"
	"github.com/mieweb/pulsevault/shared/testutil/testclip"
	"github.com/mieweb/pulsevault/shared/topology"
)

// stage puts a complete upload under object id obj, as tusd's s3store
// leaves one: the data object and its .info.
func (r *rig) stage(obj string, data []byte, md map[string]string) {
	r.t.Helper()
	ctx := context.Background()
	c := r.env.Config
	if _, err := r.st.PutBytes(ctx, c.UploadsBucket, obj, data, storage.PutOptions{}); err != nil {
		r.t.Fatal(err)
	}
	info, _ := json.Marshal(map[string]any{"ID": obj + "+bXVsdGlwYXJ0", "Size": len(data), "Offset": len(data), "MetaData": md})
	if _, err := r.st.PutBytes(ctx, c.UploadsBucket, topology.InfoKey(obj), info, storage.PutOptions{}); err != nil {
		r.t.Fatal(err)
	}
}

// A Pulse video keeps its artifact id, its uploader is the pairing's
// owner, and its companions (staged before it) are locked beside it once,
// however often finalize runs; a companion alone is never a video and
// expires when its video never comes.
func TestPulseCompanionsAttached(t *testing.T) {
	t.Parallel()
	r := newRig(t, defaultLimits())
	ctx := context.Background()
	c := r.env.Config
	const anchor, capID, thumbID, beatsID, orphanAnchor = "3f2b8c1e-5d4a-4e6b-9c7d-0a1b2c3d4e5f", "9e8d7c6b-5a49-4382-a1b0-c9d8e7f6a5b4",
		"11111111-2222-4333-8444-555555555555", "66666666-7777-4888-9999-aaaaaaaaaaaa", "bbbbbbbb-cccc-4ddd-8eee-ffffffffffff"
	video, err := os.ReadFile(clip(t, testclip.Options{Seconds: 1}))
	if err != nil {
		t.Fatal(err)
	}
	owner := func(md map[string]string) map[string]string { md[staging.SubjectKey] = "clinician-42"; return md }
	img := image.NewRGBA(image.Rect(0, 0, 32, 56))
	var jpg bytes.Buffer
	if err := jpeg.Encode(&jpg, img, nil); err != nil {
		t.Fatal(err)
	}
	beats := []byte(`{"version":1,"type":"beat-manifest","durationMs":1000,"beats":[{"segmentId":"a","order":0,"startMs":0,"endMs":1000}]}`)
	r.stage(topology.PulseCompanionObject(anchor, capID), []byte("WEBVTT\n\n00:00.000 --> 00:01.000\nhello\n"), owner(map[string]string{"kind": "captions", "filename": "d.vtt", "relatedTo": anchor}))
	r.stage(topology.PulseCompanionObject(anchor, thumbID), jpg.Bytes(), owner(map[string]string{"kind": "thumbnail", "filename": "d.jpg", "relatedTo": anchor}))
	r.stage(topology.PulseCompanionObject(anchor, beatsID), beats, owner(map[string]string{"kind": "project", "filename": "d-beats.pulse", "relatedTo": anchor}))
	// Another thumbnail that is no JPEG (attached first: its id sorts first): dropped.
	r.stage(topology.PulseCompanionObject(anchor, "00000000-0000-4000-8000-000000000000"), []byte("not a jpeg"), owner(map[string]string{"kind": "thumbnail", "filename": "e.jpg", "relatedTo": anchor}))
	r.stage(topology.PulseCompanionObject(orphanAnchor, capID), []byte("WEBVTT\n"), owner(map[string]string{"kind": "captions", "filename": "o.vtt", "relatedTo": orphanAnchor}))

	if out, err := r.f.Finalize(ctx, topology.PulseCompanionObject(anchor, capID)); err != nil || out.Skipped != "companion" {
		t.Fatalf("a companion alone: %+v %v, want skipped", out, err)
	}
	r.stage(topology.PulseVideoObject(anchor), video, owner(map[string]string{"kind": "video", "filename": "d.mp4", "artifactId": anchor, "name": "Knee"}))
	for run := 0; run < 2; run++ {
		out, err := r.f.Finalize(ctx, topology.PulseVideoObject(anchor))
		if err != nil || out.Video != anchor {
			t.Fatalf("run %d: %+v %v", run, out, err)
		}
	}
	v := r.meta(anchor)
	if v.Uploader != "clinician-42" || v.Client["name"] != "Knee" || v.Companions == nil || len(v.Companions.Captions) != 1 ||
		v.Companions.Captions[0].Key != "videos/"+anchor+"/captions/und.vtt" || v.Companions.Thumbnail != topology.ThumbnailKey(anchor) ||
		v.Companions.Beats != topology.BeatsKey(anchor) {
		t.Fatalf("meta: uploader %q companions %+v", v.Uploader, v.Companions)
	}
	if rc, _, err := r.st.Get(ctx, c.MediaBucket, v.Companions.Thumbnail, 0, -1); err != nil {
		t.Fatal(err)
	} else {
		got, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(got, jpg.Bytes()) {
			t.Fatal("the thumbnail locked is not the valid one")
		}
	}
	for _, key := range []string{v.Companions.Captions[0].Key, v.Companions.Thumbnail, v.Companions.Beats} {
		info, err := r.st.Stat(ctx, c.MediaBucket, key)
		if err != nil || info.Retention == nil {
			t.Fatalf("%s: %+v %v, want it locked", key, info, err)
		}
		n := 0
		for _, err := range r.st.ListVersions(ctx, c.MediaBucket, key) {
			if err == nil {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s: %d versions, want 1 (no copy made twice)", key, n)
		}
	}
	if left := r.staged("pulse-" + anchor); len(left) != 0 {
		t.Fatalf("still staged: %v", left)
	}
	// Claims outlive every token, then go.
	claim := topology.PulseClaimKey(anchor)
	if _, err := r.st.PutBytes(ctx, c.UploadsBucket, claim, []byte(`{}`), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.f.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := r.st.Stat(ctx, c.UploadsBucket, claim); err != nil {
		t.Fatalf("a fresh claim went: %v", err)
	}
	// The orphan waits, then expires like an abandoned upload; old claims go.
	r.f.o.Limits.ReconcileAge, r.f.o.Limits.Expiry = 0, 0
	r.f.claimTTL = 0
	rep, err := r.f.Reconcile(ctx)
	if err != nil || len(rep.Expired) != 1 || len(rep.Finalized) != 0 {
		t.Fatalf("reconcile: %+v %v, want the orphan companion expired", rep, err)
	}
	if left := r.staged("pulse-" + orphanAnchor); len(left) != 0 {
		t.Fatalf("orphan still staged: %v", left)
	}
	if _, err := r.st.Stat(ctx, c.UploadsBucket, claim); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("an expired claim stayed: %v", err)
	}
}
