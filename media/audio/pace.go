package audio

import (
	"errors"
	"sync"
	"time"

	"github.com/parleychat/parley/media"
)

// ErrClosed is returned by a source's ReadFrame after (or during) Close.
var ErrClosed = errors.New("audio: source closed")

// pacer spaces frames 20 ms apart from the first one. ReadFrame runs on the
// reader's goroutine; close may be called from any goroutine and wakes a
// waiting reader.
type pacer struct {
	start  time.Time // due time of frame 0; set by the first wait
	n      int64     // index of the next frame
	once   sync.Once
	closed chan struct{}
}

func newPacer() pacer { return pacer{closed: make(chan struct{})} }

// wait blocks until the next frame is due and returns its due time. A caller
// that is late gets the frame at once: due times stay on the grid.
func (p *pacer) wait() (time.Time, error) {
	select {
	case <-p.closed:
		return time.Time{}, ErrClosed
	default:
	}
	now := time.Now()
	if p.n == 0 {
		p.start = now
	}
	due := p.start.Add(time.Duration(p.n) * media.FrameDuration)
	if d := due.Sub(now); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-p.closed:
			t.Stop()
			return time.Time{}, ErrClosed
		}
	}
	p.n++
	return due, nil
}

func (p *pacer) close() { p.once.Do(func() { close(p.closed) }) }
