package record

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Origin names the log in every checkpoint, so a signature made for this
// log cannot be passed off as one for another.
const Origin = "pulsevault-audit"

// CheckpointVersion is the checkpoint schema version.
const CheckpointVersion = 1

// Checkpoint commits to a day's records: the RFC 6962 root of the tree over
// records FirstSeq..LastSeq (TreeSize of them, in order) and the chain hash
// of LastSeq, signed with the log's Ed25519 key.
type Checkpoint struct {
	V        int       `json:"v"`
	Origin   string    `json:"origin"`
	Day      string    `json:"day"` // YYYY-MM-DD (UTC) of the records
	FirstSeq uint64    `json:"first_seq"`
	LastSeq  uint64    `json:"last_seq"`
	TreeSize uint64    `json:"tree_size"`
	Root     string    `json:"root"`      // hex RFC 6962 root
	HeadHash string    `json:"head_hash"` // hex chain hash of LastSeq
	Final    bool      `json:"final"`     // the day is closed: no record will join it
	Time     time.Time `json:"time"`
	KeyID    string    `json:"key_id"`
	// Signature is base64 Ed25519 over SignedBytes().
	Signature string `json:"signature,omitempty"`
}

// SignedBytes is what the signature covers: the checkpoint's canonical JSON
// without its signature.
func (c Checkpoint) SignedBytes() ([]byte, error) {
	c.Signature = ""
	return json.Marshal(c)
}

// Marshal is the stored form: canonical JSON and a newline.
func (c Checkpoint) Marshal() ([]byte, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// ParseCheckpoint decodes a stored checkpoint strictly.
func ParseCheckpoint(b []byte) (Checkpoint, error) {
	var c Checkpoint
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&c); err != nil {
		return Checkpoint{}, fmt.Errorf("not a checkpoint: %v", err)
	}
	if d.More() {
		return Checkpoint{}, errors.New("not a checkpoint: trailing data")
	}
	switch {
	case c.V != CheckpointVersion:
		return c, fmt.Errorf("checkpoint version %d, want %d", c.V, CheckpointVersion)
	case c.Origin != Origin:
		return c, fmt.Errorf("checkpoint of log %q, want %q", c.Origin, Origin)
	case c.TreeSize == 0 || c.LastSeq != c.FirstSeq+c.TreeSize-1:
		return c, fmt.Errorf("checkpoint sizes disagree: seq %d..%d, tree size %d", c.FirstSeq, c.LastSeq, c.TreeSize)
	}
	return c, nil
}

// Signer signs checkpoints with the log's Ed25519 key.
type Signer struct {
	key   ed25519.PrivateKey
	keyID string
}

// SecretName is the secret holding the signing key: base64 (standard
// alphabet) of the 32-byte Ed25519 seed; white space around it is ignored.
const SecretName = "pulsevault-audit-key"

// ParseSeed builds a Signer from the secret's content.
func ParseSeed(secret []byte) (*Signer, error) {
	s := strings.TrimSpace(string(secret))
	var seed []byte
	var err error
	// Standard base64 is the documented form; the URL-safe and unpadded
	// variants are accepted too, as secret generators differ.
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if seed, err = enc.DecodeString(s); err == nil {
			break
		}
	}
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("auditlog: secret %s must be base64 of a %d-byte Ed25519 seed (make one with `pulsevault audit keygen`)", SecretName, ed25519.SeedSize)
	}
	return NewSigner(ed25519.NewKeyFromSeed(seed)), nil
}

// NewSigner wraps a private key.
func NewSigner(k ed25519.PrivateKey) *Signer {
	pub := k.Public().(ed25519.PublicKey)
	return &Signer{key: k, keyID: KeyID(pub)}
}

// KeyID names a public key: the first 8 bytes of its SHA-256, hex.
func KeyID(pub ed25519.PublicKey) string {
	h := sha256.Sum256(pub)
	return hex.EncodeToString(h[:8])
}

// KeyID is the id of the signer's public key.
func (s *Signer) KeyID() string { return s.keyID }

// Public is the signer's public key.
func (s *Signer) Public() ed25519.PublicKey { return s.key.Public().(ed25519.PublicKey) }

// Sign fills in KeyID and Signature. Ed25519 is deterministic, so signing
// the same checkpoint twice gives the same bytes.
func (s *Signer) Sign(c Checkpoint) (Checkpoint, error) {
	c.KeyID = s.keyID
	b, err := c.SignedBytes()
	if err != nil {
		return c, err
	}
	c.Signature = base64.StdEncoding.EncodeToString(ed25519.Sign(s.key, b))
	return c, nil
}

// EncodePublicKey is the published form of a public key: base64 and "\n".
func EncodePublicKey(pub ed25519.PublicKey) []byte {
	return []byte(base64.StdEncoding.EncodeToString(pub) + "\n")
}

// ParsePublicKey reads a published public key (base64 of 32 bytes).
func ParsePublicKey(b []byte) (ed25519.PublicKey, error) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("auditlog: a public key is base64 of %d bytes", ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(raw), nil
}

// VerifySignature checks c's signature with the key named by c.KeyID.
func VerifySignature(c Checkpoint, keys map[string]ed25519.PublicKey) error {
	pub, ok := keys[c.KeyID]
	if !ok {
		return fmt.Errorf("signed by unknown key %q", c.KeyID)
	}
	sig, err := base64.StdEncoding.DecodeString(c.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return errors.New("signature is not base64 of an Ed25519 signature")
	}
	b, err := c.SignedBytes()
	if err != nil {
		return err
	}
	if !ed25519.Verify(pub, b, sig) {
		return errors.New("bad signature")
	}
	return nil
}
