package tusclient

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestEncodeMetadata(t *testing.T) {
	got := EncodeMetadata(map[string]string{"filetype": "video/mp4", "filename": "a,b c.mp4", "bad key": "x", "": "y"})
	want := "filename " + base64.StdEncoding.EncodeToString([]byte("a,b c.mp4")) + ",filetype " + base64.StdEncoding.EncodeToString([]byte("video/mp4"))
	if got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestStateRoundTrip(t *testing.T) {
	p := filepath.Join(t.TempDir(), "sub", "uploads.json")
	s := OpenState(p)
	if s.Get("fp") != "" {
		t.Fatal("empty state remembers something")
	}
	if err := s.Put("fp", "http://h/function/upload/abc+def"); err != nil {
		t.Fatal(err)
	}
	if got := OpenState(p).Get("fp"); got != "http://h/function/upload/abc+def" {
		t.Fatalf("reopened state: %q", got)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file mode: %v %v", fi, err)
	}
	if err := s.Delete("fp"); err != nil || OpenState(p).Get("fp") != "" {
		t.Fatalf("delete: %v", err)
	}
	if err := os.WriteFile(p, []byte("{broken"), 0o600); err != nil {
		t.Fatal(err)
	}
	if s.Get("fp") != "" {
		t.Fatal("a damaged state file must read as empty")
	}
}

// A unit test against a scripted server (the real tusd is exercised in
// shared/ingest/finalize, shared/ingest/tusupload and tests/).
func TestUploadErrors(t *testing.T) {
	f := filepath.Join(t.TempDir(), "f.bin")
	if err := os.WriteFile(f, []byte("0123456789"), 0o600); err != nil {
		t.Fatal(err)
	}
	for code, want := range map[int]error{http.StatusUnauthorized: ErrUnauthorized, http.StatusRequestEntityTooLarge: ErrTooLarge} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(code) }))
		c := &Client{Endpoint: srv.URL + "/files/", Token: "t"}
		if _, err := c.Upload(context.Background(), f, nil); !errors.Is(err, want) {
			t.Errorf("HTTP %d: %v, want %v", code, err, want)
		}
		srv.Close()
	}
	// Location relative to the endpoint; the token rides on every request.
	var patched []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer t" || r.Header.Get("Tus-Resumable") != Version {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		switch r.Method {
		case http.MethodPost:
			w.Header().Set("Location", "/files/xyz+1")
			w.WriteHeader(http.StatusCreated)
		case http.MethodPatch:
			patched = append(patched, r.URL.Path+"@"+r.Header.Get("Upload-Offset"))
			w.Header().Set("Upload-Offset", "10")
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	defer srv.Close()
	c := &Client{Endpoint: srv.URL + "/files/", Token: "t", State: OpenState(filepath.Join(t.TempDir(), "s.json"))}
	loc, err := c.Upload(context.Background(), f, map[string]string{"filename": "f.bin"})
	if err != nil || loc != srv.URL+"/files/xyz+1" || strings.Join(patched, ",") != "/files/xyz+1@0" {
		t.Fatalf("upload: %q %v patches %v", loc, err, patched)
	}
}
