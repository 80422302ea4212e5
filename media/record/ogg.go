package record

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
)

// Ogg Opus (RFC 7845) for 48 kHz mono. The stream is an OpusHead page
// (beginning of stream), an OpusTags page, then audio pages of whole
// packets. A page's granule position is the number of 48 kHz samples of
// every packet that ends in it, counted from the start of the stream and
// including the pre-skip; a player drops the first PreSkip samples (the
// encoder's delay), so the played duration is the last granule position
// minus PreSkip.
//
// pion/webrtc's oggwriter is not used: it declares a pre-skip of 3840
// samples whatever the encoder's delay (libopus's is 312, so 74 ms of the
// recording would be cut off), puts every 20 ms packet on its own page
// (27 bytes of header per packet, 11 kbit/s), and takes RTP packets.

// DefaultPreSkip is libopus's encoder delay at 48 kHz for the VoIP and
// audio applications (OPUS_GET_LOOKAHEAD): 2.5 ms of look-ahead plus 4 ms
// of delay compensation.
const DefaultPreSkip = 312

// ErrOggCorrupt is returned by OggReader for a stream that is not valid
// Ogg Opus.
var ErrOggCorrupt = errors.New("record: corrupt Ogg Opus stream")

const (
	oggContinued = 0x01
	oggBOS       = 0x02
	oggEOS       = 0x04

	maxPageSegments = 255
	maxOpusPacket   = 1275 * 3 // RFC 6716: a code-3 packet of up to 120 ms

	// maxOggPacket is the largest audio packet OggReader accepts: RFC 7845
	// §6 says demuxers should treat larger ones as invalid. A packet may
	// span any number of pages, so without a limit a stream could make
	// the reader buffer without end.
	maxOggPacket = 61440
	// maxOggHeader is the largest OpusHead or OpusTags packet OggReader
	// accepts (OpusTags may carry pictures; ours carries a vendor).
	maxOggHeader = 1 << 20
)

// OggConfig configures an OggWriter. The zero value uses the defaults.
type OggConfig struct {
	// PreSkip is the encoder's delay in 48 kHz samples; 0 means
	// DefaultPreSkip.
	PreSkip int
	// Serial is the Ogg stream serial number; 0 means a random one.
	Serial uint32
	// Vendor goes into OpusTags; "" means "parley".
	Vendor string
	// PagePackets is the most packets on one page; 0 means 50 (one
	// second of 20 ms packets). A page is written when it is full, so a
	// crash loses at most that much.
	PagePackets int
}

// OggWriter writes Opus packets as an Ogg Opus file for 48 kHz mono. It is
// used from one goroutine.
type OggWriter struct {
	w        io.Writer
	cfg      OggConfig
	pageSeq  uint32
	granule  uint64 // samples of all packets written
	segments []byte // lacing values of the pending page
	body     []byte // packets of the pending page
	packets  int    // packets on the pending page
	page     []byte // scratch for a page being written
	err      error
}

// NewOggWriter writes the OpusHead and OpusTags pages to w and returns a
// writer for the audio packets.
func NewOggWriter(w io.Writer, cfg OggConfig) (*OggWriter, error) {
	if cfg.PreSkip == 0 {
		cfg.PreSkip = DefaultPreSkip
	}
	if cfg.PreSkip < 0 || cfg.PreSkip > 0xFFFF {
		return nil, fmt.Errorf("record: pre-skip %d is outside [0, 65535]", cfg.PreSkip)
	}
	if cfg.Serial == 0 {
		cfg.Serial = rand.Uint32()
	}
	if cfg.Vendor == "" {
		cfg.Vendor = "parley"
	}
	if cfg.PagePackets <= 0 {
		cfg.PagePackets = 50
	}
	o := &OggWriter{w: w, cfg: cfg}

	head := make([]byte, 0, 19)
	head = append(head, "OpusHead"...)
	head = append(head, 1, 1) // version 1, one channel
	head = binary.LittleEndian.AppendUint16(head, uint16(cfg.PreSkip))
	head = binary.LittleEndian.AppendUint32(head, 48000) // input sample rate
	head = binary.LittleEndian.AppendUint16(head, 0)     // output gain
	head = append(head, 0)                               // mapping family 0: mono/stereo
	o.addPacket(head)
	if err := o.flush(oggBOS, 0); err != nil {
		return nil, err
	}

	tags := append([]byte("OpusTags"), 0, 0, 0, 0)
	binary.LittleEndian.PutUint32(tags[8:], uint32(len(cfg.Vendor)))
	tags = append(tags, cfg.Vendor...)
	tags = binary.LittleEndian.AppendUint32(tags, 0) // no user comments
	o.addPacket(tags)
	if err := o.flush(0, 0); err != nil {
		return nil, err
	}
	return o, nil
}

// OpusPacketSamples returns the number of 48 kHz samples an Opus packet
// decodes to, from its TOC byte and frame count (RFC 6716 §3.1).
func OpusPacketSamples(packet []byte) (int, error) {
	if len(packet) == 0 {
		return 0, errors.New("record: empty Opus packet")
	}
	toc := packet[0]
	var perFrame int
	switch config := toc >> 3; {
	case config < 12: // SILK: 10, 20, 40, 60 ms
		perFrame = []int{480, 960, 1920, 2880}[config&3]
	case config < 16: // hybrid: 10, 20 ms
		perFrame = []int{480, 960}[config&1]
	default: // CELT: 2.5, 5, 10, 20 ms
		perFrame = []int{120, 240, 480, 960}[config&3]
	}
	frames := 1
	switch toc & 3 {
	case 1, 2:
		frames = 2
	case 3:
		if len(packet) < 2 {
			return 0, errors.New("record: Opus code-3 packet without a frame count")
		}
		frames = int(packet[1] & 0x3f)
		if frames == 0 {
			return 0, errors.New("record: Opus code-3 packet of zero frames")
		}
	}
	if n := perFrame * frames; n <= 5760 {
		return n, nil
	}
	return 0, errors.New("record: Opus packet longer than 120 ms")
}

// WritePacket adds one Opus packet. Its duration comes from its TOC byte.
func (o *OggWriter) WritePacket(packet []byte) error {
	if o.err != nil {
		return o.err
	}
	n, err := OpusPacketSamples(packet)
	if err != nil {
		return err
	}
	if len(packet) > maxOpusPacket {
		return fmt.Errorf("record: Opus packet of %d bytes", len(packet))
	}
	if len(o.segments)+len(packet)/255+1 > maxPageSegments {
		if err := o.flush(0, o.granule); err != nil {
			return err
		}
	}
	o.granule += uint64(n)
	o.addPacket(packet)
	if o.packets >= o.cfg.PagePackets {
		return o.flush(0, o.granule)
	}
	return nil
}

// Granule returns the granule position after the packets written so far:
// the stream's length in 48 kHz samples, pre-skip included.
func (o *OggWriter) Granule() uint64 { return o.granule }

// Flush writes the pending page, if it holds any packet.
func (o *OggWriter) Flush() error {
	if o.err != nil {
		return o.err
	}
	if o.packets == 0 {
		return nil
	}
	return o.flush(0, o.granule)
}

// Close writes the last page, marked as the end of the stream. A stream
// without packets gets one 20 ms packet of silence. Close does not close
// the underlying writer.
func (o *OggWriter) Close() error {
	if o.err != nil {
		return o.err
	}
	if o.granule == 0 {
		// A stream shorter than its pre-skip is invalid (opusfile
		// refuses it): give an empty recording one frame of silence,
		// a packet of only a TOC byte (CELT, 20 ms), which decoders
		// play as silence.
		o.granule = 960
		o.addPacket([]byte{0xf8})
	}
	// With nothing pending, the end-of-stream page is empty.
	err := o.flush(oggEOS, o.granule)
	if err == nil {
		o.err = errors.New("record: OggWriter closed")
	}
	return err
}

// addPacket appends a packet's lacing values and bytes to the pending page.
func (o *OggWriter) addPacket(p []byte) {
	for n := len(p); ; n -= 255 {
		if n < 255 {
			o.segments = append(o.segments, byte(n))
			break
		}
		o.segments = append(o.segments, 255)
	}
	o.body = append(o.body, p...)
	o.packets++
}

// flush writes the pending page with the given header flags and granule
// position.
func (o *OggWriter) flush(flags byte, granule uint64) error {
	p := o.page[:0]
	p = append(p, "OggS"...)
	p = append(p, 0, flags)
	p = binary.LittleEndian.AppendUint64(p, granule)
	p = binary.LittleEndian.AppendUint32(p, o.cfg.Serial)
	p = binary.LittleEndian.AppendUint32(p, o.pageSeq)
	p = append(p, 0, 0, 0, 0) // CRC, filled in below
	p = append(p, byte(len(o.segments)))
	p = append(p, o.segments...)
	p = append(p, o.body...)
	binary.LittleEndian.PutUint32(p[22:], oggCRC(p))
	o.page = p
	o.pageSeq++
	o.segments, o.body, o.packets = o.segments[:0], o.body[:0], 0
	if _, err := o.w.Write(p); err != nil {
		o.err = err
		return err
	}
	return nil
}

// oggCRCTable is for the CRC-32 of Ogg pages: polynomial 0x04c11db7,
// unreflected, initial value 0, no final inversion.
var oggCRCTable = func() (t [256]uint32) {
	for i := range t {
		r := uint32(i) << 24
		for range 8 {
			if r&0x80000000 != 0 {
				r = r<<1 ^ 0x04c11db7
			} else {
				r <<= 1
			}
		}
		t[i] = r
	}
	return t
}()

func oggCRC(b []byte) uint32 {
	var crc uint32
	for _, v := range b {
		crc = crc<<8 ^ oggCRCTable[byte(crc>>24)^v]
	}
	return crc
}

// OggPacket is one audio packet read by OggReader.
type OggPacket struct {
	Data []byte // aliases the reader's buffer, valid until the next call
	// Granule is the granule position of the page the packet ends on,
	// set on the page's last packet and -1 on the others.
	Granule int64
}

// OggReader reads the packets of a single-stream Ogg Opus file, checking
// every page's CRC and sequence number; packets may span pages. It holds at
// most one page (65,025 bytes) and one packet (61,440 bytes for audio, 1 MiB
// for the headers). It is for tests and tools, not for untrusted input at
// scale.
type OggReader struct {
	r       io.Reader
	PreSkip int    // from OpusHead
	Serial  uint32 // of the stream
	Vendor  string // from OpusTags

	seq     uint32
	segs    []byte // lacing values left on the current page
	body    []byte // bytes left on the current page
	granule int64
	eos     bool
	pkt     []byte
	hdr     [27 + 255]byte
	buf     []byte
}

// NewOggReader reads the OpusHead and OpusTags headers of r.
func NewOggReader(r io.Reader) (*OggReader, error) {
	o := &OggReader{r: r}
	head, _, err := o.next(true, maxOggHeader)
	if err == io.EOF {
		return nil, fmt.Errorf("%w: the stream ends before OpusHead", ErrOggCorrupt)
	}
	if err != nil {
		return nil, err
	}
	if len(head) < 19 || string(head[:8]) != "OpusHead" {
		return nil, fmt.Errorf("%w: no OpusHead", ErrOggCorrupt)
	}
	if head[9] != 1 {
		return nil, fmt.Errorf("%w: %d channels, want 1", ErrOggCorrupt, head[9])
	}
	o.PreSkip = int(binary.LittleEndian.Uint16(head[10:12]))
	tags, _, err := o.next(false, maxOggHeader)
	if err == io.EOF {
		return nil, fmt.Errorf("%w: the stream ends before OpusTags", ErrOggCorrupt)
	}
	if err != nil {
		return nil, err
	}
	if len(tags) < 16 || string(tags[:8]) != "OpusTags" {
		return nil, fmt.Errorf("%w: no OpusTags", ErrOggCorrupt)
	}
	if n := binary.LittleEndian.Uint32(tags[8:12]); uint64(n) <= uint64(len(tags)-12) {
		o.Vendor = string(tags[12 : 12+n])
	}
	return o, nil
}

// Next returns the next audio packet, or io.EOF after the last.
func (o *OggReader) Next() (OggPacket, error) {
	data, g, err := o.next(false, maxOggPacket)
	if err != nil {
		return OggPacket{}, err
	}
	return OggPacket{Data: data, Granule: g}, nil
}

// next assembles one packet of at most limit bytes from the pages.
func (o *OggReader) next(first bool, limit int) ([]byte, int64, error) {
	o.pkt = o.pkt[:0]
	for {
		for len(o.segs) > 0 {
			n := int(o.segs[0])
			o.segs = o.segs[1:]
			need := len(o.pkt) + n
			if need > limit {
				return nil, 0, fmt.Errorf("%w: a packet of more than %d bytes", ErrOggCorrupt, limit)
			}
			if need > cap(o.pkt) { // grow, but not past limit
				p := make([]byte, len(o.pkt), min(limit, max(need, 2*cap(o.pkt))))
				o.pkt = p[:copy(p, o.pkt)]
			}
			o.pkt = append(o.pkt, o.body[:n]...)
			o.body = o.body[n:]
			if n < 255 {
				g := int64(-1)
				if len(o.segs) == 0 {
					g = o.granule
				}
				return o.pkt, g, nil
			}
		}
		if o.eos {
			if len(o.pkt) > 0 {
				return nil, 0, fmt.Errorf("%w: stream ends inside a packet", ErrOggCorrupt)
			}
			return nil, 0, io.EOF
		}
		if err := o.readPage(first); err != nil {
			return nil, 0, err
		}
		first = false
	}
}

func (o *OggReader) readPage(first bool) error {
	h := o.hdr[:27]
	if _, err := io.ReadFull(o.r, h); err != nil {
		if err == io.EOF && !first {
			return fmt.Errorf("%w: no end-of-stream page", ErrOggCorrupt)
		}
		return fmt.Errorf("%w: %v", ErrOggCorrupt, err)
	}
	if string(h[:4]) != "OggS" || h[4] != 0 {
		return fmt.Errorf("%w: bad page header", ErrOggCorrupt)
	}
	flags := h[5]
	serial := binary.LittleEndian.Uint32(h[14:18])
	seq := binary.LittleEndian.Uint32(h[18:22])
	switch {
	case first && flags&oggBOS == 0:
		return fmt.Errorf("%w: first page lacks the beginning-of-stream flag", ErrOggCorrupt)
	case first:
		o.Serial = serial
	case flags&oggBOS != 0 || serial != o.Serial:
		return fmt.Errorf("%w: more than one logical stream", ErrOggCorrupt)
	case seq != o.seq:
		return fmt.Errorf("%w: page %d where %d was expected", ErrOggCorrupt, seq, o.seq)
	}
	if (flags&oggContinued != 0) != (len(o.pkt) > 0) {
		return fmt.Errorf("%w: page %d continuation flag does not match", ErrOggCorrupt, seq)
	}
	o.seq = seq + 1
	n := int(h[26])
	segs := o.hdr[27 : 27+n]
	if _, err := io.ReadFull(o.r, segs); err != nil {
		return fmt.Errorf("%w: %v", ErrOggCorrupt, err)
	}
	size := 0
	for _, s := range segs {
		size += int(s)
	}
	if cap(o.buf) < size {
		o.buf = make([]byte, size) // at most 255×255 bytes
	}
	body := o.buf[:size]
	if _, err := io.ReadFull(o.r, body); err != nil {
		return fmt.Errorf("%w: %v", ErrOggCorrupt, err)
	}
	want := binary.LittleEndian.Uint32(h[22:26])
	binary.LittleEndian.PutUint32(h[22:26], 0)
	crc := oggCRC(h)
	for _, v := range segs {
		crc = crc<<8 ^ oggCRCTable[byte(crc>>24)^v]
	}
	for _, v := range body {
		crc = crc<<8 ^ oggCRCTable[byte(crc>>24)^v]
	}
	if crc != want {
		return fmt.Errorf("%w: page %d CRC %08x, want %08x", ErrOggCorrupt, seq, crc, want)
	}
	o.segs, o.body = segs, body
	o.granule = int64(binary.LittleEndian.Uint64(h[6:14]))
	o.eos = flags&oggEOS != 0
	return nil
}
