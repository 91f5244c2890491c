package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mieweb/pulsevault/shared/identity/users"
)

func TestUserCommand(t *testing.T) {
	file := filepath.Join(t.TempDir(), "users.yaml")
	run := func(stdin string, args ...string) (string, error) {
		var out, errOut bytes.Buffer
		err := runUser(context.Background(), append(args, "--users", file), strings.NewReader(stdin), &out, &errOut)
		return out.String() + errOut.String(), err
	}
	if _, err := run("a long enough password\n", "add", "nurse-1", "--name", "Nurse One", "--roles", "pulsevault:viewer"); err != nil {
		t.Fatal(err)
	}
	if _, err := run("short\n", "add", "nurse-2"); err == nil {
		t.Error("short password accepted")
	}
	if _, err := run("", "add", "nurse-3"); err == nil {
		t.Error("add without a password accepted")
	}
	if _, err := run("a long enough password\n", "add", "Bad Name"); err == nil {
		t.Error("bad id accepted")
	}
	if _, err := run("", "disable", "nurse-1"); err != nil {
		t.Fatal(err)
	}
	out, err := run("", "list")
	if err != nil || !strings.Contains(out, "nurse-1") || !strings.Contains(out, "Nurse One") || !strings.Contains(out, "disabled") || strings.Contains(out, "$2") {
		t.Fatalf("list: %v\n%s", err, out)
	}
	if _, err := run("the new long password\n", "passwd", "nurse-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := run("", "enable", "nurse-1"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := users.Open(file).Check("nurse-1", "the new long password"); err != nil {
		t.Fatalf("after passwd and enable: %v", err)
	}
	if _, err := run("", "passwd", "nobody"); err == nil {
		t.Error("passwd of an unknown user")
	}
	if _, err := run("", "frobnicate", "x"); !errors.Is(err, errUsage) {
		t.Errorf("unknown subcommand: %v", err)
	}
}

func TestStoredLoginIsPrivate(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	l := &storedLogin{Issuer: "http://127.0.0.1:1/oidc", ClientID: "pulsevault-cli", RefreshToken: "pvr_x", Subject: "nurse-1"}
	if err := l.save(); err != nil {
		t.Fatal(err)
	}
	path, _ := loginPath()
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("login.json: %v %v", fi, err)
	}
	if di, _ := os.Stat(filepath.Dir(path)); di.Mode().Perm() != 0o700 {
		t.Fatalf("config dir mode %v, want 0700", di.Mode().Perm())
	}
	got, err := readLogin()
	if err != nil || *got != *l {
		t.Fatalf("read back %+v %v", got, err)
	}
}

func TestIsLoopbackHTTP(t *testing.T) {
	for u, want := range map[string]bool{"http://127.0.0.1:3000/oidc": true, "http://localhost/oidc": true, "http://[::1]:80": true,
		"http://10.0.0.1/oidc": false, "https://127.0.0.1/oidc": false, "http://example.org": false} {
		if got := isLoopbackHTTP(u); got != want {
			t.Errorf("%s: %v", u, got)
		}
	}
}
