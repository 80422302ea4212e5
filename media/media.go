// Package media defines Parley's raw audio and video, the interfaces of
// sources, sinks and codecs, and the constants every part agrees on. It is
// pure Go: the implementations that need cgo (libvpx, libopus, PortAudio)
// live in subpackages, so that a program importing only the interfaces, or
// the protocol and relay, builds without a C compiler.
//
// Subpackages:
//
//	media/video     pure Go: the test pattern (with a capture-time stamp), Y4M files, I420 scaling, PSNR
//	media/vpx       cgo: VP8 encoder and decoder (libvpx, called directly)
//	media/device    cameras (V4L2, through pion/mediadevices) and screen capture (X11, through Xlib)
//	media/audio     pure Go: tone and WAV sources, levels, the adaptive jitter buffer
//	media/opus      cgo: Opus encoder and decoder (libopus)
//	media/audiodev  cgo: capture and playback with PortAudio; pulsetest runs a PulseAudio for tests
//	media/speexdsp  cgo: echo cancellation and noise suppression for the microphone (libspeexdsp)
//	media/record    pure Go: IVF (VP8) and Ogg (Opus) writers
//	media/pipeline  pure Go: source → encoder → connection and connection → decoder → sink
//
// Audio is always 48 kHz mono signed 16-bit PCM in 20 ms frames of 960
// samples; video pictures are 4:2:0 *image.YCbCr (I420).
package media

import (
	"image"
	"time"
)

// Audio format. Every source, sink and codec uses it; sources convert.
const (
	SampleRate    = 48000                 // samples per second
	FrameDuration = 20 * time.Millisecond // one audio frame
	FrameSamples  = SampleRate / 50       // 960 samples per frame
)

// AudioSource produces audio frames at real-time pace.
type AudioSource interface {
	// ReadFrame fills pcm (FrameSamples long) with the next frame and
	// returns the capture time of its first sample. A live device blocks
	// until the frame is recorded; a generated or file source waits until
	// the frame is due, so that every source runs at real-time pace. A
	// file source returns io.EOF at its end.
	ReadFrame(pcm []int16) (captured time.Time, err error)
	Close() error
}

// Microphone is an AudioSource that records a room through an input
// device, and so may hear what the speaker plays. The echo canceller works
// only on microphones; a tone or a file has no echo to cancel.
type Microphone interface {
	AudioSource
	// IsMicrophone reports whether the source records an input device.
	IsMicrophone() bool
}

// IsMicrophone reports whether src is a Microphone that says it records
// an input device.
func IsMicrophone(src AudioSource) bool {
	m, ok := src.(Microphone)
	return ok && m.IsMicrophone()
}

// EchoCanceller removes from what the microphone records the echo of what
// the speaker plays (media/speexdsp implements it). Playback and Capture
// are called from different goroutines, each from one at a time.
type EchoCanceller interface {
	// Playback takes each frame (FrameSamples long) as it is written to
	// the speaker, silence included, so that the two streams stay in step.
	Playback(pcm []int16)
	// Capture removes the echo from a microphone frame (FrameSamples
	// long), in place.
	Capture(pcm []int16)
	// Reset forgets the echo path learned: the speaker or the microphone
	// changed.
	Reset()
}

// AudioSink plays audio frames.
type AudioSink interface {
	// WriteFrame plays pcm (FrameSamples long). It blocks as a device
	// does when its buffer is full.
	WriteFrame(pcm []int16) error
	Close() error
}

// VideoSource produces pictures at its own pace.
type VideoSource interface {
	// ReadFrame returns the next picture and its capture time, blocking
	// until it is available (live) or due (generated, file). The picture
	// is owned by the source and valid until the next call. A file source
	// returns io.EOF at its end.
	ReadFrame() (img *image.YCbCr, captured time.Time, err error)
	Close() error
}

// VideoEncoder compresses pictures. It is used from one goroutine at a
// time, except SetBitrate, which any goroutine may call.
type VideoEncoder interface {
	// Encode compresses one picture; forceKey asks for a keyframe. A
	// picture of a new size restarts the encoder at that size (and makes
	// a keyframe). The frame aliases the encoder's buffer and is valid
	// until the next call; it may be empty when the encoder drops the
	// picture to hold its bitrate.
	Encode(img *image.YCbCr, captured time.Time, forceKey bool) (frame []byte, keyframe bool, err error)
	// SetBitrate changes the target bitrate in bits per second from the
	// next picture on.
	SetBitrate(bps int)
	Close() error
}

// VideoDecoder decompresses frames.
type VideoDecoder interface {
	// Decode decompresses one frame. The picture is owned by the decoder
	// and valid until the next call. A corrupt frame, or a delta frame
	// without its reference, is an error; the caller then waits for a
	// keyframe.
	Decode(frame []byte) (*image.YCbCr, error)
	Close() error
}

// AudioEncoder compresses audio frames. SetBitrate and SetPacketLoss may be
// called from any goroutine.
type AudioEncoder interface {
	// Encode compresses one frame of FrameSamples samples into out and
	// returns the packet length.
	Encode(pcm []int16, out []byte) (int, error)
	// SetBitrate sets the target bitrate in bits per second.
	SetBitrate(bps int) error
	// SetPacketLoss tells the encoder the loss its listeners see, in
	// percent: above 0 it adds in-band forward error correction sized
	// for that loss; 0 turns it off.
	SetPacketLoss(percent int) error
	Close() error
}

// AudioDecoder decompresses audio packets into frames of FrameSamples.
type AudioDecoder interface {
	// Decode decompresses one packet into pcm.
	Decode(packet []byte, pcm []int16) error
	// DecodeFEC recovers the frame lost just before next from the
	// forward error correction carried in next, if it has any (else it
	// conceals the loss as DecodePLC does).
	DecodeFEC(next []byte, pcm []int16) error
	// DecodePLC conceals one lost frame.
	DecodePLC(pcm []int16) error
	Close() error
}
