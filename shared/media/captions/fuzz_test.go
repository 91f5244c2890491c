package captions

import (
	"bytes"
	"testing"
)

// FuzzNormalize: no input panics, and whatever is accepted comes out as
// WebVTT that is accepted again unchanged, with every cue ending after it
// starts and the cues in order.
func FuzzNormalize(f *testing.F) {
	for _, s := range []string{
		"WEBVTT\n\n00:00.000 --> 00:01.000\nhello\n",
		"WEBVTT\n\nid\n00:00:00.000 --> 00:00:01.000 align:start line:0\n<b>x</b> &amp;\n\nNOTE n\n",
		"WEBVTT\n\n00:00:00.000 --> \nhello\n",
		"1\r\n00:00:00,000 --> 00:00:01,500\r\nHi <i>x</i> <font color=red>y</font>\r\n\r\n2\r\n00:00:02,000 --> 00:00:03,000\r\nYo\r\n",
		"\xef\xbb\xbfWEBVTT\r\rSTYLE\r::cue{}\r\r00:01.000 --> 00:02.000\rz\r",
		"2\n00:00:05,000 --> 00:00:06,000\nb\n\n1\n00:00:01,000 --> 00:00:02,000\na\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := Normalize(b)
		if err != nil {
			return
		}
		again, err := Normalize(out)
		if err != nil {
			t.Fatalf("output refused: %v\n%q", err, out)
		}
		if !bytes.Equal(again, out) {
			t.Fatalf("not idempotent:\n%q\n%q", out, again)
		}
		parsed, _ := Parse(out)
		for i, c := range parsed.Cues {
			if c.End <= c.Start || i > 0 && c.Start < parsed.Cues[i-1].Start {
				t.Fatalf("cue %d: %+v", i, c)
			}
		}
	})
}
