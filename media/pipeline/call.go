// Package pipeline runs a member's media in a call: source → encoder →
// connection for what it sends, connection → jitter buffer and decoder →
// sink for what it receives, with the clocks, drops and keyframe logic in
// one place. The terminal client and the desktop client both use it.
//
// A Call is the client.MediaHandler of a protocol/client.Client: build the
// Call, give it to client.Config.Media, then run the Call with the client.
// It is pure Go; the codecs and devices come in through the media
// interfaces (media/vpx, media/opus, media/audiodev implement them).
//
// What it does on its own:
//
//   - video: scales the source down when the bitrate it may use is low (see
//     ladder), starts every session with a keyframe, makes one when the
//     relay asks, follows the relay's bitrate hints, cuts frames into
//     fragments and paces them at 2.5 times the bitrate, so that a
//     keyframe does not hold up its own voice on the uplink;
//   - voice: 20 ms Opus frames with their level, in-band FEC sized to the
//     worst loss its listeners reported in the last few seconds; a
//     microphone's frames cleaned of the speaker's echo first, when the
//     Config has an EchoCanceller;
//   - receiving: one jitter buffer per speaker, played out every 20 ms
//     (decode, FEC or concealment), mixed; the loss each speaker's stream
//     suffers is reported to it every second; video frames reassembled,
//     decoded off the reader goroutine, and a keyframe asked for (at most
//     once a second per sender) when a frame is lost or does not decode.
package pipeline

import (
	"context"
	"errors"
	"image"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleychat/parley/media"
	"github.com/parleychat/parley/protocol"
)

// Conn is what a Call sends on. *client.Client implements it.
type Conn interface {
	SendVoice(v *protocol.Voice) error
	SendVideoFragment(f *protocol.VideoFragment) error
	Signal(m protocol.Message) error
	Member(id uint32) (protocol.Member, bool)
	// SetState announces this member's media state (protocol.State*
	// bits), which the Call keeps in step with its sources.
	SetState(state uint8)
}

// Config configures a Call. Every part is optional: a Call with no source
// only receives, one with no decoders only records.
type Config struct {
	// Audio is the microphone (or a tone, or a file); NewAudioEncoder
	// makes its encoder. Without NewAudioEncoder the call sends no voice;
	// with it, SetAudio can switch the source while the call runs.
	Audio           media.AudioSource
	NewAudioEncoder func() (media.AudioEncoder, error)

	// Camera and Screen are the video sources of the two tracks at the
	// start (nil: none); NewVideoEncoder makes an encoder for one (screen:
	// content of a screen rather than a camera). Without NewVideoEncoder
	// the call sends no video; with it, SetVideo can switch the sources.
	Camera, Screen  media.VideoSource
	NewVideoEncoder func(screen bool) (media.VideoEncoder, error)
	// OnPreview receives each picture a video source gives, before it is
	// scaled and encoded, on that track's sender goroutine; img is valid
	// only during the call. It is the local preview.
	OnPreview func(track protocol.Track, img *image.YCbCr)
	// OnSourceEnded is told when a source stops by itself: a file ends,
	// a device fails or goes away. err is nil at the end of a file.
	OnSourceEnded func(what string, err error)
	// VideoBitrate is the most a video track uses, in bits per second
	// (default 1 Mbit/s for the camera, 1.5 Mbit/s for the screen); the
	// relay's bitrate hints lower it.
	VideoBitrate int
	// FrameRate is the video sources' frame rate, for the resolution
	// ladder (default 30).
	FrameRate float64
	// FragmentData is the most data per video fragment (default
	// protocol.DefaultFragmentData).
	FragmentData int

	// NewAudioDecoder makes a decoder per speaker; nil: voice is not
	// decoded (and not played).
	NewAudioDecoder func() (media.AudioDecoder, error)
	// Speaker plays the mixed voice of everyone else; nil: not played
	// (SetSpeaker can add one later).
	Speaker media.AudioSink
	// NewVideoDecoder makes a decoder per sender and track; nil: video
	// is not decoded.
	NewVideoDecoder func() (media.VideoDecoder, error)
	// OnPicture receives every decoded picture, on that sender's decode
	// goroutine; img is valid only during the call.
	OnPicture func(source uint32, track protocol.Track, img *image.YCbCr, captured time.Time)
	// OnLevel receives each speaker's audio level (RFC 6464: 0 loud, 127
	// silent) for every frame received, on the voice reader goroutine.
	OnLevel func(source uint32, level uint8)
	// OnLocalLevel receives the level of every frame the audio source
	// gives, muted or not, on the audio sender goroutine.
	OnLocalLevel func(level uint8)

	// EchoCanceller, if set, removes the speaker's echo from the
	// microphone: the playout loop gives it every frame it writes to the
	// speaker (silence too), and the audio sender every frame of a source
	// that is a microphone (media.IsMicrophone), muted or not, before its
	// level and the encoder. A tone or a file goes out as it is, and
	// without a speaker nothing is played to cancel. A new microphone or
	// speaker (SetAudio, SetSpeaker) resets it. The caller closes it after
	// Run.
	EchoCanceller media.EchoCanceller

	// Recorder, if set, gets every frame received, undecoded.
	Recorder *Recorder

	// Logger receives the call's logs (default: discarded).
	Logger *slog.Logger
}

// Call is one member's media in a call.
type Call struct {
	cfg  Config
	log  *slog.Logger
	conn atomic.Pointer[connBox]
	self atomic.Uint32 // this member's ID in the current session

	audio   *audioSender
	video   [protocol.MaxTrack + 1]*videoSender
	recv    *receiver
	speaker *slot[media.AudioSink]
	state   atomic.Int32 // the state last announced; -1: none yet

	// joined is closed at the first Joined: senders read their sources
	// only from then on, so that a file starts at its beginning and a
	// camera's first pictures are not encoded for nobody.
	joined     chan struct{}
	joinedOnce sync.Once
}

type connBox struct{ Conn }

// New returns a call for cfg. It does nothing until Run.
func New(cfg Config) *Call {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.FrameRate == 0 {
		cfg.FrameRate = 30
	}
	c := &Call{cfg: cfg, log: cfg.Logger, speaker: newSlot(cfg.Speaker, cfg.Speaker != nil), joined: make(chan struct{})}
	c.state.Store(-1)
	if cfg.NewAudioEncoder != nil {
		c.audio = &audioSender{call: c, src: newSlot(cfg.Audio, cfg.Audio != nil)}
	} else if cfg.Audio != nil {
		cfg.Audio.Close() // nothing would read it
	}
	for tr, src := range []media.VideoSource{protocol.TrackCamera: cfg.Camera, protocol.TrackScreen: cfg.Screen} {
		if cfg.NewVideoEncoder == nil {
			if src != nil {
				src.Close()
			}
			continue
		}
		bps := cfg.VideoBitrate
		if bps == 0 {
			bps = 1_000_000
			if protocol.Track(tr) == protocol.TrackScreen {
				bps = 1_500_000
			}
		}
		c.video[tr] = newVideoSender(c, protocol.Track(tr), src, bps)
	}
	c.recv = newReceiver(c)
	return c
}

// Run sends and receives media on conn until ctx is done. It closes the
// sources, the speaker and the recorder before it returns. A source that
// ends (a file) stops its sender; the call goes on.
func (c *Call) Run(ctx context.Context, conn Conn) error {
	c.conn.Store(&connBox{conn})
	c.announceState()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	start := func(f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil && !errors.Is(err, context.Canceled) {
				errs <- err
				cancel()
			}
		}()
	}
	if c.audio != nil {
		start(c.audio.run)
	}
	for _, v := range c.video {
		if v != nil {
			start(v.run)
		}
	}
	start(c.recv.run)
	<-ctx.Done()
	// Sources block in ReadFrame and the speaker in WriteFrame: closing
	// them unblocks their goroutines.
	if c.audio != nil {
		c.audio.src.close()
	}
	for _, v := range c.video {
		if v != nil {
			v.src.close()
		}
	}
	c.speaker.close()
	wg.Wait()
	c.recv.close()
	var err error
	if c.cfg.Recorder != nil {
		err = c.cfg.Recorder.Close()
	}
	select {
	case e := <-errs:
		return e
	default:
	}
	return err
}

// connection returns the connection media goes out on.
func (c *Call) connection() Conn {
	if b := c.conn.Load(); b != nil {
		return b.Conn
	}
	return nil
}

// ----- switching sources while the call runs -----

// SetAudio switches the voice source (nil: none), closing the one before.
func (c *Call) SetAudio(src media.AudioSource) {
	if c.audio == nil {
		if src != nil {
			src.Close()
		}
		return
	}
	if ec := c.cfg.EchoCanceller; ec != nil && src != nil && media.IsMicrophone(src) {
		ec.Reset() // another room, another echo path
	}
	c.audio.src.set(src, src != nil)
	c.announceState()
}

// SetMuted stops (or resumes) sending voice without closing the source, so
// that unmuting is instant.
func (c *Call) SetMuted(muted bool) {
	if c.audio != nil {
		c.audio.muted.Store(muted)
		c.announceState()
	}
}

// SetVideo switches a track's source (nil: none, the camera off or the
// screen no longer shared), closing the one before. A new source starts
// with a keyframe.
func (c *Call) SetVideo(tr protocol.Track, src media.VideoSource) {
	if tr > protocol.MaxTrack || c.video[tr] == nil {
		if src != nil {
			src.Close()
		}
		return
	}
	v := c.video[tr]
	v.forceKey.Store(true)
	v.src.set(src, src != nil)
	c.announceState()
}

// SetSpeaker switches the device voice is played on (nil: none).
func (c *Call) SetSpeaker(sink media.AudioSink) {
	if ec := c.cfg.EchoCanceller; ec != nil && sink != nil {
		ec.Reset() // another echo path
	}
	c.speaker.set(sink, sink != nil)
}

// State returns this member's media state as the sources make it.
func (c *Call) State() uint8 {
	var st uint8
	if c.audio != nil && c.audio.src.has() && !c.audio.muted.Load() {
		st |= protocol.StateAudio
	}
	if v := c.video[protocol.TrackCamera]; v != nil && v.src.has() {
		st |= protocol.StateVideo
	}
	if v := c.video[protocol.TrackScreen]; v != nil && v.src.has() {
		st |= protocol.StateScreen
	}
	return st
}

// announceState tells the others when the state changed.
func (c *Call) announceState() {
	conn := c.connection()
	if conn == nil {
		return
	}
	st := c.State()
	if c.state.Swap(int32(st)) != int32(st) {
		conn.SetState(st)
	}
}

// sourceEnded reports a source that stopped by itself.
func (c *Call) sourceEnded(what string, err error) {
	c.announceState()
	if f := c.cfg.OnSourceEnded; f != nil {
		f(what, err)
	}
}

// ----- client.MediaHandler -----

// Voice receives a voice frame (see client.MediaHandler).
func (c *Call) Voice(v *protocol.Voice) { c.recv.voice(v) }

// Video receives a video fragment (see client.MediaHandler).
func (c *Call) Video(f *protocol.VideoFragment) { c.recv.video(f) }

// Joined starts a new session: the senders begin with keyframes, the
// receiver with clean state.
func (c *Call) Joined(self uint32, members []protocol.Member) {
	c.self.Store(self)
	for _, v := range c.video {
		if v != nil {
			v.forceKey.Store(true)
		}
	}
	c.recv.reset()
	c.joinedOnce.Do(func() { close(c.joined) })
}

// waitJoined waits for the first Joined; false if ctx ended first.
func (c *Call) waitJoined(ctx context.Context) bool {
	select {
	case <-c.joined:
		return true
	case <-ctx.Done():
		return false
	}
}

// Signal handles media signalling from the relay.
func (c *Call) Signal(m protocol.Message) {
	switch m := m.(type) {
	case *protocol.KeyframeRequest:
		if m.Track <= protocol.MaxTrack && c.video[m.Track] != nil {
			c.video[m.Track].forceKey.Store(true)
		}
	case *protocol.BitrateHint:
		if m.Track <= protocol.MaxTrack && c.video[m.Track] != nil {
			c.video[m.Track].hint.Store(m.Bitrate)
		}
	case *protocol.LossReport:
		if c.audio != nil {
			c.audio.reportLoss(m.Member, m.FractionLost)
		}
	case *protocol.StateUpdate:
	}
}

// Stats is what a call has sent and received so far.
type Stats struct {
	VoiceSent           uint64
	VideoSent           [protocol.MaxTrack + 1]uint64 // frames, by track
	KeyframesSent       [protocol.MaxTrack + 1]uint64
	VideoBitrate        [protocol.MaxTrack + 1]int // current target, bits per second
	Width, Height       [protocol.MaxTrack + 1]int // current encoded size
	VoiceReceived       uint64
	VideoFramesReceived uint64 // whole frames
	BytesSent           uint64 // media payload bytes sent (voice and video data)
	BytesReceived       uint64 // media payload bytes received
	VideoBroken         uint64 // frames lost in reassembly
	Decoded, DecodeErrs uint64 // video pictures
	KeyframesAsked      uint64
}

// Stats returns the call's counters.
func (c *Call) Stats() Stats {
	var st Stats
	if c.audio != nil {
		st.VoiceSent = c.audio.sent.Load()
		st.BytesSent += c.audio.bytes.Load()
	}
	for tr, v := range c.video {
		if v != nil {
			st.VideoSent[tr] = v.sent.Load()
			st.BytesSent += v.bytes.Load()
			st.KeyframesSent[tr] = v.keyframes.Load()
			st.VideoBitrate[tr] = int(v.bitrate.Load())
			st.Width[tr], st.Height[tr] = int(v.width.Load()), int(v.height.Load())
		}
	}
	c.recv.addStats(&st)
	return st
}
