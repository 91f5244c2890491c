// Package companion is the one call the upload path makes to check a Pulse
// upload's companion (PROTOCOL.md kinds captions, thumbnail, project)
// before it keeps it: what to stage, or an error whose text the phone can
// show. The checks are the ones transcode runs again before it serves
// anything (shared/media/captions, thumbnail, beats).
package companion

import (
	"fmt"

	"github.com/mieweb/pulsevault/shared/media/beats"
	"github.com/mieweb/pulsevault/shared/media/captions"
	"github.com/mieweb/pulsevault/shared/media/thumbnail"
)

// Companion kinds, as the protocol's Upload-Metadata names them.
const (
	KindCaptions  = "captions"
	KindThumbnail = "thumbnail"
	KindProject   = "project" // the beat manifest
)

// MaxSize is the largest companion of kind accepted (0: not a companion
// kind), so an upload can be refused before its bytes are read.
func MaxSize(kind string) int64 {
	switch kind {
	case KindCaptions:
		return captions.MaxSize
	case KindThumbnail:
		return thumbnail.MaxSize
	case KindProject:
		return beats.MaxSize
	}
	return 0
}

// Error is a companion refused; Error() is a sentence for the uploader.
type Error struct {
	Kind string
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Stage checks a companion of kind and returns the bytes to stage and
// their content type: captions as canonical WebVTT (SRT converted), the
// thumbnail and the beat manifest as uploaded (the thumbnail keeps its
// EXIF until transcode re-encodes it; it is never served). Errors are
// *Error.
func Stage(kind string, b []byte) ([]byte, string, error) {
	switch kind {
	case KindCaptions:
		vtt, err := captions.Normalize(b)
		if err != nil {
			return nil, "", &Error{kind, err}
		}
		return vtt, "text/vtt", nil
	case KindThumbnail:
		if _, err := thumbnail.Check(b); err != nil {
			return nil, "", &Error{kind, err}
		}
		return b, "image/jpeg", nil
	case KindProject:
		if _, err := beats.Check(b); err != nil {
			return nil, "", &Error{kind, err}
		}
		return b, "application/json", nil
	}
	return nil, "", &Error{kind, fmt.Errorf("companion: kind %q is not captions, thumbnail or project", kind)}
}
