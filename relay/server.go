package relay

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/parleychat/parley/protocol"
	"github.com/parleychat/parley/relay/history"
)

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("relay: server closed")

// Server relays rooms of members connected over Parley sessions.
type Server struct {
	cfg         Config
	log         *slog.Logger
	cert        tls.Certificate
	fingerprint string
	store       *history.Store
	pcfg        *protocol.ServerConfig
	passwords   *passwordChecker

	// ctx is cancelled when the server shuts down; it stops handshakes
	// and stream accept loops.
	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex // guards the fields below; see docs/lock-order.md
	rooms     map[string]*room
	listeners map[net.Listener]struct{}
	sessions  map[*session]struct{}
	closing   bool
	stopped   CloseReason // why, once closing: CloseShutdown or CloseEnded
	pending   int         // connections in handshake

	wg        sync.WaitGroup // connection goroutines
	pruneDone chan struct{}
	nextID    atomic.Uint64

	statsMu     sync.Mutex // guards closes, reasons, failures and closedMedia
	closes      map[string]uint64
	reasons     [closeReasons]uint64
	failed      map[string]uint64
	closedMedia MediaStats // media counters of closed sessions
}

// New returns a server for cfg. It opens (or creates) the identity and the
// history database in cfg.DataDir.
func New(cfg Config) (*Server, error) {
	c := cfg.withDefaults()
	s := &Server{
		cfg:       c,
		log:       c.Logger,
		rooms:     make(map[string]*room),
		listeners: make(map[net.Listener]struct{}),
		sessions:  make(map[*session]struct{}),
		passwords: newPasswordChecker(max(1, runtime.NumCPU()/2)),
		pruneDone: make(chan struct{}),
		closes:    make(map[string]uint64),
		failed:    make(map[string]uint64),
	}
	var err error
	switch {
	case c.Certificate != nil:
		s.cert = *c.Certificate
	case c.DataDir != "":
		s.cert, err = LoadOrCreateIdentity(c.DataDir)
	default:
		s.cert, err = NewIdentity()
	}
	if err != nil {
		return nil, fmt.Errorf("relay: identity: %w", err)
	}
	leaf, err := x509.ParseCertificate(s.cert.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("relay: identity: %w", err)
	}
	s.fingerprint = protocol.Fingerprint(leaf)

	dbPath := ""
	if c.DataDir != "" {
		dbPath = filepath.Join(c.DataDir, "history.db")
	}
	s.store, err = history.Open(dbPath, history.Options{
		RetainCount: c.RetainMessages,
		RetainAge:   c.RetainFor,
		OnPrune:     s.onPrune,
	})
	if err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	s.pcfg = &protocol.ServerConfig{
		Certificate:      s.cert,
		HandshakeTimeout: c.HandshakeTimeout,
		Welcome: protocol.Welcome{
			Software:      c.Software,
			MaxTextBytes:  uint32(c.MaxTextBytes),
			TextBurst:     uint16(c.TextBurst),
			TextPerMinute: uint16(c.TextPerMinute),
			HistoryOnJoin: uint16(c.HistoryOnJoin),
		},
		Guard:             protocol.GuardLimits{StreamOpens: c.StreamOpens, StreamOpenBurst: c.StreamOpenBurst},
		KeepAliveInterval: c.KeepAliveInterval,
		WriteTimeout:      c.WriteTimeout,
		MaxStreams:        c.MaxStreams,
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if err := s.store.Prune(); err != nil {
		s.log.Warn("applying retention", "err", err)
	}
	go s.maintain()
	return s, nil
}

// Fingerprint returns the SHA-256 fingerprint of the server's public key.
func (s *Server) Fingerprint() string { return s.fingerprint }

// Invite returns the invite link for a room at a public address.
func (s *Server) Invite(addr, room string) string {
	return protocol.Invite{Addr: addr, Room: room, Fingerprint: s.fingerprint}.String()
}

// Serve accepts connections on ln until Shutdown or Close; it then returns
// ErrServerClosed. Each connection gets HandshakeTimeout to complete TLS and
// the hello.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()

	var backoff time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if s.isClosing() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				// Out of file descriptors and the like: wait and retry,
				// as net/http does.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed; retrying", "err", err, "delay", backoff)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		s.mu.Lock()
		if s.closing || s.pending >= s.cfg.MaxPendingHandshakes {
			s.mu.Unlock()
			s.countFailure("too many handshakes")
			conn.Close()
			continue
		}
		s.pending++
		s.wg.Add(1)
		s.mu.Unlock()
		go s.handle(conn, s.nextID.Add(1))
	}
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// handle runs one connection from handshake to close. id numbers the
// connection in the order of acceptance.
func (s *Server) handle(conn net.Conn, id uint64) {
	defer s.wg.Done()
	sc, err := protocol.Handshake(s.ctx, conn, s.pcfg)
	if err != nil {
		s.mu.Lock()
		s.pending--
		s.mu.Unlock()
		reason := "handshake failed"
		if code := protocol.CodeOf(err); code != protocol.CodeNone {
			reason = code.String()
		}
		s.countFailure(reason)
		s.log.Debug("handshake failed", "remote", conn.RemoteAddr().String(), "reason", reason, "err", err)
		return
	}
	sess := newSession(s, sc, id)
	// Leave the handshake and become a session at once, so that Stats
	// counts the connection in one or the other at every moment.
	s.mu.Lock()
	s.pending--
	if s.closing {
		reason := s.stopped
		s.mu.Unlock()
		sc.Goodbye(reason.Code(), stopMessage(reason), time.Second)
		return
	}
	s.sessions[sess] = struct{}{}
	s.mu.Unlock()
	sess.run()
	s.mu.Lock()
	delete(s.sessions, sess)
	s.mu.Unlock()
}

// Shutdown stops accepting, tells every client the server is going away,
// closes their sessions and the history database. It returns when all
// connection goroutines have finished or ctx is done (then with its error).
// Clients are told CodeShutdown: they try again until the server is back.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.stop(ctx, CloseShutdown)
}

// End is Shutdown for a server that will not come back — a room hosted in
// an app whose host leaves: clients are told CodeEnded, and stop instead
// of reconnecting.
func (s *Server) End(ctx context.Context) error {
	return s.stop(ctx, CloseEnded)
}

func (s *Server) stop(ctx context.Context, reason CloseReason) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.closing, s.stopped = true, reason
	for ln := range s.listeners {
		ln.Close()
	}
	sessions := make([]*session, 0, len(s.sessions))
	for sess := range s.sessions {
		sessions = append(sessions, sess)
	}
	s.mu.Unlock()
	s.cancel()
	for _, sess := range sessions {
		sess.closeWith(reason, stopMessage(reason))
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	<-s.pruneDone
	if cerr := s.store.Close(); cerr != nil && err == nil {
		err = cerr
	}
	return err
}

// stopMessage is what clients are told when the server stops.
func stopMessage(reason CloseReason) string {
	if reason == CloseEnded {
		return "the host ended the call"
	}
	return "the server is shutting down"
}

// Close shuts down without waiting for goodbyes to be delivered.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return s.Shutdown(ctx)
}

// maintain applies retention every PruneInterval and sweeps for slow
// consumers every half SlowConsumerGrace.
func (s *Server) maintain() {
	defer close(s.pruneDone)
	prune := time.NewTicker(s.cfg.PruneInterval)
	defer prune.Stop()
	sweep := time.NewTicker(s.cfg.SlowConsumerGrace / 2)
	defer sweep.Stop()
	for {
		select {
		case <-prune.C:
			if err := s.store.Prune(); err != nil {
				s.log.Warn("applying retention", "err", err)
			}
		case <-sweep.C:
			s.sweepSlowConsumers()
			s.shrinkBuffers()
		case <-s.ctx.Done():
			return
		}
	}
}

func (s *Server) sweepSlowConsumers() {
	s.mu.Lock()
	rooms := make([]*room, 0, len(s.rooms))
	for _, r := range s.rooms {
		rooms = append(rooms, r)
	}
	s.mu.Unlock()
	for _, r := range rooms {
		r.mu.RLock()
		head, list := r.head, r.list
		r.mu.RUnlock()
		for _, m := range list {
			m.sess.cutIfSlow(head)
		}
	}
}

// shrinkBuffers lets go of the receive buffers that yamux keeps, at their
// largest size, for streams that hold no unread data, so that what a
// client sent in a burst does not stay allocated for as long as its
// session lives (docs/reliability.md, per-session budget).
func (s *Server) shrinkBuffers() {
	s.mu.Lock()
	sessions := make([]*session, 0, len(s.sessions))
	for sess := range s.sessions {
		sessions = append(sessions, sess)
	}
	s.mu.Unlock()
	for _, sess := range sessions {
		sess.mu.Lock()
		streams := sess.streams
		sess.mu.Unlock()
		sess.ctl.ShrinkBuffers()
		for _, st := range streams {
			if st != nil {
				st.ShrinkBuffers()
			}
		}
	}
}

// onPrune is the store's retention callback.
func (s *Server) onPrune(roomName string, low uint64) {
	if r := s.lookupRoom(roomName); r != nil {
		r.setLow(low)
	}
}

// publish delivers a committed entry to the room's members, if the room is
// active. It looks the room up by name rather than keeping a pointer,
// because an emptied room may have been replaced by a new one.
func (s *Server) publish(roomName string, e *history.Entry) {
	if r := s.lookupRoom(roomName); r != nil {
		r.publish(e)
	}
}

func (s *Server) lookupRoom(name string) *room {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rooms[name]
}

// openRoom returns the active room of a name, creating it.
func (s *Server) openRoom(name string) (*room, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.rooms[name]; r != nil {
		return r, nil
	}
	if len(s.rooms) >= s.cfg.MaxRooms {
		return nil, &protocol.Error{Code: protocol.CodeRoomFull, Message: "the server has its maximum of active rooms"}
	}
	head, low, err := s.store.Head(name)
	if err != nil {
		return nil, err
	}
	r := newRoom(s, name, head, low)
	s.rooms[name] = r
	return r, nil
}

// dropRoomIfEmpty forgets a room nobody is in. r.joinMu must be held.
func (s *Server) dropRoomIfEmpty(r *room) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.members) == 0 && s.rooms[r.name] == r {
		delete(s.rooms, r.name)
		r.closed = true
		s.store.Forget(r.name)
	}
}

// Stats is a snapshot of the server's counters.
type Stats struct {
	Sessions int // sessions past the hello
	Pending  int // connections in handshake
	Rooms    int // rooms with members
	// Closes counts ended sessions by the protocol code of their reason
	// (CloseReason.Code): "left", "connection lost" (no Goodbye either
	// way), and the code names: "slow consumer", "malformed", ...
	Closes map[string]uint64
	// CloseReasons counts ended sessions by reason, which is finer: it
	// tells a keepalive timeout from a connection lost, and the three
	// kinds of slow consumer apart.
	CloseReasons map[CloseReason]uint64
	// HandshakeFailures counts connections that never completed the hello,
	// by reason ("handshake timeout", ...).
	HandshakeFailures map[string]uint64
	// Media sums the media counters of every session, open and closed.
	Media MediaStats
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	st := Stats{Sessions: len(s.sessions), Pending: s.pending, Rooms: len(s.rooms)}
	for sess := range s.sessions {
		st.Media.add(sess.mediaStats())
	}
	s.mu.Unlock()
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	st.Media.add(s.closedMedia)
	st.Closes = make(map[string]uint64, len(s.closes))
	for k, v := range s.closes {
		st.Closes[k] = v
	}
	st.CloseReasons = make(map[CloseReason]uint64)
	for r, n := range s.reasons {
		if n > 0 {
			st.CloseReasons[CloseReason(r)] = n
		}
	}
	st.HandshakeFailures = make(map[string]uint64, len(s.failed))
	for k, v := range s.failed {
		st.HandshakeFailures[k] = v
	}
	return st
}

// String formats the counters on one line, for logs.
func (st Stats) String() string {
	keys := make([]string, 0, len(st.Closes))
	for k := range st.Closes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := fmt.Sprintf("sessions=%d rooms=%d", st.Sessions, st.Rooms)
	for _, k := range keys {
		out += fmt.Sprintf(" closed[%s]=%d", k, st.Closes[k])
	}
	return out
}

func (s *Server) countClose(reason CloseReason, media MediaStats) {
	s.statsMu.Lock()
	s.closes[reason.group()]++
	if reason < closeReasons {
		s.reasons[reason]++
	}
	s.closedMedia.add(media)
	s.statsMu.Unlock()
}

// MemberStats returns the media counters of each member of a room, by
// name; nil when the room is not active.
func (s *Server) MemberStats(room string) map[string]MediaStats {
	r := s.lookupRoom(room)
	if r == nil {
		return nil
	}
	out := make(map[string]MediaStats)
	for _, m := range r.memberList() {
		out[m.name] = m.sess.mediaStats()
	}
	return out
}

func (s *Server) countFailure(reason string) {
	s.statsMu.Lock()
	s.failed[reason]++
	s.statsMu.Unlock()
}
