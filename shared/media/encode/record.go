package encode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/mieweb/pulsevault/shared/audit/event"
	"github.com/mieweb/pulsevault/shared/media/manifest"
	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/topology"
)

func playable(s meta.Status) bool { return s == meta.Ready || s == meta.Complete }

// record checks and uploads one rendition ffmpeg wrote into out, emits its
// audit event and marks it ready in meta.json. It does not make the video
// ready or complete: settle counts listed renditions only, and only
// publishManifests lists them.
func (w *Worker) record(ctx context.Context, id string, rend meta.Rendition, probe meta.Probe, out string) (manifest.Timeline, error) {
	files, tl, track, err := readOutput(out)
	if err != nil {
		return tl, &Error{Code: CodeBadOutput, Err: err}
	}
	if err := w.upload(ctx, id, rend, out, files, tl); err != nil {
		return tl, &Error{Code: CodeStore, Err: err}
	}
	// The audit event goes out before meta.json says ready: once ready, a
	// redelivery is a no-op and would never emit it.
	if err := w.Audit.Publish(ctx, event.Event{
		ID: eventID(id, rend.Name, "done"), Action: event.TranscodeDone, Object: id, Outcome: event.Success,
	}); err != nil {
		return tl, &Error{Code: CodeStore, Err: fmt.Errorf("audit: %w", err)}
	}
	peak, avg := tl.Bandwidth()
	_, err = w.Meta.Update(ctx, id, func(v *meta.Video) error {
		r := find(v, rend.Name)
		if r == nil {
			return errUnknownRendition
		}
		r.State, r.Progress, r.Error, r.Listed = meta.RenditionReady, 100, "", false
		r.Playlist = topology.RenditionKey(id, rend.Name, topology.PlaylistFile)
		r.Codecs, r.Bandwidth, r.Average = track.Codec, peak, avg
		if track.Kind == "audio" {
			r.Channels = track.Channels
		}
		if track.Kind == "video" {
			r.Width, r.Height = track.Width, track.Height
			r.FrameRate = math.Round(Rate(probe.FPS).Float()*1000) / 1000
		}
		settle(v)
		return nil
	})
	if err != nil {
		return tl, &Error{Code: CodeStore, Err: err}
	}
	return tl, nil
}

// settle derives the video's status from its renditions, counting a ready
// rendition only once the manifests in the store list it (Listed, set by
// publishManifests): ready once a listed video rendition is there and the
// audio rendition, if planned, is listed or failed; complete when every
// planned rendition has ended, at least one video rendition is ready and
// every ready rendition is listed; failed when every rendition ended and no
// video rendition is ready (that needs no manifest). So a client never sees
// ready or complete before the manifests say so.
func settle(v *meta.Video) {
	if v.Status == meta.Rejected || len(v.Renditions) == 0 {
		return
	}
	ended, videoReady, allListed, videoListed, audioListed := true, false, true, false, true
	for _, r := range v.Renditions {
		ready := r.State == meta.RenditionReady
		listed := ready && r.Listed
		ended = ended && (ready || r.State == meta.RenditionFailed)
		allListed = allListed && (!ready || listed)
		if r.Kind == "audio" {
			audioListed = audioListed && (listed || r.State == meta.RenditionFailed)
		} else {
			videoReady = videoReady || ready
			videoListed = videoListed || listed
		}
	}
	prev := v.Status
	switch {
	case ended && !videoReady:
		v.Status, v.Reason = meta.Failed, "transcode-failed"
	case ended && allListed:
		v.Status = meta.Complete
	case videoListed && audioListed:
		v.Status = meta.Ready
	default:
		v.Status = meta.Processing
	}
	if v.Status != meta.Failed && prev == meta.Failed {
		v.Reason = ""
	}
}

// list marks names listed in meta.json (they are in the stored manifests)
// and settles the video's status, writing only if that changes something.
// v is a recent view, used to skip the update when there is nothing to do.
func (w *Worker) list(ctx context.Context, id string, v *meta.Video, names []string) error {
	apply := func(v *meta.Video) bool {
		changed := false
		for _, name := range names {
			if r := find(v, name); r != nil && r.State == meta.RenditionReady && !r.Listed {
				r.Listed, changed = true, true
			}
		}
		status, reason := v.Status, v.Reason
		settle(v)
		return changed || v.Status != status || v.Reason != reason
	}
	view := *v
	view.Renditions = slices.Clone(v.Renditions)
	if !apply(&view) {
		return nil
	}
	var became bool
	var created time.Time
	_, err := w.Meta.Update(ctx, id, func(v *meta.Video) error {
		was := v.Status
		if !apply(v) {
			return errSkip
		}
		became, created = !playable(was) && playable(v.Status), v.Created
		return nil
	})
	if errors.Is(err, errSkip) {
		return nil
	}
	if err == nil && became && !created.IsZero() {
		w.metrics().timeToPlayable.Observe(time.Since(created).Seconds())
	}
	return err
}

// unlisted reports whether meta.json says more than the manifests and the
// status do: a playable rendition not listed yet, or a stale status.
func unlisted(v *meta.Video) bool {
	if video, audio, ok := manifest.Playable(v); ok {
		for _, r := range append(video, optionalRendition(audio)...) {
			if !r.Listed {
				return true
			}
		}
	}
	view := *v
	view.Renditions = slices.Clone(v.Renditions)
	settle(&view)
	return view.Status != v.Status || view.Reason != v.Reason
}

func optionalRendition(r *meta.Rendition) []meta.Rendition {
	if r == nil {
		return nil
	}
	return []meta.Rendition{*r}
}

func (w *Worker) timeline(ctx context.Context, id, name string) (manifest.Timeline, error) {
	var tl manifest.Timeline
	rc, _, err := w.Store.Get(ctx, w.Bucket, topology.RenditionKey(id, name, topology.TimelineFile), 0, -1)
	if err != nil {
		return tl, err
	}
	defer rc.Close()
	if err := json.NewDecoder(rc).Decode(&tl); err != nil {
		return tl, fmt.Errorf("%s timeline: %w", name, err)
	}
	return tl, tl.Validate()
}
