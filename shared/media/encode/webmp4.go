package encode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/mieweb/pulsevault/shared/ingest/probe"
	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/media/webmp4"
	"github.com/mieweb/pulsevault/shared/platform/loopback"
	"github.com/mieweb/pulsevault/shared/storage"
	"github.com/mieweb/pulsevault/shared/topology"
)

// webMP4Stale is how long a job's claim on making web.mp4 holds: a claim
// older than this belongs to a job that died, and the next job takes over.
const webMP4Stale = 15 * time.Minute

// ensureWebMP4 sets meta.json's web_mp4 once per video: web.mp4, made here
// without the original's metadata (a remux when the codecs allow, else a
// 720p encode at the group's nice value) and locked like the renditions. One job at a time makes it (a claim in
// meta.json). A failure is logged, not returned: the video plays without
// it, and the next job of the video tries again.
func (w *Worker) ensureWebMP4(ctx context.Context, log *slog.Logger, id string, src loopback.Object, p meta.Probe, scratch string) {
	now := time.Now().UTC()
	_, err := w.Meta.Update(ctx, id, func(v *meta.Video) error {
		if v.WebMP4 != "" || v.Status == meta.Rejected || v.WebMP4Claim != nil && now.Sub(*v.WebMP4Claim) < webMP4Stale {
			return errSkip
		}
		v.WebMP4Claim = &now
		return nil
	})
	if errors.Is(err, errSkip) {
		return
	}
	if err != nil {
		log.Warn("transcode: web mp4 claim failed", "err", err)
		return
	}
	start := time.Now()
	key, mErr := w.makeWebMP4(ctx, src, p, id, scratch)
	_, err = w.Meta.Update(context.WithoutCancel(ctx), id, func(v *meta.Video) error {
		v.WebMP4Claim = nil
		if mErr == nil {
			v.WebMP4 = key
		}
		return nil
	})
	switch {
	case mErr != nil:
		code := CodeFailed
		var te *Error
		if errors.As(mErr, &te) {
			code = te.Code
		}
		log.Warn("transcode: web mp4 failed", "code", code, "err", mErr)
	case err != nil:
		log.Warn("transcode: recording the web mp4 failed", "err", err)
	default:
		log.Info("transcode: web mp4 ready", "seconds", time.Since(start).Round(time.Millisecond).Seconds())
	}
}

// makeWebMP4 makes the video's web MP4 from the original src and returns
// its key.
func (w *Worker) makeWebMP4(ctx context.Context, src loopback.Object, p meta.Probe, id, scratch string) (string, error) {
	// Always a copy, even of an original that is already web-ready: the
	// original's container metadata (a phone's GPS position in ©xyz, its
	// make and model) must not reach whoever holds a view link. H.264 and
	// AAC are stream-copied, so this costs a remux, not an encode.
	dir := filepath.Join(scratch, "web")
	if err := os.Mkdir(dir, 0o700); err != nil {
		return "", err
	}
	out := filepath.Join(dir, topology.WebMP4File)
	err := serve(ctx, src, func(input string, bind func(int) error) error {
		args := append([]string{"-hide_banner", "-nostdin", "-nostats", "-loglevel", "error"}, probe.InputOptions(input)...)
		args = append(append(args, "-i", input), webmp4.Args(p, w.Config.Preset, out)...)
		return run(ctx, dir, args, input, bind, nil, w.Config.GroupNice, "web", w.metrics().cpuSeconds)
	})
	if err != nil {
		return "", err
	}
	f, err := os.Open(out)
	if err != nil {
		return "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	if boxes, err := webmp4.TopLevel(f, st.Size()); err != nil || !webmp4.Faststart(boxes) {
		return "", &Error{Code: CodeBadOutput, Err: fmt.Errorf("ffmpeg wrote a web mp4 that is not faststart: %v", err)}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	key := topology.WebMP4Key(id)
	if _, err := w.Store.Put(ctx, w.Bucket, key, f, st.Size(), storage.PutOptions{ContentType: "video/mp4", Retention: w.retention()}); err != nil {
		return "", err
	}
	return key, nil
}
