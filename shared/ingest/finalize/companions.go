package finalize

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/mieweb/pulsevault/shared/ingest/staging"
	"github.com/mieweb/pulsevault/shared/ingest/videoid"
	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/storage"
	"github.com/mieweb/pulsevault/shared/topology"
)

// attachCompanions locks the Pulse companions staged for video v (they
// always arrive before it) beside it and names them in meta.json, then
// clears them from staging. Every step is repeatable: a copy already made
// is not made again (each would be another locked version), a key already
// named is not added twice.
func (f *Finalizer) attachCompanions(ctx context.Context, v *meta.Video) error {
	anchor, companion, ok := topology.ParsePulseObject(videoid.ObjectID(v.UploadID))
	if !ok || companion != "" || anchor != v.ID {
		return nil
	}
	var keys []string
	for o, err := range f.o.Store.List(ctx, f.o.UploadsBucket, topology.PulseCompanionPrefix(anchor)) {
		if err != nil {
			return err
		}
		if staging.IsUploadKey(o.Key) { // the data object exists once the upload is complete
			keys = append(keys, o.Key)
		}
	}
	slices.Sort(keys)
	for _, obj := range keys {
		if err := f.attach(ctx, v, obj); err != nil {
			return err
		}
	}
	return nil
}

func (f *Finalizer) attach(ctx context.Context, v *meta.Video, obj string) error {
	info, err := f.staged.Info(ctx, obj)
	if errors.Is(err, staging.ErrNotFound) {
		return nil // cleared by an earlier run
	} else if err != nil {
		return err
	}
	src, err := f.o.Store.Stat(ctx, f.o.UploadsBucket, obj)
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	cur, _, err := f.metas.Get(ctx, v.ID)
	if err != nil {
		return err
	}
	var key, ctype string
	lang := ""
	switch info.MetaData["kind"] {
	case "captions":
		lang = "und"
		if cur.Companions != nil {
			for _, c := range cur.Companions.Captions {
				if c.Lang == lang && !f.sameSize(ctx, c.Key, src.Size) {
					_, comp, _ := topology.ParsePulseObject(obj)
					lang = "und-" + comp[:8]
				}
			}
		}
		key, ctype = topology.CaptionsKey(v.ID, lang), "text/vtt"
	case "thumbnail":
		key, ctype = topology.VideoKey(v.ID, topology.ThumbnailFile), "image/jpeg"
	case "project":
		key, ctype = topology.VideoKey(v.ID, topology.BeatsFile), "application/json"
	default:
		// The upload function accepts no other companion kind.
		return f.staged.Remove(ctx, obj)
	}
	if have, err := f.o.Store.Stat(ctx, f.o.MediaBucket, key); errors.Is(err, storage.ErrNotFound) {
		ret := storage.Compliance(f.o.RetentionDays)
		if _, err := f.o.Store.Copy(ctx, f.o.UploadsBucket, obj, f.o.MediaBucket, key, storage.PutOptions{ContentType: ctype, Retention: &ret}); err != nil {
			return fmt.Errorf("finalize: lock companion: %w", err)
		}
	} else if err != nil {
		return err
	} else if have.Size != src.Size {
		// Another file holds the key (a thumbnail sent twice): the first stays.
		return f.staged.Remove(ctx, obj)
	}
	if _, err := f.metas.Update(ctx, v.ID, func(m *meta.Video) error {
		if m.Companions == nil {
			m.Companions = &meta.Companions{}
		}
		c := m.Companions
		switch info.MetaData["kind"] {
		case "captions":
			if !slices.ContainsFunc(c.Captions, func(x meta.Captions) bool { return x.Key == key }) {
				c.Captions = append(c.Captions, meta.Captions{Key: key, Lang: lang, Label: "Captions"})
			}
		case "thumbnail":
			c.Thumbnail = key
		case "project":
			c.Beats = key
		}
		return nil
	}); err != nil {
		return err
	}
	f.log.InfoContext(ctx, "companion attached", "video", v.ID, "kind", info.MetaData["kind"])
	return f.staged.Remove(ctx, obj)
}

func (f *Finalizer) sameSize(ctx context.Context, key string, size int64) bool {
	have, err := f.o.Store.Stat(ctx, f.o.MediaBucket, key)
	return err == nil && have.Size == size
}
