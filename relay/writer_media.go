package relay

import (
	"time"

	"github.com/parleychat/parley/protocol"
)

// The writer's media duties: voice before text, paced video after it, and
// the control messages the relay sends on its own — Pings that feed the
// pacer, keyframe requests, bitrate hints.

// senderState is what the writer keeps about its client as a sender.
type senderState struct {
	keyAsked [protocol.MaxTrack + 1]int64  // when a keyframe request last went out, by track
	hintNext [protocol.MaxTrack + 1]int64  // when to work out the next bitrate hint
	hintLast [protocol.MaxTrack + 1]uint64 // the last hint sent
	hintAt   [protocol.MaxTrack + 1]int64  // when it was sent

	voiceBytes  int     // voice written in the current second
	voiceWindow int64   // start of that second
	voiceBps    float64 // voice bits per second written to the client, last second
}

// hintRepeat is how often an unchanged bitrate hint is sent again.
const hintRepeat = 5 * time.Second

// takePong hands the latest Pong to the pacer.
func (w *writer) takePong() {
	s := w.s
	s.pongMu.Lock()
	nonce, at, ok := s.pongNonce, s.pongAt, s.pongNew
	s.pongNew = false
	s.pongMu.Unlock()
	if ok && w.pacer != nil {
		p := w.pacer
		p.pong(nonce, at)
		s.media.rtt.Store(int64(p.lastRTT))
		s.media.queued.Store(int64(p.queueing))
		if w.pacing() {
			s.media.paceBps.Store(uint64(p.rate * 8))
		}
	}
}

// pacing reports whether the writer paces media to this client.
func (w *writer) pacing() bool { return w.pacer != nil && w.pacer.active() }

// voiceMayGo reports whether voice may be written now. Voice does not wait
// for the pacer like video, but it may run the pacer at most
// VoiceQueueDelay into debt: on a link too slow even for the voice, it
// must wait (and age out) in the relay rather than queue in the network.
func (w *writer) voiceMayGo(now int64) bool {
	if !w.pacing() || !w.pacer.fresh(now) {
		return true // no recent view of the link: nothing to hold voice to
	}
	p := w.pacer
	p.refill(now)
	limit := -p.rate * w.s.srv.cfg.VoiceQueueDelay.Seconds()
	if p.tokens >= limit {
		return true
	}
	p.limited = true // the link may carry more: let the pacer probe
	w.wakeAfter(time.Duration((limit - p.tokens) / p.rate * 1e9))
	return false
}

// writeVoice writes the voice frames taken from the queue in one write,
// dropping those that waited too long (while the writer was busy).
func (w *writer) writeVoice(st *protocol.Stream, now int64) (bool, error) {
	s := w.s
	maxAge := int64(s.srv.cfg.VoiceQueueDelay)
	w.voiceB = w.voiceB[:0]
	n := 0
	for i, f := range w.voice {
		if now-f.arrived > maxAge {
			s.media.voiceLate.Add(1)
		} else {
			w.voiceB = append(w.voiceB, f.buf...)
			n++
		}
		f.release()
		w.voice[i] = nil
	}
	w.voice = w.voice[:0]
	if n == 0 {
		return false, nil
	}
	if err := w.write(st, w.voiceB); err != nil {
		return false, err
	}
	s.media.voiceOut.Add(uint64(n))
	w.voiceOutAt = now

	m := &w.media
	if now-m.voiceWindow >= int64(time.Second) {
		m.voiceBps = float64(m.voiceBytes) * 8 / (float64(now-m.voiceWindow) / 1e9)
		m.voiceBytes, m.voiceWindow = 0, now
	}
	m.voiceBytes += len(w.voiceB)
	if cap(w.voiceB) > 64<<10 {
		w.voiceB = nil
	}
	return true, nil
}

// videoChunk is how much of a video fragment the writer sends at a time.
// A Parley frame may span several yamux data frames, so the writer cuts
// the fragments senders made (4 KiB by default) smaller still: a voice
// frame that arrives meanwhile waits behind at most one chunk on the
// receiver's link — 4 ms at 2.5 Mbit/s — and the pacer releases video in
// steps that small. Each chunk costs a yamux header and a TLS record
// (about 3 % at this size).
const videoChunk = 1200

// writeVideo writes the next chunk of video if the pacer allows it. A
// fragment once begun is always finished, whatever happens to the queue
// meanwhile: the video stream must carry whole frames.
func (w *writer) writeVideo(st *protocol.Stream) (bool, error) {
	s := w.s
	now := mono()
	if w.pacing() {
		if wait := w.pacer.videoWait(now); wait > 0 {
			w.wakeAfter(wait)
			return false, nil
		}
	}
	if w.cur == nil {
		s.mu.Lock()
		if s.videoQ.len() == 0 {
			s.mu.Unlock()
			return false, nil
		}
		w.cur, w.curOff = s.videoQ.pop(), 0
		s.mu.Unlock()
	}
	f := w.cur
	end := min(w.curOff+videoChunk, len(f.buf))
	if err := w.write(st, f.buf[w.curOff:end]); err != nil {
		return false, err
	}
	w.curOff = end
	w.videoOutAt = now
	if end == len(f.buf) {
		w.cur = nil
		f.release()
		s.media.videoOut.Add(1)
	}
	return true, nil
}

// relayControl appends the control messages the relay sends of its own
// accord: a Ping for the pacer, keyframe requests and bitrate hints for
// this client as a sender.
func (w *writer) relayControl(ctl []byte, r *room, m *member, now int64, videoQueued bool) []byte {
	s := w.s
	cfg := &s.srv.cfg
	if w.pacer == nil && !cfg.DisablePacing && s.wantsVideo.Load() {
		w.pacer = newPacer(defaultPacerConfig(), now)
	}
	if w.pacer != nil {
		// Pings only while video flows, or voice on a link that showed
		// its limit lately: a Ping (and its Pong) per 100 ms for every
		// voice-only listener would cost as much as the voice, but where
		// even the voice fills the link, the pacer must keep watching it.
		active := videoQueued || w.cur != nil || (w.videoOutAt != 0 && now-w.videoOutAt < int64(time.Second)) ||
			(w.voiceOutAt != 0 && now-w.voiceOutAt < int64(time.Second) && w.pacer.congested(now))
		// Before any media, one Ping measures the path while it is
		// empty: the least round trip that later ones are judged by.
		probe := w.pacer.pongs == 0 && len(w.pacer.out) == 0 && s.wantsVideo.Load()
		active = active || probe
		due, in := w.pacer.pingDue(now, active && m != nil)
		switch {
		case due:
			w.pingNonce++
			ctl, _ = (&protocol.Ping{Nonce: w.pingNonce}).AppendBinary(ctl)
			w.pacer.pingSent(w.pingNonce, w.written+uint64(len(ctl)), now)
			w.wakeAfter(w.pacer.cfg.pingTimeout)
		case in > 0:
			w.wakeAfter(in)
		}
		// A budget only where the link has shown its limit (the pacer cut
		// its rate lately): a pacer that merely has not needed more does
		// not know the link, and a low budget from it would hold every
		// sender down at its starting rate.
		if p := w.pacer; p.active() && p.congested(now) {
			s.videoBudget.Store(uint64(max(0, p.rate*8*0.9-w.media.voiceBps)))
		} else {
			s.videoBudget.Store(0)
		}
	}
	if wanted := s.keyWanted.Load(); wanted != 0 {
		for tr := range protocol.MaxTrack + 1 {
			bit := uint32(1) << tr
			if wanted&bit == 0 {
				continue
			}
			if last := w.media.keyAsked[tr]; last != 0 && now-last < int64(cfg.KeyframeInterval) {
				w.wakeAfter(time.Duration(last + int64(cfg.KeyframeInterval) - now))
				continue
			}
			s.keyWanted.And(^bit)
			w.media.keyAsked[tr] = now
			ctl, _ = (&protocol.KeyframeRequest{Track: tr}).AppendBinary(ctl)
			s.media.keyframeRequests.Add(1)
		}
	}
	if m != nil {
		for tr := range protocol.MaxTrack + 1 {
			if !s.sendsVideo(tr, now) {
				continue
			}
			if now < w.media.hintNext[tr] {
				w.wakeAfter(time.Duration(w.media.hintNext[tr] - now))
				continue
			}
			w.media.hintNext[tr] = now + int64(time.Second)
			w.wakeAfter(time.Second)
			hint := w.bitrateFor(r, m, tr, now)
			last := w.media.hintLast[tr]
			if last == 0 || diff(hint, last) > last/10 || now-w.media.hintAt[tr] >= int64(hintRepeat) {
				ctl, _ = (&protocol.BitrateHint{Track: tr, Bitrate: uint32(min(hint, 1<<32-1))}).AppendBinary(ctl)
				w.media.hintLast[tr], w.media.hintAt[tr] = hint, now
			}
		}
	}
	return ctl
}

func diff(a, b uint64) uint64 {
	if a > b {
		return a - b
	}
	return b - a
}

// bitrateFor works out the bitrate this client's track should use: the
// least that any receiver can take, each receiver's link shared among the
// video tracks it receives, and each receiver's own hint for this track —
// leaving out receivers below MinVideoBitrate — capped by VideoBitrateCap.
func (w *writer) bitrateFor(r *room, self *member, tr protocol.Track, now int64) uint64 {
	cfg := &w.s.srv.cfg
	list := r.memberList()
	tracks := func(o *member) int {
		n := 0
		for t := range protocol.MaxTrack + 1 {
			if o.sess.sendsVideo(t, now) {
				n++
			}
		}
		return n
	}
	total := 0
	for _, o := range list {
		total += tracks(o)
	}
	hint := uint64(cfg.VideoBitrateCap)
	for _, o := range list {
		if o == self || !o.sess.wantsVideo.Load() {
			continue
		}
		var share uint64
		if b := o.sess.videoBudget.Load(); b > 0 {
			share = b / uint64(max(1, total-tracks(o)))
		}
		if h := uint64(o.sess.hintFor(srcTrack{self.id, tr})); h > 0 && (share == 0 || h < share) {
			share = h
		}
		if share >= uint64(cfg.MinVideoBitrate) && share < hint {
			hint = share
		}
	}
	return hint
}
