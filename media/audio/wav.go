package audio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"time"

	"github.com/parleychat/parley/media"
)

// Errors of the WAV reader, for callers that branch on them. Every error
// it returns wraps one of these, or is an I/O error.
var (
	ErrNotWAV         = errors.New("audio: not a RIFF/WAVE file")
	ErrWAVUnsupported = errors.New("audio: unsupported WAV encoding")
	ErrWAVCorrupt     = errors.New("audio: corrupt WAV file")
)

// WAVFormat describes the samples of a WAV file.
type WAVFormat struct {
	SampleRate int  // samples per second per channel
	Channels   int  // interleaved channels
	Bits       int  // bits per sample: 8, 16, 24 or 32 (integer), 32 or 64 (float)
	Float      bool // IEEE float samples
}

// frameBytes is the size of one sample of every channel.
func (f WAVFormat) frameBytes() int { return f.Channels * f.Bits / 8 }

// Limits on what a WAV header may declare. A fmt chunk is at most 40 bytes
// in every encoding we read; a larger one is skipped past its first 40.
const (
	maxFmtChunk  = 40
	readChunkLen = 4096 // bytes decoded per read
)

// wavExtensibleTail is the GUID tail shared by the KSDATAFORMAT_SUBTYPE_PCM
// and _IEEE_FLOAT sub-formats of WAVE_FORMAT_EXTENSIBLE.
var wavExtensibleTail = []byte{0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b, 0x71}

// WAVReader decodes the samples of a RIFF/WAVE file as they are read: it
// never allocates by a length the file declares. It reads integer PCM of 8,
// 16, 24 and 32 bits, IEEE float of 32 and 64 bits, plain or as
// WAVE_FORMAT_EXTENSIBLE, at any rate in [1 kHz, 768 kHz] and 1 to 64
// channels. A data chunk whose declared length is 0 or 0xFFFFFFFF (as
// streaming writers leave it) runs to the end of the file.
type WAVReader struct {
	r         io.Reader
	format    WAVFormat
	declared  int64 // declared length of the data chunk; -1 when it runs to EOF
	remaining int64 // bytes left in the data chunk; -1 when it runs to EOF
	buf       []byte
	err       error // sticky end or error, returned once the samples before it are read
}

// NewWAVReader reads the header of a WAV file from r, up to the start of
// its samples.
func NewWAVReader(r io.Reader) (*WAVReader, error) {
	var hdr [12]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: file shorter than a RIFF header", ErrNotWAV)
		}
		return nil, err
	}
	switch string(hdr[0:4]) {
	case "RIFF":
	case "RIFX", "RF64", "BW64":
		return nil, fmt.Errorf("%w: %q container", ErrWAVUnsupported, hdr[0:4])
	default:
		return nil, fmt.Errorf("%w: starts with %q", ErrNotWAV, hdr[0:4])
	}
	if string(hdr[8:12]) != "WAVE" {
		return nil, fmt.Errorf("%w: RIFF form %q", ErrNotWAV, hdr[8:12])
	}
	w := &WAVReader{r: r}
	haveFmt := false
	for {
		var ch [8]byte
		if _, err := io.ReadFull(r, ch[:]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				if !haveFmt {
					return nil, fmt.Errorf("%w: no fmt chunk", ErrWAVCorrupt)
				}
				return nil, fmt.Errorf("%w: no data chunk", ErrWAVCorrupt)
			}
			return nil, err
		}
		id, size := string(ch[0:4]), int64(binary.LittleEndian.Uint32(ch[4:8]))
		switch id {
		case "fmt ":
			if haveFmt {
				return nil, fmt.Errorf("%w: two fmt chunks", ErrWAVCorrupt)
			}
			if size < 16 {
				return nil, fmt.Errorf("%w: fmt chunk of %d bytes", ErrWAVCorrupt, size)
			}
			var b [maxFmtChunk]byte
			n := min(size, maxFmtChunk)
			if _, err := io.ReadFull(r, b[:n]); err != nil {
				return nil, truncated(err, "fmt chunk")
			}
			if err := skip(r, size-n+size%2); err != nil {
				return nil, truncated(err, "fmt chunk")
			}
			f, err := parseFmt(b[:n])
			if err != nil {
				return nil, err
			}
			w.format, haveFmt = f, true
		case "data":
			if !haveFmt {
				return nil, fmt.Errorf("%w: data chunk before fmt chunk", ErrWAVCorrupt)
			}
			w.declared = size
			if size == 0 || size == 0xFFFFFFFF {
				w.declared = -1
			}
			w.remaining = w.declared
			w.buf = make([]byte, readChunkLen-readChunkLen%w.format.frameBytes())
			return w, nil
		default:
			if err := skip(r, size+size%2); err != nil {
				return nil, truncated(err, fmt.Sprintf("%q chunk", id))
			}
		}
	}
}

func truncated(err error, what string) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: file ends inside its %s", ErrWAVCorrupt, what)
	}
	return err
}

// skip discards n bytes of r, seeking when it can.
func skip(r io.Reader, n int64) error {
	if n == 0 {
		return nil
	}
	if s, ok := r.(io.Seeker); ok {
		cur, err := s.Seek(0, io.SeekCurrent)
		if err == nil {
			end, err := s.Seek(0, io.SeekEnd)
			if err != nil {
				return err
			}
			if cur+n > end {
				return io.ErrUnexpectedEOF
			}
			_, err = s.Seek(cur+n, io.SeekStart)
			return err
		}
	}
	m, err := io.CopyN(io.Discard, r, n)
	if m < n && err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

func parseFmt(b []byte) (WAVFormat, error) {
	tag := binary.LittleEndian.Uint16(b[0:2])
	f := WAVFormat{
		Channels:   int(binary.LittleEndian.Uint16(b[2:4])),
		SampleRate: int(binary.LittleEndian.Uint32(b[4:8])),
		Bits:       int(binary.LittleEndian.Uint16(b[14:16])),
	}
	blockAlign := int(binary.LittleEndian.Uint16(b[12:14]))
	if tag == 0xFFFE {
		if len(b) < 40 {
			return f, fmt.Errorf("%w: WAVE_FORMAT_EXTENSIBLE fmt chunk of %d bytes", ErrWAVCorrupt, len(b))
		}
		if !bytes.Equal(b[26:40], wavExtensibleTail) {
			return f, fmt.Errorf("%w: WAVE_FORMAT_EXTENSIBLE sub-format %x", ErrWAVUnsupported, b[24:40])
		}
		tag = binary.LittleEndian.Uint16(b[24:26])
	}
	switch tag {
	case 1:
		if f.Bits != 8 && f.Bits != 16 && f.Bits != 24 && f.Bits != 32 {
			return f, fmt.Errorf("%w: %d-bit integer PCM", ErrWAVUnsupported, f.Bits)
		}
	case 3:
		f.Float = true
		if f.Bits != 32 && f.Bits != 64 {
			return f, fmt.Errorf("%w: %d-bit float PCM", ErrWAVUnsupported, f.Bits)
		}
	default:
		return f, fmt.Errorf("%w: compressed format %#04x (%s); only PCM and IEEE float are read", ErrWAVUnsupported, tag, formatTagName(tag))
	}
	if f.Channels < 1 || f.Channels > maxChannels {
		return f, fmt.Errorf("%w: %d channels (want 1 to %d)", ErrWAVCorrupt, f.Channels, maxChannels)
	}
	if f.SampleRate < minRateWAV || f.SampleRate > maxRateWAV {
		return f, fmt.Errorf("%w: sample rate %d Hz (want %d to %d)", ErrWAVCorrupt, f.SampleRate, minRateWAV, maxRateWAV)
	}
	if blockAlign != f.frameBytes() {
		return f, fmt.Errorf("%w: block align %d for %d channels of %d bits", ErrWAVCorrupt, blockAlign, f.Channels, f.Bits)
	}
	return f, nil
}

func formatTagName(tag uint16) string {
	switch tag {
	case 2:
		return "MS ADPCM"
	case 6:
		return "A-law"
	case 7:
		return "µ-law"
	case 0x11:
		return "IMA ADPCM"
	case 0x55:
		return "MP3"
	}
	return "unknown"
}

// Format returns the format of the samples.
func (w *WAVReader) Format() WAVFormat { return w.format }

// ReadSamples decodes interleaved samples into dst, scaled to [-1, 1], and
// returns how many it wrote: always whole frames (one sample per channel),
// so len(dst) must hold at least one. At the end of the data it returns
// io.EOF; a file that ends before its declared data length returns
// io.ErrUnexpectedEOF after its last whole frame.
func (w *WAVReader) ReadSamples(dst []float32) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	fb := w.format.frameBytes()
	frames := len(dst) / w.format.Channels
	if frames == 0 {
		return 0, fmt.Errorf("audio: ReadSamples buffer of %d holds no frame of %d channels", len(dst), w.format.Channels)
	}
	want := min(frames*fb, len(w.buf))
	if w.remaining >= 0 {
		want = int(min(int64(want), w.remaining-w.remaining%int64(fb)))
		if want == 0 {
			w.err = io.EOF
			return 0, w.err
		}
	}
	n, err := io.ReadFull(w.r, w.buf[:want])
	if w.remaining >= 0 {
		w.remaining -= int64(n)
	}
	whole := n - n%fb
	w.decode(w.buf[:whole], dst)
	count := whole / (w.format.Bits / 8)
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		w.err = io.EOF
		if w.remaining > 0 {
			w.err = io.ErrUnexpectedEOF
		}
	case err != nil:
		w.err = err
	}
	if count > 0 || w.err == nil {
		return count, nil
	}
	return 0, w.err
}

// rewind restarts the reader at the first sample; r must be positioned
// there.
func (w *WAVReader) rewind(r io.Reader) {
	w.r, w.remaining, w.err = r, w.declared, nil
}

// decode converts little-endian samples in b to floats in dst.
func (w *WAVReader) decode(b []byte, dst []float32) {
	switch {
	case w.format.Float && w.format.Bits == 32:
		for i := range len(b) / 4 {
			v := math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
			dst[i] = clampUnit(v)
		}
	case w.format.Float:
		for i := range len(b) / 8 {
			v := math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:]))
			dst[i] = clampUnit(float32(v))
		}
	case w.format.Bits == 8:
		for i, v := range b {
			dst[i] = float32(int(v)-128) / 128
		}
	case w.format.Bits == 16:
		for i := range len(b) / 2 {
			dst[i] = float32(int16(binary.LittleEndian.Uint16(b[2*i:]))) / 32768
		}
	case w.format.Bits == 24:
		for i := range len(b) / 3 {
			v := int32(uint32(b[3*i])<<8|uint32(b[3*i+1])<<16|uint32(b[3*i+2])<<24) >> 8
			dst[i] = float32(v) / (1 << 23)
		}
	default:
		for i := range len(b) / 4 {
			dst[i] = float32(float64(int32(binary.LittleEndian.Uint32(b[4*i:]))) / (1 << 31))
		}
	}
}

// clampUnit maps NaN to 0 and clamps to [-1, 1].
func clampUnit(v float32) float32 {
	switch {
	case v != v:
		return 0
	case v > 1:
		return 1
	case v < -1:
		return -1
	}
	return v
}

// converter turns interleaved float samples of any rate and channel count
// into 48 kHz mono int16: channels are averaged, then resampled.
type converter struct {
	channels int
	rs       *Resampler
	mono     []float32
	out      []float32
}

func newConverter(f WAVFormat) (*converter, error) {
	rs, err := NewResampler(f.SampleRate)
	if err != nil {
		return nil, err
	}
	return &converter{channels: f.Channels, rs: rs}, nil
}

// write downmixes interleaved samples and queues them.
func (c *converter) write(s []float32) {
	n := len(s) / c.channels
	c.mono = c.mono[:0]
	for i := range n {
		var sum float32
		for _, v := range s[i*c.channels : (i+1)*c.channels] {
			sum += v
		}
		c.mono = append(c.mono, sum/float32(c.channels))
	}
	c.rs.Write(c.mono)
}

// read fills pcm with converted samples and returns how many.
func (c *converter) read(pcm []int16) int {
	if cap(c.out) < len(pcm) {
		c.out = make([]float32, len(pcm))
	}
	n := c.rs.Read(c.out[:len(pcm)])
	for i, v := range c.out[:n] {
		pcm[i] = floatToInt16(v)
	}
	return n
}

// floatToInt16 rounds a sample in [-1, 1] to int16 with saturation.
func floatToInt16(v float32) int16 {
	x := math.Round(float64(v) * 32768)
	if x > math.MaxInt16 {
		return math.MaxInt16
	}
	if x < math.MinInt16 {
		return math.MinInt16
	}
	return int16(x)
}

// ReadWAV decodes a whole WAV stream to 48 kHz mono, without pacing. The
// result grows with the samples actually read, never by a declared length.
func ReadWAV(r io.Reader) ([]int16, WAVFormat, error) {
	w, err := NewWAVReader(r)
	if err != nil {
		return nil, WAVFormat{}, err
	}
	c, err := newConverter(w.format)
	if err != nil {
		return nil, w.format, err
	}
	in := make([]float32, 4096*w.format.Channels)
	var out []int16
	chunk := make([]int16, 4096)
	for {
		n, err := w.ReadSamples(in)
		c.write(in[:n])
		if err == io.EOF {
			c.rs.Flush()
		} else if err != nil {
			return nil, w.format, err
		}
		for {
			m := c.read(chunk)
			out = append(out, chunk[:m]...)
			if m < len(chunk) {
				break
			}
		}
		if err == io.EOF {
			return out, w.format, nil
		}
	}
}

// ReadWAVFile is ReadWAV of a file.
func ReadWAVFile(path string) ([]int16, WAVFormat, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, WAVFormat{}, err
	}
	defer f.Close()
	return ReadWAV(f)
}

// WAVConfig configures a WAVSource.
type WAVConfig struct {
	// Loop restarts the file at its end instead of returning io.EOF.
	Loop bool
}

// WAVSource is a media.AudioSource that plays a WAV file at real-time pace,
// converted to 48 kHz mono. The last frame is padded with silence; the call
// after it returns io.EOF (unless Loop is set). It is used from one
// goroutine, except Close, which may be called from any.
type WAVSource struct {
	rs    io.ReadSeeker
	close func() error
	start int64 // offset of the samples in rs
	cfg   WAVConfig
	w     *WAVReader
	c     *converter
	in    []float32
	eof   bool
	pace  pacer
}

// OpenWAV opens a WAV file as a source.
func OpenWAV(path string, cfg WAVConfig) (*WAVSource, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	s, err := NewWAVSource(f, cfg)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("audio: %s: %w", path, err)
	}
	s.close = f.Close
	return s, nil
}

// NewWAVSource reads a WAV stream from rs as a source. Close does not close
// rs.
func NewWAVSource(rs io.ReadSeeker, cfg WAVConfig) (*WAVSource, error) {
	w, err := NewWAVReader(rs)
	if err != nil {
		return nil, err
	}
	start, err := rs.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, err
	}
	c, err := newConverter(w.format)
	if err != nil {
		return nil, err
	}
	return &WAVSource{
		rs: rs, start: start, cfg: cfg, w: w, c: c,
		in:    make([]float32, 1024*w.format.Channels),
		close: func() error { return nil },
		pace:  newPacer(),
	}, nil
}

// Format returns the format of the file.
func (s *WAVSource) Format() WAVFormat { return s.w.format }

// ReadFrame waits until the next frame is due, fills pcm with it and
// returns its due time.
func (s *WAVSource) ReadFrame(pcm []int16) (time.Time, error) {
	if len(pcm) != media.FrameSamples {
		return time.Time{}, fmt.Errorf("audio: ReadFrame buffer has %d samples, want %d", len(pcm), media.FrameSamples)
	}
	n, err := s.fill(pcm)
	if err != nil {
		return time.Time{}, err
	}
	if n == 0 {
		return time.Time{}, io.EOF
	}
	clear(pcm[n:])
	return s.pace.wait()
}

// fill converts samples into pcm until it is full or the file ends.
func (s *WAVSource) fill(pcm []int16) (int, error) {
	n := 0
	read := -1 // samples read since the last rewind in this call; -1 before one
	for {
		n += s.c.read(pcm[n:])
		if n == len(pcm) || s.eof {
			return n, nil
		}
		k, err := s.w.ReadSamples(s.in)
		s.c.write(s.in[:k])
		if read >= 0 {
			read += k
		}
		switch {
		case err == io.EOF && s.cfg.Loop:
			if read == 0 {
				return n, fmt.Errorf("%w: no samples to loop", ErrWAVCorrupt)
			}
			read = 0
			if _, err := s.rs.Seek(s.start, io.SeekStart); err != nil {
				return n, err
			}
			s.w.rewind(s.rs)
		case err == io.EOF:
			s.c.rs.Flush()
			s.eof = true
		case err != nil:
			return n, err
		}
	}
}

// Close ends the source and closes its file (if OpenWAV opened it); a
// ReadFrame waiting for its frame returns ErrClosed.
func (s *WAVSource) Close() error {
	s.pace.close()
	return s.close()
}

var _ media.AudioSource = (*WAVSource)(nil)
