package audio

import (
	"fmt"
	"math"
	"math/bits"
	"slices"
	"sync"
	"time"

	"github.com/parleychat/parley/media"
)

// How the jitter buffer works.
//
// Each packet carries the sender's sequence number (one per 20 ms frame)
// and the capture time of its first sample by the sender's clock. On
// arrival the buffer notes the transit arrival−capture (which includes the
// offset between the two clocks, constant but for drift; it is measured
// from the first packet's arrival and capture, so that it stays small
// however far apart the clocks are). Over a window of
// recent arrivals, the smallest transit is the fastest path; a packet's
// deviation is its transit minus that minimum. The target delay is a high
// quantile of the deviations, clamped to [MinDelay, MaxDelay]; it rises at
// once and falls by at most 1 ms per tick (50 ms per second).
//
// Playout runs on the caller's 20 ms clock. For the packet due next, the
// buffer's delay is now − (capture + minimum transit): how much later than
// the fastest possible it is played. The buffer keeps that delay in
// [target, target+20 ms): below, it inserts a concealed frame (the decoder's
// PLC) without consuming a packet; above by more than 5 ms, it skips one
// packet (returned in Skip, to be decoded and discarded so the decoder
// state stays continuous), preferably while the speaker is quiet
// (NoteLevel), at most one frame in five.
//
// A frame whose packet is missing when it is due is lost: if the packet
// after it is here the frame is rebuilt from its forward error correction,
// else concealed. With no packet at all (an underrun, or the speaker has
// stopped) up to MaxConceal frames are concealed, then the buffer goes idle
// (PlayNone) and restarts when packets come back and the first has waited
// the target delay; packets that are by then more than two frames behind
// the target are dropped as late. A packet for a frame already played or
// concealed is late (or a duplicate) and dropped.
//
// A packet whose sequence number disagrees with its capture time by more
// than resyncTolerance (against the newest packet so far) starts a new
// stream: the sender restarted, or paused without advancing its sequence
// numbers. The buffer then drops what it holds and starts again from that
// packet. Sequence numbers compare modulo 2³², so they may wrap.

// PlayKind says what to do with one playout tick.
type PlayKind uint8

const (
	// PlayNone: nothing to play: the buffer has not started, or is idle
	// after an underrun. Play silence (or nothing).
	PlayNone PlayKind = iota
	// PlayDecode: decode Payload and play it.
	PlayDecode
	// PlayFEC: the frame is lost; rebuild it from the forward error
	// correction in Payload, the packet that follows it (which is played
	// normally on the next tick).
	PlayFEC
	// PlayConceal: the frame is lost (or inserted to grow the delay);
	// conceal it with the decoder's PLC.
	PlayConceal
)

func (k PlayKind) String() string {
	switch k {
	case PlayNone:
		return "none"
	case PlayDecode:
		return "decode"
	case PlayFEC:
		return "fec"
	case PlayConceal:
		return "conceal"
	}
	return fmt.Sprintf("PlayKind(%d)", k)
}

// Playout is what one tick plays. Payload and Skip alias buffers owned by
// the JitterBuffer and are valid until the next Pop.
type Playout struct {
	Kind PlayKind
	// Seq is the frame's sequence number; for a frame inserted to grow
	// the delay, that of the frame it follows. Not set for PlayNone.
	Seq     uint32
	Payload []byte // for PlayDecode and PlayFEC
	// Skip, when not nil, is a packet the buffer drops to shrink its
	// delay: decode it and discard the result before handling Payload,
	// so that the decoder's state stays continuous.
	Skip []byte
}

// JitterConfig configures a JitterBuffer. The zero value uses the defaults.
type JitterConfig struct {
	// MinDelay and MaxDelay clamp the target delay; 0 means 20 ms and
	// 200 ms.
	MinDelay, MaxDelay time.Duration
	// InitialDelay is the target before any jitter is measured; 0 means
	// 40 ms.
	InitialDelay time.Duration
	// Quantile of the deviations that sets the target; 0 means 0.97.
	Quantile float64
	// Window is how many recent arrivals the jitter is measured over;
	// 0 means 100 (2 s of audio).
	Window int
	// LossWindow is how many recent playout ticks LossFraction covers;
	// 0 means 250 (5 s).
	LossWindow int
	// MaxConceal is how many frames an underrun conceals before the
	// buffer goes idle; 0 means 5 (100 ms).
	MaxConceal int
	// Capacity is how many packets the buffer holds, rounded up to a
	// power of two; more are dropped oldest first, counted as overflow.
	// 0 means 64 (1.28 s).
	Capacity int
}

// JitterStats are a JitterBuffer's counters and measures.
type JitterStats struct {
	Played       uint64 // frames decoded from their own packet
	Concealed    uint64 // lost frames concealed (PLC), underruns included
	RecoveredFEC uint64 // lost frames rebuilt from the next packet's FEC
	Stretched    uint64 // concealed frames inserted to grow the delay
	Skipped      uint64 // packets skipped to shrink the delay
	Late         uint64 // packets that came after their frame was due
	Duplicates   uint64 // packets received twice
	Overflow     uint64 // packets dropped because the buffer was full
	Resyncs      uint64 // new streams (sender restart or discontinuity)
	Idle         uint64 // ticks with nothing to play
	Buffered     int    // packets held now

	TargetDelay time.Duration // current target delay
	Delay       time.Duration // delay of the last frame played, beyond the fastest path
	Jitter      time.Duration // the configured quantile of the deviations
	// LossFraction is the fraction of the last LossWindow frames played
	// that were lost (concealed or rebuilt from FEC): what the listener
	// reports to the speaker so that it adds FEC.
	LossFraction float64
}

const (
	// resyncTolerance is how far a packet's capture time may stray from
	// what its sequence number predicts before it starts a new stream.
	resyncTolerance = 200 * time.Millisecond
	// skipHysteresis is how far over target+1 frame the delay must be to
	// skip a packet; the same margin below the target inserts a frame.
	skipHysteresis = 5 * time.Millisecond
	// skipSpacing is the fewest ticks between two skips.
	skipSpacing = 5
	// skipPatience is how many ticks over target the buffer waits for a
	// quiet frame before it skips anyway.
	skipPatience = 25
	// quietLevel is the RFC 6464 level from which a frame counts as quiet.
	quietLevel = 50
	// targetFall is how much the target may fall per tick.
	targetFall = time.Millisecond
)

type jbState uint8

const (
	stateWaiting jbState = iota // not started, or idle after an underrun
	statePlaying
)

type slot struct {
	ok       bool
	seq      uint32
	captured time.Time
	data     []byte
}

// JitterBuffer reorders one speaker's Opus packets and plays them out at a
// steady pace with an adaptive delay. Push and Pop may be called from
// different goroutines; the clock is an argument, so that a simulation is
// deterministic.
type JitterBuffer struct {
	cfg JitterConfig

	mu sync.Mutex // guards all below
	// Packets, indexed by seq modulo len(slots).
	slots []slot
	count int // slots in use
	state jbState
	// next is the sequence number of the next frame to play, valid once
	// started; nextValid says whether it is.
	next      uint32
	nextValid bool
	concealed int // frames concealed in a row by the current underrun
	// The newest packet so far (by sequence number), for resync checks.
	high     uint32
	highCapt time.Time
	haveHigh bool
	// Recently played frames (bit i: next-1-i), to tell duplicates from
	// late packets.
	playedBits uint64
	// Jitter measurement: transits of the last cfg.Window arrivals,
	// relative to the capture and arrival times of the first (transitLocked).
	capRef, nowRef time.Time
	haveRef        bool
	transits       []time.Duration
	tpos           int
	sorted         []time.Duration // scratch
	minT           time.Duration
	jitter         time.Duration
	target         time.Duration
	// Shrinking.
	quiet     bool
	overTicks int
	sinceSkip int
	// Loss window: one entry per frame played (true: lost).
	lossRing  []bool
	lossPos   int
	lossCount int
	lossLen   int

	stats JitterStats
	out   []byte // Payload returned by Pop
	skip  []byte // Skip returned by Pop
}

// NewJitterBuffer returns an empty buffer.
func NewJitterBuffer(cfg JitterConfig) *JitterBuffer {
	if cfg.MinDelay <= 0 {
		cfg.MinDelay = 20 * time.Millisecond
	}
	if cfg.MaxDelay <= 0 {
		cfg.MaxDelay = 200 * time.Millisecond
	}
	cfg.MaxDelay = max(cfg.MaxDelay, cfg.MinDelay)
	if cfg.InitialDelay <= 0 {
		cfg.InitialDelay = 40 * time.Millisecond
	}
	cfg.InitialDelay = min(max(cfg.InitialDelay, cfg.MinDelay), cfg.MaxDelay)
	if cfg.Quantile <= 0 || cfg.Quantile > 1 {
		cfg.Quantile = 0.97
	}
	if cfg.Window <= 0 {
		cfg.Window = 100
	}
	if cfg.LossWindow <= 0 {
		cfg.LossWindow = 250
	}
	if cfg.MaxConceal <= 0 {
		cfg.MaxConceal = 5
	}
	if cfg.Capacity <= 0 {
		cfg.Capacity = 64
	}
	// A power of two, so that slot indices stay consecutive when sequence
	// numbers wrap.
	cfg.Capacity = 1 << bits.Len(uint(max(cfg.Capacity, 4)-1))
	return &JitterBuffer{
		cfg:      cfg,
		slots:    make([]slot, cfg.Capacity),
		transits: make([]time.Duration, 0, cfg.Window),
		sorted:   make([]time.Duration, 0, cfg.Window),
		lossRing: make([]bool, cfg.LossWindow),
		target:   cfg.InitialDelay,
	}
}

// diff returns a−b as a signed distance modulo 2³².
func diff(a, b uint32) int64 { return int64(int32(a - b)) }

func (b *JitterBuffer) slot(seq uint32) *slot { return &b.slots[seq%uint32(len(b.slots))] }

// has reports whether the packet seq is buffered.
func (b *JitterBuffer) has(seq uint32) bool {
	s := b.slot(seq)
	return s.ok && s.seq == seq
}

// Push adds a packet that arrived at now. It copies payload: the buffer
// holds at most Capacity packets, in buffers it reuses, so that its memory
// stays under about 2×(Capacity+2) times the largest payload pushed (the
// protocol limits a voice payload to under 4 KiB).
func (b *JitterBuffer) Push(seq uint32, captured time.Time, payload []byte, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()

	if b.haveHigh {
		predicted := b.highCapt.Add(time.Duration(diff(seq, b.high)) * media.FrameDuration)
		if d := captured.Sub(predicted); d > resyncTolerance || d < -resyncTolerance {
			b.resyncLocked(captured, now)
		}
	}
	if b.nextValid && diff(seq, b.next) < 0 {
		if back := diff(b.next, seq); back <= 64 && b.playedBits&(1<<(back-1)) != 0 {
			b.stats.Duplicates++
			return
		}
		b.stats.Late++
		b.measureLocked(captured, now)
		return
	}
	if b.has(seq) {
		b.stats.Duplicates++
		return
	}
	b.measureLocked(captured, now)
	if !b.haveHigh || diff(seq, b.high) > 0 {
		b.high, b.highCapt, b.haveHigh = seq, captured, true
	}
	if !b.makeRoomLocked(seq) {
		return
	}
	s := b.slot(seq)
	s.ok, s.seq, s.captured = true, seq, captured
	s.data = append(s.data[:0], payload...)
	b.count++
}

// makeRoomLocked drops the oldest packets (advancing the playout position
// when playing) until seq fits in the slots. It returns false, counting
// seq as overflow, when seq is itself the oldest and does not fit.
func (b *JitterBuffer) makeRoomLocked(seq uint32) bool {
	capacity := int64(len(b.slots))
	if b.nextValid {
		if ahead := diff(seq, b.next); ahead >= capacity {
			// Skip the playout position forward; every packet it
			// passes over is dropped.
			if ahead >= 2*capacity {
				b.stats.Overflow += uint64(b.count)
				b.clearLocked()
				b.next = seq - uint32(capacity) + 1
				b.playedBits = 0
				return true
			}
			for diff(seq, b.next) >= capacity {
				b.dropLocked(b.next)
				b.next++
				b.playedBits <<= 1
			}
		}
		return true
	}
	// Not started: the newest packet is the base. A packet Capacity or
	// more behind it would take the slot of a newer one.
	if diff(b.high, seq) >= capacity {
		b.stats.Overflow++
		return false
	}
	for b.count > 0 {
		oldest, ok := b.oldestLocked()
		if !ok || diff(seq, oldest) < capacity {
			break
		}
		b.dropLocked(oldest)
	}
	return true
}

func (b *JitterBuffer) dropLocked(seq uint32) {
	if b.has(seq) {
		b.slot(seq).ok = false
		b.count--
		b.stats.Overflow++
	}
}

func (b *JitterBuffer) clearLocked() {
	for i := range b.slots {
		b.slots[i].ok = false
	}
	b.count = 0
}

// oldestLocked returns the buffered packet with the lowest sequence number
// (relative to the newest).
func (b *JitterBuffer) oldestLocked() (uint32, bool) {
	if b.count == 0 {
		return 0, false
	}
	var best uint32
	var bestDist int64 = -1
	for i := range b.slots {
		s := &b.slots[i]
		if !s.ok {
			continue
		}
		if d := diff(b.high, s.seq); d > bestDist {
			best, bestDist = s.seq, d
		}
	}
	return best, true
}

// resyncLocked starts a new stream: the buffered packets are dropped and
// the playout position forgotten. A transit far off the measured ones (the
// sender's clock changed) restarts the jitter measurement too.
func (b *JitterBuffer) resyncLocked(captured, now time.Time) {
	b.stats.Resyncs++
	b.stats.Overflow += uint64(b.count)
	b.clearLocked()
	b.state, b.nextValid, b.haveHigh, b.concealed = stateWaiting, false, false, 0
	b.playedBits = 0
	if len(b.transits) > 0 {
		if d := subSat(b.transitLocked(captured, now), b.minT); d > time.Second || d < -time.Second {
			b.transits = b.transits[:0]
			b.tpos = 0
			b.haveRef = false
		}
	}
}

// transitLocked returns the transit of a packet captured at captured and
// arriving at now, up to a constant: (now−nowRef) − (captured−capRef),
// where the references are the first packet measured since the
// measurements were last reset. now.Sub(captured) would saturate for a
// sender whose clock is more than 292 years from the receiver's, and every
// packet would seem to have the same transit.
func (b *JitterBuffer) transitLocked(captured, now time.Time) time.Duration {
	if !b.haveRef {
		b.capRef, b.nowRef, b.haveRef = captured, now, true
	}
	return subSat(now.Sub(b.nowRef), captured.Sub(b.capRef))
}

// subSat returns x−y, saturated to the range of time.Duration.
func subSat(x, y time.Duration) time.Duration {
	d := x - y
	switch {
	case y > 0 && d > x:
		return math.MinInt64
	case y < 0 && d < x:
		return math.MaxInt64
	}
	return d
}

// measureLocked records the transit of a packet and updates the jitter and
// the target.
func (b *JitterBuffer) measureLocked(captured, now time.Time) {
	t := b.transitLocked(captured, now)
	if len(b.transits) < cap(b.transits) {
		b.transits = append(b.transits, t)
	} else {
		b.transits[b.tpos] = t
		b.tpos = (b.tpos + 1) % len(b.transits)
	}
	b.sorted = append(b.sorted[:0], b.transits...)
	slices.Sort(b.sorted)
	b.minT = b.sorted[0]
	q := int(b.cfg.Quantile*float64(len(b.sorted))+0.5) - 1
	q = min(max(q, 0), len(b.sorted)-1)
	b.jitter = subSat(b.sorted[q], b.minT)
	if raw := b.rawTargetLocked(); raw > b.target {
		b.target = raw
	}
}

func (b *JitterBuffer) rawTargetLocked() time.Duration {
	if len(b.transits) < 10 {
		return max(b.cfg.InitialDelay, min(max(b.jitter, b.cfg.MinDelay), b.cfg.MaxDelay))
	}
	return min(max(b.jitter, b.cfg.MinDelay), b.cfg.MaxDelay)
}

// delayLocked is how much later than the fastest path the packet captured
// at c is played at now.
func (b *JitterBuffer) delayLocked(c, now time.Time) time.Duration {
	return subSat(b.transitLocked(c, now), b.minT)
}

// NoteLevel tells the buffer the RFC 6464 level of the frame just played,
// so that it skips packets to shrink its delay while the speaker is quiet.
func (b *JitterBuffer) NoteLevel(level uint8) {
	b.mu.Lock()
	b.quiet = level >= quietLevel
	b.mu.Unlock()
}

// Pop returns what to play for the tick at now. Call it once per 20 ms.
func (b *JitterBuffer) Pop(now time.Time) Playout {
	b.mu.Lock()
	defer b.mu.Unlock()

	if raw := b.rawTargetLocked(); raw < b.target {
		b.target = max(raw, b.target-targetFall)
	}
	b.sinceSkip++

	if b.state == stateWaiting {
		if !b.startLocked(now) {
			b.stats.Idle++
			return Playout{}
		}
	}

	s := b.slot(b.next)
	switch {
	case s.ok && s.seq == b.next:
		b.concealed = 0
		d := b.delayLocked(s.captured, now)
		b.stats.Delay = d
		if d < b.target-skipHysteresis {
			// Grow: conceal one frame and keep the packet.
			b.stats.Stretched++
			return Playout{Kind: PlayConceal, Seq: b.next - 1}
		}
		var p Playout
		if d > b.target+media.FrameDuration+skipHysteresis && b.has(b.next+1) {
			b.overTicks++
			if b.sinceSkip >= skipSpacing && (b.quiet || b.overTicks >= skipPatience) {
				b.skip = append(b.skip[:0], s.data...)
				p.Skip = b.skip
				b.takeLocked(true)
				b.stats.Skipped++
				b.stats.Played-- // counted as skipped, not played
				b.sinceSkip, b.overTicks = 0, 0
				s = b.slot(b.next)
				b.stats.Delay = d - media.FrameDuration
			}
		} else {
			b.overTicks = 0
		}
		b.out = append(b.out[:0], s.data...)
		p.Kind, p.Seq, p.Payload = PlayDecode, b.next, b.out
		b.takeLocked(true)
		b.noteLossLocked(false)
		return p
	case b.count > 0:
		// Lost: a later packet is here.
		b.concealed = 0
		p := Playout{Kind: PlayConceal, Seq: b.next}
		if b.has(b.next + 1) {
			b.out = append(b.out[:0], b.slot(b.next+1).data...)
			p.Kind, p.Payload = PlayFEC, b.out
			b.stats.RecoveredFEC++
		} else {
			b.stats.Concealed++
		}
		b.takeLocked(false)
		b.noteLossLocked(true)
		return p
	case b.concealed < b.cfg.MaxConceal:
		// Underrun: conceal a few frames.
		b.concealed++
		b.stats.Concealed++
		p := Playout{Kind: PlayConceal, Seq: b.next}
		b.takeLocked(false)
		b.noteLossLocked(true)
		return p
	default:
		b.state = stateWaiting
		b.concealed = 0
		b.stats.Idle++
		return Playout{}
	}
}

// startLocked starts (or restarts) playout when the oldest useful packet
// has waited the target delay; packets already too far behind it are
// dropped as late.
func (b *JitterBuffer) startLocked(now time.Time) bool {
	for {
		seq, ok := b.oldestLocked()
		if !ok {
			return false
		}
		s := b.slot(seq)
		d := b.delayLocked(s.captured, now)
		if d > b.target+2*media.FrameDuration && b.count > 1 {
			s.ok = false
			b.count--
			b.stats.Late++
			continue
		}
		if d < b.target {
			return false
		}
		if b.nextValid && diff(seq, b.next) > 0 {
			// Frames between the old position and this packet were
			// never played; they do not count as played.
			b.playedBits = 0
		}
		b.next, b.nextValid, b.state = seq, true, statePlaying
		return true
	}
}

// takeLocked consumes frame next (played from its packet or not).
func (b *JitterBuffer) takeLocked(played bool) {
	if played {
		b.slot(b.next).ok = false
		b.count--
		b.stats.Played++
	}
	b.playedBits <<= 1
	if played {
		b.playedBits |= 1
	}
	b.next++
}

func (b *JitterBuffer) noteLossLocked(lost bool) {
	if b.lossLen == len(b.lossRing) {
		if b.lossRing[b.lossPos] {
			b.lossCount--
		}
	} else {
		b.lossLen++
	}
	b.lossRing[b.lossPos] = lost
	if lost {
		b.lossCount++
	}
	b.lossPos = (b.lossPos + 1) % len(b.lossRing)
}

// Stats returns the counters and current measures.
func (b *JitterBuffer) Stats() JitterStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.stats
	st.Buffered = b.count
	st.TargetDelay = b.target
	st.Jitter = b.jitter
	if b.lossLen > 0 {
		st.LossFraction = float64(b.lossCount) / float64(b.lossLen)
	}
	return st
}

// LossFraction returns the fraction of recent frames lost (see
// JitterStats.LossFraction).
func (b *JitterBuffer) LossFraction() float64 { return b.Stats().LossFraction }
