package testclip

import (
	"context"
	"os/exec"
	"strings"
	"testing"

	"github.com/mieweb/pulsevault/shared/testutil/tier"
)

func probe(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "stream=codec_type,width,height:stream_side_data=rotation:format=duration", "-of", "compact", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe: %v %s", err, out)
	}
	return string(out)
}

func TestMake(t *testing.T) {
	tier.Integration(t, "ffmpeg and ffprobe")
	dir := t.TempDir()
	ctx := context.Background()
	p := Path(dir, "default")
	if err := Make(ctx, p, Options{}); err != nil {
		t.Fatal(err)
	}
	if out := probe(t, p); !strings.Contains(out, "width=360|height=640") || !strings.Contains(out, "codec_type=audio") {
		t.Fatalf("default clip: %s", out)
	}
	p = Path(dir, "odd")
	if err := Make(ctx, p, Options{Width: 361, Height: 641, NoAudio: true, Rotation: 90, VFR: true, Seconds: 2}); err != nil {
		t.Fatal(err)
	}
	if out := probe(t, p); strings.Contains(out, "codec_type=audio") || !strings.Contains(out, "width=361|height=641") || !strings.Contains(out, "rotation=") {
		t.Fatalf("odd clip: %s", out)
	}
}
