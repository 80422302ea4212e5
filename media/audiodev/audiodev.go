// Package audiodev captures and plays audio with PortAudio (cgo,
// github.com/gordonklaus/portaudio): 48 kHz mono int16 in 20 ms frames,
// through PortAudio's blocking read and write calls.
//
// Devices are picked by name: "" is the system default, anything else a
// PortAudio device name, matched exactly or else as a unique
// case-insensitive substring; the error for a name that matches nothing
// lists the devices there are. PortAudio is initialised when the first
// device opens (or Devices runs) and terminated when the last closes, so
// the device list is read afresh whenever nothing is open. A device that
// supports only stereo is opened in stereo and converted.
package audiodev

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/gordonklaus/portaudio"
	"github.com/parleychat/parley/media"
)

// Errors for a missing device; the errors Open returns wrap them.
var (
	ErrNoMicrophone = errors.New("audiodev: no microphone found")
	ErrNoSpeaker    = errors.New("audiodev: no speaker found")
	ErrClosed       = errors.New("audiodev: device closed")
)

// PortAudio's Initialize and Terminate are counted by PortAudio itself, but
// the Go binding's own count is not guarded; paMu serialises them and
// everything that enumerates devices.
var (
	paMu   sync.Mutex
	paRefs int
)

func acquire() error {
	paMu.Lock()
	defer paMu.Unlock()
	if paRefs == 0 {
		if err := initQuietly(portaudio.Initialize); err != nil {
			return fmt.Errorf("audiodev: initialise PortAudio: %w", err)
		}
		skipLowStreamIDs()
	}
	paRefs++
	return nil
}

// The binding numbers its streams 0, 1, 2, ... and passes the number to
// Pa_OpenStream as the callback's user-data pointer, unsafe.Pointer(id).
// Under -race (which turns on checkptr) a pointer in 1..4095 aborts the
// program ("pointer arithmetic computed bad pointer value"). Blocking
// streams never use the user data, so the number's value does not matter:
// skipLowStreamIDs uses up the first 4096 numbers once per process by
// asking for streams without buffers, which the binding refuses after
// taking a number and before calling PortAudio. Called with paMu held,
// PortAudio initialised.
func skipLowStreamIDs() {
	lowIDs.Do(func() {
		for range 4096 {
			if s, err := portaudio.OpenStream(portaudio.StreamParameters{}); err == nil {
				s.Close()
			}
		}
	})
}

var lowIDs sync.Once

func release() {
	paMu.Lock()
	defer paMu.Unlock()
	paRefs--
	if paRefs == 0 {
		portaudio.Terminate()
	}
}

// Device describes an audio device PortAudio offers.
type Device struct {
	Name          string
	HostAPI       string
	Inputs        int // most input channels; 0 for an output-only device
	Outputs       int // most output channels
	SampleRate    float64
	DefaultInput  bool
	DefaultOutput bool
}

// Devices lists the audio devices.
func Devices() ([]Device, error) {
	if err := acquire(); err != nil {
		return nil, err
	}
	defer release()
	paMu.Lock()
	defer paMu.Unlock()
	return devicesLocked()
}

func devicesLocked() ([]Device, error) {
	devs, err := portaudio.Devices()
	if err != nil {
		return nil, fmt.Errorf("audiodev: list devices: %w", err)
	}
	var defIn, defOut int = -1, -1
	if d, err := portaudio.DefaultInputDevice(); err == nil && d != nil {
		defIn = d.Index
	}
	if d, err := portaudio.DefaultOutputDevice(); err == nil && d != nil {
		defOut = d.Index
	}
	out := make([]Device, 0, len(devs))
	for _, d := range devs {
		api := ""
		if d.HostApi != nil {
			api = d.HostApi.Name
		}
		out = append(out, Device{
			Name: d.Name, HostAPI: api,
			Inputs: d.MaxInputChannels, Outputs: d.MaxOutputChannels,
			SampleRate:   d.DefaultSampleRate,
			DefaultInput: d.Index == defIn, DefaultOutput: d.Index == defOut,
		})
	}
	return out, nil
}

// find picks the device for name; input says which direction.
func find(name string, input bool) (*portaudio.DeviceInfo, error) {
	paMu.Lock()
	defer paMu.Unlock()
	missing, what := ErrNoSpeaker, "speaker"
	if input {
		missing, what = ErrNoMicrophone, "microphone"
	}
	devs, err := portaudio.Devices()
	if err != nil {
		return nil, fmt.Errorf("audiodev: list devices: %w", err)
	}
	usable := func(d *portaudio.DeviceInfo) bool {
		if input {
			return d.MaxInputChannels > 0
		}
		return d.MaxOutputChannels > 0
	}
	var names []string
	for _, d := range devs {
		if usable(d) {
			names = append(names, fmt.Sprintf("%q", d.Name))
		}
	}
	available := "none"
	if len(names) > 0 {
		available = strings.Join(names, ", ")
	}
	if name == "" {
		var d *portaudio.DeviceInfo
		if input {
			d, err = portaudio.DefaultInputDevice()
		} else {
			d, err = portaudio.DefaultOutputDevice()
		}
		if err != nil || d == nil || !usable(d) {
			return nil, fmt.Errorf("%w (no default %s; available: %s)", missing, what, available)
		}
		return d, nil
	}
	var matches []*portaudio.DeviceInfo
	for _, d := range devs {
		if usable(d) && d.Name == name {
			return d, nil
		}
		if usable(d) && strings.Contains(strings.ToLower(d.Name), strings.ToLower(name)) {
			matches = append(matches, d)
		}
	}
	switch len(matches) {
	case 1:
		return matches[0], nil
	case 0:
		return nil, fmt.Errorf("%w: none matches %q; available: %s", missing, name, available)
	}
	var amb []string
	for _, d := range matches {
		amb = append(amb, fmt.Sprintf("%q", d.Name))
	}
	return nil, fmt.Errorf("audiodev: %s name %q matches several devices: %s", what, name, strings.Join(amb, ", "))
}

// Config picks a device and its latency. The zero value is the default
// device at its default low latency.
type Config struct {
	// Device is a PortAudio device name, or a unique substring of one;
	// "" means the system default.
	Device string
	// Latency is the suggested latency; 0 means the device's default
	// low latency, but at least 20 ms.
	Latency time.Duration
}

// stream is what Capture and Playback share.
type stream struct {
	mu       sync.Mutex // held during Read/Write, so Close waits for them
	s        *portaudio.Stream
	buf      []int16 // interleaved, bound to the stream
	channels int
	name     string
	closed   bool
}

// open opens a blocking stream on the device for cfg.
func open(cfg Config, input bool) (*stream, error) {
	if err := acquire(); err != nil {
		return nil, err
	}
	d, err := find(cfg.Device, input)
	if err != nil {
		release()
		return nil, err
	}
	lat := cfg.Latency
	if lat == 0 {
		lat = d.DefaultLowOutputLatency
		if input {
			lat = d.DefaultLowInputLatency
		}
		lat = max(lat, media.FrameDuration)
	}
	var last error
	for _, ch := range []int{1, 2} {
		p := portaudio.StreamParameters{SampleRate: media.SampleRate, FramesPerBuffer: media.FrameSamples}
		dp := portaudio.StreamDeviceParameters{Device: d, Channels: ch, Latency: lat}
		if input {
			p.Input = dp
		} else {
			p.Output = dp
		}
		st := &stream{buf: make([]int16, media.FrameSamples*ch), channels: ch, name: d.Name}
		paMu.Lock()
		st.s, err = portaudio.OpenStream(p, &st.buf)
		paMu.Unlock()
		if err != nil {
			last = err
			continue
		}
		if err := st.s.Start(); err != nil {
			st.s.Close()
			last = err
			continue
		}
		return st, nil
	}
	release()
	return nil, fmt.Errorf("audiodev: open %q at 48 kHz: %w", d.Name, last)
}

func (st *stream) close() error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed {
		return nil
	}
	st.closed = true
	err := st.s.Stop()
	if cerr := st.s.Close(); err == nil {
		err = cerr
	}
	release()
	return err
}

// Capture is a media.AudioSource recording from an input device. ReadFrame
// is used from one goroutine; Close may be called from any and waits for a
// ReadFrame in progress (at most a frame) to finish.
type Capture struct {
	st      *stream
	latency time.Duration // the stream's input latency
	// Capture times: frame n was captured at base + n×20 ms. base is the
	// earliest estimate seen (scheduling only makes an estimate late),
	// taken afresh from the last window every windowFrames so that it
	// follows the drift between the device's clock and the system's.
	n         int64
	base      time.Time
	windowMin time.Time
	overflows int
}

const windowFrames = 250 // 5 s

// OpenCapture opens an input device for 48 kHz mono capture.
func OpenCapture(cfg Config) (*Capture, error) {
	st, err := open(cfg, true)
	if err != nil {
		return nil, err
	}
	c := &Capture{st: st}
	if info := st.s.Info(); info != nil {
		c.latency = info.InputLatency
	}
	return c, nil
}

// Name returns the PortAudio name of the device.
func (c *Capture) Name() string { return c.st.name }

// IsMicrophone reports true: a Capture records an input device, which may
// hear the speaker (media.Microphone). (A monitor of an output, as the
// tests record, says so too.)
func (c *Capture) IsMicrophone() bool { return true }

// Overflows returns how many reads found that input had been lost (the
// reader was too slow).
func (c *Capture) Overflows() int { return c.overflows }

// ReadFrame blocks until the next frame is recorded, fills pcm and returns
// the capture time of its first sample: the blocking API gives no ADC
// time, so it is the time the read returned, less the stream's input
// latency, the input still buffered, and the frame's own 20 ms, smoothed
// as described on Capture.
func (c *Capture) ReadFrame(pcm []int16) (time.Time, error) {
	if len(pcm) != media.FrameSamples {
		return time.Time{}, fmt.Errorf("audiodev: ReadFrame buffer has %d samples, want %d", len(pcm), media.FrameSamples)
	}
	st := c.st
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed {
		return time.Time{}, ErrClosed
	}
	err := st.s.Read()
	now := time.Now()
	if errors.Is(err, portaudio.InputOverflowed) {
		c.overflows++
		err = nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("audiodev: read %q: %w", st.name, err)
	}
	var buffered time.Duration
	if n, err := st.s.AvailableToRead(); err == nil {
		buffered = time.Duration(n) * time.Second / media.SampleRate
	}
	if st.channels == 1 {
		copy(pcm, st.buf)
	} else {
		for i := range pcm {
			pcm[i] = int16((int32(st.buf[2*i]) + int32(st.buf[2*i+1])) / 2)
		}
	}
	estimate := now.Add(-c.latency - buffered - media.FrameDuration)
	base := estimate.Add(-time.Duration(c.n) * media.FrameDuration)
	switch {
	case c.n == 0:
		c.base, c.windowMin = base, base
	case c.n%windowFrames == 0:
		c.base = earliest(c.windowMin, base) // the last window's earliest
		c.windowMin = base
	default:
		c.base = earliest(c.base, base)
		c.windowMin = earliest(c.windowMin, base)
	}
	captured := c.base.Add(time.Duration(c.n) * media.FrameDuration)
	c.n++
	return captured, nil
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// Close stops and closes the stream.
func (c *Capture) Close() error { return c.st.close() }

// Playback is a media.AudioSink playing to an output device. WriteFrame is
// used from one goroutine; Close may be called from any, waits for a
// WriteFrame in progress, and lets what was written play out.
type Playback struct {
	st         *stream
	underflows int
}

// OpenPlayback opens an output device for 48 kHz mono playback.
func OpenPlayback(cfg Config) (*Playback, error) {
	st, err := open(cfg, false)
	if err != nil {
		return nil, err
	}
	return &Playback{st: st}, nil
}

// Name returns the PortAudio name of the device.
func (p *Playback) Name() string { return p.st.name }

// Underflows returns how many writes found the device had run dry (the
// writer was too slow; the gap played as silence).
func (p *Playback) Underflows() int { return p.underflows }

// Latency returns the stream's output latency.
func (p *Playback) Latency() time.Duration {
	if info := p.st.s.Info(); info != nil {
		return info.OutputLatency
	}
	return 0
}

// WriteFrame queues pcm for playback, blocking while the device's buffer
// is full.
func (p *Playback) WriteFrame(pcm []int16) error {
	if len(pcm) != media.FrameSamples {
		return fmt.Errorf("audiodev: WriteFrame of %d samples, want %d", len(pcm), media.FrameSamples)
	}
	st := p.st
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed {
		return ErrClosed
	}
	if st.channels == 1 {
		copy(st.buf, pcm)
	} else {
		for i, v := range pcm {
			st.buf[2*i], st.buf[2*i+1] = v, v
		}
	}
	err := st.s.Write()
	if errors.Is(err, portaudio.OutputUnderflowed) {
		p.underflows++
		err = nil
	}
	if err != nil {
		return fmt.Errorf("audiodev: write %q: %w", st.name, err)
	}
	return nil
}

// Close plays out what was written, then stops and closes the stream.
func (p *Playback) Close() error { return p.st.close() }

var (
	_ media.Microphone = (*Capture)(nil)
	_ media.AudioSink  = (*Playback)(nil)
)
