package testclip

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/color"
	"image/jpeg"
)

// GPSLatitude is the latitude PhoneJPEG's EXIF carries, as its three
// rationals' numerators: 41° 24' 12.34" (the bytes a test looks for).
var GPSLatitude = []uint32{41, 1, 24, 1, 1234, 100}

// PhoneJPEG returns a w×h JPEG as a phone's camera writes one: an APP1
// Exif segment after SOI with the orientation in IFD0 and a GPS IFD
// (latitude ref and latitude). The picture is red on its left half and
// blue on its right, so a test can tell how it was turned.
func PhoneJPEG(w, h int, orientation uint16) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			c := color.RGBA{220, 0, 0, 255}
			if x >= w/2 {
				c = color.RGBA{0, 0, 220, 255}
			}
			img.Set(x, y, c)
		}
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 90}); err != nil {
		panic(err)
	}
	raw := b.Bytes()
	return append(append(append([]byte{}, raw[:2]...), exifAPP1(orientation)...), raw[2:]...)
}

func exifAPP1(orientation uint16) []byte {
	var t bytes.Buffer
	be := binary.BigEndian
	put := func(v any) { _ = binary.Write(&t, be, v) }
	t.WriteString("MM")
	put(uint16(42))
	put(uint32(8)) // IFD0 at 8
	// IFD0: Orientation, GPSInfo pointer.
	put(uint16(2))
	put([]uint16{0x0112, 3})
	put(uint32(1))
	put([]uint16{orientation, 0})
	gps := uint32(8 + 2 + 2*12 + 4)
	put([]uint16{0x8825, 4})
	put(uint32(1))
	put(gps)
	put(uint32(0)) // no next IFD
	// GPS IFD: GPSLatitudeRef "N", GPSLatitude (3 rationals, after the IFD).
	put(uint16(2))
	put([]uint16{0x0001, 2})
	put(uint32(2))
	t.Write([]byte{'N', 0, 0, 0})
	put([]uint16{0x0002, 5})
	put(uint32(3))
	put(gps + 2 + 2*12 + 4)
	put(uint32(0))
	put(GPSLatitude)
	payload := append([]byte("Exif\x00\x00"), t.Bytes()...)
	seg := []byte{0xFF, 0xE1, 0, 0}
	binary.BigEndian.PutUint16(seg[2:], uint16(len(payload)+2))
	return append(seg, payload...)
}
