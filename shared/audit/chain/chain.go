// Package chain extends PulseVault's audit log: it pulls audit events
// from JetStream, appends them to the hash chain in batches, writes each
// batch (and the signed checkpoints) to the locked audit bucket, and only
// then acknowledges the events.
//
// Any number of replicas may run. The chain head lives in a JetStream KV
// bucket and only a compare-and-set on its revision extends the chain, so
// replicas never fork it; a loser re-reads the head and tries again. The
// head also carries the objects of the last commit until they are written:
// a replica that dies between its commit and its writes leaves them to the
// next writer, which writes the same bytes (Ed25519 signatures are
// deterministic), so nothing acknowledged is lost and nothing is written
// twice.
package chain

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/prometheus/client_golang/prometheus"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mieweb/pulsevault/shared/audit/event"
	"github.com/mieweb/pulsevault/shared/audit/record"
	"github.com/mieweb/pulsevault/shared/bus"
	"github.com/mieweb/pulsevault/shared/storage"
	"github.com/mieweb/pulsevault/shared/topology"
)

// Keys in the topology.KVAuditChain bucket.
const (
	headKey    = "head"
	settledKey = "settled"
)

// maxBatchBytes bounds a batch object so the head (which carries it until
// it is written) stays under NATS's default 1 MiB message size.
const maxBatchBytes = 512 << 10

// Options configures a Chain. Bus, Store, Bucket, RetentionDays and Signer
// are required.
type Options struct {
	Bus           *bus.Bus
	Store         *storage.Store
	Bucket        string
	RetentionDays int
	Signer        *record.Signer
	Config        Config
	Logger        *slog.Logger     // nil discards; pass the function's redacting logger
	Now           func() time.Time // default time.Now
	Replicas      int              // copies of the KV buckets (NATS_REPLICAS); 0 keeps a bucket's
	// Registerer takes the writer's metrics (the function's own
	// registry); nil keeps them unexported.
	Registerer prometheus.Registerer
}

// Chain is one writer of the audit log. It is safe for concurrent use.
type Chain struct {
	o     Options
	log   *slog.Logger
	m     *metrics
	chain jetstream.KeyValue
	ids   jetstream.KeyValue

	mu      sync.Mutex
	settled uint64 // head revision this process knows is written out
	status  Status
}

// Status is what a writer has done, for the function's status answer. It
// holds counts and hashes only.
type Status struct {
	HeadSeq     uint64    `json:"head_seq"`
	HeadHash    string    `json:"head_hash"`
	Day         string    `json:"day"`
	Appended    uint64    `json:"appended"`    // events this process appended
	Batches     uint64    `json:"batches"`     // batch objects this process committed
	Duplicates  uint64    `json:"duplicates"`  // redelivered or re-published events dropped
	Rejected    uint64    `json:"rejected"`    // malformed events sent to the dead-letter subject
	Conflicts   uint64    `json:"conflicts"`   // commits lost to another writer and retried
	Checkpoints uint64    `json:"checkpoints"` // checkpoints this process committed
	LastError   string    `json:"last_error,omitempty"`
	LastCommit  time.Time `json:"last_commit"`
}

// New connects the writer to its KV buckets (creating them when missing)
// and publishes the signing key's public half in the bucket.
func New(ctx context.Context, o Options) (*Chain, error) {
	if o.Bus == nil || o.Store == nil || o.Bucket == "" || o.RetentionDays <= 0 || o.Signer == nil {
		return nil, errors.New("auditchain: Bus, Store, Bucket, RetentionDays and Signer are required")
	}
	if o.Config.BatchMax == 0 {
		c, err := LoadConfig(func(string) string { return "" })
		if err != nil {
			return nil, err
		}
		o.Config = c
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	m, err := newMetrics(o.Registerer)
	if err != nil {
		return nil, err
	}
	js := o.Bus.JetStream()
	chain, err := bus.EnsureKeyValue(ctx, js, jetstream.KeyValueConfig{
		Bucket: topology.KVAuditChain, Description: "PulseVault audit chain head", History: 1, Storage: jetstream.FileStorage,
		Replicas: o.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("auditchain: kv %s: %w", topology.KVAuditChain, err)
	}
	ids, err := bus.EnsureKeyValue(ctx, js, jetstream.KeyValueConfig{
		Bucket: topology.KVAuditIDs, Description: "PulseVault audit event ids (dedup)", History: 1,
		TTL: o.Config.DedupWindow, Storage: jetstream.FileStorage, Replicas: o.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("auditchain: kv %s: %w", topology.KVAuditIDs, err)
	}
	c := &Chain{o: o, log: o.Logger, m: m, chain: chain, ids: ids}
	pub := o.Signer.Public()
	if err := c.putOnce(ctx, topology.AuditPublicKeyKey(o.Signer.KeyID()), record.EncodePublicKey(pub), "text/plain"); err != nil {
		return nil, fmt.Errorf("auditchain: publish public key: %w", err)
	}
	return c, nil
}

// Status returns what this writer has done so far.
func (c *Chain) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status
}

func (c *Chain) note(f func(s *Status)) {
	c.mu.Lock()
	f(&c.status)
	c.mu.Unlock()
}

// state is the chain head as stored in KV, followed there by the bytes of
// Objects.
type state struct {
	Seq              uint64      `json:"seq"`
	Hash             string      `json:"hash"`
	Day              string      `json:"day"`       // UTC day whose tree is open
	DayFirst         uint64      `json:"day_first"` // first seq of Day's tree, 0 while empty
	Tree             record.Tree `json:"tree"`
	CheckpointedSize uint64      `json:"checkpointed_size"` // Day's tree size at its last checkpoint
	CheckpointAt     time.Time   `json:"checkpoint_at"`
	Committed        time.Time   `json:"committed"`
	Objects          []object    `json:"objects,omitempty"` // to be written by whoever settles this head
}

type object struct {
	Key  string `json:"key"`
	Size int    `json:"size"`
	data []byte
}

func (s state) encode() ([]byte, error) {
	h, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.Write(h)
	b.WriteByte('\n')
	for _, o := range s.Objects {
		b.Write(o.data)
	}
	return b.Bytes(), nil
}

func decodeState(v []byte) (state, error) {
	i := bytes.IndexByte(v, '\n')
	if i < 0 {
		return state{}, errors.New("auditchain: head: no header line")
	}
	var s state
	if err := json.Unmarshal(v[:i], &s); err != nil {
		return state{}, fmt.Errorf("auditchain: head: %w", err)
	}
	rest := v[i+1:]
	for k := range s.Objects {
		n := s.Objects[k].Size
		if n < 0 || n > len(rest) {
			return state{}, errors.New("auditchain: head: object sizes exceed the value")
		}
		s.Objects[k].data, rest = rest[:n], rest[n:]
	}
	return s, nil
}

// readHead returns the head and its KV revision (0: the log is empty).
func (c *Chain) readHead(ctx context.Context) (state, uint64, error) {
	e, err := c.chain.Get(ctx, headKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return state{Hash: record.GenesisHash}, 0, nil
	}
	if err != nil {
		return state{}, 0, fmt.Errorf("auditchain: read head: %w", err)
	}
	s, err := decodeState(e.Value())
	return s, e.Revision(), err
}

// errConflict means another writer moved the head first.
var errConflict = errors.New("auditchain: head moved")

func (c *Chain) cas(ctx context.Context, s state, rev uint64) (uint64, error) {
	v, err := s.encode()
	if err != nil {
		return 0, err
	}
	var nrev uint64
	if rev == 0 {
		nrev, err = c.chain.Create(ctx, headKey, v)
	} else {
		nrev, err = c.chain.Update(ctx, headKey, v, rev)
	}
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return 0, errConflict
	}
	if err != nil {
		return 0, fmt.Errorf("auditchain: commit head: %w", err)
	}
	return nrev, nil
}

// settleWait is how long a writer waits for another writer to finish
// writing out the head it committed before doing it itself.
const settleWait = 3 * time.Second

// ensureSettled makes sure the objects and ids of head rev are written
// before anything replaces it.
func (c *Chain) ensureSettled(ctx context.Context, s state, rev uint64) error {
	if rev == 0 || len(s.Objects) == 0 {
		return nil
	}
	c.mu.Lock()
	done := c.settled >= rev
	c.mu.Unlock()
	if done {
		return nil
	}
	// Another writer probably committed it a moment ago and is writing it
	// out; writing it too would only double the work.
	wait := time.Millisecond
	deadline := time.Now().Add(settleWait)
	for {
		e, err := c.chain.Get(ctx, settledKey)
		if err == nil {
			if n, perr := strconv.ParseUint(string(e.Value()), 10, 64); perr == nil && n >= rev {
				c.markSettled(n)
				return nil
			}
		} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("auditchain: read settled: %w", err)
		}
		if time.Now().After(deadline) || time.Since(s.Committed) > settleWait {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 50*time.Millisecond)
	}
	c.log.Info("audit: writing out a head another writer committed", "head_seq", s.Seq, "revision", rev)
	return c.settle(ctx, s, rev)
}

func (c *Chain) markSettled(rev uint64) {
	c.mu.Lock()
	c.settled = max(c.settled, rev)
	c.mu.Unlock()
}

// settle writes head rev's objects to the bucket, records its event ids for
// dedup, then marks it settled.
func (c *Chain) settle(ctx context.Context, s state, rev uint64) error {
	var futures []jetstream.PubAckFuture
	js := c.o.Bus.JetStream()
	for _, o := range s.Objects {
		if err := c.putOnce(ctx, o.Key, o.data, contentType(o.Key)); err != nil {
			return err
		}
		if topology.ParseAuditKey(o.Key).Kind != topology.AuditKindBatch {
			continue
		}
		for line := range bytes.Lines(o.data) {
			// The batch was built by a writer from valid records; only the
			// id and seq are needed here.
			var r struct {
				Seq uint64 `json:"seq"`
				ID  string `json:"id"`
			}
			if err := json.Unmarshal(line, &r); err != nil {
				return fmt.Errorf("auditchain: head batch %s: %w", o.Key, err)
			}
			f, err := js.PublishAsync("$KV."+topology.KVAuditIDs+"."+idKey(r.ID), []byte(strconv.FormatUint(r.Seq, 10)))
			if err != nil {
				return fmt.Errorf("auditchain: record event ids: %w", err)
			}
			futures = append(futures, f)
		}
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("auditchain: record event ids: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if _, err := c.chain.Put(ctx, settledKey, []byte(strconv.FormatUint(rev, 10))); err != nil {
		return fmt.Errorf("auditchain: mark settled: %w", err)
	}
	c.markSettled(rev)
	return nil
}

func contentType(key string) string {
	switch topology.ParseAuditKey(key).Kind {
	case topology.AuditKindBatch:
		return "application/x-ndjson"
	case topology.AuditKindCheckpoint:
		return "application/json"
	}
	return "text/plain"
}

// putOnce writes key create-only, with COMPLIANCE retention and a checksum
// (storage does both). When the key exists with the same bytes (another
// writer, or an earlier try, wrote it) that is success; other bytes there
// mean the log has forked, which must stop the writer.
func (c *Chain) putOnce(ctx context.Context, key string, data []byte, ct string) error {
	ret := storage.Compliance(c.o.RetentionDays)
	_, err := c.o.Store.PutBytes(ctx, c.o.Bucket, key, data, storage.PutOptions{
		ContentType: ct, Retention: &ret, IfNoneMatch: true,
	})
	if err == nil {
		return nil
	}
	if !errors.Is(err, storage.ErrPreconditionFailed) {
		return fmt.Errorf("auditchain: write %s: %w", key, err)
	}
	rc, _, err := c.o.Store.Get(ctx, c.o.Bucket, key, 0, -1)
	if err != nil {
		return fmt.Errorf("auditchain: read back %s: %w", key, err)
	}
	defer rc.Close()
	have, err := io.ReadAll(rc)
	if err != nil {
		return fmt.Errorf("auditchain: read back %s: %w", key, err)
	}
	if !bytes.Equal(have, data) {
		c.log.Error("AUDIT LOG FORK: an object already in the bucket differs from what the chain head says; refusing to continue", "key", key)
		return fmt.Errorf("auditchain: %s already exists with other content: the log has forked", key)
	}
	return nil
}

// idKey is the dedup key of an event id: ids are free-form up to 64
// characters, KV keys are not, so the key is a hash.
func idKey(id string) string {
	h := sha256.Sum256([]byte(id))
	return "e." + hex.EncodeToString(h[:16])
}

// seen reports which events were appended already (within the dedup
// window), looking ids up concurrently.
func (c *Chain) seen(ctx context.Context, evs []event.Event) ([]bool, error) {
	out := make([]bool, len(evs))
	errs := make([]error, len(evs))
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for i := range evs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			_, err := c.ids.Get(ctx, idKey(evs[i].ID))
			switch {
			case err == nil:
				out[i] = true
			case errors.Is(err, jetstream.ErrKeyNotFound):
			default:
				errs[i] = err
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("auditchain: dedup lookup: %w", err)
	}
	return out, nil
}

// Result says what one Append did.
type Result struct {
	Appended   int    // events added to the chain
	Duplicates int    // events dropped as already appended
	FirstSeq   uint64 // of the appended events (0 when none)
	LastSeq    uint64
	Checkpoint string // key of the checkpoint committed with them, if any
}

// Append adds events to the chain as one batch, after dropping those
// already appended, and returns once the batch object is in the bucket:
// only then may the caller acknowledge them. force writes a checkpoint even
// when none is due. Appending no events may still commit a due checkpoint
// or the close of a day.
func (c *Chain) Append(ctx context.Context, evs []event.Event, force bool) (Result, error) {
	var res Result
	// Drop repeats within the batch itself.
	uniq := make([]event.Event, 0, len(evs))
	inBatch := make(map[string]bool, len(evs))
	for _, e := range evs {
		if inBatch[e.ID] {
			res.Duplicates++
			continue
		}
		inBatch[e.ID] = true
		uniq = append(uniq, e)
	}
	known := make([]bool, len(uniq)) // dups stay dups across retries
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		s, rev, err := c.readHead(ctx)
		if err != nil {
			return res, err
		}
		if err := c.ensureSettled(ctx, s, rev); err != nil {
			return res, err
		}
		// Looked up after the head is settled, so every event already in
		// the chain has its id recorded; if another writer appends after
		// this point, the head moves and this commit fails its CAS.
		var fresh []event.Event
		var idx []int
		for i, e := range uniq {
			if !known[i] {
				fresh, idx = append(fresh, e), append(idx, i)
			}
		}
		hits, err := c.seen(ctx, fresh)
		if err != nil {
			return res, err
		}
		var todo []event.Event
		for j, hit := range hits {
			if hit {
				known[idx[j]] = true
				continue
			}
			todo = append(todo, fresh[j])
		}
		next, cp, ok, err := c.next(s, todo, force)
		if err != nil {
			return res, err
		}
		dups := res.Duplicates
		for _, k := range known {
			if k {
				dups++
			}
		}
		if !ok {
			c.note(func(st *Status) { st.Duplicates += uint64(dups) })
			return Result{Duplicates: dups}, nil
		}
		nrev, err := c.cas(ctx, next, rev)
		if errors.Is(err, errConflict) {
			c.note(func(st *Status) { st.Conflicts++ })
			continue
		}
		if err != nil {
			return res, err
		}
		// Committed: from here the objects are the chain's, whoever writes them.
		if err := c.settle(ctx, next, nrev); err != nil {
			return res, err
		}
		out := Result{Appended: len(todo), Duplicates: dups, Checkpoint: cp}
		if len(todo) > 0 {
			out.FirstSeq, out.LastSeq = s.Seq+1, next.Seq
		}
		c.note(func(st *Status) {
			st.HeadSeq, st.HeadHash, st.Day, st.LastCommit = next.Seq, next.Hash, next.Day, next.Committed
			st.Appended += uint64(len(todo))
			st.Duplicates += uint64(dups)
			if len(todo) > 0 {
				st.Batches++
			}
			if cp != "" {
				st.Checkpoints++
			}
		})
		return out, nil
	}
}

// next builds the head that appends evs to s, with the objects it needs:
// the closing checkpoint of a past day, the batch, a due checkpoint. ok is
// false when there is nothing to commit.
func (c *Chain) next(s state, evs []event.Event, force bool) (n state, checkpoint string, ok bool, err error) {
	now := c.o.Now().UTC()
	today := record.DayOf(now)
	if s.Day != "" && today < s.Day {
		today = s.Day // a clock behind another writer's must not reopen a closed day
	}
	n = s
	n.Objects = nil
	n.Tree.Hashes = append([][]byte(nil), s.Tree.Hashes...)
	if s.Day != "" && today != s.Day {
		// Close the old day: its last checkpoint must cover all its records.
		if s.Tree.Size > s.CheckpointedSize {
			o, err := c.checkpoint(s, now)
			if err != nil {
				return n, "", false, err
			}
			n.Objects = append(n.Objects, o)
			checkpoint = o.Key
		}
		n.Day, n.DayFirst, n.Tree, n.CheckpointedSize, n.CheckpointAt = today, 0, record.Tree{}, 0, now
	}
	if n.Day == "" {
		n.Day, n.CheckpointAt = today, now
	}
	if len(evs) > 0 {
		recs, err := record.Chain(n.Seq, n.Hash, evs)
		if err != nil {
			return n, "", false, err
		}
		var data []byte
		for _, r := range recs {
			line, err := r.Line()
			if err != nil {
				return n, "", false, err
			}
			if err := n.Tree.Append(line); err != nil {
				return n, "", false, err
			}
			data = append(data, line...)
		}
		first, last := recs[0].Seq, recs[len(recs)-1]
		if n.DayFirst == 0 {
			n.DayFirst = first
		}
		key, err := topology.AuditBatchKey(n.Day, first, last.Seq)
		if err != nil {
			return n, "", false, err
		}
		n.Objects = append(n.Objects, object{Key: key, Size: len(data), data: data})
		n.Seq, n.Hash = last.Seq, last.Hash
	}
	if n.Tree.Size > n.CheckpointedSize && (force || now.Sub(n.CheckpointAt) >= c.o.Config.CheckpointEvery) {
		o, err := c.checkpoint(n, now)
		if err != nil {
			return n, "", false, err
		}
		n.Objects = append(n.Objects, o)
		n.CheckpointedSize, n.CheckpointAt = n.Tree.Size, now
		checkpoint = o.Key
	}
	if len(n.Objects) == 0 {
		return n, "", false, nil
	}
	n.Committed = now
	return n, checkpoint, true, nil
}

// checkpoint signs the checkpoint of s's open day at its current size.
func (c *Chain) checkpoint(s state, now time.Time) (object, error) {
	root, err := s.Tree.Root()
	if err != nil {
		return object{}, err
	}
	cp, err := c.o.Signer.Sign(record.Checkpoint{
		V: record.CheckpointVersion, Origin: record.Origin, Day: s.Day,
		FirstSeq: s.DayFirst, LastSeq: s.Seq, TreeSize: s.Tree.Size,
		Root: hex.EncodeToString(root), HeadHash: s.Hash, Time: now,
	})
	if err != nil {
		return object{}, err
	}
	data, err := cp.Marshal()
	if err != nil {
		return object{}, err
	}
	key, err := topology.AuditCheckpointKey(s.Day, s.Tree.Size)
	if err != nil {
		return object{}, err
	}
	return object{Key: key, Size: len(data), data: data}, nil
}

// Due reports whether a checkpoint or a day close is waiting, so an idle
// writer knows to call Append with no events.
func (c *Chain) Due(ctx context.Context) (bool, error) {
	s, rev, err := c.readHead(ctx)
	if err != nil || rev == 0 {
		return false, err
	}
	now := c.o.Now().UTC()
	if s.Tree.Size > s.CheckpointedSize &&
		(now.Sub(s.CheckpointAt) >= c.o.Config.CheckpointEvery || record.DayOf(now) > s.Day) {
		return true, nil
	}
	return false, nil
}
