package captions

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestWebVTTCanonical(t *testing.T) {
	in := "\xef\xbb\xbfWEBVTT - made on a phone\r\nKind: captions\r\n\r\n" +
		"STYLE\r\n::cue { color: red }\r\n\r\n" +
		"NOTE written by hand\r\n\r\n" +
		"intro\r\n00:01.000 --> 00:02.500 align:start bogus:1 line:90%\r\n<v Nurse>Walk to the line</v>\r\nand back &amp; stop\r\n\r\n\r\n" +
		"01:00:00.000 --> 01:00:01.000\r\n\r\n" +
		"01:00:00.000 --> 01:00:02.000\r\nsame start\r\n"
	got, err := Normalize([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := "WEBVTT\n\nintro\n00:00:01.000 --> 00:00:02.500 align:start line:90%\n<v Nurse>Walk to the line</v>\nand back &amp; stop\n\n" +
		"01:00:00.000 --> 01:00:01.000\n\n01:00:00.000 --> 01:00:02.000\nsame start\n"
	if string(got) != want {
		t.Fatalf("got\n%q\nwant\n%q", got, want)
	}
	again, err := Normalize(got)
	if err != nil || !bytes.Equal(again, got) {
		t.Fatalf("not idempotent: %v\n%q", err, again)
	}
	f, _ := Parse(got)
	if f.Duration() != time.Hour+2*time.Second || len(f.Cues) != 3 {
		t.Fatalf("%v %d", f.Duration(), len(f.Cues))
	}
}

func TestSRTConverted(t *testing.T) {
	in := "1\r\n00:00:02,000 --> 00:00:03,000\r\nSecond <font color=\"#ff0\">cue</font>\r\n\r\n" +
		"2\r\n00:00:00,500 --> 00:00:01,250 X1:10 X2:20 Y1:1 Y2:2\r\n<I>First</I> & <b>bold</b> <script>x</script>\r\n<font color=red></font>\r\nline 3  \r\n \r\n"
	got, err := Normalize([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := "WEBVTT\n\n00:00:00.500 --> 00:00:01.250\n<i>First</i> &amp; <b>bold</b> &lt;script&gt;x&lt;/script&gt;\nline 3\n\n" +
		"00:00:02.000 --> 00:00:03.000\nSecond cue\n"
	if string(got) != want {
		t.Fatalf("got\n%q\nwant\n%q", got, want)
	}
	if again, err := Normalize(got); err != nil || !bytes.Equal(again, got) {
		t.Fatalf("not idempotent: %v\n%q", err, again)
	}
}

func TestRefused(t *testing.T) {
	for name, in := range map[string]string{
		"empty":                 "",
		"spaces":                " \n\n ",
		"not text":              "WEBVTT\n\n00:00.000 --> 00:01.000\nhi\x00\n",
		"not utf8":              "WEBVTT\n\n00:00.000 --> 00:01.000\n\xff\xfe\n",
		"glued signature":       "WEBVTTX\n\n00:00.000 --> 00:01.000\nhi\n",
		"lower signature":       "webvtt\n\n00:00.000 --> 00:01.000\nhi\n",
		"no cues":               "WEBVTT\n\nNOTE nothing\n",
		"cue in header":         "WEBVTT\n00:00.000 --> 00:01.000\nhi\n",
		"backwards":             "WEBVTT\n\n00:02.000 --> 00:01.000\nhi\n",
		"zero length":           "WEBVTT\n\n00:01.000 --> 00:01.000\nhi\n",
		"out of order":          "WEBVTT\n\n00:02.000 --> 00:03.000\na\n\n00:01.000 --> 00:04.000\nb\n",
		"no end":                "WEBVTT\n\n00:00:00.000 --> \nhello\n",
		"garbled time":          "WEBVTT\n\nzz:00:00.000 --> 00:00:01.000\nhello\n",
		"minutes 60":            "WEBVTT\n\n00:60.000 --> 01:00:01.000\nhello\n",
		"comma in vtt":          "WEBVTT\n\n00:00,000 --> 00:01,000\nhello\n",
		"one digit hour":        "WEBVTT\n\n1:00:00.000 --> 01:00:01.000\nhello\n",
		"huge hours":            "WEBVTT\n\n99999:00:00.000 --> 99999:00:01.000\nhello\n",
		"too far":               "WEBVTT\n\n1000:00:00.000 --> 1000:00:01.000\nhello\n",
		"no spaces":             "WEBVTT\n\n00:00.000-->00:01.000\nhello\n",
		"two arrows in text":    "WEBVTT\n\n00:00.000 --> 00:01.000\nhello\n00:01.000 --> 00:02.000\n",
		"two arrows on line":    "WEBVTT\n\n00:00.000 --> 00:01.000 --> 00:02.000\nhello\n",
		"id alone":              "WEBVTT\n\njust an id\n",
		"bad setting":           "WEBVTT\n\n00:00.000 --> 00:01.000 align\nhello\n",
		"note with cue":         "WEBVTT\n\nNOTE 00:00.000 --> 00:01.000\n",
		"plain text":            "hello world\nthis is not captions\n",
		"srt garbled":           "1\n00:00:00,000 --> 00:00:0x,000\nhi\n",
		"srt backwards":         "1\n00:00:02,000 --> 00:00:01,000\nhi\n",
		"srt no timing":         "1\nhello\n",
		"html":                  "<html><body>hi</body></html>",
		"srt arrow in text":     "1\n00:00:00,000 --> 00:00:01,000\na --> b\n",
		"oversize":              "WEBVTT\n\n" + strings.Repeat("x", MaxSize),
		"cue text too long":     "WEBVTT\n\n00:00.000 --> 00:01.000\n" + strings.Repeat("x", MaxCueText+1) + "\n",
		"srt cue text too long": "1\n00:00:00,000 --> 00:00:01,000\n" + strings.Repeat("y", MaxCueText+1) + "\n",
	} {
		_, err := Normalize([]byte(in))
		var ce *Error
		if !errors.As(err, &ce) || ce.Msg == "" {
			t.Errorf("%s: accepted or unclear: %v", name, err)
			continue
		}
		t.Logf("%s: %v", name, err)
	}
}

func TestTooManyCues(t *testing.T) {
	var b strings.Builder
	b.WriteString("WEBVTT\n")
	for i := 0; i <= MaxCues; i++ {
		b.WriteString("\n00:00.000 --> 00:01.000\n")
	}
	_, err := Normalize([]byte(b.String()))
	if err == nil || !strings.Contains(err.Error(), "more than") {
		t.Fatal(err)
	}
}
