package encode

import (
	"errors"
	"slices"

	"github.com/mieweb/pulsevault/shared/media/ladder"
	"github.com/mieweb/pulsevault/shared/media/meta"
)

// Fan-out policies (TRANSCODE_FANOUT).
const (
	FanoutRendition = "rendition" // every job encodes its own rendition
	FanoutGrouped   = "grouped"   // the lowest video rung with the audio; a higher rung's job encodes every unclaimed higher rung from one decode
)

// Claim decides, inside a meta.json update, what the job for rendition
// name encodes under fanout, and marks it running. Under grouped, the job
// for the lowest video rung also claims (Rendition.Group = name) the audio
// rendition when no job has started it: a video is playable only with its
// audio settled, and the jobs run in plan order (audio last) when the
// connector delivers one at a time. The job for a video rung above the
// lowest claims its own rung and every higher video rung that is neither
// ready nor claimed by another job. A redelivered job re-runs what it
// claimed that is not ready. It returns an error wrapping errNoop (nothing
// to do) or errClaimed (another job's group encodes it) to stop the update
// without writing.
func Claim(v *meta.Video, name, fanout string) ([]meta.Rendition, error) {
	i := slices.IndexFunc(v.Renditions, func(r meta.Rendition) bool { return r.Name == name })
	if i < 0 {
		return nil, errUnknownRendition
	}
	self := &v.Renditions[i]
	lowest := slices.IndexFunc(v.Renditions, func(r meta.Rendition) bool { return r.Kind == "video" })
	if fanout == FanoutGrouped && self.Kind == "audio" && self.Group != "" && self.Group != name &&
		self.State != meta.RenditionReady && self.State != meta.RenditionFailed {
		return nil, errClaimed
	}
	if fanout != FanoutGrouped || self.Kind != "video" || i == lowest {
		var out []meta.Rendition
		if self.State != meta.RenditionReady {
			self.State, self.Progress, self.Error, self.Group, self.Listed = meta.RenditionRunning, 0, "", "", false
			out = append(out, *self)
		}
		if fanout == FanoutGrouped && i == lowest {
			for j := range v.Renditions {
				a := &v.Renditions[j]
				if a.Kind == "audio" && a.State != meta.RenditionReady && a.State != meta.RenditionFailed &&
					(a.Group == name || a.Group == "" && a.State == meta.RenditionPlanned) {
					a.State, a.Progress, a.Error, a.Group, a.Listed = meta.RenditionRunning, 0, "", name, false
					out = append(out, *a)
				}
			}
		}
		if len(out) == 0 {
			return nil, errNoop
		}
		if v.Original == nil || v.Original.Key == "" || v.Probe == nil {
			return nil, errNotFinalized
		}
		return out, nil
	}
	if self.Group != "" && self.Group != name && self.State != meta.RenditionReady && self.State != meta.RenditionFailed {
		return nil, errClaimed
	}
	var idx []int
	for j := i; j < len(v.Renditions); j++ {
		r := v.Renditions[j]
		switch {
		case r.Kind != "video" || r.State == meta.RenditionReady:
		case j == i, r.Group == name:
			idx = append(idx, j)
		case r.Group == "" && self.State != meta.RenditionReady:
			// A ready leader only finishes what it claimed before; new
			// claims are for a job that encodes its own rung too.
			idx = append(idx, j)
		}
	}
	if len(idx) == 0 {
		if self.State == meta.RenditionReady {
			return nil, errNoop
		}
		return nil, errClaimed
	}
	if v.Original == nil || v.Original.Key == "" || v.Probe == nil {
		return nil, errNotFinalized
	}
	out := make([]meta.Rendition, 0, len(idx))
	for _, j := range idx {
		r := &v.Renditions[j]
		r.State, r.Progress, r.Error, r.Group, r.Listed = meta.RenditionRunning, 0, "", name, false
		out = append(out, *r)
	}
	return out, nil
}

var (
	errUnknownRendition = errors.New("rendition not planned")
	errNotFinalized     = errors.New("video not finalized")
	errClaimed          = errors.New("claimed by another job's group")
)

func find(v *meta.Video, name string) *meta.Rendition {
	for i := range v.Renditions {
		if v.Renditions[i].Name == name {
			return &v.Renditions[i]
		}
	}
	return nil
}

// Jobs is the rendition fan-out policy: one job per planned rendition, in
// plan order (lowest rung first, so it tends to be playable first).
func Jobs(id string, rs []meta.Rendition) []ladder.Job {
	out := make([]ladder.Job, 0, len(rs))
	for _, r := range rs {
		out = append(out, ladder.Job{Video: id, Rendition: r.Name})
	}
	return out
}
