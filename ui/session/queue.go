package session

import (
	"sync"

	"github.com/parleychat/parley/ui"
)

// eventQueue delivers events to the window in order without ever blocking
// the goroutine that sends one: a slow window must not stall the network
// or the media. Events wait in a slice; one goroutine feeds the channel.
type eventQueue struct {
	ch chan ui.Event

	mu         sync.Mutex // guards the fields below
	queue      []ui.Event
	wake       chan struct{} // capacity 1
	closed     bool
	invalidate func()
}

func newEventQueue() *eventQueue {
	q := &eventQueue{ch: make(chan ui.Event), wake: make(chan struct{}, 1)}
	go q.pump()
	return q
}

func (q *eventQueue) setInvalidate(f func()) {
	q.mu.Lock()
	q.invalidate = f
	q.mu.Unlock()
}

// invalidateFunc returns a function that calls the current invalidate.
func (q *eventQueue) invalidateNow() {
	q.mu.Lock()
	f := q.invalidate
	q.mu.Unlock()
	if f != nil {
		f()
	}
}

func (q *eventQueue) push(ev ui.Event) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	q.queue = append(q.queue, ev)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *eventQueue) pump() {
	defer close(q.ch)
	for range q.wake {
		for {
			q.mu.Lock()
			if len(q.queue) == 0 {
				closed := q.closed
				q.mu.Unlock()
				if closed {
					return
				}
				break
			}
			ev := q.queue[0]
			q.queue[0] = nil
			q.queue = q.queue[1:]
			q.mu.Unlock()
			q.ch <- ev
			q.invalidateNow()
		}
	}
}

// close delivers what is queued, then closes the channel.
func (q *eventQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}
