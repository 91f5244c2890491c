package protocol

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

const art = "3f2b8c1e-5d4a-4e6b-9c7d-0a1b2c3d4e5f"

func TestCapabilitiesCarryWhatBothGenerationsRead(t *testing.T) {
	b, _ := json.Marshal(NewCapabilities(1 << 30))
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	for _, k := range []string{"protocolVersion", "protocolRevision", "minSupportedVersion", "maxSupportedVersion", "uploadUnit", "kinds", "allowedExtensions", "maxUploadSize", "checksum", "viewLinks"} {
		if _, ok := m[k]; !ok {
			t.Errorf("%s missing: %s", k, b)
		}
	}
	if m["uploadUnit"] != "merged" || m["minSupportedVersion"].(float64) != 1 || m["maxSupportedVersion"].(float64) != 2 || m["maxUploadSize"].(float64) != 1<<30 {
		t.Fatalf("%s", b)
	}
	if _, ok := m["directUpload"]; ok {
		t.Fatal("advertises directUpload, which is not built")
	}
}

func TestPulseClient(t *testing.T) {
	for h, want := range map[string][3]int{
		"Pulse/2.1.0 (45; ios); protocol=1-2":  {1, 2, 1},
		"Pulse/3.0.0 (1; android); protocol=3": {3, 3, 1},
		"Pulse/2.1.0; protocol=2":              {2, 2, 1},
		"":                                     {0, 0, 0},
		"Pulse/2.1.0 (45; ios)":                {0, 0, 0},
		"Pulse/2.1.0; protocol=2-1":            {0, 0, 0},
	} {
		lo, hi, ok := ClientRange(h)
		if lo != want[0] || hi != want[1] || ok != (want[2] == 1) {
			t.Errorf("%q: %d %d %v", h, lo, hi, ok)
		}
	}
	for h, code := range map[string]int{"": 200, "Pulse/2.1.0 (45; ios); protocol=1-2": 200, "Pulse/9.0 (1; ios); protocol=3-4": 426, "Pulse/0.9; protocol=0": 426, "garbage": 200} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set(HeaderPulseClient, h)
		w := httptest.NewRecorder()
		if CheckClient(w, r) {
			w.WriteHeader(200)
		}
		if w.Code != code {
			t.Errorf("%q: %d, want %d", h, w.Code, code)
		}
		if code == 426 {
			var b UpgradeRequired
			if err := json.Unmarshal(w.Body.Bytes(), &b); err != nil || b.Error == "" || b.MinSupportedVersion != 1 || b.MaxSupportedVersion != 2 {
				t.Errorf("426 body %s", w.Body)
			}
		}
	}
}

func TestParseUpload(t *testing.T) {
	ok := map[string]string{"artifactId": strings.ToUpper(art), "filename": "draft.MP4", "checksum": "md5:" + strings.Repeat("a", 32), "name": "  Knee — left  ", "appVersion": "2.1.0 (45)"}
	u, err := ParseUpload(ok)
	if err != nil || u.ArtifactID != art || u.Kind != KindVideo || u.Ext != ".mp4" || u.ChecksumAlg != "md5" || u.Name != "Knee — left" {
		t.Fatalf("%+v %v", u, err)
	}
	if u, err := ParseUpload(map[string]string{"videoid": art, "filename": "a.mp4"}); err != nil || u.ArtifactID != art {
		t.Fatalf("videoid alias: %+v %v", u, err)
	}
	for name, md := range map[string]map[string]string{
		"no id":           {"filename": "a.mp4"},
		"non-uuid id":     {"artifactId": "../../etc", "filename": "a.mp4"},
		"braced id":       {"artifactId": "{" + art + "}", "filename": "a.mp4"},
		"aliases differ":  {"artifactId": art, "videoid": "9e8d7c6b-5a49-4382-a1b0-c9d8e7f6a5b4", "filename": "a.mp4"},
		"no filename":     {"artifactId": art},
		"wrong kind":      {"artifactId": art, "filename": "a.mp4", "kind": "segment"},
		"wrong extension": {"artifactId": art, "filename": "a.exe"},
		"vtt as video":    {"artifactId": art, "filename": "a.vtt"},
		"mp4 as captions": {"artifactId": art, "filename": "a.mp4", "kind": "captions"},
		"bad relatedTo":   {"artifactId": art, "filename": "a.mp4", "relatedTo": "x"},
		"bad checksum":    {"artifactId": art, "filename": "a.mp4", "checksum": "crc32:abcd"},
		"short checksum":  {"artifactId": art, "filename": "a.mp4", "checksum": "sha256:abcd"},
		"hostile name":    {"artifactId": art, "filename": "a.mp4", "name": "x\x00\r\n<script>"},
		"long name":       {"artifactId": art, "filename": "a.mp4", "name": strings.Repeat("n", MaxName+1)},
	} {
		_, err := ParseUpload(md)
		r, isRefusal := err.(*Refusal)
		if !isRefusal || r.Status != 400 || r.Msg == "" {
			t.Errorf("%s: %v", name, err)
		}
		if isRefusal && (strings.Contains(r.Msg, "script") || strings.Contains(r.Msg, "etc")) {
			t.Errorf("%s: message quotes the input: %s", name, r.Msg)
		}
	}
}

func TestUploadID(t *testing.T) {
	id := UploadID(KindCaptions, art, ".vtt")
	k, a, e, ok := ParseUploadID(id)
	if !ok || k != KindCaptions || a != art || e != ".vtt" {
		t.Fatalf("%s: %s %s %s %v", id, k, a, e, ok)
	}
	if _, _, _, ok := ParseUploadID(id + "=="); !ok {
		t.Fatal("padding refused")
	}
	for _, bad := range []string{"", UploadID("video", art, ".exe"), UploadID("segment", art, ".mp4"), UploadID("video", strings.ToUpper(art), ".mp4"),
		UploadID("video", art+"/../x", ".mp4"), "0123456789abcdef0123456789abcdef+mp", id + "/x", strings.Repeat("A", 200)} {
		if _, _, _, ok := ParseUploadID(bad); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}
