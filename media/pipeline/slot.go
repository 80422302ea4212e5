package pipeline

import "sync"

// slot holds one of a call's sources or sinks, which the user may switch
// while the call runs (another camera, the microphone off, a new
// speaker). Set closes the one it replaces, which makes a ReadFrame or
// WriteFrame in progress on it return; the goroutine using it then sees
// that the slot moved on and picks up the new one.
type slot[T interface{ Close() error }] struct {
	mu      sync.Mutex
	v       T
	ok      bool
	gen     uint64        // bumped by every set
	changed chan struct{} // closed and replaced by every set
}

func newSlot[T interface{ Close() error }](v T, ok bool) *slot[T] {
	return &slot[T]{v: v, ok: ok, changed: make(chan struct{})}
}

// get returns the current value (ok false when empty), its generation, and
// a channel closed at the next change.
func (s *slot[T]) get() (v T, ok bool, gen uint64, changed <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.v, s.ok, s.gen, s.changed
}

// set installs v (or empties the slot, ok false) and closes the previous
// value.
func (s *slot[T]) set(v T, ok bool) {
	s.mu.Lock()
	old, hadOld := s.v, s.ok
	s.v, s.ok = v, ok
	s.gen++
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	if hadOld {
		old.Close()
	}
}

// clearIf empties the slot if it still holds generation gen (a source that
// ended by itself), and closes that value.
func (s *slot[T]) clearIf(gen uint64) bool {
	s.mu.Lock()
	if s.gen != gen || !s.ok {
		s.mu.Unlock()
		return false
	}
	old := s.v
	var zero T
	s.v, s.ok = zero, false
	s.gen++
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	old.Close()
	return true
}

// current reports whether generation gen is still the slot's.
func (s *slot[T]) current(gen uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gen == gen
}

// has reports whether the slot holds a value.
func (s *slot[T]) has() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ok
}

// close empties the slot for good, closing its value.
func (s *slot[T]) close() {
	var zero T
	s.set(zero, false)
}
