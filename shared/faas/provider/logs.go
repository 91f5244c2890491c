package provider

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/openfaas/faas-provider/logs"
)

// maxLine splits longer log lines, so one runaway line cannot hold the ring.
const maxLine = 16 << 10

// logRing keeps a function's last lines of output, from every replica, and
// feeds followers. Writing never blocks on a slow follower: it drops lines
// for that follower instead.
type logRing struct {
	name string
	mu   sync.Mutex
	buf  []logs.Message
	next int // index of the next write
	full bool
	subs map[*follower]struct{}
	file io.Writer // optional copy, one line per message
}

type follower struct {
	instance string
	ch       chan logs.Message
}

func newLogRing(name string, lines int, file io.Writer) *logRing {
	return &logRing{name: name, buf: make([]logs.Message, lines), subs: map[*follower]struct{}{}, file: file}
}

func (l *logRing) add(instance, text string) {
	m := logs.Message{Name: l.name, Namespace: Namespace, Instance: instance, Timestamp: time.Now().UTC(), Text: text}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf[l.next] = m
	l.next = (l.next + 1) % len(l.buf)
	l.full = l.full || l.next == 0
	for f := range l.subs {
		if f.instance == "" || f.instance == instance {
			select {
			case f.ch <- m:
			default:
			}
		}
	}
	if l.file != nil {
		fmt.Fprintf(l.file, "%s %s %s\n", m.Timestamp.Format(time.RFC3339Nano), instance, text)
	}
}

// snapshot returns the kept lines matching r, oldest first; with r.Follow
// it also registers a follower, atomically, so no line is lost or doubled.
func (l *logRing) snapshot(r logs.Request) ([]logs.Message, *follower) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var all []logs.Message
	if l.full {
		all = append(all, l.buf[l.next:]...)
	}
	all = append(all, l.buf[:l.next]...)
	out := all[:0]
	for _, m := range all {
		if r.Instance != "" && m.Instance != r.Instance {
			continue
		}
		if r.Since != nil && m.Timestamp.Before(*r.Since) {
			continue
		}
		out = append(out, m)
	}
	if r.Tail > 0 && len(out) > r.Tail {
		out = out[len(out)-r.Tail:]
	}
	var f *follower
	if r.Follow {
		f = &follower{instance: r.Instance, ch: make(chan logs.Message, 1024)}
		l.subs[f] = struct{}{}
	}
	return append([]logs.Message(nil), out...), f
}

func (l *logRing) unfollow(f *follower) {
	l.mu.Lock()
	delete(l.subs, f)
	l.mu.Unlock()
}

// writer returns an io.Writer that splits what a replica prints into lines.
func (l *logRing) writer(instance string) *lineWriter {
	return &lineWriter{ring: l, instance: instance}
}

type lineWriter struct {
	ring     *logRing
	instance string
	mu       sync.Mutex
	partial  []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.partial = append(w.partial, p...)
			for len(w.partial) >= maxLine {
				w.ring.add(w.instance, string(w.partial[:maxLine]))
				w.partial = append(w.partial[:0], w.partial[maxLine:]...)
			}
			break
		}
		line := append(w.partial, p[:i]...)
		w.partial = w.partial[:0]
		p = p[i+1:]
		line = bytes.TrimSuffix(line, []byte{'\r'})
		for len(line) > maxLine {
			w.ring.add(w.instance, string(line[:maxLine]))
			line = line[maxLine:]
		}
		w.ring.add(w.instance, string(line))
	}
	return n, nil
}

// flush emits a last line that had no newline.
func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.partial) > 0 {
		w.ring.add(w.instance, string(w.partial))
		w.partial = w.partial[:0]
	}
}

// logRequester answers faas-provider's log handler from the rings.
type logRequester struct{ p *Provider }

// Query implements logs.Requester.
func (q logRequester) Query(ctx context.Context, r logs.Request) (<-chan logs.Message, error) {
	f := q.p.lookup(r.Name)
	if f == nil {
		return nil, fmt.Errorf("%w: function %q", ErrNotFound, r.Name)
	}
	lines, fol := f.logs.snapshot(r)
	out := make(chan logs.Message)
	go func() {
		defer close(out)
		if fol != nil {
			defer f.logs.unfollow(fol)
		}
		for _, m := range lines {
			select {
			case out <- m:
			case <-ctx.Done():
				return
			}
		}
		if fol == nil {
			return
		}
		for {
			select {
			case m := <-fol.ch:
				select {
				case out <- m:
				case <-ctx.Done():
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

// openLogFile opens the optional per-function copy of the output.
func openLogFile(dir, name string) (*os.File, error) {
	if dir == "" {
		return nil, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	return os.OpenFile(dir+"/"+name+".log", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
}
