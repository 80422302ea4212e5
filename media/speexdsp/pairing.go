package speexdsp

import "github.com/parleychat/parley/media"

// Pairing the streams (see the package doc).
const (
	// maxQueue is the most played frames that wait for the microphone;
	// more means the microphone has stopped.
	maxQueue = 10
	// spareFrames is how many played frames wait, besides the one the
	// microphone frame takes, when the streams are paired afresh.
	spareFrames = 1
	// windowFrames is the window, in microphone frames, over which the
	// queue's depth and lateness are judged.
	windowFrames = 250 // 5 s
	// maxDry is how many microphone frames in a row may find no played
	// frame before the speaker counts as stopped.
	maxDry = 5
)

// pairing pairs played frames with microphone frames: a queue of played
// frames and the rules of the package doc. It is not safe for concurrent
// use.
type pairing struct {
	queue  []int16 // maxQueue frames, a ring
	head   int     // index of the oldest frame in the ring
	n      int     // frames in the ring
	resync bool    // pair the next microphone frame afresh
	debt   int     // played frames owed to microphone frames that went by without them
	paid   bool    // a late frame was thrown away since the last microphone frame
	dry    int     // microphone frames in a row that found no played frame
	paired bool    // the streams were paired since the start or restart

	// Over the current window: the least surplus (frames waiting beyond
	// the one taken and the spare one), the microphone frames, and the
	// times the queue ran dry.
	winMin, winN, winDry int
	// The least surplus of the first window after pairing, once it ended.
	base     int
	haveBase bool

	stats Stats
}

func newPairing() *pairing {
	return &pairing{queue: make([]int16, maxQueue*media.FrameSamples), resync: true}
}

// played queues a frame given to Playback.
func (p *pairing) played(pcm []int16) {
	p.stats.Played++
	if p.debt > 0 {
		// Its microphone frame went by without it: throwing it away keeps
		// the frames after it paired.
		p.debt--
		p.stats.Late++
		p.paid = true
		return
	}
	if p.n == maxQueue { // the microphone has stopped: keep the newest
		p.drop(1)
		p.resync = true
	}
	copy(p.frame(p.n), pcm)
	p.n++
}

// next puts the played frame paired with the next microphone frame in far,
// or silence if it is late or missing. It reports whether the streams were
// paired afresh, other than at the start and after restart: then the
// filter has learned a pairing that no longer holds.
func (p *pairing) next(far []int16) (repaired bool) {
	p.stats.Frames++
	if p.resync && p.n > 0 {
		p.resync = false
		repaired, p.paired = p.paired, true
		p.stats.Resyncs++
		if p.n > 1+spareFrames {
			p.drop(p.n - 1 - spareFrames)
		}
		p.winMin, p.winN, p.winDry = maxQueue, 0, 0
		p.haveBase = false
	}
	p.winMin = min(p.winMin, p.n-1-spareFrames)
	if p.winN++; p.winN == windowFrames {
		switch {
		case !p.haveBase:
			// What waits in the first window stays: the devices' start
			// left it, or the jitter needs it.
			p.base, p.haveBase = max(p.winMin, -spareFrames), true
		case p.winMin > p.base:
			// More has waited all through the window than in the first:
			// the speaker's clock is faster than the microphone's.
			p.drop(p.winMin - p.base)
		}
		p.winMin, p.winN, p.winDry = maxQueue, 0, 0
	}
	if p.n > 0 {
		p.dry, p.paid = 0, false
		copy(far, p.frame(0))
		p.head = (p.head + 1) % maxQueue
		p.n--
		return repaired
	}
	clear(far)
	p.stats.Starved++
	switch {
	case p.resync: // nothing played yet, or the speaker stopped
	case p.dry+1 > maxDry:
		// Nothing played for maxDry frames: the speaker has stopped.
		p.dry, p.debt, p.paid = 0, 0, false
		p.resync = true
	case p.paid:
		// A late frame came, and the next is missing too: the speaker is
		// behind (its clock is slower), not late. The queue grows by this
		// frame.
		p.dry++
		p.paid = false
	default:
		if p.dry++; p.dry == 1 {
			p.winDry++
		}
		if p.winDry == 1 {
			// Late: the frame is owed, and thrown away when it comes.
			p.debt++
		}
		// Late again within the window: not the jitter of a moment. The
		// queue grows by this frame, so that it covers it.
	}
	return repaired
}

// restart pairs the streams afresh at the next microphone frame, as at the
// start.
func (p *pairing) restart() {
	p.resync = true
	p.debt, p.dry, p.paid = 0, 0, false
	p.paired = false
}

// frame returns the i-th queued frame from the oldest.
func (p *pairing) frame(i int) []int16 {
	j := (p.head + i) % maxQueue * media.FrameSamples
	return p.queue[j : j+media.FrameSamples]
}

// drop throws away the k oldest queued frames.
func (p *pairing) drop(k int) {
	p.head = (p.head + k) % maxQueue
	p.n -= k
	p.stats.Dropped += uint64(k)
}
