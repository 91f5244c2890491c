// Package bus is PulseVault's thin layer over NATS JetStream: streams,
// deduplicated publishes and durable consumers that ack on success, back off
// on failure and dead-letter what keeps failing.
//
// Every function is stateless and may be killed at any moment, so the bus
// leans on JetStream for everything that must survive: message ids make
// re-publishing safe, durable consumers make restarts resume where they left
// off, and the connection reconnects forever so an outage only delays work.
package bus

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/mieweb/pulsevault/shared/platform/tracing"
)

// DefaultDuplicates is the dedup window used when StreamConfig.Duplicates is
// zero: long enough to cover a publisher's retries after a crash or outage.
const DefaultDuplicates = 2 * time.Minute

// DefaultPublishTimeout bounds Publish when its context has no deadline, so a
// long outage surfaces as an error instead of a hung caller.
const DefaultPublishTimeout = 30 * time.Second

// attemptTimeout bounds one publish request: a request sent into a dying
// connection gets no answer, and only a fresh attempt can succeed.
const attemptTimeout = 5 * time.Second

// Bus is a connection to NATS with its JetStream context.
type Bus struct {
	nc *nats.Conn
	js jetstream.JetStream

	statusCh chan nats.Status
	done     chan struct{}

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every connection status change
}

// ForFunction connects the function called name to the NATS server at
// url. A function cannot work without one, so an empty url is an error
// that names NATS_URL, the setting to fix.
func ForFunction(url, name string) (*Bus, error) {
	if url == "" {
		return nil, fmt.Errorf("%s: NATS_URL is required", name)
	}
	return Connect(url, "pulsevault-fn-"+name)
}

// Connect dials url and keeps reconnecting forever with backoff, so a NATS or
// JetStream outage delays callers but never kills them. Only the first
// connection attempt may fail; name identifies the client in server monitoring.
func Connect(url, name string) (*Bus, error) {
	nc, err := nats.Connect(url,
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.CustomReconnectDelay(reconnectDelay),
	)
	if err != nil {
		return nil, fmt.Errorf("bus: connect to %s: %w", redactURL(url), err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("bus: jetstream: %w", err)
	}
	b := &Bus{
		nc:       nc,
		js:       js,
		statusCh: nc.StatusChanged(),
		done:     make(chan struct{}),
		changed:  make(chan struct{}),
	}
	go b.watchStatus()
	return b, nil
}

// reconnectDelay starts fast, so a restarted local server is picked up
// within a fraction of a second, and settles at nats.go's 2s default with
// jitter so a fleet of clients does not reconnect in lockstep.
func reconnectDelay(attempts int) time.Duration {
	d := 2 * time.Second
	if attempts < 5 {
		d = 100 * time.Millisecond << (attempts - 1)
	}
	return d + rand.N(d/5+1)
}

// redactURL keeps passwords and tokens out of errors and logs.
func redactURL(raw string) string {
	var out []string
	for _, s := range strings.Split(raw, ",") {
		u, err := url.Parse(strings.TrimSpace(s))
		if err != nil || u.User == nil {
			out = append(out, s)
			continue
		}
		u.User = url.User("redacted")
		out = append(out, u.String())
	}
	return strings.Join(out, ",")
}

func (b *Bus) watchStatus() {
	defer close(b.done)
	for range b.statusCh {
		b.mu.Lock()
		close(b.changed)
		b.changed = make(chan struct{})
		b.mu.Unlock()
	}
}

// connChanged returns a channel closed at the next connection status change.
// Consumers use it to abandon pull requests parked on a server that is gone.
func (b *Bus) connChanged() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.changed
}

// cancelOnChange derives a context that is also cancelled when changed is
// closed. The returned cancel releases both.
func cancelOnChange(parent context.Context, cancelParent context.CancelFunc, changed <-chan struct{}) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	go func() {
		select {
		case <-changed:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, func() { cancel(); cancelParent() }
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// Conn is the underlying connection, for core NATS work.
func (b *Bus) Conn() *nats.Conn { return b.nc }

// JetStream is the underlying JetStream context, for what this package does
// not wrap.
func (b *Bus) JetStream() jetstream.JetStream { return b.js }

// Close closes the connection. Consumers should be stopped first: messages
// they hold are not acked and come back after their AckWait.
func (b *Bus) Close() {
	b.nc.Close()
	b.nc.RemoveStatusListener(b.statusCh)
	<-b.done
}

// StreamConfig is the part of a stream's configuration PulseVault owns.
// Other settings made on the server (limits, placement, ...) are preserved.
type StreamConfig struct {
	Name       string
	Subjects   []string
	MaxAge     time.Duration // zero keeps messages until limits or consumers remove them
	Duplicates time.Duration // dedup window for Nats-Msg-Id; default 2m (capped at MaxAge)
	// Replicas is the number of copies (NATS_REPLICAS); 0 keeps an existing
	// stream's count, so a caller that does not know never makes a
	// replicated stream single-copy, and creates a new one with 1.
	Replicas int
}

// EnsureStream creates the stream or brings it to c. It is safe to run at
// every start: when the stream already matches, nothing is sent to the server.
//
// A request the server does not answer in time (a replicated stream
// electing its leader on a busy cluster) is sent again until ctx ends, or
// for 2 minutes when it has no deadline.
func (b *Bus) EnsureStream(ctx context.Context, c StreamConfig) (created bool, err error) {
	if c.Name == "" || len(c.Subjects) == 0 {
		return false, errors.New("bus: stream needs a name and subjects")
	}
	if c.Duplicates <= 0 {
		c.Duplicates = DefaultDuplicates
		// The server rejects a dedup window longer than the retention.
		if c.MaxAge > 0 && c.MaxAge < c.Duplicates {
			c.Duplicates = c.MaxAge
		}
	}

	ctx, cancel := apiContext(ctx)
	defer cancel()
	var s jetstream.Stream
	err = retryAPI(ctx, func(ctx context.Context) (err error) { s, err = b.js.Stream(ctx, c.Name); return err })
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		err = retryAPI(ctx, func(ctx context.Context) error {
			_, err := b.js.CreateStream(ctx, jetstream.StreamConfig{
				Name:       c.Name,
				Subjects:   c.Subjects,
				MaxAge:     c.MaxAge,
				Duplicates: c.Duplicates,
				Replicas:   max(c.Replicas, 1),
				Storage:    jetstream.FileStorage,
			})
			return err
		})
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return false, fmt.Errorf("bus: create stream %s: %w", c.Name, err)
		}
		// Another replica won the race; converge on its stream below.
		err = retryAPI(ctx, func(ctx context.Context) (err error) { s, err = b.js.Stream(ctx, c.Name); return err })
	}
	if err != nil {
		return false, fmt.Errorf("bus: stream %s: %w", c.Name, err)
	}

	cur := s.CachedInfo().Config
	want := cur
	want.Subjects = c.Subjects
	want.MaxAge = c.MaxAge
	want.Duplicates = c.Duplicates
	if c.Replicas > 0 {
		want.Replicas = c.Replicas
	}
	if sameSet(cur.Subjects, want.Subjects) && cur.MaxAge == want.MaxAge &&
		cur.Duplicates == want.Duplicates && cur.Replicas == want.Replicas {
		return false, nil
	}
	if err := retryAPI(ctx, func(ctx context.Context) error { _, err := b.js.UpdateStream(ctx, want); return err }); err != nil {
		return false, fmt.Errorf("bus: update stream %s: %w", c.Name, err)
	}
	return false, nil
}

// apiAttempt bounds one JetStream API request. Creating or scaling a
// replicated stream waits for its Raft group to elect a leader, which on a
// loaded cluster outlasts nats.go's 5 s default; retryAPI sends such a
// request again (creating or updating to the same configuration is
// idempotent) until ctx ends: apiContext gives it 2 minutes when it has no
// deadline.
const apiAttempt = 15 * time.Second

func apiContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, 2*time.Minute)
}

func retryAPI(ctx context.Context, op func(context.Context) error) error {
	for {
		actx, cancel := context.WithTimeout(ctx, apiAttempt)
		err := op(actx)
		cancel()
		if err == nil || ctx.Err() != nil ||
			!(errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// Publish stores data on subject through JetStream and waits for the
// server's acknowledgement. A non-empty msgID is sent as Nats-Msg-Id so the
// stream drops repeats within its dedup window; such a repeat is a success,
// which is what lets a restarted function re-publish blindly.
//
// Publish rides out a reconnect, retrying while ctx allows (30s when ctx has
// no deadline); a publish whose outcome is unknown (lost connection, no reply)
// is only retried when msgID makes that safe. "No responders", which past a
// restart means no stream captures subject, fails after about two seconds.
//
// The request id and trace context of ctx travel in the message's headers
// (see shared/platform/tracing), so the consumer's work joins the publisher's trace.
func (b *Bus) Publish(ctx context.Context, subject string, data []byte, msgID string) error {
	var opts []jetstream.PublishOpt
	if msgID != "" {
		opts = append(opts, jetstream.WithMsgID(msgID))
	}
	ctx, span := tracing.Start(ctx, "bus publish", trace.SpanKindProducer,
		trace.WithAttributes(attribute.String("messaging.system", "nats"), attribute.String("messaging.destination.name", subject)))
	defer span.End()
	h := nats.Header{}
	tracing.Inject(ctx, http.Header(h))
	err := b.publish(ctx, func() *nats.Msg {
		return &nats.Msg{Subject: subject, Data: data, Header: cloneHeader(h)}
	}, msgID != "", opts...)
	if err != nil {
		span.SetStatus(codes.Error, "publish failed")
		return fmt.Errorf("bus: publish to %s: %w", subject, err)
	}
	return nil
}

func (b *Bus) publish(ctx context.Context, msg func() *nats.Msg, idempotent bool, opts ...jetstream.PublishOpt) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultPublishTimeout)
		defer cancel()
	}
	wait := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		changed := b.connChanged()
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		if idempotent {
			// A request written just before the connection dropped is lost
			// without a trace; rather than wait out the attempt, send it
			// again as soon as the connection changes. Dedup absorbs a repeat.
			actx, cancel = cancelOnChange(actx, cancel, changed)
		}
		_, err := b.js.PublishMsg(actx, msg(), opts...)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
		if idempotent && isClosed(changed) {
			continue
		}
		if !retryablePublish(err, idempotent, attempt) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-changed:
			// Reconnected (or lost the connection): retrying now beats waiting.
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// retryablePublish tells errors where the message surely was not stored
// (nobody answered) from those where it may have been (no reply in time).
// "No responders" is retried only briefly: past a JetStream restart it means
// no stream captures the subject, a configuration error worth reporting fast.
func retryablePublish(err error, idempotent bool, attempt int) bool {
	switch {
	case errors.Is(err, nats.ErrConnectionClosed):
		return false
	case errors.Is(err, jetstream.ErrNoStreamResponse), errors.Is(err, nats.ErrNoResponders):
		return attempt < 3
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout),
		errors.Is(err, nats.ErrConnectionReconnecting), errors.Is(err, nats.ErrConnectionDraining):
		return idempotent
	}
	return false
}
