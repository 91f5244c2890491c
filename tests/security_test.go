package tests

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mieweb/pulsevault/shared/auth"
	"github.com/mieweb/pulsevault/shared/ingest/staging"
	"github.com/mieweb/pulsevault/shared/ingest/tusclient"
	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/playback/origin"
	"github.com/mieweb/pulsevault/shared/storage"
	"github.com/mieweb/pulsevault/shared/topology"
)

// Issue 15's attacks of one user on another's uploads and on the public
// routes, as a second user with a valid token of their own would make them
// against a public origin at base (shared/playback/origin as `pulsevault dev` runs
// it, or nginx): secondUserAttacks returns them as bad-input cases, each
// checking that nothing of the victim's upload was read, changed or copied.

// attackRig is what the attack cases need of the stack and the origin.
type attackRig struct {
	s        *ingestStack
	base     string // the public origin, e.g. https://127.0.0.1:8443
	client   *http.Client
	victim   string // the victim's JWT (s.token, clinician-42)
	attacker string // a second user's valid JWT
	tooLarge int    // the origin's answer to an oversized header (origin 431, nginx 400)
}

func newAttackRig(s *ingestStack, base string, client *http.Client, tooLarge int) *attackRig {
	cfg := s.env.Config
	other, err := auth.SignHS256([]byte(ingestSecret), cfg.JWTIssuer, cfg.JWTAudience, "clinician-99", nil, time.Hour)
	if err != nil {
		s.t.Fatal(err)
	}
	return &attackRig{s: s, base: base, client: client, victim: s.token, attacker: other, tooLarge: tooLarge}
}

// victimName is the victim's file name: PHI that must not reach the attacker.
const victimName = "Jane_Doe_MRN-4471923_wound.mp4"

// send makes one request to the origin (path raw, as the attacker typed
// it: not cleaned by the client) and returns the answer with its body read.
// nginx's rate limits answer 429 to the attack's pace: such a request is
// sent again once the limit lets it through.
func (a *attackRig) send(t *testing.T, method, path, bearer string, body string, hdr ...string) (*http.Response, string) {
	t.Helper()
	for {
		res, b := a.sendOnce(t, method, path, bearer, body, hdr...)
		if res.StatusCode != http.StatusTooManyRequests {
			return res, b
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (a *attackRig) sendOnce(t *testing.T, method, path, bearer string, body string, hdr ...string) (*http.Response, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, a.base+"/", rd)
	if err != nil {
		t.Fatal(err)
	}
	req.URL.Opaque = path
	req.Header.Set("Tus-Resumable", "1.0.0")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := a.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

// create makes an upload of 10 bytes and returns its id (Location's last
// segment).
func (a *attackRig) create(t *testing.T, bearer string, md map[string]string) string {
	t.Helper()
	res, body := a.send(t, http.MethodPost, "/api/upload/", bearer, "", "Upload-Length", "10", "Upload-Metadata", tusclient.EncodeMetadata(md))
	loc := res.Header.Get("Location")
	if res.StatusCode != http.StatusCreated || !strings.Contains(loc, "/api/upload/") {
		t.Fatalf("create: %d %q %s", res.StatusCode, loc, body)
	}
	return loc[strings.LastIndexByte(loc, '/')+1:]
}

// upload is one staged upload of the attack: its id and object id.
type upload struct{ id, obj string }

// victimUpload is the victim's upload, 5 of its 10 bytes in, named by PHI.
func (a *attackRig) victimUpload(t *testing.T) upload {
	t.Helper()
	id := a.create(t, a.victim, map[string]string{"filename": victimName, "filetype": "video/mp4"})
	if res, body := a.send(t, http.MethodPatch, "/api/upload/"+id, a.victim, "01234", "Upload-Offset", "0", "Content-Type", "application/offset+octet-stream"); res.StatusCode != http.StatusNoContent {
		t.Fatalf("victim's PATCH: %d %s", res.StatusCode, body)
	}
	obj, _, _ := strings.Cut(id, "+")
	return upload{id, obj}
}

// uploads counts the staged uploads (.info objects).
func (a *attackRig) uploads(t *testing.T) int {
	t.Helper()
	n := 0
	for o, err := range a.s.st.List(context.Background(), a.s.env.Config.UploadsBucket, "") {
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(o.Key, ".info") {
			n++
		}
	}
	return n
}

// intact fails t unless the victim's upload is as it was: .info, owner,
// name, offset 5 as the victim's own HEAD reads it.
func (a *attackRig) intact(t *testing.T, v upload) {
	t.Helper()
	info, err := staging.New(a.s.st, a.s.env.Config.UploadsBucket).Info(context.Background(), v.obj)
	if err != nil || info.Subject() != "clinician-42" || info.Client()["filename"] != victimName || info.ID != v.id {
		t.Errorf("the victim's upload changed: %+v %v", info, err)
		return
	}
	res, _ := a.send(t, http.MethodHead, "/api/upload/"+v.id, a.victim, "")
	if res.StatusCode != http.StatusOK || res.Header.Get("Upload-Offset") != "5" {
		t.Errorf("the victim's HEAD after the attack: %d offset %q, want 200 and 5", res.StatusCode, res.Header.Get("Upload-Offset"))
	}
}

// leaked reports whether an answer carries anything of the victim's upload.
func leaked(res *http.Response, body string) bool {
	name := base64.StdEncoding.EncodeToString([]byte(victimName))
	return strings.Contains(res.Header.Get("Upload-Metadata"), name) || strings.Contains(body, victimName) ||
		res.Header.Get("Upload-Offset") == "5" || res.Header.Get("Upload-Length") == "10"
}

// onVictim is an attack on a fresh victim upload by the second user, who
// has an upload of their own (mine) to borrow ids from. path and hdr may
// hold {victim}, {obj} (the victim's object id), {mine} and {mineobj}.
func (a *attackRig) onVictim(method, path, body string, hdr ...string) func(t *testing.T) int {
	return func(t *testing.T) int {
		before := a.uploads(t)
		v := a.victimUpload(t)
		mine := a.create(t, a.attacker, map[string]string{"filename": "mine.mp4"})
		mineObj, _, _ := strings.Cut(mine, "+")
		fill := strings.NewReplacer("{victim}", v.id, "{obj}", v.obj, "{mine}", mine, "{mineobj}", mineObj)
		var h []string
		for _, x := range hdr {
			h = append(h, fill.Replace(x))
		}
		res, rb := a.send(t, method, fill.Replace(path), a.attacker, body, h...)
		if leaked(res, rb) {
			t.Errorf("%s %s answered with the victim's upload: %v %q", method, path, res.Header, rb)
		}
		a.intact(t, v)
		if n := a.uploads(t); n != before+2 {
			t.Errorf("%d uploads staged after the attack, want %d (the victim's and mine)", n, before+2)
		}
		for _, u := range []struct{ id, bearer string }{{v.id, a.victim}, {mine, a.attacker}} {
			if res, _ := a.send(t, http.MethodDelete, "/api/upload/"+u.id, u.bearer, ""); res.StatusCode != http.StatusNoContent {
				t.Errorf("cleaning up %s: %d", u.id, res.StatusCode)
			}
		}
		return res.StatusCode
	}
}

// internalPath asks for a function's own endpoint through the origin: the
// answer must be the origin's refusal, never the function's metrics.
func (a *attackRig) internalPath(path string) func(t *testing.T) int {
	return func(t *testing.T) int {
		res, body := a.send(t, http.MethodGet, path, a.attacker, "")
		if strings.Contains(body, "# HELP") || strings.Contains(body, "go_goroutines") || body == "ok" {
			t.Errorf("GET %s answered the function's own endpoint: %d %.80q", path, res.StatusCode, body)
		}
		return res.StatusCode
	}
}

// secondUserAttacks are the attacks, with the answer the origin must give.
func secondUserAttacks(a *attackRig) []badCase {
	octet := "application/offset+octet-stream"
	var cs []badCase
	add := func(name string, want int, do func(t *testing.T) int) {
		cs = append(cs, badCase{name: "attack: " + name, want: want, do: do})
	}
	// Finding 1: the ownership check and tusd saw different uploads.
	paths := map[string]string{
		// The issue's: the check saw my object id (path.Base, cut at the
		// first '+'), s3store the victim's (cut at the last).
		"victim+junk/mine's object id": "/api/upload/{obj}+junk/{mineobj}",
		"victim+junk/mine":             "/api/upload/{obj}+junk/{mine}",
		"victim+x/.":                   "/api/upload/{obj}+x/.",
		"victim/.":                     "/api/upload/{victim}/.",
		"victim+x%2Fmine":              "/api/upload/{obj}+x%2F{mine}",
		"mine/../victim":               "/api/upload/{mine}/../{victim}",
		"victim+mp+mine":               "/api/upload/{victim}+{mine}",
		"victim's object id only (as finalize logs it)": "/api/upload/{obj}",
	}
	for name, p := range paths {
		add("HEAD "+name, 404, a.onVictim(http.MethodHead, p, ""))
		add("DELETE "+name, 404, a.onVictim(http.MethodDelete, p, ""))
		add("PATCH "+name, 404, a.onVictim(http.MethodPatch, p, "56789", "Upload-Offset", "5", "Content-Type", octet))
	}
	// The victim's id as is, by every method and by method override (a
	// POST with X-HTTP-Method-Override skipped every check before).
	add("HEAD the victim's upload", 404, a.onVictim(http.MethodHead, "/api/upload/{victim}", ""))
	add("GET the victim's upload", 404, a.onVictim(http.MethodGet, "/api/upload/{victim}", ""))
	add("DELETE by method override", 404, a.onVictim(http.MethodPost, "/api/upload/{victim}", "", "X-HTTP-Method-Override", "DELETE"))
	add("PATCH by method override", 404, a.onVictim(http.MethodPost, "/api/upload/{victim}", "56789", "X-HTTP-Method-Override", "PATCH", "Upload-Offset", "5", "Content-Type", octet))
	add("HEAD by method override", 400, a.onVictim(http.MethodPost, "/api/upload/{victim}", "", "X-HTTP-Method-Override", "HEAD"))
	add("POST to the victim's upload", 404, a.onVictim(http.MethodPost, "/api/upload/{victim}", "", "Upload-Length", "10"))
	add("creation-with-upload into the victim's upload", 404, a.onVictim(http.MethodPost, "/api/upload/{victim}", "56789", "Upload-Length", "10", "Content-Type", octet))
	// The IETF resumable-upload draft (off in tusd unless enabled): a HEAD in its dialect.
	add("HEAD in the IETF draft's dialect", 404, a.onVictim(http.MethodHead, "/api/upload/{victim}", "", "Upload-Draft-Interop-Version", "6"))
	// Deferred length: declaring the victim's length for it.
	add("declare the victim's length", 404, a.onVictim(http.MethodPatch, "/api/upload/{victim}", "", "Upload-Offset", "5", "Upload-Length", "5", "Content-Type", octet))

	// Finding 2: a final upload of the victim's bytes, owned by me.
	for name, concat := range map[string]string{
		"final of the victim's upload":          "final;/function/upload/{obj}+x",
		"final of the victim's upload (public)": "final;/api/upload/{victim}",
		"final of the victim's and mine":        "final;/function/upload/{victim} /function/upload/{mine}",
		"partial":                               "partial",
	} {
		add("Upload-Concat "+name, 400, a.onVictim(http.MethodPost, "/api/upload/", "", "Upload-Concat", concat, "Upload-Length", "10"))
	}

	// Finding 5: metadata that would make a meta.json nobody can read.
	add("233 KB Upload-Metadata", a.tooLarge, func(t *testing.T) int {
		res, _ := a.send(t, http.MethodPost, "/api/upload/", a.attacker, "", "Upload-Length", "10",
			"Upload-Metadata", tusclient.EncodeMetadata(map[string]string{"filename": strings.Repeat("a", 233<<10)}))
		return res.StatusCode
	})
	add("6 KB of metadata", 400, func(t *testing.T) int {
		res, _ := a.send(t, http.MethodPost, "/api/upload/", a.attacker, "", "Upload-Length", "10",
			"Upload-Metadata", tusclient.EncodeMetadata(map[string]string{"filename": strings.Repeat("a", 1000), "name": strings.Repeat("b", 1000),
				"kind": strings.Repeat("c", 1000), "checksum": strings.Repeat("d", 1000), "relatedTo": strings.Repeat("e", 1000)}))
		return res.StatusCode
	})
	add("metadata key not accepted", 400, func(t *testing.T) int {
		res, _ := a.send(t, http.MethodPost, "/api/upload/", a.attacker, "", "Upload-Length", "10",
			"Upload-Metadata", tusclient.EncodeMetadata(map[string]string{"filename": "x.mp4", "pulsevault-subject": "clinician-42"}))
		return res.StatusCode
	})

	// Finding 6: the functions' own endpoints under the public routes.
	media := 403 // the media route refuses what is not a token path
	for p, want := range map[string]int{
		"/media/metrics": media, "/media/_/health": media, "/media/_/metrics": media, "/media//metrics": media,
		"/api/videos/metrics": 404, "/api/videos/_/health": 404, "/api/videos//metrics": 404, "/api/videos/%6detrics": 404, "/api/videos/x/../metrics": 404,
		"/api/upload/metrics": 404, "/api/upload/_/health": 404, "/api/upload/%2fmetrics": 404,
		"/api/sign-url/metrics": 404, "/api/sign-url/_/health": 404,
	} {
		add("GET "+p, want, a.internalPath(p))
	}

	// upload-finalize's /reconcile and the gateway's paths are not public.
	for _, p := range []string{"/api/upload-finalize/reconcile", "/function/upload-finalize/reconcile", "/api/upload/../upload-finalize/reconcile"} {
		add("POST "+p, 404, func(t *testing.T) int {
			res, _ := a.send(t, http.MethodPost, p, a.attacker, "")
			return res.StatusCode
		})
	}

	// Finding 12: a client's Forwarded host never reaches Location.
	add("Forwarded host into Location", 201, func(t *testing.T) int {
		res, _ := a.send(t, http.MethodPost, "/api/upload/", a.attacker, "", "Upload-Length", "10", "Forwarded", "host=evil.example;proto=https",
			"X-Forwarded-Host", "evil.example")
		if loc := res.Header.Get("Location"); strings.Contains(loc, "evil") || !strings.HasPrefix(loc, a.base+"/api/upload/") {
			t.Errorf("Location %q, want one on %s", loc, a.base)
		}
		if loc := res.Header.Get("Location"); loc != "" {
			id := loc[strings.LastIndexByte(loc, '/')+1:]
			a.send(t, http.MethodDelete, "/api/upload/"+id, a.attacker, "")
		}
		return res.StatusCode
	})
	return cs
}

// publicOrigin serves shared/playback/origin in front of the stack's gateway, as
// `pulsevault dev` does (its Server, so its header bound too).
func publicOrigin(t *testing.T, s *ingestStack) string {
	t.Helper()
	h, err := origin.Handler(origin.Options{GatewayURL: s.gateway, Store: s.env.Config.S3Endpoint})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(nil)
	srv.Config = origin.Server(h, nil)
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestSecondUserAttacksThroughNginx makes the attacks TestBadInputCorpus
// makes through shared/playback/origin through the shipped nginx config in front
// of the real stack instead, and checks the feed survives a meta.json that
// does not decode.
func TestSecondUserAttacksThroughNginx(t *testing.T) {
	s := startIngestStack(t)
	s.deployPlayback()
	site := renderNginx(t, strings.TrimPrefix(s.gateway, "http://"), s.env.Config.S3Endpoint)
	site.start(t)
	pem, err := os.ReadFile(site.certFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	a := newAttackRig(s, "https://"+site.https, client, http.StatusBadRequest)
	good := plantUndecodableMeta(t, a)
	for _, c := range secondUserAttacks(a) {
		t.Run(c.name, func(t *testing.T) {
			if code := c.do(t); code != c.want {
				t.Errorf("status %d, want %d", code, c.want)
			}
		})
	}
	feedSurvives(t, a, good)
}

// plantUndecodableMeta stores one meta.json over meta.MaxSize (what a
// 233 KB Upload-Metadata made before it was bounded) and one that is not
// JSON, beside a good video of the victim's, and returns the good one's id.
// Planted before the videos function first lists, its first scan reads
// them (a scan that failed on them answered 502 for everyone).
func plantUndecodableMeta(t *testing.T, a *attackRig) string {
	t.Helper()
	ctx := context.Background()
	st, bucket := a.s.st, a.s.env.Config.MediaBucket
	good := uuid.NewString()
	if err := meta.NewStore(st, bucket).Create(ctx, &meta.Video{ID: good, Status: meta.Processing, Uploader: "clinician-42", Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	for _, b := range [][]byte{
		[]byte(`{"id":"` + uuid.NewString() + `","uploader":"clinician-99","client":{"filename":"` + strings.Repeat("a", meta.MaxSize) + `"}}`),
		[]byte("not json"),
	} {
		if _, err := st.PutBytes(ctx, bucket, topology.MetaKey(uuid.NewString()), b, storage.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return good
}

// feedSurvives checks /api/videos still answers 200, with the good video
// for its uploader and without it for the second user.
func feedSurvives(t *testing.T, a *attackRig, good string) {
	t.Helper()
	for _, who := range []string{a.victim, a.attacker} {
		res, body := a.send(t, http.MethodGet, "/api/videos?limit=100", who, "")
		if res.StatusCode != http.StatusOK {
			t.Fatalf("GET /api/videos beside undecodable meta.json: %d %s", res.StatusCode, body)
		}
		if listed := strings.Contains(body, good); listed != (who == a.victim) {
			t.Errorf("the good video listed: %v for %s, want it for its uploader only: %s", listed, map[bool]string{true: "the uploader", false: "the second user"}[who == a.victim], body)
		}
	}
}

// nginx serves the store's bytes for an X-Accel-Redirect from the media
// function only. No real function but media sends one, so the gateway here
// is a stub that sends one for every path (nginx and the store path are
// real config); from any other route the header is neither followed nor
// passed on.
func TestNginxHonoursAccelRedirectFromMediaOnly(t *testing.T) {
	t.Parallel()
	var storeHits atomic.Int64
	store := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		storeHits.Add(1)
		io.WriteString(w, "bytes of the store")
	}))
	defer store.Close()
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Accel-Redirect", "/_pulsevault_s3/pulse-media/videos/v/original.mp4?X-Amz-Signature=x")
		io.WriteString(w, "function")
	}))
	defer gw.Close()
	site := renderNginx(t, strings.TrimPrefix(gw.URL, "http://"), store.URL)
	site.start(t)
	pem, err := os.ReadFile(site.certFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}}}
	for _, p := range []string{"/api/videos", "/api/videos/" + uuid.NewString(), "/api/upload/", "/api/sign-url", "/api/events",
		"/api/pairings", "/pulsevault/capabilities", "/pulsevault/upload/x"} {
		code, hdr, body := get(t, client, "https://"+site.https+p)
		if string(body) != "function" || hdr.Get("X-Accel-Redirect") != "" {
			t.Errorf("GET %s: %d %q X-Accel-Redirect %q, want the function's own answer", p, code, body, hdr.Get("X-Accel-Redirect"))
		}
	}
	if n := storeHits.Load(); n != 0 {
		t.Errorf("the store was read %d times for routes other than media", n)
	}
	if code, _, body := get(t, client, "https://"+site.https+"/media/TOK/videos/v/poster.jpg"); code != 200 || string(body) != "bytes of the store" {
		t.Errorf("media offload: %d %q", code, body)
	}
	// The Pulse artifact route serves its bytes from the store too.
	if code, _, body := get(t, client, "https://"+site.https+"/pulsevault/artifacts/"+uuid.NewString()+"?token=x"); code != 200 || string(body) != "bytes of the store" {
		t.Errorf("Pulse artifact offload: %d %q", code, body)
	}
}
