package tusupload

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/tus/tusd/v2/pkg/handler"

	"github.com/mieweb/pulsevault/shared/bus/lease"
	"github.com/mieweb/pulsevault/shared/topology"
)

// LockTTL is how long a killed replica keeps an upload locked: under the
// handler's lock wait (20 s), so a client's first request after the crash
// waits and succeeds. A live holder renews every LockTTL/3.
const LockTTL = 10 * time.Second

// OpenLocks opens the lease bucket every tusd replica over the staging
// bucket shares (the upload and pulsevault functions alike), for
// Options.Locks.
func OpenLocks(ctx context.Context, js jetstream.JetStream, replicas int) (*lease.Bucket, error) {
	return lease.OpenReplicated(ctx, js, topology.KVUploadLocks, "tus upload locks shared by the upload function's replicas", LockTTL, replicas)
}

// leaseLocker is tusd's Locker over shared/bus/lease: a request for an upload
// that another replica is serving asks that replica to let go (tusd then
// ends its PATCH cleanly, as it does within one process).
type leaseLocker struct{ b *lease.Bucket }

func (k leaseLocker) NewLock(id string) (handler.Lock, error) { return &leaseLock{b: k.b, id: id}, nil }

type leaseLock struct {
	b        *lease.Bucket
	id       string
	l        *lease.Lease
	released chan struct{}
}

func (k *leaseLock) Lock(ctx context.Context, requestUnlock func()) error {
	l, err := k.b.Acquire(ctx, k.id, requestUnlock)
	if errors.Is(err, lease.ErrTimeout) {
		return handler.ErrLockTimeout
	}
	if err != nil {
		return err
	}
	k.l, k.released = l, make(chan struct{})
	go func() {
		// A lease lost mid-PATCH: stop as if another request asked.
		select {
		case <-l.Lost():
			requestUnlock()
		case <-k.released:
		}
	}()
	return nil
}

func (k *leaseLock) Unlock() error {
	if k.l == nil {
		return nil
	}
	close(k.released)
	l := k.l
	k.l = nil
	return l.Release()
}
