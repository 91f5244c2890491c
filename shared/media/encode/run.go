package encode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/mieweb/pulsevault/shared/media/manifest"
	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/platform/loopback"
	"github.com/mieweb/pulsevault/shared/storage"
	"github.com/mieweb/pulsevault/shared/topology"
)

// transcode encodes, uploads and records one rendition.
func (w *Worker) transcode(ctx context.Context, log *slog.Logger, id string, rend meta.Rendition, probe meta.Probe, original meta.Original) error {
	if err := w.companions(ctx, log, id); err != nil {
		return &Error{Code: CodeStore, Err: fmt.Errorf("companions: %w", err)}
	}
	dir, out, src, err := w.prepare(ctx, id, original)
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	stopProgress := w.reportProgress(ctx, log, id, rend.Name)
	report := func(p Progress) { stopProgress.push(p.Percent(time.Duration(probe.Duration * float64(time.Second)))) }
	err = serve(ctx, src, func(input string, bind func(int) error) error {
		return Run(ctx, Spec{Input: input, Bind: bind, Dir: out, Rendition: rend, Probe: probe, Preset: w.Config.Preset, CPU: w.metrics().cpuSeconds}, report)
	})
	stopProgress.stop()
	if err != nil {
		return err
	}
	tl, err := w.record(ctx, id, rend, probe, out)
	if err != nil {
		return err
	}
	if err := w.publishManifests(ctx, id, map[string]manifest.Timeline{rend.Name: tl}); err != nil {
		// The rendition is recorded; a later rendition (or a redelivery,
		// since this answers 5xx) writes the manifests again.
		return &Error{Code: CodeStore, Err: fmt.Errorf("manifests: %w", err)}
	}
	// Posters and the web MP4 come after the rendition is playable: they
	// must not delay it.
	if rend.Kind == "video" {
		w.ensurePosters(ctx, log, id, src, probe, dir)
	}
	w.ensureWebMP4(ctx, log, id, src, probe, dir)
	return nil
}

// transcodeGroup encodes several renditions with one ffmpeg process (one
// decode of the original) at the given nice value, then uploads and
// records each, in group order, and writes the manifests once.
func (w *Worker) transcodeGroup(ctx context.Context, log *slog.Logger, id string, group []meta.Rendition, probe meta.Probe, original meta.Original, nice int) error {
	if err := w.companions(ctx, log, id); err != nil {
		return &Error{Code: CodeStore, Err: fmt.Errorf("companions: %w", err)}
	}
	dir, out, src, err := w.prepare(ctx, id, original)
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	names := make([]string, len(group))
	for i, r := range group {
		names[i] = r.Name
	}
	stopProgress := w.reportProgress(ctx, log, id, names...)
	report := func(p Progress) { stopProgress.push(p.Percent(time.Duration(probe.Duration * float64(time.Second)))) }
	err = serve(ctx, src, func(input string, bind func(int) error) error {
		return RunGroup(ctx, GroupSpec{Input: input, Bind: bind, Dir: out, Renditions: group, Probe: probe, Preset: w.Config.Preset, Nice: nice, CPU: w.metrics().cpuSeconds}, report)
	})
	stopProgress.stop()
	if err != nil {
		return err
	}
	known := map[string]manifest.Timeline{}
	for _, r := range group {
		tl, err := w.record(ctx, id, r, probe, filepath.Join(out, r.Name))
		if err != nil {
			return err
		}
		known[r.Name] = tl
	}
	if err := w.publishManifests(ctx, id, known); err != nil {
		return &Error{Code: CodeStore, Err: fmt.Errorf("manifests: %w", err)}
	}
	w.ensurePosters(ctx, log, id, src, probe, dir)
	w.ensureWebMP4(ctx, log, id, src, probe, dir)
	return nil
}

// ensurePosters writes poster.jpg and thumb.jpg, grabbed from a frame, when
// the video has none yet and no usable thumbnail was uploaded (companions
// made the poster from it). A failure is logged, not returned: the next
// video rendition to land tries again, and a missing poster must not fail
// a playable rendition.
func (w *Worker) ensurePosters(ctx context.Context, log *slog.Logger, id string, src loopback.Object, probe meta.Probe, scratch string) {
	if v, _, err := w.Meta.Get(ctx, id); err == nil && v.Companions != nil && v.Companions.Thumbnail != "" && !v.IsIgnored(CompanionThumbnail) {
		return
	}
	if _, err := w.Store.Stat(ctx, w.Bucket, topology.VideoKey(id, topology.PosterFile)); err == nil {
		return
	} else if !errors.Is(err, storage.ErrNotFound) {
		log.Warn("transcode: poster check failed", "err", err)
		return
	}
	dir := filepath.Join(scratch, "poster")
	if err := os.Mkdir(dir, 0o700); err != nil {
		log.Warn("transcode: poster failed", "err", err)
		return
	}
	if err := serve(ctx, src, func(input string, bind func(int) error) error {
		return posters(ctx, input, bind, dir, probe, w.metrics().cpuSeconds)
	}); err != nil {
		code := CodeFailed
		var te *Error
		if errors.As(err, &te) {
			code = te.Code
		}
		log.Warn("transcode: poster failed", "code", code)
		return
	}
	for _, f := range []string{topology.ThumbFile, topology.PosterFile} { // poster last: its presence means both are in
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err == nil {
			_, err = w.Store.PutBytes(ctx, w.Bucket, topology.VideoKey(id, f), b,
				storage.PutOptions{ContentType: "image/jpeg", Retention: w.retention()})
		}
		if err != nil {
			log.Warn("transcode: poster upload failed", "err", err)
			return
		}
	}
}
