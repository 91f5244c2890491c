// Package videoid derives a video's id from its tus upload, so that
// finalizing the same upload twice (a redelivered event, the reconciler, a
// crash and restart) always lands on the same video, and so that the
// uploader can print the id as soon as its upload is complete.
package videoid

import (
	"strings"

	"github.com/google/uuid"

	"github.com/mieweb/pulsevault/shared/topology"
)

// Namespace is the UUIDv5 namespace of video ids. Changing it would give
// every future upload a different id than the code that finalized earlier
// uploads: never change it.
var Namespace = uuid.MustParse("6f1d7c52-4a4e-5c39-9a57-2b1f0c3e8d10")

// FromUpload returns the video id of an upload. upload is the staged
// object's key (tusd's object id) or the full tus upload id
// ("<object id>+<multipart id>", the last segment of the upload URL); both
// give the same id. A Pulse video (staged as topology.PulseVideoObject)
// keeps the artifact id its pairing minted: the protocol's artifact id is
// the video id.
func FromUpload(upload string) string {
	obj := ObjectID(upload)
	if anchor, companion, ok := topology.ParsePulseObject(obj); ok && companion == "" {
		return anchor
	}
	return uuid.NewSHA1(Namespace, []byte(obj)).String()
}

// ObjectID strips the multipart part of a tus upload id: what remains is
// the staged object's key.
func ObjectID(upload string) string {
	if i := strings.LastIndexByte(upload, '+'); i >= 0 {
		return upload[:i]
	}
	return upload
}
