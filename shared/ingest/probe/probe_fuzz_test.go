package probe

import (
	"encoding/json"
	"errors"
	"math"
	"slices"
	"testing"
)

// FuzzParse: ffprobe's JSON describes an uploaded file, so its content is
// the uploader's. Whatever it says, parse never panics, and what it
// accepts is a video finalize can act on: positive size, a finite positive
// duration, a rotation in [0, 360), an extension from the known set, and
// numbers meta.json can encode (a NaN would fail every finalize retry).
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"streams":[{"codec_type":"video","codec_name":"h264","width":360,"height":640,"avg_frame_rate":"30000/1001","tags":{"rotate":"-90"}},{"codec_type":"audio","codec_name":"aac"}],"format":{"format_name":"mov,mp4,m4a,3gp,3g2,mj2","duration":"5.005","bit_rate":"1000","tags":{"major_brand":"qt  "}}}`), "")
	f.Add([]byte(`{"streams":[{"codec_type":"video","width":16384,"height":16,"r_frame_rate":"5/0","side_data_list":[{"rotation":1e300}]}],"format":{"format_name":"matroska,webm","duration":"NaN"}}`), "")
	f.Add([]byte(`{"streams":[{"codec_type":"video","width":1,"height":1,"duration":"Inf","disposition":{"attached_pic":1}}],"format":{"duration":"-1"}}`), "partial file")
	f.Add([]byte(`{"streams":null,"format":{}}`), "Invalid data found")
	f.Add([]byte(`{"streams":[{"codec_type":"video","width":2,"height":2,"avg_frame_rate":"NaN/1"}],"format":{"duration":"1"}}`), "")
	f.Fuzz(func(t *testing.T, out []byte, msg string) {
		r, err := parse(out, msg)
		if err != nil {
			var rej *Rejected
			if errors.As(err, &rej) && rej.Reason != ReasonNotVideo && rej.Reason != ReasonTruncated {
				t.Fatalf("unknown rejection reason %q", rej.Reason)
			}
			return
		}
		if r.Width <= 0 || r.Height <= 0 || !(r.Duration > 0) || math.IsInf(r.Duration, 0) ||
			r.Rotation < 0 || r.Rotation >= 360 || !slices.Contains([]string{"mp4", "mov", "webm", "mkv", "avi", "ts", "bin"}, r.Ext) {
			t.Fatalf("accepted %+v", r)
		}
		if _, err := json.Marshal(r.Probe); err != nil {
			t.Fatalf("accepted a probe meta.json cannot hold: %+v: %v", r.Probe, err)
		}
	})
}
