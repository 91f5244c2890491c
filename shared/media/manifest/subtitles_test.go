package manifest

import (
	"encoding/xml"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/mieweb/pulsevault/shared/media/meta"
)

var subs = []meta.Subtitle{
	{Lang: "en", Label: "English"},
	{Lang: "und", Label: ""},
	{Lang: "es", Label: "English"},                      // same name: made unique
	{Lang: "fr", Label: "Fr\"an\nçais,URI=\"x\"\u2028"}, // cannot break out of the quoted-string
	{Lang: "en", Label: "again"},                        // second track of a language: dropped
	{Lang: "../x", Label: "hostile"},                    // not a language: dropped
}

func TestHLSMasterSubtitles(t *testing.T) {
	got := string(HLSMaster([]meta.Rendition{v240, v360}, &audio, subs))
	for _, want := range []string{
		`#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="English",LANGUAGE="en",DEFAULT=NO,AUTOSELECT=YES,FORCED=NO,URI="subs/en.m3u8"` + "\n",
		`#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="Captions",DEFAULT=NO,AUTOSELECT=YES,FORCED=NO,URI="subs/und.m3u8"` + "\n",
		`#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="English (es)",LANGUAGE="es",DEFAULT=NO,AUTOSELECT=YES,FORCED=NO,URI="subs/es.m3u8"` + "\n",
		`#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="Français,URI=x",LANGUAGE="fr",DEFAULT=NO,AUTOSELECT=YES,FORCED=NO,URI="subs/fr.m3u8"` + "\n",
		`RESOLUTION=240x426,FRAME-RATE=30.000,AUDIO="audio",SUBTITLES="subs"` + "\n240p/index.m3u8\n",
		`RESOLUTION=360x640,FRAME-RATE=29.970,AUDIO="audio",SUBTITLES="subs"` + "\n360p/index.m3u8\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("master lacks %q:\n%s", want, got)
		}
	}
	if n := strings.Count(got, "TYPE=SUBTITLES"); n != 4 {
		t.Errorf("%d subtitle tracks, want 4:\n%s", n, got)
	}
	if strings.Contains(got, "hostile") || strings.Contains(got, "again") {
		t.Errorf("a dropped track is listed:\n%s", got)
	}
	// Every line is a tag or a URI: no label broke a line.
	for _, l := range strings.Split(strings.TrimSpace(got), "\n") {
		if !strings.HasPrefix(l, "#") && !strings.HasSuffix(l, "/index.m3u8") {
			t.Errorf("stray line %q", l)
		}
	}
	if plain := string(HLSMaster([]meta.Rendition{v240}, nil, nil)); strings.Contains(plain, "SUBTITLES") {
		t.Errorf("a master without subtitles mentions them:\n%s", plain)
	}
}

func TestSubtitlesPlaylist(t *testing.T) {
	got := string(SubtitlesPlaylist("en", 6.02))
	want := "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:7\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXTINF:6.020,\nen.vtt\n#EXT-X-ENDLIST\n"
	if got != want {
		t.Fatalf("%q", got)
	}
}

func TestDASHMPDSubtitles(t *testing.T) {
	tl := Timeline{Timescale: 15360, Segments: []Segment{{0, 30720, 1000}}}
	b, err := DASHMPD([]Rep{{v240, tl}}, nil, subs[:2])
	if err != nil {
		t.Fatal(err)
	}
	var m mpd
	if err := xml.Unmarshal(b, &m); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if len(m.Period.Sets) != 3 {
		t.Fatalf("%d adaptation sets:\n%s", len(m.Period.Sets), b)
	}
	for i, lang := range []string{"en", "und"} {
		s := m.Period.Sets[1+i]
		if s.ContentType != "text" || s.MimeType != "text/vtt" || s.Lang != lang || s.Role == nil || s.Role.Value != "subtitle" ||
			len(s.Reps) != 1 || s.Reps[0].BaseURL != "../hls/subs/"+lang+".vtt" || s.Reps[0].Template != nil {
			t.Errorf("text set %d: %+v", i, s)
		}
	}
	if !strings.Contains(string(b), `<Label>Captions</Label>`) || strings.Contains(string(b), `codecs=""`) {
		t.Errorf("mpd:\n%s", b)
	}
}

// FuzzLabel: whatever a client names its captions, the NAME in the master
// cannot end its quoted-string or its line, and stays short.
func FuzzLabel(f *testing.F) {
	f.Add("English", "en")
	f.Add("a\"b\r\nc\u2028", "und")
	f.Fuzz(func(t *testing.T, label, lang string) {
		got := Label(label, lang)
		if got == "" || strings.ContainsAny(got, "\"\r\n\u2028\u2029") || utf8.RuneCountInString(got) > maxLabel+len(lang) || !utf8.ValidString(got) {
			t.Fatalf("Label(%q, %q) = %q", label, lang, got)
		}
		m := string(HLSMaster([]meta.Rendition{v240}, nil, []meta.Subtitle{{Lang: "en", Label: label}}))
		if n := strings.Count(m, "\n"); n != 6 {
			t.Fatalf("label %q made %d lines:\n%s", label, n, m)
		}
	})
}
