package vpx

import (
	"errors"
	"fmt"

	"github.com/parleychat/parley/media/video"
)

// Errors of frame parsing and decoding.
var (
	// ErrFrame is wrapped by errors about malformed VP8 frames.
	ErrFrame = errors.New("vpx: malformed VP8 frame")
	// ErrTooLarge is wrapped when a keyframe declares a picture larger
	// than the decoder accepts.
	ErrTooLarge = errors.New("vpx: picture too large")
)

// FrameHeader is the start of a VP8 frame (RFC 6386, section 9.1): the
// 3-byte frame tag, and for keyframes a start code and the picture size.
//
//	frame tag, 24 bits little endian:
//	  bit 0       0 = keyframe, 1 = delta frame (interframe)
//	  bits 1-3    version (0-3)
//	  bit 4       show_frame
//	  bits 5-23   size of the first partition in bytes
//	keyframes only:
//	  3 bytes     start code 9d 01 2a
//	  16 bits LE  width (14 bits) | horizontal scale << 14
//	  16 bits LE  height (14 bits) | vertical scale << 14
type FrameHeader struct {
	Keyframe       bool
	Version        int  // 0 to 3
	Show           bool // false for frames only used as references
	FirstPartSize  int  // bytes of the first partition, after the header
	Width, Height  int  // keyframes only: the picture size
	HScale, VScale int  // keyframes only: upscaling asked of the player, 0 to 3
}

// Header sizes.
const (
	tagSize      = 3
	keyframeSize = tagSize + 7
)

// Size returns the length of the header's encoding: 10 bytes for a keyframe,
// 3 for a delta frame.
func (h FrameHeader) Size() int {
	if h.Keyframe {
		return keyframeSize
	}
	return tagSize
}

// AppendBinary appends the encoding of h to b.
func (h FrameHeader) AppendBinary(b []byte) ([]byte, error) {
	if h.Version < 0 || h.Version > 3 || h.FirstPartSize < 0 || h.FirstPartSize >= 1<<19 {
		return b, fmt.Errorf("%w: version %d, first partition %d bytes", ErrFrame, h.Version, h.FirstPartSize)
	}
	tag := uint32(h.Version)<<1 | uint32(h.FirstPartSize)<<5
	if !h.Keyframe {
		tag |= 1
	}
	if h.Show {
		tag |= 1 << 4
	}
	b = append(b, byte(tag), byte(tag>>8), byte(tag>>16))
	if !h.Keyframe {
		return b, nil
	}
	if h.Width < 0 || h.Width >= 1<<14 || h.Height < 0 || h.Height >= 1<<14 || h.HScale&^3 != 0 || h.VScale&^3 != 0 {
		return b, fmt.Errorf("%w: size %d×%d, scale %d/%d", ErrFrame, h.Width, h.Height, h.HScale, h.VScale)
	}
	w, v := h.Width|h.HScale<<14, h.Height|h.VScale<<14
	return append(b, 0x9d, 0x01, 0x2a, byte(w), byte(w>>8), byte(v), byte(v>>8)), nil
}

// ParseFrameHeader parses the header at the start of a VP8 frame. It fails
// with ErrFrame if the frame is too short for its header or its first
// partition, the version is unknown, a keyframe lacks the start code or
// declares an empty picture; and with ErrTooLarge if a keyframe's picture
// is above video.MaxWidth×video.MaxHeight or video.MaxPixels.
func ParseFrameHeader(frame []byte) (FrameHeader, error) {
	if len(frame) < tagSize {
		return FrameHeader{}, fmt.Errorf("%w: %d bytes", ErrFrame, len(frame))
	}
	tag := uint32(frame[0]) | uint32(frame[1])<<8 | uint32(frame[2])<<16
	h := FrameHeader{
		Keyframe:      tag&1 == 0,
		Version:       int(tag >> 1 & 7),
		Show:          tag>>4&1 == 1,
		FirstPartSize: int(tag >> 5),
	}
	if h.Version > 3 {
		return FrameHeader{}, fmt.Errorf("%w: version %d", ErrFrame, h.Version)
	}
	if h.Keyframe {
		if len(frame) < keyframeSize {
			return FrameHeader{}, fmt.Errorf("%w: keyframe of %d bytes", ErrFrame, len(frame))
		}
		if frame[3] != 0x9d || frame[4] != 0x01 || frame[5] != 0x2a {
			return FrameHeader{}, fmt.Errorf("%w: no keyframe start code", ErrFrame)
		}
		w := int(frame[6]) | int(frame[7])<<8
		v := int(frame[8]) | int(frame[9])<<8
		h.Width, h.HScale = w&0x3fff, w>>14
		h.Height, h.VScale = v&0x3fff, v>>14
		if h.Width == 0 || h.Height == 0 {
			return FrameHeader{}, fmt.Errorf("%w: picture size %d×%d", ErrFrame, h.Width, h.Height)
		}
		if h.Width > video.MaxWidth || h.Height > video.MaxHeight || h.Width*h.Height > video.MaxPixels {
			return FrameHeader{}, fmt.Errorf("%w: keyframe of %d×%d (at most %d×%d and %d pixels)", ErrTooLarge, h.Width, h.Height, video.MaxWidth, video.MaxHeight, video.MaxPixels)
		}
	}
	if h.FirstPartSize > len(frame)-h.Size() {
		return FrameHeader{}, fmt.Errorf("%w: first partition of %d bytes in a frame of %d", ErrFrame, h.FirstPartSize, len(frame))
	}
	return h, nil
}
