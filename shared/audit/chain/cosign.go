package chain

import (
	"context"
	"errors"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/mieweb/pulsevault/shared/audit/record"
	"github.com/mieweb/pulsevault/shared/audit/witness"
	"github.com/mieweb/pulsevault/shared/topology"
)

// cosignTimeout bounds one witness request.
const cosignTimeout = 15 * time.Second

type cosignJob struct {
	size  uint64
	note  []byte
	proof record.Proof
}

// queueCosign hands a committed checkpoint to the cosigning goroutine;
// when it is busy the oldest waiting checkpoint is dropped, as the next
// one proves everything before it anyway.
func (c *Chain) queueCosign(n state, key string) {
	if len(c.o.Witnesses) == 0 {
		return
	}
	job := cosignJob{size: n.CPTree.Size}
	for _, o := range n.Objects {
		switch o.Key {
		case key:
			job.note = o.data
		case topology.AuditProofKey(job.size):
			p, err := record.ParseProof(o.data)
			if err == nil {
				job.proof = p
			}
		}
	}
	c.cosignOnce.Do(func() {
		c.cosignCh = make(chan cosignJob, 1)
		go c.cosignLoop()
	})
	for {
		select {
		case c.cosignCh <- job:
			return
		default:
			select {
			case <-c.cosignCh:
			default:
			}
		}
	}
}

func (c *Chain) cosignLoop() {
	for job := range c.cosignCh {
		for _, w := range c.o.Witnesses {
			ctx, cancel := context.WithTimeout(context.Background(), cosignTimeout)
			err := c.cosign(ctx, w, job)
			cancel()
			if err != nil {
				c.m.witnessFailed.Inc()
				c.note(func(s *Status) { s.WitnessFailures++ })
				c.log.Warn("audit: witness did not cosign; appends go on", "witness", w.URL, "size", job.size, "err", err)
			} else {
				c.note(func(s *Status) { s.Cosigned++ })
			}
		}
	}
}

// cosign asks one witness to cosign job's checkpoint and stores the
// cosigned note beside it. A witness that last cosigned another size gets
// a proof from that size, built from the records in the bucket.
func (c *Chain) cosign(ctx context.Context, w *witness.Client, job cosignJob) error {
	proof := job.proof
	if proof.Old == 0 && len(proof.Hashes) == 0 {
		proof = record.Proof{} // first checkpoint, or one after a migration
	}
	for try := 0; ; try++ {
		out, err := w.Add(ctx, proof, job.note)
		var ce *witness.ConflictError
		if errors.As(err, &ce) && ce.Size >= job.size {
			// Another writer had it cosigned, or a later checkpoint: nothing to do.
			c.log.Info("audit: witness is at this checkpoint or past it already", "witness", w.URL, "size", job.size, "witness_size", ce.Size)
			return nil
		}
		if errors.As(err, &ce) && try == 0 {
			leaves, lerr := c.readLeaves(ctx, job.size)
			if lerr != nil {
				return lerr
			}
			p, perr := tlog.ProveTree(int64(job.size), int64(ce.Size), record.HashesFromLeaves(leaves))
			if perr != nil {
				return perr
			}
			proof = record.Proof{Old: ce.Size, Hashes: p}
			if ce.Size == 0 {
				proof.Hashes = nil
			}
			continue
		}
		if err != nil {
			return err
		}
		return c.putOnce(ctx, topology.AuditCosignedKey(job.size, w.Verifier.KeyHash()), out, "text/plain; charset=utf-8")
	}
}
