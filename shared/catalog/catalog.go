// Package catalog lists videos from their meta.json objects, newest first,
// with cursor pagination.
//
// It scans the store (LIST videos/) rather than keeping an index: meta.json
// stays the only source of truth and no writer has to cooperate. Each
// meta.json read is cached by its ETag, so after the first scan a listing
// costs the LIST pages plus a GET per changed video only. The cache is a
// cache: losing it (a new replica) costs one full scan.
package catalog

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mieweb/pulsevault/shared/meta"
	"github.com/mieweb/pulsevault/shared/storage"
)

// Catalog reads meta.json objects of one bucket. Safe for concurrent use.
type Catalog struct {
	st      *storage.Store
	meta    *meta.Store
	bucket  string
	workers int

	mu    sync.Mutex
	cache map[string]entry // meta.json key → last read
}

type entry struct {
	etag string
	v    *meta.Video
}

// New returns a Catalog over bucket.
func New(st *storage.Store, bucket string) *Catalog {
	return &Catalog{st: st, meta: meta.NewStore(st, bucket), bucket: bucket, workers: 16, cache: map[string]entry{}}
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
	all, err := c.scan(ctx)
	if err != nil {
		return Page{}, err
	}
	sort.Slice(all, func(i, j int) bool { return before(all[i], all[j]) })
	var out Page
	for _, v := range all {
		if after != nil && !after.precedes(v) {
			continue
		}
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
	for info, err := range c.st.List(ctx, c.bucket, "videos/") {
		if err != nil {
			return nil, err
		}
		id, ok := strings.CutSuffix(strings.TrimPrefix(info.Key, "videos/"), "/meta.json")
		if !ok || strings.Contains(id, "/") {
			continue
		}
		seen[info.Key] = true
		c.mu.Lock()
		e, hit := c.cache[info.Key]
		c.mu.Unlock()
		if hit && e.etag == info.ETag {
			out = append(out, e.v)
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
