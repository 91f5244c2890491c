// Package probe runs ffprobe on a stored video (the staged upload) and
// turns its answer into meta.Probe, or into a rejection with a
// machine-readable reason when the file is not a video PulseVault can take.
//
// ffprobe reads the object through a loopback.Server bound to it, never
// through a presigned URL (its argv is world-readable). It only ever reads
// that one URL: nested protocols are limited to HTTP(S) and demuxers to
// video containers, so an upload that is really a playlist or a concat
// script cannot make it open other files.
package probe

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/platform/childproc"
	"github.com/mieweb/pulsevault/shared/platform/loopback"
)

// Rejection reasons (audit and meta.json machine codes).
const (
	ReasonNotVideo  = "not-a-video" // not a video container, or no video stream
	ReasonTruncated = "truncated"   // a video container whose data stops early
)

// formats are the demuxers ffprobe may use: what phones and cameras write.
const formats = "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,mpegts"

// InputOptions are the ffprobe/ffmpeg input options that confine reading
// input to that one input: an http(s) URL may only use HTTP(S) (no file:,
// no concat:, nothing a playlist could point at), a local path only the
// file protocol; and only the demuxers of formats, so a file that is really
// an HLS playlist or a concat script is refused instead of followed. Every
// ffmpeg that reads an original passes them.
func InputOptions(input string) []string {
	protocols := "file"
	if strings.HasPrefix(input, "http://") || strings.HasPrefix(input, "https://") {
		protocols = "http,https,tcp,tls"
	}
	return []string{"-protocol_whitelist", protocols, "-format_whitelist", formats}
}

// Rejected means the input is not an acceptable video. Reason is a machine
// code; the message never quotes the URL.
type Rejected struct {
	Reason string
	Detail string // what ffprobe said, URL removed
}

func (r *Rejected) Error() string { return "probe: rejected (" + r.Reason + "): " + r.Detail }

// Result is what a probe found.
type Result struct {
	meta.Probe
	Ext         string // extension for the original, from the container (never the client's file name)
	ContentType string
}

// Prober runs ffprobe.
type Prober struct {
	Binary  string        // default "ffprobe" on PATH
	Timeout time.Duration // default 60s
}

// Probe inspects the video obj. A *Rejected error means the input is bad
// for good; any other error is worth a retry (store unreachable, ffprobe
// missing, timeout).
func (p Prober) Probe(ctx context.Context, obj loopback.Object) (Result, error) {
	bin := p.Binary
	if bin == "" {
		bin = "ffprobe"
	}
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	src, err := loopback.Serve(ctx, obj)
	if err != nil {
		return Result{}, fmt.Errorf("probe: %w", err)
	}
	defer src.Close()
	var stdout, stderr bytes.Buffer
	args := append([]string{"-v", "error", "-hide_banner"}, InputOptions(src.URL())...)
	cmd := exec.CommandContext(ctx, bin, append(args, "-print_format", "json", "-show_format", "-show_streams", src.URL())...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := childproc.Start(cmd); err != nil {
		return Result{}, fmt.Errorf("probe: run ffprobe: %w", err)
	}
	if err := src.Bind(cmd.Process.Pid); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return Result{}, fmt.Errorf("probe: %w", err)
	}
	err = cmd.Wait()
	src.Close()
	msg := strings.TrimSpace(strings.ReplaceAll(stderr.String(), src.URL(), "<input>"))
	if ctx.Err() != nil {
		return Result{}, fmt.Errorf("probe: ffprobe did not finish within %s", timeout)
	}
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			return Result{}, fmt.Errorf("probe: run ffprobe: %w", err)
		}
		return Result{}, classify(ctx, obj, msg)
	}
	return parse(stdout.Bytes(), msg)
}

// classify tells bad input from a failure to read it. ffprobe says
// "Invalid data" both for a text file and for an MP4 cut before its moov
// atom, so the first bytes decide which one it is.
func classify(ctx context.Context, obj loopback.Object, msg string) error {
	bad := strings.Contains(msg, "Invalid data found") || strings.Contains(msg, "moov atom not found") ||
		strings.Contains(msg, "partial file") || strings.Contains(msg, "End of file") ||
		strings.Contains(msg, "not on whitelist")
	if !bad {
		return fmt.Errorf("probe: ffprobe failed: %s", firstLine(msg))
	}
	head, err := readHead(ctx, obj)
	if err != nil {
		return err
	}
	if isContainer(head) {
		return &Rejected{Reason: ReasonTruncated, Detail: firstLine(msg)}
	}
	return &Rejected{Reason: ReasonNotVideo, Detail: firstLine(msg)}
}

// readHead reads the first bytes of obj, straight from the store.
func readHead(ctx context.Context, obj loopback.Object) ([]byte, error) {
	n := min(obj.Size, 16)
	if n == 0 {
		return nil, nil
	}
	rc, err := obj.Open(ctx, 0, n)
	if err != nil {
		return nil, fmt.Errorf("probe: read the first bytes: %w", err)
	}
	defer rc.Close()
	return io.ReadAll(io.LimitReader(rc, n))
}

// isContainer recognises the video containers of formats by magic number.
func isContainer(b []byte) bool {
	switch {
	case len(b) >= 8 && (string(b[4:8]) == "ftyp" || string(b[4:8]) == "mdat" || string(b[4:8]) == "moov" ||
		string(b[4:8]) == "wide" || string(b[4:8]) == "free"):
		return true // ISO BMFF / QuickTime
	case len(b) >= 4 && bytes.Equal(b[:4], []byte{0x1a, 0x45, 0xdf, 0xa3}):
		return true // Matroska / WebM
	case len(b) >= 12 && string(b[:4]) == "RIFF" && string(b[8:12]) == "AVI ":
		return true
	case len(b) >= 1 && b[0] == 0x47:
		return true // MPEG-TS sync byte
	}
	return false
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

type ffprobeOut struct {
	Streams []struct {
		CodecType    string            `json:"codec_type"`
		CodecName    string            `json:"codec_name"`
		Channels     int               `json:"channels"`
		Width        int               `json:"width"`
		Height       int               `json:"height"`
		AvgFrameRate string            `json:"avg_frame_rate"`
		RFrameRate   string            `json:"r_frame_rate"`
		Duration     string            `json:"duration"`
		Disposition  map[string]int    `json:"disposition"`
		Tags         map[string]string `json:"tags"`
		SideData     []struct {
			Rotation *float64 `json:"rotation"`
		} `json:"side_data_list"`
	} `json:"streams"`
	Format struct {
		FormatName string            `json:"format_name"`
		Duration   string            `json:"duration"`
		BitRate    string            `json:"bit_rate"`
		Tags       map[string]string `json:"tags"`
	} `json:"format"`
}

// parse turns ffprobe's JSON into a Result.
func parse(b []byte, msg string) (Result, error) {
	var o ffprobeOut
	if err := json.Unmarshal(b, &o); err != nil {
		return Result{}, fmt.Errorf("probe: ffprobe output: %w", err)
	}
	var r Result
	r.Format = o.Format.FormatName
	r.Duration = num(o.Format.Duration)
	r.Bitrate = int64(num(o.Format.BitRate))
	video := false
	for _, s := range o.Streams {
		switch s.CodecType {
		case "video":
			if video || s.Disposition["attached_pic"] == 1 || s.Width <= 0 || s.Height <= 0 {
				continue
			}
			video = true
			r.VideoCodec = s.CodecName
			r.Width, r.Height = s.Width, s.Height
			r.FPS = rate(s.AvgFrameRate)
			if r.FPS == 0 {
				r.FPS = rate(s.RFrameRate)
			}
			r.Rotation = rotation(s.Tags["rotate"], s.SideData)
			if r.Rotation == 90 || r.Rotation == 270 {
				r.Width, r.Height = r.Height, r.Width
			}
			if r.Duration == 0 {
				r.Duration = num(s.Duration)
			}
		case "audio":
			if !r.HasAudio {
				r.HasAudio = true
				r.AudioCodec = s.CodecName
				r.AudioChannels = s.Channels
			}
		}
	}
	if !video {
		return Result{}, &Rejected{Reason: ReasonNotVideo, Detail: "no video stream"}
	}
	if r.Duration <= 0 || math.IsNaN(r.Duration) || math.IsInf(r.Duration, 0) {
		// A still image or a stream whose length ffprobe cannot tell.
		return Result{}, &Rejected{Reason: ReasonNotVideo, Detail: "no duration"}
	}
	if msg != "" && (strings.Contains(msg, "partial file") || strings.Contains(msg, "Invalid data")) {
		return Result{}, &Rejected{Reason: ReasonTruncated, Detail: firstLine(msg)}
	}
	r.Ext, r.ContentType = container(o.Format.FormatName, o.Format.Tags["major_brand"], r.VideoCodec)
	return r, nil
}

func container(format, brand, vcodec string) (ext, contentType string) {
	switch {
	case strings.HasPrefix(format, "mov,"):
		if strings.TrimSpace(brand) == "qt" {
			return "mov", "video/quicktime"
		}
		return "mp4", "video/mp4"
	case strings.HasPrefix(format, "matroska"):
		if vcodec == "vp8" || vcodec == "vp9" || vcodec == "av1" {
			return "webm", "video/webm"
		}
		return "mkv", "video/x-matroska"
	case format == "avi":
		return "avi", "video/x-msvideo"
	case format == "mpegts":
		return "ts", "video/mp2t"
	}
	return "bin", "application/octet-stream"
}

// rotation is the display rotation in degrees, 0–359: the legacy rotate
// tag, else the display matrix side data.
func rotation(tag string, side []struct {
	Rotation *float64 `json:"rotation"`
}) int {
	deg := 0.0
	if n, err := strconv.ParseFloat(tag, 64); err == nil {
		deg = n
	} else {
		for _, sd := range side {
			if sd.Rotation != nil {
				deg = *sd.Rotation
				break
			}
		}
	}
	d := int(math.Round(deg)) % 360
	if d < 0 {
		d += 360
	}
	return d
}

// num parses one of ffprobe's numbers; anything that is not a finite
// number counts as absent, since meta.json (JSON) cannot hold NaN or Inf.
func num(s string) float64 {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0
	}
	return f
}

// rate parses ffprobe's "30000/1001".
func rate(s string) float64 {
	n, d, ok := strings.Cut(s, "/")
	if !ok {
		return num(s)
	}
	a, b := num(n), num(d)
	r := math.Round(a/b*1000) / 1000
	if b == 0 || math.IsInf(r, 0) || r < 0 {
		return 0
	}
	return r
}
