// Package captions validates a Pulse upload's captions and turns them into
// the one WebVTT form PulseVault serves: a WebVTT file is parsed strictly
// (the W3C WebVTT file syntax: header, cue timings in order, end after
// start), an SRT file is converted, and either is written back canonical
// (cues only: NOTE, STYLE and REGION blocks are dropped, timestamps
// hh:mm:ss.ttt, only the standard cue settings kept).
//
// It is hand-written on purpose: the Go WebVTT/SRT libraries that resolve
// here accept text that is not WebVTT, keep cues that end before they
// start and panic on some malformed timing lines (found by fuzzing), which
// a parser of uploads cannot afford. The upload path calls Normalize to
// refuse bad captions with a clear error; transcode calls it again on the
// staged file, so nothing it serves skipped the check.
package captions

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Bounds of one captions file. A short clinical video has a few hundred
// cues at most; these leave a wide margin and bound the work per upload.
const (
	MaxSize    = 1 << 20          // bytes of the file as uploaded
	MaxCues    = 20000            // cues in one file
	MaxCueText = 4096             // bytes of one cue's text
	MaxTime    = 1000 * time.Hour // no timestamp at or past this
)

// Cue is one caption: shown from Start to End.
type Cue struct {
	ID       string // optional identifier (no "-->", no line break)
	Start    time.Duration
	End      time.Duration
	Settings string // standard cue settings, space separated ("align:start line:90%")
	Text     string // the payload, lines joined by "\n"; WebVTT cue text markup
}

// File is a parsed captions file.
type File struct {
	Cues []Cue
}

// Error is a captions file refused, with the line (from 1) where it went
// wrong when there is one. Its text is meant for the person uploading.
type Error struct {
	Line int
	Msg  string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("captions: line %d: %s", e.Line, e.Msg)
	}
	return "captions: " + e.Msg
}

func fail(line int, format string, a ...any) *Error {
	return &Error{Line: line, Msg: fmt.Sprintf(format, a...)}
}

// Normalize checks b, WebVTT or SRT (told apart by the WEBVTT signature),
// and returns it as canonical WebVTT. An error is an *Error.
func Normalize(b []byte) ([]byte, error) {
	f, err := Parse(b)
	if err != nil {
		return nil, err
	}
	return f.WebVTT(), nil
}

// Parse reads b as WebVTT when it starts with the WEBVTT signature (after
// an optional byte order mark), else as SRT.
func Parse(b []byte) (*File, error) {
	lines, err := split(b)
	if err != nil {
		return nil, err
	}
	if isSignature(lines[0]) {
		return parseWebVTT(lines)
	}
	if strings.HasPrefix(strings.ToUpper(strings.TrimSpace(lines[0])), "WEBVTT") {
		return nil, fail(1, "the WEBVTT signature must be followed by a space, a tab or the end of the line")
	}
	return parseSRT(lines)
}

// Duration is when the last cue ends.
func (f *File) Duration() time.Duration {
	var d time.Duration
	for _, c := range f.Cues {
		d = max(d, c.End)
	}
	return d
}

// WebVTT writes f as a WebVTT file.
func (f *File) WebVTT() []byte {
	var b bytes.Buffer
	b.WriteString("WEBVTT\n")
	for _, c := range f.Cues {
		b.WriteByte('\n')
		if c.ID != "" {
			b.WriteString(c.ID)
			b.WriteByte('\n')
		}
		b.WriteString(Timestamp(c.Start))
		b.WriteString(" --> ")
		b.WriteString(Timestamp(c.End))
		if c.Settings != "" {
			b.WriteByte(' ')
			b.WriteString(c.Settings)
		}
		b.WriteByte('\n')
		if c.Text != "" {
			b.WriteString(c.Text)
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

// Timestamp formats d as a WebVTT timestamp, hh:mm:ss.ttt.
func Timestamp(d time.Duration) string {
	ms := d.Milliseconds()
	return fmt.Sprintf("%02d:%02d:%02d.%03d", ms/3600000, ms/60000%60, ms/1000%60, ms%1000)
}

// split checks the bytes and cuts them into lines (CRLF, LF or CR ends a
// line, as WebVTT says), without the byte order mark.
func split(b []byte) ([]string, error) {
	if len(b) > MaxSize {
		return nil, fail(0, "the file is larger than %d bytes", MaxSize)
	}
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, fail(0, "the file is empty")
	}
	if !utf8.Valid(b) {
		return nil, fail(0, "the file is not UTF-8 text")
	}
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return nil, fail(1+bytes.Count(b[:i], []byte("\n")), "the file holds a NUL byte: it is not text")
	}
	s := strings.ReplaceAll(string(b), "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	return strings.Split(s, "\n"), nil
}

func isSignature(l string) bool {
	rest, ok := strings.CutPrefix(l, "WEBVTT")
	return ok && (rest == "" || rest[0] == ' ' || rest[0] == '\t')
}

// blocks groups lines into blocks separated by blank lines; each block
// carries the line number of its first line. blank says which lines count
// as blank.
func blocks(lines []string, from int, blank func(string) bool) (out [][]string, at []int) {
	var cur []string
	for i := from; i < len(lines); i++ {
		if blank(lines[i]) {
			if cur != nil {
				out, cur = append(out, cur), nil
			}
			continue
		}
		if cur == nil {
			at = append(at, i+1)
		}
		cur = append(cur, lines[i])
	}
	if cur != nil {
		out = append(out, cur)
	}
	return out, at
}

func parseWebVTT(lines []string) (*File, error) {
	// The header runs to the first blank line.
	i := 1
	for i < len(lines) && lines[i] != "" {
		if strings.Contains(lines[i], "-->") {
			return nil, fail(i+1, "a blank line must separate the WEBVTT header from the first cue")
		}
		i++
	}
	f := &File{}
	bl, at := blocks(lines, i, func(l string) bool { return l == "" })
	cues := false
	for n, blk := range bl {
		first := blk[0]
		switch {
		case first == "NOTE" || strings.HasPrefix(first, "NOTE ") || strings.HasPrefix(first, "NOTE\t"):
			if j := slices.IndexFunc(blk, func(l string) bool { return strings.Contains(l, "-->") }); j >= 0 {
				return nil, fail(at[n]+j, "a NOTE block may not contain \"-->\"")
			}
			continue
		case !cues && (isBlockKeyword(first, "STYLE") || isBlockKeyword(first, "REGION")) && !strings.Contains(strings.Join(blk, "\n"), "-->"):
			continue // style and region definitions come before the cues; we serve none
		}
		c, err := webvttCue(blk, at[n])
		if err != nil {
			return nil, err
		}
		if k := len(f.Cues); k > 0 && c.Start < f.Cues[k-1].Start {
			return nil, fail(at[n], "cues must be in order of start time (this one starts at %s, the one before at %s)", Timestamp(c.Start), Timestamp(f.Cues[k-1].Start))
		}
		if len(f.Cues) == MaxCues {
			return nil, fail(at[n], "more than %d cues", MaxCues)
		}
		f.Cues, cues = append(f.Cues, c), true
	}
	if len(f.Cues) == 0 {
		return nil, fail(0, "the file has no cues")
	}
	return f, nil
}

func isBlockKeyword(l, kw string) bool {
	rest, ok := strings.CutPrefix(l, kw)
	return ok && strings.TrimLeft(rest, " \t") == ""
}

func webvttCue(blk []string, line int) (Cue, error) {
	var c Cue
	t := 0
	if !strings.Contains(blk[0], "-->") {
		c.ID, t = blk[0], 1
		if len(c.ID) > 256 {
			return c, fail(line, "cue identifier longer than 256 bytes")
		}
	}
	if t >= len(blk) || !strings.Contains(blk[t], "-->") {
		return c, fail(line+t, "expected a cue timing line (00:00:01.000 --> 00:00:02.500)")
	}
	var err error
	var settings string
	c.Start, c.End, settings, err = timing(blk[t], '.', line+t)
	if err != nil {
		return c, err
	}
	if strings.Contains(settings, "-->") {
		return c, fail(line+t, "a cue timing line has one \"-->\"")
	}
	if c.Settings, err = cueSettings(settings, line+t); err != nil {
		return c, err
	}
	payload := blk[t+1:]
	for j, l := range payload {
		if strings.Contains(l, "-->") {
			return c, fail(line+t+1+j, "cue text may not contain \"-->\" (is a blank line missing before this cue?)")
		}
	}
	c.Text = strings.Join(payload, "\n")
	if len(c.Text) > MaxCueText {
		return c, fail(line+t+1, "cue text longer than %d bytes", MaxCueText)
	}
	return c, nil
}

// timing parses "start --> end[ settings]" with frac separating seconds
// from milliseconds ('.' in WebVTT, ',' in SRT, which also takes '.').
func timing(l string, frac byte, line int) (start, end time.Duration, settings string, err error) {
	left, right, _ := strings.Cut(l, "-->")
	if !strings.HasSuffix(left, " ") && !strings.HasSuffix(left, "\t") || !strings.HasPrefix(right, " ") && !strings.HasPrefix(right, "\t") {
		return 0, 0, "", fail(line, "\"-->\" must have a space on each side")
	}
	if start, err = timestamp(strings.TrimSpace(left), frac, line); err != nil {
		return
	}
	right = strings.TrimLeft(right, " \t")
	endText, settings, _ := strings.Cut(strings.ReplaceAll(right, "\t", " "), " ")
	if end, err = timestamp(endText, frac, line); err != nil {
		return
	}
	if end <= start {
		return 0, 0, "", fail(line, "the cue ends (%s) before it starts (%s)", Timestamp(end), Timestamp(start))
	}
	return start, end, strings.TrimSpace(settings), nil
}

// timestamp parses [hh:]mm:ss.ttt (hours: two digits or more).
func timestamp(s string, frac byte, line int) (time.Duration, error) {
	bad := fail(line, "%q is not a timestamp (hh:mm:ss.ttt)", clip(s))
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return 0, bad
	}
	var h int64
	if len(parts) == 3 {
		if len(parts[0]) < 2 || len(parts[0]) > 4 || !digits(parts[0]) {
			return 0, bad
		}
		h, _ = strconv.ParseInt(parts[0], 10, 64)
		parts = parts[1:]
	}
	sec := parts[1]
	k := strings.IndexByte(sec, frac)
	if k < 0 && frac == ',' {
		k = strings.IndexByte(sec, '.')
	}
	if len(parts[0]) != 2 || !digits(parts[0]) || k != 2 || len(sec) != 6 || !digits(sec[:2]) || !digits(sec[3:]) {
		return 0, bad
	}
	m, _ := strconv.ParseInt(parts[0], 10, 64)
	ss, _ := strconv.ParseInt(sec[:2], 10, 64)
	ms, _ := strconv.ParseInt(sec[3:], 10, 64)
	if m > 59 || ss > 59 {
		return 0, bad
	}
	d := time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(ss)*time.Second + time.Duration(ms)*time.Millisecond
	if d >= MaxTime {
		return 0, fail(line, "timestamp %s is too large", clip(s))
	}
	return d, nil
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func clip(s string) string {
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return s
}

// settingNames are WebVTT's cue settings; others are dropped, as a WebVTT
// parser ignores them.
var settingNames = map[string]bool{"vertical": true, "line": true, "position": true, "size": true, "align": true, "region": true}

func cueSettings(s string, line int) (string, error) {
	var keep []string
	for _, tok := range strings.Fields(s) {
		name, value, ok := strings.Cut(tok, ":")
		if !ok || value == "" || name == "" {
			return "", fail(line, "cue setting %q is not name:value", clip(tok))
		}
		if settingNames[name] {
			keep = append(keep, tok)
		}
	}
	return strings.Join(keep, " "), nil
}
