package chain

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/mieweb/pulsevault/shared/audit/record"
	"github.com/mieweb/pulsevault/shared/topology"
)

// migrate gives a head from before C2SP checkpoints (it has no whole-log
// tree) its tree, read back from the batches in the bucket once; the commit
// that follows signs the log's first C2SP checkpoint.
func (c *Chain) migrate(ctx context.Context, s state) (state, error) {
	leaves, err := c.readLeaves(ctx, s.Seq)
	if err != nil {
		return s, fmt.Errorf("auditchain: migrate to C2SP checkpoints: %w", err)
	}
	var t record.Tree
	for _, h := range leaves {
		if err := t.AppendLeafHash(h[:]); err != nil {
			return s, err
		}
	}
	c.log.Info("audit: whole-log tree rebuilt from the bucket for C2SP checkpoints", "records", len(leaves))
	s.Log, s.CPTree, s.Pending = t, record.Tree{}, nil
	return s, nil
}

// readLeaves reads records 1..n back from the batches in the bucket and
// returns their leaf hashes, checking that they follow each other.
func (c *Chain) readLeaves(ctx context.Context, n uint64) ([]tlog.Hash, error) {
	type batch struct {
		key         string
		first, last uint64
	}
	var bs []batch
	for info, err := range c.o.Store.List(ctx, c.o.Bucket, "") {
		if err != nil {
			return nil, err
		}
		if k := topology.ParseAuditKey(info.Key); k.Kind == topology.AuditKindBatch && k.First <= n {
			bs = append(bs, batch{info.Key, k.First, k.Last})
		}
	}
	slices.SortFunc(bs, func(a, b batch) int { return int(a.first) - int(b.first) })
	leaves := make([]tlog.Hash, 0, n)
	for _, b := range bs {
		if b.first != uint64(len(leaves))+1 {
			return nil, fmt.Errorf("%s: starts at seq %d, want %d", b.key, b.first, len(leaves)+1)
		}
		rc, _, err := c.o.Store.Get(ctx, c.o.Bucket, b.key, 0, -1)
		if err != nil {
			return nil, err
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return nil, err
		}
		for line := range bytes.Lines(data) {
			if uint64(len(leaves)) == n {
				break
			}
			leaves = append(leaves, record.LeafHashOf(line))
		}
	}
	if uint64(len(leaves)) != n {
		return nil, fmt.Errorf("the bucket holds %d records, the head says %d", len(leaves), n)
	}
	return leaves, nil
}
