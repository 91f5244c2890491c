// Package users keeps the people of the embedded OpenID provider in one
// YAML file (users.yaml): id, display name, password hash (bcrypt or
// argon2id), roles and whether the account is disabled. The file is read
// again whenever it changes, so `pulsevault user add` needs no restart.
package users

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// User is one account.
type User struct {
	ID           string   `yaml:"id"`            // what the person types to sign in; the token subject
	Name         string   `yaml:"name"`          // display name
	PasswordHash string   `yaml:"password_hash"` // $2a$/$2b$ (bcrypt) or $argon2id$
	Roles        []string `yaml:"roles,omitempty"`
	Disabled     bool     `yaml:"disabled,omitempty"`
}

type file struct {
	Users []User `yaml:"users"`
}

// IDPattern is what a user id may look like: it becomes a token subject,
// an audit actor and a meta.json uploader, so no spaces or free text.
var IDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._@-]{0,63}$`)

// MinPassword is the shortest password accepted.
const MinPassword = 12

// Why a sign-in was refused: machine codes for the audit log.
const (
	ReasonUnknown  = "unknown-user"
	ReasonPassword = "wrong-password"
	ReasonDisabled = "disabled"
)

// ErrRefused is returned by Check for any refused sign-in.
var ErrRefused = errors.New("users: sign-in refused")

// Store is users.yaml. It is safe for concurrent use.
type Store struct {
	path string

	mu    sync.Mutex
	mod   time.Time
	size  int64
	users []User
}

// Open returns the store at path (the file may not exist yet).
func Open(path string) *Store { return &Store{path: path} }

// Path is the file's path.
func (s *Store) Path() string { return s.path }

// load rereads the file when its modification time or size changed.
func (s *Store) load() error {
	fi, err := os.Stat(s.path)
	if errors.Is(err, os.ErrNotExist) {
		s.users, s.mod, s.size = nil, time.Time{}, 0
		return nil
	} else if err != nil {
		return err
	}
	if fi.ModTime().Equal(s.mod) && fi.Size() == s.size && s.users != nil {
		return nil
	}
	b, err := os.ReadFile(s.path)
	if err != nil {
		return err
	}
	var f file
	if err := yaml.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("users: %s: %w", s.path, err)
	}
	for _, u := range f.Users {
		if !IDPattern.MatchString(u.ID) {
			return fmt.Errorf("users: %s: invalid user id %q", s.path, u.ID)
		}
	}
	if f.Users == nil {
		f.Users = []User{}
	}
	s.users, s.mod, s.size = f.Users, fi.ModTime(), fi.Size()
	return nil
}

// List returns every user.
func (s *Store) List() ([]User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.load(); err != nil {
		return nil, err
	}
	return slices.Clone(s.users), nil
}

// Get returns the user with id.
func (s *Store) Get(id string) (User, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.load(); err != nil {
		return User{}, false, err
	}
	for _, u := range s.users {
		if u.ID == id {
			return u, true, nil
		}
	}
	return User{}, false, nil
}

// dummyHash is compared against when the user does not exist, so an
// unknown name takes as long as a wrong password.
var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("not-a-password-of-anyone"), hashCost)
	return h
})

// hashCost is bcrypt's work factor for new hashes.
const hashCost = 11

// Check verifies id and password. On refusal it returns ErrRefused and the
// machine reason (ReasonUnknown, ReasonPassword, ReasonDisabled); a disabled
// account is only reported as such after its password matched.
func (s *Store) Check(id, password string) (User, string, error) {
	u, ok, err := s.Get(id)
	if err != nil {
		return User{}, "", err
	}
	if !ok {
		_ = bcrypt.CompareHashAndPassword(dummyHash(), []byte(password))
		return User{}, ReasonUnknown, ErrRefused
	}
	if !Verify(u.PasswordHash, password) {
		return User{}, ReasonPassword, ErrRefused
	}
	if u.Disabled {
		return User{}, ReasonDisabled, ErrRefused
	}
	return u, "", nil
}

// Update applies fn to the users under the lock and writes the file
// atomically (mode 0600: it holds password hashes).
func (s *Store) Update(fn func(users []User) ([]User, error)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.load(); err != nil {
		return err
	}
	next, err := fn(slices.Clone(s.users))
	if err != nil {
		return err
	}
	b, err := yaml.Marshal(file{Users: next})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(s.path), ".users-*.yaml")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	header := "# PulseVault users of the embedded OpenID provider: manage with `pulsevault user add|passwd|disable|list`.\n"
	if _, err := tmp.WriteString(header + string(b)); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), s.path); err != nil {
		return err
	}
	s.users, s.mod = nil, time.Time{}
	return nil
}

// Add creates a user; it fails when the id is taken.
func (s *Store) Add(u User, password string) error {
	if !IDPattern.MatchString(u.ID) {
		return fmt.Errorf("user id %q: use lower-case letters, digits and . _ @ - (up to 64)", u.ID)
	}
	h, err := Hash(password)
	if err != nil {
		return err
	}
	u.PasswordHash = h
	return s.Update(func(users []User) ([]User, error) {
		if slices.ContainsFunc(users, func(x User) bool { return x.ID == u.ID }) {
			return nil, fmt.Errorf("user %q exists already (use passwd to change the password)", u.ID)
		}
		return append(users, u), nil
	})
}

// SetPassword replaces id's password.
func (s *Store) SetPassword(id, password string) error {
	h, err := Hash(password)
	if err != nil {
		return err
	}
	return s.modify(id, func(u *User) { u.PasswordHash = h })
}

// SetDisabled disables (or enables) id.
func (s *Store) SetDisabled(id string, disabled bool) error {
	return s.modify(id, func(u *User) { u.Disabled = disabled })
}

func (s *Store) modify(id string, fn func(*User)) error {
	return s.Update(func(users []User) ([]User, error) {
		i := slices.IndexFunc(users, func(x User) bool { return x.ID == id })
		if i < 0 {
			return nil, fmt.Errorf("no user %q", id)
		}
		fn(&users[i])
		return users, nil
	})
}

// Hash hashes password with bcrypt (cost 11).
func Hash(password string) (string, error) {
	if len(password) < MinPassword {
		return "", fmt.Errorf("the password must have at least %d characters", MinPassword)
	}
	if len(password) > 72 {
		return "", errors.New("the password must have at most 72 bytes (bcrypt's limit)")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), hashCost)
	return string(h), err
}

// Verify reports whether password matches hash, bcrypt ($2a$, $2b$, $2y$)
// or argon2id in the PHC string form
// ($argon2id$v=19$m=65536,t=3,p=4$salt$hash, salt and hash base64 without padding).
func Verify(hash, password string) bool {
	if strings.HasPrefix(hash, "$argon2id$") {
		parts := strings.Split(hash, "$")
		if len(parts) != 6 || parts[2] != "v=19" {
			return false
		}
		var m, t uint32
		var p uint8
		if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || m == 0 || t == 0 || p == 0 || m > 1<<22 || t > 64 {
			return false
		}
		salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
		want, err2 := base64.RawStdEncoding.DecodeString(parts[5])
		if err1 != nil || err2 != nil || len(want) == 0 || len(want) > 128 {
			return false
		}
		got := argon2.IDKey([]byte(password), salt, t, m, p, uint32(len(want)))
		return subtle.ConstantTimeCompare(got, want) == 1
	}
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil
}

// HashArgon2id hashes password with argon2id (m=64 MiB, t=3, p=4), for
// operators who prefer it; Verify reads both.
func HashArgon2id(password string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	h := argon2.IDKey([]byte(password), salt, 3, 64*1024, 4, 32)
	return fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$%s$%s", 64*1024, 3, 4,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(h)), nil
}

// GeneratePassword returns a random password of 20 characters from an
// alphabet without look-alikes, for the first dev user.
func GeneratePassword() string {
	const alphabet = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKMNPQRSTUVWXYZ23456789"
	b := make([]byte, 20)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
