package relay

import (
	"time"

	"golang.org/x/time/rate"

	"github.com/parleychat/parley/protocol"
)

// Media in a session, from the client (its voice and video readers) and to
// it (its queues). The writer side is in writer.go, the frame and queue
// types in media.go.

// readVoice forwards the client's voice to its room.
func (s *session) readVoice(st *protocol.Stream) error {
	capBps := s.srv.cfg.VoiceBitrateCap
	limit := rate.NewLimiter(rate.Limit(capBps/8), capBps/8) // one second of burst
	var v protocol.Voice
	for {
		h, p, err := st.ReadFrame()
		if err != nil {
			return err
		}
		if h.Type != protocol.TypeVoice {
			return &protocol.Error{Code: protocol.CodeUnexpected, Message: "a client may not send " + h.Type.String()}
		}
		if err := protocol.ParseVoice(p, &v); err != nil {
			return err
		}
		r, m := s.membership()
		switch {
		case m == nil:
			s.media.inNotInRoom.Add(1)
		case !limit.AllowN(time.Now(), len(p)):
			s.media.inOverCap.Add(1)
		default:
			s.media.voiceIn.Add(1)
			f := newMediaFrame(h.Type, p, m.id)
			f.kind, f.key, f.from = protocol.KindVoice, srcTrack{source: m.id}, s
			r.forwardMedia(m, f)
			f.release()
		}
	}
}

// readVideo forwards the client's video fragments to its room.
func (s *session) readVideo(st *protocol.Stream) error {
	cfg := &s.srv.cfg
	limit := rate.NewLimiter(rate.Limit(cfg.VideoBitrateCap/8), max(cfg.VideoBitrateCap/8, 1<<20))
	// dropping[track]: a fragment of this track was dropped at ingress,
	// so the rest of its frame and the frames after it are useless until
	// the next keyframe.
	var dropping [protocol.MaxTrack + 1]bool
	var f protocol.VideoFragment
	for {
		h, p, err := st.ReadFrame()
		if err != nil {
			return err
		}
		if h.Type != protocol.TypeVideoFragment {
			return &protocol.Error{Code: protocol.CodeUnexpected, Message: "a client may not send " + h.Type.String()}
		}
		if err := protocol.ParseVideoFragment(p, &f); err != nil {
			return err
		}
		r, m := s.membership()
		if m == nil {
			s.media.inNotInRoom.Add(1)
			continue
		}
		if f.Track > protocol.MaxTrack {
			s.media.inBadTrack.Add(1)
			continue
		}
		now := time.Now()
		starts := f.Keyframe() && f.Index == 0
		if dropping[f.Track] && !starts {
			s.media.inOverCap.Add(1)
			continue
		}
		if !limit.AllowN(now, len(p)) {
			dropping[f.Track] = true
			s.media.inOverCap.Add(1)
			s.requestKeyframe(f.Track) // sent once the throttle allows; the cap will have refilled
			continue
		}
		dropping[f.Track] = false
		s.media.videoIn.Add(1)
		mf := newMediaFrame(h.Type, p, m.id)
		mf.kind, mf.key, mf.from = protocol.KindVideo, srcTrack{m.id, f.Track}, s
		mf.index, mf.keyframe = f.Index, f.Keyframe()
		if !s.sendsVideo(f.Track, mf.arrived) {
			s.wake() // its writer starts telling it what bitrate to use
		}
		s.lastVideoIn[f.Track].Store(mf.arrived)
		r.forwardMedia(m, mf)
		mf.release()
	}
}

// sendsVideo reports whether the client sent video of a track in the last
// two seconds.
func (s *session) sendsVideo(tr protocol.Track, now int64) bool {
	last := s.lastVideoIn[tr].Load()
	return last != 0 && now-last < int64(2*time.Second)
}

// enqueueMedia queues a frame for this client, or drops it by the policy
// of its kind. It runs on the sender's reader goroutine and never blocks.
func (s *session) enqueueMedia(f *mediaFrame) {
	cfg := &s.srv.cfg
	now := f.arrived
	var askKey []*mediaFrame // senders to ask for a keyframe, after unlocking
	s.mu.Lock()
	if s.closed || s.member == nil || s.streams[f.kind] == nil {
		s.mu.Unlock()
		return
	}
	switch f.kind {
	case protocol.KindVoice:
		// Oldest first: a late frame is worth less than a fresh one.
		for s.voiceQ.len() > 0 && (now-s.voiceQ.peek().arrived > int64(cfg.VoiceQueueDelay) || s.voiceQ.len() >= maxVoiceQueue) {
			s.voiceQ.pop().release()
			s.media.voiceLate.Add(1)
		}
	case protocol.KindVideo:
		if s.needKey[f.key] {
			if !f.startsKeyframe() {
				s.media.videoKey.Add(1)
				s.mu.Unlock()
				return
			}
			delete(s.needKey, f.key)
		}
		if q := &s.videoQ; q.len() > 0 &&
			(now-q.peek().arrived > int64(cfg.VideoQueueDelay) || q.bytes+len(f.buf) > cfg.VideoQueueBytes) {
			askKey = s.dropVideoLocked(q.bytes+len(f.buf) > cfg.VideoQueueBytes)
			if s.needKey[f.key] && !f.startsKeyframe() {
				s.media.videoKey.Add(1)
				s.mu.Unlock()
				s.askKeyframes(askKey)
				return
			}
		}
	}
	f.refs.Add(1)
	if f.kind == protocol.KindVoice {
		s.voiceQ.push(f)
	} else {
		s.videoQ.push(f)
	}
	s.mu.Unlock()
	s.wake()
	s.askKeyframes(askKey)
}

// maxVoiceQueue bounds a receiver's voice queue in frames, whatever their
// age: 200 ms of 50 speakers.
const maxVoiceQueue = 500

// dropVideoLocked empties a congested video queue: every fragment but
// those of keyframes (all of them when hard), so that the client gets
// pictures again at the next keyframe of each source. It returns one frame
// of each source dropped, whose senders are to be asked for a keyframe.
// s.mu must be held.
func (s *session) dropVideoLocked(hard bool) []*mediaFrame {
	if s.needKey == nil {
		s.needKey = make(map[srcTrack]bool)
	}
	var ask []*mediaFrame
	q := &s.videoQ
	kept := q.frames[:0]
	bytes := 0
	for _, g := range q.frames[q.head:] {
		if !hard && g.keyframe && (g.startsKeyframe() || !s.needKey[g.key]) {
			if g.startsKeyframe() {
				delete(s.needKey, g.key)
			}
			kept = append(kept, g)
			bytes += len(g.buf)
			continue
		}
		s.media.videoCongested.Add(1)
		if !s.needKey[g.key] {
			s.needKey[g.key] = true
			if now := mono(); now-s.congestionKeyAt >= int64(congestionKeyInterval) || s.congestionKeyAt == 0 {
				g.refs.Add(1) // held until askKeyframes has used it
				ask = append(ask, g)
			}
		}
		g.release()
	}
	clear(q.frames[len(kept):])
	q.frames, q.head, q.bytes = kept, 0, bytes
	if len(ask) > 0 {
		s.congestionKeyAt = mono()
	}
	return ask
}

// congestionKeyInterval is the least time between two rounds of keyframe
// requests caused by one receiver's congestion. A receiver whose link
// cannot carry the video congests again and again; asking for a keyframe
// every time would make the senders send keyframes — the largest frames —
// to everyone once a second. In between it gets pictures at the keyframes
// others cause.
const congestionKeyInterval = 3 * time.Second

// askKeyframes asks the senders of the given frames for keyframes and
// releases the frames.
func (s *session) askKeyframes(frames []*mediaFrame) {
	for _, f := range frames {
		f.from.requestKeyframe(f.key.track)
		f.release()
	}
}

// clearMediaLocked drops everything queued for the client and the state
// tied to its room. s.mu must be held.
func (s *session) clearMediaLocked() {
	s.voiceQ.clearAll()
	s.videoQ.clearAll()
	clear(s.needKey)
	clear(s.hints)
}

// requestKeyframe asks this client, as a sender, for a keyframe of a
// track. The writer sends the request, at most once per KeyframeInterval.
func (s *session) requestKeyframe(tr protocol.Track) {
	if tr > protocol.MaxTrack {
		return
	}
	s.keyWanted.Or(1 << tr)
	s.wake()
}

// askKeyframe passes on a client's keyframe request to the sender.
func (s *session) askKeyframe(m *protocol.KeyframeRequest) {
	r, _ := s.membership()
	if r == nil {
		return
	}
	if o := r.memberByID(m.Source); o != nil && o.sess != s {
		o.sess.requestKeyframe(m.Track)
	}
}

// setState records the client's media state. Over its rate (5 per second,
// burst 20) updates are ignored: a state is a toggle, and a flood of them
// would be fanned out to the whole room.
func (s *session) setState(state uint8) {
	r, m := s.membership()
	if r == nil || !s.stateL.Allow() {
		return
	}
	r.setState(m, state)
}

// setHint records a client's bitrate limit for one source's track; the
// source's writer reads it when it tells that source what to send.
func (s *session) setHint(m *protocol.BitrateHint) {
	r, _ := s.membership()
	if r == nil || m.Track > protocol.MaxTrack || r.memberByID(m.Source) == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hints == nil {
		s.hints = make(map[srcTrack]uint32)
	}
	k := srcTrack{m.Source, m.Track}
	if m.Bitrate == 0 {
		delete(s.hints, k)
	} else if len(s.hints) < protocol.MaxMembers {
		s.hints[k] = m.Bitrate
	}
}

// hintFor returns the client's bitrate limit for a source (0: none).
func (s *session) hintFor(k srcTrack) uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hints[k]
}

// reportLoss passes a listener's loss report on to the speaker, naming
// the listener (at most 4 per second per listener, burst 8).
func (s *session) reportLoss(m *protocol.LossReport) {
	r, me := s.membership()
	if r == nil || !s.lossL.Allow() {
		return
	}
	if o := r.memberByID(m.Member); o != nil && o != me {
		o.sess.queueControl(&protocol.LossReport{Member: me.id, FractionLost: m.FractionLost})
	}
}

// MediaStats returns the session's media counters.
func (s *session) mediaStats() MediaStats { return s.media.snapshot() }
