// Package webmp4 is how ffmpeg makes a video's web MP4, the copy a plain
// <video> element or a phone browser plays while it downloads (faststart:
// the moov box before the media data): a remux when the codecs allow, else
// a 720p H.264/AAC encode, with the container metadata (location, device)
// left out; and the top-level box scan that checks the result.
package webmp4

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/mieweb/pulsevault/shared/media/meta"
)

// Box is a top-level ISO BMFF box.
type Box struct {
	Type   string
	Offset int64
	Size   int64 // whole box, header included
}

// MaxBoxes bounds the top-level boxes read: real files have a handful
// (ftyp, moov, mdat, free, uuid...); fragmented ones have two per fragment,
// and the scan stops at the first media data anyway.
const MaxBoxes = 64

// TopLevel lists the top-level boxes of an ISO BMFF file of size bytes up to
// and including the first mdat (or moof): enough to know the layout
// without reading the media. It reads 16 bytes per box.
func TopLevel(r io.ReaderAt, size int64) ([]Box, error) {
	var out []Box
	hdr := make([]byte, 16)
	for off := int64(0); off < size; {
		if len(out) == MaxBoxes {
			return out, fmt.Errorf("webmp4: more than %d top-level boxes before the media data", MaxBoxes)
		}
		n := min(16, size-off)
		if n < 8 {
			return out, errors.New("webmp4: truncated box header")
		}
		if _, err := r.ReadAt(hdr[:n], off); err != nil && !errors.Is(err, io.EOF) {
			return out, err
		}
		bsize := int64(binary.BigEndian.Uint32(hdr))
		typ := string(hdr[4:8])
		switch bsize {
		case 0: // to the end of the file
			bsize = size - off
		case 1: // 64-bit size follows
			if n < 16 {
				return out, errors.New("webmp4: truncated box header")
			}
			u := binary.BigEndian.Uint64(hdr[8:])
			if u > uint64(size) {
				return out, fmt.Errorf("webmp4: box %q runs past the end of the file", typ)
			}
			bsize = int64(u)
		}
		if bsize < 8 || bsize > size-off {
			return out, fmt.Errorf("webmp4: box %q at %d has a bad size", typ, off)
		}
		out = append(out, Box{Type: typ, Offset: off, Size: bsize})
		if typ == "mdat" || typ == "moof" {
			return out, nil
		}
		off += bsize
	}
	return out, nil
}

// Faststart reports whether boxes start with ftyp and put moov before the
// first media data (mdat or moof).
func Faststart(boxes []Box) bool {
	if len(boxes) == 0 || boxes[0].Type != "ftyp" {
		return false
	}
	moov := slices.IndexFunc(boxes, func(b Box) bool { return b.Type == "moov" })
	media := slices.IndexFunc(boxes, func(b Box) bool { return b.Type == "mdat" || b.Type == "moof" })
	return moov >= 0 && (media < 0 || moov < media)
}

// VideoCopies and AudioCopies say whether the original's streams can go
// into the web MP4 unchanged: H.264 and AAC are what every browser plays.
func VideoCopies(p meta.Probe) bool { return p.VideoCodec == "h264" }

// AudioCopies: see VideoCopies; no audio copies trivially.
func AudioCopies(p meta.Probe) bool { return !p.HasAudio || p.AudioCodec == "aac" }

// Short is the short side of an encoded web MP4.
const Short = 720

// Args returns ffmpeg's arguments (after the input options and -i input)
// writing the web MP4 of an original described by p to out: streams that
// copy are copied, others encoded (video to H.264 with its short side at
// most Short, audio to AAC stereo), and neither the container's metadata
// nor chapters, data or subtitle streams are carried over.
func Args(p meta.Probe, preset, out string) []string {
	args := []string{"-map", "0:v:0", "-map", "0:a:0?", "-map_metadata", "-1", "-map_chapters", "-1", "-sn", "-dn"}
	if VideoCopies(p) {
		args = append(args, "-c:v", "copy")
	} else {
		scale := fmt.Sprintf("scale=%d:-2", even(min(Short, p.Width)))
		if p.Width > p.Height {
			scale = fmt.Sprintf("scale=-2:%d", even(min(Short, p.Height)))
		}
		if preset == "" {
			preset = "veryfast"
		}
		args = append(args, "-vf", scale+",format=yuv420p", "-c:v", "libx264", "-preset", preset, "-crf", "23",
			"-profile:v", "high", "-pix_fmt", "yuv420p")
	}
	if AudioCopies(p) {
		args = append(args, "-c:a", "copy")
	} else {
		args = append(args, "-c:a", "aac", "-b:a", "128k", "-ac", "2")
	}
	return append(args, "-movflags", "+faststart", "-f", "mp4", "-y", out)
}

func even(n int) int { return max(2, n-n%2) }
