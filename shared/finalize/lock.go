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

// lockTTL bounds how long a replica killed mid-way blocks its upload: a
// live holder refreshes its lease every lockTTL/3, however long the
// finalize (probe, copy of a large original) takes.
const lockTTL = 30 * time.Second

// errLeaseLost cancels the work of a holder whose lease expired or was
// taken (it could not refresh it in time), so two replicas never copy the
// same original at once.
var errLeaseLost = errors.New("finalize: lease lost")

// leases serialises work on one upload across every replica, so that
// concurrent deliveries of the same event do not each copy the original
// (every copy is a new locked version that can never be removed).
type leases struct {
	kv  jetstream.KeyValue
	ttl time.Duration
}

func newLeases(ctx context.Context, js jetstream.JetStream, ttl time.Duration) (*leases, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: LockBucket, TTL: ttl, Description: "upload-finalize leases, one per staged upload",
	})
	if err != nil {
		return nil, fmt.Errorf("finalize: lease bucket: %w", err)
	}
	return &leases{kv: kv, ttl: ttl}, nil
}

// acquire waits until it holds the lease on key and keeps it alive until
// release. Work under the lease uses the returned context, which ends if
// the lease is lost.
func (l *leases) acquire(ctx context.Context, key string) (held context.Context, release func(), err error) {
	for {
		rev, err := l.kv.Create(ctx, key, stamp())
		if err == nil {
			held, cancel := context.WithCancelCause(ctx)
			done := make(chan struct{})
			go func() {
				defer close(done)
				rev = l.keep(held, key, rev, cancel)
			}()
			return held, func() {
				cancel(nil)
				<-done
				// A fresh context: the lease must go even when ctx is done.
				c, stop := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				defer stop()
				_ = l.kv.Delete(c, key, jetstream.LastRevision(rev))
			}, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return nil, nil, fmt.Errorf("finalize: lease: %w", err)
		}
		select {
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("finalize: upload is being finalized elsewhere: %w", ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// keep refreshes the lease until ctx ends and returns its last revision.
// A refresh refused because the revision moved means another replica
// holds the lease now; a refresh that fails otherwise (NATS restarting)
// is retried until the lease would have expired.
func (l *leases) keep(ctx context.Context, key string, rev uint64, lost context.CancelCauseFunc) uint64 {
	refreshed := time.Now()
	for {
		select {
		case <-ctx.Done():
			return rev
		case <-time.After(l.ttl / 3):
		}
		next, err := l.kv.Update(ctx, key, stamp(), rev)
		switch {
		case err == nil:
			rev, refreshed = next, time.Now()
		case ctx.Err() != nil:
			return rev
		case errors.Is(err, jetstream.ErrKeyRevisionMismatch), time.Since(refreshed) >= l.ttl:
			lost(errLeaseLost)
			return rev
		}
	}
}

func stamp() []byte { return []byte(time.Now().UTC().Format(time.RFC3339)) }
