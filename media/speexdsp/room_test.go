package speexdsp

import (
	"fmt"
	"math"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/media"
	"github.com/parleychat/parley/media/audiodev"
	"github.com/parleychat/parley/media/audiodev/pulsetest"
)

// pulse is a private PulseAudio daemon with one null sink, "room", which
// stands for the acoustic room: what is played into it (the far end from
// the speaker, the near end's voice) is what its monitor, the microphone,
// records. nil when PulseAudio is not installed (the room tests then
// fail: make deps installs it).
var pulse *pulsetest.Server

func TestMain(m *testing.M) { pulsetest.Main(m, &pulse, "room") }

func needPulse(t *testing.T) {
	t.Helper()
	if pulse == nil {
		t.Fatal("PulseAudio is not installed: run make deps (make test does)")
	}
	if _, err := exec.LookPath("paplay"); err != nil {
		t.Fatal("paplay is not installed: run make deps (make test does)")
	}
}

// TestRoom is the canceller against real parts: PortAudio plays the far
// end (espeak-ng's speech) into the room and PortAudio records the room
// as the microphone, as in a call; the played frames go to Playback and
// the recorded ones through Capture. Three cancellers take the same
// frames: the one a call uses, its adaptive filter alone (LinearOnly), and
// the baseline, one never told what is played. After 5 s to learn, the
// far end alone for 5 s gives the echo return loss enhancement (ERLE:
// 10·log10 of the microphone's energy over the output's); then a second
// voice, the near end, talks into the room with paplay while the far end
// goes on, and must come through (its gain in the output, by least
// squares against what paplay played, within a few dB of its gain in the
// microphone); then the far end alone again must still be cancelled.
func TestRoom(t *testing.T) {
	needPulse(t)
	dir := t.TempDir()
	far, _ := speech(t, dir, "en-us", farText)
	near, nearWAV := speech(t, dir, "en-us+f3", nearText)
	const (
		learn    = 250 // frames the cancellers learn before they are measured (5 s)
		farAlone = 500 // frames of the far end alone, then the near end talks
		after    = 250 // frames measured after the near end (5 s)
		gap      = 50  // frames between the end of the near end and that measure
	)
	total := farAlone + len(near)/media.FrameSamples + gap + 50 + after // 50: paplay's start
	if len(far) < total*media.FrameSamples {
		t.Fatalf("the far end speaks %.1f s, the test needs %.1f s", float64(len(far))/media.SampleRate, float64(total)/50)
	}

	call := newCanceller(t, Config{})
	linear := newCanceller(t, Config{LinearOnly: true})
	deaf := newCanceller(t, Config{})
	speaker, err := audiodev.OpenPlayback(audiodev.Config{Device: pulse.PlaybackDevice("room")})
	if err != nil {
		t.Fatal(err)
	}
	defer speaker.Close()
	mic, err := audiodev.OpenCapture(audiodev.Config{Device: pulse.MonitorDevice("room")})
	if err != nil {
		t.Fatal(err)
	}
	defer mic.Close()

	// The far end, as the pipeline's playout loop plays it: each frame to
	// Playback, then to the speaker, whose blocking writes pace the loop.
	var (
		wg      sync.WaitGroup
		stop    = make(chan struct{})
		played  []time.Time // when each frame went to Playback
		playErr error
	)
	wg.Go(func() {
		frame := make([]int16, media.FrameSamples)
		for k := 0; ; k++ {
			select {
			case <-stop:
				return
			default:
			}
			clear(frame)
			if (k+1)*media.FrameSamples <= len(far) {
				copy(frame, far[k*media.FrameSamples:])
			}
			played = append(played, time.Now())
			call.Playback(frame)
			linear.Playback(frame)
			if playErr = speaker.WriteFrame(frame); playErr != nil {
				return
			}
		}
	})
	stopFar := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopFar()

	// The microphone, as the pipeline's audio sender reads it.
	var (
		raw, outCall, outLinear, outDeaf []int16
		captured                         []time.Time // when each frame was read
		paplay                           *exec.Cmd
		paplayErr                        strings.Builder
		busy                             time.Duration // in call.Capture
		peak                             int           // the filter's echo delay after the far end alone
	)
	pcm := make([]int16, media.FrameSamples)
	work := make([]int16, media.FrameSamples)
	for j := range total {
		if _, err := mic.ReadFrame(pcm); err != nil {
			t.Fatal(err)
		}
		captured = append(captured, time.Now())
		raw = append(raw, pcm...)
		copy(work, pcm)
		start := time.Now()
		call.Capture(work)
		busy += time.Since(start)
		outCall = append(outCall, work...)
		copy(work, pcm)
		linear.Capture(work)
		outLinear = append(outLinear, work...)
		copy(work, pcm)
		deaf.Capture(work)
		outDeaf = append(outDeaf, work...)
		if j == farAlone {
			peak = call.impulsePeak()
			paplay = exec.Command("paplay", "--device=room", nearWAV)
			paplay.Stderr = &paplayErr
			if err := paplay.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { paplay.Process.Kill(); paplay.Wait() }) // if the test fails first
		}
	}
	stopFar()
	if playErr != nil {
		t.Fatal(playErr)
	}
	if err := paplay.Wait(); err != nil {
		t.Fatalf("paplay: %v: %s", err, paplayErr.String())
	}

	fs := media.FrameSamples
	// Where the far end's echo is in the microphone's stream, and how long
	// after Playback it comes back: from the call of Playback to the read
	// of the microphone frame that holds the end of the frame's echo.
	// (The streams start at different times: the lag is not the delay.)
	lag, r := findLag(far[learn*fs:farAlone*fs], raw[learn*fs:farAlone*fs], -media.SampleRate/2, media.SampleRate/2)
	if r < 0.9 {
		t.Fatalf("the microphone's stream matches the far end at best with r = %.2f (lag %d): the room is not a straight path", r, lag)
	}
	var delays []time.Duration
	for k := learn; k < farAlone; k++ {
		if j := (k*fs + lag + fs - 1) / fs; j >= 0 && j < len(captured) {
			delays = append(delays, captured[j].Sub(played[k]))
		}
	}
	slices.Sort(delays)
	delay50, delay95 := delays[len(delays)/2], delays[len(delays)*95/100]

	// The far end alone, once learnt.
	a, b := learn*fs, farAlone*fs
	erleCall := ratioDB(energy(raw[a:b]), energy(outCall[a:b]))
	erleLinear := ratioDB(energy(raw[a:b]), energy(outLinear[a:b]))
	erleDeaf := ratioDB(energy(raw[a:b]), energy(outDeaf[a:b]))
	echoReturn := ratioDB(energy(raw[a:b]), energy(far[a-lag:b-lag]))

	// The near end: where it is in the microphone's stream, and its gain
	// there and in each output.
	nearAt, rNear := findLag(near, raw, farAlone*fs-media.SampleRate/5, farAlone*fs+3*media.SampleRate)
	gMic := gain(near, raw, nearAt)
	// The preprocessor delays its output by 10 ms: each output is matched
	// at its own lag.
	callAt, _ := findLag(near, outCall, nearAt-fs, nearAt+fs)
	linearAt, _ := findLag(near, outLinear, nearAt-fs, nearAt+fs)
	keptCall := 20 * math.Log10(math.Abs(gain(near, outCall, callAt)/gMic))
	keptLinear := 20 * math.Log10(math.Abs(gain(near, outLinear, linearAt)/gMic))
	nearEcho := ratioDB(gMic*gMic*energy(near), energy(raw[nearAt:nearAt+len(near)])-gMic*gMic*energy(near))
	// What is left of the echo while both talk: each output less its near
	// end (a lower bound of the ERLE then: the suppression's changes to
	// the near end count as echo).
	residual := func(out []int16, at int) float64 {
		g := gain(near, out, at)
		var e float64
		for i, v := range near {
			d := float64(out[at+i]) - g*float64(v)
			e += d * d
		}
		return e
	}
	erleBoth := ratioDB(residual(raw, nearAt), residual(outCall, callAt))

	// The far end alone again.
	c := nearAt + len(near) + gap*fs
	if total*fs-c < after*fs*4/5 {
		t.Fatalf("the near end ended at %.1f s, too late to measure after it", float64(nearAt+len(near))/media.SampleRate)
	}
	erleAfter := ratioDB(energy(raw[c:]), energy(outCall[c:]))
	erleLinearAfter := ratioDB(energy(raw[c:]), energy(outLinear[c:]))

	var trace strings.Builder
	for s := 0; (s+1)*media.SampleRate <= len(raw); s++ {
		x, y := s*media.SampleRate, (s+1)*media.SampleRate
		fmt.Fprintf(&trace, " %.0f", ratioDB(energy(raw[x:y]), energy(outCall[x:y])))
	}
	t.Logf("echo: the far end comes back at %.1f dB; from Playback to the read of the microphone frame that holds the end of its echo: p50 %v, p95 %v; the filter found the echo %.1f ms after its paired frame (tail %v)",
		echoReturn, delay50.Round(100*time.Microsecond), delay95.Round(100*time.Microsecond), float64(peak)/48, call.Tail())
	t.Logf("far end alone (%.0f-%.0f s): ERLE %.1f dB with the canceller, %.1f dB its filter alone, %.1f dB without the far end (the baseline)",
		float64(a)/media.SampleRate, float64(b)/media.SampleRate, erleCall, erleLinear, erleDeaf)
	t.Logf("both talk (%.1f-%.1f s, near end %.1f dB re the echo, found with r = %.2f): the near end comes through at %+.1f dB with the canceller (%.1f ms later), %+.1f dB its filter alone; the echo is %.1f dB lower (at least)",
		float64(nearAt)/media.SampleRate, float64(nearAt+len(near))/media.SampleRate, nearEcho, rNear, keptCall, float64(callAt-nearAt)/48, keptLinear, erleBoth)
	t.Logf("far end alone again (from %.1f s): ERLE %.1f dB, %.1f dB its filter alone", float64(c)/media.SampleRate, erleAfter, erleLinearAfter)
	t.Logf("ERLE per second:%s", trace.String())
	t.Logf("Capture: %v per frame; call %+v; speaker underflows %d, microphone overflows %d",
		(busy / time.Duration(total)).Round(time.Microsecond), call.Stats(), speaker.Underflows(), mic.Overflows())

	if math.Abs(echoReturn) > 3 {
		t.Errorf("the echo comes back at %.1f dB re the far end, want about 0 (the room is a null sink)", echoReturn)
	}
	if math.Abs(erleDeaf) > 3 {
		t.Errorf("without the far end, ERLE = %.1f dB, want about 0: the baseline passes the echo", erleDeaf)
	}
	if erleCall < 25 {
		t.Errorf("far end alone: ERLE = %.1f dB, want >= 25", erleCall)
	}
	if erleLinear < 12 {
		t.Errorf("far end alone: the filter's ERLE = %.1f dB, want >= 12", erleLinear)
	}
	if keptCall < -6 || keptCall > 3 {
		t.Errorf("both talk: the near end comes through at %+.1f dB, want within -6 to +3 dB", keptCall)
	}
	if erleAfter < 20 {
		t.Errorf("far end alone after both talked: ERLE = %.1f dB, want >= 20", erleAfter)
	}
	if filterDelay := time.Duration(peak) * time.Second / media.SampleRate; delay95 >= call.Tail() || filterDelay >= call.Tail()-100*time.Millisecond {
		t.Errorf("the echo comes back %v after Playback (p95), the filter found it %v after its frame: want both well within the tail %v", delay95, filterDelay, call.Tail())
	}
}

func newCanceller(t testing.TB, cfg Config) *Canceller {
	t.Helper()
	c, err := NewCanceller(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
