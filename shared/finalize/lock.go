package finalize

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// LockBucket is the JetStream key-value bucket holding finalize leases.
const LockBucket = "PULSE_FINALIZE_LOCKS"

// lockTTL outlives one finalize (probe, copy of a large original); a
// replica killed mid-way holds the lease at most this long.
const lockTTL = 15 * time.Minute

// leases serialises work on one upload across every replica, so that
// concurrent deliveries of the same event do not each copy the original
// (every copy is a new locked version that can never be removed).
type leases struct{ kv jetstream.KeyValue }

func newLeases(ctx context.Context, js jetstream.JetStream) (*leases, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: LockBucket, TTL: lockTTL, Description: "upload-finalize leases, one per staged upload",
	})
	if err != nil {
		return nil, fmt.Errorf("finalize: lease bucket: %w", err)
	}
	return &leases{kv: kv}, nil
}

// acquire waits until it holds the lease on key; release it when done.
func (l *leases) acquire(ctx context.Context, key string) (release func(), err error) {
	for {
		rev, err := l.kv.Create(ctx, key, []byte(time.Now().UTC().Format(time.RFC3339)))
		if err == nil {
			return func() {
				// A fresh context: the lease must go even when ctx is done.
				c, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				defer cancel()
				_ = l.kv.Delete(c, key, jetstream.LastRevision(rev))
			}, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return nil, fmt.Errorf("finalize: lease: %w", err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("finalize: upload is being finalized elsewhere: %w", ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}
