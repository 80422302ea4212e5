package record

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"time"
)

// IVF layout, all integers little endian:
//
//	file header, 32 bytes:
//	 0  "DKIF"
//	 4  version (uint16, 0)
//	 6  header size (uint16, 32)
//	 8  codec FourCC ("VP80")
//	12  width, height (uint16 each)
//	16  time base denominator (uint32; libvpx calls it the frame rate)
//	20  time base numerator (uint32; the time scale)
//	24  number of frames (uint32)
//	28  unused (uint32)
//	each frame:
//	 0  frame size in bytes, not counting this header (uint32)
//	 4  timestamp in time base units (uint64)
//	12  the frame
const (
	ivfHeaderSize      = 32
	ivfFrameHeaderSize = 12
	ivfMaxHeaderSize   = 1024

	// MaxIVFFrameSize is the largest frame written or read.
	MaxIVFFrameSize = 8 << 20
)

// ErrIVF is wrapped by every error about malformed IVF input.
var ErrIVF = errors.New("record: bad ivf")

// IVFHeader is an IVF file header. A timestamp unit is
// TimebaseNum/TimebaseDen seconds: for a constant frame rate f, the libvpx
// tools write a time base of 1/f and number the frames 0, 1, 2...
type IVFHeader struct {
	FourCC                   [4]byte // codec; "VP80" for VP8
	Width, Height            uint16
	TimebaseNum, TimebaseDen uint32
	Frames                   uint32 // number of frames
}

// IVFWriter writes an IVF file.
type IVFWriter struct {
	w       io.Writer
	seeker  io.WriteSeeker // w, if it can seek; nil otherwise
	start   int64          // offset of the file header in seeker
	hdr     IVFHeader
	last    uint64 // timestamp of the last frame
	started bool   // a frame was written
	closed  bool
	buf     [ivfFrameHeaderSize]byte
}

// NewIVFWriter writes the file header for h to w and returns a writer for
// frames. A zero h.FourCC means "VP80"; a zero time base means 1/1000 s
// (timestamps in milliseconds). h.Frames is ignored: Close writes the count.
func NewIVFWriter(w io.Writer, h IVFHeader) (*IVFWriter, error) {
	if h.FourCC == [4]byte{} {
		h.FourCC = [4]byte{'V', 'P', '8', '0'}
	}
	if h.TimebaseNum == 0 && h.TimebaseDen == 0 {
		h.TimebaseNum, h.TimebaseDen = 1, 1000
	}
	if h.TimebaseNum == 0 || h.TimebaseDen == 0 {
		return nil, fmt.Errorf("record: ivf time base %d/%d", h.TimebaseNum, h.TimebaseDen)
	}
	if h.Width == 0 || h.Height == 0 {
		return nil, fmt.Errorf("record: ivf picture size %d×%d", h.Width, h.Height)
	}
	h.Frames = 0
	iw := &IVFWriter{w: w, hdr: h}
	if s, ok := w.(io.WriteSeeker); ok {
		if pos, err := s.Seek(0, io.SeekCurrent); err == nil {
			iw.seeker, iw.start = s, pos
		}
	}
	if _, err := w.Write(h.AppendBinary(nil)); err != nil {
		return nil, err
	}
	return iw, nil
}

// AppendBinary appends the 32-byte encoding of h to b.
func (h IVFHeader) AppendBinary(b []byte) []byte {
	b = append(b, "DKIF"...)
	b = binary.LittleEndian.AppendUint16(b, 0)
	b = binary.LittleEndian.AppendUint16(b, ivfHeaderSize)
	b = append(b, h.FourCC[:]...)
	b = binary.LittleEndian.AppendUint16(b, h.Width)
	b = binary.LittleEndian.AppendUint16(b, h.Height)
	b = binary.LittleEndian.AppendUint32(b, h.TimebaseDen)
	b = binary.LittleEndian.AppendUint32(b, h.TimebaseNum)
	b = binary.LittleEndian.AppendUint32(b, h.Frames)
	return binary.LittleEndian.AppendUint32(b, 0)
}

// Header returns the header as Close will leave it.
func (w *IVFWriter) Header() IVFHeader { return w.hdr }

// WriteFrame writes one frame with timestamp pts in time base units.
// Timestamps must increase; empty frames (a picture the encoder dropped)
// are not written but rejected, so that players see none.
func (w *IVFWriter) WriteFrame(frame []byte, pts uint64) error {
	switch {
	case w.closed:
		return errors.New("record: ivf writer closed")
	case len(frame) == 0:
		return errors.New("record: empty ivf frame")
	case len(frame) > MaxIVFFrameSize:
		return fmt.Errorf("record: ivf frame of %d bytes above the limit of %d", len(frame), MaxIVFFrameSize)
	case w.started && pts <= w.last:
		return fmt.Errorf("record: ivf timestamp %d not after %d", pts, w.last)
	case w.hdr.Frames == math.MaxUint32:
		return errors.New("record: ivf frame count full")
	}
	binary.LittleEndian.PutUint32(w.buf[0:4], uint32(len(frame)))
	binary.LittleEndian.PutUint64(w.buf[4:12], pts)
	if _, err := w.w.Write(w.buf[:]); err != nil {
		return err
	}
	if _, err := w.w.Write(frame); err != nil {
		return err
	}
	w.started, w.last = true, pts
	w.hdr.Frames++
	return nil
}

// Timestamp converts a time since the start of the recording to time base
// units, rounded to the nearest.
func (w *IVFWriter) Timestamp(d time.Duration) uint64 {
	if d <= 0 {
		return 0
	}
	// d·den/(num·1e9), in floating point: exact enough for any time base
	// and recording length that fit the format.
	return uint64(math.Round(float64(d) * float64(w.hdr.TimebaseDen) / (float64(w.hdr.TimebaseNum) * 1e9)))
}

// Close writes the frame count into the file header if the writer can
// seek (an *os.File can; else the count stays 0, which players ignore). It
// does not close the underlying writer.
func (w *IVFWriter) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	s := w.seeker
	if s == nil {
		return nil
	}
	end, err := s.Seek(0, io.SeekCurrent)
	if err != nil {
		return fmt.Errorf("record: ivf frame count: %w", err)
	}
	if _, err := s.Seek(w.start+24, io.SeekStart); err != nil {
		return fmt.Errorf("record: ivf frame count: %w", err)
	}
	var n [4]byte
	binary.LittleEndian.PutUint32(n[:], w.hdr.Frames)
	if _, err := s.Write(n[:]); err != nil {
		return fmt.Errorf("record: ivf frame count: %w", err)
	}
	if _, err := s.Seek(end, io.SeekStart); err != nil {
		return fmt.Errorf("record: ivf frame count: %w", err)
	}
	return nil
}

// IVFReader reads an IVF file.
type IVFReader struct {
	r   io.Reader
	hdr IVFHeader
	buf []byte
	hb  [ivfFrameHeaderSize]byte
}

// NewIVFReader reads the file header from r.
func NewIVFReader(r io.Reader) (*IVFReader, error) {
	var b [ivfHeaderSize]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("record: ivf header: %w", err)
	}
	if string(b[0:4]) != "DKIF" {
		return nil, fmt.Errorf("%w: not an IVF file", ErrIVF)
	}
	if v := binary.LittleEndian.Uint16(b[4:6]); v != 0 {
		return nil, fmt.Errorf("%w: version %d", ErrIVF, v)
	}
	size := int(binary.LittleEndian.Uint16(b[6:8]))
	if size < ivfHeaderSize || size > ivfMaxHeaderSize {
		return nil, fmt.Errorf("%w: header size %d", ErrIVF, size)
	}
	if _, err := io.CopyN(io.Discard, r, int64(size-ivfHeaderSize)); err != nil {
		return nil, fmt.Errorf("record: ivf header: %w", io.ErrUnexpectedEOF)
	}
	var h IVFHeader
	copy(h.FourCC[:], b[8:12])
	h.Width = binary.LittleEndian.Uint16(b[12:14])
	h.Height = binary.LittleEndian.Uint16(b[14:16])
	h.TimebaseDen = binary.LittleEndian.Uint32(b[16:20])
	h.TimebaseNum = binary.LittleEndian.Uint32(b[20:24])
	h.Frames = binary.LittleEndian.Uint32(b[24:28])
	return &IVFReader{r: r, hdr: h}, nil
}

// Header returns the file header as read (its frame count is what the
// writer recorded, which may be 0).
func (r *IVFReader) Header() IVFHeader { return r.hdr }

// ReadFrame reads the next frame and its timestamp. The frame aliases a
// buffer of the reader, valid until the next call. At the end of the file
// it returns io.EOF; in a cut frame, io.ErrUnexpectedEOF. A declared frame
// size above MaxIVFFrameSize is an error, and the buffer grows only with the
// data that actually arrives.
func (r *IVFReader) ReadFrame() (frame []byte, pts uint64, err error) {
	if _, err := io.ReadFull(r.r, r.hb[:]); err != nil {
		return nil, 0, err // io.EOF between frames is the clean end
	}
	size := binary.LittleEndian.Uint32(r.hb[0:4])
	pts = binary.LittleEndian.Uint64(r.hb[4:12])
	if size > MaxIVFFrameSize {
		return nil, 0, fmt.Errorf("%w: frame of %d bytes above the limit of %d", ErrIVF, size, MaxIVFFrameSize)
	}
	n := int(size)
	if cap(r.buf) >= n {
		r.buf = r.buf[:n]
		if _, err := io.ReadFull(r.r, r.buf); err != nil {
			return nil, 0, io.ErrUnexpectedEOF
		}
		return r.buf, pts, nil
	}
	// Grow with the data, so that a false size allocates little.
	r.buf = r.buf[:0]
	for len(r.buf) < n {
		chunk := min(n-len(r.buf), max(len(r.buf), 64<<10))
		r.buf = slices.Grow(r.buf, chunk)
		got, err := io.ReadFull(r.r, r.buf[len(r.buf):len(r.buf)+chunk])
		r.buf = r.buf[:len(r.buf)+got]
		if err != nil {
			return nil, 0, io.ErrUnexpectedEOF
		}
	}
	return r.buf, pts, nil
}
