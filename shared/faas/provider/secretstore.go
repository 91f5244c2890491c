package provider

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/openfaas/faas-provider/types"
)

// secretStore keeps secrets as files (0600) in a directory (0700), one per
// secret, written atomically. Values never reach a log or an error.
type secretStore struct {
	dir string
	mu  sync.Mutex
}

func newSecretStore(dir string) (*secretStore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("provider: secrets dir: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("provider: secrets dir: %w", err)
	}
	return &secretStore{dir: dir}, nil
}

func secretValue(s types.Secret) ([]byte, error) {
	if s.Value != "" {
		return []byte(s.Value), nil
	}
	if len(s.RawValue) > 0 {
		return s.RawValue, nil
	}
	return nil, fmt.Errorf("%w: secret %q has no value (set value or rawValue)", ErrInvalid, s.Name)
}

func (s *secretStore) list() ([]string, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if e.Type().IsRegular() && checkSecretName(e.Name()) == nil {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

func (s *secretStore) exists(name string) bool {
	fi, err := os.Stat(filepath.Join(s.dir, name))
	return err == nil && fi.Mode().IsRegular()
}

// put creates (create=true, ErrExists if present) or replaces (ErrNotFound
// if absent) a secret.
func (s *secretStore) put(sec types.Secret, create bool) error {
	if err := checkSecretName(sec.Name); err != nil {
		return err
	}
	if err := checkNamespace(sec.Namespace); err != nil {
		return err
	}
	val, err := secretValue(sec)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch ok := s.exists(sec.Name); {
	case create && ok:
		return fmt.Errorf("%w: secret %q already exists (use PUT, or faas-cli secret update)", ErrExists, sec.Name)
	case !create && !ok:
		return fmt.Errorf("%w: secret %q does not exist (create it with POST, or faas-cli secret create)", ErrNotFound, sec.Name)
	}
	return writeFileAtomic(filepath.Join(s.dir, sec.Name), val)
}

func (s *secretStore) remove(name string) error {
	if err := checkSecretName(name); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	err := os.Remove(filepath.Join(s.dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: secret %q does not exist", ErrNotFound, name)
	}
	return err
}

// copyTo copies the named secrets into dir (created 0700), the SECRETS_DIR
// of one deployment, which then sees those and no others.
func (s *secretStore) copyTo(dir string, names []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(s.dir, n))
		if err != nil {
			return fmt.Errorf("provider: copy secret %q: %w", n, err)
		}
		if err := writeFileAtomic(filepath.Join(dir, n), b); err != nil {
			return err
		}
	}
	return nil
}

// missing lists the names that are not in the store.
func (s *secretStore) missing(names []string) []string {
	var out []string
	for _, n := range names {
		if checkSecretName(n) != nil || !s.exists(n) {
			out = append(out, n)
		}
	}
	return out
}

// writeFileAtomic writes b to path with mode 0600 through a temporary file
// and a rename, so a reader never sees half a value.
func writeFileAtomic(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
