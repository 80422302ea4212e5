package audiodev

import (
	"errors"
	"math"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/media"
	"github.com/parleychat/parley/media/audio"
	"github.com/parleychat/parley/media/audiodev/pulsetest"
	"github.com/parleychat/parley/media/opus"
)

// pulse is the private PulseAudio daemon all tests here play through; nil
// when PulseAudio is not installed (the tests then fail: make deps installs it).
var pulse *pulsetest.Server

func TestMain(m *testing.M) { pulsetest.Main(m, &pulse, "A", "B") }

func needPulse(t *testing.T) {
	t.Helper()
	if pulse == nil {
		t.Fatal("PulseAudio is not installed: run make deps (make test does)")
	}
}

func TestDevices(t *testing.T) {
	needPulse(t)
	devs, err := Devices()
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]Device{}
	for _, d := range devs {
		have[d.Name] = d
	}
	for _, name := range []string{"pulse_A", "pulse_A_monitor", "pulse_B", "pulse_B_monitor", "default"} {
		if d, ok := have[name]; !ok || d.HostAPI != "ALSA" {
			t.Errorf("device %q missing or not ALSA (have %v)", name, devs)
		}
	}
}

func TestDeviceNotFound(t *testing.T) {
	needPulse(t)
	_, err := OpenCapture(Config{Device: "no such microphone"})
	if !errors.Is(err, ErrNoMicrophone) || !strings.Contains(err.Error(), `"pulse_A_monitor"`) {
		t.Errorf("OpenCapture(no such) error %v, want ErrNoMicrophone listing the devices", err)
	}
	_, err = OpenPlayback(Config{Device: "nothing"})
	if !errors.Is(err, ErrNoSpeaker) {
		t.Errorf("OpenPlayback(nothing) error %v, want ErrNoSpeaker", err)
	}
	_, err = OpenPlayback(Config{Device: "pulse_"}) // several match
	if err == nil || !strings.Contains(err.Error(), "several") {
		t.Errorf("OpenPlayback(pulse_) error %v, want an ambiguity error", err)
	}
	// The exact name wins over a longer one that contains it.
	p, err := OpenPlayback(Config{Device: "pulse_A"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.Name() != "pulse_A" {
		t.Errorf("OpenPlayback(pulse_A) opened %q", p.Name())
	}
}

// TestRefCount opens devices from several goroutines, closes them in
// another order, and checks that PortAudio is terminated at the end and
// initialised again by the next open.
func TestRefCount(t *testing.T) {
	needPulse(t)
	var wg sync.WaitGroup
	devs := make([]*Playback, 4)
	errs := make([]error, 4)
	for i := range devs {
		wg.Go(func() {
			devs[i], errs[i] = OpenPlayback(Config{Device: []string{"pulse_A", "pulse_B"}[i%2]})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
	}
	silence := make([]int16, media.FrameSamples)
	for _, i := range []int{2, 0, 3} {
		devs[i].Close()
		if err := devs[1].WriteFrame(silence); err != nil {
			t.Fatalf("write after closing device %d: %v", i, err)
		}
	}
	devs[1].Close()
	if err := devs[1].WriteFrame(silence); !errors.Is(err, ErrClosed) {
		t.Errorf("WriteFrame after Close = %v, want ErrClosed", err)
	}
	paMu.Lock()
	refs := paRefs
	paMu.Unlock()
	if refs != 0 {
		t.Errorf("PortAudio references after closing everything: %d", refs)
	}
	if _, err := Devices(); err != nil {
		t.Errorf("Devices after terminate: %v", err)
	}
}

// TestChain is the whole path for real: a 440 Hz tone played by Playback
// into sink A, captured from A's monitor by Capture, Opus-encoded and
// decoded, played into sink B, and B's monitor recorded by parecord.
func TestChain(t *testing.T) {
	needPulse(t)
	const frames = 150 // 3 s
	rec, err := pulse.Record("B", filepath.Join(t.TempDir(), "b.wav"))
	if err != nil {
		t.Fatal(err)
	}
	playA, err := OpenPlayback(Config{Device: pulse.PlaybackDevice("A")})
	if err != nil {
		t.Fatal(err)
	}
	capA, err := OpenCapture(Config{Device: pulse.MonitorDevice("A")})
	if err != nil {
		t.Fatal(err)
	}
	playB, err := OpenPlayback(Config{Device: pulse.PlaybackDevice("B")})
	if err != nil {
		t.Fatal(err)
	}
	enc, err := opus.NewEncoder(opus.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	dec, err := opus.NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	tone, err := audio.NewTone(audio.ToneConfig{Frequency: 440})
	if err != nil {
		t.Fatal(err)
	}
	defer tone.Close()

	var wg sync.WaitGroup
	var playErr error
	wg.Go(func() {
		pcm := make([]int16, media.FrameSamples)
		for range frames {
			if _, playErr = tone.ReadFrame(pcm); playErr != nil {
				return
			}
			if playErr = playA.WriteFrame(pcm); playErr != nil {
				return
			}
		}
		playErr = playA.Close()
	})
	pcm := make([]int16, media.FrameSamples)
	pkt := make([]byte, opus.MaxPacket)
	var captured []time.Time
	var levels []uint8
	for range frames + 25 {
		c, err := capA.ReadFrame(pcm)
		if err != nil {
			t.Fatal(err)
		}
		captured = append(captured, c)
		levels = append(levels, audio.Level(pcm))
		n, err := enc.Encode(pcm, pkt)
		if err != nil {
			t.Fatal(err)
		}
		if err := dec.Decode(pkt[:n], pcm); err != nil {
			t.Fatal(err)
		}
		if err := playB.WriteFrame(pcm); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if playErr != nil {
		t.Fatal(playErr)
	}
	if err := capA.Close(); err != nil {
		t.Error(err)
	}
	if err := playB.Close(); err != nil {
		t.Error(err)
	}
	path, err := rec.Stop()
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := audio.ReadWAVFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The part that is not silence is the tone.
	var loud []int16
	for i := 0; i+media.FrameSamples <= len(got); i += media.FrameSamples {
		if f := got[i : i+media.FrameSamples]; audio.Level(f) < 40 {
			loud = append(loud, f...)
		}
	}
	secs := float64(len(loud)) / media.SampleRate
	f := audio.DominantFrequency(loud, media.SampleRate)
	if secs < 2.5 || math.Abs(f-440) > 5 {
		t.Errorf("B recorded %.2f s of sound (of %.2f s) at %.2f Hz, want ~3 s at 440 ± 5 Hz", secs, float64(len(got))/media.SampleRate, f)
	}
	if l := audio.LevelDBov(loud); l < -20 {
		t.Errorf("recording level %.1f dBov, want the tone's -9", l)
	}
	// Capture times advance by 20 ms a frame (within the smoothing).
	for i := 1; i < len(captured); i++ {
		if d := captured[i].Sub(captured[i-1]); d < 15*time.Millisecond || d > 25*time.Millisecond {
			t.Errorf("capture time step %d = %v, want ~20ms", i, d)
			break
		}
	}
	t.Logf("chain: %.2f s of tone recorded at %.3f Hz, %.1f dBov; capture overflows %d, playback underflows A %d B %d",
		secs, f, audio.LevelDBov(loud), capA.Overflows(), playA.Underflows(), playB.Underflows())
}
