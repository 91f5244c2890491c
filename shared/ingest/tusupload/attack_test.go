package tusupload

import (
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mieweb/pulsevault/shared/auth"
	"github.com/mieweb/pulsevault/shared/ingest/staging"
	"github.com/mieweb/pulsevault/shared/ingest/tusclient"
)

// victimUpload is an upload of nurse-1 (r.token) holding 5 of its 10
// bytes, with a patient's name as its file name.
type victimUpload struct {
	id, obj string // upload id (Location's last segment) and object id
}

const victimName = "Jane Doe DOB 1970-01-01 wound.mp4"

func (r *rig) victim(t *testing.T) victimUpload {
	t.Helper()
	res := r.do(t, http.MethodPost, "/", nil, "Upload-Length", "10", "Authorization", "Bearer "+r.token,
		"Upload-Metadata", tusclient.EncodeMetadata(map[string]string{"filename": victimName}))
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("victim's create: %d", res.StatusCode)
	}
	loc := res.Header.Get("Location")
	id := loc[strings.LastIndexByte(loc, '/')+1:]
	if res := r.do(t, http.MethodPatch, "/"+id, strings.NewReader("01234"), "Upload-Offset", "0",
		"Content-Type", "application/offset+octet-stream", "Authorization", "Bearer "+r.token); res.StatusCode != http.StatusNoContent {
		t.Fatalf("victim's PATCH: %d", res.StatusCode)
	}
	obj, _, _ := strings.Cut(id, "+")
	return victimUpload{id: id, obj: obj}
}

// intact fails t unless the victim's upload is still whole, the victim's
// own HEAD still answers offset 5, and uploads are staged in all.
func (r *rig) intact(t *testing.T, v victimUpload, uploads int) {
	t.Helper()
	info, err := staging.New(r.st, r.env.Config.UploadsBucket).Info(context.Background(), v.obj)
	if err != nil {
		t.Fatalf("the victim's .info: %v", err)
	}
	if info.Subject() != "nurse-1" || info.Client()["filename"] != victimName || info.ID != v.id {
		t.Fatalf("the victim's .info changed: %+v", info)
	}
	res := r.do(t, http.MethodHead, "/"+v.id, nil, "Authorization", "Bearer "+r.token)
	if res.StatusCode != http.StatusOK || res.Header.Get("Upload-Offset") != "5" {
		t.Fatalf("the victim's HEAD: %d offset %q, want 200 and 5", res.StatusCode, res.Header.Get("Upload-Offset"))
	}
	if n := countUploads(t, r); n != uploads {
		t.Fatalf("%d uploads staged, want %d", n, uploads)
	}
}

// countUploads counts .info objects in the uploads bucket.
func countUploads(t *testing.T, r *rig) int {
	t.Helper()
	n := 0
	for o, err := range r.st.List(context.Background(), r.env.Config.UploadsBucket, "") {
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(o.Key, ".info") {
			n++
		}
	}
	return n
}

// emptyBucket removes every staged upload.
func emptyBucket(t *testing.T, r *rig) {
	t.Helper()
	ctx := context.Background()
	for _, err := range r.st.List(ctx, r.env.Config.UploadsBucket, "") {
		if err != nil {
			t.Fatal(err)
		}
	}
	ups, err := staging.New(r.st, r.env.Config.UploadsBucket).List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range ups {
		if err := staging.New(r.st, r.env.Config.UploadsBucket).Remove(ctx, u.ID); err != nil {
			t.Fatal(err)
		}
	}
}

// leaks reports whether a response carries anything of the victim's upload.
func leaks(res *http.Response) bool {
	md := res.Header.Get("Upload-Metadata")
	enc := base64.StdEncoding.EncodeToString([]byte(victimName))
	return strings.Contains(md, enc) || res.Header.Get("Upload-Offset") == "5" || res.Header.Get("Upload-Length") == "10"
}

// A second user with a valid token of their own, who knows the victim's
// upload id (it is in access logs and in finalize's logs), can neither
// read, extend, end nor copy the victim's upload, whatever shape of path
// or protocol extension they try. Each attempt leaves the victim's upload
// whole and answers as for an unknown upload (or refuses the request).
func TestSecondUserCannotReachAnotherUpload(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	c := r.env.Config
	other, _ := auth.SignHS256(secret, c.JWTIssuer, c.JWTAudience, "nurse-2", nil, time.Hour)
	bearer := "Bearer " + other
	octet := "application/offset+octet-stream"

	// mine creates one upload of nurse-2's and returns its id.
	mine := func(t *testing.T) string {
		t.Helper()
		res := r.do(t, http.MethodPost, "/", nil, "Upload-Length", "10", "Authorization", bearer)
		if res.StatusCode != http.StatusCreated {
			t.Fatalf("second user's create: %d", res.StatusCode)
		}
		loc := res.Header.Get("Location")
		return loc[strings.LastIndexByte(loc, '/')+1:]
	}
	type attempt struct {
		name, method string
		path         func(v victimUpload, mine string) string
		body         string
		hdr          []string
	}
	// Paths naming the victim's upload v, given my own upload id m.
	paths := map[string]func(v victimUpload, m string) string{
		"victim+junk/mine":            func(v victimUpload, m string) string { return "/" + v.obj + "+junk/" + m },
		"victim+junk/mine's object":   func(v victimUpload, m string) string { return "/" + v.obj + "+junk/" + m[:strings.IndexByte(m, '+')] },
		"victim+x/.":                  func(v victimUpload, m string) string { return "/" + v.obj + "+x/." },
		"victim+mp/.":                 func(v victimUpload, m string) string { return "/" + v.id + "/." },
		"victim+x%2Fmine":             func(v victimUpload, m string) string { return "/" + v.obj + "+x%2F" + m },
		"victim+mp/":                  func(v victimUpload, m string) string { return "/" + v.id + "/" },
		"victim id as is":             func(v victimUpload, m string) string { return "/" + v.id },
		"victim+mp+mine":              func(v victimUpload, m string) string { return "/" + v.id + "+" + m },
		"mine/../victim":              func(v victimUpload, m string) string { return "/" + m + "/../" + v.id },
		"mine/victim":                 func(v victimUpload, m string) string { return "/" + m + "/" + v.id },
		"victim object id, mine's mp": func(v victimUpload, m string) string { return "/" + v.obj + "+" + m[strings.IndexByte(m, '+')+1:] },
		"victim object id only":       func(v victimUpload, m string) string { return "/" + v.obj },
	}
	root := func(victimUpload, string) string { return "/" }
	var attempts []attempt
	for name, p := range paths {
		attempts = append(attempts,
			attempt{name: "HEAD " + name, method: http.MethodHead, path: p},
			attempt{name: "PATCH " + name, method: http.MethodPatch, path: p, body: "56789", hdr: []string{"Upload-Offset", "5", "Content-Type", octet}},
			attempt{name: "DELETE " + name, method: http.MethodDelete, path: p},
			attempt{name: "GET " + name, method: http.MethodGet, path: p},
			// tusd turns a POST with X-HTTP-Method-Override into that method.
			attempt{name: "POST as HEAD " + name, method: http.MethodPost, path: p, hdr: []string{"X-HTTP-Method-Override", "HEAD"}},
			attempt{name: "POST as PATCH " + name, method: http.MethodPost, path: p, body: "56789", hdr: []string{"X-HTTP-Method-Override", "PATCH", "Upload-Offset", "5", "Content-Type", octet}},
			attempt{name: "POST as DELETE " + name, method: http.MethodPost, path: p, hdr: []string{"X-HTTP-Method-Override", "DELETE"}},
			attempt{name: "POST " + name, method: http.MethodPost, path: p, hdr: []string{"Upload-Length", "10"}},
		)
	}
	// Concatenation: a final upload of the victim's bytes owned by me.
	// (The header names the victim's upload; the placeholders are filled in below.)
	for _, ref := range []string{"/function/upload/{id}", "/function/upload/{obj}+x", "{id}", "/api/upload/{id} /function/upload/{mine}"} {
		attempts = append(attempts, attempt{name: "concat final of " + ref, method: http.MethodPost, path: root, hdr: []string{"Upload-Concat", "final;" + ref}})
	}
	attempts = append(attempts,
		attempt{name: "concat partial", method: http.MethodPost, path: root, hdr: []string{"Upload-Concat", "partial", "Upload-Length", "10"}},
		// Deferred length: declaring the length of the victim's upload.
		attempt{name: "declare the victim's length", method: http.MethodPatch, path: paths["victim id as is"],
			hdr: []string{"Upload-Offset", "5", "Upload-Length", "5", "Content-Type", octet}},
	)

	for _, a := range attempts {
		t.Run(a.name, func(t *testing.T) {
			v, m := r.victim(t), mine(t)
			defer emptyBucket(t, r) // each attempt starts from an empty bucket
			var body io.Reader
			if a.body != "" {
				body = strings.NewReader(a.body)
			}
			fill := strings.NewReplacer("{id}", v.id, "{obj}", v.obj, "{mine}", m)
			hdr := []string{"Authorization", bearer}
			for _, h := range a.hdr {
				hdr = append(hdr, fill.Replace(h))
			}
			p := a.path(v, m)
			res := r.do(t, a.method, p, body, hdr...)
			if res.StatusCode < 400 || res.StatusCode >= 500 || leaks(res) {
				t.Errorf("%s %s: %d %v, want a 4xx that says nothing of the victim's upload", a.method, p, res.StatusCode, res.Header)
			}
			r.intact(t, v, 2)
		})
	}
}

// uploadID reduces a path to tusd's id only when that id is one s3store
// could have made; every odd shape names no upload.
func TestUploadID(t *testing.T) {
	t.Parallel()
	obj := "0123456789abcdef0123456789abcdef"
	good := obj + "+e87220b2-921f-405e-916e-df81f5fe4c4f"
	for _, c := range []struct {
		path, id string // id "" means refused
	}{
		{"/" + good, good},
		{"/" + good + "/", good},   // tusd trims trailing slashes too
		{"//" + good + "//", good}, // and repeated ones
		{good, good},
		{"/" + obj + "+ZDU5Y2Y0NzAtMGUzMi00YTQx", obj + "+ZDU5Y2Y0NzAtMGUzMi00YTQx"}, // MinIO's shape (base64url)
		{"/" + obj + "+2~a.b_c", obj + "+2~a.b_c"},                                   // Ceph's
		{"", ""},
		{"/", ""},
		{"//", ""},
		{"/" + obj, ""},                         // no multipart id
		{"/" + obj + "+", ""},                   // empty multipart id
		{"/+" + "x", ""},                        // empty object id
		{"/a+b/c", ""},                          // a slash: tusd's id would be "a+b/c"
		{"/a+b/.", ""},                          // the dot tusd does not clean away
		{"/" + good + "/.", ""},                 // the same with a real id
		{"/" + obj + "+x/" + good, ""},          // victim+junk/mine
		{"/" + good + "/../" + good, ""},        // dot-dot
		{"/../" + good, ""},                     // leading dot-dot
		{"/" + good + "+" + good, ""},           // a second '+': s3store splits at the last
		{"/a+b+c", ""},                          // likewise
		{"/" + obj + "+x%2F" + good, ""},        // still escaped (r.URL.Path is decoded: %2F would be '/')
		{"/" + obj + "+x\\y", ""},               // backslash
		{"/" + strings.ToUpper(obj) + "+x", ""}, // tusd's uid is lowercase hex
		{"/" + obj[:31] + "+x", ""},             // too short
		{"/" + obj + "0+x", ""},                 // too long
		{"/" + obj + "+" + strings.Repeat("a", 512), obj + "+" + strings.Repeat("a", 512)},
		{"/" + obj + "+" + strings.Repeat("a", 513), ""}, // very long
		{"/" + strings.Repeat("ab", 5000) + "+x", ""},
		{"/" + obj + "+x y", ""},    // space
		{"/" + obj + "+x\x00", ""},  // NUL
		{"/" + obj + "+é", ""},      // not ASCII
		{"/" + obj + "+x?y", ""},    // a query that reached the path decoded
		{"/.info+" + obj, ""},       // the .info name
		{"/" + obj + ".info+x", ""}, // a companion object as object id
	} {
		id, object, ok := uploadID(c.path)
		if c.id == "" {
			if ok {
				t.Errorf("uploadID(%q) = %q, %q; want refused", c.path, id, object)
			}
			continue
		}
		if !ok || id != c.id || object != strings.SplitN(c.id, "+", 2)[0] || id != strings.Trim(c.path, "/") {
			t.Errorf("uploadID(%q) = %q, %q, %v; want %q", c.path, id, object, ok, c.id)
		}
	}
}

// Metadata is bounded at creation, with a clear 400 and nothing stored;
// what our clients send is accepted.
func TestMetadataBounds(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	create := func(md string) *http.Response {
		return r.do(t, http.MethodPost, "/", nil, "Upload-Length", "10", "Authorization", "Bearer "+r.token, "Upload-Metadata", md)
	}
	enc := tusclient.EncodeMetadata
	pulse := map[string]string{"filename": "Jane Doe.mp4", "filetype": "video/mp4", "name": "Knee, left", "artifactId": "3f1c9b2e-8d4a-4c6e-9f00-1a2b3c4d5e6f",
		"videoid": "3f1c9b2e-8d4a-4c6e-9f00-1a2b3c4d5e6f", "kind": "video", "relatedTo": "3f1c9b2e-8d4a-4c6e-9f00-1a2b3c4d5e6f",
		"checksum": strings.Repeat("ab", 32), "appVersion": "2.1.0", "projectid": "p-1"}
	if res := create(enc(pulse)); res.StatusCode != http.StatusCreated {
		t.Fatalf("the Pulse app's metadata: %d, want 201", res.StatusCode)
	}
	if res := create(enc(map[string]string{"filename": strings.Repeat("é", 512)})); res.StatusCode != http.StatusCreated {
		t.Fatalf("a 1024-byte file name: %d, want 201", res.StatusCode)
	}
	bad := map[string]string{
		"unknown key":            enc(map[string]string{"filename": "x.mp4", "patient": "Jane Doe"}),
		"the server's own key":   enc(map[string]string{"pulsevault-subject": "nurse-2"}),
		"value over 1024 bytes":  enc(map[string]string{"filename": strings.Repeat("a", 1025)}),
		"over 4096 bytes in all": enc(map[string]string{"filename": strings.Repeat("a", 1000), "name": strings.Repeat("a", 1000), "kind": strings.Repeat("a", 1000), "checksum": strings.Repeat("a", 1000), "relatedTo": strings.Repeat("a", 100)}),
		"233 KB header":          enc(map[string]string{"filename": strings.Repeat("a", 233<<10)}),
		// Pairs tusd cannot parse are dropped by it; the header is still bounded.
		"header of junk pairs": strings.Repeat("x y z,", 2000),
	}
	for name, md := range bad {
		res := create(md)
		if res.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", name, res.StatusCode)
		}
	}
	if n := countUploads(t, r); n != 2 {
		t.Errorf("%d uploads staged, want the 2 accepted ones", n)
	}
}

// Concatenation is neither offered nor accepted, in either of its forms;
// the owner's own uploads still work with every extension that is.
func TestConcatenationRefused(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	res := r.do(t, http.MethodOptions, "/", nil)
	ext := res.Header.Get("Tus-Extension")
	if strings.Contains(ext, "concatenation") || !strings.Contains(ext, "creation-defer-length") || !strings.Contains(ext, "termination") {
		t.Errorf("Tus-Extension %q: want termination and creation-defer-length, not concatenation", ext)
	}
	v := r.victim(t)
	for _, concat := range []string{"partial", "final;/function/upload/" + v.id, "final;" + v.id, "final;/function/upload/" + v.obj + "+x"} {
		res := r.do(t, http.MethodPost, "/", nil, "Upload-Length", "10", "Upload-Concat", concat, "Authorization", "Bearer "+r.token)
		if res.StatusCode != http.StatusBadRequest || res.Header.Get("Location") != "" {
			t.Errorf("Upload-Concat %q: %d %q, want 400 and no upload", concat, res.StatusCode, res.Header.Get("Location"))
		}
	}
	// Upload-Concat on any other request is refused the same way.
	if res := r.do(t, http.MethodHead, "/"+v.id, nil, "Upload-Concat", "partial", "Authorization", "Bearer "+r.token); res.StatusCode != http.StatusBadRequest {
		t.Errorf("HEAD with Upload-Concat: %d, want 400", res.StatusCode)
	}
	if n := countUploads(t, r); n != 1 {
		t.Errorf("%d uploads staged, want the victim's only", n)
	}
	r.intact(t, v, 1)
}

// The owner's own uploads still take every extension offered, including
// the method override of clients that cannot send PATCH or DELETE.
func TestOwnerExtensions(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	bearer := "Bearer " + r.token
	octet := "application/offset+octet-stream"
	// creation-with-upload, then the rest by POST with X-HTTP-Method-Override.
	res := r.do(t, http.MethodPost, "/", strings.NewReader("0123"), "Upload-Length", "10", "Content-Type", octet, "Authorization", bearer)
	loc := res.Header.Get("Location")
	if res.StatusCode != http.StatusCreated || res.Header.Get("Upload-Offset") != "4" {
		t.Fatalf("creation-with-upload: %d offset %q", res.StatusCode, res.Header.Get("Upload-Offset"))
	}
	id := loc[strings.LastIndexByte(loc, '/')+1:]
	if res := r.do(t, http.MethodPost, "/"+id, strings.NewReader("4567"), "X-HTTP-Method-Override", "PATCH", "Upload-Offset", "4", "Content-Type", octet, "Authorization", bearer); res.StatusCode != http.StatusNoContent || res.Header.Get("Upload-Offset") != "8" {
		t.Fatalf("PATCH by override: %d offset %q", res.StatusCode, res.Header.Get("Upload-Offset"))
	}
	if res := r.do(t, http.MethodPost, "/"+id, nil, "X-HTTP-Method-Override", "HEAD", "Authorization", bearer); res.StatusCode != http.StatusBadRequest {
		t.Errorf("override to HEAD: %d, want 400", res.StatusCode)
	}
	if res := r.do(t, http.MethodPost, "/"+id, nil, "X-HTTP-Method-Override", "DELETE", "Authorization", bearer); res.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE by override: %d", res.StatusCode)
	}
	// creation-defer-length: the length declared by the owner's PATCH.
	res = r.do(t, http.MethodPost, "/", nil, "Upload-Defer-Length", "1", "Authorization", bearer)
	loc = res.Header.Get("Location")
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("deferred create: %d", res.StatusCode)
	}
	id = loc[strings.LastIndexByte(loc, '/')+1:]
	if res := r.do(t, http.MethodPatch, "/"+id, strings.NewReader("abc"), "Upload-Offset", "0", "Upload-Length", "3", "Content-Type", octet, "Authorization", bearer); res.StatusCode != http.StatusNoContent {
		t.Fatalf("PATCH declaring the length: %d", res.StatusCode)
	}
	if res := r.do(t, http.MethodHead, "/"+id, nil, "Authorization", bearer); res.Header.Get("Upload-Length") != "3" || res.Header.Get("Upload-Offset") != "3" {
		t.Fatalf("HEAD of the deferred upload: %v", res.Header)
	}
	// Termination of a completed upload: the owner's, not another's.
	c := r.env.Config
	other, _ := auth.SignHS256(secret, c.JWTIssuer, c.JWTAudience, "nurse-2", nil, time.Hour)
	if res := r.do(t, http.MethodDelete, "/"+id, nil, "Authorization", "Bearer "+other); res.StatusCode != http.StatusNotFound {
		t.Errorf("another user's DELETE of a completed upload: %d, want 404", res.StatusCode)
	}
	if _, err := r.st.Stat(context.Background(), c.UploadsBucket, strings.SplitN(id, "+", 2)[0]); err != nil {
		t.Fatalf("the completed upload is gone after another user's DELETE: %v", err)
	}
	if res := r.do(t, http.MethodDelete, "/"+id, nil, "Authorization", bearer); res.StatusCode != http.StatusNoContent {
		t.Errorf("the owner's DELETE of a completed upload: %d", res.StatusCode)
	}
}

// Location names the host our proxies announced, never one a client put in
// Forwarded or an X-Forwarded-Host that is not a plain host.
func TestLocationHostNotSteered(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	for name, hdr := range map[string][]string{
		"Forwarded":                      {"Forwarded", "host=evil.example;proto=https"},
		"Forwarded beside X-Forwarded":   {"Forwarded", "host=evil.example", "X-Forwarded-Host", "pulse.example.org"},
		"X-Forwarded-Host with a path":   {"X-Forwarded-Host", "evil.example/x"},
		"X-Forwarded-Host with userinfo": {"X-Forwarded-Host", "pulse.example.org@evil.example"},
	} {
		res := r.do(t, http.MethodPost, "/", nil, append([]string{"Upload-Length", "1", "Authorization", "Bearer " + r.token}, hdr...)...)
		loc := res.Header.Get("Location")
		if res.StatusCode != http.StatusCreated || strings.Contains(loc, "evil") {
			t.Errorf("%s: %d Location %q", name, res.StatusCode, loc)
		}
	}
}
