// Package encode produces renditions of a video with FFmpeg (one per
// process, or a group of video rungs from one decode) — CMAF
// fMP4 segments plus a media playlist on a fixed 2 s grid, so every
// rendition lines up in one master playlist and one MPD — and runs a
// transcode job end to end: original in, segments, posters and meta.json
// out, with progress, retries and failure reasons a machine can read.
package encode

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"github.com/prometheus/client_golang/prometheus"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mieweb/pulsevault/shared/ingest/probe"
	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/platform/childproc"
	"github.com/mieweb/pulsevault/shared/topology"
)

// SegmentSeconds is the segment and keyframe grid of every rendition.
const SegmentSeconds = 2

// Spec is one rendition to encode.
type Spec struct {
	Input     string              // the original: a loopback.Server's URL, or a local path
	Bind      func(pid int) error // called with ffmpeg's pid once it runs (loopback.Server.Bind); nil for a path
	Dir       string              // existing, empty output directory
	Rendition meta.Rendition
	Probe     meta.Probe
	Preset    string // x264 preset; default veryfast
	// CPU counts ffmpeg's CPU seconds by renditions; nil: not counted.
	CPU *prometheus.CounterVec
}

// Failure codes: machine-readable reasons recorded in meta.json, audit
// events and metrics.
const (
	CodeUndecodable = "source-undecodable" // ffmpeg cannot decode the original
	CodeNoStream    = "source-no-stream"   // the original lacks the stream the rendition needs
	CodeUnreachable = "source-unreachable" // reading the original failed (network, store)
	CodeCancelled   = "cancelled"          // the invocation ended before ffmpeg did
	CodeKilled      = "ffmpeg-killed"      // ffmpeg died by a signal it was not sent by us
	CodeFailed      = "ffmpeg-failed"      // any other non-zero exit
	CodeBadOutput   = "bad-output"         // ffmpeg succeeded but its output is unusable
	CodeStore       = "store-error"        // writing results failed
)

// Error is a failed ffmpeg run.
type Error struct {
	Code      string
	Permanent bool   // retrying with the same input cannot help
	Tail      string // sanitized end of ffmpeg's stderr
	Err       error
}

func (e *Error) Error() string {
	s := "transcode: " + e.Code
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Args returns ffmpeg's arguments for s (without the program name). Every
// rendition gets the same time-based keyframe grid and segment length,
// which is what keeps renditions switchable.
func Args(s Spec) ([]string, error) {
	r := s.Rendition
	args := inputArgs(s.Input)
	switch r.Kind {
	case "video":
		out, err := videoOutput(r, s.Probe, s.Preset)
		if err != nil {
			return nil, err
		}
		args = append(args, "-map", "0:v:0", "-an", "-sn", "-dn", "-vf", scaleFilter(r))
		args = append(args, out...)
	case "audio":
		args = append(args, audioOutput(r, s.Probe)...)
	default:
		return nil, fmt.Errorf("transcode: rendition %s: unknown kind %q", r.Name, r.Kind)
	}
	args = append(args, hlsOutput("")...)
	return append(args, "-progress", "pipe:1", topology.PlaylistFile), nil
}

// GroupSpec is several renditions encoded by one ffmpeg process from one
// decode of the original: higher video rungs, or the lowest rung and the
// audio.
type GroupSpec struct {
	Input      string              // the original: a loopback.Server's URL, or a local path
	Bind       func(pid int) error // as Spec.Bind
	Dir        string              // existing directory; rendition r is written into Dir/<r.Name>/ (created by RunGroup)
	Renditions []meta.Rendition    // distinct names
	Probe      meta.Probe
	Preset     string // x264 preset; default veryfast
	// Nice is added to ffmpeg's nice value (0–19; 0 keeps ours). The
	// group encoding the higher rungs runs niced: it leaves the CPU to the
	// lowest rung's job running beside it, which is what makes a video
	// playable, and takes the CPU back once that job is done.
	Nice int
	CPU  *prometheus.CounterVec // as Spec.CPU
}

// GroupArgs returns ffmpeg's arguments for g: the decoded video is split
// once and each branch scaled and encoded with exactly the per-output
// options Args uses for that rendition alone (audio too), so a rendition's
// segments line up whichever policy produced it.
func GroupArgs(g GroupSpec) ([]string, error) {
	if len(g.Renditions) == 0 {
		return nil, errors.New("transcode: empty group")
	}
	args, err := LadderArgs(g.Input, g.Renditions, g.Probe, g.Preset)
	if err != nil {
		return nil, err
	}
	// Progress goes before the outputs: after them it would be an output option.
	i := slices.Index(args, "-i") + 2
	return slices.Concat(args[:i], []string{"-progress", "pipe:1"}, args[i:]), nil
}

// LadderArgs returns the arguments of one ffmpeg encoding the renditions
// rs (video rungs and audio) from one decode of input, each with the
// options its own job would use, into <name>/ under the working directory
// (the directories must exist). For the whole ladder it is the yardstick
// the fan-out policies are measured against.
func LadderArgs(input string, rs []meta.Rendition, p meta.Probe, preset string) ([]string, error) {
	var videos, audios []meta.Rendition
	seen := map[string]bool{}
	for _, r := range rs {
		if seen[r.Name] || !renditionRe.MatchString(r.Name) {
			return nil, fmt.Errorf("transcode: rendition %q: bad or repeated name in group", r.Name)
		}
		seen[r.Name] = true
		switch r.Kind {
		case "video":
			videos = append(videos, r)
		case "audio":
			audios = append(audios, r)
		default:
			return nil, fmt.Errorf("transcode: rendition %s: unknown kind %q", r.Name, r.Kind)
		}
	}
	args := inputArgs(input)
	if len(videos) > 0 {
		fc, outs, err := splitOutputs(videos, p, preset)
		if err != nil {
			return nil, err
		}
		args = append(append(args, "-filter_complex", fc), outs...)
	}
	for _, r := range audios {
		args = append(args, audioOutput(r, p)...)
		args = append(args, hlsOutput(r.Name+"/")...)
		args = append(args, r.Name+"/"+topology.PlaylistFile)
	}
	return args, nil
}

// splitOutputs is the filter graph splitting one decode into the video
// renditions rs and each rendition's output options, written into <name>/.
func splitOutputs(rs []meta.Rendition, p meta.Probe, preset string) (string, []string, error) {
	var fc strings.Builder
	fmt.Fprintf(&fc, "[0:v:0]split=%d", len(rs))
	for i := range rs {
		fmt.Fprintf(&fc, "[s%d]", i)
	}
	var outs []string
	for i, r := range rs {
		out, err := videoOutput(r, p, preset)
		if err != nil {
			return "", nil, err
		}
		fmt.Fprintf(&fc, ";[s%d]%s[v%d]", i, scaleFilter(r), i)
		outs = append(outs, "-map", fmt.Sprintf("[v%d]", i), "-an", "-sn", "-dn")
		outs = append(outs, out...)
		outs = append(outs, hlsOutput(r.Name+"/")...)
		outs = append(outs, r.Name+"/"+topology.PlaylistFile)
	}
	return fc.String(), outs, nil
}

func inputArgs(input string) []string {
	args := []string{"-hide_banner", "-nostdin", "-nostats", "-loglevel", "error",
		// Decode errors end the run instead of being concealed, so a
		// corrupt source fails clearly rather than yielding broken video.
		"-xerror"}
	if strings.HasPrefix(input, "http://") || strings.HasPrefix(input, "https://") {
		args = append(args, "-reconnect", "1", "-reconnect_on_network_error", "1", "-reconnect_delay_max", "4", "-rw_timeout", "30000000")
	}
	args = append(args, probe.InputOptions(input)...)
	return append(args, "-i", input, "-map_metadata", "-1", "-map_chapters", "-1")
}

// audioOutput is the audio rendition's stream selection and encoder options.
// A mono source stays mono (an upmix doubles the bytes and fakes a stereo
// image); more than two channels are mixed down to stereo, which every
// player decodes. An unknown count (meta.json from before it was probed)
// gets stereo, as before.
func audioOutput(r meta.Rendition, p meta.Probe) []string {
	channels := "2"
	if p.AudioChannels == 1 {
		channels = "1"
	}
	return []string{"-map", "0:a:0", "-vn", "-sn", "-dn",
		"-c:a", "aac", "-b:a", strconv.Itoa(max(r.Bitrate, 32000)), "-ac", channels, "-ar", "48000"}
}

// scaleFilter sizes a video rendition. The decoder applies rotation
// (autorotate), so the rendition's displayed size is also its coded size.
func scaleFilter(r meta.Rendition) string {
	return fmt.Sprintf("scale=%d:%d:flags=bicubic,setsar=1,format=yuv420p", r.Width, r.Height)
}

// videoOutput is the encoder half of a video rendition's options: the
// same keyframe grid in every rendition, whichever process encodes it.
func videoOutput(r meta.Rendition, p meta.Probe, preset string) ([]string, error) {
	if r.Width <= 0 || r.Height <= 0 || r.Width%2 != 0 || r.Height%2 != 0 {
		return nil, fmt.Errorf("transcode: rendition %s: bad size %dx%d (want even, positive)", r.Name, r.Width, r.Height)
	}
	if r.Bitrate <= 0 {
		return nil, fmt.Errorf("transcode: rendition %s: no target bitrate", r.Name)
	}
	if preset == "" {
		preset = "veryfast"
	}
	fps := Rate(p.FPS)
	keyint := int(math.Round(float64(SegmentSeconds) * fps.float()))
	return []string{"-r", fps.String(),
		"-c:v", "libx264", "-preset", preset, "-profile:v", "high",
		"-b:v", strconv.Itoa(r.Bitrate), "-maxrate", strconv.Itoa(r.Bitrate * 3 / 2), "-bufsize", strconv.Itoa(r.Bitrate * 2),
		"-g", strconv.Itoa(max(keyint, 1)), "-sc_threshold", "0",
		"-force_key_frames", fmt.Sprintf("expr:gte(t,n_forced*%d)", SegmentSeconds)}, nil
}

// hlsOutput is the CMAF HLS muxer's options; prefix places the segments
// (the init segment goes beside the playlist).
func hlsOutput(prefix string) []string {
	return []string{"-f", "hls", "-hls_time", strconv.Itoa(SegmentSeconds), "-hls_playlist_type", "vod",
		"-hls_segment_type", "fmp4", "-hls_fmp4_init_filename", topology.InitFile, "-hls_segment_filename", prefix + topology.SegmentPattern,
		"-hls_flags", "independent_segments"}
}

// FrameRate is a frame rate as a fraction.
type FrameRate struct{ Num, Den int }

func (f FrameRate) float() float64 { return float64(f.Num) / float64(f.Den) }

// Float is the rate in frames per second.
func (f FrameRate) Float() float64 { return f.float() }

func (f FrameRate) String() string {
	if f.Den == 1 {
		return strconv.Itoa(f.Num)
	}
	return strconv.Itoa(f.Num) + "/" + strconv.Itoa(f.Den)
}

// Rate turns a probed average frame rate into the constant output rate:
// NTSC rates become exact n*1000/1001 fractions, others are kept to the
// millisecond; unknown or absurd rates become 30, and rates above 60 are
// capped at 60 (the ladder's players and bitrates assume at most 60).
func Rate(fps float64) FrameRate {
	switch {
	case fps <= 0 || math.IsNaN(fps) || math.IsInf(fps, 0):
		return FrameRate{30, 1}
	case fps > 60:
		return FrameRate{60, 1}
	}
	for _, n := range []int{24, 30, 60} {
		if math.Abs(fps-float64(n)*1000/1001) < 0.005 {
			return FrameRate{n * 1000, 1001}
		}
	}
	if math.Abs(fps-math.Round(fps)) < 0.005 {
		return FrameRate{int(math.Round(fps)), 1}
	}
	return FrameRate{int(math.Round(fps * 1000)), 1000}
}

// Progress is ffmpeg's position in the output.
type Progress struct {
	OutTime time.Duration
	Done    bool
}

// ParseProgress reads `-progress` key=value blocks from r and calls fn at
// the end of each block. It returns when r ends.
func ParseProgress(r io.Reader, fn func(Progress)) error {
	sc := bufio.NewScanner(r)
	var p Progress
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok {
			continue
		}
		switch k {
		case "out_time_us", "out_time_ms": // both are microseconds (an old ffmpeg quirk)
			if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
				p.OutTime = time.Duration(n) * time.Microsecond
			}
		case "progress":
			p.Done = v == "end"
			fn(p)
		}
	}
	return sc.Err()
}

// Percent is p's share of total, 0–100.
func (p Progress) Percent(total time.Duration) float64 {
	if p.Done {
		return 100
	}
	if total <= 0 {
		return 0
	}
	return math.Min(99.9, math.Max(0, 100*float64(p.OutTime)/float64(total)))
}

// tailBytes is how much of stderr is kept: the end is what explains a failure.
const tailBytes = 8 << 10

// tail keeps the last tailBytes written to it.
type tail struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > tailBytes {
		t.buf = append([]byte(nil), t.buf[len(t.buf)-tailBytes:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

var (
	urlRe     = regexp.MustCompile(`[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'"]+`)
	quotedRe  = regexp.MustCompile(`'[^'\n]*'|"[^"\n]*"`)
	hexRe     = regexp.MustCompile(`\b[0-9a-fA-F]{32,}\b`)
	controlRe = regexp.MustCompile(`[^\x20-\x7e\n]`)
)

// MaxTail bounds a sanitized stderr tail.
const MaxTail = 1024

// Sanitize makes ffmpeg's stderr safe to store and log: URLs, quoted strings (file names, metadata), long
// hex strings and the paths given are replaced, control characters dropped,
// and only the last lines up to MaxTail bytes kept.
func Sanitize(s string, paths ...string) string {
	for _, p := range paths {
		if p != "" {
			s = strings.ReplaceAll(s, p, "<path>")
		}
	}
	s = urlRe.ReplaceAllString(s, "<url>")
	s = quotedRe.ReplaceAllString(s, "<quoted>")
	s = hexRe.ReplaceAllString(s, "<hex>")
	s = controlRe.ReplaceAllString(s, "")
	s = strings.TrimSpace(s)
	for len(s) > MaxTail {
		i := strings.IndexByte(s, '\n')
		if i < 0 || len(s)-i-1 < MaxTail/2 {
			s = s[len(s)-MaxTail:]
			break
		}
		s = s[i+1:]
	}
	return s
}

// Run encodes s, calling progress (if not nil) as ffmpeg reports it. ffmpeg
// is killed when ctx ends and when this process dies. Errors are *Error.
func Run(ctx context.Context, s Spec, progress func(Progress)) error {
	args, err := Args(s)
	if err != nil {
		return &Error{Code: CodeFailed, Permanent: true, Err: err}
	}
	return run(ctx, s.Dir, args, s.Input, s.Bind, progress, 0, s.Rendition.Name, s.CPU)
}

// RunGroup encodes every rendition of g in one ffmpeg process, as Run does
// one. A failure fails the whole group: ffmpeg stops all outputs at once.
func RunGroup(ctx context.Context, g GroupSpec, progress func(Progress)) error {
	args, err := GroupArgs(g)
	if err != nil {
		return &Error{Code: CodeFailed, Permanent: true, Err: err}
	}
	for _, r := range g.Renditions {
		if err := os.Mkdir(filepath.Join(g.Dir, r.Name), 0o700); err != nil {
			return &Error{Code: CodeFailed, Err: err}
		}
	}
	names := make([]string, len(g.Renditions))
	for i, r := range g.Renditions {
		names[i] = r.Name
	}
	return run(ctx, g.Dir, args, g.Input, g.Bind, progress, g.Nice, strings.Join(names, "+"), g.CPU)
}

// run runs one ffmpeg reading input, admitted by bind (if not nil) once it
// runs; renditions names what it encodes, for the CPU metric.
func run(ctx context.Context, dir string, args []string, input string, bind func(int) error, progress func(Progress), nice int, renditions string, cpu *prometheus.CounterVec) error {
	cmd := exec.CommandContext(ctx, "ffmpeg", args...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 5 * time.Second
	var errTail tail
	cmd.Stderr = &errTail
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return &Error{Code: CodeFailed, Err: err}
	}
	if err := childproc.Start(cmd); err != nil {
		return &Error{Code: CodeFailed, Err: fmt.Errorf("start ffmpeg: %w", err)}
	}
	if bind != nil {
		if err := bind(cmd.Process.Pid); err != nil {
			_ = cmd.Process.Kill()
			_, _ = io.Copy(io.Discard, stdout)
			_ = cmd.Wait()
			return &Error{Code: CodeFailed, Err: err}
		}
	}
	if nice > 0 {
		renice(cmd.Process.Pid, nice)
	}
	if progress == nil {
		progress = func(Progress) {}
	}
	_ = ParseProgress(stdout, progress)
	_, _ = io.Copy(io.Discard, stdout)
	err = cmd.Wait()
	if ps := cmd.ProcessState; ps != nil && cpu != nil {
		cpu.WithLabelValues(renditions).Add((ps.UserTime() + ps.SystemTime()).Seconds())
	}
	if err == nil {
		return nil
	}
	raw := errTail.String()
	e := &Error{Tail: Sanitize(raw, input, dir), Err: errors.New("ffmpeg failed")}
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		e.Code, e.Err = CodeCancelled, ctx.Err()
	case errors.As(err, &exit) && exit.ProcessState != nil && !exit.Exited():
		e.Code = CodeKilled
		e.Err = fmt.Errorf("ffmpeg: %s", exit.ProcessState.String())
	default:
		e.Code, e.Permanent = classify(raw)
		if errors.As(err, &exit) {
			e.Err = fmt.Errorf("ffmpeg exited with status %d", exit.ExitCode())
		}
	}
	return e
}

// renice adds n to the nice value of every thread of process pid (Linux
// keeps a nice value per thread; threads started later inherit it from
// the thread that starts them). Best effort: lowering the priority of our
// own child is always allowed, and failing to only costs time to playable.
func renice(pid, n int) {
	// The raw getpriority answers 20 - nice.
	own, err := syscall.Getpriority(syscall.PRIO_PROCESS, 0)
	if err != nil {
		return
	}
	target := min(20-own+n, 19)
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		_ = syscall.Setpriority(syscall.PRIO_PROCESS, pid, target)
		return
	}
	for _, t := range tasks {
		if tid, err := strconv.Atoi(t.Name()); err == nil {
			_ = syscall.Setpriority(syscall.PRIO_PROCESS, tid, target)
		}
	}
}

var (
	networkRe = regexp.MustCompile(`(?i)(http error|server returned|connection (refused|reset|timed out)|timed out|network is unreachable|broken pipe|i/o error|input/output error|end of file while|failed to resolve)`)
	noStream  = regexp.MustCompile(`(?i)(matches no streams|does not contain any stream|output file #?\d+ does not contain)`)
	decodeRe  = regexp.MustCompile(`(?i)(invalid data found|moov atom not found|error while decoding|corrupt|invalid nal|decode_slice|non-existing pps|no frame!|error splitting|could not find codec parameters|concealing|error submitting packet to decoder|cabac|error while decoding mb|top block unavailable)`)
)

// classify names an ffmpeg failure from its stderr. Network trouble is
// checked first: a transfer cut mid-way also shows decode errors.
func classify(stderr string) (code string, permanent bool) {
	switch {
	case networkRe.MatchString(stderr):
		return CodeUnreachable, false
	case noStream.MatchString(stderr):
		return CodeNoStream, true
	case decodeRe.MatchString(stderr):
		return CodeUndecodable, true
	}
	return CodeFailed, false
}

// Posters writes poster.jpg (short side up to 720) and thumb.jpg (short
// side up to 180) into dir from a representative frame: ffmpeg's thumbnail
// filter picks it among the frames after the first quarter of the video.
// input and bind are as in Spec.
func Posters(ctx context.Context, input string, bind func(pid int) error, dir string, p meta.Probe) error {
	return posters(ctx, input, bind, dir, p, nil)
}

// posters is Posters counting ffmpeg's CPU on cpu (nil: not counted).
func posters(ctx context.Context, input string, bind func(pid int) error, dir string, p meta.Probe, cpu *prometheus.CounterVec) error {
	at := 0.0
	if p.Duration > 2 {
		at = p.Duration / 4
	}
	scale := func(short int) string {
		if p.Width <= p.Height {
			return fmt.Sprintf("scale=%d:-2", even(min(short, p.Width)))
		}
		return fmt.Sprintf("scale=-2:%d", even(min(short, p.Height)))
	}
	args := append([]string{"-hide_banner", "-nostdin", "-nostats", "-loglevel", "error"}, probe.InputOptions(input)...)
	args = append(args, "-ss", strconv.FormatFloat(at, 'f', 3, 64), "-i", input,
		"-filter_complex", "[0:v:0]thumbnail=25,split=2[a][b];[a]"+scale(720)+",setsar=1[p];[b]"+scale(180)+",setsar=1[t]",
		"-map", "[p]", "-frames:v", "1", "-q:v", "3", "-update", "1", topology.PosterFile,
		"-map", "[t]", "-frames:v", "1", "-q:v", "5", "-update", "1", topology.ThumbFile)
	if err := run(ctx, dir, args, input, bind, nil, 0, "poster", cpu); err != nil {
		return err
	}
	for _, f := range []string{topology.PosterFile, topology.ThumbFile} {
		if st, err := os.Stat(dir + "/" + f); err != nil || st.Size() == 0 {
			return &Error{Code: CodeBadOutput, Err: fmt.Errorf("ffmpeg wrote no %s", f)}
		}
	}
	return nil
}

func even(n int) int { return max(2, n-n%2) }
