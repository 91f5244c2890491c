package verify

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"golang.org/x/mod/sumdb/note"

	"github.com/mieweb/pulsevault/shared/audit/record"
	"github.com/mieweb/pulsevault/shared/topology"
)

// Options qualify a verification.
type Options struct {
	// Keys pins the public keys checkpoints must be signed with, by key id.
	// Empty: the keys published in the source (keys/<id>.pub) are used,
	// which trusts whoever could write the bucket; the report then carries
	// UnpinnedWarning.
	Keys map[string]ed25519.PublicKey
	// RetentionDays, when positive and the source can tell, requires every
	// log object to be under COMPLIANCE retention until at least the start
	// of its day plus this many days.
	RetentionDays int
	// Now is the clock for the public keys' retention; default time.Now.
	Now func() time.Time
	// Origin, when set, is the only log origin C2SP checkpoints may name
	// (the name of a pinned note key).
	Origin string
	// Witnesses are the cosignature verifiers of trusted witnesses
	// (tlog-cosignature), Quorum how many of them must have cosigned a
	// checkpoint for it to bind the log (default 1).
	Witnesses []note.Verifier
	Quorum    int
	// Witnessed are cosigned checkpoints obtained outside the source (from
	// a witness, or kept by the auditor): with those, a copy that lost its
	// newest records and checkpoints, or that forks, fails.
	Witnessed [][]byte
}

// NoWitnessWarning is the report's warning when no witness key is given.
const NoWitnessWarning = "no witness key given (--witness-key): this verification CANNOT RULE OUT TRUNCATION — the newest batches and checkpoints removed from the end, or the log rolled back and rewritten — since every checkpoint here is signed by the log's own key"

// UnpinnedWarning is the report's warning (and the CLI's, on stderr) when
// no key is pinned.
const UnpinnedWarning = "public keys not pinned: this verification trusts the public keys found in the audited bucket or copy (" +
	topology.AuditKeysPrefix + "*.pub), which anyone who could write there may have put; pin the signer's key with --public-key"

// Failure is one thing wrong with the log, where it was found.
type Failure struct {
	Key  string `json:"key"`            // object key
	Line int    `json:"line,omitempty"` // 1-based line in a batch
	Seq  uint64 `json:"seq,omitempty"`  // record sequence number, when known
	Msg  string `json:"msg"`
}

func (f Failure) String() string {
	var b strings.Builder
	b.WriteString(f.Key)
	if f.Line > 0 {
		fmt.Fprintf(&b, " line %d", f.Line)
	}
	if f.Seq > 0 {
		fmt.Fprintf(&b, " (seq %d)", f.Seq)
	}
	b.WriteString(": ")
	b.WriteString(f.Msg)
	return b.String()
}

// Report is the outcome of Verify.
type Report struct {
	Source           string
	KeysFrom         string
	Objects          int
	Batches          int
	Records          uint64
	FirstSeq         uint64
	LastSeq          uint64
	Days             int
	Checkpoints      int
	Notes            int    // C2SP checkpoints of the whole log
	Witnessed        uint64 // size of the newest checkpoint the trusted witnesses cosigned (0: none)
	Uncheckpointed   uint64 // records of the last day after its last checkpoint
	RetentionChecked int    // objects whose retention was checked (0: not checked)
	VersionsChecked  int    // log objects whose versions were counted (0: not checked)
	PinnedKeys       bool   // checkpoint keys came from Options.Keys, not from the source
	Failures         []Failure
	Warnings         []string
	Duration         time.Duration
}

// OK reports whether the log verified.
func (r *Report) OK() bool { return len(r.Failures) == 0 }

const maxFailures = 1000

func (r *Report) fail(f Failure) {
	if len(r.Failures) < maxFailures {
		r.Failures = append(r.Failures, f)
	}
}

// Write prints the report for people.
func (r *Report) Write(w io.Writer) {
	fmt.Fprintf(w, "PulseVault audit log verification of %s\n", r.Source)
	fmt.Fprintf(w, "  public keys     %s\n", r.KeysFrom)
	fmt.Fprintf(w, "  objects         %d (%d batches, %d C2SP checkpoints, %d day checkpoints of version 1) over %d day(s)\n", r.Objects, r.Batches, r.Notes, r.Checkpoints, r.Days)
	if r.Witnessed > 0 {
		fmt.Fprintf(w, "  witnessed       the log up to size %d is cosigned by the trusted witness(es)\n", r.Witnessed)
	}
	if r.Records > 0 {
		fmt.Fprintf(w, "  records         %d (seq %d..%d)\n", r.Records, r.FirstSeq, r.LastSeq)
	} else {
		fmt.Fprintf(w, "  records         0\n")
	}
	if r.Uncheckpointed > 0 {
		fmt.Fprintf(w, "  not yet in a checkpoint  the last %d record(s): covered by the hash chain only\n", r.Uncheckpointed)
	}
	if r.RetentionChecked > 0 {
		fmt.Fprintf(w, "  retention       checked on %d object(s)\n", r.RetentionChecked)
	} else {
		fmt.Fprintf(w, "  retention       not checked (a directory copy cannot show it)\n")
	}
	if r.VersionsChecked > 0 {
		fmt.Fprintf(w, "  versions        checked on %d object(s)\n", r.VersionsChecked)
	} else {
		fmt.Fprintf(w, "  versions        not checked (a directory copy cannot show them)\n")
	}
	secs := r.Duration.Seconds()
	if secs > 0 {
		fmt.Fprintf(w, "  time            %s (%.0f records/s)\n", r.Duration.Round(time.Millisecond), float64(r.Records)/secs)
	}
	for _, s := range r.Warnings {
		fmt.Fprintf(w, "  warning         %s\n", s)
	}
	if r.OK() {
		fmt.Fprintln(w, "RESULT: OK")
		return
	}
	fmt.Fprintf(w, "RESULT: FAILED (%d problem(s))\n", len(r.Failures))
	fmt.Fprintf(w, "  first failure   %s\n", r.Failures[0])
	for i, f := range r.Failures[1:] {
		if i == 20 {
			fmt.Fprintf(w, "  ... and %d more\n", len(r.Failures)-21)
			break
		}
		fmt.Fprintf(w, "  also            %s\n", f)
	}
}

type batchObj struct {
	key string
	k   topology.AuditKey
}

type cpObj struct {
	key string
	cp  record.Checkpoint
	ok  bool // signature and shape are fine
}

// day is the running state of one day's tree.
type day struct {
	name  string
	first uint64 // seq of its first record
	tree  record.Tree
	cps   []cpObj // sorted by tree size
	next  int     // index of the next checkpoint to reach
	hash  string  // chain hash of its last record
	seq   uint64
}

// Verify checks the whole log in src.
func Verify(ctx context.Context, src Source, o Options) (*Report, error) {
	start := time.Now()
	if o.Now == nil {
		o.Now = time.Now
	}
	r := &Report{Source: src.String()}
	keys, err := src.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("auditverify: list %s: %w", src, err)
	}
	r.Objects = len(keys)
	var batches []batchObj
	cpKeys := map[string][]string{}
	var pubKeys, noteKeys, cosignedKeys []string
	proofKeys := map[uint64]string{}
	for _, k := range keys {
		switch pk := topology.ParseAuditKey(k); pk.Kind {
		case topology.AuditKindBatch:
			batches = append(batches, batchObj{k, pk})
		case topology.AuditKindCheckpoint:
			cpKeys[pk.Day] = append(cpKeys[pk.Day], k)
		case topology.AuditKindPublicKey:
			pubKeys = append(pubKeys, k)
		case topology.AuditKindNote:
			noteKeys = append(noteKeys, k)
		case topology.AuditKindProof:
			proofKeys[pk.Size] = k
		case topology.AuditKindCosigned:
			cosignedKeys = append(cosignedKeys, k)
		default:
			if !strings.HasPrefix(k, "_canary/") {
				r.Warnings = append(r.Warnings, fmt.Sprintf("unexpected object %s (ignored)", k))
			}
		}
	}
	r.Batches = len(batches)
	if vs, ok := src.(Versioned); ok {
		if err := checkVersions(ctx, r, vs); err != nil {
			return nil, fmt.Errorf("auditverify: list versions of %s: %w", src, err)
		}
	}

	// Public keys.
	trusted := o.Keys
	if len(trusted) > 0 {
		r.PinnedKeys = true
		r.KeysFrom = fmt.Sprintf("%d pinned key(s)", len(trusted))
	} else {
		r.Warnings = append(r.Warnings, UnpinnedWarning)
		trusted = map[string]ed25519.PublicKey{}
		for _, k := range pubKeys {
			b, err := src.Read(ctx, k)
			if err != nil {
				r.fail(Failure{Key: k, Msg: "cannot read: " + err.Error()})
				continue
			}
			pub, err := record.ParsePublicKey(b)
			if err != nil {
				r.fail(Failure{Key: k, Msg: err.Error()})
				continue
			}
			if id := record.KeyID(pub); id != topology.ParseAuditKey(k).KeyID {
				r.fail(Failure{Key: k, Msg: "key id in the name does not match the key (" + id + ")"})
				continue
			}
			trusted[record.KeyID(pub)] = pub
		}
		r.KeysFrom = fmt.Sprintf("%d published in the source, NOT PINNED (see the warning)", len(trusted))
	}

	// Checkpoints: signature and shape first, roots once the records are read.
	days := map[string]*day{}
	for d, ks := range cpKeys {
		dd := &day{name: d}
		days[d] = dd
		for _, k := range ks {
			r.Checkpoints++
			b, err := src.Read(ctx, k)
			if err != nil {
				r.fail(Failure{Key: k, Msg: "cannot read: " + err.Error()})
				continue
			}
			cp, err := record.ParseCheckpoint(b)
			if err != nil {
				r.fail(Failure{Key: k, Msg: err.Error()})
				continue
			}
			pk := topology.ParseAuditKey(k)
			switch {
			case cp.Day != pk.Day || cp.TreeSize != pk.Size:
				r.fail(Failure{Key: k, Msg: fmt.Sprintf("checkpoint says day %s size %d, its key another", cp.Day, cp.TreeSize)})
				continue
			case !bytes.Equal(mustMarshal(cp), b):
				r.fail(Failure{Key: k, Msg: "checkpoint is not in canonical form"})
				continue
			}
			if err := record.VerifySignature(cp, trusted); err != nil {
				r.fail(Failure{Key: k, Msg: "signature: " + err.Error()})
				continue
			}
			dd.cps = append(dd.cps, cpObj{key: k, cp: cp, ok: true})
		}
		slices.SortFunc(dd.cps, func(a, b cpObj) int { return cmpU(a.cp.TreeSize, b.cp.TreeSize) })
	}

	lg := newLogCheck(ctx, r, src, o, trusted)
	lg.load(noteKeys, proofKeys, cosignedKeys)

	// Batches in log order.
	slices.SortFunc(batches, func(a, b batchObj) int {
		if c := cmpU(a.k.First, b.k.First); c != 0 {
			return c
		}
		return cmpU(a.k.Last, b.k.Last)
	})
	expect, prevHash := uint64(1), record.GenesisHash
	linked := true // false right after a gap: the next prev cannot be checked
	ids := map[string]uint64{}
	var cur *day
	var dayOrder []string
	closeDay := func(last bool) {
		if cur == nil {
			return
		}
		for _, c := range cur.cps[cur.next:] {
			r.fail(Failure{Key: c.key, Msg: fmt.Sprintf("checkpoint covers %d record(s) of day %s but the log holds %d: records deleted or truncated", c.cp.TreeSize, cur.name, cur.tree.Size)})
		}
		covered := uint64(0)
		if n := len(cur.cps); n > 0 {
			covered = cur.cps[n-1].cp.TreeSize
		}
		if cur.tree.Size > covered && cur.seq <= lg.maxNote {
			covered = cur.tree.Size // the rest is in a C2SP checkpoint
		}
		if cur.tree.Size > covered {
			if last {
				r.Uncheckpointed = cur.tree.Size - covered
			} else {
				r.fail(Failure{Key: dayPrefix(cur.name), Seq: cur.first + covered, Msg: fmt.Sprintf("day %s is closed but its records from seq %d on are in no checkpoint", cur.name, cur.first+covered)})
			}
		}
	}
	for bi, b := range batches {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if cur == nil || b.k.Day != cur.name {
			if cur != nil && b.k.Day < cur.name {
				r.fail(Failure{Key: b.key, Seq: b.k.First, Msg: fmt.Sprintf("batch of day %s comes after day %s in sequence order", b.k.Day, cur.name)})
			}
			closeDay(false)
			cur = days[b.k.Day]
			if cur == nil {
				cur = &day{name: b.k.Day}
				days[b.k.Day] = cur
			}
			if cur.tree.Size > 0 {
				r.fail(Failure{Key: b.key, Seq: b.k.First, Msg: "day " + b.k.Day + " appears twice in sequence order"})
			}
			dayOrder = append(dayOrder, b.k.Day)
		}
		switch {
		case b.k.First < expect:
			r.fail(Failure{Key: b.key, Seq: b.k.First, Msg: fmt.Sprintf("batch overlaps records already seen (seq %d..%d): duplicate or forked batch", b.k.First, min(b.k.Last, expect-1))})
			if b.k.Last < expect {
				continue
			}
		case b.k.First > expect:
			r.fail(Failure{Key: b.key, Seq: expect, Msg: fmt.Sprintf("records %d..%d are missing before this batch (deleted batch?)", expect, b.k.First-1)})
			expect, linked = b.k.First, false
		}
		data, err := src.Read(ctx, b.key)
		if err != nil {
			r.fail(Failure{Key: b.key, Msg: "cannot read: " + err.Error()})
			expect, linked = b.k.Last+1, false
			continue
		}
		if len(data) == 0 || data[len(data)-1] != '\n' {
			r.fail(Failure{Key: b.key, Msg: "batch does not end with a complete line: truncated"})
		}
		n := 0
		for line := range bytes.Lines(data) {
			n++
			body := record.LeafData(line)
			rec, err := record.ParseLine(body)
			if err != nil {
				r.fail(Failure{Key: b.key, Line: n, Seq: expect, Msg: err.Error()})
				linked = false
				expect++
				continue
			}
			pos := Failure{Key: b.key, Line: n, Seq: rec.Seq}
			if rec.Seq != expect {
				pos.Msg = fmt.Sprintf("sequence %d where %d was expected", rec.Seq, expect)
				r.fail(pos)
				linked = false
			}
			if linked && rec.Prev != prevHash {
				pos.Msg = "prev hash does not link to the record before"
				r.fail(pos)
			}
			if h, err := rec.ComputeHash(); err != nil || h != rec.Hash {
				pos.Msg = "hash does not match the record (altered record)"
				r.fail(pos)
			}
			if s, dup := ids[rec.ID]; dup {
				pos.Msg = fmt.Sprintf("event id already appended at seq %d (duplicate)", s)
				r.fail(pos)
			} else {
				ids[rec.ID] = rec.Seq
			}
			if r.Records == 0 {
				r.FirstSeq = rec.Seq
			}
			r.Records++
			r.LastSeq = rec.Seq
			prevHash, linked, expect = rec.Hash, true, rec.Seq+1
			if cur.tree.Size == 0 {
				cur.first = rec.Seq
			}
			if err := cur.tree.Append(body); err != nil {
				return nil, err
			}
			cur.hash, cur.seq = rec.Hash, rec.Seq
			checkReached(r, cur)
			if err := lg.append(rec.Seq, body); err != nil {
				return nil, err
			}
		}
		if want := b.k.Last - b.k.First + 1; uint64(n) != want {
			r.fail(Failure{Key: b.key, Msg: fmt.Sprintf("batch key promises %d record(s) (seq %d..%d) but it holds %d", want, b.k.First, b.k.Last, n)})
			expect, linked = b.k.Last+1, false
		}
		_ = bi
	}
	closeDay(true)
	lg.finish()
	// Checkpoints of days that have no batch at all.
	for d, dd := range days {
		if !slices.Contains(dayOrder, d) {
			for _, c := range dd.cps {
				r.fail(Failure{Key: c.key, Msg: "checkpoint of a day with no batch: records deleted"})
			}
		}
	}
	r.Days = len(dayOrder)
	if len(batches) > 0 && r.Checkpoints == 0 && r.Notes == 0 {
		r.Warnings = append(r.Warnings, "no checkpoint yet: only the hash chain vouches for the records")
	}
	if len(trusted) == 0 && r.Checkpoints+r.Notes > 0 {
		r.fail(Failure{Key: topology.AuditKeysPrefix, Msg: "no public key to check checkpoint signatures with"})
	}

	if o.RetentionDays > 0 {
		checkRetention(ctx, r, src, keys, o)
	}
	r.Duration = time.Since(start)
	return r, nil
}

// checkVersions fails every log object (batch, checkpoint, public key)
// with more than one version: each is written once, create-only, so any
// other version was put over it, and the latest is all a reader sees. A
// batch hidden by a delete marker is named here too.
func checkVersions(ctx context.Context, r *Report, vs Versioned) error {
	counts, err := vs.Versions(ctx)
	if err != nil {
		return err
	}
	keys := slices.Sorted(maps.Keys(counts))
	for _, k := range keys {
		switch topology.ParseAuditKey(k).Kind {
		case topology.AuditKindBatch, topology.AuditKindCheckpoint, topology.AuditKindPublicKey,
			topology.AuditKindNote, topology.AuditKindProof, topology.AuditKindCosigned:
		default:
			continue
		}
		r.VersionsChecked++
		c := counts[k]
		switch {
		case c.Versions <= 1 && c.DeleteMarkers == 0:
		case c.DeleteMarkers > 0:
			r.fail(Failure{Key: k, Msg: fmt.Sprintf("%d versions, %d of them delete markers: a log object is written once and never deleted", c.Versions, c.DeleteMarkers)})
		default:
			r.fail(Failure{Key: k, Msg: fmt.Sprintf("%d versions: a log object is written once, so another version was written over it (the report reads the latest)", c.Versions)})
		}
	}
	return nil
}

// checkReached compares the day's tree with every checkpoint whose size it
// has just reached.
func checkReached(r *Report, d *day) {
	for d.next < len(d.cps) && d.cps[d.next].cp.TreeSize <= d.tree.Size {
		c := d.cps[d.next]
		d.next++
		if c.cp.TreeSize < d.tree.Size {
			continue // a repeated size: reported with its key
		}
		root, err := d.tree.Root()
		switch {
		case err != nil:
			r.fail(Failure{Key: c.key, Msg: err.Error()})
		case c.cp.FirstSeq != d.first:
			r.fail(Failure{Key: c.key, Seq: c.cp.FirstSeq, Msg: fmt.Sprintf("checkpoint starts day %s at seq %d, the log at %d", d.name, c.cp.FirstSeq, d.first)})
		case c.cp.LastSeq != d.seq || c.cp.HeadHash != d.hash:
			r.fail(Failure{Key: c.key, Seq: c.cp.LastSeq, Msg: "checkpoint head (seq, hash) does not match the log"})
		case c.cp.Root != hex.EncodeToString(root):
			r.fail(Failure{Key: c.key, Seq: c.cp.LastSeq, Msg: "Merkle root does not match the day's records"})
		}
	}
}

func checkRetention(ctx context.Context, r *Report, src Source, keys []string, o Options) {
	for _, k := range keys {
		pk := topology.ParseAuditKey(k)
		var need time.Time
		switch pk.Kind {
		case topology.AuditKindBatch, topology.AuditKindCheckpoint:
			d, _ := time.Parse(time.DateOnly, pk.Day)
			need = d.AddDate(0, 0, o.RetentionDays)
		case topology.AuditKindPublicKey, topology.AuditKindNote, topology.AuditKindProof, topology.AuditKindCosigned:
			need = o.Now()
		default:
			continue
		}
		ret, known, err := src.Retention(ctx, k)
		if !known {
			return
		}
		r.RetentionChecked++
		switch {
		case err != nil:
			r.fail(Failure{Key: k, Msg: "cannot read retention: " + err.Error()})
		case ret == nil || ret.Mode != minio.Compliance:
			r.fail(Failure{Key: k, Msg: "not under COMPLIANCE retention"})
		case ret.Until.Before(need):
			r.fail(Failure{Key: k, Msg: fmt.Sprintf("retained until %s, must be at least %s", ret.Until.Format(time.RFC3339), need.Format(time.RFC3339))})
		}
	}
}

func mustMarshal(c record.Checkpoint) []byte {
	b, _ := c.Marshal()
	return b
}

func dayPrefix(d string) string { return strings.ReplaceAll(d, "-", "/") + "/" }

func cmpU(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
