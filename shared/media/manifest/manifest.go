// Package manifest writes a video's HLS master playlist and DASH MPD from
// the renditions that are ready, and reads what those manifests must state
// (codecs, timescale, segment timing) from the fMP4 files themselves, so
// the manifests describe the bytes players will get rather than targets.
package manifest

import (
	"encoding/xml"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/topology"
)

// Timeline is one rendition's segments, in its track's timescale. It is kept
// beside the segments (hls/<rendition>/segments.json) because the MPD's
// SegmentTimeline needs exact values that the media playlist rounds.
type Timeline struct {
	Timescale uint32    `json:"timescale"`
	Channels  int       `json:"channels,omitempty"`
	Rate      int       `json:"rate,omitempty"`
	Segments  []Segment `json:"segments"`
}

// Seconds is the timeline's total duration.
func (t Timeline) Seconds() float64 {
	if t.Timescale == 0 {
		return 0
	}
	var d uint64
	for _, s := range t.Segments {
		d += s.Duration
	}
	return float64(d) / float64(t.Timescale)
}

// Bandwidth is the measured peak segment bit rate and the average bit rate,
// in bits/s, as HLS BANDWIDTH and AVERAGE-BANDWIDTH define them.
func (t Timeline) Bandwidth() (peak, average int) {
	var bytes int64
	for _, s := range t.Segments {
		if s.Duration == 0 {
			continue
		}
		secs := float64(s.Duration) / float64(t.Timescale)
		peak = max(peak, int(math.Ceil(float64(s.Size*8)/secs)))
		bytes += s.Size
	}
	if total := t.Seconds(); total > 0 {
		average = int(math.Ceil(float64(bytes*8) / total))
	}
	return peak, average
}

// Validate checks a timeline read back from the store.
func (t Timeline) Validate() error {
	if t.Timescale == 0 || len(t.Segments) == 0 {
		return errors.New("manifest: empty timeline")
	}
	return nil
}

// Playable reports which renditions the manifests list: every ready video
// rendition, and the audio rendition when it is ready. ok is false until a
// video rendition is ready and the audio rendition (if planned) has
// settled (ready or failed), so a player never starts a silent variant of
// a video whose sound is still being made.
func Playable(v *meta.Video) (video []meta.Rendition, audio *meta.Rendition, ok bool) {
	settled := true
	for i, r := range v.Renditions {
		switch {
		case r.Kind == "audio" && r.State == meta.RenditionReady:
			audio = &v.Renditions[i]
		case r.Kind == "audio" && r.State != meta.RenditionFailed:
			settled = false
		case r.Kind == "video" && r.State == meta.RenditionReady:
			video = append(video, r)
		}
	}
	return video, audio, len(video) > 0 && settled
}

// audioGroup is the HLS audio group id and the DASH audio representation id.
const audioGroup = "audio"

// HLSMaster returns the master playlist over the given renditions and
// subtitle tracks. URIs are relative (<rendition>/index.m3u8,
// subs/<lang>.m3u8) so a token in the path reaches them. BANDWIDTH and
// AVERAGE-BANDWIDTH add the audio rendition's, since a player fetches both.
func HLSMaster(video []meta.Rendition, audio *meta.Rendition, subs []meta.Subtitle) []byte {
	var b strings.Builder
	b.WriteString("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n")
	if audio != nil {
		ch := audio.Channels
		if ch == 0 {
			ch = 2 // recorded before channels were: every such rendition is stereo
		}
		fmt.Fprintf(&b, "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=%q,NAME=\"default\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"%d\",URI=\"%s/"+topology.PlaylistFile+"\"\n",
			audioGroup, ch, audio.Name)
	}
	for _, s := range subtitleTracks(subs) {
		fmt.Fprintf(&b, "#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=%q,NAME=\"%s\",", SubtitlesGroup, s.name)
		if s.Lang != topology.UndeterminedLang {
			fmt.Fprintf(&b, "LANGUAGE=\"%s\",", s.Lang)
		}
		fmt.Fprintf(&b, "DEFAULT=NO,AUTOSELECT=YES,FORCED=NO,URI=\"%s\"\n", strings.TrimPrefix(topology.SubtitlesPlaylistFile(s.Lang), topology.HLSDir))
	}
	withSubs := len(subtitleTracks(subs)) > 0
	for _, r := range video {
		bw, avg, codecs := r.Bandwidth, r.Average, r.Codecs
		if audio != nil {
			bw += audio.Bandwidth
			avg += audio.Average
			codecs += "," + audio.Codecs
		}
		fmt.Fprintf(&b, "#EXT-X-STREAM-INF:BANDWIDTH=%d,AVERAGE-BANDWIDTH=%d,CODECS=%q,RESOLUTION=%dx%d,FRAME-RATE=%.3f",
			bw, avg, codecs, r.Width, r.Height, r.FrameRate)
		if audio != nil {
			fmt.Fprintf(&b, ",AUDIO=%q", audioGroup)
		}
		if withSubs {
			fmt.Fprintf(&b, ",SUBTITLES=%q", SubtitlesGroup)
		}
		fmt.Fprintf(&b, "\n%s/%s\n", r.Name, topology.PlaylistFile)
	}
	return []byte(b.String())
}

// SubtitlesGroup is the HLS GROUP-ID of the subtitle tracks.
const SubtitlesGroup = "subs"

// maxLabel bounds a subtitle track's name (runes).
const maxLabel = 64

type subtitleTrack struct {
	meta.Subtitle
	name string // safe inside a quoted-string and an XML text node, unique
}

// subtitleTracks keeps the tracks whose language may name a file, once per
// language, with a name safe in a playlist: HLS quoted-strings cannot hold
// '"' or a line break, and NAME must be unique in the group.
func subtitleTracks(subs []meta.Subtitle) []subtitleTrack {
	var out []subtitleTrack
	seenLang, seenName := map[string]bool{}, map[string]bool{}
	for _, s := range subs {
		if !topology.ValidLang(s.Lang) || seenLang[s.Lang] {
			continue
		}
		seenLang[s.Lang] = true
		name := Label(s.Label, s.Lang)
		if seenName[name] {
			name = Label(name+" ("+s.Lang+")", s.Lang)
		}
		seenName[name] = true
		out = append(out, subtitleTrack{Subtitle: s, name: name})
	}
	return out
}

// Label is what a player's menu shows for a subtitle track: label without
// quotes, control characters or line breaks, at most 64 runes; the
// language tag, or "Captions" for "und" (or a tag that is not one), when
// nothing is left.
func Label(label, lang string) string {
	var b strings.Builder
	n := 0
	for _, r := range strings.TrimSpace(label) {
		if r == '"' || r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 || r == 0x2028 || r == 0x2029 || r == utf8.RuneError {
			continue
		}
		if n++; n > maxLabel {
			break
		}
		b.WriteRune(r)
	}
	if s := strings.TrimSpace(b.String()); s != "" {
		return s
	}
	if lang == topology.UndeterminedLang || !topology.ValidLang(lang) {
		return "Captions"
	}
	return lang
}

// SubtitlesPlaylist is the WebVTT media playlist of one track: the whole
// file as one segment lasting the video (seconds). Cue times are the
// video's presentation times from its start, and the renditions' fMP4
// timelines start at 0, so no X-TIMESTAMP-MAP is needed (RFC 8216 3.5:
// without one, cue time 0 maps to media time 0).
func SubtitlesPlaylist(lang string, seconds float64) []byte {
	seconds = max(seconds, 0.001)
	return []byte(fmt.Sprintf("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:%d\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXTINF:%.3f,\n%s.vtt\n#EXT-X-ENDLIST\n",
		int(math.Ceil(seconds)), seconds, lang))
}

// Rep is a ready rendition with its timeline, for the MPD.
type Rep struct {
	meta.Rendition
	Timeline Timeline
}

// DASHMPD returns a static MPD with one video, (when there is audio) one
// audio and one text adaptation set per subtitle track (the WebVTT file as
// a sidecar, text/vtt). It references the HLS segments through relative
// paths (../hls/<rendition>/...) from dash/manifest.mpd, so both formats
// share one copy of the media.
func DASHMPD(video []Rep, audio *Rep, subs []meta.Subtitle) ([]byte, error) {
	if len(video) == 0 {
		return nil, errors.New("manifest: MPD needs a video rendition")
	}
	var dur float64
	for _, r := range append(append([]Rep(nil), video...), optional(audio)...) {
		if err := r.Timeline.Validate(); err != nil {
			return nil, fmt.Errorf("manifest: rendition %s: %w", r.Name, err)
		}
		dur = max(dur, r.Timeline.Seconds())
	}
	m := mpd{
		XMLNS: "urn:mpeg:dash:schema:mpd:2011", Profiles: "urn:mpeg:dash:profile:isoff-live:2011",
		Type: "static", MinBufferTime: "PT2S", Duration: isoDuration(dur),
	}
	m.Period.ID = "0"
	vset := adaptationSet{ID: 0, ContentType: "video", MimeType: "video/mp4", SegmentAlignment: true, StartWithSAP: 1}
	for _, r := range video {
		vset.MaxWidth, vset.MaxHeight = max(vset.MaxWidth, r.Width), max(vset.MaxHeight, r.Height)
		vset.Reps = append(vset.Reps, representation{
			ID: r.Name, Bandwidth: r.Bandwidth, Codecs: r.Codecs, Width: r.Width, Height: r.Height,
			FrameRate: frameRate(r.FrameRate), SAR: "1:1", Template: template(r),
		})
	}
	m.Period.Sets = append(m.Period.Sets, vset)
	if audio != nil {
		ch := audio.Timeline.Channels
		if ch == 0 {
			ch = 2
		}
		m.Period.Sets = append(m.Period.Sets, adaptationSet{
			ID: 1, ContentType: "audio", MimeType: "audio/mp4", Lang: "und", SegmentAlignment: true, StartWithSAP: 1,
			Reps: []representation{{
				ID: audio.Name, Bandwidth: audio.Bandwidth, Codecs: audio.Codecs, SampleRate: audio.Timeline.Rate,
				Channels: &channelConfig{Scheme: "urn:mpeg:dash:23003:3:audio_channel_configuration:2011", Value: strconv.Itoa(ch)},
				Template: template(*audio),
			}},
		})
	}
	for i, st := range subtitleTracks(subs) {
		m.Period.Sets = append(m.Period.Sets, adaptationSet{
			ID: 2 + i, ContentType: "text", MimeType: "text/vtt", Lang: st.Lang,
			Role:  &roleDescriptor{Scheme: "urn:mpeg:dash:role:2011", Value: "subtitle"},
			Label: st.name,
			Reps: []representation{{
				ID: "subs-" + st.Lang, Bandwidth: 256,
				BaseURL: "../" + topology.SubtitlesFile(st.Lang),
			}},
		})
	}
	out, err := xml.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	return append([]byte(xml.Header), append(out, '\n')...), nil
}

func optional(r *Rep) []Rep {
	if r == nil {
		return nil
	}
	return []Rep{*r}
}

func template(r Rep) *segmentTemplate {
	t := &segmentTemplate{
		Timescale: r.Timeline.Timescale, StartNumber: 0,
		Init:  "../" + topology.HLSDir + r.Name + "/" + topology.InitFile,
		Media: "../" + topology.HLSDir + r.Name + "/" + topology.SegmentTemplate,
	}
	for i, s := range r.Timeline.Segments {
		if n := len(t.Timeline.S); n > 0 && t.Timeline.S[n-1].D == s.Duration &&
			s.Start == r.Timeline.Segments[i-1].Start+r.Timeline.Segments[i-1].Duration {
			t.Timeline.S[n-1].R++
			continue
		}
		t.Timeline.S = append(t.Timeline.S, timelineS{T: ptr(s.Start), D: s.Duration})
	}
	return t
}

func ptr[T any](v T) *T { return &v }

// frameRate renders a rate as DASH's FrameRateType: "30" or "30000/1001".
func frameRate(f float64) string {
	if f <= 0 {
		return ""
	}
	if math.Abs(f-math.Round(f)) < 0.001 {
		return strconv.Itoa(int(math.Round(f)))
	}
	return fmt.Sprintf("%d/1000", int(math.Round(f*1000)))
}

func isoDuration(s float64) string { return fmt.Sprintf("PT%.3fS", s) }

type mpd struct {
	XMLName       xml.Name `xml:"MPD"`
	XMLNS         string   `xml:"xmlns,attr"`
	Profiles      string   `xml:"profiles,attr"`
	Type          string   `xml:"type,attr"`
	MinBufferTime string   `xml:"minBufferTime,attr"`
	Duration      string   `xml:"mediaPresentationDuration,attr"`
	Period        struct {
		ID   string          `xml:"id,attr"`
		Sets []adaptationSet `xml:"AdaptationSet"`
	} `xml:"Period"`
}

type adaptationSet struct {
	ID               int              `xml:"id,attr"`
	ContentType      string           `xml:"contentType,attr"`
	MimeType         string           `xml:"mimeType,attr"`
	Lang             string           `xml:"lang,attr,omitempty"`
	SegmentAlignment bool             `xml:"segmentAlignment,attr,omitempty"`
	StartWithSAP     int              `xml:"startWithSAP,attr,omitempty"`
	MaxWidth         int              `xml:"maxWidth,attr,omitempty"`
	MaxHeight        int              `xml:"maxHeight,attr,omitempty"`
	Role             *roleDescriptor  `xml:"Role"`
	Label            string           `xml:"Label,omitempty"`
	Reps             []representation `xml:"Representation"`
}

type representation struct {
	ID         string           `xml:"id,attr"`
	Bandwidth  int              `xml:"bandwidth,attr"`
	Codecs     string           `xml:"codecs,attr,omitempty"`
	Width      int              `xml:"width,attr,omitempty"`
	Height     int              `xml:"height,attr,omitempty"`
	FrameRate  string           `xml:"frameRate,attr,omitempty"`
	SAR        string           `xml:"sar,attr,omitempty"`
	SampleRate int              `xml:"audioSamplingRate,attr,omitempty"`
	Channels   *channelConfig   `xml:"AudioChannelConfiguration"`
	BaseURL    string           `xml:"BaseURL,omitempty"`
	Template   *segmentTemplate `xml:"SegmentTemplate"`
}

type roleDescriptor struct {
	Scheme string `xml:"schemeIdUri,attr"`
	Value  string `xml:"value,attr"`
}

type channelConfig struct {
	Scheme string `xml:"schemeIdUri,attr"`
	Value  string `xml:"value,attr"`
}

type segmentTemplate struct {
	Timescale   uint32 `xml:"timescale,attr"`
	Init        string `xml:"initialization,attr"`
	Media       string `xml:"media,attr"`
	StartNumber int    `xml:"startNumber,attr"`
	Timeline    struct {
		S []timelineS `xml:"S"`
	} `xml:"SegmentTimeline"`
}

type timelineS struct {
	T *uint64 `xml:"t,attr,omitempty"`
	D uint64  `xml:"d,attr"`
	R int     `xml:"r,attr,omitempty"`
}
