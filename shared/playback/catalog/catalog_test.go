package catalog_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/playback/catalog"
	"github.com/mieweb/pulsevault/shared/playback/livestatus"
	"github.com/mieweb/pulsevault/shared/storage"
	"github.com/mieweb/pulsevault/shared/testutil/testenv"
	"github.com/mieweb/pulsevault/shared/topology"
)

type rig struct {
	t        *testing.T
	st       *storage.Store
	bucket   string
	nc       *nats.Conn
	announce *meta.Store // announces as finalize and transcode do
	silent   *meta.Store // a writer that does not announce
}

func newRig(t *testing.T) *rig {
	env := testenv.Start(t)
	st, err := storage.FromConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	bucket := env.Config.MediaBucket
	if _, err := st.EnsureBucket(context.Background(), bucket, false); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(env.Config.NATSURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	pub, err := nats.Connect(env.Config.NATSURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pub.Close)
	return &rig{t: t, st: st, bucket: bucket, nc: nc,
		announce: meta.NewStore(st, bucket).OnStatus(func(ctx context.Context, v *meta.Video) {
			if err := livestatus.PublishConn(ctx, pub, v); err != nil {
				t.Error(err)
			}
		}),
		silent: meta.NewStore(st, bucket)}
}

func (r *rig) create(ms *meta.Store, uploader string, created time.Time) string {
	r.t.Helper()
	id := uuid.NewString()
	if err := ms.Create(context.Background(), &meta.Video{ID: id, Status: meta.Processing, Uploader: uploader, Created: created}); err != nil {
		r.t.Fatal(err)
	}
	return id
}

// all lists every page of uploader's videos, limit per page.
func all(t *testing.T, c *catalog.Catalog, uploader string, limit int) []*meta.Video {
	t.Helper()
	var out []*meta.Video
	cursor := ""
	for {
		p, err := c.List(context.Background(), func(v *meta.Video) bool { return v.Uploader == uploader }, cursor, limit)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p.Videos...)
		if p.Next == "" {
			return out
		}
		cursor = p.Next
	}
}

func ids(vs []*meta.Video) []string {
	var out []string
	for _, v := range vs {
		out = append(out, v.ID)
	}
	return out
}

// waitFor polls the listing until ok accepts it (generous: the machine is
// shared) and reports how long that took.
func waitFor(t *testing.T, c *catalog.Catalog, uploader, what string, ok func([]*meta.Video) bool) {
	t.Helper()
	start := time.Now()
	for {
		vs := all(t, c, uploader, 100)
		if ok(vs) {
			t.Logf("%s after %s", what, time.Since(start).Round(time.Millisecond))
			return
		}
		if time.Since(start) > time.Minute {
			t.Fatalf("%s: not within a minute; listing %v", what, ids(vs))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestFollow: the live index answers like a full scan, takes announced
// creations and status changes at once, and picks up unannounced writes at
// the next rescan.
func TestFollow(t *testing.T) {
	r := newRig(t)
	base := time.Unix(1_700_000_000, 0)
	var want []string
	for i := range 7 {
		want = append(want, r.create(r.silent, "u1", base.Add(time.Duration(i)*time.Second)))
	}
	r.create(r.silent, "u2", base.Add(time.Hour))
	slices.Reverse(want)

	live := catalog.New(r.st, r.bucket)
	if err := live.Follow(context.Background(), r.nc, 2*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	scan := catalog.New(r.st, r.bucket)
	for _, limit := range []int{1, 3, 100} {
		if got := ids(all(t, live, "u1", limit)); !slices.Equal(got, want) {
			t.Fatalf("live, pages of %d: %v, want %v", limit, got, want)
		}
		if got := ids(all(t, scan, "u1", limit)); !slices.Equal(got, want) {
			t.Fatalf("scan, pages of %d: %v, want %v", limit, got, want)
		}
	}

	// Announced: in the feed as soon as the announcement is read.
	id := r.create(r.announce, "u1", base.Add(time.Minute))
	waitFor(t, live, "u1", "announced creation listed", func(vs []*meta.Video) bool { return len(vs) > 0 && vs[0].ID == id })
	if _, err := r.announce.Update(context.Background(), id, func(v *meta.Video) error { v.Status = meta.Ready; return nil }); err != nil {
		t.Fatal(err)
	}
	waitFor(t, live, "u1", "status change listed", func(vs []*meta.Video) bool { return len(vs) > 0 && vs[0].ID == id && vs[0].Status == meta.Ready })

	// A cursor taken before newer videos arrive keeps its place: the next
	// page continues after the last item seen, with no repeats.
	p1, err := live.List(context.Background(), func(v *meta.Video) bool { return v.Uploader == "u1" }, "", 3)
	if err != nil {
		t.Fatal(err)
	}
	newer := r.create(r.announce, "u1", base.Add(2*time.Hour))
	waitFor(t, live, "u1", "newer video listed", func(vs []*meta.Video) bool { return len(vs) > 0 && vs[0].ID == newer })
	p2, err := live.List(context.Background(), func(v *meta.Video) bool { return v.Uploader == "u1" }, p1.Next, 3)
	if err != nil {
		t.Fatal(err)
	}
	if got, w := append(ids(p1.Videos), ids(p2.Videos)...), append([]string{id}, want[:5]...); !slices.Equal(got, w) {
		t.Fatalf("pages across an insertion: %v, want %v", got, w)
	}

	// Unannounced: the rescan repairs it.
	quiet := r.create(r.silent, "u1", base.Add(3*time.Hour))
	waitFor(t, live, "u1", "unannounced creation listed by the rescan", func(vs []*meta.Video) bool { return len(vs) > 0 && vs[0].ID == quiet })
	if got := ids(all(t, live, "u1", 4)); !slices.Equal(got, ids(all(t, scan, "u1", 4))) || len(got) != len(want)+3 {
		t.Fatalf("live and scan disagree after the rescan: %v", got)
	}
	if _, err := live.List(context.Background(), func(*meta.Video) bool { return true }, "!!", 3); err == nil {
		t.Error("bad cursor accepted")
	}
}

// TestFollowLoad measures (does not assert) a listing's cost from the index
// against a full scan, at a size worth measuring.
func TestFollowLoad(t *testing.T) {
	r := newRig(t)
	const n = 500
	base := time.Unix(1_700_000_000, 0)
	for i := range n {
		r.create(r.silent, fmt.Sprintf("u%d", i%10), base.Add(time.Duration(i)*time.Second))
	}
	live := catalog.New(r.st, r.bucket)
	if err := live.Follow(context.Background(), r.nc, time.Hour, nil); err != nil {
		t.Fatal(err)
	}
	scan := catalog.New(r.st, r.bucket)
	page := func(c *catalog.Catalog) time.Duration {
		start := time.Now()
		p, err := c.List(context.Background(), func(v *meta.Video) bool { return v.Uploader == "u3" }, "", 20)
		if err != nil || len(p.Videos) != 20 || p.Next == "" {
			t.Fatalf("page: %d videos, next %q, %v", len(p.Videos), p.Next, err)
		}
		return time.Since(start)
	}
	page(live)
	page(scan)
	var l, s time.Duration
	for range 20 {
		l += page(live)
		s += page(scan)
	}
	t.Logf("%d videos, first page of 20 (warm, mean of 20): index %s, scan %s", n, (l / 20).Round(time.Microsecond), (s / 20).Round(time.Microsecond))
}

// One meta.json that does not decode (over meta.MaxSize, or not JSON) is
// skipped and counted, by a bare scan and by the live index alike; the
// rest of the feed is still listed for everyone.
func TestUndecodableEntrySkipped(t *testing.T) {
	r := newRig(t)
	base := time.Unix(1_700_000_000, 0)
	good := r.create(r.silent, "u1", base)
	ctx := context.Background()
	huge := uuid.NewString()
	if _, err := r.st.PutBytes(ctx, r.bucket, topology.MetaKey(huge), []byte(`{"id":"`+huge+`","uploader":"u1","client":{"filename":"`+strings.Repeat("a", meta.MaxSize)+`"}}`), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	garbled := uuid.NewString()
	if _, err := r.st.PutBytes(ctx, r.bucket, topology.MetaKey(garbled), []byte("not json"), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	scan := catalog.New(r.st, r.bucket)
	live := catalog.New(r.st, r.bucket)
	reg := prometheus.NewRegistry()
	reg.MustRegister(scan.Collectors()...)
	other := prometheus.NewRegistry()
	other.MustRegister(live.Collectors()...)
	if err := live.Follow(context.Background(), r.nc, time.Hour, nil); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*catalog.Catalog{"scan": scan, "live": live} {
		for range 2 { // the second listing reads nothing again
			if got := ids(all(t, c, "u1", 10)); !slices.Equal(got, []string{good}) {
				t.Errorf("%s: listing %v, want only %s", name, got, good)
			}
		}
	}
	// Two objects, read once by each catalog (the cache keeps the verdict).
	if n := counter(t, reg, "pulsevault_catalog_undecodable_total") + counter(t, other, "pulsevault_catalog_undecodable_total"); n != 4 {
		t.Errorf("undecodable counted %v times, want 4", n)
	}
}

// counter reads a counter of reg (0 until registered).
func counter(t *testing.T, reg prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}
