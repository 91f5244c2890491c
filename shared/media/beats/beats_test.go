package beats

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/mieweb/pulsevault/shared/media/meta"
)

// manifest is what the Pulse app's buildBeatManifest writes for clips of
// the given lengths (ms).
func manifest(lengths ...int) string {
	var beats []string
	at := 0
	for i, l := range lengths {
		beats = append(beats, fmt.Sprintf(`{"segmentId":"seg-%d","order":%d,"startMs":%d,"endMs":%d}`, i, i, at, at+l))
		at += l
	}
	return fmt.Sprintf(`{"version":1,"type":"beat-manifest","durationMs":%d,"beats":[%s]}`, at, strings.Join(beats, ","))
}

func TestChapters(t *testing.T) {
	got, err := Chapters([]byte(manifest(1500, 2500, 2000)), 6.02)
	if err != nil {
		t.Fatal(err)
	}
	want := []meta.Chapter{{Start: 0, End: 1.5, Title: "Beat 1"}, {Start: 1.5, End: 4, Title: "Beat 2"}, {Start: 4, End: 6, Title: "Beat 3"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("%v, want %v", got, want)
	}
	// A newer app's titles are kept; the end is clamped to the video.
	b := `{"version":1,"type":"beat-manifest","durationMs":3000,"extra":true,"beats":[{"segmentId":"a","order":0,"startMs":0,"endMs":3000,"title":"  Gait — Ünïcode  "}]}`
	got, err = Chapters([]byte(b), 2.9)
	if err != nil || len(got) != 1 || got[0].Title != "Gait — Ünïcode" || got[0].End != 2.9 {
		t.Fatalf("%v %v", got, err)
	}
	// No beats is a valid manifest with no chapters.
	if got, err := Chapters([]byte(`{"version":1,"type":"beat-manifest","durationMs":2000,"beats":[]}`), 2); err != nil || len(got) != 0 {
		t.Fatal(got, err)
	}
}

func TestRefused(t *testing.T) {
	long := strings.Repeat("é", MaxTitle)
	for name, c := range map[string]struct {
		body string
		dur  float64
	}{
		"not json":           {"beats!", 5},
		"array":              {"[]", 5},
		"two objects":        {manifest(1000) + "{}", 1},
		"version 2":          {strings.Replace(manifest(1000), `"version":1`, `"version":2`, 1), 1},
		"other type":         {strings.Replace(manifest(1000), `beat-manifest`, `project`, 1), 1},
		"no beats":           {`{"version":1,"type":"beat-manifest","durationMs":1000}`, 1},
		"missing field":      {`{"version":1,"type":"beat-manifest","durationMs":1000,"beats":[{"order":0,"startMs":0,"endMs":1000}]}`, 1},
		"wrong order":        {strings.Replace(manifest(1000, 1000), `"order":1`, `"order":5`, 1), 2},
		"gap":                {`{"version":1,"type":"beat-manifest","durationMs":3000,"beats":[{"segmentId":"a","order":0,"startMs":0,"endMs":1000},{"segmentId":"b","order":1,"startMs":2000,"endMs":3000}]}`, 3},
		"backwards":          {`{"version":1,"type":"beat-manifest","durationMs":3000,"beats":[{"segmentId":"a","order":0,"startMs":2000,"endMs":1000}]}`, 3},
		"negative":           {`{"version":1,"type":"beat-manifest","durationMs":3000,"beats":[{"segmentId":"a","order":0,"startMs":-5,"endMs":1000}]}`, 3},
		"past durationMs":    {`{"version":1,"type":"beat-manifest","durationMs":1000,"beats":[{"segmentId":"a","order":0,"startMs":0,"endMs":5000}]}`, 5},
		"longer than video":  {manifest(60000), 10},
		"shorter than video": {manifest(1000), 10},
		"no video duration":  {manifest(1000), 0},
		"huge duration":      {`{"version":1,"type":"beat-manifest","durationMs":1e30,"beats":[]}`, 1},
		"title too long":     {strings.Replace(manifest(1000), `"order":0`, `"order":0,"title":"`+long+`"`, 1), 1},
		"title control":      {strings.Replace(manifest(1000), `"order":0`, `"order":0,"title":"a\u0007b"`, 1), 1},
		"title newline":      {strings.Replace(manifest(1000), `"order":0`, `"order":0,"title":"a\nb"`, 1), 1},
		"bad utf8 title":     {strings.Replace(manifest(1000), `"order":0`, "\"order\":0,\"title\":\"\xff\"", 1), 1},
		"too many":           {manifest(make([]int, MaxBeats+1)...), 1},
		"oversize":           {`{"version":1,"pad":"` + strings.Repeat("x", MaxSize) + `"}`, 1},
	} {
		_, err := Chapters([]byte(c.body), c.dur)
		var be *Error
		if !errors.As(err, &be) {
			t.Errorf("%s: accepted or unclear: %v", name, err)
			continue
		}
		t.Logf("%s: %v", name, err)
	}
}

func FuzzChapters(f *testing.F) {
	f.Add([]byte(manifest(1500, 2500)), 4.0)
	f.Add([]byte(`{"version":1,"type":"beat-manifest","durationMs":0,"beats":[]}`), 1.0)
	f.Fuzz(func(t *testing.T, b []byte, dur float64) {
		ch, err := Chapters(b, dur)
		if err != nil {
			return
		}
		for i, c := range ch {
			if c.Start < 0 || c.End <= c.Start-0.0011 || c.End > dur+0.0006 || len(c.Title) > MaxTitle || i > 0 && c.Start < ch[i-1].Start {
				t.Fatalf("chapter %d: %+v (duration %v)", i, c, dur)
			}
		}
	})
}
