package audio

import (
	"errors"
	"math"
	"testing"
	"testing/synctest"
	"time"

	"github.com/parleychat/parley/media"
)

func TestTonePacing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tone, err := NewTone(ToneConfig{})
		if err != nil {
			t.Fatal(err)
		}
		defer tone.Close()
		pcm := make([]int16, media.FrameSamples)
		start := time.Now()
		var all []int16
		for i := range 10 {
			c, err := tone.ReadFrame(pcm)
			if err != nil {
				t.Fatal(err)
			}
			want := start.Add(time.Duration(i) * media.FrameDuration)
			if !c.Equal(want) || !time.Now().Equal(want) {
				t.Fatalf("frame %d: captured %v, returned %v, want both %v", i, c.Sub(start), time.Since(start), want.Sub(start))
			}
			all = append(all, pcm...)
		}
		// A late caller gets the frames due at once, on the same grid.
		time.Sleep(95 * time.Millisecond) // fake time: the bubble's clock
		late := time.Now()
		for i := 10; i < 15; i++ {
			c, err := tone.ReadFrame(pcm)
			if err != nil {
				t.Fatal(err)
			}
			if want := start.Add(time.Duration(i) * media.FrameDuration); !c.Equal(want) {
				t.Fatalf("late frame %d captured %v, want %v", i, c.Sub(start), want.Sub(start))
			}
			all = append(all, pcm...)
		}
		if d := time.Since(late); d != 5*time.Millisecond {
			t.Errorf("catching up took %v, want 5ms (frame 14 is due at 280ms)", d)
		}
		// Phase-continuous across frames: the spectrum has one clean line.
		if f := DominantFrequency(all, media.SampleRate); math.Abs(f-440) > 0.05 {
			t.Errorf("tone frequency %.3f, want 440", f)
		}
		// Peak 0.5 of full scale: RMS -9.03 dBov.
		if l := LevelDBov(all); math.Abs(l+9.03) > 0.05 {
			t.Errorf("tone level %.2f dBov, want -9.03", l)
		}
	})
}

func TestToneContinuity(t *testing.T) {
	tone, err := NewTone(ToneConfig{Frequency: 1234.5, Amplitude: 0.9})
	if err != nil {
		t.Fatal(err)
	}
	a := make([]int16, 2*media.FrameSamples)
	tone.Generate(a[:media.FrameSamples])
	tone.Generate(a[media.FrameSamples:])
	want := sine(len(a), 1234.5, media.SampleRate, 0.9*32767)
	for i := range a {
		if d := int(a[i]) - int(want[i]); d < -1 || d > 1 {
			t.Fatalf("sample %d = %d, want %d", i, a[i], want[i])
		}
	}
	for _, cfg := range []ToneConfig{{Frequency: 24000}, {Frequency: -1}, {Amplitude: 1.5}, {Frequency: math.NaN()}} {
		if _, err := NewTone(cfg); err == nil {
			t.Errorf("NewTone(%+v) succeeded, want an error", cfg)
		}
	}
}

func TestToneClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tone, _ := NewTone(ToneConfig{})
		pcm := make([]int16, media.FrameSamples)
		tone.ReadFrame(pcm)
		done := make(chan error)
		go func() {
			_, err := tone.ReadFrame(pcm)
			done <- err
		}()
		synctest.Wait()
		tone.Close()
		if err := <-done; !errors.Is(err, ErrClosed) {
			t.Errorf("ReadFrame during Close = %v, want ErrClosed", err)
		}
		if _, err := tone.ReadFrame(pcm); !errors.Is(err, ErrClosed) {
			t.Errorf("ReadFrame after Close = %v, want ErrClosed", err)
		}
	})
}
