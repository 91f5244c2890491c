// Package beats reads the Pulse beat manifest (the `kind: project`
// companion, <draftId>-beats.pulse; protocol/schemas/beat-manifest.schema.json
// in mieweb/pulsevault) and turns it into the video's chapters: one per
// recorded clip, in play order.
//
//	{"version": 1, "type": "beat-manifest", "durationMs": 12000,
//	 "beats": [{"segmentId": "…", "order": 0, "startMs": 0, "endMs": 5000}, …]}
//
// Check is what the upload path calls (the video's duration is not known
// yet); Chapters checks the times against the video's probed duration too.
// segmentId is the phone's local clip id: it is checked but never kept.
package beats

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/mieweb/pulsevault/shared/media/meta"
)

// Bounds of a beat manifest.
const (
	MaxSize     = 256 << 10
	MaxBeats    = 1000
	MaxTitle    = 120 // bytes of a chapter title
	maxSegment  = 256 // bytes of a segmentId
	maxDuration = 24 * 3600 * 1000.0
	// Slack is how far (ms) the manifest may disagree with the probed
	// duration: the app reconciles beats to its own idea of the duration,
	// which container framing moves by a frame or two.
	Slack = 1000.0
)

// Manifest is a beat manifest. Unknown fields are ignored, as the schema's
// readers must; Title is not in the schema but is used when a newer app
// sends one.
type Manifest struct {
	Version    int     `json:"version"`
	Type       string  `json:"type"`
	DurationMs float64 `json:"durationMs"`
	Beats      []Beat  `json:"beats"`
}

// Beat is one recorded clip's place in the video.
type Beat struct {
	SegmentID *string  `json:"segmentId"`
	Order     *int     `json:"order"`
	StartMs   *float64 `json:"startMs"`
	EndMs     *float64 `json:"endMs"`
	Title     string   `json:"title,omitempty"`
}

// Error is a beat manifest refused; its text is meant for people.
type Error struct{ Msg string }

func (e *Error) Error() string { return "beat manifest: " + e.Msg }

func fail(format string, a ...any) *Error { return &Error{fmt.Sprintf(format, a...)} }

// Check parses b and checks it against the schema and its stated rules:
// beats in order (order 0, 1, …), each ending after it starts, contiguous
// (within a millisecond), the last ending at durationMs.
func Check(b []byte) (*Manifest, error) {
	if len(b) > MaxSize {
		return nil, fail("larger than %d bytes", MaxSize)
	}
	if !utf8.Valid(b) {
		return nil, fail("not UTF-8 text") // encoding/json would pass it on as U+FFFD
	}
	if t := bytes.TrimSpace(b); len(t) == 0 || t[0] != '{' {
		return nil, fail("not a JSON object")
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&m); err != nil {
		return nil, fail("not valid JSON: %v", err)
	}
	if dec.More() {
		return nil, fail("text after the JSON object")
	}
	switch {
	case m.Version != 1:
		return nil, fail("version %d is not 1", m.Version)
	case m.Type != "beat-manifest":
		return nil, fail("type must be \"beat-manifest\"")
	case !finite(m.DurationMs) || m.DurationMs < 0 || m.DurationMs > maxDuration:
		return nil, fail("durationMs must be between 0 and %.0f", maxDuration)
	case m.Beats == nil:
		return nil, fail("beats is missing")
	case len(m.Beats) > MaxBeats:
		return nil, fail("%d beats, at most %d", len(m.Beats), MaxBeats)
	}
	for i, bt := range m.Beats {
		switch {
		case bt.SegmentID == nil || bt.Order == nil || bt.StartMs == nil || bt.EndMs == nil:
			return nil, fail("beat %d lacks segmentId, order, startMs or endMs", i)
		case len(*bt.SegmentID) > maxSegment || !utf8.ValidString(*bt.SegmentID):
			return nil, fail("beat %d: segmentId is not short UTF-8 text", i)
		case *bt.Order != i:
			return nil, fail("beat %d has order %d: beats must be listed in play order from 0", i, *bt.Order)
		case !finite(*bt.StartMs) || !finite(*bt.EndMs) || *bt.StartMs < 0:
			return nil, fail("beat %d: times must be non-negative numbers", i)
		case *bt.EndMs <= *bt.StartMs:
			return nil, fail("beat %d ends (%.0f ms) before it starts (%.0f ms)", i, *bt.EndMs, *bt.StartMs)
		case *bt.EndMs > m.DurationMs+1:
			return nil, fail("beat %d ends (%.0f ms) after durationMs (%.0f ms)", i, *bt.EndMs, m.DurationMs)
		case i > 0 && math.Abs(*bt.StartMs-*m.Beats[i-1].EndMs) > 1:
			return nil, fail("beat %d starts at %.0f ms, not where beat %d ends (%.0f ms)", i, *bt.StartMs, i-1, *m.Beats[i-1].EndMs)
		}
		if _, err := title(bt.Title, i); err != nil {
			return nil, err
		}
	}
	return &m, nil
}

// Chapters checks b and returns its beats as chapters of a video lasting
// duration seconds (the probe's): every beat must lie within it (with
// Slack), and chapter times are clamped to it.
func Chapters(b []byte, duration float64) ([]meta.Chapter, error) {
	m, err := Check(b)
	if err != nil {
		return nil, err
	}
	dms := duration * 1000
	if !finite(dms) || dms <= 0 {
		return nil, fail("the video has no duration to place beats in")
	}
	if math.Abs(m.DurationMs-dms) > Slack {
		return nil, fail("durationMs %.0f does not match the video (%.0f ms)", m.DurationMs, dms)
	}
	out := make([]meta.Chapter, 0, len(m.Beats))
	for i, bt := range m.Beats {
		if *bt.StartMs >= dms {
			return nil, fail("beat %d starts (%.0f ms) after the video ends (%.0f ms)", i, *bt.StartMs, dms)
		}
		t, _ := title(bt.Title, i)
		out = append(out, meta.Chapter{
			Start: math.Round(*bt.StartMs) / 1000,
			End:   math.Round(min(*bt.EndMs, dms)) / 1000,
			Title: t,
		})
	}
	return out, nil
}

// title is the chapter title: the beat's own (trimmed, one line, printable,
// bounded) or "Beat <n>", counted from 1.
func title(t string, i int) (string, error) {
	t = strings.TrimSpace(t)
	if t == "" {
		return fmt.Sprintf("Beat %d", i+1), nil
	}
	if len(t) > MaxTitle || !utf8.ValidString(t) {
		return "", fail("beat %d: title is not UTF-8 text of at most %d bytes", i, MaxTitle)
	}
	for _, r := range t {
		if !unicode.IsPrint(r) && r != ' ' {
			return "", fail("beat %d: title holds a control character", i)
		}
	}
	return t, nil
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }
