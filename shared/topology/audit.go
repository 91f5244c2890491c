package topology

import (
	"fmt"
	"regexp"
	"strconv"
	"time"
)

// The audit bucket, written by audit-append and read by the auditor's
// verifier:
//
//	YYYY/MM/DD/<first>-<last>.jsonl     a batch of hash-chained records
//	YYYY/MM/DD/checkpoint-<size>.json   a signed checkpoint of the day's Merkle tree
//	keys/<key-id>.pub                   a public key that verifies checkpoints
//	checkpoints/<size>.note             a C2SP checkpoint of the whole log (signed note)
//	checkpoints/<size>.proof            the consistency proof from the checkpoint before it
//	checkpoints/<size>.cosigned-<hash>.note  the checkpoint with a witness's cosignature
//
// The per-day checkpoint-<size>.json objects are the format before C2SP
// checkpoints (version 1); they stay readable.
//
// Keys hold dates and sequence numbers only: never anything from an event.
const (
	// AuditKeysPrefix holds the public keys that verify checkpoints, one object
	// per key: keys/<key-id>.pub, base64 of the 32-byte Ed25519 public key.
	AuditKeysPrefix = "keys/"
	dayLayout       = "2006/01/02"
)

func dayPath(day string) (string, error) {
	t, err := time.Parse(time.DateOnly, day)
	if err != nil {
		return "", fmt.Errorf("audit: day %q is not YYYY-MM-DD", day)
	}
	return t.Format(dayLayout), nil
}

// AuditBatchKey is the object key of the batch of records first..last appended
// on day: YYYY/MM/DD/<first>-<last>.jsonl, numbers zero-padded to 12
// digits so listings sort in log order.
func AuditBatchKey(day string, first, last uint64) (string, error) {
	p, err := dayPath(day)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s/%012d-%012d.jsonl", p, first, last), nil
}

// AuditCheckpointKey is the key of the checkpoint of day's tree at size:
// YYYY/MM/DD/checkpoint-<size>.json.
func AuditCheckpointKey(day string, size uint64) (string, error) {
	p, err := dayPath(day)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s/checkpoint-%012d.json", p, size), nil
}

// AuditCheckpointsPrefix holds the C2SP checkpoints of the whole log.
const AuditCheckpointsPrefix = "checkpoints/"

// AuditNoteKey is the key of the C2SP checkpoint of the log at size.
func AuditNoteKey(size uint64) string {
	return fmt.Sprintf("%s%012d.note", AuditCheckpointsPrefix, size)
}

// AuditProofKey is the key of the consistency proof that leads to the
// checkpoint at size from the one before it.
func AuditProofKey(size uint64) string {
	return fmt.Sprintf("%s%012d.proof", AuditCheckpointsPrefix, size)
}

// AuditCosignedKey is the key of the checkpoint at size as cosigned by the
// witness whose note key hash is keyHash.
func AuditCosignedKey(size uint64, keyHash uint32) string {
	return fmt.Sprintf("%s%012d.cosigned-%08x.note", AuditCheckpointsPrefix, size, keyHash)
}

// AuditPublicKeyKey is where the public key with this id is published.
func AuditPublicKeyKey(keyID string) string { return AuditKeysPrefix + keyID + ".pub" }

var (
	batchRe      = regexp.MustCompile(`^(\d{4})/(\d{2})/(\d{2})/(\d{1,20})-(\d{1,20})\.jsonl$`)
	checkpointRe = regexp.MustCompile(`^(\d{4})/(\d{2})/(\d{2})/checkpoint-(\d{1,20})\.json$`)
	pubKeyRe     = regexp.MustCompile(`^keys/([0-9a-f]{16})\.pub$`)
	noteRe       = regexp.MustCompile(`^checkpoints/(\d{12,20})\.(note|proof|cosigned-([0-9a-f]{8})\.note)$`)
)

// AuditKind is the kind of an object in the audit bucket.
type AuditKind int

// Audit object kinds.
const (
	AuditKindOther AuditKind = iota
	AuditKindBatch
	AuditKindCheckpoint
	AuditKindPublicKey
	AuditKindNote     // C2SP checkpoint
	AuditKindProof    // consistency proof
	AuditKindCosigned // witness-cosigned checkpoint
)

// AuditKey is a parsed object key of the audit bucket.
type AuditKey struct {
	Kind        AuditKind
	Day         string // batches and checkpoints
	First, Last uint64 // batches
	KeyID       string // public keys
	Size        uint64 // checkpoints (per day for v1, of the whole log for notes), proofs
	KeyHash     uint32 // cosigned checkpoints: the witness's key hash
}

// ParseAuditKey classifies an object key of the audit bucket.
func ParseAuditKey(key string) AuditKey {
	if m := batchRe.FindStringSubmatch(key); m != nil {
		day := m[1] + "-" + m[2] + "-" + m[3]
		first, err1 := strconv.ParseUint(m[4], 10, 64)
		last, err2 := strconv.ParseUint(m[5], 10, 64)
		if _, err := time.Parse(time.DateOnly, day); err == nil && err1 == nil && err2 == nil && first >= 1 && first <= last {
			return AuditKey{Kind: AuditKindBatch, Day: day, First: first, Last: last}
		}
	}
	if m := checkpointRe.FindStringSubmatch(key); m != nil {
		day := m[1] + "-" + m[2] + "-" + m[3]
		size, err := strconv.ParseUint(m[4], 10, 64)
		if _, derr := time.Parse(time.DateOnly, day); derr == nil && err == nil && size >= 1 {
			return AuditKey{Kind: AuditKindCheckpoint, Day: day, Size: size}
		}
	}
	if m := noteRe.FindStringSubmatch(key); m != nil {
		size, err := strconv.ParseUint(m[1], 10, 64)
		if err == nil && size >= 1 {
			switch {
			case m[2] == "note":
				return AuditKey{Kind: AuditKindNote, Size: size}
			case m[2] == "proof":
				return AuditKey{Kind: AuditKindProof, Size: size}
			default:
				h, _ := strconv.ParseUint(m[3], 16, 32)
				return AuditKey{Kind: AuditKindCosigned, Size: size, KeyHash: uint32(h)}
			}
		}
	}
	if m := pubKeyRe.FindStringSubmatch(key); m != nil {
		return AuditKey{Kind: AuditKindPublicKey, KeyID: m[1]}
	}
	return AuditKey{Kind: AuditKindOther}
}
