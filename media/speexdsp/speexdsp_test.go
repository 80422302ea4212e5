package speexdsp

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/media"
)

// world is an echo path made of counts, without devices: the far end is
// white noise, and what is played in tick k is heard by the microphone
// delay samples later at half the level, with a reflection 5 ms after it.
// Ticks are 20 ms; events within and across ticks are reordered to stand
// for the jitter of the playout loop and the audio sender.
type world struct {
	far   []int16 // the far end, frame by frame
	air   []int16 // what the microphone hears, by sample since tick 0
	delay int
}

func newWorld(frames, delay int) *world {
	rng := rand.New(rand.NewPCG(1, 2))
	w := &world{far: make([]int16, (frames+10)*media.FrameSamples), air: make([]int16, (frames+50)*media.FrameSamples), delay: delay}
	for i := range w.far {
		w.far[i] = int16(rng.NormFloat64() * 3000)
	}
	return w
}

// play puts far-end frame k, played from tick on, into the air.
func (w *world) play(k int, tick float64) {
	fs := media.FrameSamples
	start := int(tick*float64(fs)) + w.delay
	for i, v := range w.far[k*fs : (k+1)*fs] {
		at := start + i
		w.air[at] += v / 2
		w.air[at+240] += v / 8
	}
}

// event is a call of Playback or Capture at a time, in ticks.
type event struct {
	at      float64
	capture bool
	tick    int     // the frame's number in its stream
	sounds  float64 // when a played frame sounds, in ticks
}

// run plays the events in time order through c and returns the energy of
// the microphone and of the output over the last second.
func (w *world) run(t *testing.T, c *Canceller, events []event) (in, out float64) {
	t.Helper()
	slices.SortStableFunc(events, func(a, b event) int {
		switch {
		case a.at < b.at:
			return -1
		case a.at > b.at:
			return 1
		}
		return 0
	})
	fs := media.FrameSamples
	last := 0
	for _, e := range events {
		last = max(last, e.tick)
	}
	k := 0 // the next far-end frame
	pcm := make([]int16, fs)
	for _, e := range events {
		if !e.capture {
			w.play(k, e.sounds)
			c.Playback(w.far[k*fs : (k+1)*fs])
			k++
			continue
		}
		copy(pcm, w.air[e.tick*fs:])
		if e.tick > last-50 {
			in += energy(pcm)
		}
		c.Capture(pcm)
		if e.tick > last-50 {
			out += energy(pcm)
		}
	}
	return in, out
}

// TestPairing checks that the canceller keeps playback and microphone
// frames paired through the jitter of the two goroutines — bursts, a late
// speaker, a late microphone — and pairs them afresh when one of them
// stops.
func TestPairing(t *testing.T) {
	const ticks = 1000 // 20 s
	every := func(k int) float64 { return float64(k) }
	half := func(k int) float64 { return float64(k) + 0.5 }
	for _, tc := range []struct {
		name              string
		playAt, captureAt func(tick int) float64 // when; -1: not at all
		sounds            func(tick int) float64 // when a played frame sounds (default: its tick)
		resyncs           uint64
		late              bool // some played frames came late, as many as starved microphone frames
		maxStarved        uint64
		dropped           bool // frames were dropped after the first pairing
		drift             bool // the echo drifts: not cancelled
	}{
		{name: "steady", playAt: every, captureAt: half, resyncs: 1},
		{name: "bursts", resyncs: 1, maxStarved: 10,
			// The speaker's writes come three at a time, the microphone's
			// reads two at a time: the queue's depth swings by 3 frames.
			playAt:    func(k int) float64 { return float64(k - k%3 + 2) },
			captureAt: func(k int) float64 { return float64(k-k%2+1) + 0.5 }},
		{name: "late speaker", resyncs: 1, late: true, maxStarved: 3,
			// The playout loop is held up by 50 ms once.
			playAt: func(k int) float64 {
				if k >= 500 && k < 503 {
					return 502.6
				}
				return float64(k)
			},
			captureAt: half},
		{name: "late speaker often", resyncs: 1, maxStarved: 10,
			// The playout loop is held up by 50 ms every 800 ms: after the
			// second time the queue holds enough for it.
			playAt: func(k int) float64 {
				if k%40 >= 7 && k%40 < 10 {
					return float64(k-k%40) + 9.6
				}
				return float64(k)
			},
			captureAt: half},
		{name: "late microphone", resyncs: 1,
			// The audio sender is held up by 100 ms every 800 ms.
			playAt: every,
			captureAt: func(k int) float64 {
				if k%40 >= 10 && k%40 < 15 {
					return float64(k-k%40) + 15.2
				}
				return float64(k) + 0.5
			}},
		{name: "speaker stops", resyncs: 2, maxStarved: 20,
			// 400 ms with nothing played (the speaker switched).
			playAt: func(k int) float64 {
				if k >= 400 && k < 420 {
					return -1
				}
				return float64(k)
			},
			captureAt: half},
		// The two clocks differ by 0.3 %: every 6.7 s the speaker plays a
		// frame more, or less, than the microphone records. The echo
		// drifts through the filter, which cannot follow (see the package
		// doc): only the queue is checked.
		{name: "speaker clock faster", resyncs: 1, dropped: true, drift: true,
			playAt:    func(k int) float64 { return float64(k) * 0.997 },
			sounds:    func(k int) float64 { return float64(k) * 0.997 },
			captureAt: half},
		{name: "microphone clock faster", resyncs: 1, maxStarved: 6, drift: true,
			playAt:    func(k int) float64 { return float64(k) * 1.003 },
			sounds:    func(k int) float64 { return float64(k) * 1.003 },
			captureAt: half},
		{name: "microphone stops", resyncs: 2, dropped: true,
			playAt: every,
			captureAt: func(k int) float64 {
				if k >= 400 && k < 420 {
					return -1
				}
				return float64(k) + 0.5
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(ticks, 4000)
			var events []event
			for k := range ticks + 10 {
				if at := tc.playAt(k); at >= 0 && at < ticks {
					sounds := float64(k)
					if tc.sounds != nil {
						sounds = tc.sounds(k)
					}
					events = append(events, event{at: at, tick: k, sounds: sounds})
				}
				if at := tc.captureAt(k); at >= 0 && at < ticks {
					events = append(events, event{at: at, tick: k, capture: true})
				}
			}
			c := newCanceller(t, Config{LinearOnly: true})
			if st := c.Stats(); st != (Stats{}) {
				t.Errorf("Stats before use = %+v, want zero", st)
			}
			in, out := w.run(t, c, events)
			st := c.Stats()
			erle := ratioDB(in, out)
			t.Logf("ERLE %.1f dB in the last second; %+v", erle, st)
			if !tc.drift && erle < 20 {
				t.Errorf("ERLE = %.1f dB in the last second, want >= 20", erle)
			}
			if st.Resyncs != tc.resyncs {
				t.Errorf("Resyncs = %d, want %d", st.Resyncs, tc.resyncs)
			}
			if st.Starved > tc.maxStarved {
				t.Errorf("Starved = %d, want at most %d", st.Starved, tc.maxStarved)
			}
			if st.Queued > 1+spareFrames+1 {
				t.Errorf("Queued = %d at the end, want at most %d", st.Queued, 2+spareFrames)
			}
			// At the first pairing at most one frame waits too many.
			if tc.dropped != (st.Dropped > 1) {
				t.Errorf("Dropped = %d, want more than 1: %v", st.Dropped, tc.dropped)
			}
			if tc.late && (st.Late == 0 || st.Late != st.Starved) {
				t.Errorf("Starved %d, Late %d: want as many late as starved", st.Starved, st.Late)
			}
		})
	}
}

// TestReset checks that Reset forgets the echo path: right after it, the
// echo passes; then the filter learns again.
func TestReset(t *testing.T) {
	w := newWorld(1000, 4000)
	c := newCanceller(t, Config{LinearOnly: true})
	fs := media.FrameSamples
	pcm := make([]int16, fs)
	frameERLE := func(k int) float64 {
		w.play(k, float64(k))
		c.Playback(w.far[k*fs : (k+1)*fs])
		copy(pcm, w.air[k*fs:])
		in := energy(pcm)
		c.Capture(pcm)
		return ratioDB(in, energy(pcm))
	}
	for k := range 500 {
		frameERLE(k)
	}
	learnt := frameERLE(500)
	c.Reset()
	forgot := frameERLE(501)
	var again float64
	for k := 502; k < 1000; k++ {
		again = frameERLE(k)
	}
	t.Logf("ERLE before Reset %.1f dB, right after %.1f dB, 10 s later %.1f dB; %+v", learnt, forgot, again, c.Stats())
	if learnt < 20 || forgot > 3 || again < 20 {
		t.Errorf("ERLE before Reset %.1f dB, right after %.1f dB, 10 s later %.1f dB: want >= 20, <= 3, >= 20", learnt, forgot, again)
	}
	if st := c.Stats(); st.Resyncs != 2 {
		t.Errorf("Resyncs = %d, want 2 (the start and Reset)", st.Resyncs)
	}
}

func TestConfig(t *testing.T) {
	for _, tc := range []struct {
		tail, want time.Duration
	}{
		{0, DefaultTail},
		{time.Millisecond, 20 * time.Millisecond},
		{250 * time.Millisecond, 260 * time.Millisecond},
		{MaxTail, MaxTail},
	} {
		c, err := NewCanceller(Config{Tail: tc.tail})
		if err != nil {
			t.Fatalf("NewCanceller(Tail %v) error %v", tc.tail, err)
		}
		if c.Tail() != tc.want {
			t.Errorf("NewCanceller(Tail %v).Tail() = %v, want %v", tc.tail, c.Tail(), tc.want)
		}
		c.Close()
	}
	for _, tail := range []time.Duration{-time.Millisecond, MaxTail + time.Millisecond} {
		if c, err := NewCanceller(Config{Tail: tail}); err == nil {
			c.Close()
			t.Errorf("NewCanceller(Tail %v) succeeded, want an error", tail)
		}
	}
	c := newCanceller(t, Config{})
	for _, f := range []func([]int16){c.Playback, c.Capture} {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("a frame of 480 samples did not panic")
				}
			}()
			f(make([]int16, 480))
		}()
	}
}

// TestClose checks that Close frees the C state — the resident memory
// does not grow over many cancellers (each holds about 1 MB) — and that
// the methods are safe after it, and Close with the others running.
func TestClose(t *testing.T) {
	pcm := make([]int16, media.FrameSamples)
	cycle := func() {
		c, err := NewCanceller(Config{})
		if err != nil {
			t.Fatal(err)
		}
		c.Playback(pcm)
		c.Capture(pcm)
		c.Reset()
		c.Capture(pcm)
		c.Close()
	}
	for range 20 {
		cycle()
	}
	before := residentBytes(t)
	for range 300 {
		cycle()
	}
	grew := residentBytes(t) - before
	t.Logf("resident memory grew by %.1f MB over 300 cancellers", float64(grew)/(1<<20))
	if grew > 30<<20 {
		t.Errorf("resident memory grew by %.1f MB over 300 cancellers: Close leaks", float64(grew)/(1<<20))
	}

	c := newCanceller(t, Config{})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for _, f := range []func([]int16){c.Playback, c.Capture} {
		wg.Go(func() {
			buf := make([]int16, media.FrameSamples)
			for {
				select {
				case <-stop:
					return
				default:
					f(buf)
				}
			}
		})
	}
	for range 50 {
		c.Capture(pcm)
	}
	c.Close()
	c.Close()
	close(stop)
	wg.Wait()
	for i := range pcm {
		pcm[i] = int16(i)
	}
	want := slices.Clone(pcm)
	c.Playback(pcm)
	c.Capture(pcm)
	c.Reset()
	if !slices.Equal(pcm, want) {
		t.Error("Capture after Close changed the frame")
	}
}

// residentBytes returns the process's resident memory (Linux).
func residentBytes(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Fatal(err)
	}
	f := bytes.Fields(b)
	pages, err := strconv.ParseInt(string(f[1]), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return pages * int64(os.Getpagesize())
}

func TestNoAllocs(t *testing.T) {
	c := newCanceller(t, Config{})
	pcm := make([]int16, media.FrameSamples)
	if n := testing.AllocsPerRun(100, func() {
		c.Playback(pcm)
		c.Capture(pcm)
	}); n != 0 {
		t.Errorf("Playback and Capture allocate %.1f times a frame, want 0", n)
	}
}

// BenchmarkFrame is the CPU a call spends on a frame: Playback and Capture
// of 20 ms of speech-loud noise with an echo, at each tail.
func BenchmarkFrame(b *testing.B) {
	for _, tail := range []time.Duration{200 * time.Millisecond, DefaultTail, time.Second} {
		for _, linear := range []bool{false, true} {
			name := fmt.Sprintf("tail=%v", tail)
			if linear {
				name += "/linear"
			}
			b.Run(name, func(b *testing.B) {
				w := newWorld(500, 4000)
				for k := range 450 {
					w.play(k, float64(k))
				}
				c, err := NewCanceller(Config{Tail: tail, LinearOnly: linear})
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				fs := media.FrameSamples
				pcm := make([]int16, fs)
				b.ReportAllocs()
				b.SetBytes(2 * media.FrameSamples)
				k := 0
				for b.Loop() {
					c.Playback(w.far[k*fs : (k+1)*fs])
					copy(pcm, w.air[k*fs:])
					c.Capture(pcm)
					k = (k + 1) % 450
				}
			})
		}
	}
}
