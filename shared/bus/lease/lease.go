// Package lease gives one holder at a time per key across processes, kept in
// a JetStream key-value bucket.
//
// A lease is a key created with Create (which fails when the key exists) and
// renewed while held, so a holder that dies frees its keys within the
// bucket's TTL. A holder that cannot renew in time, or finds the key taken,
// is told through Lost and must stop. A waiter can ask the holder to let go
// early: the holder's onRequest callback runs on every such request, over
// core NATS.
//
// Keys are hashed before use, so callers may pass any string (an upload id,
// say) and nothing they pass appears in the bucket.
package lease

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mieweb/pulsevault/shared/bus"
	"github.com/mieweb/pulsevault/shared/topology"
)

// Bucket holds the leases of one purpose (tus uploads, say).
type Bucket struct {
	kv    jetstream.KeyValue
	nc    *nats.Conn
	ttl   time.Duration
	name  string
	retry time.Duration
}

// Open creates or updates the key-value bucket name with the given TTL: the
// longest a dead holder keeps a key. A live holder renews its lease every
// ttl/3. An existing bucket keeps its replica count (a new one has one
// copy); OpenReplicated sets it.
func Open(ctx context.Context, js jetstream.JetStream, name, description string, ttl time.Duration) (*Bucket, error) {
	return OpenReplicated(ctx, js, name, description, ttl, 0)
}

// OpenReplicated is Open with the bucket kept in replicas copies
// (NATS_REPLICAS); an existing bucket is converged to that count.
func OpenReplicated(ctx context.Context, js jetstream.JetStream, name, description string, ttl time.Duration, replicas int) (*Bucket, error) {
	if ttl < time.Second {
		return nil, fmt.Errorf("lease: TTL %v is under a second", ttl)
	}
	kv, err := bus.EnsureKeyValue(ctx, js, jetstream.KeyValueConfig{Bucket: name, TTL: ttl, Description: description, Replicas: replicas})
	if err != nil {
		return nil, fmt.Errorf("lease: bucket %s: %w", name, err)
	}
	return &Bucket{kv: kv, nc: js.Conn(), ttl: ttl, name: name, retry: 50 * time.Millisecond}, nil
}

// ErrTimeout means ctx ended before the lease was free.
var ErrTimeout = errors.New("lease: held elsewhere")

// Lease is a held key. Release it when done.
type Lease struct {
	b    *Bucket
	key  string
	sub  *nats.Subscription
	stop chan struct{}
	done chan struct{}
	lost chan struct{}

	mu  sync.Mutex
	rev uint64
}

// Acquire waits until it holds key, asking the current holder to let go
// (its onRequest runs) about once a second while it waits. onRequest may be
// nil; it must not block.
func (b *Bucket) Acquire(ctx context.Context, key string, onRequest func()) (*Lease, error) {
	k := hashKey(key)
	var asked time.Time
	for {
		rev, err := b.kv.Create(ctx, k, []byte(time.Now().UTC().Format(time.RFC3339Nano)))
		if err == nil {
			return b.hold(k, rev, onRequest)
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			if ctx.Err() != nil {
				return nil, ErrTimeout
			}
			return nil, fmt.Errorf("lease: %w", err)
		}
		if time.Since(asked) >= time.Second {
			_ = b.nc.Publish(b.requestSubject(k), nil)
			asked = time.Now()
		}
		select {
		case <-ctx.Done():
			return nil, ErrTimeout
		case <-time.After(b.retry):
		}
	}
}

func (b *Bucket) hold(k string, rev uint64, onRequest func()) (*Lease, error) {
	l := &Lease{b: b, key: k, rev: rev, stop: make(chan struct{}), done: make(chan struct{}), lost: make(chan struct{})}
	go l.renew()
	if onRequest != nil {
		sub, err := b.nc.Subscribe(b.requestSubject(k), func(*nats.Msg) { onRequest() })
		if err == nil {
			// The server must know the subscription before a waiter on
			// another connection asks, or that first request is lost.
			err = b.nc.Flush()
		}
		if err != nil {
			if sub != nil {
				_ = sub.Unsubscribe()
			}
			_ = l.Release()
			return nil, fmt.Errorf("lease: %w", err)
		}
		l.sub = sub
	}
	return l, nil
}

// Lost is closed when the lease is no longer certainly held: the key moved
// to another revision, or renewal failed for a whole TTL (NATS away).
func (l *Lease) Lost() <-chan struct{} { return l.lost }

// renew rewrites the key every ttl/3 so it does not expire while held; a
// failed renewal is retried until the key would have expired.
func (l *Lease) renew() {
	defer close(l.done)
	t := time.NewTicker(l.b.ttl / 3)
	defer t.Stop()
	renewed := time.Now()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), l.b.ttl/3)
		l.mu.Lock()
		rev, err := l.b.kv.Update(ctx, l.key, []byte(time.Now().UTC().Format(time.RFC3339Nano)), l.rev)
		if err == nil {
			l.rev, renewed = rev, time.Now()
		}
		l.mu.Unlock()
		cancel()
		if err != nil && (errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) ||
			time.Since(renewed) >= l.b.ttl) {
			close(l.lost)
			return
		}
	}
}

// Release gives the key up. Only the holder's own revision is deleted, so a
// lease that expired and was taken by another holder is left alone.
func (l *Lease) Release() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if l.sub != nil {
		_ = l.sub.Unsubscribe()
	}
	select {
	case <-l.stop:
		return nil // released before
	default:
		close(l.stop)
	}
	select {
	case <-l.done:
	case <-ctx.Done():
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	err := l.b.kv.Delete(ctx, l.key, jetstream.LastRevision(l.rev))
	switch {
	case err == nil, errors.Is(err, jetstream.ErrKeyNotFound):
		return nil
	case errors.Is(err, jetstream.ErrKeyRevisionMismatch), errors.Is(err, jetstream.ErrKeyExists):
		return nil // expired and taken since: no longer ours to delete
	}
	return fmt.Errorf("lease: release: %w", err)
}

func (b *Bucket) requestSubject(k string) string { return topology.LeaseSubject(b.name, k) }

// hashKey makes any string a valid key that reveals nothing of it.
func hashKey(key string) string {
	h := sha256.Sum256([]byte(key))
	return hex.EncodeToString(h[:16])
}
