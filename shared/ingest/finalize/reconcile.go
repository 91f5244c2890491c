package finalize

import (
	"context"
	"time"

	"github.com/mieweb/pulsevault/shared/ingest/videoid"
	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/topology"
)

// Report says what a reconcile pass did: counts, and the ids it acted on.
type Report struct {
	Finalized []string `json:"finalized"` // video ids now processing
	Rejected  []string `json:"rejected"`  // video ids now rejected
	Expired   []string `json:"expired"`   // upload ids of incomplete uploads removed
	Failed    int      `json:"failed"`    // uploads whose finalize failed (retried next pass)
}

// Reconcile is the safety net for lost notifications: it finalizes every
// completed upload older than Limits.ReconcileAge that is still staged,
// and removes incomplete uploads (and concatenations) older than
// Limits.Expiry. It carries on past one upload's failure.
func (f *Finalizer) Reconcile(ctx context.Context) (Report, error) {
	return f.reconcile(ctx, f.o.Limits.ReconcileAge)
}

// reconcile finalizes complete uploads at least completeAge old.
func (f *Finalizer) reconcile(ctx context.Context, completeAge time.Duration) (Report, error) {
	rep := Report{Finalized: []string{}, Rejected: []string{}, Expired: []string{}}
	ups, err := f.staged.List(ctx)
	if err != nil {
		return rep, err
	}
	now := time.Now()
	for _, u := range ups {
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
		age := now.Sub(u.Modified)
		switch {
		case u.Complete && age >= completeAge:
			out, err := f.Finalize(ctx, u.ID)
			switch {
			case err != nil:
				rep.Failed++
				f.log.Warn("reconcile: finalize failed", "upload", u.ID, "err", err)
			case (out.Skipped == "partial" || out.Skipped == "final" || out.Skipped == "companion") && age >= f.o.Limits.Expiry:
				// A companion whose video never came expires like an
				// abandoned upload.
				f.expire(ctx, &rep, u.ID)
			case out.Status == meta.Rejected:
				rep.Rejected = append(rep.Rejected, out.Video)
			case out.Status != "" && out.Skipped == "":
				rep.Finalized = append(rep.Finalized, out.Video)
			}
		case !u.Complete && u.HasInfo && f.hasVideo(ctx, u.ID):
			// Finalized, but the removal of the staged upload was cut
			// short after the data went (the .info goes last): Finalize
			// finishes it.
			if _, err := f.Finalize(ctx, u.ID); err != nil {
				rep.Failed++
				f.log.Warn("reconcile: clearing a finalized upload failed", "upload", u.ID, "err", err)
			}
		case !u.Complete && u.HasInfo && age >= f.o.Limits.Expiry:
			// Never finished: the client gave up (tus expiration).
			f.expire(ctx, &rep, u.ID)
		}
	}
	f.expireClaims(ctx, now)
	f.log.Info("reconcile done", "staged", len(ups), "finalized", len(rep.Finalized), "rejected", len(rep.Rejected),
		"expired", len(rep.Expired), "failed", rep.Failed)
	return rep, nil
}

// hasVideo reports whether the upload with object id up became a video.
func (f *Finalizer) hasVideo(ctx context.Context, up string) bool {
	_, _, err := f.metas.Get(ctx, videoid.FromUpload(up))
	return err == nil
}

func (f *Finalizer) expire(ctx context.Context, rep *Report, id string) {
	if err := f.staged.Remove(ctx, id); err != nil {
		rep.Failed++
		f.log.Warn("reconcile: expire failed", "upload", id, "err", err)
		return
	}
	rep.Expired = append(rep.Expired, id)
}

// claimTTL is how long a Pulse artifact-id claim is kept: longer than any
// capability token lives (24 h), so while a token could create an upload
// its artifact id stays single-use. After that a finished video (or its
// companions) still answers 409 from its meta.json, and nothing else can
// use the id.
const claimTTL = 48 * time.Hour

// expireClaims removes the Pulse claims older than claimTTL.
func (f *Finalizer) expireClaims(ctx context.Context, now time.Time) {
	for o, err := range f.o.Store.List(ctx, f.o.UploadsBucket, topology.PulseClaimPrefix) {
		if err != nil {
			f.log.Warn("reconcile: listing Pulse claims failed", "err", "store-error")
			return
		}
		if now.Sub(o.LastModified) >= f.claimTTL {
			if err := f.o.Store.Remove(ctx, f.o.UploadsBucket, o.Key, ""); err != nil {
				f.log.Warn("reconcile: removing a Pulse claim failed", "err", "store-error")
			}
		}
	}
}
