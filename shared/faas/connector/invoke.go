package connector

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/mieweb/pulsevault/shared/bus"
	"github.com/mieweb/pulsevault/shared/platform/tracing"
	"github.com/mieweb/pulsevault/shared/topology"
)

// ConnectorName is the value of the X-Connector header.
const ConnectorName = "pulsevault"

// maxDrain is how much of a function's answer is read (and discarded) so the
// connection can be reused; the rest is dropped with the connection.
const maxDrain = 1 << 20

// hopHeaders are never copied from a message to an invocation: they describe
// one HTTP hop (or the body), which the client sets itself.
var hopHeaders = map[string]bool{
	"Connection": true, "Content-Length": true, "Host": true, "Keep-Alive": true,
	"Proxy-Authorization": true, "Proxy-Connection": true, "Te": true, "Trailer": true,
	"Transfer-Encoding": true, "Upgrade": true,
}

// permanent reports the status codes that say the function rejects this
// message as such, so redelivering the same bytes cannot help: it is
// dead-lettered at once. Other 4xx describe the deployment rather than the
// message (404 function not deployed yet or being redeployed, 401/403 gateway
// auth, 409 conflict, 408/429 load) and are retried like 5xx.
func permanent(code int) bool {
	switch code {
	case http.StatusBadRequest, http.StatusGone, http.StatusRequestEntityTooLarge,
		http.StatusUnsupportedMediaType, http.StatusUnprocessableEntity:
		return true
	}
	return false
}

// handler returns the bus handler of pair k: it invokes the function and
// turns the answer into a verdict, counting what happens.
func (c *Connector) handler(k pairKey) bus.Handler {
	fn, topic := k.function, k.topic
	return func(ctx context.Context, m bus.Msg) error {
		// A message from outside PulseVault (a bucket notification) starts
		// its own request here, so its whole chain of work shares one id.
		if tracing.RequestID(ctx) == "" {
			ctx = tracing.WithRequestID(ctx, tracing.NewRequestID())
		}
		ctx, span := tracing.Start(ctx, "connector deliver "+fn, trace.SpanKindConsumer, trace.WithAttributes(
			attribute.String("faas.name", fn), attribute.String("messaging.system", "nats"),
			attribute.String("messaging.consumer.group.name", topic), attribute.Int64("messaging.nats.delivered", int64(m.NumDelivered))))
		defer span.End()
		if m.NumDelivered > 1 {
			c.m.redeliveries.WithLabelValues(fn).Inc()
		}
		code, err := c.invoke(ctx, fn, m)
		if code == 0 && err != nil && ctx.Err() != nil {
			// Cut short because the connector is stopping: not the
			// message's fault, so it goes back unjudged and uncounted.
			return err
		}
		codeLabel := "error"
		if code != 0 {
			codeLabel = strconv.Itoa(code)
		}
		c.m.invocations.WithLabelValues(fn, codeLabel).Inc()
		if err == nil {
			c.m.delivered.WithLabelValues(fn, topic).Inc()
			return nil
		}
		c.m.failures.WithLabelValues(fn).Inc()
		span.SetStatus(codes.Error, "invocation failed")
		// This mirrors bus's verdict: a permanent error, or the last allowed
		// delivery, is dead-lettered.
		if errors.Is(err, bus.ErrPermanent) || m.NumDelivered >= uint64(c.o.MaxDeliver) {
			c.m.deadLetters.WithLabelValues(fn).Inc()
		}
		c.log.WarnContext(ctx, "connector: invocation failed", "function", fn, "topic", topic, "stream", m.Stream,
			"seq", m.Sequence, "deliveries", m.NumDelivered, "code", codeLabel, "err", err)
		return err
	}
}

// invoke POSTs m to the function and returns the HTTP status (0 when none
// came) and nil for 2xx. Errors never include the body, of the message or of
// the answer: either could carry PHI.
func (c *Connector) invoke(ctx context.Context, fn string, m bus.Msg) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	defer cancel()
	stop := keepAlive(m.Progress, c.o.AckWait/2)
	defer stop()

	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		c.gateway+"/function/"+url.PathEscape(fn), bytes.NewReader(m.Data))
	if err != nil {
		return 0, fmt.Errorf("function %s: %w", fn, err)
	}
	for k, vs := range m.Header {
		ck := http.CanonicalHeaderKey(k)
		if strings.HasPrefix(ck, topology.NATSHeaderPrefix) || hopHeaders[ck] {
			continue
		}
		for _, v := range vs {
			req.Header.Add(ck, v)
		}
	}
	tracing.Inject(ctx, req.Header)
	req.Header.Set(topology.HeaderTopic, m.Subject)
	req.Header.Set(topology.HeaderConnector, ConnectorName)
	req.Header.Set(topology.HeaderStream, m.Stream)
	req.Header.Set(topology.HeaderStreamSeq, strconv.FormatUint(m.Sequence, 10))
	req.Header.Set(topology.HeaderDelivered, strconv.FormatUint(m.NumDelivered, 10))
	if req.Header.Get("Content-Type") == "" && looksJSON(m.Data) {
		req.Header.Set("Content-Type", "application/json")
	}

	start := time.Now()
	resp, err := c.client.Do(req)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return 0, fmt.Errorf("function %s: no answer within %s", fn, c.o.Timeout)
		}
		return 0, fmt.Errorf("function %s: %w", fn, stripURL(err))
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	resp.Body.Close()
	code := resp.StatusCode
	switch {
	case code >= 200 && code < 300:
		return code, nil
	case permanent(code):
		return code, fmt.Errorf("function %s answered %d after %s: %w", fn, code, time.Since(start).Round(time.Millisecond), bus.ErrPermanent)
	default:
		return code, fmt.Errorf("function %s answered %d after %s", fn, code, time.Since(start).Round(time.Millisecond))
	}
}

// stripURL keeps the error's cause without repeating the request URL.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// looksJSON reports whether body is a JSON object or array.
func looksJSON(body []byte) bool {
	b := bytes.TrimLeft(body, " \t\r\n")
	return len(b) > 0 && (b[0] == '{' || b[0] == '[') && json.Valid(b)
}

// keepAlive calls progress every interval until the returned stop is
// called, so JetStream does not redeliver a message whose invocation runs
// longer than AckWait. stop waits for the last call to finish.
func keepAlive(progress func() error, interval time.Duration) (stop func()) {
	if progress == nil || interval <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_ = progress() // a lost progress report costs at most a duplicate delivery
			}
		}
	})
	return func() { close(done); wg.Wait() }
}
