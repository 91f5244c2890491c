package tests

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mieweb/pulsevault/shared/audit/event"
	"github.com/mieweb/pulsevault/shared/audit/verify"
	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/storage"
	"github.com/mieweb/pulsevault/shared/topology"
)

// `audit prove-video` exports a video's records with inclusion proofs
// under the newest signed checkpoint, the log's keys and the locked
// original's SHA-256 (re-hashed from the pinned version, also after a
// PutObject over the original), and `audit check-bundle` verifies it
// offline, re-hashing the original when given; a tampered bundle, or
// another file given as the original, is refused. Real audit-append on a
// real provider, NATS and versitygw, with a witness cosigning (the bundle
// carries the cosigned checkpoint; check-bundle --witness-key checks it).
func TestAuditProveVideoBundle(t *testing.T) {
	bin := buildPulsevault(t)
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = byte(i * 7) // the rig's signing key
	}
	secret := filepath.Join(t.TempDir(), "seed")
	_ = os.WriteFile(secret, []byte(base64.StdEncoding.EncodeToString(seed)+"\n"), 0o600)
	out, err := exec.Command(bin, "audit", "pubkey", "--from-secret", secret).Output()
	if err != nil {
		t.Fatalf("pubkey --from-secret: %v", err)
	}
	wURL, wKey := startWitness(t, bin, strings.TrimSpace(string(out)))
	r := startAuditRig(t, 1, map[string]string{"AUDIT_BATCH_WAIT": "20ms", "AUDIT_WITNESSES": wURL + " " + wKey})
	r.wake(1)
	ctx := context.Background()
	id := uuid.NewString()

	// The locked original and meta.json pinning it, as finalize writes them.
	orig := make([]byte, 200_000)
	_, _ = rand.Read(orig)
	sum := sha256.Sum256(orig)
	hash := hex.EncodeToString(sum[:])
	key := topology.OriginalKey(id, "mp4")
	ret := storage.Compliance(1)
	put, err := r.st.PutBytes(ctx, r.cfg.MediaBucket, key, orig, storage.PutOptions{ContentType: "video/mp4", Retention: &ret})
	if err != nil {
		t.Fatal(err)
	}
	v := &meta.Video{ID: id, Status: meta.Ready, Uploader: "clinician-1",
		Original: &meta.Original{Key: key, Size: int64(len(orig)), ContentType: "video/mp4", RetainUntil: ret.Until, VersionID: put.VersionID, SHA256: hash}}
	if err := meta.NewStore(r.st, r.cfg.MediaBucket).Retain(1).Create(ctx, v); err != nil {
		t.Fatal(err)
	}
	// Shadowing: the service user writes other bytes over the original.
	shadow := []byte("not the original")
	if _, err := r.st.PutBytes(ctx, r.cfg.MediaBucket, key, shadow, storage.PutOptions{ContentType: "video/mp4"}); err != nil {
		t.Fatal(err)
	}

	pub := event.NewPublisher(r.b, "audit-test")
	for i, e := range []event.Event{
		{Actor: "clinician-1", Action: event.UploadCreated, Outcome: event.Success},
		{Action: event.VideoFinalized, Outcome: event.Success, SHA256: hash},
		{Actor: "viewer-9", Action: event.URLSigned, Outcome: event.Success, Grant: uuid.NewString()},
		{Action: event.MediaAccessed, Outcome: event.Success},
	} {
		e.ID, e.Object = "bundle-"+id[:8]+"-"+string(rune('a'+i)), id
		if err := pub.Publish(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	r.publish(20, 2, 0) // other videos' records around them
	r.waitHead(24, 60*time.Second)
	r.checkpoint()
	r.waitKey(topology.AuditCosignedKey(r.headSeq(), mustCosigVerifier(t, wKey).KeyHash()))
	pinned := "--public-key=" + base64.StdEncoding.EncodeToString(r.pub)

	stdout, stderr, code := r.cliSplit("prove-video", id, pinned)
	if code != 0 {
		t.Fatalf("prove-video: exit %d\n%s%s", code, stdout, stderr)
	}
	var b verify.Bundle
	if err := json.Unmarshal([]byte(stdout), &b); err != nil {
		t.Fatalf("bundle: %v\n%s", err, stdout)
	}
	if len(b.Records) != 4 || b.Original == nil || !b.Original.Rehashed || b.Original.SHA256 != hash || b.Original.VersionID != put.VersionID || len(b.PublicKeys) != 1 {
		t.Fatalf("bundle: %d records, original %+v, keys %v", len(b.Records), b.Original, b.PublicKeys)
	}
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	bundle := write("bundle.json", []byte(stdout))
	original := write("original.mp4", orig)
	other := write("other.mp4", shadow)

	stdout, stderr, code = r.cliSplit("check-bundle", bundle, "--original", original, pinned, "--witness-key", wKey)
	if code != 0 || !strings.Contains(stdout, "OK: 4 records") || !strings.Contains(stdout, "cosigned by 1 trusted witness") || !strings.Contains(stdout, "the original file's SHA-256 "+hash) {
		t.Fatalf("check-bundle: exit %d\n%s%s", code, stdout, stderr)
	}
	// A witness that never cosigned it is not satisfied.
	otherKey, err := exec.Command(bin, "witness", "keygen", "--name", "other.test", "--key", filepath.Join(t.TempDir(), "k")).Output()
	if err != nil {
		t.Fatal(err)
	}
	if stdout, stderr, code := r.cliSplit("check-bundle", bundle, pinned, "--witness-key", strings.TrimSpace(string(otherKey))); code == 0 || !strings.Contains(stdout+stderr, "no cosignature by a trusted witness") {
		t.Fatalf("check-bundle with an unknown witness: exit %d\n%s%s", code, stdout, stderr)
	}
	// Without a pinned key it still checks, and says whose keys it trusted.
	if stdout, stderr, code := r.cliSplit("check-bundle", bundle); code != 0 || !strings.Contains(stderr, "WARNING") {
		t.Fatalf("check-bundle without a key: exit %d\n%s%s", code, stdout, stderr)
	}
	if stdout, stderr, code := r.cliSplit("check-bundle", bundle, "--original", other, pinned); code == 0 || !strings.Contains(stdout+stderr, "hashes to") {
		t.Fatalf("check-bundle with another file as the original: exit %d\n%s%s", code, stdout, stderr)
	}

	// Tampered bundles are refused.
	for name, tamper := range map[string]func(*verify.Bundle){
		"a record's actor": func(b *verify.Bundle) {
			b.Records[2].Record = strings.Replace(b.Records[2].Record, "viewer-9", "viewer-8", 1)
		},
		"the original's hash": func(b *verify.Bundle) {
			s := sha256.Sum256(shadow)
			b.Original.SHA256 = hex.EncodeToString(s[:])
		},
		"a record of another video": func(b *verify.Bundle) {
			b.Video = uuid.NewString()
		},
		"the checkpoint": func(b *verify.Bundle) {
			b.Checkpoint = strings.Replace(b.Checkpoint, "\n", "\n\n", 1)
			for i := range b.Records {
				b.Records[i].Note = b.Checkpoint
			}
		},
		"a dropped record's proof swapped in": func(b *verify.Bundle) {
			b.Records[1].Path = b.Records[0].Path
		},
	} {
		var c verify.Bundle
		if err := json.Unmarshal([]byte(mustRead(t, bundle)), &c); err != nil {
			t.Fatal(err)
		}
		tamper(&c)
		raw, _ := json.Marshal(c)
		p := write("tampered.json", raw)
		if stdout, stderr, code := r.cliSplit("check-bundle", p, "--original", original, pinned); code == 0 || !strings.Contains(stdout+stderr, "does not verify") {
			t.Errorf("tampered %s: exit %d\n%s%s", name, code, stdout, stderr)
		}
	}

	// From an auditor's copy of the log alone: the log's word for the hash.
	stdout, stderr, code = r.cliSplit("prove-video", id, pinned, "--from-dir", r.download())
	if code != 0 {
		t.Fatalf("prove-video --from-dir: exit %d\n%s%s", code, stdout, stderr)
	}
	copyBundle := write("copy.json", []byte(stdout))
	if stdout, stderr, code := r.cliSplit("check-bundle", copyBundle, "--original", original, pinned); code != 0 || !bytes.Contains([]byte(stdout), []byte("the original file's SHA-256")) {
		t.Fatalf("check-bundle of the copy's bundle: exit %d\n%s%s", code, stdout, stderr)
	}
}

func mustRead(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
