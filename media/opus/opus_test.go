package opus

import (
	"math"
	"testing"
	"time"

	"github.com/parleychat/parley/media"
	"github.com/parleychat/parley/media/audio"
	hopus "gopkg.in/hraban/opus.v2"
)

// encodeAll encodes pcm frame by frame and returns the packets.
func encodeAll(t testing.TB, enc *Encoder, pcm []int16) [][]byte {
	t.Helper()
	var pkts [][]byte
	out := make([]byte, MaxPacket)
	for i := 0; i+media.FrameSamples <= len(pcm); i += media.FrameSamples {
		n, err := enc.Encode(pcm[i:i+media.FrameSamples], out)
		if err != nil {
			t.Fatal(err)
		}
		pkts = append(pkts, append([]byte(nil), out[:n]...))
	}
	return pkts
}

// toneSamples returns secs seconds of a phase-continuous tone at half of
// full scale: one frequency, or a new one every 90 ms from freqs in turn
// (so that losses fall at every position in a note).
func toneSamples(t testing.TB, secs float64, freqs ...float64) []int16 {
	t.Helper()
	const step = 4320
	pcm := make([]int16, int(secs*media.SampleRate))
	phase := 0.0
	for i := range pcm {
		pcm[i] = int16(math.Round(16383 * math.Sin(2*math.Pi*phase)))
		phase += freqs[(i/step)%len(freqs)] / media.SampleRate
		phase -= math.Floor(phase)
	}
	return pcm
}

// align returns the lag (0 to 1000 samples) at which dec best matches ref:
// the codec's delay.
func align(ref, dec []int16) int {
	best, bestLag := -math.MaxFloat64, 0
	for lag := 0; lag < 1000; lag++ {
		var c float64
		for i := 0; i+lag < len(dec) && i < 48000; i += 3 {
			c += float64(ref[i]) * float64(dec[i+lag])
		}
		if c > best {
			best, bestLag = c, lag
		}
	}
	return bestLag
}

// snr returns the signal-to-noise ratio in dB of dec against ref delayed by
// lag, over the samples [from, to) of ref.
func snr(ref, dec []int16, lag, from, to int) float64 {
	var sig, noise float64
	for i := from; i < to && i+lag < len(dec); i++ {
		r, d := float64(ref[i]), float64(dec[i+lag])
		sig += r * r
		noise += (r - d) * (r - d)
	}
	return 10 * math.Log10(sig/noise)
}

func TestEncodeDecodeTone(t *testing.T) {
	enc, err := NewEncoder(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	dec, err := NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	ref := toneSamples(t, 3, 440)
	pkts := encodeAll(t, enc, ref)
	var out []int16
	pcm := make([]int16, media.FrameSamples)
	bytes := 0
	for _, p := range pkts {
		if err := dec.Decode(p, pcm); err != nil {
			t.Fatal(err)
		}
		out = append(out, pcm...)
		bytes += len(p)
	}
	if f := audio.DominantFrequency(out[4800:], media.SampleRate); math.Abs(f-440) > 1 {
		t.Errorf("decoded tone at %.3f Hz, want 440 ± 1", f)
	}
	lag := align(ref, out)
	s := snr(ref, out, lag, 4800, len(ref)-4800)
	if s < 15 {
		t.Errorf("SNR %.1f dB, want at least 15", s)
	}
	kbps := float64(bytes*8) / 3 / 1000
	if kbps < 20 || kbps > 40 {
		t.Errorf("bitrate %.1f kbit/s, want about 32", kbps)
	}
	t.Logf("440 Hz: decoded %.3f Hz, aligned at lag %d, SNR %.1f dB, %.1f kbit/s",
		audio.DominantFrequency(out[4800:], media.SampleRate), lag, s, kbps)
}

// TestFEC drops every fifth packet of a tone that changes pitch every
// 90 ms, encoded for 20% loss, and repairs the losses with DecodeFEC from
// the next packet or with PLC alone: FEC must be clearly better on the lost
// frames.
func TestFEC(t *testing.T) {
	ref := toneSamples(t, 4, 440, 660, 550, 330, 880, 495)
	enc, err := NewEncoder(Config{PacketLoss: 20})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	if err := enc.SetPacketLoss(20); err != nil {
		t.Fatal(err)
	}
	pkts := encodeAll(t, enc, ref)
	lost := func(i int) bool { return i%5 == 2 }

	decodeWith := func(fec bool) []int16 {
		dec, err := NewDecoder()
		if err != nil {
			t.Fatal(err)
		}
		defer dec.Close()
		var out []int16
		pcm := make([]int16, media.FrameSamples)
		for i, p := range pkts {
			switch {
			case !lost(i):
				err = dec.Decode(p, pcm)
			case fec && i+1 < len(pkts):
				err = dec.DecodeFEC(pkts[i+1], pcm)
			default:
				err = dec.DecodePLC(pcm)
			}
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, pcm...)
		}
		return out
	}
	clean := NewDecoderOrFatal(t)
	var full []int16
	pcm := make([]int16, media.FrameSamples)
	for _, p := range pkts {
		if err := clean.Decode(p, pcm); err != nil {
			t.Fatal(err)
		}
		full = append(full, pcm...)
	}
	lag := align(ref, full)
	withFEC, withPLC := decodeWith(true), decodeWith(false)
	// SNR over the lost frames only, against the input.
	lostSNR := func(out []int16) float64 {
		var sig, noise float64
		for i := 5; i < len(pkts)-1; i++ {
			if !lost(i) {
				continue
			}
			for j := i * media.FrameSamples; j < (i+1)*media.FrameSamples; j++ {
				r, d := float64(ref[j-lag]), float64(out[j])
				sig += r * r
				noise += (r - d) * (r - d)
			}
		}
		return 10 * math.Log10(sig/noise)
	}
	sFEC, sPLC := lostSNR(withFEC), lostSNR(withPLC)
	sAll := snr(ref, full, lag, 4800, len(ref)-4800)
	if sFEC < sPLC+3 {
		t.Errorf("lost frames: SNR %.1f dB with FEC, %.1f dB with PLC only; want FEC at least 3 dB better", sFEC, sPLC)
	}
	t.Logf("every 5th packet lost: SNR of the lost frames %.1f dB with FEC, %.1f dB with PLC (no loss: %.1f dB over all frames)", sFEC, sPLC, sAll)
}

func NewDecoderOrFatal(t *testing.T) *Decoder {
	d, err := NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestPLCWithoutPacket(t *testing.T) {
	dec := NewDecoderOrFatal(t)
	pcm := make([]int16, media.FrameSamples)
	for i := range pcm {
		pcm[i] = 123
	}
	for range 3 {
		if err := dec.DecodePLC(pcm); err != nil {
			t.Fatalf("DecodePLC before any packet: %v", err)
		}
	}
	if l := audio.Level(pcm); l != audio.SilentLevel {
		t.Errorf("PLC before any packet has level %d, want silence", l)
	}
	// FEC from a first packet without FEC data conceals too.
	enc, _ := NewEncoder(Config{})
	out := make([]byte, MaxPacket)
	n, _ := enc.Encode(toneSamples(t, 0.02, 440), out)
	if err := dec.DecodeFEC(out[:n], pcm); err != nil {
		t.Errorf("DecodeFEC of a packet without FEC: %v", err)
	}
	if err := dec.Decode(out[:n], pcm); err != nil {
		t.Errorf("Decode after it: %v", err)
	}
}

func TestErrors(t *testing.T) {
	enc, _ := NewEncoder(Config{})
	dec := NewDecoderOrFatal(t)
	out := make([]byte, MaxPacket)
	if _, err := enc.Encode(make([]int16, 100), out); err == nil {
		t.Errorf("Encode of 100 samples succeeded")
	}
	if err := enc.SetBitrate(100); err == nil {
		t.Errorf("SetBitrate(100) succeeded")
	}
	if err := enc.SetPacketLoss(101); err == nil {
		t.Errorf("SetPacketLoss(101) succeeded")
	}
	if err := dec.Decode([]byte{0xff, 0xff, 0xff}, make([]int16, media.FrameSamples)); err == nil {
		t.Errorf("Decode of garbage succeeded")
	}
	if err := dec.Decode(nil, make([]int16, media.FrameSamples)); err == nil {
		t.Errorf("Decode of nothing succeeded")
	}
	// A 10 ms packet is not a frame of ours.
	raw, _ := NewEncoderRaw10ms(t)
	if err := dec.Decode(raw, make([]int16, media.FrameSamples)); err == nil {
		t.Errorf("Decode of a 10 ms packet succeeded")
	}
	enc.Close()
	if _, err := enc.Encode(make([]int16, media.FrameSamples), out); err != ErrClosed {
		t.Errorf("Encode after Close = %v, want ErrClosed", err)
	}
}

func BenchmarkEncode(b *testing.B) {
	enc, _ := NewEncoder(Config{})
	pcm := toneSamples(b, 1, 440)
	out := make([]byte, MaxPacket)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		off := (i % 50) * media.FrameSamples
		if _, err := enc.Encode(pcm[off:off+media.FrameSamples], out); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(b.Elapsed())/float64(b.N)/float64(time.Microsecond), "µs/frame")
}

func BenchmarkDecode(b *testing.B) {
	enc, _ := NewEncoder(Config{})
	pkts := encodeAll(b, enc, toneSamples(b, 1, 440))
	dec, _ := NewDecoder()
	pcm := make([]int16, media.FrameSamples)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := dec.Decode(pkts[i%len(pkts)], pcm); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// NewEncoderRaw10ms returns a valid Opus packet of 10 ms.
func NewEncoderRaw10ms(t *testing.T) ([]byte, error) {
	e, err := hopus.NewEncoder(media.SampleRate, 1, hopus.AppVoIP)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, MaxPacket)
	n, err := e.Encode(make([]int16, media.FrameSamples/2), out)
	if err != nil {
		t.Fatal(err)
	}
	return out[:n], nil
}
