package encode_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mieweb/pulsevault/shared/media/encode"
	"github.com/mieweb/pulsevault/shared/media/ladder"
	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/storage"
	"github.com/mieweb/pulsevault/shared/testutil/testclip"
	"github.com/mieweb/pulsevault/shared/topology"
)

// statusGuard checks the invariant clients rely on: whenever a video's
// status is ready or complete, the master playlist and the MPD already in
// the store list what that status promises (ready: a ready video rendition,
// and the audio rendition if it is ready; complete: every ready rendition;
// either: every rendition meta.json says is listed).
type statusGuard struct {
	r    *rig
	mu   sync.Mutex
	bad  []string
	seen map[meta.Status]int
}

func newStatusGuard(r *rig) *statusGuard { return &statusGuard{r: r, seen: map[meta.Status]int{}} }

// manifestObject reads a manifest; "" when it does not exist.
func (g *statusGuard) manifestObject(id, file string) (string, error) {
	rc, _, err := g.r.st.Get(context.Background(), g.r.cfg.MediaBucket, topology.VideoKey(id, file), 0, -1)
	if errors.Is(err, storage.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	return string(b), err
}

// check asserts the invariant for v, a version of meta.json read (or just
// written) before the manifests are read here. Manifests only grow, so
// reading them later can only add renditions.
func (g *statusGuard) check(where string, v *meta.Video) {
	if v.Status != meta.Ready && v.Status != meta.Complete {
		return
	}
	g.mu.Lock()
	g.seen[v.Status]++
	g.mu.Unlock()
	fail := func(format string, args ...any) {
		g.mu.Lock()
		defer g.mu.Unlock()
		g.bad = append(g.bad, fmt.Sprintf("%s: status %s: ", where, v.Status)+fmt.Sprintf(format, args...))
	}
	master, err := g.manifestObject(v.ID, topology.MasterFile)
	if err != nil {
		fail("read master: %v", err)
		return
	}
	mpd, err := g.manifestObject(v.ID, topology.MPDFile)
	if err != nil {
		fail("read MPD: %v", err)
		return
	}
	if master == "" || mpd == "" {
		fail("master present %v, MPD present %v", master != "", mpd != "")
		return
	}
	in := func(r meta.Rendition) bool {
		return strings.Contains(master, r.Name+"/index.m3u8") && strings.Contains(mpd, `id="`+r.Name+`"`)
	}
	videoIn := false
	for _, r := range v.Renditions {
		ready := r.State == meta.RenditionReady
		switch {
		case !ready:
		case !in(r) && (r.Listed || v.Status == meta.Complete || r.Kind == "audio"):
			fail("%s is ready (listed %v) but the manifests lack it:\n%s", r.Name, r.Listed, master)
		case r.Kind == "video" && in(r):
			videoIn = true
		}
	}
	if !videoIn {
		fail("the manifests list no video rendition:\n%s", master)
	}
}

func (g *statusGuard) report(t *testing.T) {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, b := range g.bad {
		t.Error(b)
	}
}

// guardedWorker is r's worker with its own config and a meta store that
// checks the invariant right after every write that changes a status, in
// the writer's goroutine (before the worker goes on to anything else).
func (r *rig) guardedWorker(g *statusGuard, fanout string) *encode.Worker {
	w := *r.w
	w.Config.Fanout = fanout
	w.Meta = meta.NewStore(r.st, r.cfg.MediaBucket).OnStatus(func(_ context.Context, v *meta.Video) {
		g.check("status write", v)
	})
	return &w
}

// TestStatusNeverAheadOfManifests runs whole ladders with every job
// delivered at once and checks the video's status against the stored
// manifests at every status write, from a concurrent poller of meta.json,
// and after each job returns.
func TestStatusNeverAheadOfManifests(t *testing.T) {
	r := newRig(t)
	for _, c := range []struct {
		name, fanout string
		o            testclip.Options
	}{
		{"grouped", encode.FanoutGrouped, testclip.Options{Width: 480, Height: 854, Seconds: 4}},
		{"rendition", encode.FanoutRendition, testclip.Options{Width: 480, Height: 854, Seconds: 4}},
		{"grouped-no-audio", encode.FanoutGrouped, testclip.Options{Width: 480, Height: 854, Seconds: 2, NoAudio: true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			g := newStatusGuard(r)
			w := r.guardedWorker(g, c.fanout)
			id, v := r.stage(c.o, nil)

			stop := make(chan struct{})
			var poller sync.WaitGroup
			poller.Go(func() {
				for {
					select {
					case <-stop:
						return
					case <-time.After(2 * time.Millisecond):
					}
					if got, _, err := r.meta.Get(context.Background(), id); err == nil {
						g.check("poll", got)
					}
				}
			})
			var jobs sync.WaitGroup
			for _, j := range encode.Jobs(id, v.Renditions) {
				jobs.Go(func() {
					res := w.Do(context.Background(), j, 1)
					if res.Status != http.StatusOK {
						t.Errorf("%s: %+v", j.Rendition, res)
					}
					if got, _, err := r.meta.Get(context.Background(), id); err == nil {
						g.check("after "+j.Rendition, got)
					} else {
						t.Error(err)
					}
				})
			}
			jobs.Wait()
			close(stop)
			poller.Wait()
			g.report(t)
			r.checkComplete(t, id)
			if g.seen[meta.Complete] == 0 {
				t.Error("complete was never checked")
			}
			for _, rd := range r.get(id).Renditions {
				if !rd.Listed {
					t.Errorf("%s: complete but not listed", rd.Name)
				}
			}
		})
	}
}

// TestRedeliveryPublishesUnlistedRendition: a worker that dies after
// marking its group's renditions ready but before publishing the manifests
// leaves them ready and unlisted, and the manifests without them; the
// redelivered job (nothing left to encode) must publish and settle instead
// of acknowledging a no-op forever.
func TestRedeliveryPublishesUnlistedRendition(t *testing.T) {
	r := newRig(t)
	g := newStatusGuard(r)
	w := r.guardedWorker(g, encode.FanoutGrouped)
	id, _ := r.stage(testclip.Options{Width: 480, Height: 854, Seconds: 2}, nil)
	ctx := context.Background()
	run := func(name string) {
		t.Helper()
		if res := w.Do(ctx, ladder.Job{Video: id, Rendition: name}, 1); res.Status != http.StatusOK || res.Outcome != encode.OutcomeDone {
			t.Fatalf("%s: %+v", name, res)
		}
	}
	run("240p") // encodes the audio too
	if res := w.Do(ctx, ladder.Job{Video: id, Rendition: "audio"}, 1); res.Status != http.StatusOK || res.Outcome != encode.OutcomeNoop {
		t.Fatalf("audio after 240p: %+v", res)
	}
	if got := r.get(id); got.Status != meta.Ready {
		t.Fatalf("status %s after 240p and audio, want ready", got.Status)
	}
	early := map[string]string{topology.MasterFile: r.fetch(id, topology.MasterFile), topology.MPDFile: r.fetch(id, topology.MPDFile)}
	run("360p") // encodes 480p too
	r.checkComplete(t, id)

	// What the killed worker leaves: 360p and 480p ready, never listed,
	// the manifests of 240p + audio, a status that counts neither.
	for f, body := range early {
		if _, err := r.st.PutBytes(ctx, r.cfg.MediaBucket, topology.VideoKey(id, f), []byte(body), storage.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.meta.Update(ctx, id, func(v *meta.Video) error {
		for i := range v.Renditions {
			if n := v.Renditions[i].Name; n == "360p" || n == "480p" {
				v.Renditions[i].Listed = false
			}
		}
		v.Status = meta.Ready
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// 480p was encoded by 360p's group: its own job is the one redelivered.
	res := w.Do(ctx, ladder.Job{Video: id, Rendition: "480p"}, 2)
	if res.Status != http.StatusOK || res.Outcome != encode.OutcomeNoop {
		t.Fatalf("redelivered 480p: %+v, want 200 noop\n%s", res, r.logs.String())
	}
	g.report(t)
	r.checkComplete(t, id)
	before := r.get(id)
	for _, rd := range before.Renditions {
		if !rd.Listed {
			t.Errorf("%s not listed after the redelivery", rd.Name)
		}
	}
	// Once published, a redelivery is a plain no-op again: nothing written.
	if res := w.Do(ctx, ladder.Job{Video: id, Rendition: "240p"}, 2); res.Status != http.StatusOK || res.Outcome != encode.OutcomeNoop || res.Code != "" {
		t.Fatalf("240p after publishing: %+v, want a plain noop", res)
	}
	if after := r.get(id); !after.Updated.Equal(before.Updated) {
		t.Error("a no-op re-run wrote meta.json")
	}
}
