// Package meta is a video's meta.json: the source of truth for its status,
// its probe results and its renditions, kept beside the media in the store.
// It is the only place where the client's metadata (such as the original
// file name) may live.
package meta

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/mieweb/pulsevault/shared/storage"
	"github.com/mieweb/pulsevault/shared/topology"
)

// SchemaVersion is the meta.json schema version.
const SchemaVersion = 1

// Status is a video's lifecycle state.
type Status string

// Statuses, in order. Rejected and Failed are final.
const (
	Processing Status = "processing" // finalized, renditions pending
	Ready      Status = "ready"      // at least one rendition playable
	Complete   Status = "complete"   // every planned rendition is in
	Rejected   Status = "rejected"   // the upload is not an acceptable video
	Failed     Status = "failed"     // processing failed for good
)

// Video is meta.json.
type Video struct {
	Schema     int               `json:"schema"`
	ID         string            `json:"id"`
	Status     Status            `json:"status"`
	Reason     string            `json:"reason,omitempty"` // machine code for Rejected/Failed
	Created    time.Time         `json:"created"`
	Updated    time.Time         `json:"updated"`
	Uploader   string            `json:"uploader"` // JWT subject
	UploadID   string            `json:"upload_id"`
	UploadETag string            `json:"upload_etag,omitempty"` // of the staged upload: tells its notifications from garbled ones
	Client     map[string]string `json:"client,omitempty"`      // tus metadata (file name, type, ...): PHI may live here only
	Original   *Original         `json:"original,omitempty"`
	Rejected   *RejectedUpload   `json:"rejected,omitempty"` // what is kept of a rejected upload
	Probe      *Probe            `json:"probe,omitempty"`
	Renditions []Rendition       `json:"renditions,omitempty"`
	Errors     []string          `json:"errors,omitempty"` // machine codes, newest last

	// Companions are the files a Pulse upload sent beside the video, staged
	// in the media bucket by the upload path; transcode acts on them.
	Companions *Companions `json:"companions,omitempty"`
	// What transcode made of them: served subtitle tracks, chapters from
	// the beat manifest, where the poster came from, and each companion it
	// ignored with the reason.
	Subtitles    []Subtitle `json:"subtitles,omitempty"`
	Chapters     []Chapter  `json:"chapters,omitempty"`
	PosterSource string     `json:"poster_source,omitempty"` // PosterFromThumbnail once the thumbnail is the poster
	Ignored      []Ignored  `json:"ignored,omitempty"`
	// WebMP4 is the key of a faststart H.264/AAC MP4 of the video, for a
	// plain <video> or a phone browser: the original's key when it is one,
	// else videos/<id>/web.mp4, made once by transcode.
	WebMP4 string `json:"web_mp4,omitempty"`
	// WebMP4Claim is when a transcode job started making web.mp4: other
	// jobs leave it alone until it is stale.
	WebMP4Claim *time.Time `json:"web_mp4_claim,omitempty"`
	// Withdrawn is set when the owner withdrew the video (DELETE
	// /pulsevault/artifacts/<id>): gone from feeds, every token refused;
	// the locked bytes stay until their retention ends.
	Withdrawn *time.Time `json:"withdrawn,omitempty"`
}

// Companions lists the staged companions of a video (object keys in the
// media bucket).
type Companions struct {
	Captions  []CaptionFile `json:"captions,omitempty"`
	Thumbnail string        `json:"thumbnail,omitempty"` // raw JPEG from the phone; never served
	Beats     string        `json:"beats,omitempty"`     // the Pulse beat manifest (JSON)
}

// CaptionFile is one staged captions file: WebVTT in a language.
type CaptionFile struct {
	Key   string `json:"key"`
	Lang  string `json:"lang"`            // BCP 47, "und" when unknown
	Label string `json:"label,omitempty"` // what a player's menu shows
}

// Subtitle is a served subtitles track (WebVTT under hls/subs/).
type Subtitle struct {
	Lang     string `json:"lang"`
	Label    string `json:"label"`
	Playlist string `json:"playlist"` // key of its WebVTT media playlist
	File     string `json:"file"`     // key of its WebVTT file
}

// Chapter is a span of the video named for a player (one Pulse beat).
type Chapter struct {
	Start float64 `json:"start"` // seconds
	End   float64 `json:"end"`
	Title string  `json:"title"`
}

// Ignored is a companion transcode did not use, and why (not PHI: a
// machine code and a short reason about the file's shape).
type Ignored struct {
	Companion string `json:"companion"` // "captions:<lang>", "thumbnail" or "beats"
	Reason    string `json:"reason"`
}

// PosterFromThumbnail is PosterSource when poster.jpg and thumb.jpg were
// made from the uploaded thumbnail (not grabbed from a frame).
const PosterFromThumbnail = "thumbnail"

// IsIgnored reports whether companion was ignored.
func (v *Video) IsIgnored(companion string) bool {
	for _, i := range v.Ignored {
		if i.Companion == companion {
			return true
		}
	}
	return false
}

// Ignore records that companion was ignored for reason, once.
func (v *Video) Ignore(companion, reason string) {
	if !v.IsIgnored(companion) {
		v.Ignored = append(v.Ignored, Ignored{Companion: companion, Reason: reason})
	}
}

// RejectedUpload is all that is kept of an upload that was rejected:
// its size and hashes, never its file name or other client metadata
// (minimal retention: the video will never exist).
type RejectedUpload struct {
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256,omitempty"` // hex; empty when the upload was too big to read
}

// Original is the locked source file.
type Original struct {
	Key         string    `json:"key"` // videos/<id>/original.<ext>
	Size        int64     `json:"size"`
	ContentType string    `json:"content_type"`
	RetainUntil time.Time `json:"retain_until"`
	// VersionID and SHA256 pin the locked version finalize wrote: readers
	// ask for that version, never "latest", so a later PutObject over the
	// key (a new, unlocked version) is never read in its place. Empty in
	// meta.json written before pinning (and on a store without versions).
	VersionID string `json:"version_id,omitempty"`
	SHA256    string `json:"sha256,omitempty"` // hex, of the locked version's bytes
}

// Probe is what ffprobe found in the original.
type Probe struct {
	Duration   float64 `json:"duration"` // seconds
	Width      int     `json:"width"`    // as displayed (rotation applied)
	Height     int     `json:"height"`
	Rotation   int     `json:"rotation"` // degrees
	FPS        float64 `json:"fps"`
	VideoCodec string  `json:"video_codec"`
	AudioCodec string  `json:"audio_codec,omitempty"`
	// AudioChannels is the first audio stream's channel count (0: unknown,
	// as in meta.json written before it was recorded).
	AudioChannels int    `json:"audio_channels,omitempty"`
	HasAudio      bool   `json:"has_audio"`
	Bitrate       int64  `json:"bitrate,omitempty"`
	Format        string `json:"format"`
}

// Rendition states.
const (
	RenditionPlanned = "planned"
	RenditionRunning = "running"
	RenditionReady   = "ready"
	RenditionFailed  = "failed"
)

// Rendition is one rung of the ladder (or the audio rendition).
type Rendition struct {
	Name        string  `json:"name"` // "240p", ..., "1080p", "audio"
	Kind        string  `json:"kind"` // "video" or "audio"
	Width       int     `json:"width,omitempty"`
	Height      int     `json:"height,omitempty"`
	Bitrate     int     `json:"bitrate"` // target, bits/s
	State       string  `json:"state"`
	Progress    float64 `json:"progress"`            // 0–100 while running
	Playlist    string  `json:"playlist,omitempty"`  // key of the media playlist, when ready
	Codecs      string  `json:"codecs,omitempty"`    // RFC 6381, from the init segment
	Bandwidth   int     `json:"bandwidth,omitempty"` // measured peak, bits/s
	Average     int     `json:"average,omitempty"`   // measured average, bits/s
	FrameRate   float64 `json:"frame_rate,omitempty"`
	Channels    int     `json:"channels,omitempty"`     // audio, from the init segment
	Error       string  `json:"error,omitempty"`        // machine code when failed
	ErrorDetail string  `json:"error_detail,omitempty"` // sanitized ffmpeg stderr tail (no URLs, no PHI)
	Group       string  `json:"group,omitempty"`        // grouped fan-out: the rendition whose job encodes this one
	// Listed is set once the master playlist and the MPD in the store list
	// this (ready) rendition; the video's status counts listed renditions only.
	Listed bool `json:"listed,omitempty"`
}

// ErrNotFound means the video has no meta.json.
var ErrNotFound = errors.New("meta: no such video")

// ErrUndecodable means a meta.json was read but is not one (not a JSON
// object, or over MaxSize): reading it again will not help.
var ErrUndecodable = errors.New("meta.json does not decode")

// Store reads and writes meta.json in the media bucket. meta.json is the
// video's mutable state, and it decides who may watch: in the versioned
// (Object Lock) media bucket every write is a new version, and with Retain
// each version is written under COMPLIANCE retention, so its history can
// be read but not rewritten or deleted. Concurrent writers never lose each
// other's changes: updates are conditional PUTs (If-Match on the ETag
// read), retried on conflict.
type Store struct {
	st       Objects
	bucket   string
	onChange func(context.Context, *Video)
	days     int // COMPLIANCE retention of each version written; 0: none
}

// Objects is what a Store needs of the object store: a read that returns
// the ETag, and conditional writes (IfNoneMatch, IfMatch) that fail with
// storage.ErrPreconditionFailed. *storage.Store has it; unit tests use the
// in-memory shared/testutil/fakestore.
type Objects interface {
	Get(ctx context.Context, bucket, key string, offset, length int64) (io.ReadCloser, storage.Info, error)
	PutBytes(ctx context.Context, bucket, key string, b []byte, o storage.PutOptions) (storage.Info, error)
}

// NewStore returns a Store over bucket.
func NewStore(st Objects, bucket string) *Store { return &Store{st: st, bucket: bucket} }

// Retain makes every version the Store writes carry COMPLIANCE retention
// of days (MEDIA_RETENTION_DAYS): every writer of a locked media bucket
// sets it. Object Lock retention is per version, so this is what keeps
// old versions of meta.json from being deleted.
func (s *Store) Retain(days int) *Store {
	s.days = days
	return s
}

// putOptions are a write's options, with the Store's retention.
func (s *Store) putOptions(o storage.PutOptions) storage.PutOptions {
	o.ContentType = "application/json"
	if s.days > 0 {
		r := storage.Compliance(s.days)
		o.Retention = &r
	}
	return o
}

// OnStatus registers fn to run after a write that creates a video or changes
// its status (e.g. to push live status events). It must not block for long.
func (s *Store) OnStatus(fn func(context.Context, *Video)) *Store {
	s.onChange = fn
	return s
}

func (s *Store) changed(ctx context.Context, v *Video) {
	if s.onChange != nil {
		s.onChange(ctx, v)
	}
}

// Get returns the video and the ETag of the version read.
func (s *Store) Get(ctx context.Context, id string) (*Video, string, error) {
	rc, info, err := s.st.Get(ctx, s.bucket, topology.MetaKey(id), 0, -1)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, "", ErrNotFound
	}
	if err != nil {
		return nil, "", err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, MaxSize+1))
	if err != nil {
		return nil, "", err
	}
	v, err := Decode(b)
	if err != nil {
		return nil, "", fmt.Errorf("meta: %s: %w: %w", topology.MetaKey(id), ErrUndecodable, err)
	}
	return v, info.ETag, nil
}

// MaxSize bounds a meta.json read from the store (ours are a few KiB): a
// corrupt or hostile object cannot make a reader hold an unbounded body.
const MaxSize = 1 << 20

// Decode parses one meta.json document. Unknown fields are ignored, so a
// reader survives a newer writer; anything but one JSON object is an error.
func Decode(b []byte) (*Video, error) {
	if len(b) > MaxSize {
		return nil, fmt.Errorf("meta.json larger than %d bytes", MaxSize)
	}
	if t := bytes.TrimSpace(b); len(t) == 0 || t[0] != '{' {
		return nil, errors.New("meta.json is not a JSON object")
	}
	var v Video
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// Create writes v if the video has no meta.json yet. It returns
// storage.ErrPreconditionFailed (wrapped) when one exists.
func (s *Store) Create(ctx context.Context, v *Video) error {
	v.Schema = SchemaVersion
	now := time.Now().UTC()
	if v.Created.IsZero() {
		v.Created = now
	}
	v.Updated = now
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if _, err = s.st.PutBytes(ctx, s.bucket, topology.MetaKey(v.ID), b, s.putOptions(storage.PutOptions{IfNoneMatch: true})); err != nil {
		return err
	}
	s.changed(ctx, v)
	return nil
}

// Update applies fn to the current meta.json and writes it back only if
// nobody wrote in between, retrying (re-reading, re-applying fn) on conflict.
// fn must be a pure function of the video it is given.
func (s *Store) Update(ctx context.Context, id string, fn func(*Video) error) (*Video, error) {
	for attempt := 0; ; attempt++ {
		v, etag, err := s.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		before := v.Status
		if err := fn(v); err != nil {
			return nil, err
		}
		v.Updated = time.Now().UTC()
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return nil, err
		}
		_, err = s.st.PutBytes(ctx, s.bucket, topology.MetaKey(id), b, s.putOptions(storage.PutOptions{IfMatch: etag}))
		if err == nil {
			if v.Status != before {
				s.changed(ctx, v)
			}
			return v, nil
		}
		if !errors.Is(err, storage.ErrPreconditionFailed) || attempt >= 50 {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Duration(attempt+1) * 10 * time.Millisecond):
		}
	}
}
