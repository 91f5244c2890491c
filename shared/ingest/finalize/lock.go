package finalize

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mieweb/pulsevault/shared/bus/lease"
	"github.com/mieweb/pulsevault/shared/topology"
)

// lockTTL bounds how long a replica killed mid-way blocks its upload; a
// live holder renews its lease however long the finalize (probe, copy of a
// large original) takes.
const lockTTL = 30 * time.Second

// errLeaseLost cancels the work of a holder whose lease expired or was
// taken (it could not renew it in time), so two replicas never copy the
// same original at once.
var errLeaseLost = errors.New("finalize: lease lost")

// leases serialises work on one upload across every replica, so that
// concurrent deliveries of the same event do not each copy the original
// (every copy is a new locked version that can never be removed).
type leases struct{ b *lease.Bucket }

func newLeases(ctx context.Context, js jetstream.JetStream, ttl time.Duration, replicas int) (*leases, error) {
	b, err := lease.OpenReplicated(ctx, js, topology.KVFinalizeLocks, "upload-finalize leases, one per staged upload", ttl, replicas)
	if err != nil {
		return nil, fmt.Errorf("finalize: %w", err)
	}
	return &leases{b: b}, nil
}

// acquire waits until it holds the lease on key. Work under the lease uses
// the returned context, which ends if the lease is lost; release gives the
// lease up.
func (l *leases) acquire(ctx context.Context, key string) (held context.Context, release func(), err error) {
	ls, err := l.b.Acquire(ctx, key, nil)
	if errors.Is(err, lease.ErrTimeout) {
		return nil, nil, fmt.Errorf("finalize: upload is being finalized elsewhere: %w", ctx.Err())
	} else if err != nil {
		return nil, nil, fmt.Errorf("finalize: %w", err)
	}
	held, cancel := context.WithCancelCause(ctx)
	go func() {
		select {
		case <-ls.Lost():
			cancel(errLeaseLost)
		case <-held.Done():
		}
	}()
	return held, func() {
		cancel(nil)
		_ = ls.Release()
	}, nil
}
