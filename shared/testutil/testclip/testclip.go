// Package testclip generates small video files with the real ffmpeg for
// tests and benchmarks: phone-like H.264 + AAC MP4s in any shape, with or
// without audio, rotation metadata or a variable frame rate.
package testclip

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
)

// Options describes a clip. Zero values give a 5 s 360×640 portrait clip
// with audio at 30 fps, moov at the end of the file like a phone writes it.
type Options struct {
	Width, Height int
	Seconds       float64
	FPS           int
	NoAudio       bool
	Mono          bool // one audio channel (phones' voice memos, some cameras)
	Rotation      int  // display rotation metadata in degrees (90, 180, 270)
	VFR           bool // variable frame rate (frames dropped unevenly)
	FastStart     bool // moov at the start instead of the end
}

// Make writes the clip to path.
func Make(ctx context.Context, path string, o Options) error {
	if o.Width == 0 {
		o.Width = 360
	}
	if o.Height == 0 {
		o.Height = 640
	}
	if o.Seconds == 0 {
		o.Seconds = 5
	}
	if o.FPS == 0 {
		o.FPS = 30
	}
	dur := strconv.FormatFloat(o.Seconds, 'f', 3, 64)
	// testsrc2 rounds odd sizes down: draw even, then scale to the exact size.
	args := []string{"-hide_banner", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=%dx%d:rate=%d:duration=%s", o.Width+o.Width%2, o.Height+o.Height%2, o.FPS, dur)}
	if !o.NoAudio {
		args = append(args, "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration="+dur)
	}
	vf := fmt.Sprintf("scale=%d:%d", o.Width, o.Height)
	if o.VFR {
		// Drop frames in an irregular pattern so frame durations vary.
		vf += ",select='not(eq(mod(n\\,7)\\,3))*not(eq(mod(n\\,11)\\,5))'"
		args = append(args, "-fps_mode", "vfr")
	}
	// 4:2:0 needs even dimensions; odd ones (which phones never write) need 4:4:4.
	pix := "yuv420p"
	if o.Width%2 != 0 || o.Height%2 != 0 {
		pix = "yuv444p"
	}
	args = append(args, "-vf", vf, "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", pix, "-g", strconv.Itoa(o.FPS))
	if !o.NoAudio {
		args = append(args, "-c:a", "aac", "-b:a", "96k", "-shortest")
		if o.Mono {
			args = append(args, "-ac", "1")
		} else {
			args = append(args, "-ac", "2")
		}
	}
	if o.FastStart {
		args = append(args, "-movflags", "+faststart")
	}
	out := path
	if o.Rotation != 0 {
		out = path + ".norot.mp4"
		defer os.Remove(out)
	}
	if err := ffmpeg(ctx, append(args, out)...); err != nil {
		return err
	}
	if o.Rotation != 0 {
		// ffmpeg 5.1 writes the rotate tag only when stream-copying.
		rot := []string{"-hide_banner", "-loglevel", "error", "-y", "-i", out, "-map", "0", "-c", "copy",
			"-metadata:s:v:0", "rotate=" + strconv.Itoa(o.Rotation)}
		if o.FastStart {
			rot = append(rot, "-movflags", "+faststart")
		}
		return ffmpeg(ctx, append(rot, path)...)
	}
	return nil
}

func ffmpeg(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "ffmpeg", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("testclip: ffmpeg: %v: %s", err, out)
	}
	return nil
}

// Path is a file name in dir for a clip (the name carries no meaning).
func Path(dir, name string) string { return filepath.Join(dir, name+".mp4") }
