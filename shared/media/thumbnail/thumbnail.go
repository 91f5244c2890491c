// Package thumbnail checks the thumbnail a Pulse phone uploads beside its
// video and turns it into the video's poster.jpg and thumb.jpg. The phone's
// JPEG may carry EXIF (GPS position, device, time): the stills are decoded
// to pixels and encoded anew with image/jpeg, which writes no metadata
// segment at all, so nothing but the picture survives. The EXIF orientation
// is applied to the pixels first, the one piece of metadata that changes
// how the picture looks.
package thumbnail

import (
	"bytes"
	"fmt"
	"image"
	"image/jpeg"

	"golang.org/x/image/draw"
)

// Bounds of an uploaded thumbnail. MaxPixels bounds what decoding costs
// (about 1.5 bytes a pixel for a phone's 4:2:0 JPEG): the size of a 24 MP
// photo, far above any thumbnail.
const (
	MaxSize   = 10 << 20
	MaxPixels = 25_000_000
	MaxSide   = 16384
)

// Short sides of the stills, as the frame-grab posters have them.
const (
	PosterShort = 720
	ThumbShort  = 180
)

// Error is a thumbnail refused; its text is meant for the uploader.
type Error struct{ Msg string }

func (e *Error) Error() string { return "thumbnail: " + e.Msg }

// Check reads only the JPEG header of b and refuses what is not a JPEG or
// is too large to decode. It is what the upload path calls before it keeps
// a thumbnail; Stills calls it too.
func Check(b []byte) (image.Config, error) {
	if len(b) > MaxSize {
		return image.Config{}, &Error{fmt.Sprintf("larger than %d bytes", MaxSize)}
	}
	if len(b) < 3 || b[0] != 0xFF || b[1] != 0xD8 || b[2] != 0xFF {
		return image.Config{}, &Error{"not a JPEG image"}
	}
	cfg, err := jpeg.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		return cfg, &Error{"not a JPEG image that decodes: " + err.Error()}
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width > MaxSide || cfg.Height > MaxSide || cfg.Width*cfg.Height > MaxPixels {
		return cfg, &Error{fmt.Sprintf("%dx%d pixels is too large (at most %d pixels, %d on a side)", cfg.Width, cfg.Height, MaxPixels, MaxSide)}
	}
	return cfg, nil
}

// Stills returns the poster (short side up to PosterShort) and the
// thumbnail still (up to ThumbShort) made from an uploaded thumbnail, as
// fresh JPEGs without any metadata, upright as its EXIF orientation says.
// Neither is ever larger than the source.
func Stills(b []byte) (poster, thumb []byte, err error) {
	if _, err := Check(b); err != nil {
		return nil, nil, err
	}
	img, err := jpeg.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, nil, &Error{"the JPEG does not decode: " + err.Error()}
	}
	// Scaling first keeps turning cheap; the short side is the same
	// either way round.
	p := orient(scale(img, PosterShort), Orientation(b))
	if poster, err = encode(p, 85); err != nil {
		return nil, nil, err
	}
	if thumb, err = encode(scale(p, ThumbShort), 75); err != nil {
		return nil, nil, err
	}
	return poster, thumb, nil
}

func scale(img image.Image, short int) image.Image {
	w, h := img.Bounds().Dx(), img.Bounds().Dy()
	s := min(w, h)
	if s <= short {
		return img
	}
	nw, nh := max(1, w*short/s), max(1, h*short/s)
	dst := image.NewRGBA(image.Rect(0, 0, nw, nh))
	draw.BiLinear.Scale(dst, dst.Bounds(), img, img.Bounds(), draw.Src, nil)
	return dst
}

func encode(img image.Image, q int) ([]byte, error) {
	var out bytes.Buffer
	if err := jpeg.Encode(&out, img, &jpeg.Options{Quality: q}); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// HasMetadata reports whether a JPEG carries an APP1 segment (EXIF or XMP)
// before its image data: what a poster must never have.
func HasMetadata(b []byte) bool {
	_, ok := app1(b, nil)
	return ok
}

// app1 walks the JPEG's marker segments up to the start of scan and returns
// the payload of the first APP1 segment whose payload starts with prefix
// (any APP1 when prefix is nil).
func app1(b []byte, prefix []byte) ([]byte, bool) {
	if len(b) < 2 || b[0] != 0xFF || b[1] != 0xD8 {
		return nil, false
	}
	for i := 2; i+4 <= len(b); {
		if b[i] != 0xFF {
			return nil, false
		}
		marker := b[i+1]
		if marker == 0xFF { // fill byte
			i++
			continue
		}
		if marker == 0xD9 || marker == 0xDA { // end of image, start of scan
			return nil, false
		}
		if marker == 0x01 || marker >= 0xD0 && marker <= 0xD7 { // no length
			i += 2
			continue
		}
		n := int(b[i+2])<<8 | int(b[i+3])
		if n < 2 || i+2+n > len(b) {
			return nil, false
		}
		payload := b[i+4 : i+2+n]
		if marker == 0xE1 && bytes.HasPrefix(payload, prefix) {
			return payload, true
		}
		i += 2 + n
	}
	return nil, false
}

// Orientation reads the EXIF orientation (1–8) of a JPEG; 1 (upright) when
// there is none or it does not parse.
func Orientation(b []byte) int {
	p, ok := app1(b, []byte("Exif\x00\x00"))
	if !ok {
		return 1
	}
	tiff := p[6:]
	if len(tiff) < 8 {
		return 1
	}
	var u16 func([]byte) int
	var u32 func([]byte) int
	switch string(tiff[:2]) {
	case "II":
		u16 = func(x []byte) int { return int(x[0]) | int(x[1])<<8 }
		u32 = func(x []byte) int { return u16(x) | u16(x[2:])<<16 }
	case "MM":
		u16 = func(x []byte) int { return int(x[0])<<8 | int(x[1]) }
		u32 = func(x []byte) int { return u16(x)<<16 | u16(x[2:]) }
	default:
		return 1
	}
	if u16(tiff[2:]) != 42 {
		return 1
	}
	ifd := u32(tiff[4:])
	if ifd < 8 || ifd+2 > len(tiff) {
		return 1
	}
	n := u16(tiff[ifd:])
	for k := range n {
		e := ifd + 2 + 12*k
		if e+12 > len(tiff) {
			return 1
		}
		if u16(tiff[e:]) == 0x0112 && u16(tiff[e+2:]) == 3 { // Orientation, SHORT
			if o := u16(tiff[e+8:]); o >= 1 && o <= 8 {
				return o
			}
			return 1
		}
	}
	return 1
}

// orient applies EXIF orientation o to img.
func orient(img image.Image, o int) image.Image {
	if o <= 1 || o > 8 {
		return img
	}
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	dw, dh := w, h
	if o >= 5 {
		dw, dh = h, w
	}
	dst := image.NewRGBA(image.Rect(0, 0, dw, dh))
	for y := range h {
		for x := range w {
			var dx, dy int
			switch o {
			case 2:
				dx, dy = w-1-x, y
			case 3:
				dx, dy = w-1-x, h-1-y
			case 4:
				dx, dy = x, h-1-y
			case 5:
				dx, dy = y, x
			case 6:
				dx, dy = h-1-y, x
			case 7:
				dx, dy = h-1-y, w-1-x
			case 8:
				dx, dy = y, w-1-x
			}
			dst.Set(dx, dy, img.At(b.Min.X+x, b.Min.Y+y))
		}
	}
	return dst
}
