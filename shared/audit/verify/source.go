// Package verify is the auditor's side of the audit log: it checks a
// copy of the audit bucket (the bucket itself, read-only, or a local
// directory copy) link by link, batch by batch and checkpoint by
// checkpoint, and builds and checks RFC 6962 inclusion proofs.
package verify

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/mieweb/pulsevault/shared/storage"
)

// Source is a copy of the audit bucket.
type Source interface {
	// List returns every object key.
	List(ctx context.Context) ([]string, error)
	// Read returns an object's bytes.
	Read(ctx context.Context, key string) ([]byte, error)
	// Retention returns an object's lock; ok is false when the source
	// cannot tell (a directory copy).
	Retention(ctx context.Context, key string) (r *storage.Retention, ok bool, err error)
	// String names the source in reports.
	String() string
}

// Versioned is a Source that can count each object's versions. Every log
// object is written once, create-only: a second version means something
// was written (or a delete marker put) over it, which a listing of latest
// versions cannot show.
type Versioned interface {
	// Versions returns, by key, the number of versions and how many of
	// them are delete markers, for every key that has any.
	Versions(ctx context.Context) (map[string]VersionCount, error)
}

// VersionCount is how many versions a key has.
type VersionCount struct {
	Versions      int // all of them, delete markers included
	DeleteMarkers int
}

// Dir is a local copy of the bucket: object keys are paths under it.
type Dir string

// List walks the directory.
func (d Dir) List(ctx context.Context) ([]string, error) {
	var keys []string
	err := filepath.WalkDir(string(d), func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.Type().IsRegular() {
			rel, err := filepath.Rel(string(d), p)
			if err != nil {
				return err
			}
			keys = append(keys, filepath.ToSlash(rel))
		}
		return ctx.Err()
	})
	slices.Sort(keys)
	return keys, err
}

// Read reads one file.
func (d Dir) Read(_ context.Context, key string) ([]byte, error) {
	if strings.Contains(key, "..") {
		return nil, errors.New("bad key")
	}
	return os.ReadFile(filepath.Join(string(d), filepath.FromSlash(key)))
}

// Retention is unknown for a directory.
func (d Dir) Retention(context.Context, string) (*storage.Retention, bool, error) {
	return nil, false, nil
}

func (d Dir) String() string { return "directory " + string(d) }

// Bucket is the audit bucket itself, read through read-only credentials.
type Bucket struct {
	Store Objects
	Name  string
}

// Objects is the read-only part of the object store a Bucket needs:
// listings of latest versions and of every version (delete markers
// included), reads, and HEADs that report retention. *storage.Store has it;
// unit tests use the in-memory shared/testutil/fakestore.
type Objects interface {
	List(ctx context.Context, bucket, prefix string) iter.Seq2[storage.Info, error]
	ListVersions(ctx context.Context, bucket, prefix string) iter.Seq2[storage.Info, error]
	Get(ctx context.Context, bucket, key string, offset, length int64) (io.ReadCloser, storage.Info, error)
	Stat(ctx context.Context, bucket, key string) (storage.Info, error)
}

// List lists the latest versions.
func (b Bucket) List(ctx context.Context) ([]string, error) {
	var keys []string
	for info, err := range b.Store.List(ctx, b.Name, "") {
		if err != nil {
			return nil, err
		}
		keys = append(keys, info.Key)
	}
	slices.Sort(keys)
	return keys, nil
}

// Versions lists every version of every object.
func (b Bucket) Versions(ctx context.Context) (map[string]VersionCount, error) {
	counts := map[string]VersionCount{}
	for info, err := range b.Store.ListVersions(ctx, b.Name, "") {
		if err != nil {
			return nil, err
		}
		c := counts[info.Key]
		c.Versions++
		if info.DeleteMarker {
			c.DeleteMarkers++
		}
		counts[info.Key] = c
	}
	return counts, nil
}

// Read GETs one object.
func (b Bucket) Read(ctx context.Context, key string) ([]byte, error) {
	rc, _, err := b.Store.Get(ctx, b.Name, key, 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// Retention HEADs one object.
func (b Bucket) Retention(ctx context.Context, key string) (*storage.Retention, bool, error) {
	info, err := b.Store.Stat(ctx, b.Name, key)
	if err != nil {
		return nil, true, err
	}
	return info.Retention, true, nil
}

func (b Bucket) String() string { return "bucket " + b.Name }
