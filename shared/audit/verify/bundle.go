package verify

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/mieweb/pulsevault/shared/audit/event"
	"github.com/mieweb/pulsevault/shared/audit/record"
	"github.com/mieweb/pulsevault/shared/topology"
)

// BundleFormat names the bundle's format (and its version).
const BundleFormat = "pulsevault-video-proof/v1"

// Bundle is what `audit prove-video` exports for one video: every audit
// record about it, each with its inclusion proof under one signed C2SP
// checkpoint (the newest, with the witness cosignatures stored beside it),
// the log's public keys, and the locked original's hash. CheckBundle
// verifies it offline.
type Bundle struct {
	Format     string    `json:"format"`
	Video      string    `json:"video"`
	PublicKeys []string  `json:"public_keys"` // the log's note verifier keys, as `audit pubkey` prints them
	Checkpoint string    `json:"checkpoint"`  // the signed note every proof is under
	Records    []Proof   `json:"records"`
	Original   *Original `json:"original,omitempty"`
}

// Original is the locked original as the exporter found it.
type Original struct {
	Key       string `json:"key"`
	VersionID string `json:"version_id,omitempty"`
	Size      int64  `json:"size,omitempty"`
	SHA256    string `json:"sha256"` // what video.finalized records (and, when Rehashed, what the pinned version hashes to)
	// Rehashed says the exporter read the pinned, locked version from the
	// media bucket and found this hash (not only the log's word for it).
	Rehashed bool `json:"rehashed"`
}

// ProveVideo builds the bundle of video from the log in src, under the
// newest checkpoint signed by one of keys (empty: the keys published in
// src). Original, when known (read from the media bucket), is checked
// against the hash video.finalized recorded.
func ProveVideo(ctx context.Context, src Source, video string, keys map[string]ed25519.PublicKey, orig *Original) (*Bundle, error) {
	all, err := src.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("auditverify: list %s: %w", src, err)
	}
	if len(keys) == 0 {
		keys = publishedKeys(ctx, src, all)
	}
	l := &logCheck{keys: keys}
	// Every checkpoint the log key signed, and the cosigned copies.
	type cand struct {
		p        record.Parsed
		text     []byte
		cosigned bool
	}
	bySize := map[uint64]*cand{}
	var maxSize uint64
	for _, k := range all {
		pk := topology.ParseAuditKey(k)
		if pk.Kind != topology.AuditKindNote && pk.Kind != topology.AuditKindCosigned {
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
		c := bySize[p.Size]
		switch {
		case c == nil:
			bySize[p.Size] = &cand{p, b, pk.Kind == topology.AuditKindCosigned}
		case pk.Kind == topology.AuditKindCosigned && !c.cosigned && c.p.Root == p.Root:
			c.text, c.cosigned = b, true
		}
		maxSize = max(maxSize, p.Size)
	}
	if len(bySize) == 0 {
		return nil, errors.New("auditverify: no signed C2SP checkpoint in the log yet; try again after the next checkpoint")
	}
	var leaves []tlog.Hash
	var mine []uint64
	bodies := map[uint64][]byte{}
	for _, k := range all {
		pk := topology.ParseAuditKey(k)
		if pk.Kind != topology.AuditKindBatch || pk.First > maxSize {
			continue
		}
		data, err := src.Read(ctx, k)
		if err != nil {
			return nil, err
		}
		for line := range bytes.Lines(data) {
			if uint64(len(leaves)) == maxSize {
				break
			}
			body := record.LeafData(line)
			r, err := record.ParseLine(body)
			if err != nil || r.Seq != uint64(len(leaves))+1 {
				return nil, fmt.Errorf("auditverify: %s: records out of order (run audit verify)", k)
			}
			leaves = append(leaves, record.LeafHashOf(line))
			if r.Object == video {
				mine = append(mine, r.Seq)
				bodies[r.Seq] = append([]byte(nil), body...)
			}
		}
	}
	if uint64(len(leaves)) != maxSize {
		return nil, fmt.Errorf("auditverify: the log holds %d records, its checkpoint %d (run audit verify)", len(leaves), maxSize)
	}
	if len(mine) == 0 {
		return nil, fmt.Errorf("auditverify: no record about video %s in the %d records under the newest checkpoint", video, maxSize)
	}
	// The newest cosigned checkpoint that covers all of them, else the
	// newest signed one.
	var best *cand
	for _, c := range bySize {
		if best == nil || c.cosigned && !best.cosigned && c.p.Size >= mine[len(mine)-1] ||
			c.cosigned == best.cosigned && c.p.Size > best.p.Size {
			best = c
		}
	}
	if best.p.Size < mine[len(mine)-1] {
		best = bySize[maxSize]
	}
	mine = slices.DeleteFunc(mine, func(seq uint64) bool { return seq > best.p.Size })
	bestText := best.text
	if orig == nil {
		// Without the media bucket (a copy of the log): the log's word.
		for _, seq := range mine {
			if r, err := record.ParseLine(bodies[seq]); err == nil && r.Action == event.VideoFinalized && r.SHA256 != "" {
				orig = &Original{SHA256: r.SHA256}
			}
		}
	}
	b := &Bundle{Format: BundleFormat, Video: video, Checkpoint: string(bestText), Original: orig}
	ids := make([]string, 0, len(keys))
	for id := range keys {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		vkey, err := record.VerifierKey(best.p.Origin, keys[id])
		if err != nil {
			return nil, err
		}
		b.PublicKeys = append(b.PublicKeys, vkey)
	}
	hashes := record.HashesFromLeaves(leaves[:best.p.Size])
	for _, seq := range mine {
		rp, err := tlog.ProveRecord(int64(best.p.Size), int64(seq-1), hashes)
		if err != nil {
			return nil, err
		}
		p := Proof{Seq: seq, Record: string(bodies[seq]), LeafIndex: seq - 1, LeafHash: leaves[seq-1].String(),
			Note: b.Checkpoint, TreeSize: best.p.Size}
		for _, h := range rp {
			p.Path = append(p.Path, h.String())
		}
		b.Records = append(b.Records, p)
	}
	if _, err := CheckBundle(b, keys, nil); err != nil {
		return nil, fmt.Errorf("auditverify: the bundle built does not verify: %w", err)
	}
	return b, nil
}

func publishedKeys(ctx context.Context, src Source, all []string) map[string]ed25519.PublicKey {
	keys := map[string]ed25519.PublicKey{}
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
	return keys
}

// BundleKeys are the public keys a bundle carries, for a check without a
// pinned key (which then trusts the bundle's word for its signer).
func BundleKeys(b *Bundle) (map[string]ed25519.PublicKey, error) {
	keys := map[string]ed25519.PublicKey{}
	for _, s := range b.PublicKeys {
		pub, _, err := record.ParseAnyPublicKey(s)
		if err != nil {
			return nil, fmt.Errorf("bundle public key: %w", err)
		}
		keys[record.KeyID(pub)] = pub
	}
	return keys, nil
}

// BundleReport is what CheckBundle found.
type BundleReport struct {
	Records        int
	TreeSize       uint64
	Origin         string
	Cosignatures   int  // signatures on the checkpoint by keys not given (unverified)
	Witnessed      int  // valid cosignatures by the witnesses given
	OriginalHashed bool // the original given was re-hashed and matched
	Finalized      bool // the bundle has the video.finalized record naming the original's hash
}

// CheckBundle verifies a bundle offline: the checkpoint's signature by one
// of keys, each record's hash and inclusion under that checkpoint, that
// every record is about the bundle's video, that the original's hash is
// the one video.finalized recorded, and, when original is not nil, that
// its bytes hash to it.
//
// With witnesses, the checkpoint must carry a valid cosignature of at
// least one of them.
func CheckBundle(b *Bundle, keys map[string]ed25519.PublicKey, original io.Reader, witnesses ...note.Verifier) (BundleReport, error) {
	var rep BundleReport
	if b.Format != BundleFormat {
		return rep, fmt.Errorf("not a %s bundle (format %q)", BundleFormat, b.Format)
	}
	if len(keys) == 0 {
		return rep, errors.New("no public key to check the checkpoint with")
	}
	l := &logCheck{keys: keys}
	cp, err := l.open([]byte(b.Checkpoint), witnesses...)
	if err != nil {
		return rep, fmt.Errorf("checkpoint: %w", err)
	}
	rep.TreeSize, rep.Origin, rep.Cosignatures = cp.Size, cp.Origin, len(cp.Note.UnverifiedSigs)
	for _, w := range witnesses {
		for _, s := range cp.Note.Sigs {
			if s.Name == w.Name() && s.Hash == w.KeyHash() {
				rep.Witnessed++
				break
			}
		}
	}
	if len(witnesses) > 0 && rep.Witnessed == 0 {
		return rep, errors.New("checkpoint: no cosignature by a trusted witness")
	}
	if len(b.Records) == 0 {
		return rep, errors.New("the bundle has no record")
	}
	var finalizedHash string
	seen := map[uint64]bool{}
	for i := range b.Records {
		p := &b.Records[i]
		if p.Note != b.Checkpoint {
			return rep, fmt.Errorf("record %d: proven under another checkpoint than the bundle's", p.Seq)
		}
		if seen[p.Seq] {
			return rep, fmt.Errorf("record %d: listed twice", p.Seq)
		}
		seen[p.Seq] = true
		if err := CheckProof(p, keys); err != nil {
			return rep, fmt.Errorf("record %d: %w", p.Seq, err)
		}
		r, err := record.ParseLine([]byte(p.Record))
		if err != nil {
			return rep, fmt.Errorf("record %d: %w", p.Seq, err)
		}
		if r.Object != b.Video {
			return rep, fmt.Errorf("record %d: about video %q, not %s", p.Seq, r.Object, b.Video)
		}
		if r.Action == event.VideoFinalized && r.SHA256 != "" {
			finalizedHash = r.SHA256
		}
		rep.Records++
	}
	if finalizedHash != "" {
		rep.Finalized = true
		if b.Original == nil || b.Original.SHA256 != finalizedHash {
			return rep, errors.New("the original's hash is not the one video.finalized recorded")
		}
	}
	if original != nil {
		if b.Original == nil || b.Original.SHA256 == "" {
			return rep, errors.New("the bundle names no original hash to check the file against")
		}
		if !rep.Finalized {
			return rep, errors.New("no video.finalized record vouches for the original's hash")
		}
		h := sha256.New()
		if _, err := io.Copy(h, original); err != nil {
			return rep, err
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != b.Original.SHA256 {
			return rep, fmt.Errorf("the original file hashes to %s, the log recorded %s", got, b.Original.SHA256)
		}
		rep.OriginalHashed = true
	}
	return rep, nil
}
