package record

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// The log as a C2SP transparency log (https://c2sp.org/tlog-checkpoint):
//
// Leaf i (0-based) of the log's tree is record seq i+1, and its leaf hash
// is the RFC 6962 hash of the record's stored line without its "\n":
// tlog.RecordHash(line) = SHA-256(0x00 || line). The tree runs over the
// whole log since seq 1 (not per day), so a checkpoint's tree size is the
// seq of the last record it covers.
//
// A checkpoint is a C2SP signed note: the body
//
//	<origin>\n<tree size>\n<base64 RFC 6962 root>\n
//
// and an Ed25519 note signature ("— <origin> <base64(key hash || sig)>")
// by the log's key, whose note name is the origin.

// DefaultOrigin is the log's origin line unless AUDIT_ORIGIN says another.
const DefaultOrigin = "pulsevault-audit"

// LeafHashOf is the tlog leaf hash of a stored record line.
func LeafHashOf(line []byte) tlog.Hash { return tlog.RecordHash(LeafData(line)) }

// VerifierKey is the note verifier key ("vkey") of pub under the name
// origin: <origin>+<key hash>+<base64(0x01 || pub)>. It is the form
// `audit pubkey` prints and `--public-key` takes.
func VerifierKey(origin string, pub ed25519.PublicKey) (string, error) {
	return note.NewEd25519VerifierKey(origin, pub)
}

// NoteSigner is the note signer of the log's key under the name origin.
func (s *Signer) NoteSigner(origin string) (note.Signer, error) {
	vkey, err := VerifierKey(origin, s.Public())
	if err != nil {
		return nil, err
	}
	// vkey is name+hash+base64(alg||pub); the signer key has the same name
	// and hash, and the seed in place of the public key.
	parts := strings.SplitN(vkey, "+", 3)
	skey := "PRIVATE+KEY+" + parts[0] + "+" + parts[1] + "+" +
		base64.StdEncoding.EncodeToString(append([]byte{1}, s.key.Seed()...))
	return note.NewSigner(skey)
}

// SignNote makes the C2SP checkpoint of the tree (size, root) of origin.
func (s *Signer) SignNote(origin string, size uint64, root tlog.Hash) ([]byte, error) {
	ns, err := s.NoteSigner(origin)
	if err != nil {
		return nil, err
	}
	body := log.Checkpoint{Origin: origin, Size: size, Hash: root[:]}.Marshal()
	return note.Sign(&note.Note{Text: string(body)}, ns)
}

// Parsed is an opened C2SP checkpoint.
type Parsed struct {
	Origin string
	Size   uint64
	Root   tlog.Hash
	Note   *note.Note // with the signatures that verified
}

// OpenNote checks a C2SP checkpoint's signature with one of logKeys (note
// verifiers) and parses its body. Signatures by other keys are left in
// Note.UnverifiedSigs.
func OpenNote(b []byte, logKeys note.Verifiers) (Parsed, error) {
	n, err := note.Open(b, logKeys)
	if err != nil {
		return Parsed{}, fmt.Errorf("checkpoint signature: %w", err)
	}
	var cp log.Checkpoint
	rest, err := cp.Unmarshal([]byte(n.Text))
	if err != nil {
		return Parsed{}, fmt.Errorf("checkpoint body: %w", err)
	}
	if len(rest) > 0 {
		return Parsed{}, errors.New("checkpoint body: extension lines are not used by this log")
	}
	if len(cp.Hash) != tlog.HashSize {
		return Parsed{}, errors.New("checkpoint body: root is not a SHA-256 hash")
	}
	p := Parsed{Origin: cp.Origin, Size: cp.Size, Note: n}
	copy(p.Root[:], cp.Hash)
	if n.Sigs[0].Name != cp.Origin {
		return Parsed{}, fmt.Errorf("checkpoint of %q signed by key %q: the log key's name must be the origin", cp.Origin, n.Sigs[0].Name)
	}
	return p, nil
}

// NoteOrigin is the first line of a note's text, read without any check:
// it says which log (and so which key name) a checkpoint claims.
func NoteOrigin(b []byte) string {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	return string(line)
}

// Proof is a consistency proof between two checkpoints, stored as the
// header of a C2SP tlog-witness add-checkpoint request:
//
//	old <size>\n
//	<base64 hash>\n   (one line per proof hash)
type Proof struct {
	Old    uint64
	Hashes tlog.TreeProof
}

// Marshal is the stored form.
func (p Proof) Marshal() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "old %d\n", p.Old)
	for _, h := range p.Hashes {
		b.WriteString(base64.StdEncoding.EncodeToString(h[:]))
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// ParseProof reads a stored proof (or a request header up to, without,
// its blank line).
func ParseProof(b []byte) (Proof, error) {
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	v, ok := strings.CutPrefix(lines[0], "old ")
	old, err := strconv.ParseUint(v, 10, 64)
	if !ok || err != nil || strconv.FormatUint(old, 10) != v {
		return Proof{}, errors.New("proof: first line must be \"old <size>\"")
	}
	p := Proof{Old: old}
	for _, l := range lines[1:] {
		raw, err := base64.StdEncoding.DecodeString(l)
		if err != nil || len(raw) != tlog.HashSize {
			return Proof{}, errors.New("proof: a line is not base64 of a SHA-256 hash")
		}
		var h tlog.Hash
		copy(h[:], raw)
		p.Hashes = append(p.Hashes, h)
	}
	if len(p.Hashes) > 63 {
		return Proof{}, errors.New("proof: too many hashes")
	}
	return p, nil
}

// ProveConsistency returns the consistency proof from the tree of size old
// to the tree of size size. at is the compact range of the tree at old (as
// record.Tree keeps it) and leaves the leaf hashes old..size-1: those are
// all the hashes such a proof can need (tested for every pair of sizes).
func ProveConsistency(at Tree, leaves []tlog.Hash, size uint64) (tlog.TreeProof, error) {
	old := at.Size
	if size != old+uint64(len(leaves)) {
		return nil, fmt.Errorf("auditlog: proof: %d leaves after size %d do not make size %d", len(leaves), old, size)
	}
	if old == 0 || old == size {
		return tlog.TreeProof{}, nil
	}
	// The compact range's nodes, left to right: one per set bit of old.
	compact := map[[2]int64]tlog.Hash{}
	i := 0
	for l := 63; l >= 0; l-- {
		if old&(1<<l) == 0 {
			continue
		}
		lo := int64(old &^ (1<<(l+1) - 1))
		var h tlog.Hash
		copy(h[:], at.Hashes[i])
		compact[[2]int64{int64(l), lo >> l}] = h
		i++
	}
	var sub func(lo, hi int64) tlog.Hash
	sub = func(lo, hi int64) tlog.Hash { // a perfect subtree within leaves
		if hi-lo == 1 {
			return leaves[lo-int64(old)]
		}
		mid := lo + (hi-lo)/2
		return tlog.NodeHash(sub(lo, mid), sub(mid, hi))
	}
	r := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for j, x := range idx {
			level, n := tlog.SplitStoredHashIndex(x)
			lo, hi := n<<level, (n+1)<<level
			if h, ok := compact[[2]int64{int64(level), n}]; ok {
				out[j] = h
				continue
			}
			if lo < int64(old) || hi > int64(size) {
				return nil, fmt.Errorf("auditlog: proof needs node %d..%d, which is neither new nor in the compact range", lo, hi)
			}
			out[j] = sub(lo, hi)
		}
		return out, nil
	})
	return tlog.ProveTree(int64(size), int64(old), r)
}

// HashesFromLeaves is a tlog.HashReader over a complete list of leaf
// hashes (leaf i at index i), for proofs from any size: the auditor's
// verifier and the writer's fallback when a witness is far behind.
func HashesFromLeaves(leaves []tlog.Hash) tlog.HashReader {
	var sub func(lo, hi int64) tlog.Hash
	sub = func(lo, hi int64) tlog.Hash {
		if hi-lo == 1 {
			return leaves[lo]
		}
		mid := lo + (hi-lo)/2
		return tlog.NodeHash(sub(lo, mid), sub(mid, hi))
	}
	return tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for j, x := range idx {
			level, n := tlog.SplitStoredHashIndex(x)
			lo, hi := n<<level, (n+1)<<level
			if hi > int64(len(leaves)) {
				return nil, fmt.Errorf("auditlog: node %d..%d beyond %d leaves", lo, hi, len(leaves))
			}
			out[j] = sub(lo, hi)
		}
		return out, nil
	})
}

// ParseAnyPublicKey reads a log public key in any form this log has
// printed: a note verifier key (origin+hash+base64(0x01 || key), what
// `audit pubkey` prints now; origin is then its name), the older
// "<key id> <base64>" line, or bare base64 of the 32 bytes.
func ParseAnyPublicKey(s string) (pub ed25519.PublicKey, origin string, err error) {
	s = strings.TrimSpace(s)
	if pub, err := ParsePublicKey([]byte(s)); err == nil {
		return pub, "", nil
	}
	if !strings.Contains(s, " ") {
		v, err := note.NewVerifier(s)
		if err != nil {
			return nil, "", fmt.Errorf("auditlog: verifier key: %w", err)
		}
		parts := strings.SplitN(s, "+", 3)
		raw, err := base64.StdEncoding.DecodeString(parts[2])
		if err != nil || len(raw) != 1+ed25519.PublicKeySize || raw[0] != 1 {
			return nil, "", errors.New("auditlog: verifier key is not an Ed25519 note key")
		}
		return ed25519.PublicKey(raw[1:]), v.Name(), nil
	}
	if id, b, ok := strings.Cut(s, " "); ok {
		pub, err := ParsePublicKey([]byte(b))
		if err != nil {
			return nil, "", err
		}
		if KeyID(pub) != id {
			return nil, "", fmt.Errorf("auditlog: key id %s does not match the key", id)
		}
		return pub, "", nil
	}
	return nil, "", errors.New("auditlog: not a public key (a verifier key from `audit pubkey`, or base64 of 32 bytes)")
}
