package meta_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"

	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/storage"
	"github.com/mieweb/pulsevault/shared/testutil/fakestore"
	"github.com/mieweb/pulsevault/shared/testutil/testenv"
	"github.com/mieweb/pulsevault/shared/topology"
)

const bucket = "pulse-media"

// fake is the unit tier's store: in memory, with the real one's ETags and
// conditional writes.
func fake(t *testing.T) *fakestore.Store {
	t.Helper()
	st := fakestore.New()
	if _, err := st.EnsureBucket(context.Background(), bucket, true); err != nil {
		t.Fatal(err)
	}
	return st
}

// Concurrent updates never lose each other's changes (conditional PUT +
// retry): on the fake store (unit tier) and on versitygw (integration tier).
func TestConcurrentUpdates(t *testing.T) {
	t.Run("fakestore", func(t *testing.T) { concurrentUpdates(t, fake(t), bucket) })
	t.Run("versitygw", func(t *testing.T) {
		env := testenv.Start(t)
		c := env.Config
		st, err := storage.FromConfig(c)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.EnsureBucket(context.Background(), c.MediaBucket, true); err != nil {
			t.Fatal(err)
		}
		concurrentUpdates(t, st, c.MediaBucket)
	})
}

func concurrentUpdates(t *testing.T, st meta.Objects, bucket string) {
	ctx := context.Background()
	ms := meta.NewStore(st, bucket)
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

// A write that lands between Update's read and its conditional write is
// neither lost nor overwritten: Update's If-Match fails, it re-reads and
// applies fn again to the newer document.
func TestUpdateRetriesOnConflict(t *testing.T) {
	ctx := context.Background()
	st := fake(t)
	ms := meta.NewStore(st, bucket)
	id := uuid.NewString()
	if err := ms.Create(ctx, &meta.Video{ID: id, Status: meta.Processing}); err != nil {
		t.Fatal(err)
	}
	other := meta.NewStore(st, bucket)
	var raced atomic.Bool
	st.Hook(func(op, _, key string) error {
		// Once: before Update's first write, another writer records an error.
		if op == "put" && key == topology.MetaKey(id) && raced.CompareAndSwap(false, true) {
			if _, err := other.Update(ctx, id, func(v *meta.Video) error { v.Errors = append(v.Errors, "other-writer"); return nil }); err != nil {
				t.Error(err)
			}
		}
		return nil
	})
	calls := 0
	got, err := ms.Update(ctx, id, func(v *meta.Video) error { calls++; v.Status = meta.Ready; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if calls != 2 {
		t.Errorf("fn ran %d times, want 2 (once more after the conflict)", calls)
	}
	st.Hook(nil)
	stored, _, err := ms.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []*meta.Video{got, stored} {
		if v.Status != meta.Ready || len(v.Errors) != 1 || v.Errors[0] != "other-writer" {
			t.Fatalf("after a racing write: status %q errors %v, want ready with the other writer's error", v.Status, v.Errors)
		}
	}
}

// A store error that is not a conflict is returned at once, not retried;
// an error from fn is returned and nothing is written.
func TestUpdateErrors(t *testing.T) {
	ctx := context.Background()
	st := fake(t)
	ms := meta.NewStore(st, bucket)
	id := uuid.NewString()
	if err := ms.Create(ctx, &meta.Video{ID: id, Status: meta.Processing}); err != nil {
		t.Fatal(err)
	}
	down := errors.New("store down")
	var puts atomic.Int32
	st.Hook(func(op, _, _ string) error {
		if op == "put" {
			puts.Add(1)
			return down
		}
		return nil
	})
	if _, err := ms.Update(ctx, id, func(v *meta.Video) error { v.Status = meta.Ready; return nil }); !errors.Is(err, down) {
		t.Fatalf("Update with the store down: %v", err)
	}
	if n := puts.Load(); n != 1 {
		t.Errorf("%d writes tried, want 1", n)
	}
	st.Hook(nil)
	refuse := errors.New("not from this state")
	if _, err := ms.Update(ctx, id, func(v *meta.Video) error { v.Status = meta.Failed; return refuse }); !errors.Is(err, refuse) {
		t.Fatalf("fn's error: %v", err)
	}
	if v, _, err := ms.Get(ctx, id); err != nil || v.Status != meta.Processing {
		t.Fatalf("after refused updates: %v %v, want processing", v, err)
	}
	if _, err := ms.Update(ctx, uuid.NewString(), func(*meta.Video) error { return nil }); !errors.Is(err, meta.ErrNotFound) {
		t.Fatalf("Update of a missing video: %v, want ErrNotFound", err)
	}
}

// OnStatus runs on creation and on a status change, not on other updates.
func TestOnStatus(t *testing.T) {
	ctx := context.Background()
	var seen []meta.Status
	ms := meta.NewStore(fake(t), bucket).OnStatus(func(_ context.Context, v *meta.Video) { seen = append(seen, v.Status) })
	id := uuid.NewString()
	if err := ms.Create(ctx, &meta.Video{ID: id, Status: meta.Processing}); err != nil {
		t.Fatal(err)
	}
	for _, fn := range []func(*meta.Video){
		func(v *meta.Video) { v.Renditions = append(v.Renditions, meta.Rendition{Name: "240p"}) },
		func(v *meta.Video) { v.Status = meta.Ready },
		func(v *meta.Video) { v.Renditions[0].Progress = 50 },
		func(v *meta.Video) { v.Status = meta.Complete },
	} {
		if _, err := ms.Update(ctx, id, func(v *meta.Video) error { fn(v); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if fmt.Sprint(seen) != "[processing ready complete]" {
		t.Fatalf("OnStatus saw %v, want [processing ready complete]", seen)
	}
}

// A meta.json that is not one (not JSON, over MaxSize) is ErrUndecodable,
// told apart from a missing one and from a store error.
func TestGetUndecodable(t *testing.T) {
	ctx := context.Background()
	st := fake(t)
	ms := meta.NewStore(st, bucket)
	for name, body := range map[string]string{
		"garbled": "not json",
		"array":   `[{"id":"x"}]`,
		"huge":    `{"id":"x","client":{"filename":"` + strings.Repeat("a", meta.MaxSize) + `"}}`,
	} {
		id := uuid.NewString()
		if _, err := st.PutBytes(ctx, bucket, topology.MetaKey(id), []byte(body), storage.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := ms.Get(ctx, id); !errors.Is(err, meta.ErrUndecodable) {
			t.Errorf("%s: %v, want ErrUndecodable", name, err)
		}
	}
	st.Hook(func(string, string, string) error { return errors.New("store down") })
	if _, _, err := ms.Get(ctx, uuid.NewString()); err == nil || errors.Is(err, meta.ErrNotFound) || errors.Is(err, meta.ErrUndecodable) {
		t.Fatalf("store error: %v", err)
	}
}
