package provider

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/openfaas/faas-provider/types"

	"github.com/mieweb/pulsevault/shared/bus"
	"github.com/mieweb/pulsevault/shared/platform/tracing"
	"github.com/mieweb/pulsevault/shared/topology"
)

// Asynchronous invocations: /async-function/NAME answers 202 with an
// X-Call-Id at once and queues the request on JetStream; a worker in the
// provider invokes the function and, when the request carried
// X-Callback-Url, POSTs the result there, as OpenFaaS's queue-worker does.
const (
	asyncMaxAge      = 24 * time.Hour // unprocessed requests are dropped after this
	asyncAckWait     = time.Minute
	asyncMaxDeliver  = 5
	maxAsyncResponse = 64 << 20 // function response kept for the callback
)

var callIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// startAsync makes the stream (a work queue: a request leaves it once
// handled) and starts the worker.
func (p *Provider) startAsync() error {
	b := p.opts.Bus
	ctx, cancel := context.WithTimeout(p.ctx, 15*time.Second)
	defer cancel()
	js := b.JetStream()
	if _, err := js.Stream(ctx, topology.StreamAsync); errors.Is(err, jetstream.ErrStreamNotFound) {
		_, err = js.CreateStream(ctx, jetstream.StreamConfig{
			Name: topology.StreamAsync, Subjects: []string{topology.SubjectAsyncPrefix + ">"},
			Retention: jetstream.WorkQueuePolicy, MaxAge: asyncMaxAge,
			Duplicates: bus.DefaultDuplicates, Storage: jetstream.FileStorage,
			Replicas: max(p.opts.NATSReplicas, 1),
		})
		if err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return fmt.Errorf("provider: create stream %s: %w", topology.StreamAsync, err)
		}
	} else if err != nil {
		return fmt.Errorf("provider: stream %s: %w", topology.StreamAsync, err)
	}
	if _, err := b.EnsureStream(ctx, bus.StreamConfig{
		Name: topology.StreamAsync, Subjects: []string{topology.SubjectAsyncPrefix + ">"}, MaxAge: asyncMaxAge,
		Replicas: p.opts.NATSReplicas,
	}); err != nil {
		return fmt.Errorf("provider: %w", err)
	}
	c, err := b.Consume(p.ctx, bus.ConsumeOptions{
		Stream: topology.StreamAsync, Durable: topology.DurableAsync,
		MaxDeliver: asyncMaxDeliver, AckWait: asyncAckWait,
		Backoff:     []time.Duration{time.Second, 5 * time.Second, 30 * time.Second},
		DeadLetter:  topology.DeadLetterAsync,
		Concurrency: p.opts.AsyncConcurrency,
		Logger:      p.log,
	}, p.handleAsync)
	if err != nil {
		return fmt.Errorf("provider: async worker: %w", err)
	}
	p.async = c
	return nil
}

// invokeAsync queues /async-function/NAME[.NAMESPACE][/PATH].
func (p *Provider) invokeAsync(w http.ResponseWriter, r *http.Request, rest string) {
	nameNS, params, _ := strings.Cut(rest, "/")
	name, _, err := splitFunction(nameNS)
	if err != nil {
		writeErr(w, err)
		return
	}
	if p.lookup(name) == nil {
		httpError(w, http.StatusNotFound, notDeployed(name))
		return
	}
	b := p.opts.Bus
	if b == nil {
		httpError(w, http.StatusServiceUnavailable, "asynchronous invocation needs NATS JetStream, and this provider runs without it")
		return
	}
	var cb *url.URL
	if v := r.Header.Get("X-Callback-Url"); v != "" {
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			httpError(w, http.StatusBadRequest, "X-Callback-Url must be an absolute http:// or https:// URL")
			return
		}
		cb = u
	}
	callID := r.Header.Get("X-Call-Id")
	if !callIDRE.MatchString(callID) {
		callID = newCallID()
	}
	// The request travels base64-encoded in JSON inside one NATS message.
	limit := (b.Conn().MaxPayload() - 64<<10) * 3 / 4
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			httpError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("asynchronous requests are limited to %d bytes of body (NATS max_payload); invoke /function/%s synchronously for larger ones", limit, name))
			return
		}
		httpError(w, http.StatusBadRequest, "could not read the request body")
		return
	}
	w.Header().Set(tracing.HeaderRequestID, tracing.EnsureRequestID(r.Header))
	h := r.Header.Clone()
	h.Set("X-Call-Id", callID)
	h.Set("X-Start-Time", strconv.FormatInt(time.Now().UnixNano(), 10))
	data, err := json.Marshal(types.QueueRequest{
		Header: h, Host: r.Host, Body: body, Method: r.Method, Path: "/" + params,
		QueryString: r.URL.RawQuery, Function: name, CallbackURL: cb,
	})
	if err != nil {
		httpError(w, http.StatusInternalServerError, "could not encode the request")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	if err := b.Publish(ctx, topology.SubjectAsyncPrefix+name, data, callID); err != nil {
		p.log.Error("async: queueing failed", "function_name", name, "call_id", callID, "err", err)
		httpError(w, http.StatusServiceUnavailable, "could not queue the request: NATS JetStream is unavailable; retry later")
		return
	}
	w.Header().Set("X-Call-Id", callID)
	w.WriteHeader(http.StatusAccepted)
}

// handleAsync runs one queued request. A request no replica could take is
// retried with backoff and finally dead-lettered; once the function has
// answered (any status) the message is done and the result is posted to
// the callback, if any.
func (p *Provider) handleAsync(ctx context.Context, m bus.Msg) error {
	var q types.QueueRequest
	if err := json.Unmarshal(m.Data, &q); err != nil {
		return fmt.Errorf("%w: malformed queued request: %v", bus.ErrPermanent, err)
	}
	if err := checkFunctionName(q.Function); err != nil {
		return fmt.Errorf("%w: %v", bus.ErrPermanent, err)
	}
	callID := q.Header.Get("X-Call-Id")
	log := p.log.With("function_name", q.Function, "call_id", callID)
	start := time.Now()
	status, hdr, body, err := p.invokeQueued(ctx, m, &q)
	if err != nil {
		log.Warn("async: invocation failed; will retry", "err", err, "deliveries", m.NumDelivered)
		return err
	}
	d := time.Since(start)
	log.Info("async: invocation done", "code", status, "duration_ms", d.Milliseconds())
	if q.CallbackURL != nil {
		p.postCallback(ctx, q.CallbackURL, callID, q.Function, status, d, hdr, body)
	}
	return nil
}

func (p *Provider) invokeQueued(ctx context.Context, m bus.Msg, q *types.QueueRequest) (int, http.Header, []byte, error) {
	f := p.lookup(q.Function)
	if f == nil {
		return http.StatusNotFound, http.Header{}, []byte(notDeployed(q.Function) + "\n"), nil
	}
	addr, err := f.pick(ctx, p.opts.ReadyTimeout)
	if errors.Is(err, ErrNotFound) {
		return http.StatusNotFound, http.Header{}, []byte(notDeployed(q.Function) + "\n"), nil
	}
	if err != nil {
		return 0, nil, nil, err
	}
	u := url.URL{Scheme: "http", Host: addr, Path: q.Path, RawQuery: q.QueryString}
	ictx, cancel := context.WithTimeout(ctx, p.opts.InvokeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ictx, q.Method, u.String(), bytes.NewReader(q.Body))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("%w: %v", bus.ErrPermanent, err)
	}
	req.Header = q.Header.Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	req.Host = q.Host

	// Keep the message while a long invocation runs.
	stop := make(chan struct{})
	defer close(stop)
	if m.Progress != nil {
		go func() {
			t := time.NewTicker(asyncAckWait / 3)
			defer t.Stop()
			for {
				select {
				case <-t.C:
					_ = m.Progress()
				case <-stop:
					return
				}
			}
		}()
	}

	p.metrics.start(q.Function)
	start := time.Now()
	resp, err := p.invoker.Do(req)
	if err != nil {
		p.metrics.done(q.Function, http.StatusBadGateway, time.Since(start))
		return 0, nil, nil, fmt.Errorf("invoke %s: %w", q.Function, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAsyncResponse))
	p.metrics.done(q.Function, resp.StatusCode, time.Since(start))
	f.invocations.Add(1)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("read the response of %s: %w", q.Function, err)
	}
	return resp.StatusCode, resp.Header, body, nil
}

// postCallback POSTs the function's result to the callback URL with the
// queue-worker's headers, trying three times; a callback that still fails
// is logged (by host only: the URL may carry a token) and dropped, since
// running the function again could repeat its effects.
func (p *Provider) postCallback(ctx context.Context, cb *url.URL, callID, fn string, status int, d time.Duration, hdr http.Header, body []byte) {
	wait := 500 * time.Millisecond
	var last error
	for attempt := 1; attempt <= 3; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, cb.String(), bytes.NewReader(body))
		if err != nil {
			last = err
			break
		}
		for k, v := range hdr {
			switch http.CanonicalHeaderKey(k) {
			case "Content-Length", "Connection", "Transfer-Encoding", "Date", "Keep-Alive":
				continue
			}
			req.Header[k] = append([]string(nil), v...)
		}
		req.Header.Set("X-Call-Id", callID)
		req.Header.Set("X-Function-Status", strconv.Itoa(status))
		req.Header.Set("X-Function-Name", fn)
		req.Header.Set("X-Duration-Seconds", fmt.Sprintf("%f", d.Seconds()))
		resp, err := p.invoker.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			if resp.StatusCode < 500 {
				return
			}
			err = fmt.Errorf("callback answered %d", resp.StatusCode)
		}
		last = err
		select {
		case <-ctx.Done():
			attempt = 3
		case <-time.After(wait):
		}
		wait *= 2
	}
	p.log.Warn("async: callback failed; result dropped", "function_name", fn, "call_id", callID,
		"callback_host", cb.Host, "err", redactErr(last, cb))
}

// redactErr keeps the callback URL's path and query out of an error text.
func redactErr(err error, u *url.URL) string {
	if err == nil {
		return ""
	}
	s := err.Error()
	return urlRE.ReplaceAllString(strings.ReplaceAll(s, u.String(), u.Scheme+"://"+u.Host+"/…"), "$1/…")
}

// newCallID is a random UUID (version 4).
func newCallID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
