// Package ladder plans and describes the renditions of a video: the ladder,
// and the transcode jobs that produce it.
package ladder

import (
	"github.com/mieweb/pulsevault/shared/media/meta"
)

// Rung is one step of the video ladder, named by its short side so that
// portrait phone video and landscape video share one ladder.
type Rung struct {
	Name      string
	ShortSide int
	Bitrate   int // target video bits/s (H.264)
}

// Ladder is the full set of video rungs, lowest first.
var Ladder = []Rung{
	{"240p", 240, 400_000},
	{"360p", 360, 800_000},
	{"480p", 480, 1_400_000},
	{"720p", 720, 2_800_000},
	{"1080p", 1080, 5_000_000},
}

// AudioBitrate is the AAC bitrate of the audio rendition.
const AudioBitrate = 128_000

// Plan returns the renditions for a probed source: every rung up to the
// source's short side (never an upscale; a source smaller than the lowest
// rung gets one rendition at its own size), each with even dimensions in
// the source's displayed aspect ratio, plus an audio rendition when the
// source has audio. All are in state planned.
func Plan(p meta.Probe) []meta.Rendition {
	w, h := p.Width, p.Height // displayed: rotation already applied
	if w <= 0 || h <= 0 {
		return nil
	}
	short := min(w, h)
	var out []meta.Rendition
	for _, r := range Ladder {
		if r.ShortSide > short {
			break
		}
		out = append(out, videoRendition(r.Name, r.Bitrate, w, h, r.ShortSide))
	}
	if len(out) == 0 {
		out = append(out, videoRendition(Ladder[0].Name, Ladder[0].Bitrate, w, h, short))
	}
	if p.HasAudio {
		out = append(out, meta.Rendition{Name: "audio", Kind: "audio", Bitrate: AudioBitrate, State: meta.RenditionPlanned})
	}
	return out
}

func videoRendition(name string, bitrate, w, h, short int) meta.Rendition {
	var rw, rh int
	if w <= h { // portrait or square: the width is the short side
		rw, rh = short, h*short/w
	} else {
		rw, rh = w*short/h, short
	}
	return meta.Rendition{Name: name, Kind: "video", Width: even(rw), Height: even(rh), Bitrate: bitrate, State: meta.RenditionPlanned}
}

func even(n int) int { return max(2, n-n%2) }

// Job asks the transcode function for one rendition of one video.
type Job struct {
	Video     string `json:"video"`
	Rendition string `json:"rendition"`
}

// MsgID is the JetStream dedup id: republishing the same job is a no-op.
func (j Job) MsgID() string { return j.Video + "/" + j.Rendition }
