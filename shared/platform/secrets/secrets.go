// Package secrets reads a function's secrets from the directory OpenFaaS
// mounts them in (/var/openfaas/secrets/ in a container; a per-deployment
// directory under the data dir when the local provider runs the function).
//
// A secret is a file named after it. Values are never logged or put in
// errors: an error names the secret and the directory, nothing else.
package secrets

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// DefaultDir is where OpenFaaS mounts a function's secrets.
const DefaultDir = "/var/openfaas/secrets/"

// EnvDir is the environment variable that overrides DefaultDir.
const EnvDir = "SECRETS_DIR"

// Dir is the secrets directory of this process: $SECRETS_DIR, else DefaultDir.
func Dir() string {
	if d := os.Getenv(EnvDir); d != "" {
		return d
	}
	return DefaultDir
}

// Read returns the secret's bytes from Dir(), exactly as stored.
func Read(name string) ([]byte, error) { return ReadFrom(Dir(), name) }

// ReadString returns the secret from Dir() with surrounding white space
// (such as the newline `echo value > file` leaves) removed.
func ReadString(name string) (string, error) {
	b, err := Read(name)
	return strings.TrimSpace(string(b)), err
}

// ReadFrom returns the secret name from dir. A missing secret gives an error
// that names the secret and dir and says how to provide it.
func ReadFrom(dir, name string) ([]byte, error) {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, `/\`) {
		return nil, fmt.Errorf("secrets: invalid secret name %q (a plain file name is expected)", name)
	}
	b, err := os.ReadFile(filepath.Join(dir, name))
	switch {
	case err == nil:
		return b, nil
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("secrets: secret %q not found in %s (%s): create it (faas-cli secret create %s) and list it under the function's secrets", name, dir, EnvDir, name)
	default:
		// The *PathError names the file, never its content.
		return nil, fmt.Errorf("secrets: read secret %q: %w", name, err)
	}
}

// Ensure returns secret name from dir, creating it first with gen's value
// when it does not exist: the file (mode 0600, dir 0700) appears whole or
// not at all, and of two concurrent creators one value wins for both.
// created reports whether this call made it.
func Ensure(dir, name string, gen func() (string, error)) (value string, created bool, err error) {
	b, err := ReadFrom(dir, name)
	if err == nil {
		return strings.TrimSpace(string(b)), false, nil
	}
	if _, statErr := os.Stat(filepath.Join(dir, name)); !errors.Is(statErr, fs.ErrNotExist) {
		return "", false, err
	}
	v, err := gen()
	if err != nil {
		return "", false, fmt.Errorf("secrets: generate %q: %w", name, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", false, fmt.Errorf("secrets: create %q: %w", name, err)
	}
	tmp, err := os.CreateTemp(dir, ".tmp-*") // 0600
	if err != nil {
		return "", false, fmt.Errorf("secrets: create %q: %w", name, err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(v)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", false, fmt.Errorf("secrets: create %q: %w", name, err)
	}
	// A hard link never replaces an existing file: losing a race leaves the
	// winner's value, which is read back.
	switch err := os.Link(tmp.Name(), filepath.Join(dir, name)); {
	case err == nil:
		return v, true, nil
	case errors.Is(err, fs.ErrExist):
		v, _, err := Ensure(dir, name, gen)
		return v, false, err
	default:
		return "", false, fmt.Errorf("secrets: create %q: %w", name, err)
	}
}

// Random is a generator for Ensure: n random bytes, base64url without padding.
func Random(n int) func() (string, error) {
	return func() (string, error) {
		b := make([]byte, n)
		if _, err := rand.Read(b); err != nil {
			return "", err
		}
		return base64.RawURLEncoding.EncodeToString(b), nil
	}
}
