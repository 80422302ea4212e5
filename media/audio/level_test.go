package audio

import (
	"math"
	"testing"

	"github.com/parleychat/parley/media"
)

func TestLevel(t *testing.T) {
	square := make([]int16, media.FrameSamples)
	for i := range square {
		square[i] = 32767
		if i%2 == 1 {
			square[i] = -32768
		}
	}
	for _, tc := range []struct {
		name string
		pcm  []int16
		dbov float64
		rfc  uint8
	}{
		{"silence", make([]int16, media.FrameSamples), -127, 127},
		{"empty", nil, -127, 127},
		{"full square", square, 0, 0},
		{"full sine", sine(media.FrameSamples, 1000, media.SampleRate, 32767), -3.01, 3},
		{"-40 dB sine", sine(media.FrameSamples, 1000, media.SampleRate, 327.67), -43.01, 43},
		{"one LSB", append(make([]int16, media.FrameSamples-1), 1), -120.13, 120},
	} {
		if got := LevelDBov(tc.pcm); math.Abs(got-tc.dbov) > 0.05 {
			t.Errorf("LevelDBov(%s) = %.2f, want %.2f", tc.name, got, tc.dbov)
		}
		if got := Level(tc.pcm); got != tc.rfc {
			t.Errorf("Level(%s) = %d, want %d", tc.name, got, tc.rfc)
		}
	}
}

func TestTalkDetector(t *testing.T) {
	var d TalkDetector
	seq := []uint8{127, 127, 30, 127, 127}
	want := []bool{false, false, true, true, true}
	for i, l := range seq {
		if got := d.Frame(l); got != want[i] {
			t.Fatalf("frame %d (level %d): talking %v, want %v", i, l, got, want[i])
		}
	}
	for i := range 12 { // 14 quiet frames in all: still talking
		if !d.Frame(127) {
			t.Fatalf("quiet frame %d ended talking before the hangover", i+3)
		}
	}
	if d.Frame(127) {
		t.Errorf("talking after 15 quiet frames")
	}
}

func TestMixer(t *testing.T) {
	var m Mixer
	a := make([]int16, media.FrameSamples)
	b := make([]int16, media.FrameSamples)
	for i := range a {
		a[i], b[i] = 20000, int16(i%3-1)*20000
	}
	m.Add(a)
	m.Add(b)
	out := make([]int16, media.FrameSamples)
	if n := m.Frame(out); n != 2 {
		t.Errorf("Frame mixed %d, want 2", n)
	}
	for i, want := range []int16{0, 20000, 32767} {
		if out[i] != want {
			t.Errorf("mix[%d] = %d, want %d", i, out[i], want)
		}
	}
	if n := m.Frame(out); n != 0 || out[2] != 0 {
		t.Errorf("empty Frame = %d frames, sample %d, want 0, 0", n, out[2])
	}
	Mix(out[:3], []int16{-30000, 5, 1}, []int16{-30000, 5})
	if out[0] != -32768 || out[1] != 10 || out[2] != 1 {
		t.Errorf("Mix = %v, want [-32768 10 1]", out[:3])
	}
}
