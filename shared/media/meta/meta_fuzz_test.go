package meta

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// FuzzDecode: any bytes decode without a panic, and whatever decodes is
// stable: encoding it and decoding again gives the same document, so a
// read-modify-write cycle (Update) never changes what it did not touch.
func FuzzDecode(f *testing.F) {
	full := Video{Schema: SchemaVersion, ID: "3f0c8a2e-1d4b-5c6e-8f90-123456789abc", Status: Processing,
		Created: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC), Updated: time.Date(2026, 11, 27, 10, 0, 1, 5, time.UTC),
		Uploader: "clinician-42", UploadID: "a1b2c3d4e5f6+upload", Client: map[string]string{"filename": "x.mp4"},
		Original: &Original{Key: "videos/3f0c8a2e-1d4b-5c6e-8f90-123456789abc/original.mp4", Size: 1234, ContentType: "video/mp4"},
		Probe:    &Probe{Duration: 5.005, Width: 360, Height: 640, Rotation: 90, FPS: 29.97, VideoCodec: "h264", HasAudio: true, Format: "mov,mp4"},
		Renditions: []Rendition{{Name: "240p", Kind: "video", Width: 240, Height: 426, Bitrate: 400000, State: RenditionReady, Listed: true},
			{Name: "audio", Kind: "audio", Bitrate: 128000, State: RenditionFailed, Error: "ffmpeg", ErrorDetail: "exit 1"}},
		Errors: []string{"ffmpeg"}}
	b, _ := json.MarshalIndent(full, "", "  ")
	f.Add(b)
	f.Add([]byte(`{"schema":1,"id":"x","status":"rejected","reason":"not-a-video","client":{}}`))
	f.Add([]byte(`{"created":"2026-13-01T00:00:00Z"}`))
	f.Add([]byte(`{"probe":{"duration":1e400}}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"renditions":[null,{"progress":-0}]} trailing`))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := Decode(b)
		if err != nil {
			if v != nil {
				t.Fatalf("error %v with a video", err)
			}
			return
		}
		once, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("a decoded meta.json does not encode: %v", err)
		}
		v2, err := Decode(once)
		if err != nil {
			t.Fatalf("our own encoding does not decode: %v\n%s", err, once)
		}
		twice, _ := json.Marshal(v2)
		if !bytes.Equal(once, twice) {
			t.Fatalf("round trip changed the document:\n%s\n%s", once, twice)
		}
	})
}
