package record

import (
	"bytes"
	"errors"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/parleychat/parley/media"
	"github.com/parleychat/parley/media/audio"
	"github.com/parleychat/parley/media/opus"
	hopus "gopkg.in/hraban/opus.v2"
)

// encodeTone returns the Opus packets of secs seconds of a 440 Hz tone.
func encodeTone(t *testing.T, secs int) [][]byte {
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
func writeOgg(t *testing.T, pkts [][]byte, cfg OggConfig) []byte {
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
