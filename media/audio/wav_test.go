package audio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/parleychat/parley/media"
)

// wavBytes builds a WAV file by hand: a fmt chunk with the given fields and
// data, with extra chunks before the data.
func wavBytes(tag uint16, channels, rate, bits int, extra []byte, data []byte) []byte {
	var b []byte
	b = append(b, "RIFF"...)
	b = binary.LittleEndian.AppendUint32(b, uint32(4+8+16+len(extra)+8+len(data)))
	b = append(b, "WAVEfmt "...)
	b = binary.LittleEndian.AppendUint32(b, 16)
	b = binary.LittleEndian.AppendUint16(b, tag)
	b = binary.LittleEndian.AppendUint16(b, uint16(channels))
	b = binary.LittleEndian.AppendUint32(b, uint32(rate))
	b = binary.LittleEndian.AppendUint32(b, uint32(rate*channels*bits/8))
	b = binary.LittleEndian.AppendUint16(b, uint16(channels*bits/8))
	b = binary.LittleEndian.AppendUint16(b, uint16(bits))
	b = append(b, extra...)
	b = append(b, "data"...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(data)))
	return append(b, data...)
}

func TestWAVRoundTrip(t *testing.T) {
	pcm := sine(48000, 440, 48000, 12000)
	var buf bytes.Buffer
	if err := WriteWAV(&buf, pcm, 48000, 1); err != nil {
		t.Fatal(err)
	}
	got, f, err := ReadWAV(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if f != (WAVFormat{SampleRate: 48000, Channels: 1, Bits: 16}) {
		t.Errorf("format = %+v", f)
	}
	if !slicesEqual(got, pcm) {
		t.Fatalf("ReadWAV(WriteWAV(pcm)) differs from pcm (len %d vs %d)", len(got), len(pcm))
	}

	// The streaming writer produces the same bytes.
	path := filepath.Join(t.TempDir(), "a.wav")
	fh, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	ww, err := NewWAVWriter(fh, 48000, 1)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(pcm); i += 1000 {
		if err := ww.Write(pcm[i:min(i+1000, len(pcm))]); err != nil {
			t.Fatal(err)
		}
	}
	if err := ww.Close(); err != nil {
		t.Fatal(err)
	}
	fh.Close()
	b, _ := os.ReadFile(path)
	if !bytes.Equal(b, buf.Bytes()) {
		t.Errorf("WAVWriter output differs from WriteWAV's")
	}
}

func slicesEqual(a, b []int16) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// encodeSamples encodes float samples in [-1,1] as bits-bit PCM (or float).
func encodeSamples(s []float64, bits int, float bool) []byte {
	var b []byte
	for _, v := range s {
		switch {
		case float && bits == 32:
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(float32(v)))
		case float:
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
		case bits == 8:
			b = append(b, byte(int(math.Round(v*127))+128))
		case bits == 16:
			b = binary.LittleEndian.AppendUint16(b, uint16(int16(math.Round(v*32767))))
		case bits == 24:
			x := uint32(int32(math.Round(v * 8388607)))
			b = append(b, byte(x), byte(x>>8), byte(x>>16))
		default:
			b = binary.LittleEndian.AppendUint32(b, uint32(int32(math.Round(v*2147483647))))
		}
	}
	return b
}

// TestWAVFormats reads every sample format, rate and channel layout and
// checks the tone's frequency and level after conversion to 48 kHz mono.
func TestWAVFormats(t *testing.T) {
	for _, tc := range []struct {
		rate, channels, bits int
		float                bool
		f                    float64
	}{
		{48000, 1, 16, false, 440},
		{44100, 2, 16, false, 440},
		{8000, 2, 16, false, 440},
		{8000, 1, 8, false, 1000},
		{96000, 1, 24, false, 440},
		{22050, 1, 32, false, 3000},
		{16000, 6, 32, true, 440},
		{11025, 1, 64, true, 440},
	} {
		n := tc.rate * 2
		var s []float64
		for i := range n {
			v := 0.5 * math.Sin(2*math.Pi*tc.f*float64(i)/float64(tc.rate))
			for range tc.channels {
				s = append(s, v)
			}
		}
		tag := uint16(1)
		if tc.float {
			tag = 3
		}
		file := wavBytes(tag, tc.channels, tc.rate, tc.bits, nil, encodeSamples(s, tc.bits, tc.float))
		pcm, f, err := ReadWAV(bytes.NewReader(file))
		if err != nil {
			t.Errorf("ReadWAV(%+v) error %v", tc, err)
			continue
		}
		if f.SampleRate != tc.rate || f.Channels != tc.channels || f.Bits != tc.bits || f.Float != tc.float {
			t.Errorf("ReadWAV(%+v) format %+v", tc, f)
		}
		want := (n*48000 + tc.rate - 1) / tc.rate
		if len(pcm) != want {
			t.Errorf("ReadWAV(%+v) gave %d samples, want %d", tc, len(pcm), want)
		}
		// Skip the edges, where the filter meets the silence around the file.
		mid := pcm[4800 : len(pcm)-4800]
		if got := DominantFrequency(mid, 48000); math.Abs(got-tc.f) > 0.05 {
			t.Errorf("ReadWAV(%+v): frequency %.3f Hz, want %v", tc, got, tc.f)
		}
		// A 0.5 peak sine is -9.03 dBov.
		if got := LevelDBov(mid); math.Abs(got+9.03) > 0.2 {
			t.Errorf("ReadWAV(%+v): level %.2f dBov, want -9.03", tc, got)
		}
	}
}

// TestResamplerStopBand checks the low-pass: a 30 kHz tone at 96 kHz is
// above the 24 kHz Nyquist frequency of the output and must be removed, not
// folded to 18 kHz.
func TestResamplerStopBand(t *testing.T) {
	rs, err := NewResampler(96000)
	if err != nil {
		t.Fatal(err)
	}
	in := make([]float32, 96000)
	for i := range in {
		in[i] = float32(0.5 * math.Sin(2*math.Pi*30000*float64(i)/96000))
	}
	rs.Write(in)
	rs.Flush()
	out := make([]float32, 48000)
	n := rs.Read(out)
	if n != 48000 {
		t.Fatalf("Read = %d samples, want 48000", n)
	}
	pcm := make([]int16, n)
	for i, v := range out[:n] {
		pcm[i] = floatToInt16(v)
	}
	// 30 kHz would alias to 18 kHz; the filter must take it to below
	// -70 dB of the input's -9 dBov.
	if l := LevelDBov(pcm[2000 : n-2000]); l > -79 {
		t.Errorf("30 kHz at 96 kHz resampled to 48 kHz: level %.1f dBov, want below -79", l)
	}
}

func TestWAVExtensibleAndChunks(t *testing.T) {
	data := encodeSamples([]float64{0.25, -0.25, 0.5, -0.5}, 16, false)
	// A LIST chunk of odd length (with its pad byte) before fmt/data.
	list := append([]byte("LIST\x03\x00\x00\x00abc"), 0)
	b := wavBytes(1, 2, 48000, 16, list, data)
	r, err := NewWAVReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("NewWAVReader with LIST chunk: %v", err)
	}
	got := make([]float32, 8)
	n, err := r.ReadSamples(got)
	if n != 4 || err != nil {
		t.Fatalf("ReadSamples = %d, %v, want 4, nil", n, err)
	}
	if n, err := r.ReadSamples(got); n != 0 || err != io.EOF {
		t.Fatalf("ReadSamples at end = %d, %v, want 0, EOF", n, err)
	}

	// WAVE_FORMAT_EXTENSIBLE with a PCM sub-format.
	var ext []byte
	ext = append(ext, "RIFF\x00\x00\x00\x00WAVEfmt "...)
	ext = binary.LittleEndian.AppendUint32(ext, 40)
	ext = binary.LittleEndian.AppendUint16(ext, 0xFFFE)
	ext = binary.LittleEndian.AppendUint16(ext, 1)
	ext = binary.LittleEndian.AppendUint32(ext, 48000)
	ext = binary.LittleEndian.AppendUint32(ext, 96000)
	ext = binary.LittleEndian.AppendUint16(ext, 2)
	ext = binary.LittleEndian.AppendUint16(ext, 16)
	ext = binary.LittleEndian.AppendUint16(ext, 22)
	ext = binary.LittleEndian.AppendUint16(ext, 16)
	ext = binary.LittleEndian.AppendUint32(ext, 4)
	ext = binary.LittleEndian.AppendUint16(ext, 1)
	ext = append(ext, wavExtensibleTail...)
	ext = append(ext, "data\xff\xff\xff\xff"...) // streaming: to EOF
	ext = append(ext, data...)
	pcm, f, err := ReadWAV(bytes.NewReader(ext))
	if err != nil || f.Bits != 16 || len(pcm) != 4 {
		t.Fatalf("ReadWAV(extensible) = %d samples, %+v, %v", len(pcm), f, err)
	}
}

func TestWAVErrors(t *testing.T) {
	good := wavBytes(1, 1, 48000, 16, nil, make([]byte, 100))
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrNotWAV},
		{"text", []byte("hello, this is not a wav file"), ErrNotWAV},
		{"AVI", append([]byte("RIFF\x00\x00\x00\x00AVI "), good[12:]...), ErrNotWAV},
		{"RIFX", append([]byte("RIFX"), good[4:]...), ErrWAVUnsupported},
		{"mp3", wavBytes(0x55, 1, 48000, 16, nil, nil), ErrWAVUnsupported},
		{"mulaw", wavBytes(7, 1, 8000, 8, nil, nil), ErrWAVUnsupported},
		{"12-bit", wavBytes(1, 1, 48000, 12, nil, nil), ErrWAVUnsupported},
		{"no channels", wavBytes(1, 0, 48000, 16, nil, nil), ErrWAVCorrupt},
		{"1000 channels", wavBytes(1, 1000, 48000, 16, nil, nil), ErrWAVCorrupt},
		{"rate 0", wavBytes(1, 1, 0, 16, nil, nil), ErrWAVCorrupt},
		{"rate 4G", wavBytes(1, 1, 0xFFFFFFFF, 16, nil, nil), ErrWAVCorrupt},
		{"no fmt", []byte("RIFF\x00\x00\x00\x00WAVEdata\x00\x00\x00\x00"), ErrWAVCorrupt},
		{"no data", good[:36], ErrWAVCorrupt},
		{"huge chunk", append(append([]byte{}, good[:12]...), "JUNK\xff\xff\xff\x7f"...), ErrWAVCorrupt},
		{"short fmt", []byte("RIFF\x00\x00\x00\x00WAVEfmt \x04\x00\x00\x00\x01\x00\x01\x00"), ErrWAVCorrupt},
	} {
		_, _, err := ReadWAV(bytes.NewReader(tc.b))
		if !errors.Is(err, tc.want) {
			t.Errorf("ReadWAV(%s) error %v, want %v", tc.name, err, tc.want)
		}
	}
	// A file cut inside its data: the whole samples, then ErrUnexpectedEOF.
	r, err := NewWAVReader(bytes.NewReader(good[:44+51]))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]float32, 100)
	if n, err := r.ReadSamples(buf); n != 25 || err != nil {
		t.Errorf("ReadSamples(truncated) = %d, %v, want 25, nil", n, err)
	}
	if n, err := r.ReadSamples(buf); n != 0 || err != io.ErrUnexpectedEOF {
		t.Errorf("ReadSamples(truncated) again = %d, %v, want 0, ErrUnexpectedEOF", n, err)
	}
}

// TestWAVSource plays a 44.1 kHz stereo file at real-time pace (in a
// synctest bubble), checks the pacing, the padding of the last frame, EOF
// and looping.
func TestWAVSource(t *testing.T) {
	stereo := make([]int16, 0, 2*44100)
	for _, v := range sine(44100/2, 440, 44100, 8000) { // 0.5 s
		stereo = append(stereo, v, v)
	}
	path := filepath.Join(t.TempDir(), "tone.wav")
	var buf bytes.Buffer
	if err := WriteWAV(&buf, stereo, 44100, 2); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	synctest.Test(t, func(t *testing.T) {
		src, err := OpenWAV(path, WAVConfig{})
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		start := time.Now()
		pcm := make([]int16, media.FrameSamples)
		var all []int16
		frames := 0
		for {
			c, err := src.ReadFrame(pcm)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := start.Add(time.Duration(frames) * media.FrameDuration); !c.Equal(want) {
				t.Fatalf("frame %d captured %v, want %v", frames, c.Sub(start), want.Sub(start))
			}
			if !time.Now().Equal(c) {
				t.Fatalf("frame %d returned at %v, due %v", frames, time.Since(start), c.Sub(start))
			}
			all = append(all, pcm...)
			frames++
		}
		if frames != 25 { // 24000 samples → 25 frames, the last one padded
			t.Errorf("%d frames, want 25", frames)
		}
		if got := DominantFrequency(all[:24000], 48000); math.Abs(got-440) > 0.1 {
			t.Errorf("frequency %.3f, want 440", got)
		}
		if l := LevelDBov(all[24000:]); l > -60 {
			t.Errorf("padding level %.1f dBov, want silence", l)
		}

		loop, err := OpenWAV(path, WAVConfig{Loop: true})
		if err != nil {
			t.Fatal(err)
		}
		defer loop.Close()
		for i := range 60 { // 1.2 s: loops twice
			if _, err := loop.ReadFrame(pcm); err != nil {
				t.Fatalf("looping frame %d: %v", i, err)
			}
		}
		if l := LevelDBov(pcm); math.Abs(l+15.26) > 0.3 { // 8000/√2 RMS
			t.Errorf("looped frame level %.1f dBov, want -15.26", l)
		}
	})
}

func TestWAVSourceCloseWakesReader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf bytes.Buffer
		WriteWAV(&buf, make([]int16, 48000), 48000, 1)
		src, err := NewWAVSource(bytes.NewReader(buf.Bytes()), WAVConfig{})
		if err != nil {
			t.Fatal(err)
		}
		pcm := make([]int16, media.FrameSamples)
		src.ReadFrame(pcm) // frame 0 is due at once
		done := make(chan error)
		go func() {
			_, err := src.ReadFrame(pcm)
			done <- err
		}()
		synctest.Wait()
		src.Close()
		if err := <-done; !errors.Is(err, ErrClosed) {
			t.Errorf("ReadFrame during Close = %v, want ErrClosed", err)
		}
	})
}
