package encode

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/testutil/testclip"
	"github.com/mieweb/pulsevault/shared/testutil/tier"
)

// An original that is really a playlist must not make ffmpeg read what it
// points at: every ffmpeg that opens an original carries probe's protocol
// and demuxer whitelist, as ffprobe does. Without it, the poster run below
// renders a frame of the file the playlist names.
func TestOriginalIsReadThroughTheWhitelist(t *testing.T) {
	tier.Integration(t, "ffmpeg")
	dir := t.TempDir()
	secret := filepath.Join(dir, "other-patient.mp4")
	if err := testclip.Make(context.Background(), secret, testclip.Options{Seconds: 1, NoAudio: true}); err != nil {
		t.Fatal(err)
	}
	list := filepath.Join(dir, "original.mp4")
	pl := "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXTINF:1.0,\n" + secret + "\n#EXT-X-ENDLIST\n"
	if err := os.WriteFile(list, []byte(pl), 0o600); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	err := Posters(context.Background(), list, nil, out, meta.Probe{Duration: 1, Width: 360, Height: 640})
	if err == nil {
		t.Fatal("posters were rendered from the file a playlist original points at")
	}
	if _, serr := os.Stat(filepath.Join(out, "poster.jpg")); serr == nil {
		t.Fatal("poster.jpg written from a playlist original")
	}

	for _, input := range []string{"http://127.0.0.1:40000/ABCDEFGHIJKLMNOPQRSTUVWXYZ.mp4", list} {
		args := inputArgs(input)
		i := slices.Index(args, "-i")
		if i < 0 || !slices.Contains(args[:i], "-protocol_whitelist") || !slices.Contains(args[:i], "-format_whitelist") {
			t.Errorf("input options for %s lack the whitelists: %q", input, args)
		}
	}
}
