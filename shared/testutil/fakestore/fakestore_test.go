package fakestore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mieweb/pulsevault/shared/storage"
	"github.com/mieweb/pulsevault/shared/testutil/fakestore"
)

// The fake keeps the contract the real store keeps (shared/storage's
// TestContract runs the same checks against versitygw).
func TestContract(t *testing.T) {
	fakestore.RunContract(t, fakestore.New(), "pulse-media", "pulse-uploads", "contract/")
}

// Retention ends: once its date has passed, a version can be removed.
func TestRetentionExpires(t *testing.T) {
	ctx := context.Background()
	s := fakestore.New()
	now := time.Now()
	s.Now = func() time.Time { return now }
	if _, err := s.EnsureBucket(ctx, "b", true); err != nil {
		t.Fatal(err)
	}
	ret := storage.Compliance(1)
	put, err := s.PutBytes(ctx, "b", "k", []byte("x"), storage.PutOptions{Retention: &ret})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(ctx, "b", "k", put.VersionID); !errors.Is(err, storage.ErrLocked) {
		t.Fatalf("remove while retained: %v", err)
	}
	now = now.Add(49 * time.Hour)
	if err := s.Remove(ctx, "b", "k", put.VersionID); err != nil {
		t.Fatalf("remove after the retain-until date: %v", err)
	}
	if _, err := s.Stat(ctx, "b", "k"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("stat after remove: %v", err)
	}
}

// A hook's error is the operation's, and the store is unchanged.
func TestHook(t *testing.T) {
	ctx := context.Background()
	s := fakestore.New()
	if _, err := s.EnsureBucket(ctx, "b", false); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	s.Hook(func(op, bucket, key string) error {
		if op == "put" && key == "k" {
			return boom
		}
		return nil
	})
	if _, err := s.PutBytes(ctx, "b", "k", []byte("x"), storage.PutOptions{}); !errors.Is(err, boom) {
		t.Fatalf("put: %v, want the hook's error", err)
	}
	if _, err := s.Stat(ctx, "b", "k"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("stat after a failed put: %v", err)
	}
	s.Hook(nil)
	if _, err := s.PutBytes(ctx, "b", "k", []byte("x"), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
}
