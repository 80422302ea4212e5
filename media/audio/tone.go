package audio

import (
	"fmt"
	"math"
	"time"

	"github.com/parleychat/parley/media"
)

// ToneConfig configures a Tone.
type ToneConfig struct {
	// Frequency in Hz; 0 means 440. It must be below 24 kHz.
	Frequency float64
	// Amplitude is the peak as a fraction of full scale, in (0, 1];
	// 0 means 0.5 (about -9 dBov RMS).
	Amplitude float64
}

// Tone is a media.AudioSource of a sine wave, phase-continuous across
// frames. ReadFrame paces frames in real time; Generate fills frames
// without waiting (for tests and offline encoding). It is used from one
// goroutine, except Close, which may be called from any.
type Tone struct {
	step  float64 // phase advance per sample, in cycles
	amp   float64 // peak in sample units
	phase float64 // in cycles, [0, 1)
	pace  pacer
}

// NewTone returns a tone source.
func NewTone(cfg ToneConfig) (*Tone, error) {
	f, a := cfg.Frequency, cfg.Amplitude
	if f == 0 {
		f = 440
	}
	if a == 0 {
		a = 0.5
	}
	if !(f > 0 && f < media.SampleRate/2) {
		return nil, fmt.Errorf("audio: tone frequency %v Hz is outside (0, %d)", f, media.SampleRate/2)
	}
	if !(a > 0 && a <= 1) {
		return nil, fmt.Errorf("audio: tone amplitude %v is outside (0, 1]", a)
	}
	return &Tone{step: f / media.SampleRate, amp: a * 32767, pace: newPacer()}, nil
}

// ReadFrame waits until the next frame is due, fills pcm with it and
// returns its due time.
func (t *Tone) ReadFrame(pcm []int16) (time.Time, error) {
	if len(pcm) != media.FrameSamples {
		return time.Time{}, fmt.Errorf("audio: ReadFrame buffer has %d samples, want %d", len(pcm), media.FrameSamples)
	}
	due, err := t.pace.wait()
	if err != nil {
		return time.Time{}, err
	}
	t.Generate(pcm)
	return due, nil
}

// Generate fills pcm (any length) with the next samples of the tone,
// without waiting.
func (t *Tone) Generate(pcm []int16) {
	for i := range pcm {
		pcm[i] = int16(math.Round(t.amp * math.Sin(2*math.Pi*t.phase)))
		t.phase += t.step
		if t.phase >= 1 {
			t.phase--
		}
	}
}

// Close ends the source; a ReadFrame waiting for its frame returns
// ErrClosed.
func (t *Tone) Close() error {
	t.pace.close()
	return nil
}

var _ media.AudioSource = (*Tone)(nil)
