package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mieweb/pulsevault/shared/platform/tracing"
	"github.com/mieweb/pulsevault/shared/topology"
)

// ErrPermanent marks a failure that retrying cannot fix, such as malformed
// input. A handler error wrapping it is dead-lettered on the spot.
var ErrPermanent = errors.New("permanent failure")

// Headers added to a dead-lettered message, which otherwise keeps the
// original data and headers so it can be inspected and replayed.
const (
	HeaderDLQSubject    = "Pulse-Dlq-Subject"    // the subject it was published on
	HeaderDLQError      = "Pulse-Dlq-Error"      // the last handler error, one line
	HeaderDLQDeliveries = "Pulse-Dlq-Deliveries" // how many times it was delivered
	HeaderDLQStream     = "Pulse-Dlq-Stream"     // the stream it came from
	HeaderDLQSequence   = "Pulse-Dlq-Sequence"   // its sequence in that stream
)

// maxErrorHeader keeps Pulse-Dlq-Error small; the full error is in the log.
const maxErrorHeader = 512

// fetchWait is how long one pull request waits at the server for a message.
// Stop and reconnects cut it short, so it only sets the idle polling rate.
const fetchWait = 30 * time.Second

// Msg is a message delivered to a Handler.
type Msg struct {
	Subject      string
	Data         []byte
	Header       nats.Header
	NumDelivered uint64 // 1 on first delivery
	Stream       string
	Sequence     uint64 // stream sequence: a stable id for idempotent handling
	// Progress tells the server the handler is still working, resetting
	// AckWait; handlers that may outlast AckWait call it periodically.
	Progress func() error
}

// Handler processes one message. Returning nil acks it; an error schedules a
// redelivery or, when retries are exhausted or the error wraps ErrPermanent,
// dead-letters it. ctx is cancelled when the consumer stops; it carries the
// request id and trace context the publisher sent (see shared/platform/tracing).
type Handler func(ctx context.Context, m Msg) error

// ConsumeOptions configures Consume. Stream and Durable are required.
type ConsumeOptions struct {
	Stream, Durable string
	FilterSubjects  []string // default: the whole stream

	// MaxDeliver is how many failed deliveries a message gets before it is
	// dead-lettered; default 5.
	MaxDeliver int
	// Backoff is the delay before redelivery after a failed delivery n,
	// indexed by n-1; the last entry repeats. Default 1s, 5s, 30s.
	Backoff []time.Duration
	// AckWait is how long the server waits for a verdict before it
	// redelivers on its own (a crashed or stuck handler); default 60s.
	AckWait time.Duration
	// DeadLetter is the subject dead-lettered messages are published on:
	// through JetStream when a stream captures it, plain NATS otherwise.
	// Empty drops them (after logging).
	DeadLetter string
	// Concurrency is how many messages are handled at once; default 1.
	Concurrency int
	// Logger receives the consumer's logs (redeliveries, dead letters,
	// reconnections); nil discards them. Pass the caller's own logger: the
	// process's default logger is nobody's in particular.
	Logger *slog.Logger
}

func (o *ConsumeOptions) setDefaults() {
	if o.MaxDeliver <= 0 {
		o.MaxDeliver = 5
	}
	if len(o.Backoff) == 0 {
		o.Backoff = []time.Duration{time.Second, 5 * time.Second, 30 * time.Second}
	}
	if o.AckWait <= 0 {
		o.AckWait = 60 * time.Second
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 1
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// backoff is the redelivery delay after the given failed delivery.
func (o *ConsumeOptions) backoff(delivered uint64) time.Duration {
	i := int(min(delivered, uint64(len(o.Backoff)))) - 1
	return o.Backoff[max(i, 0)]
}

// Consumer is a running Consume.
type Consumer struct {
	bus  *Bus
	opts ConsumeOptions
	h    Handler
	cfg  jetstream.ConsumerConfig
	log  *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu   sync.Mutex
	cons jetstream.Consumer
}

// Consume creates or updates the durable pull consumer o.Durable on
// o.Stream and handles its messages with h until Stop is called or ctx is
// cancelled. Restarting with the same Durable resumes where the previous
// run stopped: whatever it did not ack is delivered again.
func (b *Bus) Consume(ctx context.Context, o ConsumeOptions, h Handler) (*Consumer, error) {
	if o.Stream == "" || o.Durable == "" {
		return nil, errors.New("bus: consume needs a stream and a durable name")
	}
	if h == nil {
		return nil, errors.New("bus: consume needs a handler")
	}
	o.setDefaults()
	o.Backoff = append([]time.Duration(nil), o.Backoff...)

	cfg := jetstream.ConsumerConfig{
		Durable:   o.Durable,
		AckPolicy: jetstream.AckExplicitPolicy,
		AckWait:   o.AckWait,
		// The server must never drop a message on its own: it does so
		// silently, while we dead-letter it. Deliveries beyond MaxDeliver
		// happen only when earlier ones ended without a verdict (crash,
		// shutdown, AckWait expiry); see handle.
		MaxDeliver: -1,
	}
	if len(o.FilterSubjects) == 1 {
		cfg.FilterSubject = o.FilterSubjects[0]
	} else {
		cfg.FilterSubjects = o.FilterSubjects
	}
	if o.Concurrency > 1000 {
		cfg.MaxAckPending = o.Concurrency
	}

	c := &Consumer{
		bus:  b,
		opts: o,
		h:    h,
		cfg:  cfg,
		log:  o.Logger.With("stream", o.Stream, "durable", o.Durable),
	}
	if err := c.ensureConsumer(ctx); err != nil {
		return nil, err
	}
	c.ctx, c.cancel = context.WithCancel(ctx)
	for range o.Concurrency {
		c.wg.Add(1)
		go c.worker()
	}
	return c, nil
}

// Stop stops fetching, cancels the handlers' context and waits for them to
// return. Messages they did not finish are handed back for redelivery.
// Calling it from a handler deadlocks: it would wait for itself.
func (c *Consumer) Stop() {
	c.cancel()
	c.wg.Wait()
}

func (c *Consumer) ensureConsumer(ctx context.Context) error {
	cons, err := c.bus.js.CreateOrUpdateConsumer(ctx, c.opts.Stream, c.cfg)
	if err != nil {
		return fmt.Errorf("bus: consumer %s on stream %s: %w", c.opts.Durable, c.opts.Stream, err)
	}
	c.mu.Lock()
	c.cons = cons
	c.mu.Unlock()
	return nil
}

func (c *Consumer) consumer() jetstream.Consumer {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cons
}

// worker pulls one message at a time and handles it. Pulling exactly what
// can be handled now, rather than using jetstream's prefetching Consume,
// keeps messages from waiting in a client buffer while their AckWait runs
// out behind a long handler. Each pull is a fresh request, so nothing has to
// be re-established after a reconnect or a server restart.
func (c *Consumer) worker() {
	defer c.wg.Done()
	nc := c.bus.nc
	failures := 0
	for c.ctx.Err() == nil {
		changed := c.bus.connChanged()
		if nc.IsClosed() {
			c.log.Warn("bus: connection closed, consumer stopped")
			return
		}
		if !nc.IsConnected() {
			// The timeout guards against a status event lost to a full
			// listener buffer.
			select {
			case <-changed:
			case <-c.ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}

		err := c.fetchOne(changed)
		if err == nil {
			failures = 0
			continue
		}
		if c.ctx.Err() != nil {
			return
		}
		failures++
		c.log.Warn("bus: fetch failed", "err", err, "failures", failures)
		select {
		case <-c.ctx.Done():
			return
		case <-changed:
		case <-time.After(min(100*time.Millisecond<<min(failures, 6), 5*time.Second)):
		}
		if needsRecreate(err) {
			if err := c.ensureConsumer(c.ctx); err != nil && c.ctx.Err() == nil {
				c.log.Warn("bus: recreating consumer failed", "err", err)
			}
		}
	}
}

// fetchOne waits for one message and handles it. The pull is abandoned when
// the connection changes: a request parked on a server that went away would
// otherwise sit until it expires while messages pile up.
func (c *Consumer) fetchOne(changed <-chan struct{}) error {
	fctx, cancel := context.WithTimeout(c.ctx, fetchWait)
	fctx, cancel = cancelOnChange(fctx, cancel, changed)
	defer cancel()

	batch, err := c.consumer().Fetch(1, jetstream.FetchContext(fctx))
	if err != nil {
		return err
	}
	for m := range batch.Messages() {
		c.handle(m)
	}
	err = batch.Error()
	if err != nil && fctx.Err() != nil {
		return nil // our own cancellation or expiry, not a failure
	}
	return err
}

// needsRecreate reports errors meaning the durable consumer is gone (deleted,
// or lost with a memory-backed stream), which recreating it fixes.
func needsRecreate(err error) bool {
	return errors.Is(err, jetstream.ErrConsumerDeleted) ||
		errors.Is(err, jetstream.ErrConsumerNotFound) ||
		errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, jetstream.ErrNoHeartbeat)
}

func (c *Consumer) handle(jm jetstream.Msg) {
	meta, err := jm.Metadata()
	if err != nil {
		c.log.Error("bus: message without metadata", "err", err)
		c.term(jm)
		return
	}
	log := c.log.With("seq", meta.Sequence.Stream, "deliveries", meta.NumDelivered)
	if c.ctx.Err() != nil {
		// Fetched while stopping: hand it straight back.
		c.nak(jm, 0, log)
		return
	}
	m := Msg{
		Subject:      jm.Subject(),
		Data:         jm.Data(),
		Header:       jm.Headers(),
		NumDelivered: meta.NumDelivered,
		Stream:       meta.Stream,
		Sequence:     meta.Sequence.Stream,
		Progress:     jm.InProgress,
	}

	// A message that keeps coming back without a verdict (the process dies
	// while handling it) would loop forever with an unlimited server-side
	// MaxDeliver; give up on it without running the handler again.
	if meta.NumDelivered > 2*uint64(c.opts.MaxDeliver) {
		c.deadLetterOrRetry(jm, m, fmt.Errorf("no verdict after %d deliveries", meta.NumDelivered), log)
		return
	}

	err = c.call(m, log)
	switch {
	case err == nil:
		ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), attemptTimeout)
		defer cancel()
		// Waiting for the server's confirmation paces the worker and makes
		// a lost ack visible in the log; the message then comes back after
		// AckWait and idempotent handlers absorb the repeat.
		if err := jm.DoubleAck(ctx); err != nil {
			log.Warn("bus: ack failed, message will be redelivered", "err", err)
		}
	case errors.Is(err, ErrPermanent):
		c.deadLetterOrRetry(jm, m, err, log)
	case c.ctx.Err() != nil:
		// Most likely interrupted by Stop: not the message's fault, so
		// another consumer may take it right away.
		c.nak(jm, 0, log)
	case meta.NumDelivered >= uint64(c.opts.MaxDeliver):
		c.deadLetterOrRetry(jm, m, err, log)
	default:
		delay := c.opts.backoff(meta.NumDelivered)
		log.Info("bus: delivery failed, will retry", "err", err, "delay", delay)
		c.nak(jm, delay, log)
	}
}

// call runs the handler, turning a panic into an error so one bad message
// cannot take the process, and with it every other consumer, down.
func (c *Consumer) call(m Msg, log *slog.Logger) (err error) {
	defer func() {
		if r := recover(); r != nil {
			log.Error("bus: handler panicked", "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("handler panic: %v", r)
		}
	}()
	return c.h(tracing.Extract(c.ctx, http.Header(m.Header)), m)
}

// deadLetterOrRetry terminates the message once it is safely dead-lettered.
// If the dead-letter publish fails, the message is retried later instead:
// dropping it would lose it.
func (c *Consumer) deadLetterOrRetry(jm jetstream.Msg, m Msg, cause error, log *slog.Logger) {
	if err := c.deadLetter(m, cause); err != nil {
		log.Error("bus: dead-letter failed, will retry", "err", err)
		c.nak(jm, c.opts.Backoff[len(c.opts.Backoff)-1], log)
		return
	}
	if c.opts.DeadLetter == "" {
		log.Error("bus: message dropped: no dead-letter subject", "err", cause)
	} else {
		log.Warn("bus: message dead-lettered", "subject", c.opts.DeadLetter, "err", cause)
	}
	c.term(jm)
}

func (c *Consumer) deadLetter(m Msg, cause error) error {
	if c.opts.DeadLetter == "" {
		return nil
	}
	h := nats.Header{}
	for k, v := range m.Header {
		// Nats-* headers steer JetStream (dedup id, expectations, TTL) and
		// would misfire on the dead-letter stream.
		if !strings.HasPrefix(k, topology.NATSHeaderPrefix) {
			h[k] = v
		}
	}
	h.Set(HeaderDLQSubject, m.Subject)
	h.Set(HeaderDLQError, oneLine(cause.Error(), maxErrorHeader))
	h.Set(HeaderDLQDeliveries, strconv.FormatUint(m.NumDelivered, 10))
	h.Set(HeaderDLQStream, m.Stream)
	h.Set(HeaderDLQSequence, strconv.FormatUint(m.Sequence, 10))
	msg := func() *nats.Msg {
		return &nats.Msg{Subject: c.opts.DeadLetter, Data: m.Data, Header: cloneHeader(h)}
	}

	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), 10*time.Second)
	defer cancel()
	_, err := c.bus.js.StreamNameBySubject(ctx, c.opts.DeadLetter)
	switch {
	case err == nil:
		// The id makes a retried dead-letter (say, after a lost Term) land once.
		id := fmt.Sprintf("dlq:%s:%s:%d", m.Stream, c.opts.Durable, m.Sequence)
		return c.bus.publish(ctx, msg, true, jetstream.WithMsgID(id))
	case errors.Is(err, jetstream.ErrStreamNotFound):
		if err := c.bus.nc.PublishMsg(msg()); err != nil {
			return err
		}
		return c.bus.nc.FlushWithContext(ctx)
	default:
		return fmt.Errorf("look up stream for %s: %w", c.opts.DeadLetter, err)
	}
}

func (c *Consumer) nak(jm jetstream.Msg, delay time.Duration, log *slog.Logger) {
	var err error
	if delay > 0 {
		err = jm.NakWithDelay(delay)
	} else {
		err = jm.Nak()
	}
	if err != nil {
		log.Warn("bus: nak failed, message returns after AckWait", "err", err)
	}
}

func (c *Consumer) term(jm jetstream.Msg) {
	if err := jm.Term(); err != nil {
		c.log.Warn("bus: term failed, message returns after AckWait", "err", err)
	}
}

// oneLine makes s fit a header value: no line breaks, at most n bytes, cut on
// a rune boundary.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= n {
		return s
	}
	s = s[:n-3]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "..."
}

// cloneHeader gives every publish attempt its own header map: publishing
// adds the dedup id to it.
func cloneHeader(h nats.Header) nats.Header {
	out := make(nats.Header, len(h))
	for k, v := range h {
		out[k] = slices.Clone(v)
	}
	return out
}
