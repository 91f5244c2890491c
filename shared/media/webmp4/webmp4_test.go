package webmp4

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/testutil/testclip"
)

func layout(t *testing.T, path string) []Box {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	boxes, err := TopLevel(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	return boxes
}

type probed struct {
	Streams []struct {
		CodecType string `json:"codec_type"`
		CodecName string `json:"codec_name"`
		Width     int    `json:"width"`
		Height    int    `json:"height"`
		SideData  []struct {
			Rotation int `json:"rotation"`
		} `json:"side_data_list"`
	} `json:"streams"`
	Format struct {
		Tags map[string]string `json:"tags"`
	} `json:"format"`
}

func ffprobe(t *testing.T, path string) probed {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", path).Output()
	if err != nil {
		t.Fatal(err)
	}
	var p probed
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func ffmpeg(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ffmpeg", append([]string{"-hide_banner", "-loglevel", "error", "-nostdin", "-y"}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg %v: %v\n%s", args, err, out)
	}
}

func TestLayout(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	fast, slow := filepath.Join(dir, "fast.mp4"), filepath.Join(dir, "slow.mp4")
	if err := testclip.Make(ctx, fast, testclip.Options{Seconds: 1, FastStart: true}); err != nil {
		t.Fatal(err)
	}
	if err := testclip.Make(ctx, slow, testclip.Options{Seconds: 1}); err != nil {
		t.Fatal(err)
	}
	if boxes := layout(t, fast); !Faststart(boxes) {
		t.Fatalf("faststart clip: %+v", boxes)
	}
	if boxes := layout(t, slow); Faststart(boxes) || boxes[len(boxes)-1].Type != "mdat" {
		t.Fatalf("moov-last clip: %+v", boxes)
	}
	// Hostile layouts end the scan with an error, never a hang or a panic.
	for name, b := range map[string][]byte{
		"short":      {0, 0, 0},
		"zero size":  append([]byte{0, 0, 0, 4}, "ftyp"...),
		"past end":   append([]byte{0, 0, 1, 0}, "ftyp"...),
		"huge 64bit": append(append([]byte{0, 0, 0, 1}, "ftyp"...), 0xff, 0, 0, 0, 0, 0, 0, 0),
	} {
		if _, err := TopLevel(bytes.NewReader(b), int64(len(b))); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	many := bytes.Repeat(append([]byte{0, 0, 0, 8}, "free"...), MaxBoxes+1)
	if _, err := TopLevel(bytes.NewReader(many), int64(len(many))); err == nil {
		t.Error("endless boxes: no error")
	}
}

func TestArgsMakeWebReady(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	// Copy: H.264/AAC with moov last, rotated, with a location tag.
	slow := filepath.Join(dir, "slow.mp4")
	if err := testclip.Make(ctx, slow, testclip.Options{Seconds: 1, Rotation: 90}); err != nil {
		t.Fatal(err)
	}
	tagged := filepath.Join(dir, "tagged.mp4")
	ffmpeg(t, "-i", slow, "-map", "0", "-c", "copy", "-metadata", "location=+40.7128-074.0060/", "-metadata", "title=Patient X", tagged)
	if tags := ffprobe(t, tagged).Format.Tags; !strings.Contains(tags["location"], "40.7128") {
		t.Fatalf("test clip lacks its location: %v", tags)
	}
	p := meta.Probe{VideoCodec: "h264", AudioCodec: "aac", HasAudio: true, Width: 640, Height: 360, Rotation: 90}
	out := filepath.Join(dir, "web-copy.mp4")
	ffmpeg(t, append([]string{"-i", tagged}, Args(p, "", out)...)...)
	check := func(out string, vcodec string, w, h, rot int) {
		t.Helper()
		if boxes := layout(t, out); !Faststart(boxes) {
			t.Errorf("%s: not faststart: %+v", out, boxes)
		}
		pr := ffprobe(t, out)
		if len(pr.Streams) != 2 || pr.Streams[0].CodecName != vcodec || pr.Streams[1].CodecName != "aac" || pr.Streams[0].Width != w || pr.Streams[0].Height != h {
			t.Errorf("%s: streams %+v", out, pr.Streams)
		}
		got := 0
		for _, sd := range pr.Streams[0].SideData {
			got = sd.Rotation
		}
		if got != rot {
			t.Errorf("%s: rotation %d, want %d", out, got, rot)
		}
		for k, v := range pr.Format.Tags {
			if k == "location" || k == "title" || strings.Contains(v, "Patient") {
				t.Errorf("%s: metadata %s=%q kept", out, k, v)
			}
		}
	}
	srcRot := 0
	for _, sd := range ffprobe(t, tagged).Streams[0].SideData {
		srcRot = sd.Rotation
	}
	if srcRot == 0 {
		t.Fatal("test clip is not rotated")
	}
	check(out, "h264", 360, 640, srcRot) // copied: coded size and rotation as in the original

	// Encode: MPEG-4 Part 2 video and MP3 audio in Matroska, 1280x720.
	other := filepath.Join(dir, "other.mkv")
	ffmpeg(t, "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30:duration=1", "-f", "lavfi", "-i", "sine=duration=1",
		"-c:v", "mpeg4", "-c:a", "libmp3lame", "-metadata", "title=Patient X", other)
	p = meta.Probe{VideoCodec: "mpeg4", AudioCodec: "mp3", HasAudio: true, Width: 1280, Height: 720}
	if VideoCopies(p) || AudioCopies(p) {
		t.Fatal("mpeg4/mp3 would be copied")
	}
	out = filepath.Join(dir, "web-encode.mp4")
	ffmpeg(t, append([]string{"-i", other}, Args(p, "ultrafast", out)...)...)
	check(out, "h264", 1280, 720, 0)
}
