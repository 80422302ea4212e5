package protocol

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"reflect"
	"testing"
)

// TestParseMediaAliases checks that the fast parsers agree with Decode and
// do not copy.
func TestParseMediaAliases(t *testing.T) {
	vb := readGolden(t, "voice")[HeaderSize:]
	var v Voice
	if err := ParseVoice(vb, &v); err != nil {
		t.Fatalf("ParseVoice(%x) error: %v", vb, err)
	}
	if want := goldenMessage(t, "voice"); !reflect.DeepEqual(&v, want) {
		t.Errorf("ParseVoice(%x) = %+v, want %+v", vb, &v, want)
	}
	if &v.Data[0] != &vb[VoiceHeaderSize] {
		t.Errorf("ParseVoice copied the data; it must alias the payload")
	}

	fb := readGolden(t, "video-fragment")[HeaderSize:]
	var f VideoFragment
	if err := ParseVideoFragment(fb, &f); err != nil {
		t.Fatalf("ParseVideoFragment(%x) error: %v", fb, err)
	}
	if want := goldenMessage(t, "video-fragment"); !reflect.DeepEqual(&f, want) {
		t.Errorf("ParseVideoFragment(%x) = %+v, want %+v", fb, &f, want)
	}
	if &f.Data[0] != &fb[VideoHeaderSize] {
		t.Errorf("ParseVideoFragment copied the data; it must alias the payload")
	}

	for k := range VoiceHeaderSize + 1 {
		if err := ParseVoice(vb[:k], &v); CodeOf(err) != CodeMalformed {
			t.Errorf("ParseVoice(%x) error = %v, want code %v", vb[:k], err, CodeMalformed)
		}
	}
	for k := range VideoHeaderSize + 1 {
		if err := ParseVideoFragment(fb[:k], &f); CodeOf(err) != CodeMalformed {
			t.Errorf("ParseVideoFragment(%x) error = %v, want code %v", fb[:k], err, CodeMalformed)
		}
	}
	bad := bytes.Clone(fb)
	binary.BigEndian.PutUint16(bad[19:21], 3) // index 3 of count 3
	if err := ParseVideoFragment(bad, &f); CodeOf(err) != CodeMalformed {
		t.Errorf("ParseVideoFragment(index = count) error = %v, want code %v", err, CodeMalformed)
	}
}

func TestParseAllocs(t *testing.T) {
	vb := readGolden(t, "voice")[HeaderSize:]
	fb := readGolden(t, "video-fragment")[HeaderSize:]
	var v Voice
	var f VideoFragment
	if n := testing.AllocsPerRun(100, func() {
		ParseVoice(vb, &v)
		ParseVideoFragment(fb, &f)
	}); n != 0 {
		t.Errorf("ParseVoice and ParseVideoFragment allocate %v times per call, want 0", n)
	}
}

func TestFragmentData(t *testing.T) {
	tests := []struct{ n, max, want int }{
		{1000, 4000, 4000},
		{1000, 0, 1},
		{1000, 1 << 20, MaxVideoData},
		{MaxVideoFrameBytes, 1000, MaxVideoFrameBytes / MaxFragments},
		{MaxVideoFrameBytes - 1, 1000, MaxVideoFrameBytes / MaxFragments},
	}
	for _, tt := range tests {
		if got := FragmentData(tt.n, tt.max); got != tt.want {
			t.Errorf("FragmentData(%d, %d) = %d, want %d", tt.n, tt.max, got, tt.want)
		}
	}
}

// fragments returns the wire frames of one video frame.
func fragments(t testing.TB, f *VideoFrame, maxData int) [][]byte {
	t.Helper()
	var out [][]byte
	err := f.Fragment(maxData, func(frag *VideoFragment) error {
		b, err := Marshal(frag)
		out = append(out, b)
		return err
	})
	if err != nil {
		t.Fatalf("Fragment(%d bytes, %d) error: %v", len(f.Data), maxData, err)
	}
	return out
}

func TestFragmentLayout(t *testing.T) {
	data := make([]byte, 10)
	for i := range data {
		data[i] = byte(i)
	}
	f := &VideoFrame{Track: TrackScreen, FrameSeq: 7, Captured: 99, Codec: CodecVP8, Keyframe: true, Data: data}
	frames := fragments(t, f, 4)
	if len(frames) != 3 {
		t.Fatalf("Fragment(10 bytes, 4) made %d fragments, want 3", len(frames))
	}
	for i, b := range frames {
		m, _, err := DecodeFrame(b)
		if err != nil {
			t.Fatal(err)
		}
		frag := m.(*VideoFragment)
		want := &VideoFragment{FrameSeq: 7, Captured: 99, Track: TrackScreen, Codec: CodecVP8, Flags: VideoKeyframe,
			Index: uint16(i), Count: 3, Data: data[4*i : min(4*i+4, 10)]}
		if !reflect.DeepEqual(frag, want) {
			t.Errorf("fragment %d = %+v, want %+v", i, frag, want)
		}
	}
	for _, n := range []int{0, MaxVideoFrameBytes + 1} {
		big := &VideoFrame{Data: make([]byte, n)}
		if err := big.Fragment(1000, func(*VideoFragment) error { return nil }); err == nil {
			t.Errorf("Fragment(%d bytes) = nil, want an error", n)
		}
	}
	// The largest frame still fits in MaxFragments.
	count := 0
	big := &VideoFrame{Data: make([]byte, MaxVideoFrameBytes)}
	big.Fragment(100, func(frag *VideoFragment) error {
		count++
		if int(frag.Count) > MaxFragments {
			t.Fatalf("fragment count %d over %d", frag.Count, MaxFragments)
		}
		return nil
	})
	if count != MaxFragments {
		t.Errorf("a %d-byte frame made %d fragments, want %d", MaxVideoFrameBytes, count, MaxFragments)
	}
}

// addWire feeds one wire frame to r through the aliasing parser, as a
// client does.
func addWire(t testing.TB, r *Reassembler, b []byte) (VideoFrame, bool) {
	t.Helper()
	var frag VideoFragment
	if err := ParseVideoFragment(b[HeaderSize:], &frag); err != nil {
		t.Fatal(err)
	}
	return r.Add(&frag)
}

// TestReassembleInterleaved sends frames of three senders and two tracks,
// their fragments interleaved as the relay may forward them, and checks
// that every frame comes back whole.
func TestReassembleInterleaved(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	type stream struct {
		frames [][]byte // the wire fragments still to send
		sent   []*VideoFrame
	}
	var streams []*stream
	var r Reassembler
	for src := uint32(1); src <= 3; src++ {
		for _, tr := range []Track{TrackCamera, TrackScreen} {
			s := &stream{}
			for seq := range uint32(20) {
				data := make([]byte, 1+rng.IntN(20000))
				for i := range data {
					data[i] = byte(rng.Uint32())
				}
				f := &VideoFrame{Source: src, Track: tr, FrameSeq: seq, Captured: int64(seq) * 33000,
					Codec: CodecVP8, Keyframe: seq%10 == 0, Data: data}
				s.sent = append(s.sent, f)
				s.frames = append(s.frames, fragments(t, f, 1000)...)
			}
			streams = append(streams, s)
		}
	}
	got := make(map[reassemblyKey][]VideoFrame)
	for {
		var live []*stream
		for _, s := range streams {
			if len(s.frames) > 0 {
				live = append(live, s)
			}
		}
		if len(live) == 0 {
			break
		}
		s := live[rng.IntN(len(live))]
		b := s.frames[0]
		s.frames = s.frames[1:]
		if f, ok := addWire(t, &r, b); ok {
			f.Data = bytes.Clone(f.Data)
			k := reassemblyKey{f.Source, f.Track}
			got[k] = append(got[k], f)
		}
	}
	for _, s := range streams {
		k := reassemblyKey{s.sent[0].Source, s.sent[0].Track}
		if len(got[k]) != len(s.sent) {
			t.Fatalf("source %d track %v: got %d frames, want %d", k.source, k.track, len(got[k]), len(s.sent))
		}
		for i, want := range s.sent {
			if !reflect.DeepEqual(got[k][i], *want) {
				t.Errorf("source %d track %v frame %d differs after reassembly", k.source, k.track, i)
			}
		}
	}
	if st := r.Stats(); st.Frames != 120 || st.Broken != 0 || st.TooLarge != 0 {
		t.Errorf("Stats() = %+v, want 120 frames and nothing broken", st)
	}
}

// TestReassembleLosses drops fragments the way a relay catching up a slow
// receiver does and checks that broken frames are given up, counted, and
// never returned, while the next whole frame is.
func TestReassembleLosses(t *testing.T) {
	frame := func(seq uint32, n int) [][]byte {
		return fragments(t, &VideoFrame{Source: 1, FrameSeq: seq, Codec: CodecVP8, Data: bytes.Repeat([]byte{byte(seq)}, n)}, 100)
	}
	f1, f2, f3, f4 := frame(1, 350), frame(2, 350), frame(3, 350), frame(4, 50)
	var input [][]byte
	input = append(input, f1[:2]...)           // frame 1 loses its end
	input = append(input, f2[1:]...)           // frame 2 loses its start
	input = append(input, f3[0], f3[2], f3[3]) // frame 3 loses its middle
	input = append(input, f4...)               // frame 4 is whole (one fragment)
	var r Reassembler
	var whole []uint32
	for _, b := range input {
		if f, ok := addWire(t, &r, b); ok {
			whole = append(whole, f.FrameSeq)
			if !bytes.Equal(f.Data, bytes.Repeat([]byte{byte(f.FrameSeq)}, len(f.Data))) || len(f.Data) != 50 {
				t.Errorf("frame %d has wrong data", f.FrameSeq)
			}
		}
	}
	if !reflect.DeepEqual(whole, []uint32{4}) {
		t.Errorf("whole frames = %v, want [4]", whole)
	}
	if st := r.Stats(); st.Frames != 1 || st.Broken != 2 {
		// Frame 2 never started, so only frames 1 and 3 were given up.
		t.Errorf("Stats() = %+v, want 1 frame and 2 broken", st)
	}

	small := Reassembler{MaxFrameBytes: 300}
	for _, b := range f1 {
		if _, ok := addWire(t, &small, b); ok {
			t.Errorf("a 350-byte frame came out of a reassembler limited to 300 bytes")
		}
	}
	if st := small.Stats(); st.TooLarge != 1 {
		t.Errorf("Stats() = %+v, want 1 too large", st)
	}
	small.Forget(1)
	if len(small.frames) != 0 {
		t.Errorf("Forget(1) left %d entries", len(small.frames))
	}
}

func TestReassembleAllocs(t *testing.T) {
	frames := fragments(t, &VideoFrame{Source: 1, Codec: CodecVP8, Data: make([]byte, 5000)}, 1000)
	var r Reassembler
	for _, b := range frames { // warm up: the buffer grows once
		addWire(t, &r, b)
	}
	var frag VideoFragment
	if n := testing.AllocsPerRun(50, func() {
		for _, b := range frames {
			ParseVideoFragment(b[HeaderSize:], &frag)
			r.Add(&frag)
		}
	}); n != 0 {
		t.Errorf("reassembling a frame allocates %v times, want 0", n)
	}
}
