package encode

import (
	"context"
	"errors"
	"slices"

	"github.com/google/uuid"

	"github.com/mieweb/pulsevault/shared/audit/event"
	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/storage"
	"github.com/mieweb/pulsevault/shared/topology"
)

// fail marks the rendition failed with te's code, keeps the sanitized
// stderr tail beside the rendition, emits the audit event and rewrites the
// manifests (a failed audio rendition can make the video playable).
func (w *Worker) fail(ctx context.Context, id, name string, te *Error) error {
	_, err := w.failUnless(ctx, id, name, te, func(r *meta.Rendition) bool { return r.State == meta.RenditionReady })
	return err
}

// failUnless is fail for a rendition that keep does not protect (keep
// always protects ready ones: a group member recorded before the group
// failed). keep is checked again inside the conditional update, so a
// concurrent change wins. It reports whether it marked the rendition failed.
func (w *Worker) failUnless(ctx context.Context, id, name string, te *Error, keep func(*meta.Rendition) bool) (bool, error) {
	v, _, err := w.Meta.Get(ctx, id)
	if err != nil {
		return false, err
	}
	if r := find(v, name); r != nil && keep(r) {
		// A group member recorded before the group failed: it stays
		// ready, and the manifests must list it (they may be what failed).
		return false, w.publishManifests(ctx, id, nil)
	}
	if te.Tail != "" {
		tail := []byte(te.Code + "\n" + te.Tail + "\n")
		if _, err := w.Store.PutBytes(ctx, w.Bucket, topology.RenditionKey(id, name, topology.ErrorFile), tail,
			storage.PutOptions{ContentType: "text/plain; charset=utf-8", Retention: w.retention()}); err != nil {
			return false, err
		}
	}
	code := "transcode." + name + "." + te.Code
	if _, err := w.Meta.Update(ctx, id, func(v *meta.Video) error {
		r := find(v, name)
		if r == nil {
			return errUnknownRendition
		}
		if r.State == meta.RenditionReady || keep(r) {
			return errSkip // a group member recorded before the group failed
		}
		r.State, r.Progress, r.Error = meta.RenditionFailed, 0, te.Code
		if !slices.Contains(v.Errors, code) {
			v.Errors = append(v.Errors, code)
		}
		settle(v)
		return nil
	}); errors.Is(err, errSkip) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	if err := w.Audit.Publish(ctx, event.Event{
		ID: eventID(id, name, "failed"), Action: event.TranscodeFailed, Object: id, Outcome: event.Failure, Reason: te.Code,
	}); err != nil {
		return true, err
	}
	return true, w.publishManifests(ctx, id, nil)
}

// eventID is stable per video, rendition and outcome, so redelivered work
// emits the same audit event (deduplicated by JetStream and audit-append).
func eventID(id, rendition, what string) string {
	return uuid.NewSHA1(uuid.NameSpaceURL, []byte("pulsevault:transcode:"+id+"/"+rendition+"/"+what)).String()
}
