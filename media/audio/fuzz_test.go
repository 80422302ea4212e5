package audio

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// readCorpusEntry reads a one-[]byte entry of a Go fuzz corpus file.
func readCorpusEntry(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[1], "[]byte(") {
		t.Fatalf("%s is not a one-[]byte corpus entry", path)
	}
	s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return []byte(s)
}

// TestWAVSeedFiles reads the seed corpus, which sox wrote: the PCM and
// float files decode, the compressed ones are refused.
func TestWAVSeedFiles(t *testing.T) {
	for name, want := range map[string]WAVFormat{
		"s16":    {SampleRate: 44100, Channels: 2, Bits: 16},
		"u8":     {SampleRate: 8000, Channels: 1, Bits: 8},
		"f32":    {SampleRate: 48000, Channels: 1, Bits: 32, Float: true},
		"s24ext": {SampleRate: 96000, Channels: 3, Bits: 24},
		"ulaw":   {},
		"ima":    {},
	} {
		b := readCorpusEntry(t, filepath.Join("testdata", "fuzz", "FuzzWAV", name))
		pcm, f, err := ReadWAV(bytes.NewReader(b))
		if want == (WAVFormat{}) {
			if !errors.Is(err, ErrWAVUnsupported) {
				t.Errorf("ReadWAV(%s) error %v, want ErrWAVUnsupported", name, err)
			}
			continue
		}
		if err != nil || f != want {
			t.Errorf("ReadWAV(%s) = %+v, %v, want %+v, nil", name, f, err, want)
			continue
		}
		if l := LevelDBov(pcm); l < -20 {
			t.Errorf("ReadWAV(%s): level %.1f dBov, want a tone", name, l)
		}
	}
}

// FuzzWAV feeds arbitrary bytes to the WAV reader. Whatever it accepts must
// decode without panicking or reading past the data, to samples in [-1, 1];
// 16-bit files must survive a round trip through WriteWAV.
func FuzzWAV(f *testing.F) {
	f.Add(wavBytes(1, 2, 44100, 16, nil, encodeSamples([]float64{0.1, -0.1, 0.2, -0.2}, 16, false)))
	f.Add(wavBytes(3, 1, 8000, 32, []byte("LIST\x01\x00\x00\x00x\x00"), encodeSamples([]float64{0.5, -1}, 32, true)))
	f.Add(wavBytes(1, 1, 22050, 24, nil, encodeSamples([]float64{0.5, -1, 0.25}, 24, false)))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := NewWAVReader(bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, ErrNotWAV) && !errors.Is(err, ErrWAVUnsupported) && !errors.Is(err, ErrWAVCorrupt) {
				t.Fatalf("NewWAVReader error %v is none of the WAV errors", err)
			}
			return
		}
		format := r.Format()
		buf := make([]float32, 256*format.Channels)
		var raw []float32
		for {
			n, err := r.ReadSamples(buf)
			if n%format.Channels != 0 {
				t.Fatalf("ReadSamples returned %d samples, not whole frames of %d", n, format.Channels)
			}
			for _, v := range buf[:n] {
				if !(v >= -1 && v <= 1) {
					t.Fatalf("sample %v outside [-1, 1]", v)
				}
			}
			raw = append(raw, buf[:n]...)
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				break
			}
			if err != nil {
				t.Fatalf("ReadSamples error %v", err)
			}
		}
		if len(raw)*format.Bits/8 > len(b) {
			t.Fatalf("decoded %d samples from %d bytes", len(raw), len(b))
		}
		if format.Bits != 16 || format.Float {
			return
		}
		pcm := make([]int16, len(raw))
		for i, v := range raw {
			pcm[i] = int16(v * 32768)
		}
		var out bytes.Buffer
		if err := WriteWAV(&out, pcm, format.SampleRate, format.Channels); err != nil {
			t.Fatalf("WriteWAV of accepted input: %v", err)
		}
		r2, err := NewWAVReader(bytes.NewReader(out.Bytes()))
		if err != nil {
			t.Fatalf("NewWAVReader(WriteWAV(...)) error %v", err)
		}
		if r2.Format() != format {
			t.Fatalf("round trip format %+v, want %+v", r2.Format(), format)
		}
		back := make([]float32, len(raw)+format.Channels)
		got := 0
		for {
			n, err := r2.ReadSamples(back[got:])
			got += n
			if err != nil || n == 0 {
				break
			}
		}
		if got != len(raw) {
			t.Fatalf("round trip gave %d samples, want %d", got, len(raw))
		}
		for i := range raw {
			if back[i] != raw[i] {
				t.Fatalf("round trip sample %d = %v, want %v", i, back[i], raw[i])
			}
		}
	})
}
