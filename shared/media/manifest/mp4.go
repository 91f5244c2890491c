package manifest

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Track is what an fMP4 init segment says about its single track.
type Track struct {
	Kind      string // "video" or "audio"
	Codec     string // RFC 6381 codecs value, e.g. avc1.64001e or mp4a.40.2
	Timescale uint32
	Width     int // video: coded size of the sample entry
	Height    int
	Channels  int // audio
	Rate      int // audio sample rate, Hz
	// DefaultDuration is the trex default sample duration, used by
	// fragments whose trun and tfhd carry none.
	DefaultDuration uint32
}

// Segment is one media segment's place on its track's timeline.
type Segment struct {
	Start    uint64 `json:"t"` // baseMediaDecodeTime of the first fragment, in the track's timescale
	Duration uint64 `json:"d"` // sum of the sample durations
	Size     int64  `json:"n"` // bytes
}

// errBox is wrapped by every parse error, so callers can tell a bad file
// from other failures.
var errBox = errors.New("manifest: malformed MP4")

type box struct {
	typ  string
	body []byte
}

// boxes splits b into its top-level boxes.
func boxes(b []byte) ([]box, error) {
	var out []box
	for len(b) > 0 {
		if len(b) < 8 {
			return nil, fmt.Errorf("%w: truncated box header", errBox)
		}
		size := uint64(binary.BigEndian.Uint32(b))
		typ := string(b[4:8])
		hdr := uint64(8)
		switch size {
		case 0:
			size = uint64(len(b))
		case 1:
			if len(b) < 16 {
				return nil, fmt.Errorf("%w: truncated large box %q", errBox, typ)
			}
			size, hdr = binary.BigEndian.Uint64(b[8:]), 16
		}
		if size < hdr || size > uint64(len(b)) {
			return nil, fmt.Errorf("%w: box %q claims %d bytes, %d left", errBox, typ, size, len(b))
		}
		out = append(out, box{typ, b[hdr:size]})
		b = b[size:]
	}
	return out, nil
}

// find returns the body of the first box reached by path (e.g. "moov",
// "trak", "mdia"), or nil.
func find(b []byte, path ...string) ([]byte, error) {
	for _, want := range path {
		bs, err := boxes(b)
		if err != nil {
			return nil, err
		}
		b = nil
		for _, x := range bs {
			if x.typ == want {
				b = x.body
				break
			}
		}
		if b == nil {
			return nil, nil
		}
	}
	return b, nil
}

func need(b []byte, n int, what string) error {
	if len(b) < n {
		return fmt.Errorf("%w: %s too short", errBox, what)
	}
	return nil
}

// ParseInit reads an fMP4 init segment with one track (as ffmpeg's HLS
// muxer writes it per rendition).
func ParseInit(b []byte) (Track, error) {
	var t Track
	mdia, err := find(b, "moov", "trak", "mdia")
	if err != nil {
		return t, err
	}
	if mdia == nil {
		return t, fmt.Errorf("%w: no moov/trak/mdia", errBox)
	}
	mdhd, err := find(mdia, "mdhd")
	if err != nil || mdhd == nil {
		return t, fmt.Errorf("%w: no mdhd", errBox)
	}
	off := 12 // version/flags, creation, modification
	if mdhd[0] == 1 {
		off = 20
	}
	if err := need(mdhd, off+4, "mdhd"); err != nil {
		return t, err
	}
	t.Timescale = binary.BigEndian.Uint32(mdhd[off:])
	if t.Timescale == 0 {
		return t, fmt.Errorf("%w: zero timescale", errBox)
	}
	stsd, err := find(mdia, "minf", "stbl", "stsd")
	if err != nil || stsd == nil {
		return t, fmt.Errorf("%w: no stsd", errBox)
	}
	if err := need(stsd, 8, "stsd"); err != nil {
		return t, err
	}
	entries, err := boxes(stsd[8:])
	if err != nil || len(entries) == 0 {
		return t, fmt.Errorf("%w: empty stsd", errBox)
	}
	e := entries[0]
	switch e.typ {
	case "avc1", "avc3":
		if err := need(e.body, 78, e.typ); err != nil {
			return t, err
		}
		t.Kind = "video"
		t.Width = int(binary.BigEndian.Uint16(e.body[24:]))
		t.Height = int(binary.BigEndian.Uint16(e.body[26:]))
		avcC, err := find(e.body[78:], "avcC")
		if err != nil || avcC == nil {
			return t, fmt.Errorf("%w: %s without avcC", errBox, e.typ)
		}
		if err := need(avcC, 4, "avcC"); err != nil {
			return t, err
		}
		t.Codec = fmt.Sprintf("%s.%02x%02x%02x", e.typ, avcC[1], avcC[2], avcC[3])
	case "mp4a":
		if err := need(e.body, 28, "mp4a"); err != nil {
			return t, err
		}
		t.Kind = "audio"
		t.Channels = int(binary.BigEndian.Uint16(e.body[16:]))
		t.Rate = int(binary.BigEndian.Uint32(e.body[24:]) >> 16)
		esds, err := find(e.body[28:], "esds")
		if err != nil || esds == nil {
			return t, fmt.Errorf("%w: mp4a without esds", errBox)
		}
		oti, aot, ch, err := parseESDS(esds)
		if err != nil {
			return t, err
		}
		if ch > 0 {
			// The sample entry's channelcount is 2 whatever the stream
			// (ffmpeg writes 2 for mono AAC); the decoder config is exact.
			t.Channels = ch
		}
		t.Codec = fmt.Sprintf("mp4a.%02x", oti)
		if oti == 0x40 { // MPEG-4 audio: the codec names the audio object type
			t.Codec = fmt.Sprintf("mp4a.40.%d", aot)
		}
	default:
		return t, fmt.Errorf("%w: unsupported sample entry %q", errBox, e.typ)
	}
	if trex, _ := find(b, "moov", "mvex", "trex"); len(trex) >= 16 {
		t.DefaultDuration = binary.BigEndian.Uint32(trex[12:])
	}
	return t, nil
}

// parseESDS returns the objectTypeIndication and, for MPEG-4 audio, the
// audio object type and channel configuration from the
// AudioSpecificConfig (ISO 14496-1 §7.2.6, ISO 14496-3 §1.6.2.1; channels
// 0 when the config does not say: a program config element or none).
func parseESDS(b []byte) (oti byte, aot, channels int, err error) {
	bad := fmt.Errorf("%w: bad esds", errBox)
	if len(b) < 4 {
		return 0, 0, 0, bad
	}
	b = b[4:] // version/flags
	tag, body, _, ok := descriptor(b)
	if !ok || tag != 0x03 || len(body) < 3 {
		return 0, 0, 0, bad
	}
	flags := body[2]
	body = body[3:]
	if flags&0x80 != 0 { // streamDependenceFlag
		body = skip(body, 2)
	}
	if flags&0x40 != 0 && len(body) > 0 { // URL_Flag
		body = skip(body, 1+int(body[0]))
	}
	if flags&0x20 != 0 { // OCRstreamFlag
		body = skip(body, 2)
	}
	tag, dcd, _, ok := descriptor(body)
	if !ok || tag != 0x04 || len(dcd) < 13 {
		return 0, 0, 0, bad
	}
	oti = dcd[0]
	tag, dsi, _, ok := descriptor(dcd[13:])
	if !ok || tag != 0x05 || len(dsi) < 1 {
		return oti, 0, 0, nil // no AudioSpecificConfig: the OTI alone names it
	}
	r := bitReader{b: dsi}
	aot = r.read(5)
	if aot == 31 {
		aot = 32 + r.read(6)
	}
	if r.read(4) == 0xf { // samplingFrequencyIndex: escape, then the frequency
		r.read(24)
	}
	channels = r.read(4)
	if r.short {
		channels = 0
	}
	return oti, aot, channels, nil
}

// bitReader reads big-endian bit fields; past the end it reads zeros and
// sets short.
type bitReader struct {
	b     []byte
	pos   int // bits
	short bool
}

func (r *bitReader) read(n int) int {
	v := 0
	for range n {
		bit := 0
		if i := r.pos / 8; i < len(r.b) {
			bit = int(r.b[i]>>(7-r.pos%8)) & 1
		} else {
			r.short = true
		}
		v = v<<1 | bit
		r.pos++
	}
	return v
}

func skip(b []byte, n int) []byte {
	if n > len(b) {
		return nil
	}
	return b[n:]
}

// descriptor reads one MPEG-4 descriptor: tag, then a size of up to four
// 7-bit groups.
func descriptor(b []byte) (tag byte, body, rest []byte, ok bool) {
	if len(b) < 2 {
		return 0, nil, nil, false
	}
	tag = b[0]
	size, i := 0, 1
	for ; i < len(b) && i <= 4; i++ {
		size = size<<7 | int(b[i]&0x7f)
		if b[i]&0x80 == 0 {
			i++
			break
		}
	}
	if i+size > len(b) {
		return 0, nil, nil, false
	}
	return tag, b[i : i+size], b[i+size:], true
}

// ParseSegment reads an fMP4 media segment (one or more moof+mdat pairs of
// the track described by t) and returns its start and duration.
func ParseSegment(b []byte, t Track) (Segment, error) {
	seg := Segment{Size: int64(len(b))}
	top, err := boxes(b)
	if err != nil {
		return seg, err
	}
	first := true
	for _, m := range top {
		if m.typ != "moof" {
			continue
		}
		trafs, err := boxes(m.body)
		if err != nil {
			return seg, err
		}
		for _, tr := range trafs {
			if tr.typ != "traf" {
				continue
			}
			start, dur, err := parseTraf(tr.body, t.DefaultDuration)
			if err != nil {
				return seg, err
			}
			if first {
				seg.Start, first = start, false
			}
			seg.Duration += dur
		}
	}
	if first {
		return seg, fmt.Errorf("%w: segment has no moof/traf", errBox)
	}
	return seg, nil
}

func parseTraf(b []byte, defDur uint32) (start, dur uint64, err error) {
	bs, err := boxes(b)
	if err != nil {
		return 0, 0, err
	}
	bad := func(what string) error { return fmt.Errorf("%w: bad %s", errBox, what) }
	var sawTfdt bool
	for _, x := range bs {
		switch x.typ {
		case "tfhd":
			if len(x.body) < 8 {
				return 0, 0, bad("tfhd")
			}
			flags := binary.BigEndian.Uint32(x.body) & 0xffffff
			off := 8
			for _, f := range []struct {
				bit uint32
				n   int
			}{{0x01, 8}, {0x02, 4}} {
				if flags&f.bit != 0 {
					off += f.n
				}
			}
			if flags&0x08 != 0 {
				if len(x.body) < off+4 {
					return 0, 0, bad("tfhd")
				}
				defDur = binary.BigEndian.Uint32(x.body[off:])
			}
		case "tfdt":
			sawTfdt = true
			if len(x.body) < 8 {
				return 0, 0, bad("tfdt")
			}
			if x.body[0] == 1 {
				if len(x.body) < 12 {
					return 0, 0, bad("tfdt")
				}
				start = binary.BigEndian.Uint64(x.body[4:])
			} else {
				start = uint64(binary.BigEndian.Uint32(x.body[4:]))
			}
		case "trun":
			d, err := trunDuration(x.body, defDur)
			if err != nil {
				return 0, 0, err
			}
			dur += d
		}
	}
	if !sawTfdt {
		return 0, 0, bad("traf: no tfdt")
	}
	return start, dur, nil
}

func trunDuration(b []byte, defDur uint32) (uint64, error) {
	bad := fmt.Errorf("%w: bad trun", errBox)
	if len(b) < 8 {
		return 0, bad
	}
	flags := binary.BigEndian.Uint32(b) & 0xffffff
	n := int(binary.BigEndian.Uint32(b[4:]))
	off := 8
	if flags&0x01 != 0 {
		off += 4
	}
	if flags&0x04 != 0 {
		off += 4
	}
	per := 0
	for _, bit := range []uint32{0x100, 0x200, 0x400, 0x800} {
		if flags&bit != 0 {
			per += 4
		}
	}
	if flags&0x100 == 0 {
		if defDur == 0 {
			return 0, fmt.Errorf("%w: trun without sample durations and no default", errBox)
		}
		return uint64(n) * uint64(defDur), nil
	}
	if n < 0 || len(b) < off+n*per {
		return 0, bad
	}
	var sum uint64
	for i := range n {
		sum += uint64(binary.BigEndian.Uint32(b[off+i*per:]))
	}
	return sum, nil
}
