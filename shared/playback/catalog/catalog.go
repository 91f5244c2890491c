// Package catalog lists videos from their meta.json objects, newest first,
// with cursor pagination.
//
// meta.json stays the only source of truth. A bare Catalog scans the store
// (LIST videos/) on every listing, with each meta.json read cached by its
// ETag. A Catalog that Follows the live status subject instead keeps every
// video in memory, sorted newest first: one full scan fills it, each status
// change (finalize and transcode announce every meta.json they create and
// every status they write) re-reads that one meta.json, and a periodic scan
// repairs whatever was missed (a writer that did not announce, a lost
// message, a NATS outage). A listing then costs no store request at all,
// which is what keeps the feed fast at 10,000 videos: the LIST alone takes
// seconds there.
package catalog

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/playback/livestatus"
	"github.com/mieweb/pulsevault/shared/storage"
	"github.com/mieweb/pulsevault/shared/topology"
)

// Catalog reads meta.json objects of one bucket. Safe for concurrent use.
type Catalog struct {
	st      *storage.Store
	meta    *meta.Store
	bucket  string
	workers int
	// undecodable counts meta.json versions a scan skipped because they
	// do not decode (each version once per catalog): one such object must
	// not take the whole feed down with it.
	undecodable prometheus.Counter

	mu    sync.Mutex
	cache map[string]entry // meta.json key → last read

	// The live index, used once Follow was called.
	following bool
	loaded    bool               // a full scan has filled idx
	idx       map[string]indexed // video id → newest version seen
	sorted    []*meta.Video      // idx newest first; nil when idx changed since
	seq       uint64             // counts changes applied from events
	scanMu    sync.Mutex         // one full scan at a time
	log       *slog.Logger
}

type entry struct {
	etag string
	v    *meta.Video // nil: this version does not decode
}

type indexed struct {
	v   *meta.Video
	seq uint64 // c.seq when an event put it here; 0 for a scan
}

// New returns a Catalog over bucket.
func New(st *storage.Store, bucket string) *Catalog {
	return &Catalog{st: st, meta: meta.NewStore(st, bucket), bucket: bucket, workers: 16, cache: map[string]entry{},
		log: slog.New(slog.DiscardHandler),
		undecodable: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pulsevault_catalog_undecodable_total",
			Help: "meta.json objects (versions) the feed skipped because they do not decode.",
		})}
}

// Collectors lists the catalog's metrics, for the function's registry.
func (c *Catalog) Collectors() []prometheus.Collector { return []prometheus.Collector{c.undecodable} }

// Follow turns on the live index until ctx ends (the process's context):
// c subscribes to status changes on nc, fills the index in the
// background, and rescans the store every rescan
// (and after each reconnection, since changes published meanwhile were
// lost: Follow sets nc's reconnect handler). Listings made before the first
// scan ends wait for it. log (nil: discard) receives failed refreshes, with
// ids and error classes only.
func (c *Catalog) Follow(ctx context.Context, nc *nats.Conn, rescan time.Duration, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c.mu.Lock()
	c.following, c.log, c.idx = true, log, map[string]indexed{}
	c.mu.Unlock()
	// Subscribed before the first scan, so nothing falls between the two.
	sub, err := livestatus.Subscribe(nc, func(ch livestatus.Change) { c.apply(ch.Video) })
	if err != nil {
		return fmt.Errorf("catalog: subscribe: %w", err)
	}
	nc.SetReconnectHandler(func(*nats.Conn) { go c.refresh() })
	go func() {
		defer sub.Unsubscribe()
		c.refresh()
		t := time.NewTicker(rescan)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				c.refresh()
			}
		}
	}()
	return nil
}

// apply re-reads one video after its status changed.
func (c *Catalog) apply(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	v, _, err := c.meta.Get(ctx, id)
	if err != nil {
		// Not found: an announcement racing a delete, or a bogus id; the
		// next scan settles either. A store error is repaired the same way.
		switch {
		case errors.Is(err, meta.ErrUndecodable):
			c.log.Warn("catalog: a changed video's meta.json does not decode; left out", "video", id)
		case !errors.Is(err, meta.ErrNotFound):
			c.log.Warn("catalog: re-reading a changed video failed; the next scan repairs it", "video", id, "err", "store-error")
		}
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur, ok := c.idx[v.ID]; ok && cur.v.Updated.After(v.Updated) {
		return // a newer version is already in
	}
	c.seq++
	c.idx[v.ID] = indexed{v: v, seq: c.seq}
	c.sorted = nil
}

// refresh replaces the index with a full scan, keeping changes applied
// while the scan ran when they are newer than what it read.
func (c *Catalog) refresh() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := c.load(ctx, false); err != nil {
		c.log.Warn("catalog: rescan failed; serving the index as it was", "err", "store-error")
	}
}

// load runs a full scan into the index; onlyIfEmpty skips it when another
// scan filled the index meanwhile (a listing waiting for the first one).
func (c *Catalog) load(ctx context.Context, onlyIfEmpty bool) error {
	c.scanMu.Lock()
	defer c.scanMu.Unlock()
	c.mu.Lock()
	start, done := c.seq, c.loaded
	c.mu.Unlock()
	if onlyIfEmpty && done {
		return nil
	}
	all, err := c.scan(ctx)
	if err != nil {
		return err
	}
	next := make(map[string]indexed, len(all))
	for _, v := range all {
		next[v.ID] = indexed{v: v}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, e := range c.idx {
		if cur, ok := next[id]; e.seq > start && (!ok || e.v.Updated.After(cur.v.Updated)) {
			next[id] = e
		}
	}
	c.idx, c.sorted, c.loaded = next, nil, true
	return nil
}

// snapshot is the index newest first; the slice is never modified, only
// replaced.
func (c *Catalog) snapshot(ctx context.Context) ([]*meta.Video, error) {
	c.mu.Lock()
	loaded := c.loaded
	c.mu.Unlock()
	if !loaded {
		if err := c.load(ctx, true); err != nil {
			return nil, err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sorted == nil {
		all := make([]*meta.Video, 0, len(c.idx))
		for _, e := range c.idx {
			all = append(all, e.v)
		}
		sort.Slice(all, func(i, j int) bool { return before(all[i], all[j]) })
		c.sorted = all
	}
	return c.sorted, nil
}

// Page is one page of a listing.
type Page struct {
	Videos []*meta.Video
	Next   string // cursor of the next page; "" at the end
}

// ErrBadCursor means the cursor was not one this package issued.
var ErrBadCursor = errors.New("catalog: bad cursor")

// List returns up to limit videos that visible accepts, newest first
// (created, then id, descending), after cursor ("" for the first page).
func (c *Catalog) List(ctx context.Context, visible func(*meta.Video) bool, cursor string, limit int) (Page, error) {
	var after *position
	if cursor != "" {
		p, err := decodeCursor(cursor)
		if err != nil {
			return Page{}, err
		}
		after = &p
	}
	var all []*meta.Video
	c.mu.Lock()
	following := c.following
	c.mu.Unlock()
	var err error
	if following {
		all, err = c.snapshot(ctx)
	} else if all, err = c.scan(ctx); err == nil {
		sort.Slice(all, func(i, j int) bool { return before(all[i], all[j]) })
	}
	if err != nil {
		return Page{}, err
	}
	if after != nil {
		// precedes is monotone in the listing order: skip to the cursor.
		all = all[sort.Search(len(all), func(i int) bool { return after.precedes(all[i]) }):]
	}
	var out Page
	for _, v := range all {
		if !visible(v) {
			continue
		}
		if len(out.Videos) == limit {
			last := out.Videos[len(out.Videos)-1]
			out.Next = encodeCursor(position{last.Created, last.ID})
			break
		}
		out.Videos = append(out.Videos, v)
	}
	return out, nil
}

// before orders newest first, ties by id descending.
func before(a, b *meta.Video) bool {
	if !a.Created.Equal(b.Created) {
		return a.Created.After(b.Created)
	}
	return a.ID > b.ID
}

// scan reads every video, from the cache where the ETag is unchanged.
func (c *Catalog) scan(ctx context.Context) ([]*meta.Video, error) {
	type job struct{ key, etag, id string }
	var todo []job
	var out []*meta.Video
	seen := map[string]bool{}
	for info, err := range c.st.List(ctx, c.bucket, topology.VideosPrefix) {
		if err != nil {
			return nil, err
		}
		id, ok := topology.MetaVideoID(info.Key)
		if !ok {
			continue
		}
		seen[info.Key] = true
		c.mu.Lock()
		e, hit := c.cache[info.Key]
		c.mu.Unlock()
		if hit && e.etag == info.ETag {
			if e.v != nil {
				out = append(out, e.v)
			}
			continue
		}
		todo = append(todo, job{info.Key, info.ETag, id})
	}
	// Read what changed, in parallel.
	var mu sync.Mutex
	var firstErr error
	jobs := make(chan job)
	var wg sync.WaitGroup
	for range min(c.workers, max(1, len(todo))) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				v, etag, err := c.meta.Get(ctx, j.id)
				mu.Lock()
				switch {
				case errors.Is(err, meta.ErrNotFound):
				case errors.Is(err, meta.ErrUndecodable):
					// Skipped, not fatal: the rest of the feed is served.
					// Cached under the listed ETag, so it is read and
					// counted once per version.
					c.undecodable.Inc()
					c.log.Warn("catalog: skipping a meta.json that does not decode", "video", j.id)
					c.mu.Lock()
					c.cache[j.key] = entry{etag: j.etag}
					c.mu.Unlock()
				case err != nil:
					if firstErr == nil {
						firstErr = err
					}
				default:
					out = append(out, v)
					c.mu.Lock()
					c.cache[j.key] = entry{etag: etag, v: v}
					c.mu.Unlock()
				}
				mu.Unlock()
			}
		}()
	}
	for _, j := range todo {
		jobs <- j
	}
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	c.mu.Lock()
	for k := range c.cache {
		if !seen[k] {
			delete(c.cache, k)
		}
	}
	c.mu.Unlock()
	return out, nil
}

type position struct {
	created time.Time
	id      string
}

// precedes reports whether the page position p comes before v.
func (p position) precedes(v *meta.Video) bool {
	return before(&meta.Video{Created: p.created, ID: p.id}, v)
}

func encodeCursor(p position) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(p.created.UnixNano(), 10) + "." + p.id))
}

func decodeCursor(s string) (position, error) {
	if len(s) > 128 {
		return position{}, ErrBadCursor
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return position{}, ErrBadCursor
	}
	ns, id, ok := strings.Cut(string(b), ".")
	n, err := strconv.ParseInt(ns, 10, 64)
	if !ok || err != nil || id == "" {
		return position{}, fmt.Errorf("%w", ErrBadCursor)
	}
	return position{time.Unix(0, n), id}, nil
}
