package relay

import (
	"cmp"
	"slices"
	"sync"

	"golang.org/x/time/rate"

	"github.com/parleychat/parley/protocol"
	"github.com/parleychat/parley/relay/history"
)

// ringSize is how many recent entries a room keeps in memory. Members that
// are further behind read from the database.
const ringSize = 1024

// room is one chat room: its members and the tail of its text log.
//
// Text is not queued per member. Each member's writer keeps a cursor into
// the room's log and reads forward from it (from the ring, else from the
// database), so delivery is in sequence order, exactly once, and resuming
// after a reconnect is just a cursor set from the client's last seen
// sequence number. A member that falls MaxTextLag behind is disconnected.
type room struct {
	name string
	srv  *Server

	// joinMu serialises joins and leaves, and is held across the resume
	// token write so that two joins under one name cannot interleave.
	joinMu sync.Mutex

	mu       sync.RWMutex       // guards the fields below
	members  map[string]*member // by name
	list     []*member          // snapshot of members for fan-out; replaced, never modified
	nextID   uint32
	head     uint64 // newest published sequence number
	low      uint64 // lowest sequence number retention kept
	ringLow  uint64 // lowest sequence number the ring can hold (head at creation + 1)
	ring     [ringSize]*history.Entry
	closed   bool // removed from the server's map; joiners must look again
	limiters map[string]*rate.Limiter
}

// member is one session's presence in a room.
type member struct {
	id   uint32
	name string
	sess *session
	// dmSince: private messages to or from this name with a sequence
	// number above it are visible to this member. It is the room head
	// when the member's resume token was issued, so a name taken over by
	// someone new never shows them the previous holder's private messages.
	dmSince uint64
	state   uint8 // protocol.State* bits; guarded by the room's mu
}

func newRoom(srv *Server, name string, head, low uint64) *room {
	return &room{
		name:     name,
		srv:      srv,
		members:  make(map[string]*member),
		nextID:   1,
		head:     head,
		low:      low,
		ringLow:  head + 1,
		limiters: make(map[string]*rate.Limiter),
	}
}

// visible reports whether e may be delivered to m.
func (m *member) visible(e *history.Entry) bool {
	if e.To == "" {
		return true
	}
	return (e.To == m.name || e.From == m.name) && e.Seq > m.dmSince
}

// position returns the room's head and low-water mark.
func (r *room) position() (head, low uint64) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.head, r.low
}

// entriesAfter returns up to max entries after seq from the ring. ok is
// false when the ring no longer (or never) held them.
func (r *room) entriesAfter(seq uint64, max int, buf []*history.Entry) (entries []*history.Entry, ok bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	first := seq + 1
	if first > r.head {
		return buf[:0], true
	}
	if first < r.ringLow || first < r.low || r.head-first >= ringSize {
		return buf[:0], false
	}
	last := min(r.head, first+uint64(max)-1)
	entries = buf[:0]
	for s := first; s <= last; s++ {
		entries = append(entries, r.ring[s%ringSize])
	}
	return entries, true
}

// publish makes a committed entry visible to members and wakes them. The
// store commits in sequence order, so e is the next entry or one that a
// newly created room already counted in its head.
func (r *room) publish(e *history.Entry) {
	r.mu.Lock()
	if e.Seq <= r.head {
		r.mu.Unlock()
		return
	}
	r.ring[e.Seq%ringSize] = e
	r.head = e.Seq
	list := r.list
	r.mu.Unlock()
	for _, m := range list {
		m.sess.textPublished(e.Seq)
	}
}

// setLow records what retention removed and wakes members, who may owe
// their client a gap marker.
func (r *room) setLow(low uint64) {
	r.mu.Lock()
	r.low = max(r.low, low)
	list := r.list
	r.mu.Unlock()
	for _, m := range list {
		m.sess.wake()
	}
}

// size returns the number of members.
func (r *room) size() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.members)
}

// memberNamed returns the member with a name, or nil.
func (r *room) memberNamed(name string) *member {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.members[name]
}

// rosterLocked lists the members. r.mu must be held.
func (r *room) rosterLocked() []protocol.Member {
	out := make([]protocol.Member, 0, len(r.list))
	for _, m := range r.list {
		out = append(out, protocol.Member{ID: m.id, Name: m.name, State: m.state})
	}
	return out
}

// rebuildListLocked refreshes the fan-out snapshot. r.mu must be held.
func (r *room) rebuildListLocked() {
	list := make([]*member, 0, len(r.members))
	for _, m := range r.members {
		list = append(list, m)
	}
	slices.SortFunc(list, func(a, b *member) int { return cmp.Compare(a.id, b.id) })
	r.list = list
}

// addLocked adds a member and tells the others. r.mu must be held.
func (r *room) addLocked(m *member) {
	r.members[m.name] = m
	r.rebuildListLocked()
	ev := &protocol.MemberJoined{Member: protocol.Member{ID: m.id, Name: m.name, State: m.state}}
	for _, o := range r.list {
		if o != m {
			o.sess.queueControl(ev)
		}
	}
}

// removeLocked removes m, if it is still the member under its name, and
// tells the others. r.mu must be held.
func (r *room) removeLocked(m *member, reason protocol.LeaveReason) bool {
	if r.members[m.name] != m {
		return false
	}
	delete(r.members, m.name)
	if l := r.limiters[m.name]; l != nil && l.Tokens() >= float64(l.Burst()) {
		delete(r.limiters, m.name) // a full bucket is what a new one would be
	}
	r.rebuildListLocked()
	ev := &protocol.MemberLeft{ID: m.id, Name: m.name, Reason: reason}
	for _, o := range r.list {
		o.sess.queueControl(ev)
	}
	return true
}

// limiter returns the chat rate limiter of a member name. Limiters belong
// to the room, not the session, so reconnecting does not refill the bucket
// (while anyone is in the room).
func (r *room) limiter(name string) *rate.Limiter {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.limiters[name]
	if l == nil {
		cfg := &r.srv.cfg
		l = rate.NewLimiter(rate.Limit(float64(cfg.TextPerMinute)/60), cfg.TextBurst)
		r.limiters[name] = l
	}
	return l
}

// members returns the fan-out snapshot; it is never modified.
func (r *room) memberList() []*member {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.list
}

// memberByID returns the member with an ID, or nil.
func (r *room) memberByID(id uint32) *member {
	list := r.memberList()
	i, ok := slices.BinarySearchFunc(list, id, func(m *member, id uint32) int { return cmp.Compare(m.id, id) })
	if !ok {
		return nil
	}
	return list[i]
}

// forwardMedia hands a frame from one member to every other member. It
// never blocks: each receiver queues it, or drops it by its policy, and
// its own writer sends it.
func (r *room) forwardMedia(from *member, f *mediaFrame) {
	for _, m := range r.memberList() {
		if m != from {
			m.sess.enqueueMedia(f)
		}
	}
}

// setState records a member's media state and tells the others.
func (r *room) setState(m *member, state uint8) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.members[m.name] != m || m.state == state {
		return
	}
	m.state = state
	ev := &protocol.StateUpdate{Member: m.id, State: state}
	for _, o := range r.list {
		if o != m {
			o.sess.queueControl(ev)
		}
	}
}

// askVideoSendersForKeyframes asks every member that sends video, but
// newcomer, for a keyframe: the newcomer cannot decode anything before it.
func (r *room) askVideoSendersForKeyframes(newcomer *member) {
	for _, m := range r.memberList() {
		if m == newcomer {
			continue
		}
		for tr := range m.sess.lastVideoIn {
			if m.sess.sendsVideo(protocol.Track(tr), mono()) {
				m.sess.requestKeyframe(protocol.Track(tr))
			}
		}
	}
}
