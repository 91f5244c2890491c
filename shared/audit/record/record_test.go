package record

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mieweb/pulsevault/shared/audit/event"
)

func events(n int) []event.Event {
	out := make([]event.Event, n)
	for i := range out {
		out[i] = event.Event{V: 1, ID: fmt.Sprintf("ev-%d", i), Time: time.Date(2026, 11, 3, 10, 0, i, 0, time.UTC),
			Actor: "service:test", Action: event.URLSigned, Outcome: event.Success}
	}
	return out
}

func TestChainLinksAndHashes(t *testing.T) {
	recs, err := Chain(0, GenesisHash, events(3))
	if err != nil {
		t.Fatal(err)
	}
	prev := GenesisHash
	for i, r := range recs {
		if r.Seq != uint64(i+1) || r.Prev != prev {
			t.Fatalf("record %d: seq %d prev %s", i, r.Seq, r.Prev)
		}
		// hash = SHA-256(prev bytes || canonical body), recomputed by hand.
		pb, _ := hex.DecodeString(r.Prev)
		body, _ := r.Body()
		if bytes.Contains(body, []byte(`"hash"`)) {
			t.Fatalf("body includes the hash: %s", body)
		}
		sum := sha256.Sum256(append(pb, body...))
		if r.Hash != hex.EncodeToString(sum[:]) {
			t.Fatalf("record %d hash %s, want %x", i, r.Hash, sum)
		}
		prev = r.Hash
	}
	// Continuing from the head gives the same records as one long chain.
	more, _ := Chain(recs[2].Seq, recs[2].Hash, events(4)[3:])
	all, _ := Chain(0, GenesisHash, events(4))
	if more[0].Hash != all[3].Hash {
		t.Fatal("chaining in two batches differs from one")
	}
}

func TestParseLineIsStrict(t *testing.T) {
	recs, _ := Chain(0, GenesisHash, events(1))
	line, _ := recs[0].Line()
	body := LeafData(line)
	if r, err := ParseLine(body); err != nil || r.Hash != recs[0].Hash {
		t.Fatalf("round trip: %v", err)
	}
	for name, bad := range map[string][]byte{
		"extra field":   bytes.Replace(body, []byte(`{"seq"`), []byte(`{"x":1,"seq"`), 1),
		"spaces":        bytes.Replace(body, []byte(`,"prev"`), []byte(` ,"prev"`), 1),
		"trailing data": append(append([]byte{}, body...), []byte(` {}`)...),
		"not json":      []byte("seq=1"),
	} {
		if _, err := ParseLine(bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestMerkleInclusionEverywhere(t *testing.T) {
	var lines [][]byte
	var leaves [][]byte
	for i := range 33 {
		l := []byte(fmt.Sprintf("line %d\n", i))
		lines = append(lines, l)
		leaves = append(leaves, LeafHash(l))
	}
	for size := uint64(1); size <= uint64(len(lines)); size++ {
		var tr Tree
		if err := tr.Append(lines[:size]...); err != nil {
			t.Fatal(err)
		}
		root, err := tr.Root()
		if err != nil {
			t.Fatal(err)
		}
		for idx := range size {
			path, err := InclusionProof(leaves, idx, size)
			if err != nil {
				t.Fatal(err)
			}
			if err := VerifyInclusion(idx, size, leaves[idx], path, root); err != nil {
				t.Fatalf("size %d index %d: %v", size, idx, err)
			}
			if err := VerifyInclusion(idx, size, leaves[(idx+1)%uint64(len(leaves))], path, root); err == nil && size > 1 {
				t.Fatalf("size %d index %d: wrong leaf verified", size, idx)
			}
		}
	}
	// RFC 6962 by hand for two leaves: SHA-256(0x01 || leaf0 || leaf1).
	var tr Tree
	_ = tr.Append(lines[:2]...)
	root, _ := tr.Root()
	want := sha256.Sum256(append(append([]byte{1}, leaves[0]...), leaves[1]...))
	if !bytes.Equal(root, want[:]) {
		t.Fatal("two-leaf root is not RFC 6962's")
	}
	l0 := sha256.Sum256(append([]byte{0}, []byte("line 0")...))
	if !bytes.Equal(leaves[0], l0[:]) {
		t.Fatal("leaf hash must cover the line without its newline, prefixed 0x00")
	}
}

func TestCheckpointSignature(t *testing.T) {
	seed := bytes.Repeat([]byte{7}, ed25519.SeedSize)
	s, err := ParseSeed([]byte(" " + b64(seed) + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseSeed([]byte("short")); err == nil || !strings.Contains(err.Error(), SecretName) {
		t.Fatalf("bad seed: %v", err)
	}
	cp, err := s.Sign(Checkpoint{V: 1, Origin: Origin, Day: "2026-11-03", FirstSeq: 1, LastSeq: 3, TreeSize: 3,
		Root: strings.Repeat("ab", 32), HeadHash: strings.Repeat("cd", 32), Time: time.Unix(0, 0).UTC()})
	if err != nil {
		t.Fatal(err)
	}
	again, _ := s.Sign(cp)
	if again.Signature != cp.Signature {
		t.Fatal("signing is not deterministic")
	}
	keys := map[string]ed25519.PublicKey{s.KeyID(): s.Public()}
	if err := VerifySignature(cp, keys); err != nil {
		t.Fatal(err)
	}
	b, _ := cp.Marshal()
	parsed, err := ParseCheckpoint(b)
	if err != nil || VerifySignature(parsed, keys) != nil {
		t.Fatalf("stored form: %v", err)
	}
	forged := cp
	forged.TreeSize, forged.LastSeq = 4, 4
	if err := VerifySignature(forged, keys); err == nil {
		t.Fatal("altered checkpoint verified")
	}
	other := NewSigner(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{8}, 32)))
	if err := VerifySignature(cp, map[string]ed25519.PublicKey{other.KeyID(): other.Public()}); err == nil {
		t.Fatal("unknown key verified")
	}
	pub, err := ParsePublicKey(EncodePublicKey(s.Public()))
	if err != nil || !pub.Equal(s.Public()) {
		t.Fatal("public key round trip")
	}
}
