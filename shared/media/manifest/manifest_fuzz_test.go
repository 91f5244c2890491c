package manifest

import (
	"encoding/xml"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/mieweb/pulsevault/shared/media/meta"
)

// fuzzRenditions turns fuzz bytes into ready renditions in the domain the
// transcoder produces (names from the ladder, RFC 6381 codec strings,
// any sizes, rates and timelines): the writers must describe each one
// exactly, whatever the numbers.
func fuzzRenditions(data []byte, ts uint32, withAudio bool) (video []Rep, audio *Rep) {
	names := []string{"240p", "360p", "480p", "720p", "1080p"}
	next := func() uint64 {
		if len(data) == 0 {
			return 1
		}
		n := min(len(data), 3)
		var v uint64
		for _, c := range data[:n] {
			v = v<<8 | uint64(c)
		}
		data = data[n:]
		return v
	}
	timeline := func() Timeline {
		tl := Timeline{Timescale: max(ts, 1), Channels: int(next() % 9), Rate: int(next() % 200000)}
		start := next()
		for range 1 + next()%12 {
			d := next()%100000 + 1
			tl.Segments = append(tl.Segments, Segment{Start: start, Duration: d, Size: int64(next())})
			start += d
			if next()%5 == 0 {
				start += next() // a gap: the next S needs its own t
			}
		}
		return tl
	}
	for i := range 1 + next()%uint64(len(names)) {
		r := meta.Rendition{Name: names[i], Kind: "video", State: meta.RenditionReady,
			Width: int(next() % 9000), Height: int(next() % 9000), Bandwidth: int(next()), Average: int(next()),
			Codecs: fmt.Sprintf("avc1.%06x", next()), FrameRate: float64(next()%240000) / 1000}
		video = append(video, Rep{r, timeline()})
	}
	if withAudio {
		audio = &Rep{meta.Rendition{Name: "audio", Kind: "audio", State: meta.RenditionReady,
			Bandwidth: int(next()), Average: int(next()), Codecs: "mp4a.40.2"}, timeline()}
	}
	return video, audio
}

// FuzzManifestRoundTrip writes the master playlist and the MPD for random
// renditions and reads them back: the playlist with a strict line parser,
// the MPD with encoding/xml, expanding its SegmentTimeline to the exact
// segment starts and durations that went in.
func FuzzManifestRoundTrip(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, uint32(15360), true)
	f.Add([]byte{0, 0, 0, 0xff, 0xff, 0xff}, uint32(1), false)
	f.Add([]byte("seed with gaps and repeats: 0000000000000000000000000000"), uint32(48000), true)
	f.Add([]byte{}, uint32(0), true)
	f.Fuzz(func(t *testing.T, data []byte, ts uint32, withAudio bool) {
		video, audio := fuzzRenditions(data, ts, withAudio)
		var vr []meta.Rendition
		for _, r := range video {
			vr = append(vr, r.Rendition)
		}
		var ar *meta.Rendition
		if audio != nil {
			ar = &audio.Rendition
		}
		checkMaster(t, string(HLSMaster(vr, ar, nil)), vr, ar)

		b, err := DASHMPD(video, audio, nil)
		if err != nil {
			t.Fatalf("DASHMPD: %v", err)
		}
		var m mpd
		if err := xml.Unmarshal(b, &m); err != nil {
			t.Fatalf("the MPD does not parse: %v\n%s", err, b)
		}
		want := append(append([]Rep(nil), video...), optional(audio)...)
		var got []representation
		for _, s := range m.Period.Sets {
			got = append(got, s.Reps...)
		}
		if len(got) != len(want) {
			t.Fatalf("MPD lists %d representations, want %d", len(got), len(want))
		}
		for i, r := range want {
			g := got[i]
			if g.ID != r.Name || g.Bandwidth != r.Bandwidth || g.Codecs != r.Codecs || g.Template == nil || g.Template.Timescale != r.Timeline.Timescale {
				t.Fatalf("representation %d: %+v, want %s", i, g, r.Name)
			}
			var segs []Segment
			for _, s := range g.Template.Timeline.S {
				if s.T == nil || s.R < 0 {
					t.Fatalf("representation %s: S without t or with r<0: %+v", r.Name, s)
				}
				at := *s.T
				for range s.R + 1 {
					segs = append(segs, Segment{Start: at, Duration: s.D})
					at += s.D
				}
			}
			if len(segs) != len(r.Timeline.Segments) {
				t.Fatalf("representation %s: %d segments in the MPD, want %d", r.Name, len(segs), len(r.Timeline.Segments))
			}
			for j, s := range r.Timeline.Segments {
				if segs[j].Start != s.Start || segs[j].Duration != s.Duration {
					t.Fatalf("representation %s segment %d: %+v, want %+v", r.Name, j, segs[j], s)
				}
			}
		}
	})
}

// checkMaster parses a master playlist strictly: the header, one
// EXT-X-MEDIA when there is audio, and per variant an EXT-X-STREAM-INF
// whose attributes state the rendition's numbers, followed by its URI.
func checkMaster(t *testing.T, pl string, video []meta.Rendition, audio *meta.Rendition) {
	t.Helper()
	if !strings.HasSuffix(pl, "\n") {
		t.Fatalf("master does not end with a newline:\n%s", pl)
	}
	lines := strings.Split(strings.TrimSuffix(pl, "\n"), "\n")
	head := []string{"#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"}
	if audio != nil {
		head = append(head, `#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio",NAME="default",DEFAULT=YES,AUTOSELECT=YES,CHANNELS="2",URI="audio/index.m3u8"`)
	}
	if len(lines) != len(head)+2*len(video) {
		t.Fatalf("master has %d lines, want %d:\n%s", len(lines), len(head)+2*len(video), pl)
	}
	for i, h := range head {
		if lines[i] != h {
			t.Fatalf("line %d %q, want %q", i, lines[i], h)
		}
	}
	for i, r := range video {
		inf, uri := lines[len(head)+2*i], lines[len(head)+2*i+1]
		if uri != r.Name+"/index.m3u8" {
			t.Fatalf("variant %d URI %q", i, uri)
		}
		attrs, ok := strings.CutPrefix(inf, "#EXT-X-STREAM-INF:")
		if !ok {
			t.Fatalf("variant %d: %q is not EXT-X-STREAM-INF", i, inf)
		}
		got := parseAttrs(t, attrs)
		bw, avg, codecs := r.Bandwidth, r.Average, r.Codecs
		if audio != nil {
			bw, avg, codecs = bw+audio.Bandwidth, avg+audio.Average, codecs+","+audio.Codecs
		}
		want := map[string]string{"BANDWIDTH": strconv.Itoa(bw), "AVERAGE-BANDWIDTH": strconv.Itoa(avg), "CODECS": strconv.Quote(codecs),
			"RESOLUTION": fmt.Sprintf("%dx%d", r.Width, r.Height), "FRAME-RATE": strconv.FormatFloat(r.FrameRate, 'f', 3, 64)}
		if audio != nil {
			want["AUDIO"] = `"audio"`
		}
		if len(got) != len(want) {
			t.Fatalf("variant %d attributes %v, want %v", i, got, want)
		}
		for k, v := range want {
			if got[k] != v {
				t.Fatalf("variant %d %s=%q, want %q", i, k, got[k], v)
			}
		}
	}
}

// parseAttrs splits an HLS attribute list (RFC 8216 4.2): quoted values
// may hold commas, nothing else may.
func parseAttrs(t *testing.T, s string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for s != "" {
		k, rest, ok := strings.Cut(s, "=")
		if !ok || k == "" || strings.ToUpper(k) != k {
			t.Fatalf("bad attribute name in %q", s)
		}
		var v string
		if strings.HasPrefix(rest, `"`) {
			end := strings.IndexByte(rest[1:], '"')
			if end < 0 {
				t.Fatalf("unterminated quoted value in %q", rest)
			}
			v, rest = rest[:end+2], rest[end+2:]
		} else if i := strings.IndexByte(rest, ','); i >= 0 {
			v, rest = rest[:i], rest[i:]
		} else {
			v, rest = rest, ""
		}
		if _, dup := out[k]; dup {
			t.Fatalf("attribute %s twice", k)
		}
		out[k] = v
		if rest != "" && !strings.HasPrefix(rest, ",") {
			t.Fatalf("garbage after %s: %q", k, rest)
		}
		s = strings.TrimPrefix(rest, ",")
	}
	return out
}
