package relay

import "time"

// pacer paces the media a relay writes to one receiver a little below what
// the receiver's link carries, so that queues form in the relay — where
// voice goes first and video can be dropped back to a keyframe — and not in
// the network, where a voice frame waits behind every byte ahead of it.
// (TCP_NOTSENT_LOWAT keeps the kernel's share small, but the bottleneck's
// buffer, or a proxy's, can hold seconds of data.)
//
// It learns the link from the relay's own Pings on the control stream. A
// Pong says two things: how long the round trip took, which above its
// minimum is the time the Ping queued on the path; and that every byte
// written before the Ping has arrived, since TCP delivers in order, which
// gives the delivery rate between two Pongs. The pacing rate follows both,
// in the way of delay-based congestion control (LEDBAT, BBR, WebRTC's GCC):
//
//   - queueing above the target: cut the rate below the fastest recent
//     delivery rate — to 90 % of it, down to 50 % when the queue is long,
//     so that it drains within about half a second — at most once per
//     round trip;
//   - queueing below half the target while the pacer held video back: raise
//     the rate by 5 % per sample, or by 15 % below a quarter of the target,
//     probing for more;
//   - otherwise hold.
//
// A receiver that never answers a Ping is not paced once that is clear. The pacer is owned by
// the session's writer goroutine; times are mono() nanoseconds.
type pacer struct {
	cfg pacerConfig

	rate     float64 // bytes per second
	tokens   float64 // bytes that may be sent now; negative: debt
	tokensAt int64

	minRTT  windowed // smallest round trip: the path without queueing
	maxRate windowed // fastest delivery rate seen recently
	lastCut int64
	limited bool // video waited for tokens since the last sample

	// Pings in flight, oldest first (a window of outBuf).
	out       []pingMark
	outBuf    [32]pingMark
	lastPing  int64
	lastPong  int64 // when the last Ping was answered
	firstPing int64 // when the first Ping went; 0: none yet
	pongs     int
	deaf      bool // no Ping was ever answered: the client does not answer them
	// Recent answered Pings (when answered, bytes before them), to
	// measure delivery over spans long enough that a Ping's wait behind
	// one fragment does not skew it.
	hist     [16]pingMark
	histLen  int
	lastRTT  time.Duration
	queueing time.Duration // latest round trip above the minimum
	// The Ping overdue last cut the rate for, and how long it had waited.
	overdueNonce uint64
	overdueAge   time.Duration
}

type pacerConfig struct {
	initial, min, max float64       // bytes per second
	target            time.Duration // acceptable queueing delay
	pingEvery         time.Duration
	pingTimeout       time.Duration
}

func defaultPacerConfig() pacerConfig {
	return pacerConfig{
		initial:     300e3 / 8,
		min:         16e3 / 8,
		max:         100e6 / 8,
		target:      5 * time.Millisecond,
		pingEvery:   100 * time.Millisecond,
		pingTimeout: 3 * time.Second,
	}
}

func newPacer(cfg pacerConfig, now int64) *pacer {
	return &pacer{
		cfg: cfg, rate: cfg.initial, tokensAt: now,
		minRTT:  windowed{span: int64(30 * time.Second), min: true},
		maxRate: windowed{span: int64(5 * time.Second)},
	}
}

// active reports whether the pacer paces: from the start, at the initial
// rate, until it is clear that the client does not answer Pings (none
// answered within unansweredLimit of the first).
func (p *pacer) active() bool { return !p.deaf }

// fresh reports whether the pacer's view of the link is recent: it has
// heard back from a Ping lately, or it has Pings in flight — on a link
// with seconds queued the answers take seconds, and that is when holding
// voice to the rate matters most: voice that may not wait in the relay
// keeps the link's queue from ever draining.
func (p *pacer) fresh(now int64) bool {
	return p.active() && p.lastPong != 0 && (now-p.lastPong < int64(2*time.Second) || len(p.out) > 0)
}

// congested reports whether the link has shown its limit lately (the
// pacer cut its rate within calmAfter).
func (p *pacer) congested(now int64) bool {
	return p.lastCut != 0 && now-p.lastCut < int64(calmAfter)
}

// unansweredLimit is how long Pings may go unanswered from the first
// before the pacer decides the client does not answer them.
const unansweredLimit = 3 * time.Second

// burst is how many bytes may go at once: 5 ms at the current rate, but at
// least one chunk of video.
func (p *pacer) burst() float64 { return max(p.rate*0.005, 2*videoChunk) }

func (p *pacer) refill(now int64) {
	if d := now - p.tokensAt; d > 0 {
		p.tokens = min(p.tokens+p.rate*float64(d)/1e9, p.burst())
	}
	p.tokensAt = now
}

// spend records n bytes written.
func (p *pacer) spend(n int, now int64) {
	p.refill(now)
	p.tokens -= float64(n)
}

// videoWait returns how long video must wait before the next fragment may
// go: 0 when it may go now.
func (p *pacer) videoWait(now int64) time.Duration {
	if !p.active() {
		return 0
	}
	p.refill(now)
	if p.tokens >= 0 {
		return 0
	}
	p.limited = true
	return time.Duration(-p.tokens / p.rate * 1e9)
}

// pingDue reports whether a Ping should be sent now, and when otherwise
// the next is due (0: none while idle). Pings go every pingEvery whether
// or not earlier ones were answered, so that a long queue, which delays
// the answers, does not also delay the news of it.
func (p *pacer) pingDue(now int64, mediaActive bool) (bool, time.Duration) {
	for len(p.out) > 0 && now-p.out[0].at >= int64(p.cfg.pingTimeout) {
		// Unanswered: the path is badly congested, or the client does
		// not answer. Count it as a sample as long as the wait.
		p.out = p.out[1:]
		if p.pongs > 0 {
			p.sample(p.cfg.pingTimeout, 0, now)
		} else if now-p.firstPing >= int64(unansweredLimit) {
			p.deaf = true
		}
	}
	p.overdue(now)
	if !mediaActive {
		return false, 0
	}
	// Often while video is held back or a queue shows, else a fourth as
	// often: enough to notice a change, at a quarter of the cost.
	interval := p.cfg.pingEvery
	switch {
	case p.lastCut == 0 && p.limited:
		// Slow start: each answer may raise the rate, so more answers
		// find a fast link sooner — and a slow one before much is
		// queued in it.
		interval /= 4
	case !p.limited && p.queueing < p.cfg.target/2 && now-p.lastCut > int64(calmAfter):
		interval *= 4
	}
	if left := p.lastPing + int64(interval) - now; (left > 0 && p.firstPing != 0) || len(p.out) == cap(p.outBuf) {
		if left <= 0 {
			left = p.out[0].at + int64(p.cfg.pingTimeout) - now
		}
		return false, time.Duration(left)
	}
	return true, 0
}

// overdue cuts the rate when the oldest unanswered Ping has waited longer
// than a round trip with four times the target's queueing would take (and
// at least overdueAfter more than the least round trip), and again each
// time its wait doubles: the queue is at least that long already, and the
// answer, which waits in the same queue, would bring the news only once it
// has drained. Without this a receiver on a slow link whom a call starts at
// the initial rate gets a second of media queued in its link before the
// first answer arrives — 8 s of it on an 8 KB/s link — which its voice
// then waits behind.
func (p *pacer) overdue(now int64) {
	if len(p.out) == 0 || p.pongs == 0 {
		return
	}
	age := time.Duration(now - p.out[0].at)
	bw := p.bandwidth()
	if age-time.Duration(p.minRTT.value()) <= max(4*p.targetDelay(bw), overdueAfter) {
		return
	}
	if p.out[0].nonce == p.overdueNonce && age < 2*p.overdueAge {
		return
	}
	p.rate = max(min(p.rate, bw)*0.5, p.cfg.min)
	p.lastCut = now
	p.overdueNonce, p.overdueAge = p.out[0].nonce, age
}

// overdueAfter is the least wait that makes a Ping overdue. Shorter waits
// are left to its answer: a busy machine delays the answers of fast
// receivers by tens of milliseconds, which is no queue in their link.
const overdueAfter = 100 * time.Millisecond

// pingSent records a Ping written after bytes bytes.
func (p *pacer) pingSent(nonce uint64, bytes uint64, now int64) {
	if len(p.out) == 0 {
		p.out = p.outBuf[:0]
	} else if len(p.out) == cap(p.out) { // move to the front of outBuf
		p.out = p.outBuf[:copy(p.outBuf[:], p.out)]
	}
	p.out = append(p.out, pingMark{nonce, now, bytes})
	p.lastPing = now
	if p.firstPing == 0 {
		p.firstPing = now
	}
}

// pong records the answer to a Ping; others are ignored.
func (p *pacer) pong(nonce uint64, now int64) {
	i := 0
	for i < len(p.out) && p.out[i].nonce != nonce {
		i++
	}
	if i == len(p.out) {
		return
	}
	ping := p.out[i]
	p.out = p.out[i+1:] // earlier ones will not be answered now: TCP keeps order
	rtt := time.Duration(now - ping.at)
	var delivered float64
	for j := p.histLen - 1; j >= max(0, p.histLen-len(p.hist)); j-- {
		if e := p.hist[j%len(p.hist)]; now-e.at >= int64(deliverySpan) {
			delivered = float64(ping.bytes-e.bytes) / (float64(now-e.at) / 1e9)
			break
		}
	}
	p.hist[p.histLen%len(p.hist)] = pingMark{at: now, bytes: ping.bytes}
	p.histLen++
	if p.histLen >= 2*len(p.hist) {
		p.histLen -= len(p.hist)
	}
	p.pongs++
	p.lastPong = now
	p.deaf = false
	p.sample(rtt, delivered, now)
}

// pingMark is one Ping: when it was sent (or answered, in hist) and the
// bytes written before it.
type pingMark struct {
	nonce uint64
	at    int64
	bytes uint64
}

// deliverySpan is the shortest span a delivery rate is measured over.
const deliverySpan = 200 * time.Millisecond

// sample adapts the rate to one round trip and delivery rate (0: none).
func (p *pacer) sample(rtt time.Duration, delivered float64, now int64) {
	p.lastRTT = rtt
	p.minRTT.add(float64(rtt), now)
	if delivered > 0 {
		p.maxRate.add(delivered, now)
	}
	p.queueing = rtt - time.Duration(p.minRTT.value())
	bw := p.bandwidth()
	target := p.targetDelay(bw)
	switch {
	case p.queueing > target:
		if now-p.lastCut < int64(max(rtt, p.cfg.pingEvery)) {
			break // one cut per round trip: the last one has not shown yet
		}
		// Go below the delivery rate, the further the longer the queue,
		// so that it drains within about half a second.
		factor := min(max(1-(p.queueing-target).Seconds()/0.5, 0.5), 0.9)
		p.rate = max(min(p.rate, bw*factor), p.cfg.min)
		p.lastCut = now
	case p.queueing < target/4 && p.limited && p.lastCut == 0:
		// Slow start: never cut yet, so the link's rate is not known.
		p.raise(1.5, now)
	case p.queueing < target/4 && p.limited:
		p.raise(1.15, now) // far from a queue: find the link fast
	case p.queueing < target/2 && p.limited:
		p.raise(1.05, now)
	}
	p.limited = false
	p.refill(now)
}

// bandwidth is the best recent delivery rate, or the pacing rate before
// there is one.
func (p *pacer) bandwidth() float64 {
	if bw := p.maxRate.value(); bw > 0 {
		return bw
	}
	return p.rate
}

// targetDelay is the queueing the pacer accepts on a link of bw. A Ping
// that arrives while a burst is on the wire waits for the rest of it,
// half a burst on average: that is not a queue building up, so it raises
// the target.
func (p *pacer) targetDelay(bw float64) time.Duration {
	return p.cfg.target + time.Duration(p.burst()/bw*1e9/2)
}

// raise probes for more: the rate grows by factor, up to probeCap, and
// never falls. (The cap follows the best delivery rate seen, which can be
// far below the rate: a call's first Pongs, answered while it was still
// quiet, measure almost nothing delivered. Taking the cap as it is made the
// slow start cut the rate of every new receiver to the floor, 64 kbit/s,
// and drop its first seconds of video.) Only a queue cuts the rate.
func (p *pacer) raise(factor float64, now int64) {
	p.rate = max(p.rate, min(p.rate*factor, p.probeCap(now)))
}

// probeCap bounds how far the rate may grow: a little above the fastest
// delivery seen (probeGain) while the link has shown a queue lately, so
// that probing overshoots it by at most that much; twice that when it has
// not (a fast link whose rate the traffic has not yet needed). When the link
// has more, deliveries show it and the cap moves up with them.
func (p *pacer) probeCap(now int64) float64 {
	m := p.maxRate.value()
	if m == 0 {
		return p.cfg.max
	}
	gain := probeGain
	if p.lastCut == 0 || now-p.lastCut > int64(calmAfter) {
		gain = 2
	}
	return max(min(p.cfg.max, m*gain), p.cfg.min)
}

// probeGain is how far above the best delivery rate the pacer may probe
// on a link that queued lately; calmAfter is how long after the last cut
// it probes harder.
const (
	probeGain = 1.1
	calmAfter = 10 * time.Second
)

// windowed keeps the minimum (or maximum) of samples over a time span,
// with two buckets of span/2: cheap, and exact enough for a filter whose
// job is to forget old extremes.
type windowed struct {
	span     int64
	min      bool // keep the minimum, else the maximum
	cur, old float64
	have     int // 0: none, 1: cur, 2: cur and old
	curStart int64
}

func (w *windowed) better(a, b float64) bool {
	if w.min {
		return a < b
	}
	return a > b
}

func (w *windowed) add(v float64, now int64) {
	if w.have > 0 && now-w.curStart >= w.span/2 {
		stale := now-w.curStart >= w.span // the old bucket would be too old too
		w.old, w.cur, w.curStart = w.cur, v, now
		w.have = 2
		if stale {
			w.have = 1
		}
		return
	}
	if w.have == 0 {
		w.cur, w.curStart, w.have = v, now, 1
		return
	}
	if w.better(v, w.cur) {
		w.cur = v
	}
}

func (w *windowed) value() float64 {
	switch w.have {
	case 0:
		return 0
	case 1:
		return w.cur
	}
	if w.better(w.old, w.cur) {
		return w.old
	}
	return w.cur
}
