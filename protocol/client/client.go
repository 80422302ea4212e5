// Package client keeps a member in a Parley room across disconnects. It
// reconnects with exponential backoff and jitter, resumes the room's text
// from the last sequence number it saw, resends every message the server
// has not acknowledged (the server drops duplicates by client id), and
// turns everything into a stream of Events. parley-cli and the desktop
// client are built on it.
package client

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/parleychat/parley/protocol"
)

// Config configures a Client. Zero values mean the defaults in the comments.
type Config struct {
	Invite   protocol.Invite // server address, room and pinned fingerprint
	Name     string
	Password string
	// Dial configures connections: known servers, trust on first use.
	Dial protocol.DialConfig
	// MinBackoff and MaxBackoff bound the wait between reconnects
	// (defaults 250ms and 30s); each wait is drawn at random up to the
	// current bound, which doubles after every failure.
	MinBackoff, MaxBackoff time.Duration
	// Logger receives debug logs (default: discarded).
	Logger *slog.Logger
	// Media, if set, makes the client a media participant: each
	// connection opens the voice and video streams, and media and media
	// signalling from the server go to Media.
	Media MediaHandler
}

// MediaHandler receives a member's media and media signalling. Voice and
// Video run on the connection's stream reader goroutines, the others on
// Run's goroutine; all must return quickly.
type MediaHandler interface {
	// Voice and Video receive frames from other members. The frame and
	// its Data are valid only during the call.
	Voice(v *protocol.Voice)
	Video(f *protocol.VideoFragment)
	// Joined reports each (re)join: this member's new ID and the roster.
	// Media sent from now on goes to the new session; a sender should
	// start its video with a keyframe, a receiver forget what it held.
	Joined(self uint32, members []protocol.Member)
	// Signal receives KeyframeRequest, BitrateHint, LossReport and
	// StateUpdate messages from the server.
	Signal(m protocol.Message)
}

// ErrNotConnected is returned by the media senders while the client is
// between connections; the frame is dropped (media is not worth resending).
var ErrNotConnected = errors.New("client: not connected")

// EventType says what an Event reports.
type EventType string

// Event types.
const (
	EventText         EventType = "text"         // a room message
	EventPrivate      EventType = "private"      // a private message to or from this member
	EventJoin         EventType = "join"         // a member joined (also every member present at first join)
	EventLeave        EventType = "leave"        // a member left
	EventGap          EventType = "gap"          // messages Seq..GapTo were removed by retention
	EventError        EventType = "error"        // a request failed; Err says why
	EventConnected    EventType = "connected"    // joined (again); Text names the server software
	EventDisconnected EventType = "disconnected" // the connection ended; Err says why (Reason names it), a reconnect follows
	EventState        EventType = "state"        // a member's media state changed (State)
)

// Event is one thing that happened in the room.
type Event struct {
	Type  EventType
	Room  string
	Seq   uint64
	GapTo uint64 // last removed sequence number, for EventGap
	From  string
	To    string // recipient of a private message
	Text  string
	Time  time.Time
	Mine  bool   // a message this client sent
	ID    uint64 // client id of a message this client sent
	Err   error
	// For EventJoin, EventLeave and EventState: the member's ID and
	// media state (protocol.State* bits).
	MemberID uint32
	State    uint8
}

// Client is a room membership that survives disconnects. Create it with
// New, run it with Run, and read Events while it runs.
type Client struct {
	cfg    Config
	log    *slog.Logger
	events chan Event
	leave  chan struct{}
	notify chan struct{} // capacity 1: incoming or flushReqs changed
	done   chan struct{} // closed when Run returns

	mu        sync.Mutex // guards incoming, flushReqs, conn, state, roster
	incoming  []*outgoing
	flushReqs []chan struct{}
	conn      *protocol.Conn // the joined connection, nil between connections
	state     uint8          // this member's media state, announced after every join
	roster    map[uint32]protocol.Member

	// Owned by Run's goroutine.
	outbox  []*outgoing // not yet acknowledged, in send order
	lastSeq uint64
	// historyID is the server history lastSeq counts in (Joined.HistoryID).
	historyID uint64
	ackedTo   uint64 // highest sequence number acknowledged to this client
	joined    bool   // joined at least once: later joins resume
	token     []byte
	limiter   *rate.Limiter
	pausedTo  time.Time // after a rate limit: send nothing before this
	flushers  []chan struct{}
}

type outgoing struct {
	id       uint64
	to, text string
	sent     bool // sent on the current connection
}

// ErrLeft is returned by Run after Leave.
var ErrLeft = errors.New("client: left the room")

// ErrStopped is returned by Flush when Run has returned.
var ErrStopped = errors.New("client: not running")

// New returns a client; it connects when Run is called.
func New(cfg Config) *Client {
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = 250 * time.Millisecond
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Client{
		cfg:    cfg,
		log:    log,
		events: make(chan Event, 256),
		leave:  make(chan struct{}),
		notify: make(chan struct{}, 1),
		done:   make(chan struct{}),
		roster: make(map[uint32]protocol.Member),
	}
}

// Events returns the channel of events. It is closed when Run returns.
// A consumer that stops reading stalls the client, and the server will
// eventually disconnect it as a slow consumer; it catches up after.
func (c *Client) Events() <-chan Event { return c.events }

// Send queues a room message and returns its client id. It is delivered
// once, in order, however often the connection drops.
func (c *Client) Send(text string) uint64 { return c.queue("", text) }

// SendPrivate queues a private message to one member of the room.
func (c *Client) SendPrivate(to, text string) uint64 { return c.queue(to, text) }

// queue hands a message to Run without blocking.
func (c *Client) queue(to, text string) uint64 {
	o := &outgoing{id: newClientID(), to: to, text: text}
	c.mu.Lock()
	c.incoming = append(c.incoming, o)
	c.mu.Unlock()
	c.poke()
	return o.id
}

func (c *Client) poke() {
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

// takeRequests moves new messages into the outbox and registers flushes.
// It runs on Run's goroutine.
func (c *Client) takeRequests() {
	c.mu.Lock()
	c.outbox = append(c.outbox, c.incoming...)
	c.incoming = nil
	c.flushers = append(c.flushers, c.flushReqs...)
	c.flushReqs = nil
	c.mu.Unlock()
	c.answerFlushers()
}

// newClientID returns a random non-zero id. Ids must be unique per sender
// name for as long as the server keeps history, across restarts of the
// client too, so they are random rather than counted.
func newClientID() uint64 {
	var b [8]byte
	for {
		rand.Read(b[:])
		if id := binary.BigEndian.Uint64(b[:]); id != 0 {
			return id
		}
	}
}

// Flush waits until every message sent so far is acknowledged and its copy
// delivered as an Event (or has failed for good, which is reported as an
// EventError).
func (c *Client) Flush(ctx context.Context) error {
	ch := make(chan struct{})
	c.mu.Lock()
	c.flushReqs = append(c.flushReqs, ch)
	c.mu.Unlock()
	c.poke()
	select {
	case <-ch:
		return nil
	case <-c.done:
		return ErrStopped
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Leave leaves the room and makes Run return ErrLeft. Messages not yet
// acknowledged are dropped: call Flush first to keep them.
func (c *Client) Leave() {
	select {
	case <-c.leave:
	default:
		close(c.leave)
	}
}

// Reason names, for people, why a connection ended or failed: the code of
// the server's Goodbye or Error ("shutdown", "slow consumer", "replaced",
// ...), "keepalive timeout" when the server stopped answering, "identity
// changed" or "unknown server" for a key that is not the pinned one, and
// "connection lost" for the rest.
func Reason(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, protocol.ErrIdentityChanged):
		return "identity changed"
	case errors.Is(err, protocol.ErrUnknownServer):
		return "unknown server"
	case errors.Is(err, protocol.ErrKeepalive):
		return "keepalive timeout"
	}
	if code := protocol.CodeOf(err); code != protocol.CodeNone {
		return code.String()
	}
	return "connection lost"
}

// Fatal reports whether err ends Run instead of causing a reconnect: the
// server's identity is wrong or unknown, or it refused the join itself.
func Fatal(err error) bool {
	if errors.Is(err, protocol.ErrIdentityChanged) || errors.Is(err, protocol.ErrUnknownServer) {
		return true
	}
	switch protocol.CodeOf(err) {
	case protocol.CodeBadPassword, protocol.CodeBadName, protocol.CodeBadRoom, protocol.CodeVersion,
		protocol.CodeReplaced, protocol.CodeEnded:
		return true
	}
	return false
}

// Run connects and keeps the client in the room until ctx is done, Leave is
// called (ErrLeft), or a fatal error (see Fatal) happens. If the first
// connection fails, Run returns its error: a server that was never reached
// is reported, not retried. That is any failure before the first join,
// also a connection that drops during the join; whether to try again, as
// a new Client, is the caller's choice (parley-cli exits, the desktop app
// shows the error). After the first join every failure is retried except
// fatal ones. A name already in use is then usually this client's own
// stale session, which the server drops soon.
func (c *Client) Run(ctx context.Context) error {
	defer close(c.done)
	defer close(c.events)
	backoff := c.cfg.MinBackoff
	for {
		connected, err := c.session(ctx)
		switch {
		case errors.Is(err, ErrLeft):
			return ErrLeft
		case ctx.Err() != nil:
			return ctx.Err()
		case Fatal(err) || !c.joined:
			return err
		}
		if connected {
			backoff = c.cfg.MinBackoff
		}
		wait := time.Duration(mrand.Int64N(int64(backoff))) + time.Millisecond
		backoff = min(2*backoff, c.cfg.MaxBackoff)
		c.emit(ctx, Event{Type: EventDisconnected, Room: c.cfg.Invite.Room, Err: err, Time: time.Now()})
		c.log.Debug("reconnecting", "err", err, "wait", wait)
		if err := c.sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// sleep waits between reconnects, still answering Flush calls.
func (c *Client) sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-c.leave:
			return ErrLeft
		case <-c.notify:
			c.takeRequests()
		}
	}
}

func (c *Client) emit(ctx context.Context, ev Event) {
	select {
	case c.events <- ev:
	case <-ctx.Done():
	}
}

func (c *Client) answerFlushers() {
	if len(c.outbox) > 0 || c.lastSeq < c.ackedTo {
		return
	}
	for _, ch := range c.flushers {
		close(ch)
	}
	c.flushers = nil
}

// session runs one connection. connected reports whether it got as far as
// joining the room.
func (c *Client) session(ctx context.Context) (connected bool, err error) {
	dc := c.cfg.Dial
	if h := c.cfg.Media; h != nil {
		dc.OnVoice, dc.OnVideo = h.Voice, h.Video
	}
	conn, err := protocol.Dial(ctx, c.cfg.Invite, &dc)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	w := conn.Welcome()
	// Pace sends to the rate the server announced, so that its limiter
	// rarely has to reject one.
	per := rate.Limit(float64(w.TextPerMinute) / 60)
	if per <= 0 {
		per = rate.Inf
	}
	c.limiter = rate.NewLimiter(per, max(int(w.TextBurst), 1))

	jctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	joined, err := conn.Join(jctx, &protocol.Join{
		Room: c.cfg.Invite.Room, Name: c.cfg.Name, Password: c.cfg.Password,
		Resume: c.joined, AfterSeq: c.lastSeq, HistoryID: c.historyID, Token: c.token,
	})
	cancel()
	if err != nil {
		return false, err
	}
	c.joined = true
	c.token = joined.Token
	c.emit(ctx, Event{Type: EventConnected, Room: joined.Room, From: joined.Name, Text: w.Software, Seq: joined.HeadSeq, Time: time.Now()})
	if c.historyID != 0 && joined.HistoryID != c.historyID {
		// The server's history is not the one this client counted in: it
		// was reset (a server without a data directory restarted, or its
		// database was replaced). Its sequence numbers start over, and
		// the server sent its recent history as to a newcomer.
		c.emit(ctx, Event{Type: EventError, Room: joined.Room, Time: time.Now(),
			Err: fmt.Errorf("the server's history was reset: its messages up to seq %d are gone", c.lastSeq)})
		c.lastSeq, c.ackedTo = 0, 0
	}
	c.historyID = joined.HistoryID
	c.syncRoster(ctx, joined.Members)
	c.mu.Lock()
	c.conn = conn
	state := c.state
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.conn = nil
		c.mu.Unlock()
	}()
	if state != 0 {
		if err := conn.Send(&protocol.StateUpdate{State: state}); err != nil {
			return true, err
		}
	}
	if h := c.cfg.Media; h != nil {
		h.Joined(joined.MemberID, joined.Members)
	}
	for _, o := range c.outbox {
		o.sent = false
	}
	c.pausedTo = time.Time{}

	in := make(chan protocol.Message)
	readErr := make(chan error, 1)
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		for {
			m, err := conn.Receive(rctx)
			if err != nil {
				readErr <- err
				return
			}
			select {
			case in <- m:
			case <-rctx.Done():
				readErr <- rctx.Err()
				return
			}
		}
	}()
	defer func() {
		stop()
		<-readErr
	}()

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	c.takeRequests()
	for {
		if err := c.sendPending(conn, timer); err != nil {
			return true, err
		}
		select {
		case m := <-in:
			if err := c.handle(ctx, m); err != nil {
				return true, err
			}
		case err := <-readErr:
			readErr <- err // for the deferred wait
			return true, err
		case <-c.notify:
			c.takeRequests()
		case <-timer.C:
		case <-c.leave:
			conn.Send(&protocol.Leave{})
			return true, ErrLeft
		case <-ctx.Done():
			return true, ctx.Err()
		}
	}
}

// sendPending sends unsent outbox entries in order, as fast as the
// server's announced rate allows, and arms timer for the rest.
func (c *Client) sendPending(conn *protocol.Conn, timer *time.Timer) error {
	now := time.Now()
	for _, o := range c.outbox {
		if o.sent {
			continue
		}
		if now.Before(c.pausedTo) {
			timer.Reset(c.pausedTo.Sub(now))
			return nil
		}
		r := c.limiter.ReserveN(now, 1)
		if d := r.DelayFrom(now); d > 0 {
			r.CancelAt(now)
			timer.Reset(d)
			return nil
		}
		if err := conn.Send(&protocol.SendChat{ClientID: o.id, To: o.to, Text: o.text}); err != nil {
			return err
		}
		o.sent = true
	}
	return nil
}

// handle applies one message from the server.
func (c *Client) handle(ctx context.Context, m protocol.Message) error {
	room := c.cfg.Invite.Room
	switch m := m.(type) {
	case *protocol.Chat:
		if m.Seq <= c.lastSeq {
			return nil // already delivered before a reconnect
		}
		c.lastSeq = m.Seq
		defer c.answerFlushers()
		ev := Event{Type: EventText, Room: room, Seq: m.Seq, From: m.From, To: m.To, Text: m.Text,
			Time: time.UnixMilli(m.Time), Mine: m.From == c.cfg.Name, ID: m.ClientID}
		if m.To != "" {
			ev.Type = EventPrivate
		}
		c.emit(ctx, ev)
	case *protocol.Ack:
		c.ackedTo = max(c.ackedTo, m.Seq)
		c.acked(m.ClientID)
	case *protocol.Gap:
		if m.To <= c.lastSeq {
			return nil
		}
		from := max(m.From, c.lastSeq+1)
		c.lastSeq = m.To
		c.emit(ctx, Event{Type: EventGap, Room: room, Seq: from, GapTo: m.To, Time: time.Now()})
	case *protocol.Synced:
		c.lastSeq = max(c.lastSeq, m.Seq)
		c.answerFlushers()
	case *protocol.MemberJoined:
		c.mu.Lock()
		c.roster[m.ID] = m.Member
		c.mu.Unlock()
		c.emit(ctx, Event{Type: EventJoin, Room: room, From: m.Name, MemberID: m.ID, State: m.State, Time: time.Now()})
	case *protocol.MemberLeft:
		c.mu.Lock()
		delete(c.roster, m.ID)
		c.mu.Unlock()
		c.emit(ctx, Event{Type: EventLeave, Room: room, From: m.Name, MemberID: m.ID, Text: m.Reason.String(), Time: time.Now()})
	case *protocol.StateUpdate:
		c.mu.Lock()
		mem, ok := c.roster[m.Member]
		if ok {
			mem.State = m.State
			c.roster[m.Member] = mem
		}
		c.mu.Unlock()
		if ok {
			c.emit(ctx, Event{Type: EventState, Room: room, From: mem.Name, MemberID: m.Member, State: m.State, Time: time.Now()})
		}
		if h := c.cfg.Media; h != nil {
			h.Signal(m)
		}
	case *protocol.KeyframeRequest, *protocol.BitrateHint, *protocol.LossReport:
		if h := c.cfg.Media; h != nil {
			h.Signal(m)
		}
	case *protocol.Error:
		return c.failed(ctx, m)
	}
	return nil
}

// acked removes an acknowledged message from the outbox.
func (c *Client) acked(id uint64) {
	for i, o := range c.outbox {
		if o.id == id {
			c.outbox = append(c.outbox[:i], c.outbox[i+1:]...)
			break
		}
	}
	c.answerFlushers()
}

// failed handles an Error from the server.
func (c *Client) failed(ctx context.Context, e *protocol.Error) error {
	idx := -1
	for i, o := range c.outbox {
		if o.id == e.Ref {
			idx = i
		}
	}
	if e.Ref == 0 || idx < 0 {
		c.emit(ctx, Event{Type: EventError, Room: c.cfg.Invite.Room, Err: e, Time: time.Now()})
		return nil
	}
	switch e.Code {
	case protocol.CodeRateLimited, protocol.CodeTryAgain:
		// Resend this message and everything after it, in order, once the
		// server will take them again.
		for _, o := range c.outbox[idx:] {
			o.sent = false
		}
		c.pausedTo = time.Now().Add(time.Duration(e.RetryAfter) * time.Millisecond)
	default:
		o := c.outbox[idx]
		c.outbox = append(c.outbox[:idx], c.outbox[idx+1:]...)
		c.emit(ctx, Event{Type: EventError, Room: c.cfg.Invite.Room, To: o.to, Text: o.text, ID: o.id,
			Err: fmt.Errorf("message not sent: %w", e), Time: time.Now()})
		c.answerFlushers()
	}
	return nil
}

// syncRoster reports the difference between the roster this client knew
// and the one in a Joined, so that a reconnect shows only real changes.
func (c *Client) syncRoster(ctx context.Context, members []protocol.Member) {
	now := time.Now()
	present := make(map[string]protocol.Member, len(members))
	for _, m := range members {
		present[m.Name] = m
	}
	c.mu.Lock()
	known := make(map[string]protocol.Member, len(c.roster))
	for _, m := range c.roster {
		known[m.Name] = m
	}
	clear(c.roster)
	for _, m := range members {
		c.roster[m.ID] = m
	}
	c.mu.Unlock()
	for name, m := range known {
		if _, ok := present[name]; !ok {
			c.emit(ctx, Event{Type: EventLeave, Room: c.cfg.Invite.Room, From: name, MemberID: m.ID,
				Text: protocol.LeftDisconnected.String(), Time: now})
		}
	}
	for _, m := range members {
		old, ok := known[m.Name]
		switch {
		case !ok:
			c.emit(ctx, Event{Type: EventJoin, Room: c.cfg.Invite.Room, From: m.Name, MemberID: m.ID, State: m.State, Time: now})
		case old.State != m.State:
			c.emit(ctx, Event{Type: EventState, Room: c.cfg.Invite.Room, From: m.Name, MemberID: m.ID, State: m.State, Time: now})
		}
	}
}

// Member returns the member with an ID in the current roster.
func (c *Client) Member(id uint32) (protocol.Member, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, ok := c.roster[id]
	return m, ok
}

// Roster returns the current members, in no particular order.
func (c *Client) Roster() []protocol.Member {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]protocol.Member, 0, len(c.roster))
	for _, m := range c.roster {
		out = append(out, m)
	}
	return out
}

// current returns the joined connection, or nil.
func (c *Client) current() *protocol.Conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn
}

// SendVoice sends a voice frame on the current connection (Source is set
// by the server). Between connections it returns ErrNotConnected.
func (c *Client) SendVoice(v *protocol.Voice) error {
	conn := c.current()
	if conn == nil {
		return ErrNotConnected
	}
	return conn.Send(v)
}

// SendVideoFragment sends one fragment of a video frame (see
// protocol.VideoFrame.Fragment) on the current connection. A caller that
// paces its video sends fragment by fragment; if the connection changes in
// the middle of a frame, the rest of the frame goes to the new session,
// where receivers drop it, and the sender's next frame must be a keyframe
// (MediaHandler.Joined says when).
func (c *Client) SendVideoFragment(f *protocol.VideoFragment) error {
	conn := c.current()
	if conn == nil {
		return ErrNotConnected
	}
	return conn.Send(f)
}

// Signal sends a media signalling message (KeyframeRequest, BitrateHint,
// LossReport) on the current connection.
func (c *Client) Signal(m protocol.Message) error {
	conn := c.current()
	if conn == nil {
		return ErrNotConnected
	}
	return conn.Send(m)
}

// SetState sets this member's media state (protocol.State* bits). It is
// announced now if connected and after every later join.
func (c *Client) SetState(state uint8) {
	c.mu.Lock()
	changed := c.state != state
	c.state = state
	conn := c.conn
	c.mu.Unlock()
	if changed && conn != nil {
		conn.Send(&protocol.StateUpdate{State: state})
	}
}

// Ping measures the round trip to the server through its scheduler on the
// current connection.
func (c *Client) Ping(ctx context.Context) (time.Duration, error) {
	conn := c.current()
	if conn == nil {
		return 0, ErrNotConnected
	}
	return conn.Ping(ctx)
}
