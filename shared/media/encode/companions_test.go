package encode_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/jpeg"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mieweb/pulsevault/shared/media/captions"
	"github.com/mieweb/pulsevault/shared/media/encode"
	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/media/thumbnail"
	"github.com/mieweb/pulsevault/shared/media/webmp4"
	"github.com/mieweb/pulsevault/shared/storage"
	"github.com/mieweb/pulsevault/shared/testutil/testclip"
	"github.com/mieweb/pulsevault/shared/topology"
)

// srtCaptions is what a phone sends as kind captions, SRT flavoured; the
// upload path stages it as WebVTT (captions.Normalize), as here.
const srtCaptions = "1\r\n00:00:00,200 --> 00:00:01,000\r\nWalk to the line\r\n\r\n2\r\n00:00:01,000 --> 00:00:01,900\r\nand <i>back</i>\r\n"

// companion stages one companion object as the upload path does.
func (r *rig) companion(key string, b []byte, ct string) {
	r.t.Helper()
	if _, err := r.st.PutBytes(context.Background(), r.cfg.MediaBucket, key, b, storage.PutOptions{ContentType: ct}); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) bytes(key string) []byte { r.t.Helper(); return []byte(r.object(key)) }

func beatManifest(ms ...int) []byte {
	var parts []string
	at := 0
	for i, l := range ms {
		parts = append(parts, fmt.Sprintf(`{"segmentId":"clip-%d","order":%d,"startMs":%d,"endMs":%d}`, i, i, at, at+l))
		at += l
	}
	return fmt.Appendf(nil, `{"version":1,"type":"beat-manifest","durationMs":%d,"beats":[%s]}`, at, strings.Join(parts, ","))
}

// ffprobeStreams counts the streams of each type ffprobe finds at url.
// ffmpeg 5.1's HLS demuxer reads WebVTT renditions only with -strict
// experimental.
func ffprobeStreams(t *testing.T, url string) map[string]int {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-strict", "experimental", "-show_streams", "-of", "json", url).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", url, err)
	}
	var p struct {
		Streams []struct {
			CodecType string `json:"codec_type"`
			CodecName string `json:"codec_name"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatal(err)
	}
	n := map[string]int{}
	for _, s := range p.Streams {
		n[s.CodecType]++
		if s.CodecType == "subtitle" && s.CodecName != "webvtt" {
			t.Errorf("%s: subtitle codec %q", url, s.CodecName)
		}
	}
	return n
}

// TestCompanionsAndWebMP4 runs whole ladders of two videos through the
// worker over the real store. The first has every companion: captions
// become a subtitles track in the master (ffprobe lists it) and the MPD,
// the beat manifest becomes chapters, the GPS-tagged thumbnail becomes the
// poster with no EXIF left, a second captions file that is not captions is
// ignored with its reason, and its moov-last original gets a faststart
// web.mp4. The second has a beat manifest for another duration and a
// thumbnail that is not a JPEG: both are ignored, the video still
// completes with a frame-grab poster, and its faststart H.264/AAC original
// is its own web MP4.
func TestCompanionsAndWebMP4(t *testing.T) {
	r := newRig(t)
	r.w.Config.Fanout = encode.FanoutGrouped
	ctx := context.Background()

	id, v := r.stage(testclip.Options{Width: 360, Height: 640, Seconds: 2}, nil)
	vtt, err := captions.Normalize([]byte(srtCaptions))
	if err != nil {
		t.Fatal(err)
	}
	enKey, _ := topology.CaptionsKey(id, "en")
	frKey, _ := topology.CaptionsKey(id, "fr")
	r.companion(enKey, vtt, "text/vtt")
	r.companion(frKey, []byte("WEBVTT\n\n"+phi+" --> 00:00:01.000\nbackwards\n"), "text/vtt") // a parse error quoting PHI
	jpg := testclip.PhoneJPEG(1600, 1200, 1)
	r.companion(topology.ThumbnailKey(id), jpg, "image/jpeg")
	r.companion(topology.BeatsKey(id), beatManifest(800, int(v.Probe.Duration*1000)-800), "application/json")
	if _, err := r.meta.Update(ctx, id, func(v *meta.Video) error {
		v.Companions = &meta.Companions{
			Captions:  []meta.CaptionFile{{Key: enKey, Lang: "en", Label: "English"}, {Key: frKey, Lang: "fr", Label: "Français"}},
			Thumbnail: topology.ThumbnailKey(id), Beats: topology.BeatsKey(id),
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	for name, res := range r.runJobs(id, v, 1) {
		if res.Status != http.StatusOK {
			t.Fatalf("%s: %+v", name, res)
		}
	}
	r.checkComplete(t, id)
	got := r.get(id)

	// Captions → a subtitles track.
	if len(got.Subtitles) != 1 || got.Subtitles[0].Lang != "en" || got.Subtitles[0].Label != "English" {
		t.Fatalf("subtitles %+v", got.Subtitles)
	}
	if !got.IsIgnored("captions:fr") || !strings.Contains(fmt.Sprint(got.Ignored), "is not a timestamp") {
		t.Fatalf("bad captions not ignored with a reason: %+v", got.Ignored)
	}
	master := string(r.bytes(topology.VideoKey(id, topology.MasterFile)))
	if !strings.Contains(master, `#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="English",LANGUAGE="en"`) ||
		strings.Count(master, `SUBTITLES="subs"`) != strings.Count(master, "#EXT-X-STREAM-INF") || strings.Contains(master, "fr.m3u8") {
		t.Fatalf("master:\n%s", master)
	}
	if n := ffprobeStreams(t, r.proxy+"/videos/"+id+"/"+topology.MasterFile); n["subtitle"] != 1 || n["video"] != 2 || n["audio"] != 1 {
		t.Fatalf("ffprobe of the master: %v", n)
	}
	// ffmpeg reads the cues through the master, as a player would.
	cues, err := exec.Command("ffmpeg", "-v", "error", "-strict", "experimental", "-i", r.proxy+"/videos/"+id+"/"+topology.MasterFile,
		"-map", "0:s:0", "-f", "webvtt", "pipe:1").Output()
	if err != nil || !strings.Contains(string(cues), "Walk to the line") || !strings.Contains(string(cues), "00:00.200 --> 00:01.000") {
		t.Fatalf("cues through the master: %v\n%s", err, cues)
	}
	if served := r.bytes(topology.VideoKey(id, topology.SubtitlesFile("en"))); !bytes.Equal(served, vtt) {
		t.Fatalf("served WebVTT:\n%s", served)
	}
	if pl := string(r.bytes(topology.VideoKey(id, topology.SubtitlesPlaylistFile("en")))); !strings.Contains(pl, "#EXTINF:") || !strings.Contains(pl, "\nen.vtt\n") {
		t.Fatalf("subtitles playlist:\n%s", pl)
	}
	mpd := string(r.bytes(topology.VideoKey(id, topology.MPDFile)))
	if !strings.Contains(mpd, `contentType="text" mimeType="text/vtt" lang="en"`) || !strings.Contains(mpd, "<BaseURL>../hls/subs/en.vtt</BaseURL>") {
		t.Fatalf("mpd:\n%s", mpd)
	}

	// Beats → chapters.
	if len(got.Chapters) != 2 || got.Chapters[0] != (meta.Chapter{Start: 0, End: 0.8, Title: "Beat 1"}) || got.Chapters[1].Start != 0.8 {
		t.Fatalf("chapters %+v", got.Chapters)
	}

	// Thumbnail → poster, re-encoded: no EXIF, the thumbnail's shape
	// (4:3 landscape), not the portrait video's frame.
	if got.PosterSource != meta.PosterFromThumbnail {
		t.Fatalf("poster source %q", got.PosterSource)
	}
	poster := r.bytes(topology.VideoKey(id, topology.PosterFile))
	if thumbnail.HasMetadata(poster) || bytes.Contains(poster, []byte("Exif")) {
		t.Fatal("the poster keeps the thumbnail's EXIF")
	}
	if cfg, err := jpeg.DecodeConfig(bytes.NewReader(poster)); err != nil || cfg.Width != 960 || cfg.Height != 720 {
		t.Fatalf("poster %+v %v: not made from the thumbnail", cfg, err)
	}
	if thumb := r.bytes(topology.VideoKey(id, topology.ThumbFile)); thumbnail.HasMetadata(thumb) {
		t.Fatal("thumb.jpg keeps EXIF")
	}

	// web_mp4: the moov-last original gets a faststart web.mp4, locked.
	if got.WebMP4 != topology.WebMP4Key(id) || got.WebMP4Claim != nil {
		t.Fatalf("web_mp4 %q claim %v", got.WebMP4, got.WebMP4Claim)
	}
	web := r.bytes(got.WebMP4)
	boxes, err := webmp4.TopLevel(bytes.NewReader(web), int64(len(web)))
	if err != nil || !webmp4.Faststart(boxes) {
		t.Fatalf("web.mp4 layout %+v %v", boxes, err)
	}
	if info, err := r.st.Stat(ctx, r.cfg.MediaBucket, got.WebMP4); err != nil || info.Retention == nil || info.Retention.Mode != "COMPLIANCE" {
		t.Fatalf("web.mp4 not locked: %+v %v", info, err)
	}
	webPath := filepath.Join(t.TempDir(), "web.mp4")
	if err := os.WriteFile(webPath, web, 0o600); err != nil {
		t.Fatal(err)
	}
	if n := ffprobeStreams(t, webPath); n["video"] != 1 || n["audio"] != 1 {
		t.Fatalf("web.mp4 streams %v", n)
	}
	for _, k := range []string{topology.SubtitlesFile("en"), topology.SubtitlesPlaylistFile("en"), topology.PosterFile} {
		if info, err := r.st.Stat(ctx, r.cfg.MediaBucket, topology.VideoKey(id, k)); err != nil || info.Retention == nil {
			t.Errorf("%s not locked: %+v %v", k, info, err)
		}
	}
	// A redelivery changes nothing: companions are applied once.
	before := r.get(id)
	if res := r.runJobs(id, v, 2, "240p")["240p"]; res.Status != http.StatusOK {
		t.Fatalf("redelivery: %+v", res)
	}
	if after := r.get(id); len(after.Subtitles) != 1 || len(after.Ignored) != len(before.Ignored) || after.WebMP4 != before.WebMP4 {
		t.Fatalf("redelivery changed the companions: %+v", after)
	}

	// The second video: bad companions ignored, faststart original.
	id2, v2 := r.stage(testclip.Options{Width: 360, Height: 640, Seconds: 2, FastStart: true}, nil)
	r.companion(topology.ThumbnailKey(id2), []byte("<svg>not a jpeg</svg>"), "image/jpeg")
	r.companion(topology.BeatsKey(id2), beatManifest(60000), "application/json")
	if _, err := r.meta.Update(ctx, id2, func(v *meta.Video) error {
		v.Companions = &meta.Companions{Thumbnail: topology.ThumbnailKey(id2), Beats: topology.BeatsKey(id2),
			Captions: []meta.CaptionFile{{Key: topology.VideoKey(id, "captions/en.vtt"), Lang: "en"}}} // another video's file
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for name, res := range r.runJobs(id2, v2, 1) {
		if res.Status != http.StatusOK {
			t.Fatalf("%s: %+v", name, res)
		}
	}
	r.checkComplete(t, id2)
	got2 := r.get(id2)
	for _, c := range []string{"thumbnail", "beats", "captions:en"} {
		if !got2.IsIgnored(c) {
			t.Errorf("%s not ignored: %+v", c, got2.Ignored)
		}
	}
	t.Logf("ignored: %+v", got2.Ignored)
	if got2.PosterSource != "" || len(got2.Chapters) != 0 || len(got2.Subtitles) != 0 {
		t.Fatalf("bad companions used: %+v", got2)
	}
	if cfg, err := jpeg.DecodeConfig(bytes.NewReader(r.bytes(topology.VideoKey(id2, topology.PosterFile)))); err != nil || cfg.Width != 360 || cfg.Height != 640 {
		t.Fatalf("no frame-grab poster: %+v %v", cfg, err)
	}
	if m := string(r.bytes(topology.VideoKey(id2, topology.MasterFile))); strings.Contains(m, "SUBTITLES") {
		t.Fatalf("master lists subtitles:\n%s", m)
	}
	// A web-ready original is still copied: its container metadata stays behind.
	if got2.WebMP4 != topology.WebMP4Key(id2) {
		t.Fatalf("web_mp4 %q, want %q (a metadata-free copy of the faststart original)", got2.WebMP4, topology.WebMP4Key(id2))
	}
	// No PHI in the logs.
	if strings.Contains(r.logs.String(), phi) {
		t.Fatal("PHI in the logs")
	}
}
