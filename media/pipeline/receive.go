package pipeline

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleychat/parley/media"
	"github.com/parleychat/parley/media/audio"
	"github.com/parleychat/parley/protocol"
)

// receiver turns the media of the other members into played voice,
// decoded pictures and recordings.
type receiver struct {
	call *Call

	mu       sync.Mutex // guards the fields below
	speakers map[uint32]*speaker
	asm      protocol.Reassembler
	senders  map[srcTrack]*videoDecoder
	asked    map[srcTrack]time.Time // last keyframe request, by sender
	closed   bool
	wg       sync.WaitGroup // decoder goroutines

	voiceIn, framesIn       atomic.Uint64
	bytesIn                 atomic.Uint64
	decoded, decodeErrs     atomic.Uint64
	keyframesAsked, dropped atomic.Uint64
}

type srcTrack struct {
	source uint32
	track  protocol.Track
}

// speaker is one member whose voice this member receives.
type speaker struct {
	jb         *audio.JitterBuffer
	dec        media.AudioDecoder // made by the playout loop; nil until then
	heard      time.Time          // last packet
	reportedAt time.Time
}

// speakerTimeout is how long a speaker stays after its last packet.
const speakerTimeout = 10 * time.Second

func newReceiver(c *Call) *receiver {
	return &receiver{call: c, speakers: make(map[uint32]*speaker), senders: make(map[srcTrack]*videoDecoder),
		asked: make(map[srcTrack]time.Time)}
}

// voice takes a voice frame from the reader goroutine.
func (r *receiver) voice(v *protocol.Voice) {
	now := time.Now()
	r.voiceIn.Add(1)
	r.bytesIn.Add(uint64(len(v.Data)))
	if rec := r.call.cfg.Recorder; rec != nil {
		rec.voice(r.call.connection(), v)
	}
	if f := r.call.cfg.OnLevel; f != nil {
		f(v.Source, v.Level)
	}
	if v.Codec != protocol.CodecOpus {
		return
	}
	r.mu.Lock()
	sp := r.speakers[v.Source]
	if sp == nil && !r.closed {
		sp = &speaker{jb: audio.NewJitterBuffer(audio.JitterConfig{})}
		r.speakers[v.Source] = sp
	}
	if sp != nil {
		sp.heard = now
	}
	r.mu.Unlock()
	if sp != nil {
		sp.jb.NoteLevel(v.Level)
		sp.jb.Push(v.Seq, time.UnixMicro(v.Captured), v.Data, now)
	}
}

// video takes a video fragment from the reader goroutine.
func (r *receiver) video(f *protocol.VideoFragment) {
	r.bytesIn.Add(uint64(len(f.Data)))
	r.mu.Lock()
	broken := r.asm.Stats().Broken
	frame, ok := r.asm.Add(f)
	lost := r.asm.Stats().Broken > broken
	r.mu.Unlock()
	key := srcTrack{f.Source, f.Track}
	if lost {
		r.askKeyframe(key)
	}
	if !ok {
		return
	}
	r.framesIn.Add(1)
	if rec := r.call.cfg.Recorder; rec != nil {
		rec.video(r.call.connection(), &frame)
	}
	if r.call.cfg.NewVideoDecoder != nil && frame.Codec == protocol.CodecVP8 {
		r.decode(key, &frame)
	}
}

// askKeyframe asks the relay for a keyframe of a sender's track, at most
// once a second.
func (r *receiver) askKeyframe(k srcTrack) {
	r.mu.Lock()
	now := time.Now()
	ask := now.Sub(r.asked[k]) >= time.Second
	if ask {
		r.asked[k] = now
	}
	r.mu.Unlock()
	if !ask {
		return
	}
	if conn := r.call.connection(); conn != nil && conn.Signal(&protocol.KeyframeRequest{Source: k.source, Track: k.track}) == nil {
		r.keyframesAsked.Add(1)
	}
}

// reset forgets what was held from an earlier session.
func (r *receiver) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.asm = protocol.Reassembler{}
	for _, sp := range r.speakers {
		sp.heard = time.Time{} // the playout loop closes them
	}
	for _, d := range r.senders {
		d.needKey.Store(true)
	}
}

// run is the playout loop: every 20 ms one frame of each speaker, decoded
// (or rebuilt, or concealed), mixed and played; every second a loss
// report to each speaker who lost frames. With a speaker device, its
// blocking writes are the clock; without one, a ticker.
func (r *receiver) run(ctx context.Context) error {
	cfg := &r.call.cfg
	tick := time.NewTicker(media.FrameDuration)
	defer tick.Stop()
	pcm := make([]int16, media.FrameSamples)
	var mix audio.Mixer
	mixed := make([]int16, media.FrameSamples)
	lastReport := time.Now()
	for {
		speaker, haveSpeaker, gen, _ := r.call.speaker.get()
		if !haveSpeaker {
			select {
			case <-tick.C:
			case <-ctx.Done():
				return nil
			}
		} else if ctx.Err() != nil {
			return nil
		}
		now := time.Now()
		r.mu.Lock()
		for id, sp := range r.speakers {
			if now.Sub(sp.heard) > speakerTimeout {
				if sp.dec != nil {
					sp.dec.Close()
				}
				delete(r.speakers, id)
				continue
			}
			p := sp.jb.Pop(now)
			if cfg.NewAudioDecoder == nil || p.Kind == audio.PlayNone {
				continue
			}
			if sp.dec == nil {
				dec, err := cfg.NewAudioDecoder()
				if err != nil {
					r.mu.Unlock()
					return err
				}
				sp.dec = dec
			}
			if p.Skip != nil {
				sp.dec.Decode(p.Skip, pcm)
			}
			var err error
			switch p.Kind {
			case audio.PlayDecode:
				err = sp.dec.Decode(p.Payload, pcm)
			case audio.PlayFEC:
				err = sp.dec.DecodeFEC(p.Payload, pcm)
			case audio.PlayConceal:
				err = sp.dec.DecodePLC(pcm)
			}
			if err == nil {
				mix.Add(pcm)
			}
		}
		var reports []protocol.LossReport
		if now.Sub(lastReport) >= time.Second {
			lastReport = now
			for id, sp := range r.speakers {
				if loss := sp.jb.Stats().LossFraction; loss > 0.005 {
					reports = append(reports, protocol.LossReport{Member: id, FractionLost: uint8(min(loss*256, 255))})
				}
			}
		}
		r.mu.Unlock()
		if conn := r.call.connection(); conn != nil {
			for i := range reports {
				conn.Signal(&reports[i])
			}
		}
		mix.Frame(mixed)
		if haveSpeaker {
			if ec := cfg.EchoCanceller; ec != nil {
				ec.Playback(mixed) // as it goes to the speaker: its echo may come back
			}
			if err := speaker.WriteFrame(mixed); err != nil {
				switch {
				case ctx.Err() != nil:
					return nil
				case !r.call.speaker.current(gen):
					continue // switched
				}
				if r.call.speaker.clearIf(gen) {
					r.call.sourceEnded("speaker", err)
				}
			}
		}
	}
}

// close stops the decoders.
func (r *receiver) close() {
	r.mu.Lock()
	r.closed = true
	for k, d := range r.senders {
		close(d.frames)
		delete(r.senders, k)
	}
	for id, sp := range r.speakers {
		if sp.dec != nil {
			sp.dec.Close()
		}
		delete(r.speakers, id)
	}
	r.mu.Unlock()
	r.wg.Wait()
}

func (r *receiver) addStats(st *Stats) {
	st.VoiceReceived = r.voiceIn.Load()
	st.BytesReceived = r.bytesIn.Load()
	st.VideoFramesReceived = r.framesIn.Load()
	r.mu.Lock()
	st.VideoBroken = r.asm.Stats().Broken
	r.mu.Unlock()
	st.Decoded, st.DecodeErrs = r.decoded.Load(), r.decodeErrs.Load()
	st.KeyframesAsked = r.keyframesAsked.Load()
}

// ----- video decoding -----

// videoDecoder decodes one sender's track on its own goroutine, so that a
// slow decode never holds up the video reader (and so every other sender).
type videoDecoder struct {
	frames  chan *decodeJob
	needKey atomic.Bool // drop delta frames until a keyframe
	free    sync.Pool   // *decodeJob
}

type decodeJob struct {
	data     []byte
	captured time.Time
	key      bool
}

// decodeQueue is how many frames may wait for a decoder; beyond, frames
// are dropped until the next keyframe (and one is asked for).
const decodeQueue = 3

// decoderIdle is how long a decoder goroutine waits for frames before it
// goes away.
const decoderIdle = 10 * time.Second

func (r *receiver) decode(k srcTrack, f *protocol.VideoFrame) {
	if r.queueDecode(k, f) {
		r.askKeyframe(k)
	}
}

// queueDecode hands a frame to the sender's decoder, starting one if
// needed, and reports whether the decoder fell behind and needs a
// keyframe. The send is under r.mu (it never blocks): close and an idle
// decoder's exit change r.senders under it, and a send on a queue that
// close closed would panic.
func (r *receiver) queueDecode(k srcTrack, f *protocol.VideoFrame) (askKey bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	d := r.senders[k]
	if d == nil {
		d = &videoDecoder{frames: make(chan *decodeJob, decodeQueue)}
		d.free.New = func() any { return new(decodeJob) }
		r.senders[k] = d
		r.wg.Add(1)
		go r.decodeLoop(k, d)
	}
	if d.needKey.Load() {
		if !f.Keyframe {
			r.dropped.Add(1)
			return false
		}
		d.needKey.Store(false)
	}
	job := d.free.Get().(*decodeJob)
	job.data = append(job.data[:0], f.Data...)
	job.captured, job.key = time.UnixMicro(f.Captured), f.Keyframe
	select {
	case d.frames <- job:
		return false
	default:
		d.free.Put(job)
		r.dropped.Add(1)
		d.needKey.Store(true)
		return true
	}
}

func (r *receiver) decodeLoop(k srcTrack, d *videoDecoder) {
	defer r.wg.Done()
	cfg := &r.call.cfg
	dec, err := cfg.NewVideoDecoder()
	if err != nil {
		r.call.log.Error("making a video decoder", "err", err)
		return
	}
	defer dec.Close()
	idle := time.NewTimer(decoderIdle)
	defer idle.Stop()
	for {
		select {
		case job, ok := <-d.frames:
			if !ok {
				return
			}
			idle.Reset(decoderIdle)
			img, err := dec.Decode(job.data)
			if err != nil {
				r.decodeErrs.Add(1)
				d.needKey.Store(true)
				r.askKeyframe(k)
			} else {
				r.decoded.Add(1)
				if cfg.OnPicture != nil {
					cfg.OnPicture(k.source, k.track, img, job.captured)
				}
			}
			d.free.Put(job)
		case <-idle.C:
			r.mu.Lock()
			if r.senders[k] == d && len(d.frames) == 0 {
				delete(r.senders, k)
				r.mu.Unlock()
				return
			}
			r.mu.Unlock()
			idle.Reset(decoderIdle)
		}
	}
}
