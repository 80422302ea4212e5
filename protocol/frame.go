package protocol

import (
	"encoding/binary"
	"fmt"
	"io"
)

// HeaderSize is the size in bytes of the frame header that precedes every
// message on every stream:
//
//	0        1        2                                   6
//	+--------+--------+-----------------------------------+
//	|  type  | flags  |  payload length (uint32, BE)      |  payload ...
//	+--------+--------+-----------------------------------+
const HeaderSize = 6

// FlagCritical marks a message the receiver must understand. A receiver that
// does not know the message's type skips a frame without this flag and closes
// the session (CodeUnknownCritical) on a frame with it. Other flag bits are
// reserved: senders set them to zero and receivers ignore them.
const FlagCritical uint8 = 0x01

// MaxUnknownPayload is the largest payload a receiver skips for a message
// type it does not know. A larger declared length is a protocol error.
const MaxUnknownPayload = 64 << 10

// Header is a decoded frame header.
type Header struct {
	Type   Type
	Flags  uint8
	Length uint32 // payload length in bytes, not counting the header
}

// AppendHeader appends the 6-byte encoding of h to b.
func AppendHeader(b []byte, h Header) []byte {
	return binary.BigEndian.AppendUint32(append(b, byte(h.Type), h.Flags), h.Length)
}

// ParseHeader decodes a frame header from the first HeaderSize bytes of b.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, errorf(CodeMalformed, "frame header needs %d bytes, have %d", HeaderSize, len(b))
	}
	return Header{Type: Type(b[0]), Flags: b[1], Length: binary.BigEndian.Uint32(b[2:6])}, nil
}

// MaxPayload returns the largest payload length a receiver accepts for a
// frame of type t: the per-type cap for known types, MaxUnknownPayload for
// unknown ones. Readers check a declared length against it before they
// allocate anything.
func MaxPayload(t Type) uint32 {
	if info, ok := typeInfos[t]; ok {
		return info.maxPayload
	}
	return MaxUnknownPayload
}

// FrameReader reads frames from one stream. It reuses one buffer, grown up to
// the largest frame seen, so steady-state reads do not allocate; the payload
// returned by Next aliases that buffer and is valid until the next call.
type FrameReader struct {
	r     io.Reader
	hdr   [HeaderSize]byte
	buf   []byte
	limit uint32 // when non-zero, a cap on every payload regardless of type
}

// NewFrameReader returns a FrameReader reading from r.
func NewFrameReader(r io.Reader) *FrameReader { return &FrameReader{r: r} }

// SetLimit caps every payload at n bytes in addition to the per-type caps
// (0 removes the extra cap). Servers use it before the hello.
func (fr *FrameReader) SetLimit(n uint32) { fr.limit = n }

// Next reads one frame. A declared length above the cap for its type (or the
// limit set with SetLimit) fails with CodeFrameTooLarge before anything is
// allocated or read past the header. A stream that ends inside a frame fails
// with io.ErrUnexpectedEOF; one that ends between frames returns io.EOF.
func (fr *FrameReader) Next() (Header, []byte, error) {
	if _, err := io.ReadFull(fr.r, fr.hdr[:]); err != nil {
		return Header{}, nil, err
	}
	h, _ := ParseHeader(fr.hdr[:])
	max := MaxPayload(h.Type)
	if fr.limit != 0 && fr.limit < max {
		max = fr.limit
	}
	if h.Length > max {
		return h, nil, errorf(CodeFrameTooLarge, "frame type %s declares %d bytes, limit %d", h.Type, h.Length, max)
	}
	if uint32(cap(fr.buf)) < h.Length {
		fr.buf = make([]byte, h.Length)
	}
	p := fr.buf[:h.Length]
	if _, err := io.ReadFull(fr.r, p); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return h, nil, fmt.Errorf("protocol: reading %s payload: %w", h.Type, err)
	}
	return h, p, nil
}

// Release drops the reader's buffer so an idle stream holds no payload
// memory; the next frame allocates a new one.
func (fr *FrameReader) Release() { fr.buf = nil }
