package witness

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/mieweb/pulsevault/shared/audit/record"
)

const origin = "audit.test/log"

type fakeLog struct {
	s      *record.Signer
	lines  [][]byte
	leaves []tlog.Hash
}

func newLog(seed byte) *fakeLog {
	return &fakeLog{s: record.NewSigner(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, 32)))}
}

func (l *fakeLog) grow(n int, tag string) {
	for range n {
		line := []byte(fmt.Sprintf("%s record %d\n", tag, len(l.lines)))
		l.lines = append(l.lines, line)
		l.leaves = append(l.leaves, record.LeafHashOf(line))
	}
}

func (l *fakeLog) checkpoint(t *testing.T, size int) []byte {
	t.Helper()
	root, err := tlog.TreeHash(int64(size), record.HashesFromLeaves(l.leaves[:size]))
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.s.SignNote(origin, uint64(size), root)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (l *fakeLog) proof(t *testing.T, old, size int) record.Proof {
	t.Helper()
	if old == 0 {
		return record.Proof{}
	}
	p, err := tlog.ProveTree(int64(size), int64(old), record.HashesFromLeaves(l.leaves[:size]))
	if err != nil {
		t.Fatal(err)
	}
	return record.Proof{Old: uint64(old), Hashes: p}
}

// The witness cosigns a growing log, refuses a wrong old size (409 with its
// own), a fork (422), a rollback (409), a checkpoint signed by another key
// (403), and keeps its state across a restart.
func TestWitnessCosignsOnlyAppendOnlyGrowth(t *testing.T) {
	lg := newLog(1)
	lg.grow(20, "a")
	vkey, _ := record.VerifierKey(origin, lg.s.Public())
	skey, wvkey, err := GenerateKey("witness.test")
	if err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(t.TempDir(), "state.json")
	srv, err := NewServer(skey, []string{vkey}, state, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	wv, err := fnote.NewVerifierForCosignatureV1(wvkey)
	if err != nil {
		t.Fatal(err)
	}
	c := &Client{URL: hs.URL, Verifier: wv}
	ctx := context.Background()
	out, err := c.Add(ctx, lg.proof(t, 0, 5), lg.checkpoint(t, 5))
	if err != nil {
		t.Fatal(err)
	}
	lv, _ := note.NewVerifier(vkey)
	n, err := note.Open(out, note.VerifierList(lv, wv))
	if err != nil || len(n.Sigs) != 2 {
		t.Fatalf("cosigned note: %v %+v", err, n)
	}
	if ts, err := fnote.CoSigV1Timestamp(n.Sigs[1]); err != nil || time.Since(ts) > time.Minute {
		t.Fatalf("cosignature timestamp %v %v", ts, err)
	}
	if _, err := c.Add(ctx, lg.proof(t, 5, 12), lg.checkpoint(t, 12)); err != nil {
		t.Fatal(err)
	}
	// Wrong old size: 409 naming the witness's.
	var ce *ConflictError
	if _, err := c.Add(ctx, lg.proof(t, 5, 15), lg.checkpoint(t, 15)); !errors.As(err, &ce) || ce.Size != 12 {
		t.Fatalf("stale old size: %v", err)
	}
	// Rollback: an older checkpoint.
	if _, err := c.Add(ctx, lg.proof(t, 5, 8), lg.checkpoint(t, 8)); !errors.As(err, &ce) {
		t.Fatalf("rollback cosigned: %v", err)
	}
	// Fork: records 12.. rewritten, checkpoint signed by the log key.
	fork := &fakeLog{s: lg.s, lines: lg.lines[:10:10], leaves: lg.leaves[:10:10]}
	fork.grow(10, "forged")
	if _, err := c.Add(ctx, fork.proof(t, 12, 16), fork.checkpoint(t, 16)); err == nil {
		t.Fatal("fork cosigned")
	}
	// Same size, other root.
	if _, err := c.Add(ctx, record.Proof{Old: 12}, fork.checkpoint(t, 12)); err == nil {
		t.Fatal("same-size fork cosigned")
	}
	// Another log key (another user's log, same origin name): 403.
	other := newLog(2)
	other.grow(20, "a")
	if _, err := c.Add(ctx, other.proof(t, 12, 14), other.checkpoint(t, 14)); err == nil {
		t.Fatal("checkpoint by an unknown key cosigned")
	}
	// Restart: the state survives.
	srv2, err := NewServer(skey, []string{vkey}, state, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	hs2 := httptest.NewServer(srv2)
	defer hs2.Close()
	c2 := &Client{URL: hs2.URL, Verifier: wv}
	if _, err := c2.Add(ctx, lg.proof(t, 5, 15), lg.checkpoint(t, 15)); !errors.As(err, &ce) || ce.Size != 12 {
		t.Fatalf("after restart: %v", err)
	}
	if _, err := c2.Add(ctx, lg.proof(t, 12, 20), lg.checkpoint(t, 20)); err != nil {
		t.Fatal(err)
	}
	if ws, err := ParseWitnesses(hs.URL + " " + wvkey + "; " + hs2.URL + " " + wvkey); err != nil || len(ws) != 2 {
		t.Fatalf("ParseWitnesses: %v", err)
	}
	if _, err := ParseWitnesses("nourl " + wvkey); err == nil {
		t.Fatal("bad AUDIT_WITNESSES accepted")
	}
}
