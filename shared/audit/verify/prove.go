package verify

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/mieweb/pulsevault/shared/audit/record"
	"github.com/mieweb/pulsevault/shared/topology"
)

// Proof shows that one record is in a signed checkpoint: the record, its
// RFC 6962 leaf index and audit path in its day's tree, and the checkpoint.
type Proof struct {
	Seq        uint64            `json:"seq"`
	Record     string            `json:"record"` // the stored line without its newline: the leaf data
	LeafIndex  uint64            `json:"leaf_index"`
	LeafHash   string            `json:"leaf_hash"` // hex SHA-256(0x00 || record)
	Path       []string          `json:"path"`      // hex audit path, leaf to root
	Checkpoint record.Checkpoint `json:"checkpoint"`
}

// Prove builds the inclusion proof of record seq against the smallest
// signed checkpoint of its day that covers it.
func Prove(ctx context.Context, src Source, seq uint64, keys map[string]ed25519.PublicKey) (*Proof, error) {
	all, err := src.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("auditverify: list %s: %w", src, err)
	}
	if len(keys) == 0 {
		keys = map[string]ed25519.PublicKey{}
		for _, k := range all {
			if topology.ParseAuditKey(k).Kind != topology.AuditKindPublicKey {
				continue
			}
			if b, err := src.Read(ctx, k); err == nil {
				if pub, err := record.ParsePublicKey(b); err == nil {
					keys[record.KeyID(pub)] = pub
				}
			}
		}
	}
	var day string
	for _, k := range all {
		if pk := topology.ParseAuditKey(k); pk.Kind == topology.AuditKindBatch && pk.First <= seq && seq <= pk.Last {
			day = pk.Day
			break
		}
	}
	if day == "" {
		return nil, fmt.Errorf("auditverify: no batch holds seq %d", seq)
	}
	var cp *record.Checkpoint
	for _, k := range all {
		pk := topology.ParseAuditKey(k)
		if pk.Kind != topology.AuditKindCheckpoint || pk.Day != day {
			continue
		}
		b, err := src.Read(ctx, k)
		if err != nil {
			return nil, err
		}
		c, err := record.ParseCheckpoint(b)
		if err != nil || record.VerifySignature(c, keys) != nil {
			continue
		}
		if c.FirstSeq <= seq && seq <= c.LastSeq && (cp == nil || c.TreeSize < cp.TreeSize) {
			cp = &c
		}
	}
	if cp == nil {
		return nil, fmt.Errorf("auditverify: no signed checkpoint covers seq %d yet (day %s); try again after the next checkpoint", seq, day)
	}
	// The day's leaves up to the checkpoint, in order.
	leaves := make([][]byte, 0, cp.TreeSize)
	var found []byte
	want := cp.FirstSeq
	for _, k := range all {
		pk := topology.ParseAuditKey(k)
		if pk.Kind != topology.AuditKindBatch || pk.Day != day || pk.Last < cp.FirstSeq || pk.First > cp.LastSeq {
			continue
		}
		data, err := src.Read(ctx, k)
		if err != nil {
			return nil, err
		}
		for line := range bytes.Lines(data) {
			body := record.LeafData(line)
			r, err := record.ParseLine(body)
			if err != nil {
				return nil, fmt.Errorf("auditverify: %s: %w (run audit verify)", k, err)
			}
			if r.Seq < cp.FirstSeq || r.Seq > cp.LastSeq {
				continue
			}
			if r.Seq != want {
				return nil, fmt.Errorf("auditverify: %s: seq %d where %d was expected (run audit verify)", k, r.Seq, want)
			}
			want++
			leaves = append(leaves, record.LeafHash(body))
			if r.Seq == seq {
				found = append([]byte(nil), body...)
			}
		}
	}
	idx := seq - cp.FirstSeq
	path, err := record.InclusionProof(leaves, idx, cp.TreeSize)
	if err != nil {
		return nil, err
	}
	p := &Proof{Seq: seq, Record: string(found), LeafIndex: idx, LeafHash: hex.EncodeToString(leaves[idx]), Checkpoint: *cp}
	for _, h := range path {
		p.Path = append(p.Path, hex.EncodeToString(h))
	}
	if err := CheckProof(p, keys); err != nil {
		return nil, fmt.Errorf("auditverify: the proof built does not verify: %w", err)
	}
	return p, nil
}

// CheckProof verifies a proof on its own: the checkpoint's signature, the
// record's place in the chain (its seq) and its inclusion under the root.
func CheckProof(p *Proof, keys map[string]ed25519.PublicKey) error {
	if err := record.VerifySignature(p.Checkpoint, keys); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	r, err := record.ParseLine([]byte(p.Record))
	if err != nil {
		return fmt.Errorf("record: %w", err)
	}
	if h, err := r.ComputeHash(); err != nil || h != r.Hash {
		return errors.New("record: hash does not match")
	}
	if r.Seq != p.Seq || p.Seq < p.Checkpoint.FirstSeq || p.Seq-p.Checkpoint.FirstSeq != p.LeafIndex {
		return errors.New("record seq does not match the leaf index")
	}
	leaf := record.LeafHash([]byte(p.Record))
	if hex.EncodeToString(leaf) != p.LeafHash {
		return errors.New("leaf hash does not match the record")
	}
	root, err := hex.DecodeString(p.Checkpoint.Root)
	if err != nil {
		return errors.New("checkpoint root is not hex")
	}
	path := make([][]byte, len(p.Path))
	for i, s := range p.Path {
		if path[i], err = hex.DecodeString(s); err != nil {
			return errors.New("path is not hex")
		}
	}
	if err := record.VerifyInclusion(p.LeafIndex, p.Checkpoint.TreeSize, leaf, path, root); err != nil {
		return fmt.Errorf("inclusion: %w", err)
	}
	return nil
}
