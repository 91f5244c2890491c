// Package secrets reads a function's secrets from the directory OpenFaaS
// mounts them in (/var/openfaas/secrets/ in a container; a per-deployment
// directory under the data dir when the local provider runs the function).
//
// A secret is a file named after it. Values are never logged or put in
// errors: an error names the secret and the directory, nothing else.
package secrets

import (
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
