// Package opus is Parley's Opus voice codec: libopus through
// gopkg.in/hraban/opus.v2 (cgo), configured for 48 kHz mono speech in
// 20 ms frames.
//
// The encoder uses the VoIP application at 32 kbit/s by default. Loss the
// listeners report (SetPacketLoss) turns on in-band forward error
// correction: each packet then carries a coarse copy of the frame before it,
// which the decoder's DecodeFEC rebuilds when that frame's own packet is
// lost. A decoder conceals a loss it cannot repair with DecodePLC.
package opus

import (
	"errors"
	"fmt"
	"sync"

	"github.com/parleychat/parley/media"
	hopus "gopkg.in/hraban/opus.v2"
)

// MaxPacket is the largest packet Encode writes (RFC 6716's limit for one
// frame); an out buffer of this size always suffices.
const MaxPacket = 1275

// ErrClosed is returned by an encoder or decoder after Close.
var ErrClosed = errors.New("opus: closed")

// Config configures an Encoder. The zero value uses the defaults.
type Config struct {
	// Bitrate in bits per second, 6000 to 510000; 0 means 32000.
	Bitrate int
	// Complexity is libopus's 0 (fastest) to 10 (best); 0 means 10,
	// which costs well under a millisecond per frame.
	Complexity int
	// PacketLoss is the initial expected loss in percent (see
	// SetPacketLoss); 0 turns FEC off.
	PacketLoss int
}

// Encoder is a media.AudioEncoder. Encode is used from one goroutine at a
// time; SetBitrate and SetPacketLoss may be called from any.
type Encoder struct {
	mu  sync.Mutex // guards enc against concurrent setters and Close
	enc *hopus.Encoder
}

// NewEncoder returns an Opus encoder for 48 kHz mono 20 ms frames.
func NewEncoder(cfg Config) (*Encoder, error) {
	if cfg.Bitrate == 0 {
		cfg.Bitrate = 32000
	}
	if cfg.Complexity == 0 {
		cfg.Complexity = 10
	}
	enc, err := hopus.NewEncoder(media.SampleRate, 1, hopus.AppVoIP)
	if err != nil {
		return nil, fmt.Errorf("opus: new encoder: %w", err)
	}
	e := &Encoder{enc: enc}
	if err := e.SetBitrate(cfg.Bitrate); err != nil {
		return nil, err
	}
	if cfg.Complexity < 0 || cfg.Complexity > 10 {
		return nil, fmt.Errorf("opus: complexity %d is outside [0, 10]", cfg.Complexity)
	}
	if err := enc.SetComplexity(cfg.Complexity); err != nil {
		return nil, fmt.Errorf("opus: set complexity: %w", err)
	}
	if err := e.SetPacketLoss(cfg.PacketLoss); err != nil {
		return nil, err
	}
	return e, nil
}

// Encode compresses one frame of media.FrameSamples samples into out (at
// least MaxPacket bytes is always enough) and returns the packet length.
func (e *Encoder) Encode(pcm []int16, out []byte) (int, error) {
	if len(pcm) != media.FrameSamples {
		return 0, fmt.Errorf("opus: Encode of %d samples, want %d", len(pcm), media.FrameSamples)
	}
	if len(out) == 0 {
		return 0, errors.New("opus: Encode into an empty buffer")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.enc == nil {
		return 0, ErrClosed
	}
	// hraban/opus passes cap(out) to libopus: limit it to len(out).
	n, err := e.enc.Encode(pcm, out[:len(out):len(out)])
	if err != nil {
		return 0, fmt.Errorf("opus: encode: %w", err)
	}
	return n, nil
}

// SetBitrate sets the target bitrate in bits per second (6000 to 510000).
func (e *Encoder) SetBitrate(bps int) error {
	if bps < 6000 || bps > 510000 {
		return fmt.Errorf("opus: bitrate %d is outside [6000, 510000]", bps)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.enc == nil {
		return ErrClosed
	}
	if err := e.enc.SetBitrate(bps); err != nil {
		return fmt.Errorf("opus: set bitrate: %w", err)
	}
	return nil
}

// SetPacketLoss sets OPUS_SET_PACKET_LOSS_PERC to percent (0 to 100) and
// turns in-band FEC on when it is above 0, off at 0. At low bitrates
// libopus adds FEC only when the loss is high enough to be worth the bits.
func (e *Encoder) SetPacketLoss(percent int) error {
	if percent < 0 || percent > 100 {
		return fmt.Errorf("opus: packet loss %d%% is outside [0, 100]", percent)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.enc == nil {
		return ErrClosed
	}
	if err := e.enc.SetPacketLossPerc(percent); err != nil {
		return fmt.Errorf("opus: set packet loss: %w", err)
	}
	if err := e.enc.SetInBandFEC(percent > 0); err != nil {
		return fmt.Errorf("opus: set in-band FEC: %w", err)
	}
	return nil
}

// Close releases the encoder.
func (e *Encoder) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.enc = nil // hraban/opus keeps the libopus state on the Go heap
	return nil
}

// Decoder is a media.AudioDecoder. It is used from one goroutine at a time.
type Decoder struct {
	dec *hopus.Decoder
}

// NewDecoder returns an Opus decoder for 48 kHz mono.
func NewDecoder() (*Decoder, error) {
	dec, err := hopus.NewDecoder(media.SampleRate, 1)
	if err != nil {
		return nil, fmt.Errorf("opus: new decoder: %w", err)
	}
	return &Decoder{dec: dec}, nil
}

func (d *Decoder) check(pcm []int16) error {
	if d.dec == nil {
		return ErrClosed
	}
	if len(pcm) != media.FrameSamples {
		return fmt.Errorf("opus: decode into %d samples, want %d", len(pcm), media.FrameSamples)
	}
	return nil
}

// Decode decompresses one packet of a 20 ms frame into pcm
// (media.FrameSamples long). A packet of another duration is an error.
func (d *Decoder) Decode(packet []byte, pcm []int16) error {
	if err := d.check(pcm); err != nil {
		return err
	}
	if len(packet) == 0 {
		return errors.New("opus: decode of an empty packet")
	}
	n, err := d.dec.Decode(packet, pcm[:len(pcm):len(pcm)])
	if err != nil {
		return fmt.Errorf("opus: decode: %w", err)
	}
	if n != media.FrameSamples {
		return fmt.Errorf("opus: packet of %d samples, want %d", n, media.FrameSamples)
	}
	return nil
}

// DecodeFEC rebuilds the frame lost just before next from the FEC data in
// next (libopus conceals it, as DecodePLC does, when next carries none).
// Decode next itself afterwards for the frame that follows.
func (d *Decoder) DecodeFEC(next []byte, pcm []int16) error {
	if err := d.check(pcm); err != nil {
		return err
	}
	if len(next) == 0 {
		return d.DecodePLC(pcm)
	}
	if err := d.dec.DecodeFEC(next, pcm[:len(pcm):len(pcm)]); err != nil {
		return fmt.Errorf("opus: decode FEC: %w", err)
	}
	return nil
}

// DecodePLC conceals one lost frame from the decoder's state; before any
// packet it gives silence.
func (d *Decoder) DecodePLC(pcm []int16) error {
	if err := d.check(pcm); err != nil {
		return err
	}
	if err := d.dec.DecodePLC(pcm[:len(pcm):len(pcm)]); err != nil {
		return fmt.Errorf("opus: decode PLC: %w", err)
	}
	return nil
}

// Close releases the decoder.
func (d *Decoder) Close() error {
	d.dec = nil
	return nil
}

var (
	_ media.AudioEncoder = (*Encoder)(nil)
	_ media.AudioDecoder = (*Decoder)(nil)
)
