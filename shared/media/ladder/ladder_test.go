package ladder

import (
	"testing"

	"github.com/mieweb/pulsevault/shared/media/meta"
)

func names(rs []meta.Rendition) (s []string) {
	for _, r := range rs {
		s = append(s, r.Name)
	}
	return s
}

func TestPlan(t *testing.T) {
	cases := []struct {
		name  string
		probe meta.Probe
		want  []string
		first [2]int
	}{
		{"1080p landscape with audio", meta.Probe{Width: 1920, Height: 1080, HasAudio: true}, []string{"240p", "360p", "480p", "720p", "1080p", "audio"}, [2]int{426, 240}},
		{"1080p portrait phone", meta.Probe{Width: 1080, Height: 1920}, []string{"240p", "360p", "480p", "720p", "1080p"}, [2]int{240, 426}},
		{"720p never upscaled", meta.Probe{Width: 1280, Height: 720, HasAudio: true}, []string{"240p", "360p", "480p", "720p", "audio"}, [2]int{426, 240}},
		{"tiny source", meta.Probe{Width: 160, Height: 120}, []string{"240p"}, [2]int{160, 120}},
		{"odd dimensions", meta.Probe{Width: 641, Height: 481}, []string{"240p", "360p", "480p"}, [2]int{318, 240}},
		{"4k", meta.Probe{Width: 3840, Height: 2160}, []string{"240p", "360p", "480p", "720p", "1080p"}, [2]int{426, 240}},
	}
	for _, tc := range cases {
		got := Plan(tc.probe)
		if len(got) != len(tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, names(got), tc.want)
			continue
		}
		for i := range got {
			if got[i].Name != tc.want[i] || got[i].State != meta.RenditionPlanned || got[i].Width%2 != 0 || got[i].Height%2 != 0 {
				t.Errorf("%s: rendition %d = %+v", tc.name, i, got[i])
			}
		}
		if got[0].Width != tc.first[0] || got[0].Height != tc.first[1] {
			t.Errorf("%s: lowest %dx%d, want %dx%d", tc.name, got[0].Width, got[0].Height, tc.first[0], tc.first[1])
		}
	}
	if Plan(meta.Probe{}) != nil {
		t.Error("a probe without dimensions planned renditions")
	}
	if (Job{Video: "v", Rendition: "240p"}).MsgID() != "v/240p" {
		t.Error("MsgID")
	}
}
