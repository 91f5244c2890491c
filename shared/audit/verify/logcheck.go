package verify

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"maps"
	"slices"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/mieweb/pulsevault/shared/audit/record"
	"github.com/mieweb/pulsevault/shared/topology"
)

// logCheck checks the C2SP side of the log: the whole-log tree against
// every checkpoint note, the consistency proofs between successive notes,
// and the checkpoints trusted witnesses cosigned.
type logCheck struct {
	ctx     context.Context
	r       *Report
	src     Source
	o       Options
	keys    map[string]ed25519.PublicKey
	tree    record.Tree
	notes   []noteObj         // valid notes by size
	targets map[uint64][]want // roots the tree must have at a size
	maxNote uint64            // largest valid note size
	witness uint64            // largest witnessed size
}

type noteObj struct {
	key string
	p   record.Parsed
}

type want struct {
	key      string
	root     tlog.Hash
	what     string
	cosigned bool
}

func newLogCheck(ctx context.Context, r *Report, src Source, o Options, keys map[string]ed25519.PublicKey) *logCheck {
	return &logCheck{ctx: ctx, r: r, src: src, o: o, keys: keys, targets: map[uint64][]want{}}
}

// logVerifiers are note verifiers of the trusted keys under origin.
func (l *logCheck) logVerifiers(origin string) []note.Verifier {
	var vs []note.Verifier
	for _, pub := range l.keys {
		vk, err := record.VerifierKey(origin, pub)
		if err != nil {
			continue
		}
		if v, err := note.NewVerifier(vk); err == nil {
			vs = append(vs, v)
		}
	}
	return vs
}

func (l *logCheck) open(b []byte, extra ...note.Verifier) (record.Parsed, error) {
	origin := record.NoteOrigin(b)
	if l.o.Origin != "" && origin != l.o.Origin {
		return record.Parsed{}, fmt.Errorf("checkpoint of log %q, the pinned key is for %q", origin, l.o.Origin)
	}
	return record.OpenNote(b, note.VerifierList(append(l.logVerifiers(origin), extra...)...))
}

func (l *logCheck) load(noteKeys []string, proofKeys map[uint64]string, cosignedKeys []string) {
	r := l.r
	for _, k := range noteKeys {
		r.Notes++
		b, err := l.src.Read(l.ctx, k)
		if err != nil {
			r.fail(Failure{Key: k, Msg: "cannot read: " + err.Error()})
			continue
		}
		p, err := l.open(b)
		if err != nil {
			r.fail(Failure{Key: k, Msg: err.Error()})
			continue
		}
		if p.Size != topology.ParseAuditKey(k).Size {
			r.fail(Failure{Key: k, Msg: fmt.Sprintf("checkpoint says tree size %d, its key another", p.Size)})
			continue
		}
		l.notes = append(l.notes, noteObj{k, p})
		l.targets[p.Size] = append(l.targets[p.Size], want{k, p.Root, "Merkle root does not match the log's records", false})
		l.maxNote = max(l.maxNote, p.Size)
	}
	slices.SortFunc(l.notes, func(a, b noteObj) int { return cmpU(a.p.Size, b.p.Size) })
	// Each note after the first is proven consistent with the one before.
	for i, n := range l.notes {
		pk, ok := proofKeys[n.p.Size]
		delete(proofKeys, n.p.Size)
		if i == 0 {
			if ok {
				r.Warnings = append(r.Warnings, pk+": proof for the first checkpoint here (an earlier one is missing?)")
			}
			continue
		}
		prev := l.notes[i-1]
		if !ok {
			r.fail(Failure{Key: topology.AuditProofKey(n.p.Size), Msg: "consistency proof missing (deleted?)"})
			continue
		}
		b, err := l.src.Read(l.ctx, pk)
		if err != nil {
			r.fail(Failure{Key: pk, Msg: "cannot read: " + err.Error()})
			continue
		}
		p, err := record.ParseProof(b)
		switch {
		case err != nil:
			r.fail(Failure{Key: pk, Msg: err.Error()})
		case p.Old != prev.p.Size:
			r.fail(Failure{Key: pk, Msg: fmt.Sprintf("proof from size %d, but the checkpoint before is at %d: a checkpoint is missing", p.Old, prev.p.Size)})
		default:
			if err := tlog.CheckTree(p.Hashes, int64(n.p.Size), n.p.Root, int64(prev.p.Size), prev.p.Root); err != nil {
				r.fail(Failure{Key: pk, Msg: "consistency proof does not verify: " + err.Error()})
			}
		}
	}
	for size, pk := range proofKeys {
		r.fail(Failure{Key: pk, Msg: fmt.Sprintf("proof for size %d, but no checkpoint of that size (deleted?)", size)})
	}
	// Cosigned checkpoints: in the source, and given by the auditor.
	type cos struct {
		key string
		b   []byte
	}
	var all []cos
	for _, k := range cosignedKeys {
		b, err := l.src.Read(l.ctx, k)
		if err != nil {
			r.fail(Failure{Key: k, Msg: "cannot read: " + err.Error()})
			continue
		}
		all = append(all, cos{k, b})
	}
	for i, b := range l.o.Witnessed {
		all = append(all, cos{fmt.Sprintf("witnessed checkpoint #%d (given)", i+1), b})
	}
	if len(l.o.Witnesses) == 0 {
		r.Warnings = append(r.Warnings, NoWitnessWarning)
		return
	}
	quorum := max(l.o.Quorum, 1)
	for _, c := range all {
		p, err := l.open(c.b, l.o.Witnesses...)
		if err != nil {
			r.fail(Failure{Key: c.key, Msg: err.Error()})
			continue
		}
		n := 0
		for _, w := range l.o.Witnesses {
			for _, s := range p.Note.Sigs {
				if s.Name == w.Name() && s.Hash == w.KeyHash() {
					n++
					break
				}
			}
		}
		if n < quorum {
			continue // cosigned by too few trusted witnesses to bind the log
		}
		l.witness = max(l.witness, p.Size)
		l.targets[p.Size] = append(l.targets[p.Size], want{c.key, p.Root, "the log FORKS from a checkpoint the witness(es) cosigned: its records at that size have another root", true})
	}
	if l.witness == 0 {
		r.fail(Failure{Key: topology.AuditCheckpointsPrefix, Msg: fmt.Sprintf("no checkpoint cosigned by %d of the trusted witness(es): cannot tell whether the log was truncated", quorum)})
	}
}

// append adds record seq (the next leaf) and checks what its size must match.
func (l *logCheck) append(seq uint64, body []byte) error {
	if seq != l.tree.Size+1 {
		return nil // a gap, already reported; later roots will fail
	}
	if err := l.tree.Append(body); err != nil {
		return err
	}
	ws := l.targets[l.tree.Size]
	if len(ws) == 0 {
		return nil
	}
	root, err := l.tree.Root()
	if err != nil {
		return err
	}
	for _, w := range ws {
		if string(root) != string(w.root[:]) {
			l.r.fail(Failure{Key: w.key, Seq: seq, Msg: w.what})
		}
	}
	delete(l.targets, l.tree.Size)
	return nil
}

func (l *logCheck) finish() {
	r := l.r
	for _, size := range slices.Sorted(maps.Keys(l.targets)) {
		ws := l.targets[size]
		for _, w := range ws {
			if !w.cosigned {
				r.fail(Failure{Key: w.key, Msg: fmt.Sprintf("checkpoint of tree size %d but the log holds %d record(s) in order: records deleted or truncated", size, l.tree.Size)})
			}
		}
	}
	if l.witness > l.tree.Size {
		r.fail(Failure{Key: topology.AuditCheckpointsPrefix, Msg: fmt.Sprintf("TRUNCATED: the trusted witness(es) cosigned the log at size %d, but it holds only %d record(s) in order", l.witness, l.tree.Size)})
	}
	r.Witnessed = l.witness
	if r.Notes > 0 {
		r.Uncheckpointed = r.LastSeq - min(l.maxNote, r.LastSeq)
	}
}
