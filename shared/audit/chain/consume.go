package chain

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mieweb/pulsevault/shared/audit/event"
	"github.com/mieweb/pulsevault/shared/bus"
	"github.com/mieweb/pulsevault/shared/platform/tracing"
	"github.com/mieweb/pulsevault/shared/topology"
)

const (
	// maxEventBytes bounds one event; larger ones are dead-lettered.
	maxEventBytes = 16 << 10
	retryDelay    = time.Second
)

// Run pulls events from the PULSE_AUDIT stream through the durable consumer
// shared by every replica, appends them batch by batch, and acks each batch
// once it is in the bucket. Malformed events are published on the
// dead-letter subject with the reason, then dropped from the stream. It
// returns when ctx is done; unacknowledged events come back to a replica.
func (c *Chain) Run(ctx context.Context) error {
	var cons jetstream.Consumer
	for {
		var err error
		cons, err = c.o.Bus.JetStream().CreateOrUpdateConsumer(ctx, topology.StreamAudit, jetstream.ConsumerConfig{
			Durable:       topology.DurableAudit,
			FilterSubject: topology.SubjectAudit + ".>",
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       c.o.Config.AckWait,
			MaxAckPending: 8 * c.o.Config.BatchMax,
			MaxDeliver:    -1,
		})
		if err == nil {
			break
		}
		c.fail(fmt.Errorf("auditchain: consumer on %s: %w", topology.StreamAudit, err))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(5 * retryDelay):
		}
	}
	c.log.Info("audit: appending events", "stream", topology.StreamAudit, "durable", topology.DurableAudit,
		"batch_max", c.o.Config.BatchMax, "batch_wait", c.o.Config.BatchWait.String())
	lastIdle := time.Now()
	for ctx.Err() == nil {
		batch, err := cons.Fetch(c.o.Config.BatchMax, jetstream.FetchMaxWait(c.o.Config.BatchWait))
		if err != nil {
			c.fail(fmt.Errorf("auditchain: fetch: %w", err))
			sleep(ctx, retryDelay)
			continue
		}
		var msgs []jetstream.Msg
		for m := range batch.Messages() {
			msgs = append(msgs, m)
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
			c.log.Debug("audit: fetch ended early", "err", err)
		}
		if len(msgs) == 0 {
			c.m.pending.Set(0)
			if time.Since(lastIdle) >= time.Second {
				lastIdle = time.Now()
				c.idle(ctx)
			}
			continue
		}
		if md, err := msgs[len(msgs)-1].Metadata(); err == nil {
			c.m.pending.Set(float64(md.NumPending))
		}
		c.handle(ctx, msgs)
	}
	return nil
}

// idle commits a checkpoint or a day close that came due with no events.
func (c *Chain) idle(ctx context.Context) {
	due, err := c.Due(ctx)
	if err != nil || !due {
		return
	}
	if _, err := c.Append(ctx, nil, false); err != nil && ctx.Err() == nil {
		c.fail(err)
	}
}

// handle appends one fetched batch, in chunks that fit a batch object.
func (c *Chain) handle(ctx context.Context, msgs []jetstream.Msg) {
	var chunk []jetstream.Msg
	var evs []event.Event
	size := 0
	flush := func() {
		if len(chunk) == 0 {
			return
		}
		start := time.Now()
		if res, err := c.Append(ctx, evs, false); err != nil {
			if ctx.Err() == nil {
				c.fail(err)
			}
			for _, m := range chunk {
				_ = m.NakWithDelay(retryDelay)
			}
			sleep(ctx, retryDelay)
		} else {
			c.m.observeAppend(res, time.Since(start))
			for _, m := range chunk {
				_ = m.Ack()
			}
			if res.Appended > 0 {
				// The publishers' request ids let one request be followed
				// into the chain.
				c.log.Info("audit: batch appended", "events", res.Appended, "first_seq", res.FirstSeq,
					"last_seq", res.LastSeq, "request_ids", requestIDs(chunk, 32))
			}
		}
		chunk, evs, size = chunk[:0], evs[:0], 0
	}
	for _, m := range msgs {
		e, err := decode(m.Data())
		if err != nil {
			c.reject(ctx, m, err)
			continue
		}
		// A record is the event plus about 200 bytes of chain fields.
		if size+len(m.Data())+256 > maxBatchBytes {
			flush()
		}
		chunk, evs = append(chunk, m), append(evs, e)
		size += len(m.Data()) + 256
	}
	flush()
}

// decode reads an event strictly: unknown fields would be lost from the
// record, so an event carrying them is refused rather than trimmed.
func decode(data []byte) (event.Event, error) {
	if len(data) > maxEventBytes {
		return event.Event{}, fmt.Errorf("event of %d bytes exceeds %d", len(data), maxEventBytes)
	}
	var e event.Event
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(&e); err != nil {
		return e, fmt.Errorf("not an audit event: %v", err)
	}
	if d.More() {
		return e, errors.New("not an audit event: trailing data")
	}
	if err := e.Validate(); err != nil {
		return e, err
	}
	e.Time = e.Time.UTC()
	return e, nil
}

// reject dead-letters a malformed event, keeping its bytes and saying why,
// then terminates it. If the dead letter cannot be stored the event stays
// in the stream for a later try: bad input loses nothing.
func (c *Chain) reject(ctx context.Context, m jetstream.Msg, why error) {
	md, _ := m.Metadata()
	var seq, delivered uint64
	if md != nil {
		seq, delivered = md.Sequence.Stream, md.NumDelivered
	}
	h := nats.Header{}
	for k, v := range m.Headers() {
		h[k] = v
	}
	h.Del(nats.MsgIdHdr)
	msg := why.Error()
	if len(msg) > 512 {
		msg = msg[:512]
	}
	h.Set(bus.HeaderDLQSubject, m.Subject())
	h.Set(bus.HeaderDLQError, msg)
	h.Set(bus.HeaderDLQStream, topology.StreamAudit)
	h.Set(bus.HeaderDLQSequence, strconv.FormatUint(seq, 10))
	h.Set(bus.HeaderDLQDeliveries, strconv.FormatUint(delivered, 10))
	h.Set(nats.MsgIdHdr, "audit-dlq-"+strconv.FormatUint(seq, 10))
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := c.o.Bus.JetStream().PublishMsg(pctx, &nats.Msg{Subject: topology.DeadLetterAudit, Data: m.Data(), Header: h}); err != nil {
		c.fail(fmt.Errorf("auditchain: dead-letter stream seq %d: %w", seq, err))
		_ = m.NakWithDelay(5 * retryDelay)
		return
	}
	// The reason stays in the dead letter: it may quote the event.
	c.m.deadLettered.Inc()
	c.log.Warn("audit: malformed event dead-lettered", "stream_seq", seq, "dead_letter_subject", topology.DeadLetterAudit)
	c.note(func(s *Status) { s.Rejected++ })
	_ = m.Term()
}

func (c *Chain) fail(err error) {
	c.log.Error("audit: append failed; will retry", "err", err)
	c.note(func(s *Status) { s.LastError = err.Error() })
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// requestIDs lists the distinct request ids the messages carry, at most n.
func requestIDs(msgs []jetstream.Msg, n int) []string {
	var out []string
	for _, m := range msgs {
		id := tracing.Extract(context.Background(), http.Header(m.Headers()))
		if rid := tracing.RequestID(id); rid != "" && !slices.Contains(out, rid) && len(out) < n {
			out = append(out, rid)
		}
	}
	return out
}
