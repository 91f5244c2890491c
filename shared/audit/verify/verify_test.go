package verify

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mieweb/pulsevault/shared/audit/event"
	"github.com/mieweb/pulsevault/shared/audit/record"
	"github.com/mieweb/pulsevault/shared/topology"
)

var signer = record.NewSigner(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32)))

func put(t *testing.T, dir, key string, b []byte) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(key))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// buildLog writes a log the way the writer lays it out: two days, batches
// of 7 records, a checkpoint after every other batch and one closing each day.
func buildLog(t *testing.T, dir string) (batches []string) {
	t.Helper()
	put(t, dir, topology.AuditPublicKeyKey(signer.KeyID()), record.EncodePublicKey(signer.Public()))
	seq, hash := uint64(0), record.GenesisHash
	for d, day := range []string{"2026-11-03", "2026-11-04"} {
		var tree record.Tree
		first := seq + 1
		for b := range 4 {
			var evs []event.Event
			for i := range 7 {
				evs = append(evs, event.Event{V: 1, ID: fmt.Sprintf("d%d-b%d-e%d", d, b, i), Time: time.Date(2026, 11, 3+d, 9, b, i, 0, time.UTC),
					Actor: "service:test", Action: event.MediaAccessed, Outcome: event.Success})
			}
			recs, err := record.Chain(seq, hash, evs)
			if err != nil {
				t.Fatal(err)
			}
			var data []byte
			for _, r := range recs {
				l, _ := r.Line()
				data = append(data, l...)
				_ = tree.Append(l)
			}
			key, _ := topology.AuditBatchKey(day, recs[0].Seq, recs[len(recs)-1].Seq)
			put(t, dir, key, data)
			batches = append(batches, key)
			seq, hash = recs[len(recs)-1].Seq, recs[len(recs)-1].Hash
			if b%2 == 1 {
				root, _ := tree.Root()
				cp, _ := signer.Sign(record.Checkpoint{V: 1, Origin: record.Origin, Day: day, FirstSeq: first, LastSeq: seq,
					TreeSize: tree.Size, Root: hex.EncodeToString(root), HeadHash: hash, Time: time.Date(2026, 11, 3+d, 10, b, 0, 0, time.UTC)})
				b, _ := cp.Marshal()
				k, _ := topology.AuditCheckpointKey(day, tree.Size)
				put(t, dir, k, b)
			}
		}
	}
	return batches
}

func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	return dst
}

func verifyDir(t *testing.T, dir string, o Options) *Report {
	t.Helper()
	r, err := Verify(context.Background(), Dir(dir), o)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestVerifyCleanLog(t *testing.T) {
	dir := t.TempDir()
	buildLog(t, dir)
	r := verifyDir(t, dir, Options{})
	var out bytes.Buffer
	r.Write(&out)
	if !r.OK() || r.Records != 56 || r.FirstSeq != 1 || r.LastSeq != 56 || r.Checkpoints != 4 || r.Days != 2 || r.Uncheckpointed != 0 {
		t.Fatalf("clean log:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "RESULT: OK") {
		t.Fatal(out.String())
	}
	// Pinned to another key, the same log fails on every checkpoint.
	other := record.NewSigner(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{2}, 32)))
	r = verifyDir(t, dir, Options{Keys: map[string]ed25519.PublicKey{other.KeyID(): other.Public()}})
	if r.OK() || !strings.Contains(r.Failures[0].Msg, "unknown key") {
		t.Fatalf("pinned other key: %v", r.Failures)
	}
}

func TestVerifyNamesEveryTamper(t *testing.T) {
	clean := t.TempDir()
	batches := buildLog(t, clean)
	read := func(dir, key string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, key))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cases := []struct {
		name   string
		tamper func(dir string)
		key    string // the first failure names this object
		want   string
	}{
		{"flip a byte in a record", func(dir string) {
			b := read(dir, batches[2])
			i := bytes.Index(b, []byte("service:test"))
			b[i] = 'S'
			put(t, dir, batches[2], b)
		}, batches[2], "hash does not match"},
		{"delete a batch", func(dir string) {
			os.Remove(filepath.Join(dir, batches[1]))
		}, batches[2], "missing"},
		{"swap two batches", func(dir string) {
			a, b := read(dir, batches[4]), read(dir, batches[5])
			put(t, dir, batches[4], b)
			put(t, dir, batches[5], a)
		}, batches[4], "sequence"},
		{"truncate the last batch", func(dir string) {
			b := read(dir, batches[7])
			put(t, dir, batches[7], b[:len(b)-40])
		}, batches[7], "truncated"},
		{"delete the last batch", func(dir string) {
			os.Remove(filepath.Join(dir, batches[7]))
		}, "checkpoint-000000000028.json", "deleted or truncated"},
		{"replace a checkpoint signature", func(dir string) {
			k, _ := topology.AuditCheckpointKey("2026-11-03", 14)
			b := read(dir, k)
			i := bytes.Index(b, []byte(`"signature":"`)) + len(`"signature":"`)
			if b[i] == 'A' {
				b[i] = 'B'
			} else {
				b[i] = 'A'
			}
			put(t, dir, k, b)
		}, "checkpoint-000000000014.json", "signature"},
		{"rewrite a record and its hash", func(dir string) {
			// Recomputing the record's own hash is not enough: the next
			// record's link and the checkpoint root give it away.
			b := read(dir, batches[0])
			lines := bytes.SplitAfter(b, []byte("\n"))
			r, _ := record.ParseLine(record.LeafData(lines[3]))
			r.Outcome = event.Denied
			r.Hash, _ = r.ComputeHash()
			lines[3], _ = r.Line()
			put(t, dir, batches[0], bytes.Join(lines, nil))
		}, batches[0], "prev hash does not link"},
		{"duplicate a batch under another name", func(dir string) {
			k, _ := topology.AuditBatchKey("2026-11-04", 29, 35)
			put(t, dir, strings.Replace(k, "000000000035", "000000000036", 1), read(dir, k))
		}, "", "overlaps"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := copyDir(t, clean)
			c.tamper(dir)
			r := verifyDir(t, dir, Options{})
			if r.OK() {
				t.Fatal("tampered log verified")
			}
			f := r.Failures[0]
			if !strings.Contains(f.Key, c.key) || !strings.Contains(f.Msg, c.want) {
				var out bytes.Buffer
				r.Write(&out)
				t.Fatalf("first failure %q, want key %q and %q\n%s", f, c.key, c.want, out.String())
			}
		})
	}
}

func TestProveEveryRecord(t *testing.T) {
	dir := t.TempDir()
	buildLog(t, dir)
	keys := map[string]ed25519.PublicKey{signer.KeyID(): signer.Public()}
	for seq := uint64(1); seq <= 56; seq++ {
		p, err := Prove(context.Background(), Dir(dir), seq, keys)
		if err != nil {
			t.Fatalf("seq %d: %v", seq, err)
		}
		if err := CheckProof(p, keys); err != nil {
			t.Fatalf("seq %d: %v", seq, err)
		}
		// Claiming the record sits elsewhere in the tree fails.
		bad := *p
		bad.Seq, bad.LeafIndex = p.Seq+1, p.LeafIndex+1
		if CheckProof(&bad, keys) == nil {
			t.Fatalf("seq %d: moved proof verified", seq)
		}
	}
	if _, err := Prove(context.Background(), Dir(dir), 57, keys); err == nil {
		t.Fatal("proof of a record that does not exist")
	}
}

// versionedDir is a directory copy whose versions a test makes up.
type versionedDir struct {
	Dir
	counts map[string]VersionCount
}

func (v versionedDir) Versions(context.Context) (map[string]VersionCount, error) {
	return v.counts, nil
}

// Every log object has exactly one version; a second one, or a delete
// marker, fails the log and names the object. Without pinned keys the
// report warns that it trusted the source's own.
func TestVerifyVersionsAndUnpinnedKeys(t *testing.T) {
	dir := t.TempDir()
	batches := buildLog(t, dir)
	pinned := Options{Keys: map[string]ed25519.PublicKey{signer.KeyID(): signer.Public()}}
	one := map[string]VersionCount{"_canary/x": {Versions: 3}}
	keys, _ := Dir(dir).List(context.Background())
	for _, k := range keys {
		one[k] = VersionCount{Versions: 1}
	}
	r, err := Verify(context.Background(), versionedDir{Dir(dir), one}, pinned)
	if err != nil || !r.OK() || r.VersionsChecked != len(keys) || !r.PinnedKeys || len(r.Warnings) != 1 || r.Warnings[0] != NoWitnessWarning {
		t.Fatalf("one version each: %+v %v", r, err)
	}
	cp, _ := topology.AuditCheckpointKey("2026-11-03", 14)
	pub := topology.AuditPublicKeyKey(signer.KeyID())
	many := map[string]VersionCount{}
	for k, c := range one {
		many[k] = c
	}
	many[batches[2]] = VersionCount{Versions: 2}
	many[cp] = VersionCount{Versions: 2, DeleteMarkers: 1}
	many[pub] = VersionCount{Versions: 2}
	if r, err = Verify(context.Background(), versionedDir{Dir(dir), many}, pinned); err != nil {
		t.Fatal(err)
	}
	named := map[string]string{}
	for _, f := range r.Failures {
		named[f.Key] = f.Msg
	}
	if len(r.Failures) != 3 || !strings.HasPrefix(named[batches[2]], "2 versions") ||
		!strings.Contains(named[cp], "delete marker") || !strings.HasPrefix(named[pub], "2 versions") {
		t.Fatalf("failures %v", r.Failures)
	}

	r = verifyDir(t, dir, Options{})
	var out bytes.Buffer
	r.Write(&out)
	if !r.OK() || r.PinnedKeys || !strings.Contains(out.String(), "warning         "+UnpinnedWarning) ||
		!strings.Contains(out.String(), "NOT PINNED") || !strings.Contains(out.String(), "versions        not checked") {
		t.Fatalf("unpinned, directory copy:\n%s", out.String())
	}
}
