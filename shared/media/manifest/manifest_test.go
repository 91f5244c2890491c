package manifest

import (
	"encoding/xml"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mieweb/pulsevault/shared/media/meta"
)

// encode makes a short fMP4 HLS rendition with the real ffmpeg.
func encode(t *testing.T, input []string, codec []string) string {
	t.Helper()
	dir := t.TempDir()
	args := append([]string{"-v", "error", "-f", "lavfi"}, input...)
	args = append(args, codec...)
	args = append(args, "-f", "hls", "-hls_time", "2", "-hls_playlist_type", "vod", "-hls_segment_type", "fmp4",
		"-hls_fmp4_init_filename", "init.mp4", "-hls_segment_filename", filepath.Join(dir, "seg_%d.m4s"), filepath.Join(dir, "index.m3u8"))
	if out, err := exec.Command("ffmpeg", args...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	return dir
}

func parseDir(t *testing.T, dir string) (Track, Timeline) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "init.mp4"))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := ParseInit(b)
	if err != nil {
		t.Fatal(err)
	}
	tl := Timeline{Timescale: tr.Timescale, Channels: tr.Channels, Rate: tr.Rate}
	segs, _ := filepath.Glob(filepath.Join(dir, "seg_*.m4s"))
	for i := range segs {
		b, err := os.ReadFile(filepath.Join(dir, "seg_"+itoa(i)+".m4s"))
		if err != nil {
			t.Fatal(err)
		}
		s, err := ParseSegment(b, tr)
		if err != nil {
			t.Fatal(err)
		}
		tl.Segments = append(tl.Segments, s)
	}
	return tr, tl
}

func itoa(i int) string { return string(rune('0' + i)) }

func TestParseRealRenditions(t *testing.T) {
	v := encode(t, []string{"-i", "testsrc2=size=320x240:rate=25:duration=5"},
		[]string{"-c:v", "libx264", "-profile:v", "main", "-level", "3.0", "-pix_fmt", "yuv420p", "-force_key_frames", "expr:gte(t,n_forced*2)"})
	tr, tl := parseDir(t, v)
	if tr.Kind != "video" || tr.Codec != "avc1.4d401e" || tr.Width != 320 || tr.Height != 240 {
		t.Fatalf("video track: %+v", tr)
	}
	if len(tl.Segments) != 3 || tl.Seconds() < 4.99 || tl.Seconds() > 5.01 {
		t.Fatalf("timeline: %+v (%.3f s)", tl, tl.Seconds())
	}
	if tl.Segments[1].Start != tl.Segments[0].Start+tl.Segments[0].Duration {
		t.Fatalf("segments not contiguous: %+v", tl.Segments)
	}
	peak, avg := tl.Bandwidth()
	if peak <= 0 || avg <= 0 || avg > peak {
		t.Fatalf("bandwidth peak %d avg %d", peak, avg)
	}

	a := encode(t, []string{"-i", "sine=frequency=440:sample_rate=44100:duration=5"}, []string{"-c:a", "aac", "-ac", "2"})
	tr, tl = parseDir(t, a)
	if tr.Kind != "audio" || tr.Codec != "mp4a.40.2" || tr.Channels != 2 || tr.Rate != 44100 || tl.Timescale != 44100 {
		t.Fatalf("audio track: %+v", tr)
	}
	// ffmpeg writes channelcount 2 in a mono AAC sample entry; the count
	// comes from the decoder config. 5.1 is 6.
	for _, ch := range []int{1, 6} {
		a := encode(t, []string{"-i", "sine=frequency=440:sample_rate=48000:duration=3"}, []string{"-c:a", "aac", "-ac", itoa(ch)})
		if tr, _ := parseDir(t, a); tr.Channels != ch {
			t.Errorf("%d-channel AAC parsed as %d channels", ch, tr.Channels)
		}
	}
}

func TestMasterNamesAudioChannels(t *testing.T) {
	for ch, want := range map[int]string{0: `CHANNELS="2"`, 1: `CHANNELS="1"`, 2: `CHANNELS="2"`} {
		a := meta.Rendition{Name: "audio", Kind: "audio", State: meta.RenditionReady, Codecs: "mp4a.40.2", Bandwidth: 64000, Average: 60000, Channels: ch}
		if m := string(HLSMaster([]meta.Rendition{v240}, &a, nil)); !strings.Contains(m, want) {
			t.Errorf("channels %d: master lacks %s:\n%s", ch, want, m)
		}
	}
}

func TestParseRejectsGarbage(t *testing.T) {
	for name, b := range map[string][]byte{
		"empty":     {},
		"short":     {0, 0, 0},
		"oversize":  {0, 0, 1, 0, 'm', 'o', 'o', 'v'},
		"no-stsd":   {0, 0, 0, 8, 'm', 'o', 'o', 'v'},
		"undersize": {0, 0, 0, 4, 'f', 't', 'y', 'p'},
	} {
		if _, err := ParseInit(b); !errors.Is(err, errBox) {
			t.Errorf("%s: ParseInit error %v", name, err)
		}
		if _, err := ParseSegment(b, Track{Timescale: 1}); !errors.Is(err, errBox) {
			t.Errorf("%s: ParseSegment error %v", name, err)
		}
	}
}

var (
	v240 = meta.Rendition{Name: "240p", Kind: "video", Width: 240, Height: 426, State: meta.RenditionReady,
		Codecs: "avc1.64001e", Bandwidth: 500000, Average: 400000, FrameRate: 30}
	v360  = meta.Rendition{Name: "360p", Kind: "video", Width: 360, Height: 640, State: meta.RenditionReady, Codecs: "avc1.64001f", Bandwidth: 900000, Average: 800000, FrameRate: 29.97}
	audio = meta.Rendition{Name: "audio", Kind: "audio", State: meta.RenditionReady, Codecs: "mp4a.40.2", Bandwidth: 130000, Average: 128000}
)

func TestHLSMaster(t *testing.T) {
	got := string(HLSMaster([]meta.Rendition{v240, v360}, &audio, nil))
	want := `#EXTM3U
#EXT-X-VERSION:7
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio",NAME="default",DEFAULT=YES,AUTOSELECT=YES,CHANNELS="2",URI="audio/index.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=630000,AVERAGE-BANDWIDTH=528000,CODECS="avc1.64001e,mp4a.40.2",RESOLUTION=240x426,FRAME-RATE=30.000,AUDIO="audio"
240p/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=1030000,AVERAGE-BANDWIDTH=928000,CODECS="avc1.64001f,mp4a.40.2",RESOLUTION=360x640,FRAME-RATE=29.970,AUDIO="audio"
360p/index.m3u8
`
	if got != want {
		t.Fatalf("master:\n%s\nwant:\n%s", got, want)
	}
	if silent := string(HLSMaster([]meta.Rendition{v240}, nil, nil)); strings.Contains(silent, "AUDIO") || strings.Contains(silent, "mp4a") {
		t.Fatalf("no-audio master mentions audio:\n%s", silent)
	}
}

func TestPlayableWaitsForAudio(t *testing.T) {
	pending := audio
	pending.State = meta.RenditionRunning
	planned := v360
	planned.State = meta.RenditionPlanned
	v := &meta.Video{Renditions: []meta.Rendition{v240, planned, pending}}
	if _, _, ok := Playable(v); ok {
		t.Fatal("playable while the audio rendition is running")
	}
	v.Renditions[2].State = meta.RenditionFailed
	video, a, ok := Playable(v)
	if !ok || len(video) != 1 || a != nil {
		t.Fatalf("with failed audio: %v %v %v", video, a, ok)
	}
	v.Renditions[2].State = meta.RenditionReady
	if video, a, ok = Playable(v); !ok || len(video) != 1 || a == nil || a.Name != "audio" {
		t.Fatalf("with audio: %v %v %v", video, a, ok)
	}
}

func TestDASHMPD(t *testing.T) {
	tl := Timeline{Timescale: 15360, Segments: []Segment{{0, 30720, 1000}, {30720, 30720, 1000}, {61440, 30720, 1000}, {92160, 15360, 500}}}
	atl := Timeline{Timescale: 48000, Channels: 2, Rate: 48000, Segments: []Segment{{0, 96256, 30000}, {96256, 96256, 30000}, {192512, 49152, 15000}}}
	b, err := DASHMPD([]Rep{{v240, tl}, {v360, tl}}, &Rep{audio, atl}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var m mpd
	if err := xml.Unmarshal(b, &m); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if m.Type != "static" || m.Duration != "PT7.000S" || len(m.Period.Sets) != 2 {
		t.Fatalf("mpd: %+v", m)
	}
	vs := m.Period.Sets[0]
	if len(vs.Reps) != 2 || vs.MaxWidth != 360 || vs.Reps[1].FrameRate != "29970/1000" {
		t.Fatalf("video set: %+v", vs)
	}
	st := vs.Reps[0].Template
	if st.Init != "../hls/240p/init.mp4" || st.Media != "../hls/240p/seg_$Number$.m4s" || st.StartNumber != 0 {
		t.Fatalf("template: %+v", st)
	}
	// Three equal 2 s segments collapse into one S with r=2, then the short last one.
	if s := st.Timeline.S; len(s) != 2 || *s[0].T != 0 || s[0].D != 30720 || s[0].R != 2 || *s[1].T != 92160 || s[1].D != 15360 {
		t.Fatalf("timeline: %+v", s)
	}
	as := m.Period.Sets[1]
	if as.ContentType != "audio" || as.Reps[0].Channels.Value != "2" || as.Reps[0].SampleRate != 48000 {
		t.Fatalf("audio set: %+v", as)
	}
	if _, err := DASHMPD(nil, &Rep{audio, atl}, nil); err == nil {
		t.Fatal("an MPD without video was written")
	}
	if _, err := DASHMPD([]Rep{{v240, Timeline{}}}, nil, nil); err == nil {
		t.Fatal("an MPD over an empty timeline was written")
	}
}
