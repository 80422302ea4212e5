package opus

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/parleychat/parley/media"
	"github.com/parleychat/parley/media/record"
	hopus "gopkg.in/hraban/opus.v2"
)

var updateSeeds = flag.Bool("update-seeds", false, "rewrite the fuzz seed corpus in testdata/fuzz from libopus's encoder")

// canary fills the samples past the ones a decoder may write.
const canary = 0x5a5a

// FuzzOpusDecode plays two packets from another member, a then b, through
// a Decoder as the playout loop does (b first rebuilt from FEC when fec is
// set, as when the frame before it was lost), then a concealed frame and a
// good packet. A second decoder, libopus without our wrapper (raw, with
// room for 120 ms), decodes the same. For every packet:
//
//   - Decode writes at most media.FrameSamples samples, whatever the packet
//     (the samples after them keep their canary), and so do DecodeFEC and
//     DecodePLC;
//   - libopus accepts a packet only with the duration its TOC byte gives
//     (record.OpusPacketSamples), at most 120 ms, and writes no more
//     samples than that; LastPacketDuration reports it;
//   - Decode succeeds exactly when libopus accepts the packet and it is of
//     20 ms: garbage, empty packets and other durations are errors, not
//     panics;
//   - while both decoders have decoded the same (no packet longer than
//     20 ms so far), their output is the same: the wrapper adds nothing
//     and libopus reads no uninitialised memory;
//   - after any of this, DecodePLC works and a good packet decodes.
func FuzzOpusDecode(f *testing.F) {
	seeds := opusSeeds(f)
	if *updateSeeds {
		writeOpusSeeds(f, seeds)
	}
	good := seeds["voip-tone"].b
	f.Fuzz(func(t *testing.T, a, b []byte, fec bool) {
		dec, err := NewDecoder()
		if err != nil {
			t.Fatal(err)
		}
		defer dec.Close()
		raw, err := hopus.NewDecoder(media.SampleRate, 1)
		if err != nil {
			t.Fatal(err)
		}
		s := &opusSteps{dec: dec, raw: raw, lockstep: true}
		s.decode(t, "a", a)
		if fec {
			s.fec(t, "FEC from b", b)
		}
		s.decode(t, "b", b)
		s.plc(t)
		if err := s.decode(t, "a good packet", good); err != nil {
			t.Fatalf("a good packet after the fuzzed ones: %v", err)
		}
	})
}

// opusSteps decodes with the Decoder and with libopus alone, in lockstep.
type opusSteps struct {
	dec      *Decoder
	raw      *hopus.Decoder
	lockstep bool // both have decoded the same so far
}

// newPCM returns a buffer of n samples followed by canaries, all canaries.
func newPCM(n int) []int16 {
	pcm := make([]int16, n+64)
	for i := range pcm {
		pcm[i] = canary
	}
	return pcm
}

// checkCanaries fails if pcm was written from sample n on.
func checkCanaries(t *testing.T, what string, pcm []int16, n int) {
	t.Helper()
	for i := n; i < len(pcm); i++ {
		if pcm[i] != canary {
			t.Fatalf("%s wrote sample %d, beyond the %d it may", what, i, n)
		}
	}
}

func (s *opusSteps) decode(t *testing.T, what string, pkt []byte) error {
	t.Helper()
	out := newPCM(media.FrameSamples)
	err := s.dec.Decode(pkt, out[:media.FrameSamples])
	checkCanaries(t, "Decode of "+what, out, media.FrameSamples)

	rawOut := newPCM(5760)
	n, rerr := 0, fmt.Errorf("empty packet")
	if len(pkt) > 0 {
		n, rerr = s.raw.Decode(pkt, rawOut[:5760:5760])
	}
	samples, terr := record.OpusPacketSamples(pkt)
	if rerr == nil {
		if n <= 0 || n > 5760 {
			t.Fatalf("libopus decoded %s to %d samples", what, n)
		}
		checkCanaries(t, "libopus's decode of "+what, rawOut, n)
		if terr != nil || samples != n {
			t.Fatalf("libopus decoded %s (%x…) to %d samples; its TOC says %d (%v)", what, pkt[:min(len(pkt), 4)], n, samples, terr)
		}
		if d, err := s.raw.LastPacketDuration(); err != nil || d != n {
			t.Fatalf("libopus decoded %s to %d samples; LastPacketDuration %d, %v", what, n, d, err)
		}
	}
	if accepted := rerr == nil && n == media.FrameSamples; (err == nil) != accepted {
		t.Fatalf("Decode of %s (%d bytes, %x…): %v; libopus: %d samples, %v", what, len(pkt), pkt[:min(len(pkt), 4)], err, n, rerr)
	}
	if err == nil && s.lockstep && !slices.Equal(out[:media.FrameSamples], rawOut[:media.FrameSamples:media.FrameSamples]) {
		t.Fatalf("Decode of %s differs from libopus's", what)
	}
	// The Decoder refuses a packet longer than 20 ms before decoding it;
	// libopus alone decodes it (or part of it).
	if terr == nil && samples > media.FrameSamples {
		s.lockstep = false
	}
	return err
}

func (s *opusSteps) fec(t *testing.T, what string, pkt []byte) {
	t.Helper()
	out := newPCM(media.FrameSamples)
	err := s.dec.DecodeFEC(pkt, out[:media.FrameSamples])
	checkCanaries(t, "DecodeFEC of "+what, out, media.FrameSamples)
	rawOut := newPCM(media.FrameSamples)
	var rerr error
	if len(pkt) == 0 {
		rerr = s.raw.DecodePLC(rawOut[:media.FrameSamples:media.FrameSamples])
	} else {
		rerr = s.raw.DecodeFEC(pkt, rawOut[:media.FrameSamples:media.FrameSamples])
	}
	if (err == nil) != (rerr == nil) {
		t.Fatalf("DecodeFEC of %s: %v; libopus: %v", what, err, rerr)
	}
	if err == nil && s.lockstep && !slices.Equal(out, rawOut) {
		t.Fatalf("DecodeFEC of %s differs from libopus's", what)
	}
}

func (s *opusSteps) plc(t *testing.T) {
	t.Helper()
	out := newPCM(media.FrameSamples)
	if err := s.dec.DecodePLC(out[:media.FrameSamples]); err != nil {
		t.Fatalf("DecodePLC: %v", err)
	}
	checkCanaries(t, "DecodePLC", out, media.FrameSamples)
	rawOut := newPCM(media.FrameSamples)
	if err := s.raw.DecodePLC(rawOut[:media.FrameSamples:media.FrameSamples]); err != nil {
		t.Fatalf("libopus DecodePLC: %v", err)
	}
	if s.lockstep && !slices.Equal(out, rawOut) {
		t.Fatalf("DecodePLC differs from libopus's")
	}
}

type opusSeed struct {
	a, b []byte
	fec  bool
}

// opusSeeds returns seeds made with libopus's encoder: every mode (SILK,
// hybrid, CELT), bandwidths from narrowband to fullband, frames of 2.5 to
// 60 ms, packets with FEC; and packets of two and more frames (codes 1 to
// 3, with padding) built from them, since our encoder makes only code 0.
func opusSeeds(f *testing.F) map[string]opusSeed {
	tone := toneSamples(f, 0.5, 440, 880, 330)
	encode := func(app hopus.Application, bitrate int, bw hopus.Bandwidth, loss int, frame, count int) [][]byte {
		enc, err := hopus.NewEncoder(media.SampleRate, 1, app)
		if err != nil {
			f.Fatal(err)
		}
		for _, err := range []error{enc.SetBitrate(bitrate), enc.SetMaxBandwidth(bw),
			enc.SetInBandFEC(loss > 0), enc.SetPacketLossPerc(loss)} {
			if err != nil {
				f.Fatal(err)
			}
		}
		var pkts [][]byte
		out := make([]byte, 4000)
		for i := range count {
			n, err := enc.Encode(tone[i*frame:(i+1)*frame], out)
			if err != nil {
				f.Fatal(err)
			}
			pkts = append(pkts, bytes.Clone(out[:n]))
		}
		return pkts
	}
	seeds := make(map[string]opusSeed)
	enc, err := NewEncoder(Config{})
	if err != nil {
		f.Fatal(err)
	}
	voip := encodeAll(f, enc, tone[:10*media.FrameSamples])
	seeds["voip-tone"] = opusSeed{voip[8], voip[9], false}
	fec := encode(hopus.AppVoIP, 16000, hopus.Wideband, 20, 960, 10)
	seeds["silk-wb-fec"] = opusSeed{fec[7], fec[9], true}
	nb := encode(hopus.AppVoIP, 6000, hopus.Narrowband, 0, 960, 3)
	seeds["silk-nb"] = opusSeed{nb[1], nb[2], false}
	hybrid := encode(hopus.AppVoIP, 40000, hopus.SuperWideband, 10, 960, 6)
	seeds["hybrid-swb-fec"] = opusSeed{hybrid[4], hybrid[5], true}
	celt := encode(hopus.AppAudio, 128000, hopus.Fullband, 0, 960, 3)
	seeds["celt-fb"] = opusSeed{celt[1], celt[2], false}
	ms10 := encode(hopus.AppAudio, 64000, hopus.Fullband, 0, 480, 3)
	seeds["celt-10ms"] = opusSeed{ms10[1], ms10[2], false}
	ms25 := encode(hopus.AppRestrictedLowdelay, 64000, hopus.Fullband, 0, 120, 3)
	ms5 := encode(hopus.AppRestrictedLowdelay, 64000, hopus.Fullband, 0, 240, 3)
	seeds["celt-2.5ms-5ms"] = opusSeed{ms25[2], ms5[2], false}
	ms40 := encode(hopus.AppVoIP, 32000, hopus.Wideband, 0, 1920, 2)
	ms60 := encode(hopus.AppVoIP, 32000, hopus.Wideband, 10, 2880, 2)
	seeds["silk-40ms-60ms"] = opusSeed{ms40[1], ms60[1], true}

	// Two 10 ms CELT frames: code 1 (the same frame twice), code 2 (two
	// frames of different lengths), code 3 (CBR, and VBR with padding).
	fr1, fr2 := ms10[1][1:], ms10[2][1:]
	toc := ms10[1][0] &^ 3
	code1 := append([]byte{toc | 1}, append(bytes.Clone(fr1), fr1...)...)
	code2 := append([]byte{toc | 2, byte(len(fr1))}, append(bytes.Clone(fr1), fr2...)...)
	code3cbr := append([]byte{toc | 3, 2}, append(bytes.Clone(fr1), fr1...)...)
	code3vbr := append([]byte{toc | 3, 0x80 | 0x40 | 2, 3, byte(len(fr1))}, append(append(bytes.Clone(fr1), fr2...), 0, 0, 0)...)
	seeds["code1-code2"] = opusSeed{code1, code2, false}
	seeds["code3-cbr-vbr-padding"] = opusSeed{code3cbr, code3vbr, true}
	// A TOC byte alone (a 20 ms CELT frame of silence, as OggWriter
	// writes), and garbage.
	seeds["toc-only-garbage"] = opusSeed{[]byte{0xf8}, []byte{0xff, 0xff, 0xff}, true}
	return seeds
}

func writeOpusSeeds(f *testing.F, seeds map[string]opusSeed) {
	dir := filepath.Join("testdata", "fuzz", "FuzzOpusDecode")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		f.Fatal(err)
	}
	for name, s := range seeds {
		b := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n[]byte(%q)\nbool(%v)\n", s.a, s.b, s.fec)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(b), 0o644); err != nil {
			f.Fatal(err)
		}
	}
}
