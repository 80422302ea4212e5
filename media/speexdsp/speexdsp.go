// Package speexdsp cancels the echo of the speaker in the microphone and
// suppresses the microphone's noise, with libspeexdsp (cgo, pkg-config
// speexdsp; Debian's libspeexdsp-dev), as Mumble does.
//
// Someone in a call who listens on laptop speakers rather than a headset
// sends everyone's voice back to them: the microphone hears the speaker. A
// Canceller takes the two streams, 48 kHz mono in 20 ms frames: Playback
// is given every frame the speaker plays (the far end), Capture every
// frame the microphone records, which it cleans in place in two stages:
//
//   - the echo canceller (speex_echo_cancellation, an MDF adaptive filter)
//     learns the path from the speaker to the microphone — the output and
//     input buffers, the air, the room's reflections — as a linear filter
//     over the last Tail of played sound, and subtracts its estimate of
//     the echo;
//   - the preprocessor (speex_preprocess_run), linked to the canceller with
//     SPEEX_PREPROCESS_SET_ECHO_STATE, removes what echo the filter left
//     (residual echo suppression: up to 40 dB, 15 dB while the near end
//     talks) and stationary noise such as fans and hiss (15 dB).
//
// Automatic gain control is off unless Config.AGC asks for it: between
// words it raises whatever is left — the room's noise, the residual echo —
// which is the opposite of what the two stages are for; it overrides the
// input volume the user set; and the levels Parley shows, and its talking
// indicator, would then measure the AGC rather than the voice.
//
// # Keeping the two streams in step
//
// Playback and Capture are called from different goroutines (a call's
// playout loop and its audio sender), each paced by its own device, and
// not in strict turns: blocking reads and writes come in bursts, and
// either goroutine may be held up. libspeexdsp's speex_echo_playback and
// speex_echo_capture pair the streams through a queue of two frames, and
// on every frame that finds it empty or full print a warning to stderr and
// slip the pairing by a frame. Each slip moves the echo a frame away from
// where the filter learned it, which costs seconds of echo while it learns
// again. So the Canceller keeps its own queue of played frames and gives
// speex_echo_cancellation each microphone frame with the played frame
// paired with it (Mumble, too, pairs the streams itself, in its
// Resynchronizer):
//
//   - The first microphone frame is paired with the frame played last
//     before it, with one more waiting as a spare. Its echo comes back
//     later by the output's and input's latency, inside the filter's Tail
//     (a played frame paired after its echo came back would leave nothing
//     to cancel).
//   - From then on every microphone frame takes the next played frame.
//   - A played frame that comes after its microphone frame (the playout
//     loop was held up) is late: the microphone frame goes through with
//     silence for it (Stats.Starved), and the late frame is thrown away
//     when it comes (Stats.Late), so that the pairing holds.
//   - Late again within 5 s, or a frame missing right after a late one
//     came: not a moment's jitter. The queue grows by the missing frame
//     instead, and the pairing moves by it.
//   - More waiting than in the first 5 s after pairing, all through 5 s:
//     the speaker's clock is faster than the microphone's, and the surplus
//     is dropped (Stats.Dropped).
//   - The streams are paired afresh, and the filter starts again, when the
//     queue fills up (maxQueue frames: the microphone stopped), when
//     nothing is played for maxDry frames (the speaker stopped), and on
//     Reset (Stats.Resyncs).
//
// # Limits
//
//   - The filter is linear: a speaker driven into distortion, or a device
//     that changes its volume by itself, leaves echo that only the
//     residual suppression hides.
//   - The echo must come back within Tail of the call of Playback: an
//     output that buffers more (some Bluetooth headsets) is not cancelled.
//   - It learns from the far end's speech: a few seconds at the start of a
//     call, and again whenever the echo moves — a device that underruns or
//     overruns, a held-up goroutine that makes the streams pair afresh.
//   - The microphone and the speaker must run on one clock (one sound
//     card, or a sound server that resamples both to its own): the filter
//     cannot follow an echo that drifts by a sample every few frames.
//   - The preprocessor delays the microphone by 10 ms.
//   - While both ends talk the suppression lowers the near end a little
//     where the echo is loud.
package speexdsp

/*
#cgo pkg-config: speexdsp
#include <speex/speex_echo.h>
#include <speex/speex_preprocess.h>
*/
import "C"

import (
	"errors"
	"fmt"
	"sync"
	"time"
	"unsafe"

	"github.com/parleychat/parley/media"
)

// DefaultTail is the echo the filter covers unless Config.Tail says
// otherwise. It holds the delay from Playback to the echo in Capture
// (80 ms with PortAudio through PulseAudio here; 100 to 200 ms is common on
// desktops, where sound servers buffer more) and 200 ms and more of the
// room's reverberation after it. It costs about 0.5 ms of CPU per frame.
const DefaultTail = 400 * time.Millisecond

// MaxTail is the longest Tail NewCanceller accepts.
const MaxTail = 2 * time.Second

// subFrame is the frame libspeexdsp works in: 10 ms, half of ours, as in
// Mumble. The preprocessor delays its output by one of them, and the
// filter adapts after each.
const subFrame = media.FrameSamples / 2

// Config configures a Canceller. The zero value is what a call wants.
type Config struct {
	// Tail is the longest echo the filter cancels, counted from the call
	// of Playback: the output's and input's delay plus the room's
	// reverberation. 0 means DefaultTail; it is rounded up to whole
	// frames. Longer costs CPU in proportion and learns more slowly.
	Tail time.Duration
	// LinearOnly leaves the preprocessor out: Capture gives the adaptive
	// filter's output, residual echo and noise included. It is for
	// measuring the filter.
	LinearOnly bool
	// NoDenoise turns the preprocessor's noise suppression off; it still
	// suppresses residual echo.
	NoDenoise bool
	// AGC turns on the preprocessor's automatic gain control (see the
	// package doc for why it is off by default).
	AGC bool
}

// Stats counts what a Canceller did.
type Stats struct {
	Frames  uint64 // microphone frames processed
	Starved uint64 // of them, processed with silence for their played frame, which was late or missing
	Played  uint64 // frames given to Playback
	Late    uint64 // played frames that came after their microphone frame, thrown away
	Dropped uint64 // played frames thrown away to shorten the queue: pairing afresh, or a faster speaker clock
	Resyncs uint64 // times the streams were paired afresh
	Queued  int    // played frames waiting now
}

// Canceller is an acoustic echo canceller with noise suppression for one
// microphone and one speaker. Playback and Capture may be called from
// different goroutines, each from one goroutine at a time; Reset, Stats
// and Close from any.
type Canceller struct {
	cfg  Config
	tail time.Duration

	// Lock order: mu before qmu. Playback takes only qmu, so it never
	// waits for Capture's processing.
	qmu    sync.Mutex // guards pair and closed
	pair   *pairing
	closed bool

	mu   sync.Mutex // guards the C state; held through Capture's processing
	echo *C.SpeexEchoState
	pre  *C.SpeexPreprocessState // nil with LinearOnly
	far  []int16                 // the played frame paired with the microphone frame
	out  []int16                 // the filter's output
}

// NewCanceller returns a Canceller for 48 kHz mono 20 ms frames. Close
// frees its C state.
func NewCanceller(cfg Config) (*Canceller, error) {
	if cfg.Tail == 0 {
		cfg.Tail = DefaultTail
	}
	if cfg.Tail < 0 || cfg.Tail > MaxTail {
		return nil, fmt.Errorf("speexdsp: tail %v is outside (0, %v]", cfg.Tail, MaxTail)
	}
	// MDF's filter is made of frame-sized blocks.
	blocks := int((cfg.Tail + media.FrameDuration - 1) / media.FrameDuration)
	c := &Canceller{
		cfg:  cfg,
		tail: time.Duration(blocks) * media.FrameDuration,
		pair: newPairing(),
		far:  make([]int16, media.FrameSamples),
		out:  make([]int16, media.FrameSamples),
	}
	c.echo = C.speex_echo_state_init(C.int(subFrame), C.int(blocks*media.FrameSamples))
	if c.echo == nil {
		return nil, errors.New("speexdsp: speex_echo_state_init failed")
	}
	rate := C.spx_int32_t(media.SampleRate)
	C.speex_echo_ctl(c.echo, C.SPEEX_ECHO_SET_SAMPLING_RATE, unsafe.Pointer(&rate))
	if err := c.newPreprocessor(); err != nil {
		C.speex_echo_state_destroy(c.echo)
		return nil, err
	}
	return c, nil
}

// newPreprocessor makes c.pre, unless the config leaves it out. Called
// with c.mu held or before c is shared.
func (c *Canceller) newPreprocessor() error {
	if c.cfg.LinearOnly {
		return nil
	}
	c.pre = C.speex_preprocess_state_init(C.int(subFrame), C.int(media.SampleRate))
	if c.pre == nil {
		return errors.New("speexdsp: speex_preprocess_state_init failed")
	}
	// The VAD and dereverberation are off from the start (setting the
	// VAD, even off, prints a warning).
	set := func(req C.int, on bool) {
		x := C.spx_int32_t(0)
		if on {
			x = 1
		}
		C.speex_preprocess_ctl(c.pre, req, unsafe.Pointer(&x))
	}
	set(C.SPEEX_PREPROCESS_SET_DENOISE, !c.cfg.NoDenoise)
	set(C.SPEEX_PREPROCESS_SET_AGC, c.cfg.AGC)
	C.speex_preprocess_ctl(c.pre, C.SPEEX_PREPROCESS_SET_ECHO_STATE, unsafe.Pointer(c.echo))
	return nil
}

// Tail returns the echo the filter covers: Config.Tail rounded up to whole
// frames.
func (c *Canceller) Tail() time.Duration { return c.tail }

// Playback takes a frame (media.FrameSamples long) as it is written to the
// speaker, silence included: the far end, whose echo Capture removes. It
// copies pcm and does not wait for Capture's processing. After Close it
// does nothing.
func (c *Canceller) Playback(pcm []int16) {
	checkLen("Playback", pcm)
	c.qmu.Lock()
	defer c.qmu.Unlock()
	if !c.closed {
		c.pair.played(pcm)
	}
}

// Capture removes the echo of what was played, and the noise, from a
// microphone frame (media.FrameSamples long), in place. It does not
// allocate. After Close it leaves pcm as it is.
func (c *Canceller) Capture(pcm []int16) {
	checkLen("Capture", pcm)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.echo == nil {
		return
	}
	c.qmu.Lock()
	repaired := c.pair.next(c.far)
	c.qmu.Unlock()
	if repaired {
		// What the filter learned is a frame or more off now.
		C.speex_echo_state_reset(c.echo)
	}
	for i := 0; i < media.FrameSamples; i += subFrame {
		C.speex_echo_cancellation(c.echo, i16(pcm[i:]), i16(c.far[i:]), i16(c.out[i:]))
		if c.pre != nil {
			C.speex_preprocess_run(c.pre, i16(c.out[i:]))
		}
	}
	copy(pcm, c.out)
}

// Reset forgets the echo path the filter learned and pairs the streams
// afresh: the speaker or the microphone changed.
func (c *Canceller) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.echo == nil {
		return
	}
	C.speex_echo_state_reset(c.echo)
	if c.pre != nil {
		// The noise it learned was the old microphone's.
		C.speex_preprocess_state_destroy(c.pre)
		c.pre = nil
		if err := c.newPreprocessor(); err != nil {
			c.pre = nil // go on with the filter alone
		}
	}
	c.qmu.Lock()
	c.pair.restart()
	c.qmu.Unlock()
}

// Stats returns the counters.
func (c *Canceller) Stats() Stats {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	st := c.pair.stats
	st.Queued = c.pair.n
	return st
}

// Close frees the C state. Capture and Playback do nothing afterwards. It
// is safe to call more than once.
func (c *Canceller) Close() error {
	c.qmu.Lock()
	c.closed = true
	c.qmu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pre != nil {
		C.speex_preprocess_state_destroy(c.pre)
		c.pre = nil
	}
	if c.echo != nil {
		C.speex_echo_state_destroy(c.echo)
		c.echo = nil
	}
	return nil
}

// impulsePeak returns where the learned echo path is strongest, in
// samples after the start of the played frame paired with a microphone
// frame. For tests: it is the delay the filter found.
func (c *Canceller) impulsePeak() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.echo == nil {
		return 0
	}
	var n C.spx_int32_t
	C.speex_echo_ctl(c.echo, C.SPEEX_ECHO_GET_IMPULSE_RESPONSE_SIZE, unsafe.Pointer(&n))
	ir := make([]C.spx_int32_t, n)
	C.speex_echo_ctl(c.echo, C.SPEEX_ECHO_GET_IMPULSE_RESPONSE, unsafe.Pointer(&ir[0]))
	peak, best := 0, C.spx_int32_t(0)
	for i, v := range ir {
		if v < 0 {
			v = -v
		}
		if v > best {
			peak, best = i, v
		}
	}
	return peak
}

func checkLen(op string, pcm []int16) {
	if len(pcm) != media.FrameSamples {
		panic(fmt.Sprintf("speexdsp: %s of %d samples, want %d", op, len(pcm), media.FrameSamples))
	}
}

func i16(s []int16) *C.spx_int16_t { return (*C.spx_int16_t)(unsafe.Pointer(&s[0])) }
