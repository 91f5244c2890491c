package thumbnail

import (
	"bytes"
	"encoding/binary"
	"errors"
	"image/jpeg"
	"testing"

	"github.com/mieweb/pulsevault/shared/testutil/testclip"
)

func phoneJPEG(_ *testing.T, w, h int, orientation uint16) []byte {
	return testclip.PhoneJPEG(w, h, orientation)
}

func TestStillsDropEXIFAndGPS(t *testing.T) {
	src := phoneJPEG(t, 1600, 1200, 1)
	lat := make([]byte, 24)
	for i, v := range testclip.GPSLatitude {
		binary.BigEndian.PutUint32(lat[4*i:], v)
	}
	if !HasMetadata(src) || !bytes.Contains(src, []byte("Exif\x00\x00")) || !bytes.Contains(src, lat) {
		t.Fatal("test image lacks its EXIF")
	}
	if _, err := jpeg.Decode(bytes.NewReader(src)); err != nil {
		t.Fatalf("test image does not decode: %v", err)
	}
	poster, thumb, err := Stills(src)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"poster": poster, "thumb": thumb} {
		if HasMetadata(b) || bytes.Contains(b, []byte("Exif")) || bytes.Contains(b, []byte{0xFF, 0xE1}) || bytes.Contains(b, lat) {
			t.Errorf("%s keeps an APP1/Exif segment", name)
		}
		cfg, err := jpeg.DecodeConfig(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		want := map[string][2]int{"poster": {960, 720}, "thumb": {240, 180}}[name]
		if cfg.Width != want[0] || cfg.Height != want[1] {
			t.Errorf("%s: %dx%d, want %v", name, cfg.Width, cfg.Height, want)
		}
	}
}

func TestStillsUpright(t *testing.T) {
	// Orientation 6: the stored picture is turned 90° clockwise to show:
	// its left half (red) ends on top.
	poster, _, err := Stills(phoneJPEG(t, 400, 200, 6))
	if err != nil {
		t.Fatal(err)
	}
	img, err := jpeg.Decode(bytes.NewReader(poster))
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 200 || b.Dy() != 400 {
		t.Fatalf("%v, want 200x400", b)
	}
	top, bottom := img.At(100, 50), img.At(100, 350)
	if r, _, bl, _ := top.RGBA(); r < bl {
		t.Errorf("top is not red: %v", top)
	}
	if r, _, bl, _ := bottom.RGBA(); bl < r {
		t.Errorf("bottom is not blue: %v", bottom)
	}
	// Small stays small: no upscaling.
	poster, _, _ = Stills(phoneJPEG(t, 64, 48, 1))
	if cfg, _ := jpeg.DecodeConfig(bytes.NewReader(poster)); cfg.Width != 64 || cfg.Height != 48 {
		t.Errorf("%dx%d", cfg.Width, cfg.Height)
	}
}

func TestOrientation(t *testing.T) {
	for o := uint16(1); o <= 8; o++ {
		if got := Orientation(phoneJPEG(t, 16, 16, o)); got != int(o) {
			t.Errorf("orientation %d read as %d", o, got)
		}
	}
	if Orientation(phoneJPEG(t, 16, 16, 99)) != 1 {
		t.Error("a bogus orientation is not upright")
	}
}

func TestCheckRefuses(t *testing.T) {
	// A header claiming 20000x20000 pixels: refused before decoding.
	src := phoneJPEG(t, 16, 16, 1)
	huge := bytes.Clone(src)
	for i := 2; i+9 < len(huge); i++ {
		if huge[i] == 0xFF && huge[i+1] == 0xC0 { // SOF0: len(2) precision(1) height(2) width(2)
			binary.BigEndian.PutUint16(huge[i+5:], 20000)
			binary.BigEndian.PutUint16(huge[i+7:], 20000)
			break
		}
	}
	wide := bytes.Clone(huge)
	for i := 2; i+9 < len(wide); i++ {
		if wide[i] == 0xFF && wide[i+1] == 0xC0 {
			binary.BigEndian.PutUint16(wide[i+5:], 1)
			binary.BigEndian.PutUint16(wide[i+7:], 16000) // 16000 px: under MaxSide...
			binary.BigEndian.PutUint16(wide[i+5:], 2000)  // ...but 32 MP
			break
		}
	}
	for name, b := range map[string][]byte{
		"empty":     nil,
		"png":       {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'},
		"text":      []byte("hello"),
		"truncated": src[:40],
		"huge":      huge,
		"32MP":      wide,
		"oversize":  append(bytes.Clone(src), make([]byte, MaxSize)...),
	} {
		_, err := Check(b)
		var te *Error
		if !errors.As(err, &te) {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if _, _, err := Stills(b); err == nil {
			t.Errorf("%s: Stills accepted it", name)
		}
		t.Logf("%s: %v", name, err)
	}
}
