package verify

import (
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mieweb/pulsevault/shared/storage"
	"github.com/mieweb/pulsevault/shared/testutil/fakestore"
	"github.com/mieweb/pulsevault/shared/topology"
)

const auditBucket = "pulse-audit"

// lockedLog is buildLog's log in a locked in-memory bucket, every object
// written as the chain writer writes it: create-only, under COMPLIANCE
// retention (none for the keys in bare). It returns the store, the batch
// keys and every key with its version.
func lockedLog(t *testing.T, bare ...string) (*fakestore.Store, []string, map[string]string) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	batches := buildLog(t, dir)
	st := fakestore.New()
	if _, err := st.EnsureBucket(ctx, auditBucket, true); err != nil {
		t.Fatal(err)
	}
	keys, err := Dir(dir).List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	versions := map[string]string{}
	ret := storage.Compliance(30)
	for _, k := range keys {
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(k)))
		if err != nil {
			t.Fatal(err)
		}
		o := storage.PutOptions{IfNoneMatch: true, Retention: &ret}
		for _, n := range bare {
			if n == k {
				o.Retention = nil
			}
		}
		info, err := st.PutBytes(ctx, auditBucket, k, b, o)
		if err != nil {
			t.Fatal(err)
		}
		versions[k] = info.VersionID
	}
	return st, batches, versions
}

func verifyBucket(t *testing.T, st *fakestore.Store) *Report {
	t.Helper()
	r, err := Verify(context.Background(), Bucket{Store: st, Name: auditBucket},
		Options{Keys: map[string]ed25519.PublicKey{signer.KeyID(): signer.Public()}, RetentionDays: 7})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// failedOn reports whether r names key among its failures, with msg in it.
func failedOn(r *Report, key, msg string) bool {
	for _, f := range r.Failures {
		if f.Key == key && strings.Contains(f.Msg, msg) {
			return true
		}
	}
	return false
}

// The auditor's verification of the bucket itself (unit tier: the
// in-memory store keeps the Object Lock semantics): a clean locked log
// passes with every version and retention checked; the store refuses to
// delete a locked version; what an operator can still do (hide an object
// under a delete marker, write a second version over it, write one without
// retention) fails the log and names the object.
func TestVerifyLockedBucket(t *testing.T) {
	ctx := context.Background()
	st, batches, versions := lockedLog(t)
	r := verifyBucket(t, st)
	if !r.OK() || r.VersionsChecked != len(versions) || r.RetentionChecked != len(versions) {
		t.Fatalf("clean locked log: ok %v, %d versions and %d retentions checked of %d objects; failures %v",
			r.OK(), r.VersionsChecked, r.RetentionChecked, len(versions), r.Failures)
	}

	// Deleting a locked version, or shortening its retention, is refused;
	// the log still verifies.
	if err := st.Remove(ctx, auditBucket, batches[1], versions[batches[1]]); !errors.Is(err, storage.ErrLocked) {
		t.Fatalf("delete of a locked batch: %v, want ErrLocked", err)
	}
	short := storage.Compliance(1)
	if err := st.PutRetention(ctx, auditBucket, batches[1], versions[batches[1]], short); !errors.Is(err, storage.ErrLocked) {
		t.Fatalf("shortening a batch's retention: %v, want ErrLocked", err)
	}
	if r := verifyBucket(t, st); !r.OK() {
		t.Fatalf("after refused tampering: %v", r.Failures)
	}

	// A delete marker over a batch: the chain has a gap, and the marker is named.
	if err := st.Remove(ctx, auditBucket, batches[2], ""); err != nil {
		t.Fatal(err)
	}
	if r := verifyBucket(t, st); r.OK() || !failedOn(r, batches[2], "delete marker") {
		t.Fatalf("batch hidden under a delete marker: ok %v, failures %v", r.OK(), r.Failures)
	}

	// A second version over a checkpoint (same bytes even): named.
	st, _, _ = lockedLog(t)
	cp, _ := topology.AuditCheckpointKey("2026-11-03", 14)
	rc, _, err := st.Get(ctx, auditBucket, cp, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	ret := storage.Compliance(30)
	if _, err := st.PutBytes(ctx, auditBucket, cp, b, storage.PutOptions{Retention: &ret}); err != nil {
		t.Fatal(err)
	}
	if r := verifyBucket(t, st); r.OK() || !failedOn(r, cp, "2 versions") {
		t.Fatalf("checkpoint written twice: ok %v, failures %v", r.OK(), r.Failures)
	}

	// A batch without retention (the keys are the same in every lockedLog): named.
	st, _, _ = lockedLog(t, batches[3])
	if r := verifyBucket(t, st); r.OK() || !failedOn(r, batches[3], "not under COMPLIANCE retention") {
		t.Fatalf("batch without retention: ok %v, failures %v", r.OK(), r.Failures)
	}
}
