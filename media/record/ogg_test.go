package record

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parleychat/parley/media"
	"github.com/parleychat/parley/media/audio"
	"github.com/parleychat/parley/media/opus"
	hopus "gopkg.in/hraban/opus.v2"
)

// encodeTone returns the Opus packets of secs seconds of a 440 Hz tone.
func encodeTone(t testing.TB, secs int) [][]byte {
	t.Helper()
	enc, err := opus.NewEncoder(opus.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	tone, err := audio.NewTone(audio.ToneConfig{Frequency: 440})
	if err != nil {
		t.Fatal(err)
	}
	pcm := make([]int16, media.FrameSamples)
	out := make([]byte, opus.MaxPacket)
	var pkts [][]byte
	for range secs * 50 {
		tone.Generate(pcm)
		n, err := enc.Encode(pcm, out)
		if err != nil {
			t.Fatal(err)
		}
		pkts = append(pkts, bytes.Clone(out[:n]))
	}
	return pkts
}

// writeOgg writes pkts as an Ogg Opus file and returns its bytes.
func writeOgg(t testing.TB, pkts [][]byte, cfg OggConfig) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewOggWriter(&buf, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pkts {
		if err := w.WritePacket(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestOggFFmpeg writes 3 s of encoded tone and has ffmpeg check and decode
// it: no error, the duration written, the tone's frequency.
func TestOggFFmpeg(t *testing.T) {
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Fatal("ffmpeg is not installed: run make deps (make test does)")
	}
	pkts := encodeTone(t, 3)
	dir := t.TempDir()
	path := filepath.Join(dir, "tone.ogg")
	if err := os.WriteFile(path, writeOgg(t, pkts, OggConfig{}), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(ffmpeg, "-nostdin", "-v", "error", "-i", path, "-f", "null", "-").CombinedOutput()
	if err != nil || len(out) != 0 {
		t.Fatalf("ffmpeg -v error -i tone.ogg -f null -: %v, output %q", err, out)
	}
	wav := filepath.Join(dir, "tone.wav")
	out, err = exec.Command(ffmpeg, "-nostdin", "-v", "error", "-i", path, "-ar", "48000", "-ac", "1", "-c:a", "pcm_s16le", wav).CombinedOutput()
	if err != nil || len(out) != 0 {
		t.Fatalf("ffmpeg decode: %v, output %q", err, out)
	}
	pcm, _, err := audio.ReadWAVFile(wav)
	if err != nil {
		t.Fatal(err)
	}
	written := len(pkts) * media.FrameSamples
	if d := len(pcm) - written; d > 0 || d < -media.FrameSamples {
		t.Errorf("ffmpeg decoded %d samples, want within one frame of the %d written", len(pcm), written)
	}
	if f := audio.DominantFrequency(pcm, media.SampleRate); math.Abs(f-440) > 1 {
		t.Errorf("ffmpeg's decode at %.3f Hz, want 440", f)
	}
	t.Logf("ffmpeg: %d samples decoded of %d written (pre-skip %d), %.3f Hz", len(pcm), written, DefaultPreSkip,
		audio.DominantFrequency(pcm, media.SampleRate))
}

// TestOggOpusfile decodes the file with libopusfile (hraban/opus Stream).
func TestOggOpusfile(t *testing.T) {
	pkts := encodeTone(t, 2)
	s, err := hopus.NewStream(bytes.NewReader(writeOgg(t, pkts, OggConfig{PagePackets: 7})))
	if err != nil {
		t.Fatalf("opusfile refuses the stream: %v", err)
	}
	defer s.Close()
	var pcm []int16
	buf := make([]int16, 5760)
	for {
		n, err := s.Read(buf)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		pcm = append(pcm, buf[:n]...)
	}
	if want := len(pkts)*media.FrameSamples - DefaultPreSkip; len(pcm) != want {
		t.Errorf("opusfile decoded %d samples, want %d (written minus pre-skip)", len(pcm), want)
	}
	if f := audio.DominantFrequency(pcm, media.SampleRate); math.Abs(f-440) > 1 {
		t.Errorf("opusfile's decode at %.3f Hz, want 440", f)
	}
}

// TestOggRoundTrip reads the file back with OggReader: the same packets,
// the granule positions, the headers.
func TestOggRoundTrip(t *testing.T) {
	pkts := encodeTone(t, 1)
	// Big packets too, so that packets need several lacing values and
	// pages fill by segments.
	for i := range 10 {
		pkts = append(pkts, append([]byte{0xfc}, bytes.Repeat([]byte{byte(i)}, 600+i)...))
	}
	file := writeOgg(t, pkts, OggConfig{Serial: 77, Vendor: "test", PagePackets: 4})
	r, err := NewOggReader(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	if r.PreSkip != DefaultPreSkip || r.Serial != 77 || r.Vendor != "test" {
		t.Errorf("headers: pre-skip %d, serial %d, vendor %q", r.PreSkip, r.Serial, r.Vendor)
	}
	var granule int64
	for i, want := range pkts {
		p, err := r.Next()
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if !bytes.Equal(p.Data, want) {
			t.Fatalf("packet %d differs", i)
		}
		granule += media.FrameSamples
		if p.Granule >= 0 && p.Granule != granule {
			t.Fatalf("packet %d ends a page at granule %d, want %d", i, p.Granule, granule)
		}
		if i%4 == 3 && i < 50 && p.Granule != granule {
			t.Fatalf("packet %d should end a page of 4", i)
		}
	}
	if _, err := r.Next(); err != io.EOF {
		t.Errorf("after the last packet: %v, want EOF", err)
	}

	// Every byte flipped somewhere is caught by the CRC or the parser.
	for _, off := range []int{5, 30, 100, len(file) / 2, len(file) - 1} {
		bad := bytes.Clone(file)
		bad[off] ^= 0x40
		r, err := NewOggReader(bytes.NewReader(bad))
		for err == nil {
			_, err = r.Next()
		}
		if !errors.Is(err, ErrOggCorrupt) {
			t.Errorf("flipped byte %d: %v, want ErrOggCorrupt", off, err)
		}
	}
}

func TestOggEmptyAndErrors(t *testing.T) {
	file := writeOgg(t, nil, OggConfig{})
	r, err := NewOggReader(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	if p, err := r.Next(); err != nil || !bytes.Equal(p.Data, []byte{0xf8}) || p.Granule != 960 {
		t.Errorf("empty stream: packet %x at %d, %v; want the silent f8 at 960", p.Data, p.Granule, err)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Errorf("empty stream: %v after its packet, want EOF", err)
	}
	if s, err := hopus.NewStream(bytes.NewReader(file)); err != nil {
		t.Errorf("opusfile refuses an empty stream: %v", err)
	} else {
		pcm := make([]int16, 5760)
		n, err := s.Read(pcm)
		if err != nil || n != 960-DefaultPreSkip || audio.Level(pcm[:n]) != audio.SilentLevel {
			t.Errorf("opusfile read of an empty stream: %d samples (level %d), %v; want %d of silence", n, audio.Level(pcm[:n]), err, 960-DefaultPreSkip)
		}
		s.Close()
	}
	var buf bytes.Buffer
	w, _ := NewOggWriter(&buf, OggConfig{})
	if err := w.WritePacket(nil); err == nil {
		t.Errorf("WritePacket(nil) succeeded")
	}
	if err := w.WritePacket([]byte{0x03}); err == nil {
		t.Errorf("WritePacket of a code-3 packet without frame count succeeded")
	}
	w.Close()
	if err := w.WritePacket([]byte{0xfc, 0}); err == nil {
		t.Errorf("WritePacket after Close succeeded")
	}
}

func TestOpusPacketSamples(t *testing.T) {
	for _, tc := range []struct {
		p    []byte
		want int
	}{
		{[]byte{0x08}, 960},        // SILK NB 20 ms
		{[]byte{0x18}, 2880},       // SILK NB 60 ms
		{[]byte{0x78}, 960},        // hybrid FB 20 ms
		{[]byte{0x70}, 480},        // hybrid FB 10 ms
		{[]byte{0xfc}, 960},        // CELT FB 20 ms
		{[]byte{0xe0}, 120},        // CELT 2.5 ms
		{[]byte{0xfd}, 1920},       // two frames
		{[]byte{0xfb, 0x06}, 5760}, // CELT FB 20 ms ×6 = 120 ms (code 3)
	} {
		if got, err := OpusPacketSamples(tc.p); got != tc.want || err != nil {
			t.Errorf("OpusPacketSamples(%x) = %d, %v, want %d", tc.p, got, err, tc.want)
		}
	}
	if _, err := OpusPacketSamples([]byte{0xff, 0x07}); err == nil {
		t.Errorf("OpusPacketSamples of 140 ms succeeded")
	}
}

// FuzzOggReader reads arbitrary files. Every error is ErrOggCorrupt (or
// io.EOF after the last packet); the packets returned are no more bytes
// than the file; the reader's buffers stay within their caps (a page, and
// the largest packet it accepts) whatever the file declares. What is
// accepted round-trips through the writer: written again and read back,
// the headers and packets are the same, and the granule positions count
// the samples; the writer's output written again is the same bytes.
func FuzzOggReader(f *testing.F) {
	if *updateSeeds {
		writeOggSeeds(f)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkOggFile(t, data)
		// Most mutations break a page's CRC, and the reader looks no
		// further: read the file again with its CRCs set right.
		if fixed := fixOggCRCs(data); !bytes.Equal(fixed, data) {
			checkOggFile(t, fixed)
		}
	})
}

// checkOggFile reads data with an OggReader, then writes what it read and
// reads that back (see FuzzOggReader).
func checkOggFile(t *testing.T, data []byte) {
	t.Helper()
	r, err := NewOggReader(bytes.NewReader(data))
	if err != nil {
		if !errors.Is(err, ErrOggCorrupt) {
			t.Fatalf("NewOggReader: %v, want ErrOggCorrupt", err)
		}
		return
	}
	var pkts [][]byte
	total := 0
	for {
		p, err := r.Next()
		checkOggReaderCaps(t, r)
		if err == io.EOF {
			break
		}
		if err != nil {
			if !errors.Is(err, ErrOggCorrupt) {
				t.Fatalf("Next: %v, want ErrOggCorrupt or io.EOF", err)
			}
			break
		}
		total += len(p.Data)
		pkts = append(pkts, bytes.Clone(p.Data))
	}
	if total > len(data) {
		t.Fatalf("%d bytes of packets from a file of %d", total, len(data))
	}

	// Write what was read; the writer refuses packets without a
	// valid TOC, and an empty stream gets one silent packet.
	cfg := OggConfig{PreSkip: r.PreSkip, Serial: r.Serial, Vendor: r.Vendor, PagePackets: 1 + len(data)%4}
	var buf bytes.Buffer
	w, err := NewOggWriter(&buf, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var want [][]byte
	for _, p := range pkts {
		if w.WritePacket(p) == nil {
			want = append(want, p)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	empty := len(want) == 0
	if empty {
		want = [][]byte{{0xf8}}
	}
	out := buf.Bytes()
	r2, err := NewOggReader(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("reading back what was written: %v", err)
	}
	wantPreSkip, wantVendor := cmp.Or(r.PreSkip, DefaultPreSkip), cmp.Or(r.Vendor, "parley")
	if r2.PreSkip != wantPreSkip || r2.Vendor != wantVendor || (r.Serial != 0 && r2.Serial != r.Serial) {
		t.Fatalf("headers read back: pre-skip %d, vendor %q, serial %d; want %d, %q, %d",
			r2.PreSkip, r2.Vendor, r2.Serial, wantPreSkip, wantVendor, r.Serial)
	}
	var granule int64
	for i, p := range want {
		got, err := r2.Next()
		if err != nil || !bytes.Equal(got.Data, p) {
			t.Fatalf("packet %d of %d read back differently (%v)", i, len(want), err)
		}
		n, _ := OpusPacketSamples(p)
		granule += int64(n)
		if got.Granule != -1 && got.Granule != granule || i == len(want)-1 && got.Granule != granule {
			t.Fatalf("packet %d read back with granule %d, want %d", i, got.Granule, granule)
		}
	}
	if _, err := r2.Next(); err != io.EOF {
		t.Fatalf("after %d packets: %v, want io.EOF", len(want), err)
	}

	// The writer's output is a fixed point: read and written again
	// with the same configuration, it is the same bytes. (But for an
	// empty stream: its silent packet is then written as a packet,
	// on a page before the end-of-stream page.)
	cfg.Serial = r2.Serial
	if !empty && !bytes.Equal(writeOgg(t, want, cfg), out) {
		t.Fatalf("the writer's output, read and written again, differs")
	}
}

// fixOggCRCs returns data with the CRC of each page set right, as far as
// it is a sequence of whole pages.
func fixOggCRCs(data []byte) []byte {
	data = bytes.Clone(data)
	for p := data; len(p) >= 27 && string(p[:4]) == "OggS"; {
		n := 27 + int(p[26])
		if len(p) < n {
			break
		}
		for _, s := range p[27:n] {
			n += int(s)
		}
		if len(p) < n {
			break
		}
		binary.LittleEndian.PutUint32(p[22:], 0)
		binary.LittleEndian.PutUint32(p[22:], oggCRC(p[:n]))
		p = p[n:]
	}
	return data
}

// checkOggReaderCaps checks that an OggReader holds no more than a page
// and the largest packet it accepts.
func checkOggReaderCaps(t *testing.T, r *OggReader) {
	t.Helper()
	if cap(r.buf) > 255*255 {
		t.Fatalf("page buffer of %d bytes", cap(r.buf))
	}
	if cap(r.pkt) > maxOggHeader {
		t.Fatalf("packet buffer of %d bytes", cap(r.pkt))
	}
}

// writeOggSeeds writes the seed corpus: files from the writer (one
// packet, pages of two packets with a packet across pages, an empty
// stream) and from ffmpeg's muxer.
func writeOggSeeds(f *testing.F) {
	dir := filepath.Join("testdata", "fuzz", "FuzzOggReader")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		f.Fatal(err)
	}
	write := func(name string, data []byte) {
		seed := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(seed), 0o644); err != nil {
			f.Fatal(err)
		}
	}
	tone := encodeTone(f, 1)
	write("parley-one-packet", writeOgg(f, tone[:1], OggConfig{Serial: 1}))
	big := append([]byte{0xfc}, bytes.Repeat([]byte{0x55}, 300)...) // two lacing values
	write("parley-pages", writeOgg(f, [][]byte{tone[1], tone[2], big, tone[3], {0xfd, 1, 2}, {0xfb, 0x03, 9, 9, 9}},
		OggConfig{Serial: 2, PagePackets: 2, Vendor: "seed", PreSkip: 100}))
	write("parley-empty", writeOgg(f, nil, OggConfig{Serial: 3}))
	// The writer never splits a packet across pages; other muxers do.
	opusHead := []byte("OpusHead\x01\x01\x38\x01\x80\xbb\x00\x00\x00\x00\x00")
	opusTags := []byte("OpusTags\x04\x00\x00\x00span\x00\x00\x00\x00")
	span := append([]byte{0xfc}, bytes.Repeat([]byte{9}, 299)...)
	file := oggPage(oggBOS, 0, 5, 0, []byte{byte(len(opusHead))}, opusHead)
	file = append(file, oggPage(0, 0, 5, 1, []byte{byte(len(opusTags))}, opusTags)...)
	file = append(file, oggPage(0, -1, 5, 2, []byte{255}, span[:255])...)
	file = append(file, oggPage(oggContinued, 960, 5, 3, []byte{45, 1}, append(span[255:], 0xf8))...)
	file = append(file, oggPage(oggEOS, 1920, 5, 4, nil, nil)...)
	write("spanning-pages", file)
	for name, src := range map[string]string{
		"ffmpeg-sine":  "sine=frequency=440:sample_rate=48000:duration=0.1",
		"ffmpeg-noise": "anoisesrc=sample_rate=48000:duration=0.06:amplitude=0.3",
	} {
		out := filepath.Join(f.TempDir(), "seed.ogg")
		tool(f, "ffmpeg", "-nostdin", "-f", "lavfi", "-i", src, "-ac", "1", "-c:a", "libopus", "-b:a", "24k",
			"-page_duration", "40000", "-fflags", "+bitexact", "-flags:a", "+bitexact", out)
		data, err := os.ReadFile(out)
		if err != nil {
			f.Fatal(err)
		}
		write(name, data)
	}
}

// oggPage returns an Ogg page.
func oggPage(flags byte, granule int64, serial, seq uint32, segs, body []byte) []byte {
	p := []byte("OggS\x00")
	p = append(p, flags)
	p = binary.LittleEndian.AppendUint64(p, uint64(granule))
	p = binary.LittleEndian.AppendUint32(p, serial)
	p = binary.LittleEndian.AppendUint32(p, seq)
	p = append(p, 0, 0, 0, 0, byte(len(segs)))
	p = append(append(p, segs...), body...)
	binary.LittleEndian.PutUint32(p[22:], oggCRC(p))
	return p
}

// oggHeaderPages returns the OpusHead and OpusTags pages of stream serial;
// the OpusTags page has the flags tagsFlags.
func oggHeaderPages(serial uint32, tagsFlags byte) []byte {
	opusHead := []byte("OpusHead\x01\x01\x38\x01\x80\xbb\x00\x00\x00\x00\x00")
	opusTags := []byte("OpusTags\x04\x00\x00\x00test\x00\x00\x00\x00")
	file := oggPage(oggBOS, 0, serial, 0, []byte{byte(len(opusHead))}, opusHead)
	return append(file, oggPage(tagsFlags, 0, serial, 1, []byte{byte(len(opusTags))}, opusTags)...)
}

// TestOggEndsInHeaders reads streams that end before their headers do:
// NewOggReader used to return a bare io.EOF when the first page was also
// the last. (Found by FuzzOggReader.)
func TestOggEndsInHeaders(t *testing.T) {
	opusHead := []byte("OpusHead\x01\x01\x38\x01\x80\xbb\x00\x00\x00\x00\x00")
	for name, file := range map[string][]byte{
		"OpusHead on the only page": oggPage(oggBOS|oggEOS, 0, 1, 0, []byte{byte(len(opusHead))}, opusHead),
		"no page":                   nil,
		"OpusHead then nothing":     oggPage(oggBOS, 0, 1, 0, []byte{byte(len(opusHead))}, opusHead),
	} {
		if _, err := NewOggReader(bytes.NewReader(file)); !errors.Is(err, ErrOggCorrupt) {
			t.Errorf("%s: %v, want ErrOggCorrupt", name, err)
		}
	}
	// Headers, then the end: a valid stream without audio.
	r, err := NewOggReader(bytes.NewReader(oggHeaderPages(1, oggEOS)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Errorf("a stream of headers only: %v, want io.EOF", err)
	}
}

// endlessPacket is a stream whose one audio packet never ends: pages of
// 255 lacing values of 255, each continuing the packet. It counts the
// bytes read and ends after pages pages.
type endlessPacket struct {
	buf   []byte
	seq   uint32
	pages int
	read  int
}

func (e *endlessPacket) Read(p []byte) (int, error) {
	if len(e.buf) == 0 {
		if int(e.seq) >= e.pages+2 {
			return 0, io.EOF
		}
		flags := byte(0)
		if e.seq > 2 {
			flags = oggContinued
		}
		segs := bytes.Repeat([]byte{255}, 255)
		e.buf = oggPage(flags, -1, 1, e.seq, segs, bytes.Repeat([]byte{0xfc}, 255*255))
		e.seq++
	}
	n := copy(p, e.buf)
	e.buf = e.buf[n:]
	e.read += n
	return n, nil
}

// TestOggPacketLimit reads a packet that spans page after page: the reader
// used to buffer it whole, however long (seen while writing FuzzOggReader's
// allocation check, which inputs of a fuzzer's size cannot reach). Now an audio packet of more than
// 61,440 bytes (RFC 7845 §6) is an error, found within two pages of the
// limit, and the reader's packet buffer never grows past the limit.
func TestOggPacketLimit(t *testing.T) {
	e := &endlessPacket{buf: oggHeaderPages(1, 0), seq: 2, pages: 100}
	r, err := NewOggReader(e)
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Next()
	if !errors.Is(err, ErrOggCorrupt) || !strings.Contains(err.Error(), "more than 61440 bytes") {
		t.Errorf("a packet of 100 pages: %v, want ErrOggCorrupt for its size", err)
	}
	if e.read > 3*65307 || cap(r.pkt) > maxOggPacket {
		t.Errorf("read %d bytes of the stream, packet buffer of %d bytes", e.read, cap(r.pkt))
	}
	// A packet of exactly the limit, over two pages, is read.
	pkt := append([]byte{0xfc}, bytes.Repeat([]byte{1}, maxOggPacket-1)...)
	file := oggHeaderPages(2, 0)
	file = append(file, oggPage(0, -1, 2, 2, bytes.Repeat([]byte{255}, 200), pkt[:200*255])...)
	rest := pkt[200*255:]
	segs := append(bytes.Repeat([]byte{255}, len(rest)/255), byte(len(rest)%255))
	file = append(file, oggPage(oggContinued|oggEOS, 960, 2, 3, segs, rest)...)
	r, err = NewOggReader(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	if p, err := r.Next(); err != nil || !bytes.Equal(p.Data, pkt) || p.Granule != 960 {
		t.Errorf("a packet of %d bytes: %d bytes at granule %d, %v", len(pkt), len(p.Data), p.Granule, err)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Errorf("after it: %v, want io.EOF", err)
	}
}
