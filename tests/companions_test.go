package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"image/jpeg"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mieweb/pulsevault/shared/audit/event"
	"github.com/mieweb/pulsevault/shared/media/captions"
	"github.com/mieweb/pulsevault/shared/media/encode"
	"github.com/mieweb/pulsevault/shared/media/ladder"
	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/media/thumbnail"
	"github.com/mieweb/pulsevault/shared/media/webmp4"
	"github.com/mieweb/pulsevault/shared/playback/mediaserve"
	"github.com/mieweb/pulsevault/shared/playback/token"
	"github.com/mieweb/pulsevault/shared/storage"
	"github.com/mieweb/pulsevault/shared/testutil/testclip"
	"github.com/mieweb/pulsevault/shared/topology"
)

// stageWithCompanions stores a finalized video as upload-finalize leaves
// it, with a Pulse upload's companions staged beside it and listed in
// meta.json (what the upload path does), and publishes its jobs.
func (s *tcStack) stageWithCompanions(o testclip.Options, companions func(id string) *meta.Companions) (string, *meta.Video) {
	t := s.t
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "clip.mp4")
	if err := testclip.Make(ctx, path, o); err != nil {
		t.Fatal(err)
	}
	pr := runFFprobe(t, path)
	p := meta.Probe{Duration: pr.seconds(), Format: "mov,mp4,m4a,3gp,3g2,mj2", VideoCodec: "h264", FPS: 30}
	for _, st := range pr.Streams {
		switch st.CodecType {
		case "video":
			p.Width, p.Height = st.Width, st.Height
		case "audio":
			p.HasAudio, p.AudioCodec = true, "aac"
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	id := uuid.NewString()
	key := topology.OriginalKey(id, "mp4")
	ret := storage.Compliance(1)
	bucket := s.env.Config.MediaBucket
	if _, err := s.st.Put(ctx, bucket, key, bytes.NewReader(b), int64(len(b)), storage.PutOptions{ContentType: "video/mp4", Retention: &ret}); err != nil {
		t.Fatal(err)
	}
	v := &meta.Video{ID: id, Status: meta.Processing, Uploader: "e2e", UploadID: "up-" + id,
		Client:   map[string]string{"filename": transcodePHI + ".mp4", "name": transcodePHI},
		Original: &meta.Original{Key: key, Size: int64(len(b)), ContentType: "video/mp4", RetainUntil: ret.Until},
		Probe:    &p, Renditions: ladder.Plan(p), Companions: companions(id)}
	if err := s.meta.Create(ctx, v); err != nil {
		t.Fatal(err)
	}
	for _, j := range encode.Jobs(id, v.Renditions) {
		data, _ := json.Marshal(j)
		if err := s.bus.Publish(ctx, topology.SubjectTranscodeJobs, data, j.MsgID()); err != nil {
			t.Fatal(err)
		}
	}
	return id, v
}

// probeTypes counts the distinct streams of each type ffprobe finds at url
// (an HLS master lists each stream once per program too).
func probeTypes(t *testing.T, url string) map[string]int {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-strict", "experimental", "-show_entries", "stream=index,codec_type,codec_name", "-of", "json", url).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", url, err)
	}
	var p struct {
		Streams []struct {
			Index     int    `json:"index"`
			CodecType string `json:"codec_type"`
			CodecName string `json:"codec_name"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatal(err)
	}
	seen, n := map[int]bool{}, map[string]int{}
	for _, s := range p.Streams {
		if !seen[s.Index] {
			seen[s.Index] = true
			n[s.CodecType]++
			if s.CodecType == "subtitle" && s.CodecName != "webvtt" {
				t.Errorf("%s: subtitle codec %q", url, s.CodecName)
			}
		}
	}
	return n
}

// servePlayerPage serves tests/testdata/hlsjs-subtitles.html and hls.js
// from vitals/node_modules under /page/.
func servePlayerPage(t *testing.T) http.HandlerFunc {
	root := repoRoot(t)
	return func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/page/player.html":
			http.ServeFile(w, r, filepath.Join(root, "tests", "testdata", "hlsjs-subtitles.html"))
		case "/page/hls.min.js":
			http.ServeFile(w, r, filepath.Join(root, "vitals", "node_modules", "hls.js", "dist", "hls.min.js"))
		default:
			http.NotFound(w, r)
		}
	}
}

type chromiumResult struct {
	Tracks []struct {
		Lang string `json:"lang"`
		Name string `json:"name"`
	} `json:"tracks"`
	Cues     []string `json:"cues"`
	Modes    []string `json:"modes"`
	Requests []string `json:"requests"`
	HLSErrs  []string `json:"hlsErrors"`
	SubFrags int      `json:"subFrags"`
	Fatal    string   `json:"fatal"`
	Time     float64  `json:"time"`
	Errors   []string `json:"errors"`
}

// playInChromium runs tests/testdata/hlsjs-subtitles.mjs on page, with
// vitals/node_modules installed as TestVitals installs it.
func playInChromium(t *testing.T, page string) chromiumResult {
	t.Helper()
	if _, err := os.Stat("/usr/bin/chromium"); err != nil {
		t.Skip("chromium not installed")
	}
	if _, err := exec.LookPath("npm"); err != nil {
		t.Skip("npm not installed: Node 20 is needed for vitals/node_modules")
	}
	vitals := filepath.Join(repoRoot(t), "vitals")
	if _, err := os.Stat(filepath.Join(vitals, "node_modules", ".package-lock.json")); err != nil {
		cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund")
		cmd.Dir = vitals
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm ci in vitals/: %v\n%s", err, b)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", filepath.Join(repoRoot(t), "tests", "testdata", "hlsjs-subtitles.mjs"))
	cmd.Env = append(os.Environ(), "VITALS_DIR="+vitals, "PAGE="+page)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, stderr.String())
	}
	var res chromiumResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("chromium answered %q: %v", out, err)
	}
	return res
}

func (s *tcStack) putCompanion(key string, b []byte) {
	s.t.Helper()
	if _, err := s.st.PutBytes(context.Background(), s.env.Config.MediaBucket, key, b, storage.PutOptions{}); err != nil {
		s.t.Fatal(err)
	}
}

// TestPulseCompanionsEndToEnd: a video with the companions a Pulse phone
// sends (SRT captions, a beat manifest, a GPS-tagged thumbnail) goes
// through the real connector, provider and transcode child to complete;
// then, through the media server and a playback token for the video's
// prefix, ffprobe lists the subtitles track in the master, ffmpeg reads
// the cues through it (relative URIs inherit the token), hls.js in headless
// Chromium lists the track and the <video> gets its cues, the poster is the
// thumbnail without EXIF, and the raw companions are never served. A
// second user's token (for their own video) and a poster-only token open
// none of the new files.
func TestPulseCompanionsEndToEnd(t *testing.T) {
	s := startTranscodeStack(t)
	bucket := s.env.Config.MediaBucket
	srt := "1\n00:00:00,300 --> 00:00:01,200\nStand up slowly\n\n2\n00:00:01,200 --> 00:00:02,500\nand <b>walk</b> & turn\n"
	vtt, err := captions.Normalize([]byte(srt)) // the upload path converts SRT when it stages
	if err != nil {
		t.Fatal(err)
	}
	id, _ := s.stageWithCompanions(testclip.Options{Seconds: 3}, func(id string) *meta.Companions {
		en, _ := topology.CaptionsKey(id, "en")
		s.putCompanion(en, vtt)
		s.putCompanion(topology.ThumbnailKey(id), testclip.PhoneJPEG(1280, 960, 6))
		s.putCompanion(topology.BeatsKey(id), []byte(`{"version":1,"type":"beat-manifest","durationMs":3000,"beats":[`+
			`{"segmentId":"a","order":0,"startMs":0,"endMs":1200},{"segmentId":"b","order":1,"startMs":1200,"endMs":3000}]}`))
		return &meta.Companions{Captions: []meta.CaptionFile{{Key: en, Lang: "en", Label: "English"}},
			Thumbnail: topology.ThumbnailKey(id), Beats: topology.BeatsKey(id)}
	})
	other, _ := s.stageWithCompanions(testclip.Options{Seconds: 2, FastStart: true}, func(string) *meta.Companions { return nil })
	v := s.waitStatus(id, meta.Complete, 120*time.Second)
	ov := s.waitStatus(other, meta.Complete, 120*time.Second)

	if len(v.Subtitles) != 1 || len(v.Chapters) != 2 || v.Chapters[1] != (meta.Chapter{Start: 1.2, End: 3, Title: "Beat 2"}) ||
		v.PosterSource != meta.PosterFromThumbnail || v.WebMP4 != topology.WebMP4Key(id) || len(v.Ignored) != 0 {
		t.Fatalf("companions not applied: subtitles %+v chapters %+v poster %q web %q ignored %+v", v.Subtitles, v.Chapters, v.PosterSource, v.WebMP4, v.Ignored)
	}
	if ov.WebMP4 != topology.WebMP4Key(other) || ov.Subtitles != nil || ov.PosterSource != "" {
		t.Fatalf("plain video: web %q subtitles %+v poster %q", ov.WebMP4, ov.Subtitles, ov.PosterSource)
	}

	// The media server, as the media function runs it, over the same store.
	line, err := token.GenerateKeyLine("k1")
	if err != nil {
		t.Fatal(err)
	}
	ring, err := token.ParseKeys([]byte(line + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var audited []event.Event
	media := mediaserve.NewServer(&mediaserve.Server{Store: s.st, Bucket: bucket,
		Keys: func() (*token.Keyring, error) { return ring, nil },
		Audit: func(_ context.Context, e event.Event) error {
			mu.Lock()
			defer mu.Unlock()
			audited = append(audited, e)
			return nil
		}})
	mux := http.NewServeMux()
	mux.Handle("/", media)
	mux.HandleFunc("/page/", servePlayerPage(t)) // the hls.js page, on the media's origin
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	now := time.Now()
	sign := func(video string) string {
		tok, err := ring.Sign(video, topology.VideoPrefix(video), now.Add(2*time.Minute), now)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	base := srv.URL + "/" + sign(id) + "/" + topology.VideoPrefix(id)
	get := func(url string) (int, string, []byte) {
		t.Helper()
		res, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, res.Header.Get("Content-Type"), b
	}

	// ffprobe reads the master (ffmpeg 5.1's HLS demuxer takes WebVTT
	// renditions only with -strict experimental) and the MPD, through the
	// token: one subtitle stream each, beside every video and the audio.
	for _, f := range []string{topology.MasterFile, topology.MPDFile} {
		if n := probeTypes(t, base+f); n["subtitle"] != 1 || n["video"] != len(v.Renditions)-1 || n["audio"] != 1 {
			t.Fatalf("ffprobe of the tokened %s: %v", f, n)
		}
	}
	cues, err := exec.Command("ffmpeg", "-v", "error", "-strict", "experimental", "-i", base+topology.MasterFile, "-map", "0:s:0", "-f", "webvtt", "pipe:1").Output()
	if err != nil || !strings.Contains(string(cues), "Stand up slowly") || !strings.Contains(string(cues), "and <b>walk</b>") {
		t.Fatalf("cues through the tokened master: %v\n%s", err, cues)
	}
	if code, ct, body := get(base + topology.SubtitlesFile("en")); code != http.StatusOK || ct != "text/vtt" || !bytes.Equal(body, vtt) {
		t.Fatalf("subtitles file: %d %q\n%s", code, ct, body)
	}
	mpdCode, _, mpd := get(base + topology.MPDFile)
	if mpdCode != http.StatusOK || !strings.Contains(string(mpd), `mimeType="text/vtt"`) {
		t.Fatalf("mpd: %d\n%s", mpdCode, mpd)
	}
	code, _, poster := get(base + topology.PosterFile)
	if code != http.StatusOK || thumbnail.HasMetadata(poster) || bytes.Contains(poster, []byte("Exif")) {
		t.Fatalf("poster: %d, EXIF %v", code, thumbnail.HasMetadata(poster))
	}
	// Orientation 6 turned the 1280x960 landscape thumbnail upright: 720x960.
	if cfg, err := jpeg.DecodeConfig(bytes.NewReader(poster)); err != nil || cfg.Width != 720 || cfg.Height != 960 {
		t.Fatalf("poster %+v %v", cfg, err)
	}
	for _, raw := range []string{topology.ThumbnailFile, topology.BeatsFile, "captions/en.vtt", topology.WebMP4File, topology.MetaFile} {
		if code, _, _ := get(base + raw); code != http.StatusForbidden {
			t.Errorf("%s served with the playback token: %d", raw, code)
		}
	}
	// Another user's token, valid for their own video, and a poster-only
	// token for this one, open none of the new files.
	otherBase := srv.URL + "/" + sign(other) + "/" + topology.VideoPrefix(id)
	posterTok, err := ring.SignKey(id, topology.VideoKey(id, topology.PosterFile), now.Add(time.Minute), now)
	if err != nil {
		t.Fatal(err)
	}
	posterBase := srv.URL + "/" + posterTok + "/" + topology.VideoPrefix(id)
	for _, f := range []string{topology.SubtitlesFile("en"), topology.SubtitlesPlaylistFile("en"), topology.MasterFile} {
		for name, b := range map[string]string{"other video's token": otherBase, "poster token": posterBase} {
			if code, _, _ := get(b + f); code != http.StatusForbidden {
				t.Errorf("%s opened %s: %d", name, f, code)
			}
		}
	}
	if code, _, _ := get(srv.URL + "/" + sign(other) + "/" + topology.VideoKey(other, topology.MasterFile)); code != http.StatusOK {
		t.Fatalf("the other token does not work for its own video: %d", code)
	}

	// hls.js in headless Chromium (as Vitals plays) lists the track and
	// the <video> element gets its cues.
	t.Run("hls.js", func(t *testing.T) {
		res := playInChromium(t, srv.URL+"/page/player.html?src="+url.QueryEscape(base+topology.MasterFile))
		if res.Fatal != "" || len(res.Tracks) != 1 || res.Tracks[0].Lang != "en" || res.Tracks[0].Name != "English" ||
			!slices.Contains(res.Cues, "Stand up slowly") || len(res.Errors) > 0 {
			t.Fatalf("hls.js: %+v", res)
		}
		t.Logf("hls.js: tracks %+v, cues %q at %.2f s", res.Tracks, res.Cues, res.Time)
	})

	// The web MP4 is faststart and locked.
	info, err := s.st.Stat(context.Background(), bucket, v.WebMP4)
	if err != nil {
		t.Fatal(err)
	}
	rc, _, err := s.st.Get(context.Background(), bucket, v.WebMP4, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	web, _ := io.ReadAll(rc)
	rc.Close()
	if boxes, err := webmp4.TopLevel(bytes.NewReader(web), int64(len(web))); err != nil || !webmp4.Faststart(boxes) || info.Retention == nil {
		t.Fatalf("web.mp4: %+v %v retention %v", boxes, err, info.Retention)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(audited) == 0 {
		t.Error("no playlist fetch audited")
	}
	logs, _ := exec.Command("grep", "-r", "-l", transcodePHI, s.data).Output()
	if len(bytes.TrimSpace(logs)) > 0 {
		t.Errorf("client metadata found in %s", logs)
	}
}
