package video

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"image"
	"io"
	"os"
	"strconv"
	"time"
)

// Y4M (YUV4MPEG2) is the raw video format of ffmpeg, x264 and the libvpx
// tools: a header line, then per frame a "FRAME" line and the planes.
//
//	YUV4MPEG2 W640 H360 F30:1 Ip A1:1 C420jpeg\n
//	FRAME\n <Y: W·H bytes> <Cb: ⌈W/2⌉·⌈H/2⌉ bytes> <Cr: the same>
//	FRAME\n ...
//
// Only 4:2:0 colour spaces are read: C420jpeg (the default when C is
// absent), C420, C420paldv and C420mpeg2 (they differ only in chroma
// siting, which this package ignores), progressive (Ip, or I? for unknown).

// Y4M limits.
const (
	maxY4MLine = 1024 // header and FRAME lines
	y4mMagic   = "YUV4MPEG2 "
)

// ErrY4M is wrapped by every error about malformed or unsupported Y4M
// input.
var ErrY4M = errors.New("video: bad y4m")

// Y4MHeader describes a Y4M stream.
type Y4MHeader struct {
	Width, Height    int
	RateNum, RateDen int    // frames per second = RateNum/RateDen
	ColorSpace       string // "420jpeg", "420", "420paldv" or "420mpeg2"; "" means 420jpeg
}

// frameSize returns the size of a frame's planes.
func (h *Y4MHeader) frameSize() (ySize, cSize int) {
	return h.Width * h.Height, ((h.Width + 1) / 2) * ((h.Height + 1) / 2)
}

// Y4MOptions configures a Y4MReader. The zero value reads the file once and
// accepts pictures up to MaxPixels.
type Y4MOptions struct {
	// Loop starts again at the first frame after the last one, for ever.
	// The reader must be an io.Seeker.
	Loop bool
	// MaxPixels is the largest Width·Height accepted; 0 means MaxPixels.
	MaxPixels int
}

// Y4MReader reads a 4:2:0 Y4M stream. It is a media.VideoSource: ReadFrame
// paces the frames in real time at the header's frame rate, as TestPattern
// does (a late caller gets the frame due now, and the frames it missed are
// read and dropped). Next reads every frame in order without waiting, for
// tools and tests.
//
// ReadFrame and Next are called from one goroutine at a time; Close may be
// called from any, and makes a waiting ReadFrame return ErrClosed.
type Y4MReader struct {
	br        *bufio.Reader
	r         io.Reader
	closer    io.Closer // closed by Close; set by OpenY4M
	hdr       Y4MHeader
	opt       Y4MOptions
	dataStart int64        // offset of the first frame in r, for Loop
	frames    uint64       // frames read since the last rewind
	img       *image.YCbCr // allocated at the first frame, then reused
	pace      *pacer
	next      uint64 // frame number of the next frame in the stream
}

// OpenY4M opens a Y4M file; Close closes it.
func OpenY4M(name string, opt Y4MOptions) (*Y4MReader, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	r, err := NewY4MReader(f, opt)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	r.closer = f
	return r, nil
}

// NewY4MReader reads the header from r and returns a reader of its frames.
// Sizes, frame rate and colour space are checked before anything is
// allocated for the frames.
func NewY4MReader(r io.Reader, opt Y4MOptions) (*Y4MReader, error) {
	if opt.MaxPixels <= 0 || opt.MaxPixels > MaxPixels {
		opt.MaxPixels = MaxPixels
	}
	y := &Y4MReader{r: r, opt: opt}
	if opt.Loop {
		s, ok := r.(io.Seeker)
		if !ok {
			return nil, errors.New("video: y4m: Loop needs a reader that can seek")
		}
		pos, err := s.Seek(0, io.SeekCurrent)
		if err != nil {
			return nil, fmt.Errorf("video: y4m: %w", err)
		}
		y.dataStart = pos
	}
	y.br = bufio.NewReaderSize(r, 4096)
	line, err := y.line()
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return nil, fmt.Errorf("video: y4m header: %w", err)
	}
	y.dataStart += int64(len(line))
	hdr, err := parseY4MHeader(line, opt.MaxPixels)
	if err != nil {
		return nil, err
	}
	y.hdr = hdr
	if y.pace, err = newPacer(uint64(hdr.RateNum), uint64(hdr.RateDen)); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrY4M, err)
	}
	return y, nil
}

// line reads one line, '\n' included, of at most maxY4MLine bytes. The
// bytes are valid until the next read.
func (y *Y4MReader) line() ([]byte, error) {
	b, err := y.br.ReadSlice('\n')
	switch {
	case err == bufio.ErrBufferFull || err == nil && len(b) > maxY4MLine:
		return nil, fmt.Errorf("%w: line longer than %d bytes", ErrY4M, maxY4MLine)
	case err == io.EOF && len(b) > 0:
		return nil, io.ErrUnexpectedEOF
	}
	return b, err
}

func parseY4MHeader(line []byte, maxPixels int) (Y4MHeader, error) {
	bad := func(format string, args ...any) (Y4MHeader, error) {
		return Y4MHeader{}, fmt.Errorf("%w: "+format, append([]any{ErrY4M}, args...)...)
	}
	if !bytes.HasPrefix(line, []byte(y4mMagic)) {
		return bad("not a YUV4MPEG2 stream")
	}
	var h Y4MHeader
	var haveRate bool
	for _, tok := range bytes.Split(bytes.TrimSuffix(line[len(y4mMagic):], []byte("\n")), []byte(" ")) {
		if len(tok) == 0 {
			continue
		}
		val := string(tok[1:])
		switch tok[0] {
		case 'W', 'H':
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 || len(val) > 6 {
				return bad("bad picture %s %q", map[byte]string{'W': "width", 'H': "height"}[tok[0]], val)
			}
			if tok[0] == 'W' {
				h.Width = n
			} else {
				h.Height = n
			}
		case 'F':
			num, den, ok := parseRatio(val)
			if !ok {
				return bad("bad frame rate %q", val)
			}
			h.RateNum, h.RateDen, haveRate = num, den, true
		case 'I':
			if val != "p" && val != "?" {
				return bad("interlacing I%s not supported (progressive only)", val)
			}
		case 'C':
			switch val {
			case "420jpeg", "420", "420paldv", "420mpeg2":
				h.ColorSpace = val
			default:
				return bad("colour space C%s not supported (4:2:0 only: C420jpeg, C420, C420paldv, C420mpeg2)", val)
			}
		case 'A':
			if _, _, ok := parseRatio(val); !ok && val != "0:0" {
				return bad("bad pixel aspect %q", val)
			}
		default:
			// X (comments and extensions) and unknown parameters are
			// ignored, as the format asks.
		}
	}
	if h.Width == 0 || h.Height == 0 {
		return bad("picture size missing")
	}
	if !haveRate {
		return bad("frame rate missing")
	}
	if err := checkSize(h.Width, h.Height); err != nil {
		return bad("%v", err)
	}
	if h.Width*h.Height > maxPixels {
		return bad("picture size %d×%d above the limit of %d pixels", h.Width, h.Height, maxPixels)
	}
	if h.ColorSpace == "" {
		h.ColorSpace = "420jpeg"
	}
	return h, nil
}

// parseRatio parses "num:den" with both in [1, maxRateTerm].
func parseRatio(s string) (num, den int, ok bool) {
	a, b, found := bytes.Cut([]byte(s), []byte(":"))
	if !found || len(a) > 7 || len(b) > 7 {
		return 0, 0, false
	}
	n, err1 := strconv.Atoi(string(a))
	d, err2 := strconv.Atoi(string(b))
	if err1 != nil || err2 != nil || n < 1 || d < 1 || n > maxRateTerm || d > maxRateTerm {
		return 0, 0, false
	}
	return n, d, true
}

// Header returns the stream's header.
func (y *Y4MReader) Header() Y4MHeader { return y.hdr }

// FrameRate returns the frames per second the header declares.
func (y *Y4MReader) FrameRate() float64 { return float64(y.hdr.RateNum) / float64(y.hdr.RateDen) }

// Next reads the next frame, without waiting. The picture is reused by the
// next call. At the end of the stream it returns io.EOF (or, with Loop,
// the first frame again); a stream cut inside a frame is
// io.ErrUnexpectedEOF.
func (y *Y4MReader) Next() (*image.YCbCr, error) {
	err := y.readFrame()
	if err == io.EOF && y.opt.Loop && y.frames > 0 {
		if err = y.rewind(); err == nil {
			err = y.readFrame()
		}
	}
	if err != nil {
		return nil, err
	}
	y.next++
	return y.img, nil
}

// ReadFrame returns the next frame when it is due (frame n at start +
// n/rate, start being the first call), with the time it returned as its
// capture time. Frames a late caller missed are read and dropped. The
// picture is reused by the next call. At the end of the stream it returns
// io.EOF (unless Loop is set).
func (y *Y4MReader) ReadFrame() (*image.YCbCr, time.Time, error) {
	n, now, err := y.pace.wait()
	if err != nil {
		return nil, time.Time{}, err
	}
	for y.next <= n {
		if _, err := y.Next(); err != nil {
			return nil, time.Time{}, err
		}
	}
	return y.img, now, nil
}

// Close stops ReadFrame and closes the file OpenY4M opened.
func (y *Y4MReader) Close() error {
	y.pace.close()
	if y.closer != nil {
		return y.closer.Close()
	}
	return nil
}

func (y *Y4MReader) rewind() error {
	if _, err := y.r.(io.Seeker).Seek(y.dataStart, io.SeekStart); err != nil {
		return fmt.Errorf("video: y4m: rewind: %w", err)
	}
	y.br.Reset(y.r)
	y.frames = 0
	return nil
}

// readFrame reads one frame into y.img.
func (y *Y4MReader) readFrame() error {
	line, err := y.line()
	if err != nil {
		return err // io.EOF between frames is the clean end
	}
	if !bytes.HasPrefix(line, []byte("FRAME")) || line[5] != '\n' && line[5] != ' ' {
		return fmt.Errorf("%w: frame %d: no FRAME marker", ErrY4M, y.frames)
	}
	if y.img == nil {
		y.img = image.NewYCbCr(image.Rect(0, 0, y.hdr.Width, y.hdr.Height), image.YCbCrSubsampleRatio420)
	}
	ySize, cSize := y.hdr.frameSize()
	for _, p := range [][]byte{y.img.Y[:ySize], y.img.Cb[:cSize], y.img.Cr[:cSize]} {
		if _, err := io.ReadFull(y.br, p); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	y.frames++
	return nil
}

// Y4MWriter writes a 4:2:0 Y4M stream.
type Y4MWriter struct {
	w   io.Writer
	hdr Y4MHeader
	buf []byte
}

// NewY4MWriter writes the header h to w and returns a writer for frames of
// that size. h.ColorSpace "" is written as C420jpeg.
func NewY4MWriter(w io.Writer, h Y4MHeader) (*Y4MWriter, error) {
	if h.ColorSpace == "" {
		h.ColorSpace = "420jpeg"
	}
	if err := checkSize(h.Width, h.Height); err != nil {
		return nil, fmt.Errorf("video: y4m writer: %w", err)
	}
	if _, err := newPacer(uint64(max(0, h.RateNum)), uint64(max(0, h.RateDen))); err != nil {
		return nil, fmt.Errorf("video: y4m writer: %w", err)
	}
	switch h.ColorSpace {
	case "420jpeg", "420", "420paldv", "420mpeg2":
	default:
		return nil, fmt.Errorf("video: y4m writer: colour space %q is not 4:2:0", h.ColorSpace)
	}
	hdr := fmt.Sprintf("%sW%d H%d F%d:%d Ip A1:1 C%s\n", y4mMagic, h.Width, h.Height, h.RateNum, h.RateDen, h.ColorSpace)
	if _, err := io.WriteString(w, hdr); err != nil {
		return nil, err
	}
	return &Y4MWriter{w: w, hdr: h}, nil
}

// WriteFrame writes one picture, which must be 4:2:0 and of the header's
// size.
func (w *Y4MWriter) WriteFrame(img *image.YCbCr) error {
	if !is420(img) {
		return errors.New("video: y4m writer: not a 4:2:0 picture")
	}
	if img.Rect.Dx() != w.hdr.Width || img.Rect.Dy() != w.hdr.Height {
		return fmt.Errorf("video: y4m writer: picture %d×%d, stream %d×%d", img.Rect.Dx(), img.Rect.Dy(), w.hdr.Width, w.hdr.Height)
	}
	b := append(w.buf[:0], "FRAME\n"...)
	for y := range w.hdr.Height {
		b = append(b, yRow(img, y)...)
	}
	_, ch := chromaSize(img)
	for cy := range ch {
		cb, _ := cRows(img, cy)
		b = append(b, cb...)
	}
	for cy := range ch {
		_, cr := cRows(img, cy)
		b = append(b, cr...)
	}
	w.buf = b
	_, err := w.w.Write(b)
	return err
}
