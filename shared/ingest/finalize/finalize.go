// Package finalize turns a completed tus upload into a video: it probes the
// staged upload, locks a copy of it in the media bucket, writes meta.json,
// publishes one transcode job per rendition, emits audit events and clears
// the staged upload. A file that is not an acceptable video gets a
// meta.json with status rejected and a reason instead, and nothing else.
//
// Every step is idempotent and keyed by the video id (derived from the
// upload id), so a redelivered event, a second replica or the reconciler
// converges on one video and one set of jobs. meta.json is the record of
// progress: once it exists, a later run only finishes the steps after it.
package finalize

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mieweb/pulsevault/shared/audit/event"
	"github.com/mieweb/pulsevault/shared/bus"
	"github.com/mieweb/pulsevault/shared/ingest/probe"
	"github.com/mieweb/pulsevault/shared/ingest/s3event"
	"github.com/mieweb/pulsevault/shared/ingest/staging"
	"github.com/mieweb/pulsevault/shared/ingest/videoid"
	"github.com/mieweb/pulsevault/shared/media/ladder"
	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/platform/loopback"
	"github.com/mieweb/pulsevault/shared/playback/livestatus"
	"github.com/mieweb/pulsevault/shared/storage"
	"github.com/mieweb/pulsevault/shared/topology"
)

// Rejection reasons besides probe's (machine codes in meta.json and audit).
const (
	ReasonEmpty      = "empty"
	ReasonTooBig     = "too-big"
	ReasonTooLong    = "too-long"
	ReasonDimensions = "dimensions-too-large"
)

// ErrBadEvent means the message is not an S3 notification and never will
// be: the caller should not retry it.
var ErrBadEvent = errors.New("finalize: malformed event")

// Options configures a Finalizer. All fields but Logger are required.
type Options struct {
	Store         *storage.Store
	Bus           *bus.Bus
	UploadsBucket string
	MediaBucket   string
	RetentionDays int // COMPLIANCE retention of the original
	Limits        Limits
	Prober        probe.Prober
	Logger        *slog.Logger
	Replicas      int // copies of the lease bucket (NATS_REPLICAS); 0 keeps the bucket's
	// Registerer takes the finalizer's metrics (the function's own
	// registry); nil keeps them unexported.
	Registerer prometheus.Registerer
}

// Finalizer runs the finalize steps. It is safe for concurrent use.
type Finalizer struct {
	o       Options
	staged  *staging.Store
	metas   *meta.Store
	audit   *event.Publisher
	leases  *leases
	log     *slog.Logger
	service string
	m       *metrics

	sweepMu   sync.Mutex
	lastSweep time.Time // start of the latest sweep

	claimTTL time.Duration // Pulse claims older than this go (reconcile.go)
}

// New builds a Finalizer and makes sure its lease bucket exists.
func New(ctx context.Context, o Options) (*Finalizer, error) {
	if o.Store == nil || o.Bus == nil || o.UploadsBucket == "" || o.MediaBucket == "" || o.RetentionDays < 1 {
		return nil, errors.New("finalize: Store, Bus, both buckets and RetentionDays are required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Prober.Timeout == 0 {
		o.Prober.Timeout = o.Limits.ProbeTimeout
	}
	m, err := newMetrics(o.Registerer)
	if err != nil {
		return nil, err
	}
	l, err := newLeases(ctx, o.Bus.JetStream(), lockTTL, o.Replicas)
	if err != nil {
		return nil, err
	}
	return &Finalizer{m: m,
		o: o, staged: staging.New(o.Store, o.UploadsBucket), metas: meta.NewStore(o.Store, o.MediaBucket).Retain(o.RetentionDays).OnStatus(func(ctx context.Context, v *meta.Video) { _ = livestatus.Publish(ctx, o.Bus, v) }),
		audit: event.NewPublisher(o.Bus, "upload-finalize"), leases: l, log: o.Logger, claimTTL: claimTTL,
	}, nil
}

// Outcome says what one Finalize did. It holds ids and codes only.
type Outcome struct {
	Upload  string      `json:"upload"`
	Video   string      `json:"video,omitempty"`
	Status  meta.Status `json:"status,omitempty"`
	Reason  string      `json:"reason,omitempty"`
	Jobs    int         `json:"jobs"`
	Skipped string      `json:"skipped,omitempty"` // why nothing was done: gone, partial, final, no-info
}

// HandleEvent finalizes the uploads a bucket notification reports. The
// server's test message and records about other buckets, removals and
// tusd's .info/.part objects are ignored. A malformed message gives an
// error wrapping ErrBadEvent.
//
// A finished multipart upload whose record does not match what is stored
// (an ETag other than the staged object's or its video's, neither of them,
// a bucket that is not ours) is not trusted
// to name the upload that finished: versitygw v1.8.0 reads the bucket and
// key of its notifications from a request buffer that the next request on
// the connection reuses, so about one in twenty of them under concurrent
// uploads names another upload. Such a record makes HandleEvent sweep:
// finalize every complete staged upload, whatever its age.
func (f *Finalizer) HandleEvent(ctx context.Context, msg []byte) ([]Outcome, error) {
	objs, err := s3event.Objects(msg)
	if errors.Is(err, s3event.ErrTestEvent) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadEvent, err)
	}
	var out []Outcome
	sweep := false
	for _, o := range objs {
		if !o.Created() {
			continue
		}
		if o.Bucket != f.o.UploadsBucket || !staging.IsUploadKey(o.Key) {
			sweep = sweep || o.EventName == eventCompleteMultipart && o.Bucket != f.o.MediaBucket
			continue
		}
		if o.EventName == eventCompleteMultipart {
			ok, err := f.matches(ctx, o)
			if err != nil {
				return out, err
			}
			sweep = sweep || !ok
		}
		res, err := f.Finalize(ctx, o.Key)
		if err != nil {
			return out, err
		}
		out = append(out, res)
	}
	if sweep {
		f.m.eventMismatches.Inc()
		rep, err := f.sweep(ctx)
		if err != nil {
			return out, err
		}
		for _, id := range rep.Finalized {
			out = append(out, Outcome{Video: id, Status: meta.Processing})
		}
		for _, id := range rep.Rejected {
			out = append(out, Outcome{Video: id, Status: meta.Rejected})
		}
	}
	return out, nil
}

// eventCompleteMultipart is the record tusd's s3store causes when an
// upload's last PATCH lands (MinIO and versitygw spell it alike).
const eventCompleteMultipart = "s3:ObjectCreated:CompleteMultipartUpload"

// matches reports whether record o is about the upload it names: the
// staged object, or the video finalized from it, carries o's ETag.
func (f *Finalizer) matches(ctx context.Context, o s3event.Object) (bool, error) {
	info, err := f.o.Store.Stat(ctx, o.Bucket, o.Key)
	if err == nil {
		return info.ETag == o.ETag, nil
	} else if !errors.Is(err, storage.ErrNotFound) {
		return false, err
	}
	// Finalized already (by a sweep, or this is a redelivery).
	v, _, err := f.metas.Get(ctx, videoid.FromUpload(o.Key))
	if errors.Is(err, meta.ErrNotFound) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	return v.UploadETag == "" || v.UploadETag == o.ETag, nil
}

// sweep finalizes every complete staged upload. Callers that ask while a
// sweep runs share the next one: one that starts after they asked.
func (f *Finalizer) sweep(ctx context.Context) (Report, error) {
	asked := time.Now()
	f.sweepMu.Lock()
	defer f.sweepMu.Unlock()
	if f.lastSweep.After(asked) {
		return Report{}, nil
	}
	f.lastSweep = time.Now()
	return f.reconcile(ctx, 0)
}

// Finalize runs the steps for the staged upload whose object id is upload.
// An error means a step failed and the whole call is worth retrying.
func (f *Finalizer) Finalize(ctx context.Context, upload string) (out Outcome, err error) {
	if !staging.IsUploadKey(upload) {
		return Outcome{}, fmt.Errorf("%w: %q is not an upload id", ErrBadEvent, upload)
	}
	if _, companion, ok := topology.ParsePulseObject(upload); ok && companion != "" {
		// A Pulse companion waits for its video, which attaches it.
		return Outcome{Upload: upload, Skipped: "companion"}, nil
	}
	defer func(start time.Time) { f.m.observe(out, err, start) }(time.Now())
	id := videoid.FromUpload(upload)
	out = Outcome{Upload: upload, Video: id}
	ctx, release, err := f.leases.acquire(ctx, upload)
	if err != nil {
		return out, err
	}
	defer release()

	if v, _, err := f.metas.Get(ctx, id); err == nil {
		return f.resume(ctx, out, v)
	} else if !errors.Is(err, meta.ErrNotFound) {
		return out, err
	}

	obj, err := f.o.Store.Stat(ctx, f.o.UploadsBucket, upload)
	if errors.Is(err, storage.ErrNotFound) {
		out.Skipped = "gone" // not complete yet, or cleared by an earlier run
		return out, nil
	} else if err != nil {
		return out, err
	}
	info, err := f.staged.Info(ctx, upload)
	if errors.Is(err, staging.ErrNotFound) {
		out.Skipped = "no-info" // not a tus upload: left alone
		return out, nil
	} else if err != nil {
		return out, err
	}
	switch {
	case info.IsPartial:
		out.Skipped = "partial" // a concatenation part
		return out, nil
	case info.IsFinal:
		// Made by concatenation, which can join another user's uploads
		// (tusd checks no owner): never a video. The upload function
		// refuses concatenation; one staged before that expires.
		out.Skipped = "final"
		return out, nil
	}
	v := &meta.Video{ID: id, Uploader: info.Subject(), UploadID: upload, UploadETag: obj.ETag, Client: info.Client()}

	switch {
	case obj.Size == 0:
		return f.reject(ctx, out, v, ReasonEmpty, obj.Size)
	case obj.Size > f.o.Limits.MaxBytes:
		return f.reject(ctx, out, v, ReasonTooBig, obj.Size)
	}
	res, err := f.o.Prober.Probe(ctx, loopback.FromInfo(f.o.Store, obj).CountRefused(f.m.loopbackRefused))
	var rej *probe.Rejected
	if errors.As(err, &rej) {
		return f.reject(ctx, out, v, rej.Reason, obj.Size)
	} else if err != nil {
		return out, err
	}
	v.Probe = &res.Probe
	switch {
	case res.Duration > f.o.Limits.MaxSeconds:
		return f.reject(ctx, out, v, ReasonTooLong, obj.Size)
	case max(res.Width, res.Height) > f.o.Limits.MaxSide:
		return f.reject(ctx, out, v, ReasonDimensions, obj.Size)
	}

	orig, err := f.copyOriginal(ctx, upload, id, obj.Size, res)
	if err != nil {
		return out, err
	}
	v.Status = meta.Processing
	v.Original = orig
	v.Renditions = ladder.Plan(res.Probe)
	if err := f.metas.Create(ctx, v); errors.Is(err, storage.ErrPreconditionFailed) {
		// Written by a run that lost its lease: continue from what it says.
		if v, _, err = f.metas.Get(ctx, id); err != nil {
			return out, err
		}
	} else if err != nil {
		return out, err
	} else {
		f.m.uploadsCompleted.Inc()
		f.m.uploadBytes.Add(float64(obj.Size))
	}
	return f.resume(ctx, out, v)
}

// resume finishes the steps after meta.json: jobs, audit, cleanup. Job
// and audit publishes are deduplicated by JetStream, so repeating them
// after a crash is harmless.
func (f *Finalizer) resume(ctx context.Context, out Outcome, v *meta.Video) (Outcome, error) {
	out.Status, out.Reason = v.Status, v.Reason
	if v.Status == meta.Rejected {
		return out, f.finishRejected(ctx, out, v)
	}
	if _, err := f.o.Store.Stat(ctx, f.o.UploadsBucket, out.Upload); errors.Is(err, storage.ErrNotFound) {
		// Cleared: every step before it is done. Publishing the jobs again
		// now could outlive the dedup window and start duplicate work. The
		// clearing itself may have been cut short after the data went
		// (.part and .info go after it): finish it.
		return out, f.staged.Remove(ctx, out.Upload)
	} else if err != nil {
		return out, err
	}
	// Companions first: transcode reads them from meta.json when its jobs run.
	if err := f.attachCompanions(ctx, v); err != nil {
		return out, err
	}
	for _, r := range v.Renditions {
		if r.State != meta.RenditionPlanned {
			continue
		}
		j := ladder.Job{Video: v.ID, Rendition: r.Name}
		b, err := json.Marshal(j)
		if err != nil {
			return out, err
		}
		if err := f.o.Bus.Publish(ctx, topology.SubjectTranscodeJobs, b, j.MsgID()); err != nil {
			return out, err
		}
		out.Jobs++
	}
	if err := f.emit(ctx, v, event.UploadCreated, v.Uploader, event.Success, ""); err != nil {
		return out, err
	}
	if err := f.emit(ctx, v, event.VideoFinalized, "", event.Success, ""); err != nil {
		return out, err
	}
	if err := f.staged.Remove(ctx, out.Upload); err != nil {
		return out, err
	}
	f.log.InfoContext(ctx, "upload finalized", "video", v.ID, "upload", out.Upload, "renditions", len(v.Renditions), "jobs", out.Jobs)
	return out, nil
}

// reject records a bad upload: meta.json with status rejected and the
// reason, an audit event, and the staged upload removed. Nothing else.
//
// Minimal retention: the video will never exist, so its meta.json keeps
// the reason, the upload's size and hashes and who uploaded it, and drops
// the client metadata (file name and the like); older versions of it are
// deleted.
func (f *Finalizer) reject(ctx context.Context, out Outcome, v *meta.Video, reason string, size int64) (Outcome, error) {
	v.Status, v.Reason, v.Errors = meta.Rejected, reason, []string{reason}
	v.Client, v.Probe = nil, nil
	v.Rejected = &meta.RejectedUpload{Size: size}
	if size <= f.o.Limits.MaxBytes {
		sum, err := f.hashStaged(ctx, out.Upload)
		if err != nil {
			return out, err
		}
		v.Rejected.SHA256 = sum
	}
	if err := f.metas.Create(ctx, v); errors.Is(err, storage.ErrPreconditionFailed) {
		if v, _, err = f.metas.Get(ctx, v.ID); err != nil {
			return out, err
		}
	} else if err != nil {
		return out, err
	} else {
		f.m.uploadsRejected.WithLabelValues(reason).Inc()
	}
	out.Status, out.Reason = v.Status, v.Reason
	return out, f.finishRejected(ctx, out, v)
}

func (f *Finalizer) finishRejected(ctx context.Context, out Outcome, v *meta.Video) error {
	if len(v.Client) > 0 { // written before minimal retention: scrub it
		if _, err := f.metas.Update(ctx, v.ID, func(x *meta.Video) error { x.Client = nil; return nil }); err != nil {
			return err
		}
	}
	if err := f.pruneMetaVersions(ctx, v.ID); err != nil {
		return err
	}
	if err := f.emit(ctx, v, event.UploadRejected, v.Uploader, event.Failure, v.Reason); err != nil {
		return err
	}
	if err := f.staged.Remove(ctx, out.Upload); err != nil {
		return err
	}
	f.log.InfoContext(ctx, "upload rejected", "video", v.ID, "upload", out.Upload, "reason", v.Reason)
	return nil
}

// hashStaged is the hex SHA-256 of a staged upload.
func (f *Finalizer) hashStaged(ctx context.Context, upload string) (string, error) {
	return f.hashObject(ctx, f.o.UploadsBucket, upload, "")
}

// hashObject is the hex SHA-256 of one version of an object ("": latest).
func (f *Finalizer) hashObject(ctx context.Context, bucket, key, version string) (string, error) {
	rc, _, err := f.o.Store.GetVersion(ctx, bucket, key, version, 0, -1)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	h := sha256.New()
	if _, err := io.Copy(h, rc); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// pruneMetaVersions deletes every version of a rejected video's meta.json
// but the latest (an earlier one may hold client metadata, as meta.json
// of rejected uploads did before), where the store lets it: a locked
// version stays and is logged. Versions are locked since meta.json
// history is kept (meta.Store.Retain), and a rejected upload's first
// meta.json already has no client metadata, so there is nothing to
// prune then; this clears what older releases left unlocked.
func (f *Finalizer) pruneMetaVersions(ctx context.Context, id string) error {
	key := topology.MetaKey(id)
	var versions []storage.Info
	for info, err := range f.o.Store.ListVersions(ctx, f.o.MediaBucket, key) {
		if err != nil {
			return err
		}
		if info.Key == key {
			versions = append(versions, info)
		}
	}
	if len(versions) <= 1 {
		return nil
	}
	latest := versions[0]
	for _, v := range versions[1:] {
		if v.LastModified.After(latest.LastModified) {
			latest = v
		}
	}
	for _, v := range versions {
		if v.VersionID == latest.VersionID {
			continue
		}
		if err := f.o.Store.Remove(ctx, f.o.MediaBucket, key, v.VersionID); err != nil {
			f.log.WarnContext(ctx, "rejected upload: an older meta.json version cannot be deleted", "video", id, "err", err)
		}
	}
	return nil
}

// copyOriginal locks the upload in the media bucket, unless an earlier run
// already did (every copy would be another version nobody can remove), and
// pins the locked version: its version id and the SHA-256 of its bytes as
// read back from the store go into meta.json, and every reader asks for
// that version.
func (f *Finalizer) copyOriginal(ctx context.Context, upload, id string, size int64, res probe.Result) (*meta.Original, error) {
	key := topology.OriginalKey(id, res.Ext)
	o := &meta.Original{Key: key, Size: size, ContentType: res.ContentType}
	have, err := f.o.Store.Stat(ctx, f.o.MediaBucket, key)
	if err == nil && have.Size == size && have.Retention != nil {
		o.RetainUntil, o.VersionID = have.Retention.Until, have.VersionID
	} else if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	} else {
		ret := storage.Compliance(f.o.RetentionDays)
		info, err := f.o.Store.Copy(ctx, f.o.UploadsBucket, upload, f.o.MediaBucket, key,
			storage.PutOptions{ContentType: res.ContentType, Retention: &ret})
		if err != nil {
			return nil, err
		}
		o.RetainUntil, o.VersionID = ret.Until, info.VersionID
	}
	if o.VersionID == "null" { // an unversioned store's answer: nothing to pin
		o.VersionID = ""
	}
	sum, err := f.hashObject(ctx, f.o.MediaBucket, key, o.VersionID)
	if err != nil {
		return nil, err
	}
	o.SHA256 = sum
	return o, nil
}

// emit publishes an audit event whose id is derived from the video and the
// action, so a repeat is deduplicated.
func (f *Finalizer) emit(ctx context.Context, v *meta.Video, action, actor, outcome, reason string) error {
	if actor == "" {
		actor = "service:upload-finalize"
	}
	e := event.Event{
		ID:      uuid.NewSHA1(videoid.Namespace, []byte(v.ID+"/"+action)).String(),
		Actor:   actor,
		Action:  action,
		Object:  v.ID,
		Outcome: outcome,
		Reason:  reason,
	}
	if action == event.VideoFinalized && v.Original != nil {
		e.SHA256 = v.Original.SHA256 // the log vouches for the locked original (audit prove-video)
	}
	return f.audit.Publish(ctx, e)
}
