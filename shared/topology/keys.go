package topology

import (
	"fmt"
	"strings"
)

// The media bucket: everything of a video lives under videos/<id>/.
//
//	videos/<id>/original.<ext>          the uploaded file, locked
//	videos/<id>/meta.json               the source of truth for its status
//	videos/<id>/poster.jpg, thumb.jpg   stills
//	videos/<id>/hls/master.m3u8         HLS master playlist
//	videos/<id>/dash/manifest.mpd       DASH MPD (segments referenced from hls/)
//	videos/<id>/hls/<rendition>/        init.mp4, seg_<n>.m4s, index.m3u8, segments.json, error.txt
const (
	VideosPrefix = "videos/"
	MetaFile     = "meta.json"
	HLSDir       = "hls/"
	DASHDir      = "dash/"
	MasterFile   = HLSDir + "master.m3u8"
	MPDFile      = DASHDir + "manifest.mpd"
	PosterFile   = "poster.jpg"
	ThumbFile    = "thumb.jpg"

	// In hls/<rendition>/.
	InitFile     = "init.mp4"
	PlaylistFile = "index.m3u8"
	TimelineFile = "segments.json"
	ErrorFile    = "error.txt" // sanitized stderr tail of the final failure

	// SegmentPattern is the segments' file name for ffmpeg (%d: the number
	// from 0) and SegmentTemplate the same for a DASH SegmentTemplate.
	SegmentPattern  = "seg_%d.m4s"
	SegmentTemplate = "seg_$Number$.m4s"
)

// VideoPrefix is the prefix of every object of video id: videos/<id>/.
func VideoPrefix(id string) string { return VideosPrefix + id + "/" }

// VideoKey is the key of file (MasterFile, PosterFile, ...) of video id.
func VideoKey(id, file string) string { return VideoPrefix(id) + file }

// MetaKey is the key of video id's meta.json.
func MetaKey(id string) string { return VideoKey(id, MetaFile) }

// OriginalKey is the key of video id's original, with its extension.
func OriginalKey(id, ext string) string { return VideoKey(id, "original."+ext) }

// RenditionKey is the key of file in a rendition's directory.
func RenditionKey(id, rendition, file string) string {
	return VideoKey(id, HLSDir+rendition+"/"+file)
}

// SegmentFile is the name of segment n in a rendition's directory.
func SegmentFile(n int) string { return fmt.Sprintf(SegmentPattern, n) }

// MetaVideoID returns the video id of a meta.json key, and whether key is
// one (videos/<id>/meta.json, id without a slash).
func MetaVideoID(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, VideosPrefix)
	if !ok {
		return "", false
	}
	id, ok := strings.CutSuffix(rest, "/"+MetaFile)
	if !ok || strings.Contains(id, "/") {
		return "", false
	}
	return id, true
}

// CanaryKey is the object bootstrap's WORM canary locks in each locked bucket.
const CanaryKey = "_canary/worm"

// The uploads bucket: tusd's s3store keeps an upload <id> as the object
// <id> once complete, and beside it <id>.info (its metadata) and <id>.part
// (a trailing part smaller than S3's minimum).
const (
	InfoSuffix = ".info"
	PartSuffix = ".part"
)

// InfoKey is the key of upload id's tus metadata.
func InfoKey(id string) string { return id + InfoSuffix }

// PartKey is the key of upload id's incomplete trailing part.
func PartKey(id string) string { return id + PartSuffix }

// Pulse capture protocol (shared/pulse). A Pulse upload is staged in the
// uploads bucket under an object id of its own shape instead of tusd's
// random one, so that everything downstream knows its artifact id without
// reading the .info:
//
//	pulse-<anchor>               the video of pairing <anchor> (its video id IS <anchor>)
//	pulse-<anchor>_<artifact>    a companion (captions, beat manifest, thumbnail) of that video
//	pulse-claims/<artifact>      marks an artifact id as used: a second create is 409
//
// Companions always arrive before their video; upload-finalize leaves them
// staged and attaches them beside the video when it finalizes:
//
//	videos/<id>/captions/<lang>.vtt   captions (lang "und" when unknown)
//	videos/<id>/thumbnail.jpg         the app's thumbnail (the poster is made from it)
//	videos/<id>/beats.json            the beat manifest (chapters)
//
// and meta.json's "companions" names them. transcode may add a web-ready
// MP4 (meta "web_mp4") that GET /pulsevault/artifacts/<id> serves.
//
// (The companion keys are in companions.go.)
const (
	PulseStagePrefix = "pulse-"
	PulseClaimPrefix = "pulse-claims/"
)

// PulseVideoObject is the staged object id of pairing anchor's video.
func PulseVideoObject(anchor string) string { return PulseStagePrefix + anchor }

// PulseCompanionPrefix starts the staged object ids of anchor's companions.
func PulseCompanionPrefix(anchor string) string { return PulseStagePrefix + anchor + "_" }

// PulseCompanionObject is the staged object id of companion artifact of anchor.
func PulseCompanionObject(anchor, artifact string) string {
	return PulseCompanionPrefix(anchor) + artifact
}

// ParsePulseObject splits a staged object id of the Pulse shapes: anchor,
// and the companion's artifact id ("" for the video). ok is false for any
// other key (tusd's random ids, .info and .part keys). Ids are checked to
// be 36 characters of a UUID's alphabet, not parsed: callers that mint
// them use canonical UUIDs.
func ParsePulseObject(obj string) (anchor, companion string, ok bool) {
	rest, ok := strings.CutPrefix(obj, PulseStagePrefix)
	if !ok {
		return "", "", false
	}
	anchor, companion, _ = strings.Cut(rest, "_")
	if !uuidShape(anchor) || (companion != "" || strings.HasSuffix(rest, "_")) && !uuidShape(companion) {
		return "", "", false
	}
	return anchor, companion, true
}

func uuidShape(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if c != '-' {
				return false
			}
		} else if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// PulseClaimKey is the uploads-bucket key that marks artifact as used.
func PulseClaimKey(artifact string) string { return PulseClaimPrefix + artifact }
