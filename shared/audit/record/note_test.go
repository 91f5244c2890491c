package record

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// The C2SP checkpoint opens with golang.org/x/mod/sumdb/note from nothing
// but the printed verifier key, and its root is tlog's tree hash of the
// records.
func TestNoteCheckpointOpensWithXMod(t *testing.T) {
	s := NewSigner(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32)))
	var leaves []tlog.Hash
	var tr Tree
	for i := range 5 {
		l := []byte(fmt.Sprintf(`{"seq":%d}`+"\n", i+1))
		leaves = append(leaves, LeafHashOf(l))
		if err := tr.Append(l); err != nil {
			t.Fatal(err)
		}
	}
	root, _ := tr.Root()
	var rh tlog.Hash
	copy(rh[:], root)
	want, err := tlog.TreeHash(5, HashesFromLeaves(leaves))
	if err != nil || want != rh {
		t.Fatalf("compact root %x, tlog.TreeHash %x (%v)", rh, want, err)
	}
	b, err := s.SignNote("example.org/audit", 5, rh)
	if err != nil {
		t.Fatal(err)
	}
	vkey, _ := VerifierKey("example.org/audit", s.Public())
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(b, note.VerifierList(v))
	if err != nil {
		t.Fatal(err)
	}
	if wantText := "example.org/audit\n5\n" + fmt.Sprintf("%s", rh) + "\n"; n.Text != wantText {
		t.Fatalf("body %q, want %q", n.Text, wantText)
	}
	p, err := OpenNote(b, note.VerifierList(v))
	if err != nil || p.Size != 5 || p.Root != rh {
		t.Fatalf("OpenNote: %+v %v", p, err)
	}
	forged := bytes.Replace(b, []byte("\n5\n"), []byte("\n4\n"), 1)
	if _, err := note.Open(forged, note.VerifierList(v)); err == nil {
		t.Fatal("altered checkpoint opened")
	}
	other, _ := VerifierKey("example.org/audit", NewSigner(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{8}, 32))).Public())
	ov, _ := note.NewVerifier(other)
	if _, err := OpenNote(b, note.VerifierList(ov)); err == nil {
		t.Fatal("checkpoint opened with another key")
	}
}

// ProveConsistency, from only the compact range at the old size and the
// new leaves, makes proofs tlog.CheckTree accepts for every pair of sizes
// up to 40, and a proof for other leaves fails.
func TestConsistencyProofsCheckWithTlog(t *testing.T) {
	var leaves []tlog.Hash
	var lines [][]byte
	for i := range 40 {
		l := []byte(fmt.Sprintf("leaf %d\n", i))
		lines = append(lines, l)
		leaves = append(leaves, LeafHashOf(l))
	}
	all := HashesFromLeaves(leaves)
	for old := uint64(1); old <= 40; old++ {
		var at Tree
		if err := at.Append(lines[:old]...); err != nil {
			t.Fatal(err)
		}
		oldRoot, _ := tlog.TreeHash(int64(old), all)
		for size := old; size <= 40; size++ {
			p, err := ProveConsistency(at, leaves[old:size], size)
			if err != nil {
				t.Fatalf("%d→%d: %v", old, size, err)
			}
			root, _ := tlog.TreeHash(int64(size), all)
			if err := tlog.CheckTree(p, int64(size), root, int64(old), oldRoot); err != nil {
				t.Fatalf("%d→%d: %v", old, size, err)
			}
			pp, err := ParseProof(Proof{Old: old, Hashes: p}.Marshal())
			if err != nil || pp.Old != old || len(pp.Hashes) != len(p) {
				t.Fatalf("proof round trip: %v", err)
			}
			if size > old {
				bad := append([]tlog.Hash{}, leaves[old:size]...)
				bad[len(bad)-1][0] ^= 1
				bp, _ := ProveConsistency(at, bad, size)
				if tlog.CheckTree(bp, int64(size), root, int64(old), oldRoot) == nil && len(bp) > 0 && !equalProofs(bp, p) {
					t.Fatalf("%d→%d: proof over other leaves verified", old, size)
				}
			}
		}
	}
	for _, bad := range []string{"old x\n", "old 01\n", "old 3\nnot base64\n", "size 3\n"} {
		if _, err := ParseProof([]byte(bad)); err == nil {
			t.Errorf("ParseProof(%q) accepted", bad)
		}
	}
	if !strings.HasPrefix(string(Proof{Old: 3}.Marshal()), "old 3\n") {
		t.Fatal("proof header")
	}
}

func equalProofs(a, b tlog.TreeProof) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Every form `audit pubkey` has printed reads back as the same key.
func TestParseAnyPublicKeyRoundTrips(t *testing.T) {
	s := NewSigner(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, 32)))
	vkey, _ := VerifierKey("audit.example.org/log", s.Public())
	for _, in := range []string{vkey, s.KeyID() + " " + string(EncodePublicKey(s.Public())), string(EncodePublicKey(s.Public()))} {
		pub, origin, err := ParseAnyPublicKey(in)
		if err != nil || !pub.Equal(s.Public()) {
			t.Fatalf("%q: %v", in, err)
		}
		if in == vkey && origin != "audit.example.org/log" {
			t.Fatalf("origin %q", origin)
		}
	}
	for _, bad := range []string{"0000000000000000 " + string(EncodePublicKey(s.Public())), "a+b+c", "short"} {
		if _, _, err := ParseAnyPublicKey(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
