package encode

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/mieweb/pulsevault/shared/media/manifest"
	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/storage"
	"github.com/mieweb/pulsevault/shared/topology"
)

// readOutput checks what ffmpeg wrote: the media playlist's segments in
// order, their timeline and the init segment's track.
func readOutput(dir string) (segs []string, tl manifest.Timeline, track manifest.Track, err error) {
	pl, err := os.ReadFile(filepath.Join(dir, topology.PlaylistFile))
	if err != nil {
		return nil, tl, track, err
	}
	sc := bufio.NewScanner(bytes.NewReader(pl))
	sawMap, ended := false, false
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		switch {
		case l == `#EXT-X-MAP:URI="`+topology.InitFile+`"`:
			sawMap = true
		case l == "#EXT-X-ENDLIST":
			ended = true
		case l != "" && !strings.HasPrefix(l, "#"):
			if l != topology.SegmentFile(len(segs)) {
				return nil, tl, track, fmt.Errorf("playlist lists %q where %s was expected", l, topology.SegmentFile(len(segs)))
			}
			segs = append(segs, l)
		}
	}
	if !sawMap || !ended || len(segs) == 0 {
		return nil, tl, track, errors.New("playlist incomplete (no init map, end tag or segment)")
	}
	init, err := os.ReadFile(filepath.Join(dir, topology.InitFile))
	if err != nil {
		return nil, tl, track, err
	}
	if track, err = manifest.ParseInit(init); err != nil {
		return nil, tl, track, err
	}
	tl = manifest.Timeline{Timescale: track.Timescale, Channels: track.Channels, Rate: track.Rate}
	for _, s := range segs {
		b, err := os.ReadFile(filepath.Join(dir, s))
		if err != nil {
			return nil, tl, track, err
		}
		seg, err := manifest.ParseSegment(b, track)
		if err != nil {
			return nil, tl, track, fmt.Errorf("%s: %w", s, err)
		}
		tl.Segments = append(tl.Segments, seg)
	}
	return segs, tl, track, nil
}

var contentTypes = map[string]string{
	".m4s": "video/iso.segment", ".m3u8": "application/vnd.apple.mpegurl", ".json": "application/json",
	".mpd": "application/dash+xml", ".jpg": "image/jpeg",
}

func contentType(name, kind string) string {
	if name == topology.InitFile {
		return kind + "/mp4"
	}
	return contentTypes[filepath.Ext(name)]
}

// upload writes the rendition with retention: segments and init first,
// then the playlist and timeline that reference them.
func (w *Worker) upload(ctx context.Context, id string, rend meta.Rendition, dir string, segs []string, tl manifest.Timeline) error {
	ret := w.retention()
	put := func(name string) error {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return err
		}
		_, err = w.Store.Put(ctx, w.Bucket, topology.RenditionKey(id, rend.Name, name), f, st.Size(),
			storage.PutOptions{ContentType: contentType(name, rend.Kind), Retention: ret})
		return err
	}
	if err := parallel(ctx, w.Config.UploadParallel, append([]string{topology.InitFile}, segs...), put); err != nil {
		return err
	}
	if err := put(topology.PlaylistFile); err != nil {
		return err
	}
	b, err := json.Marshal(tl)
	if err != nil {
		return err
	}
	_, err = w.Store.PutBytes(ctx, w.Bucket, topology.RenditionKey(id, rend.Name, topology.TimelineFile), b,
		storage.PutOptions{ContentType: "application/json", Retention: ret})
	return err
}

// parallel runs fn over items, n at a time, and returns the first error.
func parallel(ctx context.Context, n int, items []string, fn func(string) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, max(n, 1))
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for _, it := range items {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := fn(it); err != nil {
				once.Do(func() { first = err; cancel() })
			}
		})
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return first
}
