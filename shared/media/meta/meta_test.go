package meta_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/storage"
	"github.com/mieweb/pulsevault/shared/testutil/testenv"
)

// Concurrent updates never lose each other's changes (conditional PUT + retry), on the real store.
func TestConcurrentUpdates(t *testing.T) {
	env := testenv.Start(t)
	c := env.Config
	st, err := storage.FromConfig(c)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := st.EnsureBucket(ctx, c.MediaBucket, true); err != nil {
		t.Fatal(err)
	}
	ms := meta.NewStore(st, c.MediaBucket)
	id := uuid.NewString()
	if _, _, err := ms.Get(ctx, id); !errors.Is(err, meta.ErrNotFound) {
		t.Fatalf("missing video: want ErrNotFound, got %v", err)
	}
	v := &meta.Video{ID: id, Status: meta.Processing, Uploader: "u1", Client: map[string]string{"filename": "x.mp4"}}
	if err := ms.Create(ctx, v); err != nil {
		t.Fatal(err)
	}
	if err := ms.Create(ctx, v); !errors.Is(err, storage.ErrPreconditionFailed) {
		t.Fatalf("second Create: want ErrPreconditionFailed, got %v", err)
	}

	const n = 8
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := ms.Update(ctx, id, func(v *meta.Video) error {
				v.Renditions = append(v.Renditions, meta.Rendition{Name: fmt.Sprintf("r%d", i), State: meta.RenditionReady})
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	got, _, err := ms.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Renditions) != n || got.Schema != meta.SchemaVersion || got.Client["filename"] != "x.mp4" {
		t.Fatalf("after %d concurrent updates: %d renditions, schema %d", n, len(got.Renditions), got.Schema)
	}
}
