package chain

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/mieweb/pulsevault/shared/audit/event"
	"github.com/mieweb/pulsevault/shared/audit/record"
	"github.com/mieweb/pulsevault/shared/audit/verify"
	"github.com/mieweb/pulsevault/shared/audit/witness"
	"github.com/mieweb/pulsevault/shared/topology"
)

func (r *rig) read(t *testing.T, key string) []byte {
	t.Helper()
	rc, _, err := r.st.Get(context.Background(), r.env.Config.AuditBucket, key, 0, -1)
	if err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	return b
}

// The checkpoints the writer stores open with golang.org/x/mod/sumdb/note
// (from the printed verifier key alone) and each stored consistency proof
// checks with tlog.CheckTree between the roots of successive checkpoints.
func TestCheckpointsAreC2SPNotesWithProofs(t *testing.T) {
	r := start(t)
	c := r.chain(t, Config{BatchMax: 100, BatchWait: 10 * time.Millisecond, CheckpointEvery: time.Hour, DedupWindow: time.Hour,
		AckWait: 5 * time.Second, Origin: "audit.test/log"}, nil)
	vkey, _ := record.VerifierKey("audit.test/log", testSigner.Public())
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	var sizes []uint64
	n := 0
	for _, k := range []int{3, 1, 6, 5} {
		var evs []event.Event
		for range k {
			n++
			evs = append(evs, ev(fmt.Sprintf("n-%d", n)))
		}
		res, err := c.Append(context.Background(), evs, true)
		if err != nil || res.Checkpoint != topology.AuditNoteKey(uint64(n)) {
			t.Fatalf("append: %+v %v", res, err)
		}
		sizes = append(sizes, uint64(n))
	}
	var prev *tlog.Tree
	for _, size := range sizes {
		b := r.read(t, topology.AuditNoteKey(size))
		nt, err := note.Open(b, note.VerifierList(v))
		if err != nil {
			t.Fatalf("note.Open: %v\n%s", err, b)
		}
		var tr tlog.Tree
		lines := splitLines(nt.Text)
		if len(lines) != 3 || lines[0] != "audit.test/log" || lines[1] != fmt.Sprint(size) {
			t.Fatalf("body %q", nt.Text)
		}
		if tr.Hash, err = tlog.ParseHash(lines[2]); err != nil {
			t.Fatal(err)
		}
		tr.N = int64(size)
		if prev != nil {
			p, err := record.ParseProof(r.read(t, topology.AuditProofKey(size)))
			if err != nil || p.Old != uint64(prev.N) {
				t.Fatalf("proof: %+v %v", p, err)
			}
			if err := tlog.CheckTree(p.Hashes, tr.N, tr.Hash, prev.N, prev.Hash); err != nil {
				t.Fatalf("tlog.CheckTree %d→%d: %v", prev.N, tr.N, err)
			}
			if err := tlog.CheckTree(p.Hashes, tr.N, tr.Hash, prev.N, tlog.Hash{1}); err == nil {
				t.Fatal("proof checks against a wrong old root")
			}
		}
		prev = &tr
	}
	rep := r.verify(t)
	if rep.Notes != 4 || rep.Records != 15 || rep.Uncheckpointed != 0 {
		t.Fatalf("%+v", rep)
	}
}

// A head written before C2SP checkpoints (no whole-log tree) is migrated:
// the next commit rebuilds the tree from the bucket and signs a first
// checkpoint covering every record, old ones included.
func TestMigrationFromDayCheckpoints(t *testing.T) {
	r := start(t)
	cfg := Config{BatchMax: 100, BatchWait: 10 * time.Millisecond, CheckpointEvery: time.Hour, DedupWindow: time.Hour, AckWait: 5 * time.Second}
	c := r.chain(t, cfg, nil)
	if _, err := c.Append(context.Background(), []event.Event{ev("m1"), ev("m2")}, false); err != nil {
		t.Fatal(err)
	}
	// Make the head look like an old one: no whole-log tree.
	e, err := c.chain.Get(context.Background(), headKey)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := decodeState(e.Value())
	var old map[string]any
	hdr, _ := json.Marshal(s)
	_ = json.Unmarshal(hdr, &old)
	delete(old, "log")
	delete(old, "cp_tree")
	delete(old, "pending")
	delete(old, "objects") // written out already
	hb, _ := json.Marshal(old)
	if _, err := c.chain.Update(context.Background(), headKey, append(hb, '\n'), e.Revision()); err != nil {
		t.Fatal(err)
	}
	res, err := c.Append(context.Background(), []event.Event{ev("m3")}, false)
	if err != nil || res.Checkpoint != topology.AuditNoteKey(3) {
		t.Fatalf("%+v %v", res, err)
	}
	rep := r.verify(t)
	if rep.Notes != 1 || rep.Records != 3 || rep.Uncheckpointed != 0 {
		t.Fatalf("%+v", rep)
	}
}

func splitLines(s string) []string {
	var out []string
	for len(s) > 0 {
		i := 0
		for i < len(s) && s[i] != '\n' {
			i++
		}
		out = append(out, s[:i])
		if i < len(s) {
			i++
		}
		s = s[i:]
	}
	return out
}

// With a witness configured, each checkpoint is cosigned and the cosigned
// note stored beside it; verify with the witness key passes. A witness that
// cannot be reached is counted and blocks nothing.
func TestWitnessCosignsCheckpoints(t *testing.T) {
	r := start(t)
	skey, wvkey, err := witness.GenerateKey("witness.test")
	if err != nil {
		t.Fatal(err)
	}
	vkey, _ := record.VerifierKey(record.DefaultOrigin, testSigner.Public())
	srv, err := witness.NewServer(skey, []string{vkey}, filepath.Join(t.TempDir(), "w.json"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close() // nothing listens there any more
	ws, err := witness.ParseWitnesses(hs.URL + " " + wvkey + ";" + dead.URL + " " + wvkey)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{BatchMax: 100, BatchWait: 10 * time.Millisecond, CheckpointEvery: time.Hour, DedupWindow: time.Hour,
		AckWait: 5 * time.Second, Witnesses: ws}
	c := r.chain(t, cfg, nil)
	for i := range 3 {
		start := time.Now()
		if _, err := c.Append(context.Background(), []event.Event{ev(fmt.Sprintf("w-%d", i))}, true); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("append waited %s for witnesses", d)
		}
		deadline := time.Now().Add(20 * time.Second)
		for c.Status().Cosigned < uint64(i+1) || c.Status().WitnessFailures < uint64(i+1) {
			if time.Now().After(deadline) {
				t.Fatalf("status %+v", c.Status())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	wv, _ := fnote.NewVerifierForCosignatureV1(wvkey)
	lv, _ := note.NewVerifier(vkey)
	b := r.read(t, topology.AuditCosignedKey(3, wv.KeyHash()))
	if n, err := note.Open(b, note.VerifierList(lv, wv)); err != nil || len(n.Sigs) != 2 {
		t.Fatalf("cosigned note: %v", err)
	}
	rep, err := verify.Verify(context.Background(), verify.Bucket{Store: r.st, Name: r.env.Config.AuditBucket},
		verify.Options{Keys: map[string]ed25519.PublicKey{testSigner.KeyID(): testSigner.Public()}, Witnesses: []note.Verifier{wv}})
	if err != nil || !rep.OK() || rep.Witnessed != 3 {
		t.Fatalf("verify with witness: %+v %v", rep, err)
	}
}

// A witness that missed a checkpoint answers 409 with its older size; the
// writer proves the new checkpoint from that size (records read back from
// the bucket) and the witness cosigns it.
func TestLaggingWitnessGetsAProofFromItsSize(t *testing.T) {
	r := start(t)
	skey, wvkey, _ := witness.GenerateKey("witness.test")
	vkey, _ := record.VerifierKey(record.DefaultOrigin, testSigner.Public())
	srv, err := witness.NewServer(skey, []string{vkey}, filepath.Join(t.TempDir(), "w.json"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var calls int
	var mu sync.Mutex
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		if n == 2 { // down for the second checkpoint
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		srv.ServeHTTP(w, req)
	}))
	defer hs.Close()
	ws, _ := witness.ParseWitnesses(hs.URL + " " + wvkey)
	c := r.chain(t, Config{BatchMax: 100, BatchWait: 10 * time.Millisecond, CheckpointEvery: time.Hour, DedupWindow: time.Hour,
		AckWait: 5 * time.Second, Witnesses: ws}, nil)
	for i, k := range []int{3, 4, 5} {
		var evs []event.Event
		for j := range k {
			evs = append(evs, ev(fmt.Sprintf("l-%d-%d", i, j)))
		}
		if _, err := c.Append(context.Background(), evs, true); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for c.Status().Cosigned+c.Status().WitnessFailures < uint64(i+1) {
			if time.Now().After(deadline) {
				t.Fatalf("status %+v", c.Status())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if st := c.Status(); st.Cosigned != 2 || st.WitnessFailures != 1 {
		t.Fatalf("status %+v", st)
	}
	wv, _ := fnote.NewVerifierForCosignatureV1(wvkey)
	if _, err := r.st.Stat(context.Background(), r.env.Config.AuditBucket, topology.AuditCosignedKey(12, wv.KeyHash())); err != nil {
		t.Fatalf("checkpoint 12 not cosigned after the witness lagged at 3: %v", err)
	}
}
