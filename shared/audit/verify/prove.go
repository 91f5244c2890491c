package verify

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/mieweb/pulsevault/shared/audit/record"
	"github.com/mieweb/pulsevault/shared/topology"
)

// Proof shows that one record is in a signed checkpoint: the record, its
// RFC 6962 leaf index and audit path, and the checkpoint. With a C2SP
// checkpoint (Note) the tree is the whole log's and the leaf index is
// seq-1; with a version 1 day checkpoint it is the day's tree.
type Proof struct {
	Seq        uint64             `json:"seq"`
	Record     string             `json:"record"` // the stored line without its newline: the leaf data
	LeafIndex  uint64             `json:"leaf_index"`
	LeafHash   string             `json:"leaf_hash"` // hex SHA-256(0x00 || record)
	Path       []string           `json:"path"`      // hex audit path, leaf to root
	Note       string             `json:"note,omitempty"`
	TreeSize   uint64             `json:"tree_size,omitempty"`
	Checkpoint *record.Checkpoint `json:"checkpoint,omitempty"`
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
	if p, err := proveNote(ctx, src, all, seq, keys); p != nil || err != nil {
		return p, err
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
	p := &Proof{Seq: seq, Record: string(found), LeafIndex: idx, LeafHash: hex.EncodeToString(leaves[idx]), Checkpoint: cp}
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
	if p.Note != "" {
		return checkNoteProof(p, keys)
	}
	if p.Checkpoint == nil {
		return errors.New("proof has no checkpoint")
	}
	if err := record.VerifySignature(*p.Checkpoint, keys); err != nil {
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

// proveNote builds the proof against the smallest C2SP checkpoint that
// covers seq; nil, nil when none does (the log may predate them).
func proveNote(ctx context.Context, src Source, all []string, seq uint64, keys map[string]ed25519.PublicKey) (*Proof, error) {
	l := &logCheck{keys: keys}
	var best *record.Parsed
	for _, k := range all {
		pk := topology.ParseAuditKey(k)
		if pk.Kind != topology.AuditKindNote || pk.Size < seq || (best != nil && pk.Size >= best.Size) {
			continue
		}
		b, err := src.Read(ctx, k)
		if err != nil {
			return nil, err
		}
		p, err := l.open(b)
		if err != nil || p.Size != pk.Size {
			continue
		}
		best = &p
	}
	if best == nil {
		return nil, nil
	}
	var leaves []tlog.Hash
	var found []byte
	for _, k := range all {
		pk := topology.ParseAuditKey(k)
		if pk.Kind != topology.AuditKindBatch || pk.First > best.Size {
			continue
		}
		data, err := src.Read(ctx, k)
		if err != nil {
			return nil, err
		}
		for line := range bytes.Lines(data) {
			if uint64(len(leaves)) == best.Size {
				break
			}
			body := record.LeafData(line)
			r, err := record.ParseLine(body)
			if err != nil || r.Seq != uint64(len(leaves))+1 {
				return nil, fmt.Errorf("auditverify: %s: records out of order (run audit verify)", k)
			}
			leaves = append(leaves, record.LeafHashOf(line))
			if r.Seq == seq {
				found = append([]byte(nil), body...)
			}
		}
	}
	if uint64(len(leaves)) != best.Size {
		return nil, fmt.Errorf("auditverify: the log holds %d records, its checkpoint %d (run audit verify)", len(leaves), best.Size)
	}
	rp, err := tlog.ProveRecord(int64(best.Size), int64(seq-1), record.HashesFromLeaves(leaves))
	if err != nil {
		return nil, err
	}
	p := &Proof{Seq: seq, Record: string(found), LeafIndex: seq - 1, LeafHash: leaves[seq-1].String(),
		Note: noteBytes(best.Note), TreeSize: best.Size}
	for _, h := range rp {
		p.Path = append(p.Path, h.String())
	}
	if err := CheckProof(p, keys); err != nil {
		return nil, fmt.Errorf("auditverify: the proof built does not verify: %w", err)
	}
	return p, nil
}

// noteBytes is a note as stored: text, blank line, verified signatures.
func noteBytes(n *note.Note) string {
	var b strings.Builder
	b.WriteString(n.Text)
	b.WriteString("\n")
	for _, s := range n.Sigs {
		fmt.Fprintf(&b, "\u2014 %s %s\n", s.Name, s.Base64)
	}
	return b.String()
}

func checkNoteProof(p *Proof, keys map[string]ed25519.PublicKey) error {
	l := &logCheck{keys: keys}
	cp, err := l.open([]byte(p.Note))
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	r, err := record.ParseLine([]byte(p.Record))
	if err != nil {
		return fmt.Errorf("record: %w", err)
	}
	if h, err := r.ComputeHash(); err != nil || h != r.Hash {
		return errors.New("record: hash does not match")
	}
	if r.Seq != p.Seq || p.Seq == 0 || p.LeafIndex != p.Seq-1 || cp.Size != p.TreeSize || p.Seq > cp.Size {
		return errors.New("record seq does not match the leaf index or the checkpoint")
	}
	leaf := tlog.RecordHash([]byte(p.Record))
	if leaf.String() != p.LeafHash {
		return errors.New("leaf hash does not match the record")
	}
	path := make(tlog.RecordProof, len(p.Path))
	for i, s := range p.Path {
		if path[i], err = tlog.ParseHash(s); err != nil {
			return errors.New("path is not base64 hashes")
		}
	}
	if err := tlog.CheckRecord(path, int64(cp.Size), cp.Root, int64(p.LeafIndex), leaf); err != nil {
		return fmt.Errorf("inclusion: %w", err)
	}
	return nil
}
