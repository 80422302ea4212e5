package pipeline

import (
	"context"
	"errors"
	"image"
	"io"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleychat/parley/media"
	"github.com/parleychat/parley/media/audio"
	"github.com/parleychat/parley/media/video"
	"github.com/parleychat/parley/protocol"
)

// ----- voice -----

// audioSender reads the audio source, encodes and sends 20 ms frames.
type audioSender struct {
	call  *Call
	src   *slot[media.AudioSource]
	muted atomic.Bool
	sent  atomic.Uint64
	bytes atomic.Uint64

	mu     sync.Mutex // guards losses
	losses map[uint32]lossReport
}

type lossReport struct {
	fraction uint8
	at       time.Time
}

// lossMemory is how long a listener's loss report counts.
const lossMemory = 5 * time.Second

func (s *audioSender) run(ctx context.Context) error {
	var enc media.AudioEncoder // made at the first frame: a call may never send voice
	defer func() {
		if enc != nil {
			enc.Close()
		}
	}()
	pcm := make([]int16, media.FrameSamples)
	out := make([]byte, protocol.MaxVoiceData)
	v := protocol.Voice{Codec: protocol.CodecOpus}
	fec := 0
	if !s.call.waitJoined(ctx) {
		return nil
	}
	for seq := uint32(0); ; {
		src, ok, gen, changed := s.src.get()
		if !ok {
			select {
			case <-changed:
				continue
			case <-ctx.Done():
				return nil
			}
		}
		captured, err := src.ReadFrame(pcm)
		if err != nil {
			switch {
			case ctx.Err() != nil:
				return nil
			case !s.src.current(gen):
				continue // switched: the old source was closed under us
			}
			if errors.Is(err, io.EOF) {
				err = nil
			}
			if s.src.clearIf(gen) {
				s.call.sourceEnded("audio", err)
			}
			continue
		}
		if ec := s.call.cfg.EchoCanceller; ec != nil && media.IsMicrophone(src) {
			ec.Capture(pcm)
		}
		lvl := audio.Level(pcm)
		if f := s.call.cfg.OnLocalLevel; f != nil {
			f(lvl)
		}
		if s.muted.Load() {
			continue
		}
		if enc == nil {
			if enc, err = s.call.cfg.NewAudioEncoder(); err != nil {
				return err
			}
		}
		if p := s.fecPercent(); p != fec {
			fec = p
			enc.SetPacketLoss(p)
		}
		n, err := enc.Encode(pcm, out)
		if err != nil {
			return err
		}
		v.Seq, v.Captured, v.Level, v.Data = seq, captured.UnixMicro(), lvl, out[:n]
		seq++
		if conn := s.call.connection(); conn != nil && conn.SendVoice(&v) == nil {
			s.sent.Add(1)
			s.bytes.Add(uint64(n))
		}
	}
}

// reportLoss records a listener's loss report.
func (s *audioSender) reportLoss(listener uint32, fraction uint8) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.losses == nil {
		s.losses = make(map[uint32]lossReport)
	}
	s.losses[listener] = lossReport{fraction, time.Now()}
}

// fecPercent is the loss to tune FEC for: the worst any listener reported
// lately, in percent, rounded up (0 turns FEC off).
func (s *audioSender) fecPercent() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	worst := 0
	for id, r := range s.losses {
		if time.Since(r.at) > lossMemory {
			delete(s.losses, id)
			continue
		}
		worst = max(worst, int(math.Ceil(float64(r.fraction)*100/256)))
	}
	return min(worst, 50)
}

// ----- video -----

// videoSender reads one video source, scales, encodes, cuts and paces.
type videoSender struct {
	call     *Call
	track    protocol.Track
	src      *slot[media.VideoSource]
	maxBps   int
	forceKey atomic.Bool
	hint     atomic.Uint32 // the relay's last bitrate hint (0: none)

	sent, keyframes, bytes atomic.Uint64
	bitrate                atomic.Int64 // current target
	width, height          atomic.Int32
}

func newVideoSender(c *Call, tr protocol.Track, src media.VideoSource, bps int) *videoSender {
	s := &videoSender{call: c, track: tr, src: newSlot(src, src != nil), maxBps: bps}
	s.forceKey.Store(true)
	s.bitrate.Store(int64(bps))
	return s
}

// target is the bitrate to encode at: the configured one, lowered by the
// relay's hint.
func (s *videoSender) target() int {
	bps := s.maxBps
	if h := int(s.hint.Load()); h > 0 && h < bps {
		bps = h
	}
	return max(bps, 30_000)
}

func (s *videoSender) run(ctx context.Context) error {
	var enc media.VideoEncoder // made with the first source: a track may never be used
	defer func() {
		if enc != nil {
			enc.Close()
		}
	}()
	var scaled *image.YCbCr
	var pace pacer
	bps := 0
	frag := s.call.cfg.FragmentData
	if frag == 0 {
		frag = protocol.DefaultFragmentData
	}
	if !s.call.waitJoined(ctx) {
		return nil
	}
	for seq := uint32(0); ; {
		src, ok, gen, changed := s.src.get()
		if !ok {
			select {
			case <-changed:
				continue
			case <-ctx.Done():
				return nil
			}
		}
		if enc == nil {
			// Before the first picture is read: a source paced in real
			// time (a file, the test pattern) would skip the pictures
			// due while libvpx starts.
			var err error
			if enc, err = s.call.cfg.NewVideoEncoder(s.track == protocol.TrackScreen); err != nil {
				return err
			}
			bps = 0
		}
		img, captured, err := src.ReadFrame()
		if err != nil {
			switch {
			case ctx.Err() != nil:
				return nil
			case !s.src.current(gen):
				continue // switched: the old source was closed under us
			}
			if errors.Is(err, io.EOF) {
				err = nil
			}
			if s.src.clearIf(gen) {
				s.call.sourceEnded(s.track.String(), err)
			}
			continue
		}
		if f := s.call.cfg.OnPreview; f != nil {
			f(s.track, img)
		}
		if t := s.target(); t != bps {
			bps = t
			enc.SetBitrate(bps)
			s.bitrate.Store(int64(bps))
		}
		w, h := ladder(img.Rect.Dx(), img.Rect.Dy(), bps, s.call.cfg.FrameRate)
		pic := img
		if w != img.Rect.Dx() || h != img.Rect.Dy() {
			if scaled == nil || scaled.Rect.Dx() != w || scaled.Rect.Dy() != h {
				scaled = image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
			}
			video.Scale(scaled, img)
			pic = scaled
		}
		s.width.Store(int32(w))
		s.height.Store(int32(h))
		force := s.forceKey.Swap(false)
		data, key, err := enc.Encode(pic, captured, force)
		if err != nil {
			return err
		}
		if force && !key {
			s.forceKey.Store(true) // try again with the next picture
		}
		if len(data) == 0 {
			continue // the encoder dropped the picture to hold its rate
		}
		conn := s.call.connection()
		if conn == nil {
			s.forceKey.Store(true)
			continue
		}
		f := protocol.VideoFrame{Track: s.track, FrameSeq: seq, Captured: captured.UnixMicro(), Codec: protocol.CodecVP8,
			Keyframe: key, Data: data}
		seq++
		pace.rate = 2.5 * float64(bps) / 8
		err = f.Fragment(frag, func(fr *protocol.VideoFragment) error {
			if err := pace.wait(ctx, len(fr.Data)); err != nil {
				return err
			}
			return conn.SendVideoFragment(fr)
		})
		switch {
		case err == nil:
			s.sent.Add(1)
			s.bytes.Add(uint64(len(data)))
			if key {
				s.keyframes.Add(1)
			}
		case ctx.Err() != nil:
			return nil
		default:
			s.forceKey.Store(true) // the frame did not all go: start again whole
		}
	}
}

// pacer spaces fragments at rate bytes per second, with a burst of 16 KiB:
// a keyframe goes out over several frame times instead of all at once, so
// that the voice written meanwhile waits behind less of it on the uplink.
type pacer struct {
	rate   float64
	tokens float64
	at     time.Time
}

const paceBurst = 16 << 10

func (p *pacer) wait(ctx context.Context, n int) error {
	now := time.Now()
	if !p.at.IsZero() {
		p.tokens = min(p.tokens+p.rate*now.Sub(p.at).Seconds(), paceBurst)
	} else {
		p.tokens = paceBurst
	}
	p.at = now
	p.tokens -= float64(n)
	if p.tokens >= 0 {
		return nil
	}
	t := time.NewTimer(time.Duration(-p.tokens / p.rate * float64(time.Second)))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// minBitsPerPixel is the least VP8 needs per pixel and frame for a clear
// picture in a call; below it a smaller picture looks better.
const minBitsPerPixel = 0.06

// ladder picks the picture size to encode a w×h source at, for bps at fps:
// the largest of full, three quarters, half, a third or a quarter size that
// gets at least minBitsPerPixel — never below a quarter.
func ladder(w, h, bps int, fps float64) (int, int) {
	budget := float64(bps) / fps / minBitsPerPixel // pixels per frame
	for _, f := range []float64{1, 0.75, 0.5, 1.0 / 3, 0.25} {
		sw, sh := even(float64(w)*f), even(float64(h)*f)
		if float64(sw*sh) <= budget || f == 0.25 {
			return max(sw, 16), max(sh, 16)
		}
	}
	return w, h
}

func even(v float64) int { return int(v) &^ 1 }
