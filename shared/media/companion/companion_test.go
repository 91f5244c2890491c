package companion

import (
	"errors"
	"strings"
	"testing"

	"github.com/mieweb/pulsevault/shared/testutil/testclip"
)

func TestStage(t *testing.T) {
	vtt, ct, err := Stage(KindCaptions, []byte("1\n00:00:00,000 --> 00:00:01,000\nhi\n"))
	if err != nil || ct != "text/vtt" || string(vtt) != "WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nhi\n" {
		t.Fatalf("%q %q %v", vtt, ct, err)
	}
	jpg := testclip.PhoneJPEG(64, 48, 1)
	if b, ct, err := Stage(KindThumbnail, jpg); err != nil || ct != "image/jpeg" || len(b) != len(jpg) {
		t.Fatalf("thumbnail: %q %v", ct, err)
	}
	manifest := `{"version":1,"type":"beat-manifest","durationMs":1000,"beats":[{"segmentId":"a","order":0,"startMs":0,"endMs":1000}]}`
	if _, ct, err := Stage(KindProject, []byte(manifest)); err != nil || ct != "application/json" {
		t.Fatalf("project: %q %v", ct, err)
	}
	for kind, b := range map[string]string{
		KindCaptions:  "hello",
		KindThumbnail: "GIF89a",
		KindProject:   `{"version":2}`,
		"video":       "x",
	} {
		_, _, err := Stage(kind, []byte(b))
		var ce *Error
		if !errors.As(err, &ce) || ce.Kind != kind || err.Error() == "" || strings.Contains(err.Error(), b) && kind != "video" {
			t.Errorf("%s: %v", kind, err)
		}
		t.Logf("%s: %v", kind, err)
	}
	if MaxSize(KindCaptions) != 1<<20 || MaxSize(KindThumbnail) == 0 || MaxSize(KindProject) == 0 || MaxSize("video") != 0 {
		t.Fatal("sizes")
	}
}
