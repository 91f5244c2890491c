package token

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

// SecretName is the secret holding the playback keys.
//
// Format: one key per line, "kid=base64url(secret)" with a secret of at
// least 32 bytes and a kid of 1–32 characters [A-Za-z0-9_-]. Blank lines
// and lines starting with '#' are ignored. The first key signs; every key
// verifies. To rotate: put the new key on the first line, keep the old one
// below it for at least MaxTTL, then remove it.
const SecretName = "pulsevault-media-keys"

// MinSecret is the shortest key accepted, in bytes.
const MinSecret = 32

type key struct {
	kid    string
	secret []byte
}

// Keyring holds the keys: the first signs, all verify.
type Keyring struct{ keys []key }

// ParseKeys reads the secret's format. Errors name the line, never a value.
func ParseKeys(data []byte) (*Keyring, error) {
	k := &Keyring{}
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		kid, b64, ok := strings.Cut(line, "=")
		kid, b64 = strings.TrimSpace(kid), strings.TrimSpace(b64)
		if !ok || !validKid(kid) {
			return nil, fmt.Errorf("token: %s line %d: want kid=base64url-secret with a kid of 1–32 characters [A-Za-z0-9_-]", SecretName, n)
		}
		if seen[kid] {
			return nil, fmt.Errorf("token: %s line %d: kid %q appears twice", SecretName, n, kid)
		}
		secret, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(b64, "="))
		if err != nil || len(secret) < MinSecret {
			return nil, fmt.Errorf("token: %s line %d (kid %q): the secret must be base64url of at least %d bytes", SecretName, n, kid, MinSecret)
		}
		seen[kid] = true
		k.keys = append(k.keys, key{kid: kid, secret: secret})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("token: %s: %w", SecretName, err)
	}
	if len(k.keys) == 0 {
		return nil, fmt.Errorf("token: %s has no key: add a line kid=base64url-secret (e.g. from `pulsevault`'s dev setup or GenerateKeyLine)", SecretName)
	}
	return k, nil
}

// GenerateKeyLine returns a new key line "kid=secret" for the secret file.
func GenerateKeyLine(kid string) (string, error) {
	if !validKid(kid) {
		return "", errors.New("token: kid must be 1–32 characters [A-Za-z0-9_-]")
	}
	b := make([]byte, MinSecret)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return kid + "=" + base64.RawURLEncoding.EncodeToString(b), nil
}

// SigningKid is the kid new tokens are signed with.
func (k *Keyring) SigningKid() string { return k.keys[0].kid }

func (k *Keyring) lookup(kid string) []byte {
	for _, e := range k.keys {
		if e.kid == kid {
			return e.secret
		}
	}
	return nil
}

func validKid(kid string) bool {
	if len(kid) == 0 || len(kid) > 32 {
		return false
	}
	for i := 0; i < len(kid); i++ {
		c := kid[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// File is a keyring read from a secret file and read again when the file
// changes, so a rotated secret takes effect without a restart.
type File struct {
	path string

	mu      sync.Mutex
	ring    *Keyring
	modTime time.Time
	size    int64
}

// NewFile returns a File over path; nothing is read until Keyring.
func NewFile(path string) *File { return &File{path: path} }

// Keyring returns the current keys, re-reading the file when its size or
// modification time changed. A file that became unreadable or invalid is
// an error: keeping stale keys would keep a removed kid valid.
func (f *File) Keyring() (*Keyring, error) {
	fi, err := os.Stat(f.path)
	if err != nil {
		return nil, fmt.Errorf("token: secret %s: %w", SecretName, bare(err))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ring != nil && fi.ModTime().Equal(f.modTime) && fi.Size() == f.size {
		return f.ring, nil
	}
	data, err := os.ReadFile(f.path)
	if err != nil {
		return nil, fmt.Errorf("token: secret %s: %w", SecretName, bare(err))
	}
	ring, err := ParseKeys(data)
	if err != nil {
		f.ring = nil
		return nil, err
	}
	f.ring, f.modTime, f.size = ring, fi.ModTime(), fi.Size()
	return ring, nil
}

// bare drops the path from a *PathError: the secret's name says enough.
func bare(err error) error {
	if u := errors.Unwrap(err); u != nil {
		return u
	}
	return err
}

// Secret returns the secret of kid, or nil when the keyring has no such
// key. Other HMAC token formats that share this secret file format (the
// Pulse capability tokens, shared/pulse/captoken) sign with it.
func (k *Keyring) Secret(kid string) []byte { return k.lookup(kid) }
