package connector

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/openfaas/faas-provider/types"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/mieweb/pulsevault/shared/platform/tracing"
	"github.com/mieweb/pulsevault/shared/topology"
)

// ScheduleAnnotation is the function annotation that lists paths the
// connector POSTs to on a timer: comma-separated PATH@INTERVAL entries, e.g.
// "/reconcile@1m, /dead-letters@1m". Every connector replica calls them, so
// the targets must be idempotent.
const ScheduleAnnotation = "com.pulsevault.schedule"

// Bounds of a schedule's interval.
const (
	MinScheduleInterval = 10 * time.Second
	MaxScheduleInterval = 24 * time.Hour
)

// minInterval is MinScheduleInterval; tests lower it to see calls quickly.
var minInterval = MinScheduleInterval

// maxSchedulePath bounds a scheduled path: it becomes a metric label.
const maxSchedulePath = 128

// Schedule is one entry of a schedule annotation.
type Schedule struct {
	Path  string        // absolute URL path below /function/<name>, e.g. /reconcile
	Every time.Duration // interval between calls
}

func (s Schedule) String() string { return s.Path + "@" + s.Every.String() }

// ParseSchedule splits a schedule annotation into entries. Entries are
// trimmed; empty ones and repeats are ignored; the rest that are not
// PATH@INTERVAL with a plain absolute path (letters, digits and -_./, no
// empty, "." or ".." segments) and an interval of 10s–24h are returned in
// invalid so the caller can report them.
func ParseSchedule(annotation string) (entries []Schedule, invalid []string) {
	seen := map[Schedule]bool{}
	for e := range strings.SplitSeq(annotation, ",") {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		p, iv, ok := strings.Cut(e, "@")
		d, err := time.ParseDuration(strings.TrimSpace(iv))
		s := Schedule{Path: strings.TrimSpace(p), Every: d}
		if !ok || err != nil || d < minInterval || d > MaxScheduleInterval || !plainPath(s.Path) {
			invalid = append(invalid, e)
			continue
		}
		if !seen[s] {
			seen[s] = true
			entries = append(entries, s)
		}
	}
	return entries, invalid
}

// plainPath accepts /a, /a/b-c_d.e: no query, escapes, spaces or dot
// segments, so the path means the same to every proxy on the way.
func plainPath(p string) bool {
	if len(p) < 2 || len(p) > maxSchedulePath || p[0] != '/' {
		return false
	}
	for seg := range strings.SplitSeq(p[1:], "/") {
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
		for _, r := range seg {
			switch {
			case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			default:
				return false
			}
		}
	}
	return true
}

// scheduleKey is one running schedule entry of one function.
type scheduleKey struct {
	function string
	Schedule
}

// Scheduled is one running schedule entry, for Status.
type Scheduled struct {
	Function string `json:"function"`
	Path     string `json:"path"`
	Every    string `json:"every"`
}

// schedules turns the function list's schedule annotations into the wanted
// entries, reporting (once) the invalid ones.
func (c *Connector) schedules(fns []types.FunctionStatus) map[scheduleKey]bool {
	want := map[scheduleKey]bool{}
	for _, fn := range fns {
		if fn.Annotations == nil {
			continue
		}
		ann, ok := (*fn.Annotations)[ScheduleAnnotation]
		if !ok {
			continue
		}
		if !validFunctionName(fn.Name) {
			c.reportOnce("schedule-name:"+fn.Name, "connector: function name unusable in a URL path; its schedule is ignored",
				"function", fn.Name)
			continue
		}
		entries, invalid := ParseSchedule(ann)
		for _, e := range invalid {
			c.reportOnce("schedule:"+fn.Name+":"+e,
				"connector: schedule annotation entry is not PATH@INTERVAL (plain absolute path, interval 10s–24h); ignored",
				"function", fn.Name, "entry", e)
		}
		for _, e := range entries {
			want[scheduleKey{fn.Name, e}] = true
		}
	}
	return want
}

// applySchedules starts the wanted entries that are not running and stops
// the others; c.mu is held.
func (c *Connector) applySchedules(want map[scheduleKey]bool) {
	for k, stop := range c.scheduled {
		if !want[k] {
			stop()
			delete(c.scheduled, k)
			c.log.Info("connector: schedule stopped", "function", k.function, "path", k.Path, "every", k.Every.String())
		}
	}
	for k := range want {
		if c.scheduled[k] != nil {
			continue
		}
		ctx, cancel := context.WithCancel(c.base)
		done := make(chan struct{})
		go func() {
			defer close(done)
			c.runSchedule(ctx, k)
		}()
		c.scheduled[k] = func() { cancel(); <-done }
		c.m.scheduleFailures.WithLabelValues(k.function, k.Path)
		c.log.Info("connector: schedule started", "function", k.function, "path", k.Path, "every", k.Every.String())
	}
}

// runSchedule calls the entry every k.Every, first after a random part of
// an interval so that connectors started together spread their calls. Calls
// run one at a time: ticks that fall during a slow call are skipped.
func (c *Connector) runSchedule(ctx context.Context, k scheduleKey) {
	first := time.NewTimer(rand.N(k.Every))
	defer first.Stop()
	select {
	case <-ctx.Done():
		return
	case <-first.C:
	}
	t := time.NewTicker(k.Every)
	defer t.Stop()
	for {
		c.callSchedule(ctx, k)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// callSchedule makes one scheduled call and counts and logs its outcome.
func (c *Connector) callSchedule(ctx context.Context, k scheduleKey) {
	ctx = tracing.WithRequestID(ctx, tracing.NewRequestID())
	ctx, span := tracing.Start(ctx, "connector schedule "+k.function, trace.SpanKindClient, trace.WithAttributes(
		attribute.String("faas.name", k.function), attribute.String("url.path", k.Path)))
	defer span.End()
	code, err := c.post(ctx, k)
	if code == 0 && err != nil && ctx.Err() != nil {
		return // stopping
	}
	codeLabel := "error"
	if code != 0 {
		codeLabel = strconv.Itoa(code)
	}
	c.m.scheduleCalls.WithLabelValues(k.function, k.Path, codeLabel).Inc()
	if err != nil {
		c.m.scheduleFailures.WithLabelValues(k.function, k.Path).Inc()
		span.SetStatus(codes.Error, "scheduled call failed")
		c.log.WarnContext(ctx, "connector: scheduled call failed", "function", k.function, "path", k.Path,
			"every", k.Every.String(), "code", codeLabel, "err", err)
		return
	}
	c.log.DebugContext(ctx, "connector: scheduled call", "function", k.function, "path", k.Path, "code", codeLabel)
}

func (c *Connector) post(ctx context.Context, k scheduleKey) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.gateway+"/function/"+url.PathEscape(k.function)+k.Path, nil)
	if err != nil {
		return 0, err
	}
	tracing.Inject(ctx, req.Header)
	req.Header.Set(topology.HeaderConnector, ConnectorName)
	req.Header.Set(topology.HeaderSchedule, k.Schedule.String())
	resp, err := c.client.Do(req)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return 0, fmt.Errorf("no answer within %s", c.o.Timeout)
		}
		return 0, stripURL(err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("answered %d", resp.StatusCode)
	}
	return resp.StatusCode, nil
}
