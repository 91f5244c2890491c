package finalize

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/mieweb/pulsevault/shared/ingest/staging"
	"github.com/mieweb/pulsevault/shared/ingest/videoid"
	"github.com/mieweb/pulsevault/shared/media/companion"
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
	kind := info.MetaData["kind"]
	max := companion.MaxSize(kind)
	if max == 0 || src.Size > max {
		// The upload function accepts no other kind, nor a larger file.
		return f.staged.Remove(ctx, obj)
	}
	var key string
	lang := topology.UndeterminedLang // the protocol names no language
	switch kind {
	case companion.KindCaptions:
		key, _ = topology.CaptionsKey(v.ID, lang)
	case companion.KindThumbnail:
		key = topology.ThumbnailKey(v.ID)
	case companion.KindProject:
		key = topology.BeatsKey(v.ID)
	}
	if _, err := f.o.Store.Stat(ctx, f.o.MediaBucket, key); errors.Is(err, storage.ErrNotFound) {
		rc, _, err := f.o.Store.Get(ctx, f.o.UploadsBucket, obj, 0, -1)
		if err != nil {
			return err
		}
		raw, err := io.ReadAll(io.LimitReader(rc, max+1))
		rc.Close()
		if err != nil {
			return err
		}
		staged, ctype, err := companion.Stage(kind, raw)
		if err != nil {
			// Not what it claims to be: nothing of it is kept (the log has
			// the kind only: the checker's text may quote the file).
			f.log.InfoContext(ctx, "companion refused", "video", v.ID, "kind", kind)
			return f.staged.Remove(ctx, obj)
		}
		ret := storage.Compliance(f.o.RetentionDays)
		if _, err := f.o.Store.PutBytes(ctx, f.o.MediaBucket, key, staged, storage.PutOptions{ContentType: ctype, Retention: &ret}); err != nil {
			return fmt.Errorf("finalize: lock companion: %w", err)
		}
	} else if err != nil {
		return err
	}
	// The key held already: an earlier run locked this file, or a second
	// one of its kind came (the first stays). Either way nothing is copied.
	if _, err := f.metas.Update(ctx, v.ID, func(m *meta.Video) error {
		if m.Companions == nil {
			m.Companions = &meta.Companions{}
		}
		c := m.Companions
		switch kind {
		case companion.KindCaptions:
			if !slices.ContainsFunc(c.Captions, func(x meta.CaptionFile) bool { return x.Key == key }) {
				c.Captions = append(c.Captions, meta.CaptionFile{Key: key, Lang: lang, Label: "Captions"})
			}
		case companion.KindThumbnail:
			c.Thumbnail = key
		case companion.KindProject:
			c.Beats = key
		}
		return nil
	}); err != nil {
		return err
	}
	f.log.InfoContext(ctx, "companion attached", "video", v.ID, "kind", kind)
	return f.staged.Remove(ctx, obj)
}
