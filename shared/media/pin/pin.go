// Package pin checks a video's original against the version meta.json
// pins. The media bucket is versioned, so anyone holding the service
// credentials can PutObject over videos/<id>/original.<ext>: that makes a
// new, unlocked latest version while the locked one survives underneath.
// Readers therefore read the pinned version (storage.GetVersion) and use
// Check to notice, count and audit such a shadowing version.
package pin

import (
	"context"
	"errors"

	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/storage"
)

// Reasons (audit reason codes) for a shadowed original.
const (
	ReasonNewerVersion = "newer-version" // a version other than the pinned one is the latest
	ReasonDeleteMarker = "delete-marker" // the latest is a delete marker hiding the pinned one
)

// Stater is what Check needs of the store.
type Stater interface {
	Stat(ctx context.Context, bucket, key string) (storage.Info, error)
}

// Shadow describes a latest version that is not the pinned one.
type Shadow struct {
	Reason    string // ReasonNewerVersion or ReasonDeleteMarker
	VersionID string // the latest version's id ("" for a delete marker)
}

// Check reports whether the original's key has a latest version other than
// the pinned one; nil means it has not (or nothing is pinned: meta.json
// from before pinning, where "latest" is all there is).
func Check(ctx context.Context, st Stater, bucket string, o *meta.Original) (*Shadow, error) {
	if o == nil || o.VersionID == "" {
		return nil, nil
	}
	latest, err := st.Stat(ctx, bucket, o.Key)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		// The pinned version is locked and cannot be gone: the latest is
		// a delete marker.
		return &Shadow{Reason: ReasonDeleteMarker}, nil
	case err != nil:
		return nil, err
	case latest.VersionID != o.VersionID:
		return &Shadow{Reason: ReasonNewerVersion, VersionID: latest.VersionID}, nil
	}
	return nil, nil
}
