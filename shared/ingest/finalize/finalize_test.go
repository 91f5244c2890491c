package finalize

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mieweb/pulsevault/shared/audit/event"
	"github.com/mieweb/pulsevault/shared/auth"
	"github.com/mieweb/pulsevault/shared/bus"
	"github.com/mieweb/pulsevault/shared/faas/bootstrap"
	"github.com/mieweb/pulsevault/shared/ingest/probe"
	"github.com/mieweb/pulsevault/shared/ingest/staging"
	"github.com/mieweb/pulsevault/shared/ingest/tusclient"
	"github.com/mieweb/pulsevault/shared/ingest/tusupload"
	"github.com/mieweb/pulsevault/shared/ingest/videoid"
	"github.com/mieweb/pulsevault/shared/media/ladder"
	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/storage"
	"github.com/mieweb/pulsevault/shared/testutil/testclip"
	"github.com/mieweb/pulsevault/shared/testutil/testenv"
)

var secret = []byte("finalize-test-secret-0123456789abcdef")

// rig is the real stack (NATS, versitygw, tusd, ffmpeg) with a Finalizer.
type rig struct {
	t    *testing.T
	env  *testenv.Env
	st   *storage.Store
	b    *bus.Bus
	f    *Finalizer
	tus  *tusclient.Client
	logs *testenv.Buffer
}

func newRig(t *testing.T, lim Limits) *rig {
	t.Helper()
	ctx := context.Background()
	env := testenv.Start(t)
	c := env.Config
	st, err := storage.FromConfig(c)
	if err != nil {
		t.Fatal(err)
	}
	b, err := bus.Connect(c.NATSURL, "finalize-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	if _, err := bootstrap.Run(ctx, c, st, b, slogDiscard()); err != nil {
		t.Fatal(err)
	}
	logs := &testenv.Buffer{}
	f, err := New(ctx, Options{Store: st, Bus: b, UploadsBucket: c.UploadsBucket, MediaBucket: c.MediaBucket,
		RetentionDays: c.MediaRetentionDays, Limits: lim, Logger: jsonLogger(logs)})
	if err != nil {
		t.Fatal(err)
	}
	v, err := auth.New(auth.Options{HS256Secret: secret, Issuer: c.JWTIssuer, Audience: c.JWTAudience})
	if err != nil {
		t.Fatal(err)
	}
	h, err := tusupload.New(tusupload.Options{S3Endpoint: c.S3Endpoint, S3Region: c.S3Region, S3AccessKey: c.S3AccessKey,
		S3SecretKey: c.S3SecretKey, Bucket: c.UploadsBucket, Staged: staging.New(st, c.UploadsBucket), Verifier: v, LogWriter: logs,
		Limits: tusupload.Limits{MaxBytes: 1 << 30, BasePath: "/files/", Expiry: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.StripPrefix("/files", h))
	t.Cleanup(srv.Close)
	tok, err := auth.SignHS256(secret, c.JWTIssuer, c.JWTAudience, "clinician-7", nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &rig{t: t, env: env, st: st, b: b, f: f, logs: logs, tus: &tusclient.Client{Endpoint: srv.URL + "/files/", Token: tok}}
}

func defaultLimits() Limits {
	return Limits{MaxBytes: 1 << 30, MaxSeconds: 60, MaxSide: 4096, ReconcileAge: time.Hour, Expiry: 24 * time.Hour, ProbeTimeout: 30 * time.Second}
}

// upload sends a file through the real tus endpoint; it returns the
// staged object id.
func (r *rig) upload(path string, md map[string]string) string {
	r.t.Helper()
	loc, err := r.tus.Upload(context.Background(), path, md)
	if err != nil {
		r.t.Fatal(err)
	}
	return videoid.ObjectID(loc[strings.LastIndexByte(loc, '/')+1:])
}

// notification is a versitygw-shaped notification of a finished multipart upload.
func notification(bucket, key, etag string) []byte {
	return []byte(fmt.Sprintf(`{"Records":[{"eventVersion":"2.2","eventSource":"aws:s3","awsRegion":"us-east-1",
"eventTime":"2026-11-01T10:00:00Z","eventName":"s3:ObjectCreated:CompleteMultipartUpload",
"s3":{"s3SchemaVersion":"1.0","bucket":{"name":%q},"object":{"key":%q,"size":0,"eTag":%q}},
"glacierEventData":{"restoreEventData":{"lifecycleRestorationExpiryTime":""}}}]}`, bucket, key, `"`+etag+`"`))
}

// eventOf is the notification the store sends when upload up finishes.
func (r *rig) eventOf(up string) []byte {
	r.t.Helper()
	info, err := r.st.Stat(context.Background(), r.env.Config.UploadsBucket, up)
	if err != nil {
		r.t.Fatal(err)
	}
	return notification(r.env.Config.UploadsBucket, up, info.ETag)
}

func (r *rig) jobs() map[string]int {
	r.t.Helper()
	ctx := context.Background()
	s, err := r.b.JetStream().Stream(ctx, "PULSE_JOBS")
	if err != nil {
		r.t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		r.t.Fatal(err)
	}
	out := map[string]int{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		} else if err != nil {
			r.t.Fatal(err)
		}
		var j ladder.Job
		if err := json.Unmarshal(m.Data, &j); err != nil {
			r.t.Fatal(err)
		}
		out[j.Video+"/"+j.Rendition]++
	}
	return out
}

func (r *rig) staged(id string) []string {
	var keys []string
	for o, err := range r.st.List(context.Background(), r.env.Config.UploadsBucket, id) {
		if err != nil {
			r.t.Fatal(err)
		}
		keys = append(keys, o.Key)
	}
	return keys
}

func (r *rig) meta(id string) *meta.Video {
	r.t.Helper()
	v, _, err := meta.NewStore(r.st, r.env.Config.MediaBucket).Get(context.Background(), id)
	if err != nil {
		r.t.Fatalf("meta.json of %s: %v", id, err)
	}
	return v
}

func clip(t *testing.T, o testclip.Options) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "clip.mp4")
	if err := testclip.Make(context.Background(), p, o); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFinalizeVideo(t *testing.T) {
	t.Parallel()
	r := newRig(t, defaultLimits())
	ctx := context.Background()
	clipPath := clip(t, testclip.Options{Seconds: 2})
	up := r.upload(clipPath, map[string]string{"filename": "Jane Doe knee.mp4", "filetype": "video/mp4"})
	id := videoid.FromUpload(up)

	// Three deliveries at once, then a fourth: one video, one job per rendition.
	ev := r.eventOf(up)
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = r.f.HandleEvent(ctx, ev)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	out, err := r.f.HandleEvent(ctx, ev)
	if err != nil || len(out) != 1 || out[0].Video != id || out[0].Jobs != 0 {
		t.Fatalf("redelivery: %+v %v", out, err)
	}

	v := r.meta(id)
	if v.Status != meta.Processing || v.Uploader != "clinician-7" || v.UploadID != up || v.Client["filename"] != "Jane Doe knee.mp4" {
		t.Fatalf("meta.json: %+v", v)
	}
	if _, ok := v.Client["pulsevault-subject"]; ok {
		t.Error("the subject entry leaked into the client metadata")
	}
	if v.Probe == nil || v.Probe.Width != 360 || v.Probe.Height != 640 || !v.Probe.HasAudio {
		t.Fatalf("probe: %+v", v.Probe)
	}
	want := ladder.Plan(*v.Probe)
	if len(v.Renditions) != len(want) || len(want) < 2 || want[len(want)-1].Name != "audio" {
		t.Fatalf("renditions %+v, planned %+v", v.Renditions, want)
	}
	jobs := r.jobs()
	if len(jobs) != len(want) {
		t.Fatalf("jobs %v, want one per rendition %v", jobs, want)
	}
	for _, rd := range want {
		if n := jobs[id+"/"+rd.Name]; n != 1 {
			t.Errorf("rendition %s: %d jobs stored, want 1", rd.Name, n)
		}
	}

	info, err := r.st.Stat(ctx, r.env.Config.MediaBucket, "videos/"+id+"/original.mp4")
	if err != nil {
		t.Fatal(err)
	}
	if info.Retention == nil || info.Retention.Mode != minio.Compliance || !info.Retention.Until.After(time.Now()) {
		t.Fatalf("original retention: %+v", info.Retention)
	}
	// Pinned: meta.json names the locked version and the SHA-256 of its bytes.
	src, err := os.ReadFile(clipPath)
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(src); v.Original.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("original sha256 %q, want %x", v.Original.SHA256, sum)
	}
	if v.Original.VersionID == "" || v.Original.VersionID != info.VersionID {
		t.Errorf("original version %q, the locked one is %q", v.Original.VersionID, info.VersionID)
	}
	if err := r.st.Remove(ctx, r.env.Config.MediaBucket, info.Key, info.VersionID); !errors.Is(err, storage.ErrLocked) {
		t.Fatalf("deleting the original: %v, want ErrLocked", err)
	}
	versions := 0
	for o := range r.st.Client().ListObjects(ctx, r.env.Config.MediaBucket, minio.ListObjectsOptions{Prefix: info.Key, WithVersions: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		versions++
	}
	if versions != 1 {
		t.Errorf("original has %d versions after 4 deliveries, want 1", versions)
	}
	if ks := r.staged(up); len(ks) != 0 {
		t.Fatalf("staged upload still there: %v", ks)
	}
	if s := r.logs.String(); strings.Contains(s, "Jane") || strings.Contains(s, "knee") {
		t.Fatalf("PHI in the log:\n%s", s)
	}
	// Audit: upload.created by the uploader and video.finalized, each once.
	s, err := r.b.JetStream().Stream(ctx, "PULSE_AUDIT")
	if err != nil {
		t.Fatal(err)
	}
	for subj, n := range map[string]uint64{"pulse.audit.upload.created": 1, "pulse.audit.video.finalized": 1} {
		si, err := s.Info(ctx, jetstream.WithSubjectFilter(subj))
		if err != nil {
			t.Fatal(err)
		}
		if got := si.State.Subjects[subj]; got != n {
			t.Errorf("%s: %d events, want %d", subj, got, n)
		}
	}
	// video.finalized carries the locked original's SHA-256 into the signed log.
	m, err := s.GetLastMsgForSubject(ctx, "pulse.audit.video.finalized")
	if err != nil {
		t.Fatal(err)
	}
	var fin event.Event
	if err := json.Unmarshal(m.Data, &fin); err != nil || fin.SHA256 != v.Original.SHA256 || fin.Object != id {
		t.Fatalf("video.finalized: %+v %v, want sha256 %s", fin, err, v.Original.SHA256)
	}
}

func TestFinalizeRejects(t *testing.T) {
	t.Parallel()
	lim := defaultLimits()
	lim.MaxSeconds = 3
	lim.MaxBytes = 2 << 20
	r := newRig(t, lim)
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := clip(t, testclip.Options{Seconds: 2})
	whole, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 3<<20)
	copy(big, whole)
	cases := map[string]string{
		write("notes.mp4", []byte("Patient notes, definitely not a video\n")): probe.ReasonNotVideo,
		write("cut.mp4", whole[:len(whole)/2]):                                probe.ReasonTruncated,
		write("empty.mp4", nil):                                               ReasonEmpty,
		write("big.mp4", big):                                                 ReasonTooBig,
		clip(t, testclip.Options{Seconds: 4, FPS: 10, NoAudio: true}):         ReasonTooLong,
	}
	ctx := context.Background()
	for path, reason := range cases {
		up := r.upload(path, map[string]string{"filename": filepath.Base(path)})
		out, err := r.f.HandleEvent(ctx, r.eventOf(up))
		if err != nil || len(out) != 1 || out[0].Status != meta.Rejected || out[0].Reason != reason {
			t.Errorf("%s: %+v %v, want rejected %s", filepath.Base(path), out, err, reason)
			continue
		}
		v := r.meta(out[0].Video)
		if v.Status != meta.Rejected || v.Reason != reason || v.Original != nil || len(v.Renditions) != 0 {
			t.Errorf("%s: meta.json %+v", filepath.Base(path), v)
		}
		if ks := r.staged(up); len(ks) != 0 {
			t.Errorf("%s: staged upload left: %v", filepath.Base(path), ks)
		}
		for o := range r.st.List(ctx, r.env.Config.MediaBucket, "videos/"+out[0].Video+"/original") {
			t.Errorf("%s: rejected upload has an original: %s", filepath.Base(path), o.Key)
		}
	}
	if n := len(r.jobs()); n != 0 {
		t.Errorf("rejections published %d jobs", n)
	}
	s, err := r.b.JetStream().Stream(ctx, "PULSE_AUDIT")
	if err != nil {
		t.Fatal(err)
	}
	si, err := s.Info(ctx, jetstream.WithSubjectFilter("pulse.audit.upload.rejected"))
	if err != nil {
		t.Fatal(err)
	}
	if got := si.State.Subjects["pulse.audit.upload.rejected"]; got != uint64(len(cases)) {
		t.Errorf("%d upload.rejected events, want %d", got, len(cases))
	}
}

func TestHandleEventInput(t *testing.T) {
	t.Parallel()
	r := newRig(t, defaultLimits())
	ctx := context.Background()
	b, err := os.ReadFile("../s3event/testdata/versitygw-v1.8.0-startup-test-event.json")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := r.f.HandleEvent(ctx, b); err != nil || len(out) != 0 {
		t.Errorf("test event: %v %v", out, err)
	}
	for _, bad := range []string{"", "{", `{"Records":[]}`, `{"Records":[{"s3":{}}]}`, "not json"} {
		if _, err := r.f.HandleEvent(ctx, []byte(bad)); !errors.Is(err, ErrBadEvent) {
			t.Errorf("%q: %v, want ErrBadEvent", bad, err)
		}
	}
	// Other buckets, companions and unknown uploads: acknowledged, nothing done.
	for _, ev := range [][]byte{
		notification("some-other-bucket", "abc", "x"), notification(r.env.Config.UploadsBucket, "abc.info", "x"),
		notification(r.env.Config.UploadsBucket, "abc.part", "x"), notification(r.env.Config.UploadsBucket, "0123456789abcdef0123456789abcdef", "x"),
	} {
		out, err := r.f.HandleEvent(ctx, ev)
		if err != nil || (len(out) == 1 && out[0].Skipped != "gone") || len(out) > 1 {
			t.Errorf("%s: %+v %v", ev, out, err)
		}
	}
	if n := len(r.jobs()); n != 0 {
		t.Errorf("%d jobs published", n)
	}
}

func TestReconcile(t *testing.T) {
	t.Parallel()
	lim := defaultLimits()
	lim.ReconcileAge = time.Hour
	lim.Expiry = time.Hour
	r := newRig(t, lim)
	ctx := context.Background()
	// A completed upload whose event was lost, and one abandoned half-way.
	up := r.upload(clip(t, testclip.Options{Seconds: 1}), map[string]string{"filename": "x.mp4"})
	abandoned := filepath.Join(t.TempDir(), "half.bin")
	if err := os.WriteFile(abandoned, bytes.Repeat([]byte("x"), 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	r.tus.ChunkSize = 256 << 10
	hc := &http.Client{Transport: &cutAfter{rt: http.DefaultTransport, patches: 1}}
	r.tus.HTTP = hc
	r.tus.Retries = 1
	if _, err := r.tus.Upload(ctx, abandoned, nil); err == nil {
		t.Fatal("the cut upload succeeded")
	}
	r.tus.HTTP = nil

	// Too young: nothing happens.
	if rep, err := r.f.Reconcile(ctx); err != nil || len(rep.Finalized)+len(rep.Expired) != 0 {
		t.Fatalf("young uploads: %+v %v", rep, err)
	}
	if ks := r.staged(up); len(ks) == 0 {
		t.Fatal("a young upload was touched")
	}
	r.f.o.Limits.ReconcileAge, r.f.o.Limits.Expiry = time.Millisecond, time.Millisecond
	deadline := time.Now().Add(20 * time.Second)
	var done, expired bool
	for time.Now().Before(deadline) && !(done && expired) {
		time.Sleep(500 * time.Millisecond)
		rep, err := r.f.Reconcile(ctx)
		if err != nil {
			t.Fatal(err)
		}
		done = done || len(rep.Finalized) == 1 && rep.Finalized[0] == videoid.FromUpload(up)
		expired = expired || len(rep.Expired) == 1
	}
	if !done || !expired {
		t.Fatalf("reconciler: finalized %v expired %v", done, expired)
	}
	if v := r.meta(videoid.FromUpload(up)); v.Status != meta.Processing {
		t.Fatalf("status %s", v.Status)
	}
	var left []string
	for o, err := range r.st.List(ctx, r.env.Config.UploadsBucket, "") {
		if err != nil {
			t.Fatal(err)
		}
		left = append(left, o.Key)
	}
	if len(left) != 0 {
		t.Fatalf("uploads bucket not empty after reconcile: %v", left)
	}
}

// cutAfter lets n PATCH requests through and fails every later one, as a
// client that lost its network would.
type cutAfter struct {
	rt      http.RoundTripper
	mu      sync.Mutex
	patches int
}

func (c *cutAfter) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPatch {
		c.mu.Lock()
		c.patches--
		n := c.patches
		c.mu.Unlock()
		if n < 0 {
			return nil, errors.New("network gone")
		}
	}
	return c.rt.RoundTrip(req)
}

// TestGarbledEventSweeps: versitygw v1.8.0 can send an upload's finished
// notification under another upload's key (or a garbled bucket). Such a
// record does not match the stored object, and finalize sweeps the staged
// uploads so the one it should have named is not lost; a record that
// matches finalizes its own upload only.
func TestGarbledEventSweeps(t *testing.T) {
	t.Parallel()
	r := newRig(t, defaultLimits())
	ctx := context.Background()
	c := r.env.Config
	var ups []string
	upload := func(n int) {
		for range n {
			ups = append(ups, r.upload(clip(t, testclip.Options{Seconds: 1 + float64(len(ups))/10, NoAudio: true}), map[string]string{"filename": "x.mp4"}))
		}
	}
	upload(3)
	etag := func(up string) string {
		info, err := r.st.Stat(ctx, c.UploadsBucket, up)
		if err != nil {
			t.Fatal(err)
		}
		return info.ETag
	}
	finalized := func(out []Outcome) map[string]bool {
		m := map[string]bool{}
		for _, o := range out {
			if o.Status == meta.Processing {
				m[o.Video] = true
			}
		}
		return m
	}

	// A matching record, then its redelivery: its upload only; the others stay staged.
	ev0 := r.eventOf(ups[0])
	for range 2 {
		out, err := r.f.HandleEvent(ctx, ev0)
		if got := finalized(out); err != nil || len(got) != 1 || !got[videoid.FromUpload(ups[0])] {
			t.Fatalf("matching event: %+v %v", out, err)
		}
	}
	if len(r.staged(ups[1])) == 0 {
		t.Fatal("a matching event swept the other uploads")
	}

	// ups[1]'s record under the key of ups[0], finalized already: the sweep finds ups[1] and ups[2].
	out, err := r.f.HandleEvent(ctx, notification(c.UploadsBucket, ups[0], etag(ups[1])))
	if got := finalized(out); err != nil || !got[videoid.FromUpload(ups[1])] || !got[videoid.FromUpload(ups[2])] {
		t.Fatalf("record under a finalized upload's key: %+v %v", out, err)
	}

	// ups[3]'s record under the key of ups[4], complete and staged: both become videos.
	upload(2)
	out, err = r.f.HandleEvent(ctx, notification(c.UploadsBucket, ups[4], etag(ups[3])))
	if got := finalized(out); err != nil || !got[videoid.FromUpload(ups[3])] || !got[videoid.FromUpload(ups[4])] {
		t.Fatalf("record under a staged upload's key: %+v %v", out, err)
	}

	// A record whose bucket name is garbled (the next request's path).
	upload(1)
	out, err = r.f.HandleEvent(ctx, notification(c.UploadsBucket[:len(c.UploadsBucket)-2]+"/v", ups[5][:10], etag(ups[5])))
	if got := finalized(out); err != nil || !got[videoid.FromUpload(ups[5])] {
		t.Fatalf("garbled bucket: %+v %v", out, err)
	}
	for _, up := range ups {
		if v := r.meta(videoid.FromUpload(up)); v.Status != meta.Processing {
			t.Errorf("video of %s: %s", up, v.Status)
		}
		if ks := r.staged(up); len(ks) != 0 {
			t.Errorf("%s still staged: %v", up, ks)
		}
	}
	if n := strings.Count(r.logs.String(), `"reconcile done"`); n != 3 {
		t.Errorf("%d sweeps, want 3 (one per untrusted record)", n)
	}
}

// TestClearingCutShortIsFinished: a finalize stopped after it removed the
// staged data but before the .info (which goes last) leaves the .info
// behind; the event's redelivery, or else the reconciler, removes it.
func TestClearingCutShortIsFinished(t *testing.T) {
	t.Parallel()
	r := newRig(t, defaultLimits())
	ctx := context.Background()
	c := r.env.Config
	up := r.upload(clip(t, testclip.Options{Seconds: 1, NoAudio: true}), map[string]string{"filename": "x.mp4"})
	rc, _, err := r.st.Get(ctx, c.UploadsBucket, up+".info", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	info, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	ev := r.eventOf(up)
	if out, err := r.f.HandleEvent(ctx, ev); err != nil || len(out) != 1 || out[0].Status != meta.Processing {
		t.Fatalf("finalize: %+v %v", out, err)
	}
	leave := func() {
		if _, err := r.st.PutBytes(ctx, c.UploadsBucket, up+".info", info, storage.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	leave()
	if out, err := r.f.HandleEvent(ctx, ev); err != nil || len(out) != 1 {
		t.Fatalf("redelivery: %+v %v", out, err)
	}
	if ks := r.staged(up); len(ks) != 0 {
		t.Errorf("after the redelivery: %v left", ks)
	}

	leave()
	if _, err := r.f.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if ks := r.staged(up); len(ks) != 0 {
		t.Errorf("after a reconcile: %v left", ks)
	}
	if n := len(r.jobs()); n != 2 {
		t.Errorf("%d jobs, want the 2 of the first finalize only", n)
	}
}

// A staged upload made by concatenation (tusd lets a final upload join any
// uploads, another user's included) or one of its parts never becomes a
// video, even a playable one; the reconciler expires it like an abandoned
// upload.
func TestConcatenationsNeverFinalized(t *testing.T) {
	t.Parallel()
	lim := defaultLimits()
	r := newRig(t, lim)
	ctx := context.Background()
	c := r.env.Config
	for _, kind := range []string{"IsFinal", "IsPartial"} {
		up := r.upload(clip(t, testclip.Options{Seconds: 1}), map[string]string{"filename": "x.mp4"})
		// What tusd writes for a concatenation: the same .info, flagged.
		rc, _, err := r.st.Get(ctx, c.UploadsBucket, up+".info", 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		var info map[string]any
		if err := json.NewDecoder(rc).Decode(&info); err != nil {
			t.Fatal(err)
		}
		rc.Close()
		info[kind] = true
		b, _ := json.Marshal(info)
		if _, err := r.st.PutBytes(ctx, c.UploadsBucket, up+".info", b, storage.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		out, err := r.f.Finalize(ctx, up)
		if err != nil || out.Skipped == "" || out.Status != "" {
			t.Errorf("%s: finalize %+v %v, want it skipped", kind, out, err)
		}
		if _, _, err := meta.NewStore(r.st, c.MediaBucket).Get(ctx, videoid.FromUpload(up)); !errors.Is(err, meta.ErrNotFound) {
			t.Errorf("%s: a video was made of it: %v", kind, err)
		}
	}
	r.f.o.Limits.ReconcileAge, r.f.o.Limits.Expiry = 0, 0 // every staged upload is old enough
	rep, err := r.f.Reconcile(ctx)
	if err != nil || len(rep.Expired) != 2 || len(rep.Finalized) != 0 {
		t.Fatalf("reconcile: %+v %v, want both expired", rep, err)
	}
}
