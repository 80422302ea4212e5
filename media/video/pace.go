package video

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"sync"
	"time"
)

// ErrClosed is returned by ReadFrame after Close.
var ErrClosed = errors.New("video: source closed")

// Frame rate limits for generated and file sources.
const (
	minFrameRate = 0.1
	maxFrameRate = 1000
	maxRateTerm  = 1 << 20 // numerator and denominator of a frame rate
)

// pacer makes a source run in real time: frame n is due at start + n/rate,
// where start is the time of the first call to wait. A caller that is late
// gets the latest frame that is due at once; the frame numbers it missed are
// skipped, as a live source would not deliver them in a burst.
//
// wait is called from one goroutine at a time; close from any.
type pacer struct {
	num, den uint64 // frames per second = num/den, both in [1, maxRateTerm]
	started  bool
	start    time.Time
	next     uint64 // the lowest frame number wait may return
	timer    *time.Timer

	done      chan struct{} // closed by close
	closeOnce sync.Once
}

// newPacer returns a pacer for num/den frames per second.
func newPacer(num, den uint64) (*pacer, error) {
	if num < 1 || den < 1 || num > maxRateTerm || den > maxRateTerm {
		return nil, fmt.Errorf("frame rate %d/%d out of range", num, den)
	}
	if r := float64(num) / float64(den); r < minFrameRate || r > maxFrameRate {
		return nil, fmt.Errorf("frame rate %.3g out of range (%g to %g per second)", r, float64(minFrameRate), float64(maxFrameRate))
	}
	return &pacer{num: num, den: den, done: make(chan struct{})}, nil
}

// rateFromFloat returns fps as a fraction with a denominator of 1000, reduced.
func rateFromFloat(fps float64) (num, den uint64, err error) {
	if math.IsNaN(fps) || fps < minFrameRate || fps > maxFrameRate {
		return 0, 0, fmt.Errorf("frame rate %g out of range (%g to %g per second)", fps, float64(minFrameRate), float64(maxFrameRate))
	}
	num, den = uint64(math.Round(fps*1000)), 1000
	g := gcd(num, den)
	return num / g, den / g, nil
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// offset returns when frame n is due, after the start: n/rate rounded up to
// the nanosecond.
func (p *pacer) offset(n uint64) time.Duration {
	hi, lo := bits.Mul64(n, p.den*uint64(time.Second))
	if hi >= p.num {
		return math.MaxInt64
	}
	q, r := bits.Div64(hi, lo, p.num)
	if r != 0 {
		q++
	}
	if q > math.MaxInt64 {
		return math.MaxInt64
	}
	return time.Duration(q)
}

// frameAt returns the number of the latest frame due at d after the start.
func (p *pacer) frameAt(d time.Duration) uint64 {
	if d <= 0 {
		return 0
	}
	hi, lo := bits.Mul64(uint64(d), p.num) // hi < den·1e9: d < 2^63, num ≤ 2^20
	q, _ := bits.Div64(hi, lo, p.den*uint64(time.Second))
	return q
}

// wait waits until the next frame is due and returns its number and the
// time it returned at. It fails with ErrClosed once close was called.
func (p *pacer) wait() (n uint64, now time.Time, err error) {
	select {
	case <-p.done:
		return 0, time.Time{}, ErrClosed
	default:
	}
	now = time.Now()
	if !p.started {
		p.started, p.start, p.next = true, now, 1
		return 0, now, nil
	}
	n = max(p.next, p.frameAt(now.Sub(p.start)))
	if d := p.start.Add(p.offset(n)).Sub(now); d > 0 {
		if p.timer == nil {
			p.timer = time.NewTimer(d)
		} else {
			p.timer.Reset(d)
		}
		select {
		case <-p.timer.C:
		case <-p.done:
			p.timer.Stop()
			return 0, time.Time{}, ErrClosed
		}
		now = time.Now()
	}
	p.next = n + 1
	return n, now, nil
}

// close makes wait return ErrClosed, now and from then on.
func (p *pacer) close() {
	p.closeOnce.Do(func() { close(p.done) })
}
