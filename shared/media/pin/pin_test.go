package pin

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/storage"
)

type stater struct {
	info storage.Info
	err  error
}

func (s stater) Stat(context.Context, string, string) (storage.Info, error) { return s.info, s.err }

func TestCheck(t *testing.T) {
	o := &meta.Original{Key: "videos/x/original.mp4", VersionID: "v1"}
	boom := errors.New("store down")
	for _, tc := range []struct {
		name string
		o    *meta.Original
		st   stater
		want *Shadow
		err  error
	}{
		{"pinned is latest", o, stater{info: storage.Info{VersionID: "v1"}}, nil, nil},
		{"newer version", o, stater{info: storage.Info{VersionID: "v2"}}, &Shadow{Reason: ReasonNewerVersion, VersionID: "v2"}, nil},
		{"delete marker", o, stater{err: fmt.Errorf("stat: %w", storage.ErrNotFound)}, &Shadow{Reason: ReasonDeleteMarker}, nil},
		{"store error", o, stater{err: boom}, nil, boom},
		{"nothing pinned", &meta.Original{Key: o.Key}, stater{info: storage.Info{VersionID: "v2"}}, nil, nil},
		{"no original", nil, stater{err: boom}, nil, nil},
	} {
		got, err := Check(context.Background(), tc.st, "b", tc.o)
		if !errors.Is(err, tc.err) || (got == nil) != (tc.want == nil) || (got != nil && *got != *tc.want) {
			t.Errorf("%s: %+v %v, want %+v %v", tc.name, got, err, tc.want, tc.err)
		}
	}
}
