package tusupload

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/tus/tusd/v2/pkg/handler"

	"github.com/mieweb/pulsevault/shared/auth"
	"github.com/mieweb/pulsevault/shared/bus"
	"github.com/mieweb/pulsevault/shared/bus/lease"
	"github.com/mieweb/pulsevault/shared/faas/bootstrap"
	"github.com/mieweb/pulsevault/shared/ingest/staging"
	"github.com/mieweb/pulsevault/shared/ingest/tusclient"
	"github.com/mieweb/pulsevault/shared/platform/config"
	"github.com/mieweb/pulsevault/shared/storage"
	"github.com/mieweb/pulsevault/shared/testutil/testenv"
	"github.com/mieweb/pulsevault/shared/topology"
)

var secret = []byte("tusupload-test-secret-0123456789abcdef")

func TestSettings(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	l, err := LoadSettings(env(nil))
	if err != nil || l.MaxBytes != 4<<30 || l.BasePath != "/function/upload/" || len(l.CORSOrigins) != 2 || l.Expiry != 24*time.Hour {
		t.Fatalf("defaults: %+v %v", l, err)
	}
	l, err = LoadSettings(env(map[string]string{"UPLOAD_CORS_ORIGINS": "none", "UPLOAD_BASE_PATH": "/api/upload"}))
	if err != nil || len(l.CORSOrigins) != 0 || l.BasePath != "/api/upload/" {
		t.Fatalf("none: %+v %v", l, err)
	}
	for k, v := range map[string]string{
		"UPLOAD_MAX_BYTES": "-1", "UPLOAD_BASE_PATH": "relative", "UPLOAD_CORS_ORIGINS": "vitals.example.org",
		"UPLOAD_EXPIRY": "5s",
	} {
		_, err := LoadSettings(env(map[string]string{k: v}))
		if err == nil || !strings.Contains(err.Error(), k) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s=%s: %v", k, v, err)
		}
	}
}

type rig struct {
	url   string
	st    *storage.Store
	env   *testenv.Env
	token string
}

func newRig(t *testing.T) *rig {
	t.Helper()
	env := testenv.Start(t)
	c := env.Config
	st, err := storage.FromConfig(c)
	if err != nil {
		t.Fatal(err)
	}
	b, err := bus.Connect(c.NATSURL, "tusupload-test")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := bootstrap.Run(context.Background(), c, st, b, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	h := newHandler(t, c, st, nil)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	tok, err := auth.SignHS256(secret, c.JWTIssuer, c.JWTAudience, "nurse-1", nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &rig{url: srv.URL, st: st, env: env, token: tok}
}

// newHandler is one replica of the endpoint; locks nil keeps its tus locks
// in process.
func newHandler(t *testing.T, c config.Config, st *storage.Store, locks *lease.Bucket) http.Handler {
	t.Helper()
	v, err := auth.New(auth.Options{HS256Secret: secret, Issuer: c.JWTIssuer, Audience: c.JWTAudience})
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(Options{S3Endpoint: c.S3Endpoint, S3Region: c.S3Region, S3AccessKey: c.S3AccessKey, S3SecretKey: c.S3SecretKey,
		Bucket: c.UploadsBucket, Staged: staging.New(st, c.UploadsBucket), Verifier: v, Locks: locks,
		Limits: Limits{MaxBytes: 1 << 20, BasePath: "/function/upload/", CORSOrigins: []string{"http://vitals.test"}, Expiry: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func (r *rig) do(t *testing.T, method, path string, body io.Reader, hdr ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, r.url+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Tus-Resumable", "1.0.0")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res
}

func TestUploadEndpoint(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	c := r.env.Config
	expired, _ := auth.SignHS256(secret, c.JWTIssuer, c.JWTAudience, "nurse-1", nil, -time.Hour)
	otherKey, _ := auth.SignHS256([]byte("another-secret-another-secret-0123456789"), c.JWTIssuer, c.JWTAudience, "nurse-1", nil, time.Hour)
	for name, auth := range map[string]string{"no token": "", "expired": "Bearer " + expired, "other key": "Bearer " + otherKey, "garbage": "Bearer abc"} {
		res := r.do(t, http.MethodPost, "/", nil, "Upload-Length", "10", "Authorization", auth)
		if res.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s: create answered %d, want 401", name, res.StatusCode)
		}
	}
	if n := countObjects(t, r); n != 0 {
		t.Fatalf("refused creations left %d objects", n)
	}

	// Over the limit: 413 at creation.
	if res := r.do(t, http.MethodPost, "/", nil, "Upload-Length", "2097152", "Authorization", "Bearer "+r.token); res.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("over the limit: %d, want 413", res.StatusCode)
	}

	// A client cannot name the owner: the key is not one it may send.
	forged := tusclient.EncodeMetadata(map[string]string{"filename": "Jane Doe wound.mp4", "pulsevault-subject": "forged"})
	if res := r.do(t, http.MethodPost, "/", nil, "Upload-Length", "5", "Upload-Metadata", forged, "Authorization", "Bearer "+r.token); res.StatusCode != http.StatusBadRequest {
		t.Errorf("create with a forged subject: %d, want 400", res.StatusCode)
	}

	// Creation through a proxy that announces host, scheme and prefix.
	md := tusclient.EncodeMetadata(map[string]string{"filename": "Jane Doe wound.mp4"})
	res := r.do(t, http.MethodPost, "/", nil, "Upload-Length", "5", "Upload-Metadata", md, "Authorization", "Bearer "+r.token,
		"X-Forwarded-Host", "pulse.example.org", "X-Forwarded-Proto", "https", "X-Forwarded-Prefix", "/api/upload")
	loc := res.Header.Get("Location")
	if res.StatusCode != http.StatusCreated || !strings.HasPrefix(loc, "https://pulse.example.org/api/upload/") || res.Header.Get("Upload-Expires") == "" {
		t.Fatalf("create via proxy: %d Location %q Upload-Expires %q", res.StatusCode, loc, res.Header.Get("Upload-Expires"))
	}
	if strings.Contains(loc, "Jane") {
		t.Fatal("file name in the upload URL")
	}
	id := loc[strings.LastIndexByte(loc, '/')+1:]
	// Without forwarding headers the gateway path is used.
	res = r.do(t, http.MethodPost, "/", nil, "Upload-Length", "5", "Authorization", "Bearer "+r.token)
	if l := res.Header.Get("Location"); !strings.HasPrefix(l, r.url+"/function/upload/") {
		t.Fatalf("plain Location %q", l)
	}

	// Data needs the token too.
	if res := r.do(t, http.MethodPatch, "/"+id, strings.NewReader("hello"), "Upload-Offset", "0", "Content-Type", "application/offset+octet-stream"); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("PATCH without token: %d", res.StatusCode)
	}
	if res := r.do(t, http.MethodPatch, "/"+id, strings.NewReader("hello"), "Upload-Offset", "0", "Content-Type", "application/offset+octet-stream", "Authorization", "Bearer "+r.token); res.StatusCode != http.StatusNoContent {
		t.Fatalf("PATCH: %d", res.StatusCode)
	}
	if res := r.do(t, http.MethodGet, "/"+id, nil, "Authorization", "Bearer "+r.token); res.StatusCode == http.StatusOK {
		t.Fatal("downloads are enabled")
	}

	// The subject is the token's; the client's metadata stays in .info only.
	obj := strings.SplitN(id, "+", 2)[0]
	info, err := staging.New(r.st, c.UploadsBucket).Info(context.Background(), obj)
	if err != nil {
		t.Fatal(err)
	}
	if info.Subject() != "nurse-1" || info.Client()["filename"] != "Jane Doe wound.mp4" || info.Size != 5 {
		t.Fatalf("info: %+v", info)
	}
	oi, err := r.st.Client().StatObject(context.Background(), c.UploadsBucket, obj, minio.StatObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := json.Marshal(oi.UserMetadata); strings.Contains(string(b), "Jane") || len(oi.UserMetadata) != 0 {
		t.Fatalf("client metadata reached the object's S3 metadata: %s", b)
	}

	// CORS: the Vitals origin is allowed, others are not.
	res = r.do(t, http.MethodOptions, "/", nil, "Origin", "http://vitals.test", "Access-Control-Request-Method", "POST")
	if res.Header.Get("Access-Control-Allow-Origin") != "http://vitals.test" {
		t.Errorf("preflight from Vitals: %d %v", res.StatusCode, res.Header)
	}
	res = r.do(t, http.MethodOptions, "/", nil, "Origin", "http://evil.test", "Access-Control-Request-Method", "POST")
	if res.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight from another origin allowed: %v", res.Header)
	}

	// Another subject's valid token cannot see, extend or end the upload: the
	// same 404 as an id that does not exist, so ids cannot be probed.
	other, _ := auth.SignHS256(secret, c.JWTIssuer, c.JWTAudience, "nurse-2", nil, time.Hour)
	for _, m := range []string{http.MethodHead, http.MethodPatch, http.MethodDelete} {
		var body io.Reader
		if m == http.MethodPatch {
			body = strings.NewReader("x")
		}
		res := r.do(t, m, "/"+id, body, "Upload-Offset", "5", "Content-Type", "application/offset+octet-stream", "Authorization", "Bearer "+other)
		unknown := r.do(t, m, "/0123456789abcdef+x", body, "Upload-Offset", "5", "Content-Type", "application/offset+octet-stream", "Authorization", "Bearer "+other)
		if res.StatusCode != http.StatusNotFound || unknown.StatusCode != http.StatusNotFound {
			t.Errorf("%s by another subject: %d (unknown id: %d), want 404 for both", m, res.StatusCode, unknown.StatusCode)
		}
	}
	if res := r.do(t, http.MethodHead, "/"+id, nil, "Authorization", "Bearer "+r.token); res.StatusCode != http.StatusOK || res.Header.Get("Upload-Offset") != "5" {
		t.Fatalf("HEAD by the owner after the others' attempts: %d offset %q", res.StatusCode, res.Header.Get("Upload-Offset"))
	}

	// Termination removes everything the upload staged.
	if res := r.do(t, http.MethodDelete, "/"+id, nil, "Authorization", "Bearer "+r.token); res.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE: %d", res.StatusCode)
	}
	for o := range r.st.List(context.Background(), c.UploadsBucket, obj) {
		t.Errorf("left after termination: %s", o.Key)
	}
}

func countObjects(t *testing.T, r *rig) int {
	n := 0
	for _, err := range r.st.List(context.Background(), r.env.Config.UploadsBucket, "") {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	return n
}

// Two replicas share upload locks through NATS: a client that reconnects to
// replica B while its old PATCH still hangs on replica A gets the offset A
// saved — B asks A to let go and waits — not a stale one read beside it.
func TestReplicasShareUploadLocks(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	c := r.env.Config
	b, err := bus.Connect(c.NATSURL, "tusupload-locks")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	var urls [2]string
	for i := range urls {
		locks, err := lease.Open(t.Context(), b.JetStream(), topology.KVUploadLocks, "test", 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(newHandler(t, c, r.st, locks))
		t.Cleanup(srv.Close)
		urls[i] = srv.URL
	}
	replicaA, replicaB := &rig{url: urls[0], token: r.token}, &rig{url: urls[1], token: r.token}
	auth := "Bearer " + r.token

	res := replicaA.do(t, http.MethodPost, "/", nil, "Upload-Length", "10", "Authorization", auth)
	loc := res.Header.Get("Location")
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("create: %d", res.StatusCode)
	}
	id := loc[strings.LastIndexByte(loc, '/')+1:]

	// A PATCH on A that sends 3 bytes and then stalls, holding the lock.
	pr, pw := io.Pipe()
	patched := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPatch, urls[0]+"/"+id, pr)
		req.Header.Set("Tus-Resumable", "1.0.0")
		req.Header.Set("Upload-Offset", "0")
		req.Header.Set("Content-Type", "application/offset+octet-stream")
		req.Header.Set("Authorization", auth)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			patched <- -1
			return
		}
		res.Body.Close()
		patched <- res.StatusCode
	}()
	if _, err := pw.Write([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // let A read and buffer them

	res = replicaB.do(t, http.MethodHead, "/"+id, nil, "Authorization", auth)
	if res.StatusCode != http.StatusOK || res.Header.Get("Upload-Offset") != "3" {
		t.Fatalf("HEAD on B while A holds the upload: %d offset %q, want 200 offset 3", res.StatusCode, res.Header.Get("Upload-Offset"))
	}
	t.Logf("stalled PATCH on A ended with %d", <-patched)
	pw.Close()

	if res := replicaB.do(t, http.MethodPatch, "/"+id, strings.NewReader("defghijklm"[:7]), "Upload-Offset", "3",
		"Content-Type", "application/offset+octet-stream", "Authorization", auth); res.StatusCode != http.StatusNoContent {
		t.Fatalf("resume on B: %d", res.StatusCode)
	}
	rc, _, err := r.st.Get(t.Context(), c.UploadsBucket, strings.SplitN(id, "+", 2)[0], 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if got, _ := io.ReadAll(rc); string(got) != "abcdefghij" {
		t.Fatalf("stored %q, want abcdefghij", got)
	}
}

// A PATCH sent chunked (as gateways forward bodies) that carries more than
// the upload takes gets 413 and leaves the upload incomplete and
// resumable: it must not be finished with the first bytes and finalized.
func TestChunkedPatchPastLengthLeavesUploadIncomplete(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	auth := "Bearer " + r.token
	create := func() string {
		res := r.do(t, http.MethodPost, "/", nil, "Upload-Length", "10", "Authorization", auth)
		if res.StatusCode != http.StatusCreated {
			t.Fatalf("create: %d", res.StatusCode)
		}
		loc := res.Header.Get("Location")
		return loc[strings.LastIndexByte(loc, '/')+1:]
	}
	chunked := func(id, offset, body string) *http.Response {
		// An io.Reader of unknown length: net/http sends it chunked.
		return r.do(t, http.MethodPatch, "/"+id, io.MultiReader(strings.NewReader(body)), "Upload-Offset", offset,
			"Content-Type", "application/offset+octet-stream", "Authorization", auth)
	}
	offset := func(id string) string {
		return r.do(t, http.MethodHead, "/"+id, nil, "Authorization", auth).Header.Get("Upload-Offset")
	}

	id := create()
	if res := chunked(id, "0", strings.Repeat("x", 64)); res.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("chunked PATCH of 64 bytes into 10: %d, want 413", res.StatusCode)
	}
	if o := offset(id); o == "10" {
		t.Fatal("the over-long chunked PATCH completed the upload")
	}
	// Resumable: the client sends the right bytes from where the server is.
	o := offset(id)
	n, _ := strconv.Atoi(o)
	if res := chunked(id, o, "0123456789"[n:]); res.StatusCode != http.StatusNoContent || offset(id) != "10" {
		t.Fatalf("resume after 413: %d offset %s", res.StatusCode, offset(id))
	}

	// Past the length in a later PATCH, too.
	id = create()
	if res := chunked(id, "0", "01234"); res.StatusCode != http.StatusNoContent {
		t.Fatalf("first half: %d", res.StatusCode)
	}
	if res := chunked(id, "5", "56789-and-more"); res.StatusCode != http.StatusRequestEntityTooLarge || offset(id) == "10" {
		t.Fatalf("second PATCH past the length: %d offset %s", res.StatusCode, offset(id))
	}
	// Exactly the length, chunked: accepted and complete.
	id = create()
	if res := chunked(id, "0", "0123456789"); res.StatusCode != http.StatusNoContent || offset(id) != "10" {
		t.Fatalf("exact chunked PATCH: %d offset %s", res.StatusCode, offset(id))
	}
}

// A replica killed after storing an upload's last bytes but before tusd
// finished it leaves the multipart upload open: no object, no event, no
// video, while HEAD says every byte is in. The client's HEAD finishes it.
func TestHeadFinishesAnUploadLeftUnfinished(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	c := r.env.Config
	h := newHandler(t, c, r.st, nil).(*tusHandler)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	replica := &rig{url: srv.URL, token: r.token}

	// What the dead replica did: create the upload, store all its bytes,
	// and never call FinishUpload.
	ctx := t.Context()
	up, err := h.store.NewUpload(ctx, handler.FileInfo{Size: 10, MetaData: handler.MetaData{staging.SubjectKey: "nurse-1"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := up.WriteChunk(ctx, 0, strings.NewReader("0123456789")); err != nil {
		t.Fatal(err)
	}
	info, err := up.GetInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	obj := strings.SplitN(info.ID, "+", 2)[0]
	if _, err := r.st.Stat(ctx, c.UploadsBucket, obj); err == nil {
		t.Fatal("setup: the object exists before the upload was finished")
	}

	res := replica.do(t, http.MethodHead, "/"+info.ID, nil, "Authorization", "Bearer "+r.token)
	if res.StatusCode != http.StatusOK || res.Header.Get("Upload-Offset") != "10" {
		t.Fatalf("HEAD: %d offset %q", res.StatusCode, res.Header.Get("Upload-Offset"))
	}
	rc, _, err := r.st.Get(ctx, c.UploadsBucket, obj, 0, -1)
	if err != nil {
		t.Fatalf("after HEAD the upload is still unfinished: %v", err)
	}
	defer rc.Close()
	if b, _ := io.ReadAll(rc); string(b) != "0123456789" {
		t.Fatalf("finished object holds %q", b)
	}
	// A second HEAD on the finished upload is answered as before.
	if res := replica.do(t, http.MethodHead, "/"+info.ID, nil, "Authorization", "Bearer "+r.token); res.StatusCode != http.StatusOK || res.Header.Get("Upload-Offset") != "10" {
		t.Fatalf("second HEAD: %d offset %q", res.StatusCode, res.Header.Get("Upload-Offset"))
	}
}
