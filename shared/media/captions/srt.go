package captions

import (
	"cmp"
	"regexp"
	"slices"
	"strings"
)

// parseSRT reads SubRip: blocks of an optional counter line, a timing line
// (00:00:01,000 --> 00:00:02,500, optionally followed by SubRip's X1:…
// position, ignored) and text lines. Cues are sorted by start time, as
// WebVTT requires; their text is turned into WebVTT cue text.
func parseSRT(lines []string) (*File, error) {
	bl, at := blocks(lines, 0, func(l string) bool { return strings.TrimSpace(l) == "" })
	f := &File{}
	for n, blk := range bl {
		t := 0
		if !strings.Contains(blk[0], "-->") {
			if !digits(strings.TrimSpace(blk[0])) {
				return nil, fail(at[n], "neither WebVTT (no WEBVTT signature) nor SRT (expected a cue number or a timing line 00:00:01,000 --> 00:00:02,500)")
			}
			t = 1
		}
		if t >= len(blk) || !strings.Contains(blk[t], "-->") {
			return nil, fail(at[n]+t, "expected an SRT timing line (00:00:01,000 --> 00:00:02,500)")
		}
		start, end, _, err := timing(strings.TrimSpace(blk[t]), ',', at[n]+t)
		if err != nil {
			return nil, err
		}
		var text []string
		for j, l := range blk[t+1:] {
			if strings.Contains(l, "-->") {
				return nil, fail(at[n]+t+1+j, "cue text may not contain \"-->\" (is a blank line missing before this cue?)")
			}
			if l = srtText(strings.TrimRight(l, " \t")); l != "" {
				text = append(text, l) // a line of dropped tags alone would end the cue early
			}
		}
		c := Cue{Start: start, End: end, Text: strings.Join(text, "\n")}
		if len(c.Text) > MaxCueText {
			return nil, fail(at[n]+t+1, "cue text longer than %d bytes", MaxCueText)
		}
		if len(f.Cues) == MaxCues {
			return nil, fail(at[n], "more than %d cues", MaxCues)
		}
		f.Cues = append(f.Cues, c)
	}
	if len(f.Cues) == 0 {
		return nil, fail(0, "the file has no cues")
	}
	slices.SortStableFunc(f.Cues, func(a, b Cue) int { return cmp.Compare(a.Start, b.Start) })
	return f, nil
}

// srtTag matches the markup SubRip players know: <b>, <i>, <u> (kept, they
// mean the same in WebVTT) and <font …> (dropped: WebVTT has no colour tag
// that needs no style sheet).
var srtTag = regexp.MustCompile(`(?i)</?(b|i|u)>|</?font(\s[^<>]*)?>`)

// srtText escapes one line of SRT text as WebVTT cue text: '&', '<' and
// '>' become character references, except in the tags SubRip knows.
func srtText(l string) string {
	var b strings.Builder
	last := 0
	for _, m := range srtTag.FindAllStringIndex(l, -1) {
		b.WriteString(escape(l[last:m[0]]))
		tag := strings.ToLower(l[m[0]:m[1]])
		if !strings.Contains(tag, "font") {
			b.WriteString(tag)
		}
		last = m[1]
	}
	b.WriteString(escape(l[last:]))
	return b.String()
}

var escaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

func escape(s string) string { return escaper.Replace(s) }
