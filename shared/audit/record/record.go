// Package record is the on-disk format of PulseVault's audit log: records
// chained by SHA-256, the batch and checkpoint objects that hold them in the
// locked audit bucket, the RFC 6962 Merkle tree over each day's records, and
// the Ed25519 signatures on checkpoints.
//
// It has no I/O of its own, so the writer (shared/audit/chain) and the
// auditor's verifier (shared/audit/verify) share exactly one definition of
// what a valid log is.
package record

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/mieweb/pulsevault/shared/audit/event"
)

// HashSize is the size of a chain hash (SHA-256).
const HashSize = sha256.Size

// GenesisHash is the prev hash of record 1: 32 zero bytes, hex.
var GenesisHash = hex.EncodeToString(make([]byte, HashSize))

// Record is one appended event: the event itself, its place in the log and
// its link to the record before it.
type Record struct {
	Seq  uint64 `json:"seq"`  // 1, 2, 3, ... without gaps
	Prev string `json:"prev"` // hex hash of record Seq-1 (GenesisHash for 1)
	event.Event
	Hash string `json:"hash,omitempty"` // hex SHA-256(prev bytes || Body())
}

// Body is the canonical JSON the hash covers: the record without its hash.
// encoding/json writes struct fields in declaration order, so the same
// record always gives the same bytes.
func (r Record) Body() ([]byte, error) {
	r.Hash = ""
	return json.Marshal(r)
}

// ComputeHash returns hex SHA-256(prev || Body()) where prev is the raw
// 32 bytes of r.Prev.
func (r Record) ComputeHash() (string, error) {
	prev, err := decodeHash(r.Prev)
	if err != nil {
		return "", fmt.Errorf("prev: %w", err)
	}
	body, err := r.Body()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	h.Write(prev)
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Line is the record as stored: canonical JSON with its hash, then "\n".
func (r Record) Line() ([]byte, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Chain appends events after the record (seq, hash) and returns their
// records, each linked to the one before.
func Chain(seq uint64, hash string, events []event.Event) ([]Record, error) {
	out := make([]Record, 0, len(events))
	for _, e := range events {
		r := Record{Seq: seq + 1, Prev: hash, Event: e}
		h, err := r.ComputeHash()
		if err != nil {
			return nil, err
		}
		r.Hash = h
		out = append(out, r)
		seq, hash = r.Seq, h
	}
	return out, nil
}

// ParseLine decodes one stored line (without its "\n") strictly: unknown
// fields are refused and the bytes must be exactly the record's canonical
// form, so nothing can be hidden in a line that the hash does not cover.
func ParseLine(line []byte) (Record, error) {
	var r Record
	d := json.NewDecoder(bytes.NewReader(line))
	d.DisallowUnknownFields()
	if err := d.Decode(&r); err != nil {
		return Record{}, fmt.Errorf("not a record: %v", err)
	}
	if d.More() {
		return Record{}, errors.New("not a record: trailing data")
	}
	canon, err := r.Line()
	if err != nil {
		return Record{}, err
	}
	if !bytes.Equal(canon[:len(canon)-1], line) {
		return Record{}, errors.New("record is not in canonical form")
	}
	return r, nil
}

// LeafData is what the Merkle tree commits to for a record: its stored line
// without the newline.
func LeafData(line []byte) []byte { return bytes.TrimSuffix(line, []byte{'\n'}) }

func decodeHash(s string) ([]byte, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != HashSize {
		return nil, fmt.Errorf("%q is not a hex SHA-256", s)
	}
	return b, nil
}

// DayOf is the UTC day of t as used in keys and checkpoints: YYYY-MM-DD.
func DayOf(t time.Time) string { return t.UTC().Format(time.DateOnly) }
