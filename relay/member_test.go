package relay

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/protocol"
	pclient "github.com/parleychat/parley/protocol/client"
)

// member is a protocol/pclient.Client in a room of a test server — the
// library parley-cli and the desktop client are built on, with its
// reconnects, resends and resumes — and the events it reported.
type libMember struct {
	t       testing.TB
	name    string
	c       *pclient.Client
	started time.Time

	mu     sync.Mutex // guards the fields below
	events []pclient.Event
	more   chan struct{}
	dials  []time.Time // when each connection attempt started
	conns  []*freezeConn

	cancel   context.CancelFunc
	ended    chan struct{} // closed once Run has returned and its last event is recorded
	runErr   error         // what Run returned; set before ended is closed
	stopOnce sync.Once
}

// freezeConn is a connection whose reads can be stopped: once frozen, Read
// blocks until thaw, so the kernel's buffers fill and the server's writes
// to it stall, as with a client that stopped reading.
type freezeConn struct {
	net.Conn
	mu     sync.Mutex
	thawed chan struct{} // nil unless frozen
}

func (c *freezeConn) Read(b []byte) (int, error) {
	c.mu.Lock()
	ch := c.thawed
	c.mu.Unlock()
	if ch != nil {
		<-ch
	}
	return c.Conn.Read(b)
}

// Close thaws the connection first: a read blocked on the freeze must end
// with the connection, as a read blocked in the kernel would.
func (c *freezeConn) Close() error {
	c.thaw()
	return c.Conn.Close()
}

func (c *freezeConn) freeze() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.thawed == nil {
		c.thawed = make(chan struct{})
	}
}

func (c *freezeConn) thaw() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.thawed != nil {
		close(c.thawed)
		c.thawed = nil
	}
}

// memberOpts adjust a member.
type memberOpts struct {
	addr string // where to connect instead of the server (a shaped link)
	dial protocol.DialConfig
	min  time.Duration // backoff bounds; default 50ms and 1s
	max  time.Duration
	// owned: the caller stops the member (a test that makes hundreds,
	// whose cleanups would keep them all in memory until it ends).
	owned bool
}

// startMember runs a client in room as name until the test ends.
func startMember(t testing.TB, ts *testServer, room, name string, o memberOpts) *libMember {
	t.Helper()
	m := &libMember{t: t, name: name, started: time.Now(), more: make(chan struct{}), ended: make(chan struct{})}
	inv := ts.invite(room)
	dc := o.dial
	addr := o.addr
	dc.DialContext = func(ctx context.Context, network, a string) (net.Conn, error) {
		if addr != "" {
			a = addr
		}
		m.mu.Lock()
		m.dials = append(m.dials, time.Now())
		m.mu.Unlock()
		c, err := (&net.Dialer{}).DialContext(ctx, network, a)
		if err != nil {
			return nil, err
		}
		fc := &freezeConn{Conn: c}
		m.mu.Lock()
		m.conns = append(m.conns, fc)
		m.mu.Unlock()
		return fc, nil
	}
	if o.min == 0 {
		o.min, o.max = 50*time.Millisecond, time.Second
	}
	m.c = pclient.New(pclient.Config{Invite: inv, Name: name, Dial: dc, MinBackoff: o.min, MaxBackoff: o.max})
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	recorded := make(chan struct{})
	go func() {
		defer close(recorded)
		for ev := range m.c.Events() { // closed when Run returns
			m.mu.Lock()
			m.events = append(m.events, ev)
			close(m.more)
			m.more = make(chan struct{})
			m.mu.Unlock()
		}
	}()
	go func() {
		m.runErr = m.c.Run(ctx)
		<-recorded
		close(m.ended)
	}()
	if !o.owned {
		t.Cleanup(m.stop)
	}
	return m
}

// stop ends the client, thawing its connections first, and waits until
// Run has returned and every event is recorded. It may be called more than
// once.
func (m *libMember) stop() {
	m.stopOnce.Do(func() {
		m.mu.Lock()
		for _, c := range m.conns {
			c.thaw()
		}
		m.mu.Unlock()
		m.cancel()
		<-m.ended
	})
}

// runEnded reports whether Run has returned, by itself (its first
// connection failed, or a fatal error) or after stop, and what it
// returned.
func (m *libMember) runEnded() (bool, error) {
	select {
	case <-m.ended:
		return true, m.runErr
	default:
		return false, nil
	}
}

// joined reports whether the member has joined the room at least once.
func (m *libMember) joined() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return count(m.events, pclient.EventConnected) > 0
}

// firstJoin waits at most d until the member has joined once. If Run
// returns first, its error wraps what Run returned.
func (m *libMember) firstJoin(d time.Duration) error {
	_, err := m.awaitEvents(d, func(evs []pclient.Event) bool { return count(evs, pclient.EventConnected) > 0 })
	if err != nil {
		return fmt.Errorf("not joined: %w", err)
	}
	return nil
}

// firstJoinTook returns how long the member took to join the first time,
// if it has.
func (m *libMember) firstJoinTook() (time.Duration, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, ev := range m.events {
		if ev.Type == pclient.EventConnected {
			return ev.Time.Sub(m.started), true
		}
	}
	return 0, false
}

// eventsSoFar returns the events reported so far.
func (m *libMember) eventsSoFar() []pclient.Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.events[:len(m.events):len(m.events)]
}

// dialTimes returns when each connection attempt started.
func (m *libMember) dialTimes() []time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]time.Time(nil), m.dials...)
}

// disconnects returns how many disconnected events the member reported.
func (m *libMember) disconnects() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return count(m.events, pclient.EventDisconnected)
}

// conn returns the member's latest connection.
func (m *libMember) conn() *freezeConn {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.conns[len(m.conns)-1]
}

// waitEvents waits until cond holds for the events so far and returns
// them; the test fails if Run returns first or d passes.
func (m *libMember) waitEvents(what string, d time.Duration, cond func([]pclient.Event) bool) []pclient.Event {
	m.t.Helper()
	evs, err := m.awaitEvents(d, cond)
	if err != nil {
		m.t.Fatalf("%s: no %s: %v", m.name, what, err)
	}
	return evs
}

// awaitEvents waits at most d until cond holds for the events so far and
// returns them. If Run returns first (and its last events do not satisfy
// cond), the error wraps what Run returned.
func (m *libMember) awaitEvents(d time.Duration, cond func([]pclient.Event) bool) ([]pclient.Event, error) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		m.mu.Lock()
		evs, more := m.events, m.more
		m.mu.Unlock()
		if cond(evs) {
			return evs, nil
		}
		select {
		case <-more:
		case <-m.ended:
			if evs = m.eventsSoFar(); cond(evs) {
				return evs, nil
			}
			return evs, fmt.Errorf("its Run returned first: %w", m.runErr)
		case <-timer.C:
			return evs, fmt.Errorf("not within %v", d)
		}
	}
}

// count returns how many events are of a type.
func count(evs []pclient.Event, typ pclient.EventType) int {
	n := 0
	for _, ev := range evs {
		if ev.Type == typ {
			n++
		}
	}
	return n
}

// texts returns the room messages among events.
func texts(evs []pclient.Event) []pclient.Event {
	var out []pclient.Event
	for _, ev := range evs {
		if ev.Type == pclient.EventText {
			out = append(out, ev)
		}
	}
	return out
}

// waitConnected waits for the n-th connected event.
func (m *libMember) waitConnected(n int) {
	m.t.Helper()
	m.waitEvents(fmt.Sprintf("connection %d", n), 30*time.Second, func(evs []pclient.Event) bool {
		return count(evs, pclient.EventConnected) >= n
	})
}

// checkExactlyOnce checks that a member's room messages are exactly want,
// in order, each once, with strictly increasing sequence numbers.
func checkExactlyOnce(t testing.TB, who string, got []pclient.Event, want []string) {
	t.Helper()
	for i := 1; i < len(got); i++ {
		if got[i].Seq <= got[i-1].Seq {
			t.Errorf("%s: message %d has seq %d after %d", who, i, got[i].Seq, got[i-1].Seq)
			return
		}
	}
	if len(got) != len(want) {
		t.Errorf("%s got %d messages, want %d", who, len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		if got[i].Text != want[i] {
			t.Errorf("%s: message %d is %.20q, want %.20q", who, i, got[i].Text, want[i])
			return
		}
	}
}
