package topology

import "regexp"

// A Pulse upload's companions, staged beside the video once it is
// finalized, and what transcode derives from them:
//
//	videos/<id>/captions/<lang>.vtt     captions as uploaded, already WebVTT (SRT converted at upload)
//	videos/<id>/thumbnail.jpg           the phone's thumbnail, raw (may carry EXIF/GPS: never served)
//	videos/<id>/beats.json              the Pulse beat manifest (kind "project")
//	videos/<id>/hls/subs/<lang>.vtt     the captions as served: one WebVTT segment
//	videos/<id>/hls/subs/<lang>.m3u8    its WebVTT media playlist
//	videos/<id>/web.mp4                 a faststart H.264/AAC MP4 without the original's metadata
//
// Served files live under hls/ so the playback token's prefix grants them;
// the raw companions do not, and mediaserve never serves them.
const (
	CaptionsDir   = "captions/"
	ThumbnailFile = "thumbnail.jpg"
	BeatsFile     = "beats.json"
	SubtitlesDir  = HLSDir + "subs/"
	WebMP4File    = "web.mp4"
)

// UndeterminedLang is the captions language when the client named none
// (BCP 47 "und").
const UndeterminedLang = "und"

// langRe accepts the BCP 47 tags a key may hold: a 2–3 letter language and
// optional alphanumeric subtags (en, pt-BR, zh-Hant-TW). Nothing else goes
// into a key, so a hostile language value cannot shape one.
var langRe = regexp.MustCompile(`^[a-z]{2,3}(-[A-Za-z0-9]{1,8}){0,3}$`)

// ValidLang reports whether lang may appear in a companion key.
func ValidLang(lang string) bool { return lang == UndeterminedLang || langRe.MatchString(lang) }

// CaptionsKey is the key of video id's staged captions in lang, and false
// when lang is not a valid tag (use UndeterminedLang).
func CaptionsKey(id, lang string) (string, bool) {
	if !ValidLang(lang) {
		return "", false
	}
	return VideoKey(id, CaptionsDir+lang+".vtt"), true
}

// ThumbnailKey is the key of video id's staged (raw) thumbnail.
func ThumbnailKey(id string) string { return VideoKey(id, ThumbnailFile) }

// BeatsKey is the key of video id's staged beat manifest.
func BeatsKey(id string) string { return VideoKey(id, BeatsFile) }

// WebMP4Key is the key of the web MP4 transcode makes of every video (a
// copy of the original without its container metadata).
func WebMP4Key(id string) string { return VideoKey(id, WebMP4File) }

// SubtitlesFile is the served WebVTT of lang, relative to videos/<id>/.
func SubtitlesFile(lang string) string { return SubtitlesDir + lang + ".vtt" }

// SubtitlesPlaylistFile is the WebVTT media playlist of lang, relative to
// videos/<id>/.
func SubtitlesPlaylistFile(lang string) string { return SubtitlesDir + lang + ".m3u8" }
