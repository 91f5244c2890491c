package probe

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mieweb/pulsevault/shared/platform/loopback"
	"github.com/mieweb/pulsevault/shared/testutil/testclip"
	"github.com/mieweb/pulsevault/shared/testutil/tier"
)

// file is a local file as the object ffprobe reads.
func file(t *testing.T, path string) loopback.Object {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return loopback.Object{Size: st.Size(), Open: func(_ context.Context, off, n int64) (io.ReadCloser, error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		return struct {
			io.Reader
			io.Closer
		}{io.NewSectionReader(f, off, n), f}, nil
	}}
}

func TestProbeRealFiles(t *testing.T) {
	tier.Integration(t, "ffmpeg and ffprobe")
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	if err := testclip.Make(ctx, filepath.Join(dir, "rot.mp4"), testclip.Options{Width: 640, Height: 360, Rotation: 90, Seconds: 2}); err != nil {
		t.Fatal(err)
	}
	if err := testclip.Make(ctx, filepath.Join(dir, "mute.mp4"), testclip.Options{NoAudio: true, Seconds: 1, FastStart: true}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "text"), []byte("this is not a video, just text\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	whole, err := os.ReadFile(filepath.Join(dir, "rot.mp4"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cut"), whole[:len(whole)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	// A concat script pointing at a local file must not be followed.
	if err := os.WriteFile(filepath.Join(dir, "concat"), []byte("ffconcat version 1.0\nfile /etc/passwd\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var p Prober

	r, err := p.Probe(ctx, file(t, filepath.Join(dir, "rot.mp4")))
	if err != nil {
		t.Fatal(err)
	}
	if r.Width != 360 || r.Height != 640 || (r.Rotation != 90 && r.Rotation != 270) {
		t.Errorf("rotated 640x360: got %dx%d rotation %d, want 360x640 displayed", r.Width, r.Height, r.Rotation)
	}
	if !r.HasAudio || r.AudioCodec != "aac" || r.VideoCodec != "h264" || r.FPS != 30 || r.Ext != "mp4" || r.ContentType != "video/mp4" {
		t.Errorf("probe: %+v", r)
	}
	if r.Duration < 1.9 || r.Duration > 2.2 {
		t.Errorf("duration %.3f, want about 2", r.Duration)
	}

	r, err = p.Probe(ctx, file(t, filepath.Join(dir, "mute.mp4")))
	if err != nil {
		t.Fatal(err)
	}
	if r.HasAudio || r.Width != 360 || r.Height != 640 || r.Rotation != 0 {
		t.Errorf("mute clip: %+v", r)
	}

	for name, want := range map[string]string{"text": ReasonNotVideo, "cut": ReasonTruncated, "concat": ReasonNotVideo} {
		_, err := p.Probe(ctx, file(t, filepath.Join(dir, name)))
		var rej *Rejected
		if !errors.As(err, &rej) || rej.Reason != want {
			t.Errorf("%s: %v, want rejection %s", name, err, want)
			continue
		}
		if strings.Contains(err.Error(), "127.0.0.1") {
			t.Errorf("%s: error quotes the URL: %v", name, err)
		}
	}

	// An unreachable store is not the file's fault: no rejection.
	gone := loopback.Object{Size: 1000, Open: func(context.Context, int64, int64) (io.ReadCloser, error) {
		return nil, errors.New("store unreachable")
	}}
	_, err = p.Probe(ctx, gone)
	var rej *Rejected
	if err == nil || errors.As(err, &rej) {
		t.Errorf("unreachable URL: %v, want a plain (retryable) error", err)
	}
}

func TestParseNoVideoStream(t *testing.T) {
	_, err := parse([]byte(`{"streams":[{"codec_type":"audio","codec_name":"aac"}],"format":{"format_name":"mov,mp4","duration":"3.0"}}`), "")
	var rej *Rejected
	if !errors.As(err, &rej) || rej.Reason != ReasonNotVideo {
		t.Fatalf("audio-only: %v", err)
	}
}
