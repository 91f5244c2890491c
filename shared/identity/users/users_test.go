package users

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.yaml")
	s := Open(path)
	if err := s.Add(User{ID: "nurse-1", Name: "Nurse One", Roles: []string{"pulsevault:viewer"}}, "a good long password"); err != nil {
		t.Fatal(err)
	}
	if err := s.Add(User{ID: "nurse-1"}, "a good long password"); err == nil {
		t.Error("duplicate id accepted")
	}
	for _, bad := range []string{"Nurse One", "", "x y", "../etc"} {
		if err := s.Add(User{ID: bad}, "a good long password"); err == nil {
			t.Errorf("id %q accepted", bad)
		}
	}
	if err := s.Add(User{ID: "short"}, "tiny"); err == nil {
		t.Error("short password accepted")
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("users.yaml mode %v %v, want 0600", fi.Mode(), err)
	}
	b, _ := os.ReadFile(path)
	if strings.Contains(string(b), "a good long password") || !strings.Contains(string(b), "$2a$") {
		t.Fatalf("file holds the password or no bcrypt hash:\n%s", b)
	}
	if u, reason, err := s.Check("nurse-1", "a good long password"); err != nil || u.Name != "Nurse One" || reason != "" {
		t.Fatalf("check: %+v %q %v", u, reason, err)
	}
	for name, tc := range map[string][2]string{"wrong": {"nurse-1", "another password!"}, "unknown": {"nobody", "a good long password"}} {
		want := map[string]string{"wrong": ReasonPassword, "unknown": ReasonUnknown}[name]
		if _, reason, err := s.Check(tc[0], tc[1]); !errors.Is(err, ErrRefused) || reason != want {
			t.Errorf("%s: %q %v", name, reason, err)
		}
	}
	if err := s.SetPassword("nurse-1", "the new long password"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Check("nurse-1", "a good long password"); err == nil {
		t.Error("old password still works after passwd")
	}
	if err := s.SetDisabled("nurse-1", true); err != nil {
		t.Fatal(err)
	}
	if _, reason, _ := s.Check("nurse-1", "the new long password"); reason != ReasonDisabled {
		t.Errorf("disabled user: %q", reason)
	}
	// Another process's edit is seen without a restart.
	other := Open(path)
	if err := other.SetDisabled("nurse-1", false); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Check("nurse-1", "the new long password"); err != nil {
		t.Errorf("edit by another process not seen: %v", err)
	}
}

func TestArgon2id(t *testing.T) {
	h, err := HashArgon2id("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if !Verify(h, "correct horse battery") || Verify(h, "correct horse batterx") {
		t.Fatal("argon2id verify")
	}
	// A hash made elsewhere (RFC 9106 parameters, PHC form) verifies too.
	if Verify("$argon2id$v=19$m=65536,t=3,p=4$garbage", "x") || Verify("$argon2id$v=19$m=0,t=3,p=4$c2FsdA$aGFzaA", "x") {
		t.Fatal("malformed argon2id accepted")
	}
}
