package tests

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/mieweb/pulsevault/shared/audit/event"
	"github.com/mieweb/pulsevault/shared/audit/record"
	"github.com/mieweb/pulsevault/shared/topology"
)

// startWitness runs `pulsevault witness serve` as its own process and
// returns its URL and cosignature verifier key.
func startWitness(t *testing.T, bin, logVKey string) (url, vkey string) {
	t.Helper()
	dir := t.TempDir()
	key := filepath.Join(dir, "witness.key")
	out, err := exec.Command(bin, "witness", "keygen", "--name", "witness.test", "--key", key).Output()
	if err != nil {
		t.Fatalf("witness keygen: %v", err)
	}
	vkey = strings.TrimSpace(string(out))
	cmd := exec.Command(bin, "witness", "serve", "--listen", "127.0.0.1:0", "--key", key,
		"--state", filepath.Join(dir, "state.json"), "--log-key", logVKey)
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if u, ok := strings.CutPrefix(sc.Text(), "witness listening on "); ok {
			url = u
			break
		}
	}
	if url == "" {
		t.Fatal("witness did not start")
	}
	go func() {
		for sc.Scan() {
		}
	}()
	return url, vkey
}

func (r *auditRig) waitKey(key string) {
	r.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := r.st.Stat(context.Background(), r.cfg.AuditBucket, key); err == nil {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%s not written within 30s", key)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A real witness process cosigns the checkpoints of a real audit-append
// (versitygw, NATS). Then, with the witness key given, verify catches in a
// copy: truncation (last batch + last checkpoint removed), a fork (a
// rewritten batch under a consistent-looking checkpoint signed by the log
// key), and a rollback (an older snapshot of the copy; the witness refuses
// an older checkpoint too). Without a witness key, it says plainly that it
// cannot rule out truncation. The key formats round-trip between keygen,
// pubkey and --public-key.
func TestAuditWitnessCatchesTruncationForkRollback(t *testing.T) {
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
	logVKey := strings.TrimSpace(string(out))
	wURL, wKey := startWitness(t, bin, logVKey)

	r := startAuditRig(t, 1, map[string]string{"AUDIT_BATCH_WAIT": "20ms", "AUDIT_WITNESSES": wURL + " " + wKey})
	r.wake(1)
	if got, code := r.cli("pubkey"); code != 0 || strings.TrimSpace(got) != logVKey {
		t.Fatalf("pubkey from the bucket %q (exit %d), from the secret %q", got, code, logVKey)
	}
	pin := "--public-key=" + logVKey
	wk := "--witness-key=" + wKey
	var sizes []uint64
	for i := range 3 {
		r.publish(20, 2, 20*i)
		r.waitHead(uint64(20*(i+1)), 60*time.Second)
		r.checkpoint()
		size := uint64(20 * (i + 1))
		sizes = append(sizes, size)
		wv := mustCosigVerifier(t, wKey)
		r.waitKey(topology.AuditCosignedKey(size, wv.KeyHash()))
	}
	full := r.download()
	old := copyTree(t, full)
	for _, k := range []string{topology.AuditNoteKey(60), topology.AuditProofKey(60), topology.AuditCosignedKey(60, mustCosigVerifier(t, wKey).KeyHash())} {
		_ = os.Remove(filepath.Join(old, filepath.FromSlash(k)))
	}
	batches, _ := batchKeys(t, old)
	_ = os.Remove(filepath.Join(old, batches[len(batches)-1])) // the last batch too: as the log was before
	_ = sizes

	if got, code := r.cli("verify", "--from-dir", full, pin, wk, "--witnessed", wURL); code != 0 || !strings.Contains(got, "witnessed       the log up to size 60") {
		t.Fatalf("full copy with witness: exit %d\n%s", code, got)
	}
	// Truncation: last batch + last checkpoint gone.
	trunc := copyTree(t, full)
	tb, _ := batchKeys(t, trunc)
	_ = os.Remove(filepath.Join(trunc, tb[len(tb)-1]))
	for _, k := range []string{topology.AuditNoteKey(60), topology.AuditProofKey(60), topology.AuditCosignedKey(60, mustCosigVerifier(t, wKey).KeyHash())} {
		_ = os.Remove(filepath.Join(trunc, filepath.FromSlash(k)))
	}
	got, code := r.cli("verify", "--from-dir", trunc, pin)
	if code == 0 && !strings.Contains(got, "CANNOT RULE OUT TRUNCATION") {
		t.Fatalf("truncated copy without a witness key passed silently:\n%s", got)
	}
	if got, code := r.cli("verify", "--from-dir", trunc, pin, wk, "--witnessed", wURL); code != 1 || !strings.Contains(got, "TRUNCATED") {
		t.Fatalf("truncated copy with the witness: exit %d\n%s", code, got)
	}
	// Fork: the last batch rewritten, re-chained, a new checkpoint at 60
	// signed by the log key with a valid proof from 40.
	fork := copyTree(t, full)
	forge(t, fork, ed25519.NewKeyFromSeed(seed), mustCosigVerifier(t, wKey).KeyHash())
	if got, code := r.cli("verify", "--from-dir", fork, pin); code != 0 {
		t.Fatalf("the forged copy should look fine without a witness (the test forges well): exit %d\n%s", code, got)
	}
	if got, code := r.cli("verify", "--from-dir", fork, pin, wk, "--witnessed", wURL); code != 1 || !strings.Contains(got, "FORKS") {
		t.Fatalf("forked copy with the witness: exit %d\n%s", code, got)
	}
	// Rollback: the copy as it was at size 40, against the witness's view.
	if got, code := r.cli("verify", "--from-dir", old, pin, wk, "--witnessed", wURL); code != 1 || !strings.Contains(got, "TRUNCATED") {
		t.Fatalf("rolled-back copy with the witness: exit %d\n%s", code, got)
	}
	// And the witness refuses to go back to an older checkpoint.
	note40, _ := os.ReadFile(filepath.Join(full, filepath.FromSlash(topology.AuditNoteKey(40))))
	resp, err := http.Post(wURL+"/add-checkpoint", "text/plain", bytes.NewReader(append([]byte("old 60\n\n"), note40...)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		t.Fatalf("witness cosigned a rollback: %s", resp.Status)
	}
	// A witness key that cosigned nothing: no witnessed checkpoint, fails.
	_, otherKey := startWitness(t, bin, logVKey)
	if got, code := r.cli("verify", "--from-dir", full, pin, "--witness-key="+otherKey); code != 1 || !strings.Contains(got, "cannot tell whether the log was truncated") {
		t.Fatalf("verify with an unrelated witness key: exit %d\n%s", code, got)
	}
}

func copyTree(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	return dst
}

// forge rewrites the last batch of dir (records 41..60) with other events,
// chained correctly, and replaces the checkpoint at 60 and its proof with
// ones signed by the log's key: what an operator with the key could do.
func forge(t *testing.T, dir string, key ed25519.PrivateKey, witnessHash uint32) {
	t.Helper()
	batches, _ := batchKeys(t, dir)
	var lines [][]byte
	for _, b := range batches {
		data, _ := os.ReadFile(filepath.Join(dir, b))
		for l := range bytes.Lines(data) {
			lines = append(lines, l)
		}
	}
	if len(lines) != 60 {
		t.Fatalf("%d records", len(lines))
	}
	last := batches[len(batches)-1]
	pk := topology.ParseAuditKey(filepath.ToSlash(last))
	for _, b := range batches {
		if k := topology.ParseAuditKey(filepath.ToSlash(b)); k.First > 40 {
			_ = os.Remove(filepath.Join(dir, b))
		}
	}
	prev, _ := record.ParseLine(record.LeafData(lines[39]))
	var evs []event.Event
	for i := 40; i < 60; i++ {
		r, _ := record.ParseLine(record.LeafData(lines[i]))
		e := r.Event
		e.Object = "00000000-0000-4000-8000-000000000000" // the access "was to another video"
		evs = append(evs, e)
	}
	recs, err := record.Chain(40, prev.Hash, evs)
	if err != nil {
		t.Fatal(err)
	}
	var data []byte
	for i, r := range recs {
		l, _ := r.Line()
		data = append(data, l...)
		lines[40+i] = l
	}
	k, _ := topology.AuditBatchKey(pk.Day, 41, 60)
	put(t, dir, k, data)
	var leaves []tlog.Hash
	for _, l := range lines {
		leaves = append(leaves, record.LeafHashOf(l))
	}
	hr := record.HashesFromLeaves(leaves)
	root, _ := tlog.TreeHash(60, hr)
	note, err := record.NewSigner(key).SignNote(record.DefaultOrigin, 60, root)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := tlog.ProveTree(60, 40, hr)
	put(t, dir, topology.AuditNoteKey(60), note)
	put(t, dir, topology.AuditProofKey(60), record.Proof{Old: 40, Hashes: p}.Marshal())
	_ = os.Remove(filepath.Join(dir, filepath.FromSlash(topology.AuditCosignedKey(60, witnessHash))))
}

func put(t *testing.T, dir, key string, b []byte) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(key))
	_ = os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustCosigVerifier(t *testing.T, vkey string) interface{ KeyHash() uint32 } {
	t.Helper()
	v, err := fnote.NewVerifierForCosignatureV1(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
