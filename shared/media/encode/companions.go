package encode

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"

	"github.com/mieweb/pulsevault/shared/media/beats"
	"github.com/mieweb/pulsevault/shared/media/captions"
	"github.com/mieweb/pulsevault/shared/media/manifest"
	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/media/thumbnail"
	"github.com/mieweb/pulsevault/shared/storage"
	"github.com/mieweb/pulsevault/shared/topology"
)

// Companion names in meta.json's ignored list.
const (
	CompanionThumbnail = "thumbnail"
	CompanionBeats     = "beats"
)

// CompanionCaptions is the ignored-list name of the captions in lang.
func CompanionCaptions(lang string) string { return "captions:" + lang }

// companionResult is what one pass over the companions made, merged into
// meta.json in one update.
type companionResult struct {
	subs     []meta.Subtitle
	chapters []meta.Chapter
	poster   bool
	ignored  []meta.Ignored
}

// companions acts on the companions meta.json lists and has not acted on
// yet: captions become served subtitle tracks (hls/subs/, recorded in
// meta.json before any rendition is recorded, so every manifest published
// lists them), the beat manifest becomes chapters, the thumbnail becomes
// the poster. A companion that fails its check is ignored with the reason
// and never fails the video; a store error is returned so the job is tried
// again. Every step is idempotent: concurrent jobs of one video write the
// same bytes and merge by name.
func (w *Worker) companions(ctx context.Context, log *slog.Logger, id string) error {
	v, _, err := w.Meta.Get(ctx, id)
	if err != nil {
		return err
	}
	c := v.Companions
	if c == nil || v.Probe == nil {
		return nil
	}
	var res companionResult
	ignore := func(name, reason string) {
		// The reason's code only: its detail may quote the file (captions
		// are PHI), and meta.json is the only place for that.
		code, _, _ := strings.Cut(reason, ":")
		log.Warn("transcode: companion ignored", "companion", name, "code", code)
		res.ignored = append(res.ignored, meta.Ignored{Companion: name, Reason: reason})
	}
	for _, cf := range c.Captions {
		if !topology.ValidLang(cf.Lang) {
			if !v.IsIgnored("captions") {
				ignore("captions", "bad-language: the language is not a BCP 47 tag")
			}
			continue
		}
		name := CompanionCaptions(cf.Lang)
		if v.IsIgnored(name) || slices.ContainsFunc(v.Subtitles, func(s meta.Subtitle) bool { return s.Lang == cf.Lang }) ||
			slices.ContainsFunc(res.subs, func(s meta.Subtitle) bool { return s.Lang == cf.Lang }) {
			continue
		}
		b, reason, err := w.readCompanion(ctx, id, cf.Key, captions.MaxSize)
		if err != nil {
			return err
		}
		if reason != "" {
			ignore(name, reason)
			continue
		}
		vtt, err := captions.Normalize(b)
		if err != nil {
			ignore(name, "invalid: "+err.Error())
			continue
		}
		sub := meta.Subtitle{Lang: cf.Lang, Label: manifest.Label(cf.Label, cf.Lang),
			File:     topology.VideoKey(id, topology.SubtitlesFile(cf.Lang)),
			Playlist: topology.VideoKey(id, topology.SubtitlesPlaylistFile(cf.Lang))}
		if err := w.putLocked(ctx, sub.File, vtt, "text/vtt"); err != nil {
			return err
		}
		if err := w.putLocked(ctx, sub.Playlist, manifest.SubtitlesPlaylist(cf.Lang, v.Probe.Duration), "application/vnd.apple.mpegurl"); err != nil {
			return err
		}
		res.subs = append(res.subs, sub)
	}
	if c.Beats != "" && v.Chapters == nil && !v.IsIgnored(CompanionBeats) {
		b, reason, err := w.readCompanion(ctx, id, c.Beats, beats.MaxSize)
		if err != nil {
			return err
		}
		if reason == "" {
			if res.chapters, err = beats.Chapters(b, v.Probe.Duration); err != nil {
				reason = "invalid: " + err.Error()
			} else if len(res.chapters) == 0 {
				reason = "empty: the beat manifest lists no beats"
			}
		}
		if reason != "" {
			res.chapters = nil
			ignore(CompanionBeats, reason)
		}
	}
	if c.Thumbnail != "" && v.PosterSource != meta.PosterFromThumbnail && !v.IsIgnored(CompanionThumbnail) {
		b, reason, err := w.readCompanion(ctx, id, c.Thumbnail, thumbnail.MaxSize)
		if err != nil {
			return err
		}
		var poster, thumb []byte
		if reason == "" {
			if poster, thumb, err = thumbnail.Stills(b); err != nil {
				reason = "invalid: " + err.Error()
			}
		}
		if reason != "" {
			ignore(CompanionThumbnail, reason)
		} else {
			// Poster last: its presence means both are in (ensurePosters).
			if err := w.putLocked(ctx, topology.VideoKey(id, topology.ThumbFile), thumb, "image/jpeg"); err != nil {
				return err
			}
			if err := w.putLocked(ctx, topology.VideoKey(id, topology.PosterFile), poster, "image/jpeg"); err != nil {
				return err
			}
			res.poster = true
		}
	}
	if len(res.subs) == 0 && res.chapters == nil && !res.poster && len(res.ignored) == 0 {
		return nil
	}
	_, err = w.Meta.Update(ctx, id, func(v *meta.Video) error {
		for _, s := range res.subs {
			if !slices.ContainsFunc(v.Subtitles, func(o meta.Subtitle) bool { return o.Lang == s.Lang }) {
				v.Subtitles = append(v.Subtitles, s)
			}
		}
		if res.chapters != nil && v.Chapters == nil {
			v.Chapters = res.chapters
		}
		if res.poster {
			v.PosterSource = meta.PosterFromThumbnail
		}
		for _, i := range res.ignored {
			v.Ignore(i.Companion, i.Reason)
		}
		return nil
	})
	return err
}

// readCompanion reads a staged companion of video id, at most limit bytes.
// reason is set (and err nil) when the companion cannot be used: a key
// outside the video's prefix, a missing object, one over the limit.
func (w *Worker) readCompanion(ctx context.Context, id, key string, limit int64) (b []byte, reason string, err error) {
	if !strings.HasPrefix(key, topology.VideoPrefix(id)) || strings.Contains(key, "..") || strings.Contains(key, "//") {
		return nil, "bad-key: not one of the video's objects", nil
	}
	rc, info, err := w.Store.Get(ctx, w.Bucket, key, 0, -1)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, "missing: the staged file is not in the store", nil
	}
	if err != nil {
		return nil, "", err
	}
	defer rc.Close()
	if info.Size > limit {
		return nil, fmt.Sprintf("too-large: %d bytes, at most %d", info.Size, limit), nil
	}
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, io.LimitReader(rc, limit+1)); err != nil {
		return nil, "", err
	}
	if int64(buf.Len()) > limit {
		return nil, fmt.Sprintf("too-large: more than %d bytes", limit), nil
	}
	return buf.Bytes(), "", nil
}

// putLocked writes a derived file with the media's retention, as
// renditions are written.
func (w *Worker) putLocked(ctx context.Context, key string, b []byte, contentType string) error {
	_, err := w.Store.PutBytes(ctx, w.Bucket, key, b, storage.PutOptions{ContentType: contentType, Retention: w.retention()})
	return err
}
