package record

import (
	"crypto"
	_ "crypto/sha256" // the hash behind rfc6962.DefaultHasher
	"fmt"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// hasher is RFC 6962's tree hasher: leaf = SHA-256(0x00 || data),
// node = SHA-256(0x01 || left || right).
var hasher = rfc6962.New(crypto.SHA256)

var rangeFactory = compact.RangeFactory{Hash: hasher.HashChildren}

// LeafHash is the RFC 6962 leaf hash of a stored record line.
func LeafHash(line []byte) []byte { return hasher.HashLeaf(LeafData(line)) }

// Tree is a day's Merkle tree kept as a compact range: the roots of its
// perfect subtrees, at most 64 hashes whatever the size. It is what the
// chain head carries so that any writer can extend the tree and sign its
// root without reading the day's records back.
type Tree struct {
	Size   uint64   `json:"size"`
	Hashes [][]byte `json:"hashes"`
}

// Append adds leaves (record lines) to the tree.
func (t *Tree) Append(lines ...[]byte) error {
	r, err := rangeFactory.NewRange(0, t.Size, t.Hashes)
	if err != nil {
		return fmt.Errorf("auditlog: tree: %w", err)
	}
	for _, l := range lines {
		if err := r.Append(LeafHash(l), nil); err != nil {
			return fmt.Errorf("auditlog: tree: %w", err)
		}
	}
	t.Size, t.Hashes = r.End(), r.Hashes()
	return nil
}

// AppendLeafHash adds one leaf by its hash.
func (t *Tree) AppendLeafHash(h []byte) error {
	r, err := rangeFactory.NewRange(0, t.Size, t.Hashes)
	if err != nil {
		return fmt.Errorf("auditlog: tree: %w", err)
	}
	if err := r.Append(h, nil); err != nil {
		return fmt.Errorf("auditlog: tree: %w", err)
	}
	t.Size, t.Hashes = r.End(), r.Hashes()
	return nil
}

// Root is the RFC 6962 root hash (the empty tree's is SHA-256 of nothing).
func (t Tree) Root() ([]byte, error) {
	if t.Size == 0 {
		return hasher.EmptyRoot(), nil
	}
	r, err := rangeFactory.NewRange(0, t.Size, t.Hashes)
	if err != nil {
		return nil, fmt.Errorf("auditlog: tree: %w", err)
	}
	return r.GetRootHash(nil)
}

// InclusionProof returns the RFC 6962 audit path of leaf index in the tree
// made of the first size of leaves (leaf hashes, in order).
func InclusionProof(leaves [][]byte, index, size uint64) ([][]byte, error) {
	if size > uint64(len(leaves)) {
		return nil, fmt.Errorf("auditlog: proof: tree size %d but only %d leaves", size, len(leaves))
	}
	nodes, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, fmt.Errorf("auditlog: proof: %w", err)
	}
	hashes := make([][]byte, len(nodes.IDs))
	for i, id := range nodes.IDs {
		begin, end := id.Coverage()
		r := rangeFactory.NewEmptyRange(begin)
		for _, l := range leaves[begin:end] {
			if err := r.Append(l, nil); err != nil {
				return nil, err
			}
		}
		// A perfect subtree's compact range is its root alone.
		hs := r.Hashes()
		if len(hs) != 1 {
			return nil, fmt.Errorf("auditlog: proof: node %v is not a perfect subtree", id)
		}
		hashes[i] = hs[0]
	}
	return nodes.Rehash(hashes, hasher.HashChildren)
}

// VerifyInclusion checks that leafHash is leaf index of the tree of size
// with this root.
func VerifyInclusion(index, size uint64, leafHash []byte, path [][]byte, root []byte) error {
	return proof.VerifyInclusion(hasher, index, size, leafHash, path, root)
}
