package encode

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"time"

	"github.com/mieweb/pulsevault/shared/media/manifest"
	"github.com/mieweb/pulsevault/shared/storage"
	"github.com/mieweb/pulsevault/shared/topology"
)

// publishManifests writes the master playlist and the MPD from what
// meta.json says is ready, then records in meta.json (Listed) which
// renditions the stored manifests list and settles the video's status in
// that same conditional update: the status never runs ahead of the
// manifests.
//
// Manifests only ever grow. Each write is conditional on the version of the
// manifest read before meta.json (If-Match, or If-None-Match when there is
// none yet), and ready renditions stay ready, so a write that lands replaces
// a manifest built from an older (smaller) view of meta.json; a write that
// loses the race re-reads both and tries again. Every rendition recorded
// before this call's read of meta.json is therefore in the stored manifests
// when it returns nil, and stays there; renditions recorded after that read
// publish themselves: concurrent completions cannot leave a manifest missing
// a rendition, nor a rendition marked listed that a slower writer removed.
//
// Each version of the manifests is written with retention, like meta.json:
// they are rewritten as renditions land, and every version stays, so what
// a player was given at any time can be shown and not rewritten.
func (w *Worker) publishManifests(ctx context.Context, id string, known map[string]manifest.Timeline) error {
	if known == nil {
		known = map[string]manifest.Timeline{}
	}
	for attempt := range 20 {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(attempt) * 10 * time.Millisecond):
			}
		}
		// The stored manifests first, then meta.json: what we write from
		// this view replaces only what was built from an older one.
		curMaster, err := w.current(ctx, topology.VideoKey(id, topology.MasterFile))
		if err != nil {
			return err
		}
		curMPD, err := w.current(ctx, topology.VideoKey(id, topology.MPDFile))
		if err != nil {
			return err
		}
		v, _, err := w.Meta.Get(ctx, id)
		if err != nil {
			return err
		}
		video, audio, ok := manifest.Playable(v)
		if !ok {
			return w.list(ctx, id, v, nil) // nothing to list; the status may still need settling
		}
		listed := append(slices.Clone(video), optionalRendition(audio)...)
		master := manifest.HLSMaster(video, audio, v.Subtitles)
		var reps []manifest.Rep
		var arep *manifest.Rep
		for _, r := range listed {
			tl, ok := known[r.Name]
			if !ok {
				if tl, err = w.timeline(ctx, id, r.Name); err != nil {
					return err
				}
				known[r.Name] = tl
			}
			if r.Kind == "audio" {
				arep = &manifest.Rep{Rendition: r, Timeline: tl}
			} else {
				reps = append(reps, manifest.Rep{Rendition: r, Timeline: tl})
			}
		}
		mpd, err := manifest.DASHMPD(reps, arep, v.Subtitles)
		if err != nil {
			return err
		}
		err = w.putManifest(ctx, topology.VideoKey(id, topology.MasterFile), master, curMaster, "application/vnd.apple.mpegurl")
		if err == nil {
			err = w.putManifest(ctx, topology.VideoKey(id, topology.MPDFile), mpd, curMPD, "application/dash+xml")
		}
		if errors.Is(err, storage.ErrPreconditionFailed) {
			continue // another writer got there first: rebuild from a newer view
		}
		if err != nil {
			return err
		}
		names := make([]string, len(listed))
		for i, r := range listed {
			names[i] = r.Name
		}
		return w.list(ctx, id, v, names)
	}
	return errors.New("manifests kept changing; giving up for now")
}

// storedManifest is a manifest as read from the store; etag "" means none.
type storedManifest struct {
	body []byte
	etag string
}

func (w *Worker) current(ctx context.Context, key string) (storedManifest, error) {
	rc, info, err := w.Store.Get(ctx, w.Bucket, key, 0, -1)
	if errors.Is(err, storage.ErrNotFound) {
		return storedManifest{}, nil
	}
	if err != nil {
		return storedManifest{}, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return storedManifest{}, err
	}
	return storedManifest{body: b, etag: info.ETag}, nil
}

// putManifest replaces cur with body unless they are equal, failing with
// storage.ErrPreconditionFailed if cur is no longer the stored version.
func (w *Worker) putManifest(ctx context.Context, key string, body []byte, cur storedManifest, contentType string) error {
	if cur.etag != "" && bytes.Equal(cur.body, body) {
		return nil
	}
	// Every version is locked: the manifests decide what a player is
	// given, so their history must not be rewritable either.
	o := storage.PutOptions{ContentType: contentType, IfMatch: cur.etag, IfNoneMatch: cur.etag == "", Retention: w.retention()}
	_, err := w.Store.PutBytes(ctx, w.Bucket, key, body, o)
	return err
}
