package relay

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/yamux"
	"github.com/parleychat/parley/protocol"
	"github.com/parleychat/parley/relay/history"
	"golang.org/x/time/rate"
)

// session is one client connection after its hello. It runs a goroutine per
// stream reading the client, one writer goroutine that owns every write to
// the client, and a stream accept loop; run waits for all of them.
//
// Nothing is written to a client from another client's goroutine: senders
// append to this session's queues (or advance its room's log) and wake the
// writer.
type session struct {
	id  uint64 // the connection's number, in the order the server accepted them
	srv *Server
	sc  *protocol.ServerConn
	ctl *protocol.Stream
	log *slog.Logger

	kick    chan struct{} // wakes the writer; capacity 1
	closing chan struct{} // closed by closeWith
	wg      sync.WaitGroup

	mu          sync.Mutex // guards the fields below; see docs/lock-order.md
	streams     [protocol.KindFile + 1]*protocol.Stream
	ctlOut      []byte // encoded control frames for the writer
	textOut     []byte // encoded acks and errors for the writer
	room        *room
	member      *member
	epoch       uint64 // bumped on every join and leave
	startCursor uint64 // where the writer starts reading the log at the new epoch
	closeReason CloseReason
	closeMsg    string
	closed      bool

	// joins bounds join attempts, each of which may cost a password
	// check. Owned by the control reader.
	joins *rate.Limiter

	// Owned by the text reader goroutine.
	mustResend uint64    // client id the client must resend first after a rate limit
	resendAt   time.Time // when that resend will be accepted

	// cursor is the last sequence number the writer delivered (or skipped
	// as not visible); synced is set once it has caught up after a join.
	// Written by the writer, read by publishers to measure lag.
	cursor atomic.Uint64
	synced atomic.Bool
	// progress is when the writer last completed a write (Unix nanos).
	progress atomic.Int64

	// Media to this client (see media.go and session_media.go).
	voiceQ, videoQ  frameQueue          // guarded by mu
	needKey         map[srcTrack]bool   // guarded by mu: sources whose video waits for a keyframe
	congestionKeyAt int64               // guarded by mu: mono() when congestion last asked for keyframes
	hints           map[srcTrack]uint32 // guarded by mu: this client's BitrateHints, by source
	wantsVoice      atomic.Bool         // the client opened a voice stream
	wantsVideo      atomic.Bool         // the client opened a video stream
	videoBudget     atomic.Uint64       // bits/s of video this client's link takes (its pacer's view; 0: unknown)
	pongMu          sync.Mutex          // guards pongNonce, pongAt, pongNew
	pongNonce       uint64
	pongAt          int64
	pongNew         bool

	// Media from this client.
	keyWanted   atomic.Uint32                       // bit per track: a keyframe request to send to it
	lastVideoIn [protocol.MaxTrack + 1]atomic.Int64 // mono() of the last video it sent, by track
	media       mediaCounters
	// Owned by the control reader.
	lossL, stateL *rate.Limiter
}

func newSession(srv *Server, sc *protocol.ServerConn, id uint64) *session {
	return &session{
		id:      id,
		srv:     srv,
		sc:      sc,
		ctl:     sc.Control(),
		log:     srv.log.With("session", id, "remote", sc.RemoteAddr().String()),
		kick:    make(chan struct{}, 1),
		closing: make(chan struct{}),
		joins:   rate.NewLimiter(rate.Every(2*time.Second), 5),
		lossL:   rate.NewLimiter(4, 8),
		stateL:  rate.NewLimiter(5, 20),
	}
}

// run serves the session until it ends.
func (s *session) run() {
	s.log.Debug("session started", "software", s.sc.Hello().Software)
	ctlDone := make(chan struct{})
	writerDone := make(chan struct{})
	s.goRun(func() {
		defer close(writerDone)
		s.writeLoop()
	})
	s.goRun(func() {
		defer close(ctlDone)
		s.closeOnError(s.readControl())
	})
	s.goRun(func() { s.closeOnStreamError(s.acceptStreams()) })

	select {
	case <-s.closing:
	case <-s.sc.Done():
		// The control reader reads the client's Goodbye, if any, before
		// it sees the end: let it name the reason.
		<-ctlDone
		s.closeWith(s.lostReason(), "")
	}
	s.mu.Lock()
	reason, msg := s.closeReason, s.closeMsg
	s.mu.Unlock()
	code := reason.Code()

	s.leave(leaveReasonFor(code))
	switch code {
	case protocol.CodeNone, protocol.CodeSlowConsumer, protocol.CodeLeaving:
		// Nothing to tell: the client is gone, left, or is not reading
		// (its writer is stuck in a write, or about to be).
		s.sc.Close()
	default:
		// The writer stops at its next round; wait (briefly: it may be
		// stuck on a slow client) so that nothing follows the Goodbye and
		// it cannot push the Goodbye's deadline out.
		t := time.NewTimer(time.Second)
		select {
		case <-writerDone:
			s.sc.Goodbye(code, msg, time.Second)
		case <-t.C:
			s.sc.Close()
		}
		t.Stop()
	}
	s.wg.Wait()
	s.mu.Lock()
	s.clearMediaLocked()
	s.mu.Unlock()
	ms := s.mediaStats()
	s.srv.countClose(reason, ms)
	args := []any{"reason", reason.String(), "code", code.String(), "detail", msg}
	if ms != (MediaStats{}) {
		args = append(args, "media", ms)
	}
	s.log.Info("session closed", args...)
}

// lostReason is the reason of a session whose connection ended without a
// word from the client: it stopped answering keepalives, or it is gone.
func (s *session) lostReason() CloseReason {
	if errors.Is(s.sc.Err(), yamux.ErrKeepAliveTimeout) {
		return CloseKeepalive
	}
	return CloseConnectionLost
}

func (s *session) goRun(f func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
}

func leaveReasonFor(code protocol.ErrorCode) protocol.LeaveReason {
	switch code {
	case protocol.CodeLeaving:
		return protocol.LeftNormally
	case protocol.CodeReplaced:
		return protocol.LeftReplaced
	case protocol.CodeSlowConsumer:
		return protocol.LeftSlow
	case protocol.CodeShutdown, protocol.CodeEnded:
		return protocol.LeftShutdown
	default:
		return protocol.LeftDisconnected
	}
}

// closeWith ends the session with a reason. It never blocks: the session's
// run goroutine does the closing. The first reason wins.
func (s *session) closeWith(reason CloseReason, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	s.closeReason, s.closeMsg = reason, msg
	close(s.closing)
}

// closeOnError ends the session for an error from a reader, choosing the
// reason the client is told and the one that is counted.
func (s *session) closeOnError(err error) {
	if err == nil {
		return
	}
	if v := s.sc.Violation(); v != nil {
		err = v // the guard cut the connection: report why
	}
	var pe *protocol.Error
	switch {
	case errors.As(err, &pe) && pe.Code.Fatal():
		s.closeWith(closeReasonFor(pe.Code), pe.Message)
	case errors.Is(err, errClientLeft):
		s.closeWith(CloseLeft, "")
	case errors.Is(err, yamux.ErrKeepAliveTimeout):
		s.closeWith(CloseKeepalive, "the client did not answer keepalive pings")
	case isDisconnect(err):
		s.closeWith(s.lostReason(), err.Error())
	default:
		s.closeWith(CloseMalformed, err.Error())
	}
}

// closeOnStreamError is closeOnError for goroutines other than the control
// reader. When the connection simply ends they leave the verdict to the
// control reader, which reads the client's Goodbye, if any, first.
func (s *session) closeOnStreamError(err error) {
	if err == nil || (isDisconnect(err) && s.sc.Violation() == nil) {
		return
	}
	s.closeOnError(err)
}

var errClientLeft = errors.New("client said goodbye")

// isDisconnect reports whether err is the end of the connection rather
// than something the client sent: an end of file, a closed session, or an
// error of the network itself (a reset, a broken pipe), which yamux hands
// to the stream accept loop when the connection fails.
func isDisconnect(err error) bool {
	var ne *net.OpError
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, yamux.ErrSessionShutdown) || errors.Is(err, yamux.ErrConnectionReset) ||
		errors.Is(err, yamux.ErrStreamClosed) || errors.Is(err, context.Canceled) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.As(err, &ne)
}

// wake nudges the writer.
func (s *session) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// queueControl queues a message for the control stream.
func (s *session) queueControl(m protocol.Message) { s.queue(m, false) }

// queueText queues an ack or error for the text stream.
func (s *session) queueText(m protocol.Message) { s.queue(m, true) }

func (s *session) queue(m protocol.Message, text bool) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	var err error
	if text {
		s.textOut, err = m.AppendBinary(s.textOut)
	} else {
		s.ctlOut, err = m.AppendBinary(s.ctlOut)
	}
	over := len(s.ctlOut)+len(s.textOut) > s.srv.cfg.ControlQueueBytes
	s.mu.Unlock()
	switch {
	case err != nil:
		s.log.Error("encoding a message", "type", m.Type(), "err", err)
	case over:
		s.closeWith(CloseQueueFull, "more control messages and replies queued than the server keeps for a client")
	default:
		s.wake()
	}
}

// textPublished is called by the room for every new entry.
func (s *session) textPublished(head uint64) {
	if s.cursor.Load()+1 >= head {
		// It was caught up until this entry: its grace starts now, not at
		// its last write, which may be long ago in a quiet room.
		s.progress.Store(time.Now().UnixNano())
	}
	if !s.cutIfSlow(head) {
		s.wake()
	}
}

// cutIfSlow disconnects the session if it is a slow consumer: more than
// MaxTextLag behind the room's head and nothing written to it for
// SlowConsumerGrace. It is checked on every publish and by the server's
// periodic sweep (a room may fall quiet while a member is stalled).
func (s *session) cutIfSlow(head uint64) bool {
	cfg := &s.srv.cfg
	if s.synced.Load() && head-min(head, s.cursor.Load()) > uint64(cfg.MaxTextLag) &&
		time.Since(time.Unix(0, s.progress.Load())) > cfg.SlowConsumerGrace {
		s.closeWith(CloseTextLag, "too far behind the room's messages")
		return true
	}
	return false
}

// membership returns the session's room and member (nil when not in one).
func (s *session) membership() (*room, *member) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.room, s.member
}

// ----- readers -----

func (s *session) readControl() error {
	for {
		m, err := s.ctl.ReadMessage()
		if err != nil {
			return err
		}
		switch m := m.(type) {
		case *protocol.Join:
			if !s.joins.Allow() {
				s.queueControl(&protocol.Error{Code: protocol.CodeRateLimited, RetryAfter: 2000, Message: "too many join attempts"})
				continue
			}
			if err := s.join(m); err != nil {
				var pe *protocol.Error
				if !errors.As(err, &pe) {
					s.log.Error("join failed", "room", m.Room, "err", err)
					pe = &protocol.Error{Code: protocol.CodeTryAgain, RetryAfter: 1000, Message: "the server could not complete the join"}
				}
				pe.Ref = 0
				s.queueControl(pe)
			}
		case *protocol.Leave:
			s.leave(protocol.LeftNormally)
		case *protocol.Ping:
			s.queueControl(&protocol.Pong{Nonce: m.Nonce})
		case *protocol.Pong:
			s.pongMu.Lock()
			s.pongNonce, s.pongAt, s.pongNew = m.Nonce, mono(), true
			s.pongMu.Unlock()
			s.wake()
		case *protocol.StateUpdate:
			s.setState(m.State)
		case *protocol.KeyframeRequest:
			s.askKeyframe(m)
		case *protocol.BitrateHint:
			s.setHint(m)
		case *protocol.LossReport:
			s.reportLoss(m)
		case *protocol.Goodbye:
			return errClientLeft
		case *protocol.Hello:
			return &protocol.Error{Code: protocol.CodeUnexpected, Message: "a second hello"}
		default:
			return &protocol.Error{Code: protocol.CodeUnexpected, Message: "a client may not send " + m.Type().String()}
		}
	}
}

// acceptStreams accepts the client's streams. Each stream's kind byte is
// read on that stream's own goroutine: a stream whose kind byte does not
// come must not hold up the others, whose data would meanwhile pile up
// unread in yamux's buffers.
func (s *session) acceptStreams() error {
	for {
		p, err := s.sc.AcceptPending(s.srv.ctx)
		if err != nil {
			return err
		}
		s.goRun(func() {
			st, err := p.Identify()
			if err != nil {
				s.closeOnStreamError(err)
				return
			}
			defer s.sc.StreamDone()
			s.closeOnStreamError(s.serveStream(st))
		})
	}
}

// serveStream registers a stream under its kind and reads it until it ends.
func (s *session) serveStream(st *protocol.Stream) error {
	kind := st.Kind()
	s.mu.Lock()
	dup := s.streams[kind] != nil
	if !dup {
		s.streams[kind] = st
	}
	s.mu.Unlock()
	if dup {
		st.Close()
		return &protocol.Error{Code: protocol.CodeBadStream, Message: "a second " + kind.String() + " stream"}
	}
	s.wake() // the writer may have text waiting for this stream
	switch kind {
	case protocol.KindText:
		return s.readText(st)
	case protocol.KindVoice:
		s.wantsVoice.Store(true)
		return s.readVoice(st)
	case protocol.KindVideo:
		s.wantsVideo.Store(true)
		return s.readVideo(st)
	default:
		// File streams are reserved: their frames are skipped until
		// this server implements them.
		return drain(st)
	}
}

func drain(st *protocol.Stream) error {
	for {
		if _, _, err := st.ReadFrame(); err != nil {
			return err
		}
	}
}

func (s *session) readText(st *protocol.Stream) error {
	for {
		m, err := st.ReadMessage()
		if err != nil {
			return err
		}
		sc, ok := m.(*protocol.SendChat)
		if !ok {
			return &protocol.Error{Code: protocol.CodeUnexpected, Message: "a client may not send " + m.Type().String()}
		}
		s.send(sc)
	}
}

// ----- joining and leaving -----

func (s *session) join(j *protocol.Join) error {
	if r, _ := s.membership(); r != nil {
		return &protocol.Error{Code: protocol.CodeAlreadyJoined, Message: "already in room " + r.name + "; leave it first"}
	}
	if err := protocol.ValidRoom(j.Room); err != nil {
		return err
	}
	if err := protocol.ValidName(j.Name); err != nil {
		return err
	}
	if hash := s.srv.cfg.Rooms[j.Room].PasswordHash; hash != "" && !s.srv.passwords.check(hash, j.Password) {
		if j.Password == "" {
			return &protocol.Error{Code: protocol.CodeBadPassword, Message: "room " + j.Room + " needs a password"}
		}
		return &protocol.Error{Code: protocol.CodeBadPassword, Message: "wrong password for room " + j.Room}
	}
	var r *room
	for {
		var err error
		if r, err = s.srv.openRoom(j.Room); err != nil {
			return err
		}
		r.joinMu.Lock()
		if !r.closed {
			break
		}
		r.joinMu.Unlock() // emptied and dropped meanwhile: open it again
	}
	defer r.joinMu.Unlock()
	defer s.srv.dropRoomIfEmpty(r) // a failed join may have opened it for nothing

	store := s.srv.store
	tokHash, since, known, err := store.Token(j.Room, j.Name)
	if err != nil {
		return err
	}
	presented := sha256.Sum256(j.Token)
	validToken := known && len(j.Token) == protocol.TokenSize && subtle.ConstantTimeCompare(presented[:], tokHash) == 1

	existing := r.memberNamed(j.Name)
	if existing != nil && !validToken {
		return &protocol.Error{Code: protocol.CodeNameTaken, Message: "the name " + j.Name + " is already in use in room " + j.Room}
	}
	if existing != nil && existing.sess.id > s.id {
		// The token's holder is on a newer connection than this one: this
		// join is stale, from a connection its client gave up on while the
		// join waited (on a busy store, say) before it connected again.
		// Taking the name back would close the connection the client
		// uses, as replaced.
		return &protocol.Error{Code: protocol.CodeNameTaken, Message: "the name " + j.Name + " is held by a newer connection of the same member"}
	}
	if existing == nil && r.size() >= s.srv.cfg.MaxRoomMembers {
		return &protocol.Error{Code: protocol.CodeRoomFull, Message: "room " + j.Room + " is full"}
	}
	head, low := r.position()
	token := j.Token
	if !validToken {
		token = make([]byte, protocol.TokenSize)
		rand.Read(token)
		h := sha256.Sum256(token)
		if since, err = store.SetToken(j.Room, j.Name, h[:]); err != nil {
			return err
		}
	}
	var start uint64
	// A resume whose AfterSeq counts in another history (this server's was
	// reset since) gets the recent history, as a fresh join does.
	if j.Resume && (j.HistoryID == 0 || j.HistoryID == store.ID()) {
		// Gap markers cover anything retention removed after AfterSeq.
		start = min(j.AfterSeq, head)
	} else {
		if start, err = store.RecentStart(j.Room, s.srv.cfg.HistoryOnJoin); err != nil {
			return err
		}
		start = max(start, low-1)
	}

	r.mu.Lock()
	m := &member{id: r.nextID, name: j.Name, sess: s, dmSince: since}
	// Become a member only if the session is still open: once closed, its
	// run goroutine leaves whatever room it sees here, and a member added
	// after that would stay behind as a ghost.
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		r.mu.Unlock()
		return nil
	}
	s.room, s.member = r, m
	s.epoch++
	s.clearMediaLocked()
	// The store's head may be ahead of what the room has published: never
	// start past the published head, or those messages would be skipped.
	s.startCursor = min(start, r.head)
	// Until the writer adopts the new epoch, the lag check must not judge
	// this member by its previous room's cursor.
	s.synced.Store(false)
	s.mu.Unlock()
	var replaced *member
	if old := r.members[j.Name]; old != nil {
		r.removeLocked(old, protocol.LeftReplaced)
		replaced = old
	}
	r.nextID++
	r.addLocked(m)
	joined := &protocol.Joined{Room: j.Room, MemberID: m.id, Name: m.name, Token: token, HeadSeq: r.head, HistoryID: store.ID(), Members: r.rosterLocked()}
	s.queueControl(joined)
	r.mu.Unlock()

	if replaced != nil {
		replaced.sess.closeWith(CloseReplaced, "a new session joined as "+j.Name)
	}
	r.askVideoSendersForKeyframes(m) // the newcomer needs a picture to start from
	s.log.Info("joined", "room", j.Room, "name", j.Name, "resume", j.Resume, "after", j.AfterSeq, "replaced", replaced != nil)
	return nil
}

// leave takes the session out of its room, if it is in one.
func (s *session) leave(reason protocol.LeaveReason) {
	r, m := s.membership()
	if r == nil {
		return
	}
	r.joinMu.Lock()
	defer r.joinMu.Unlock()
	r.mu.Lock()
	r.removeLocked(m, reason)
	s.mu.Lock()
	if s.member == m {
		s.room, s.member = nil, nil
		s.epoch++
		s.clearMediaLocked()
	}
	s.mu.Unlock()
	r.mu.Unlock()
	s.srv.dropRoomIfEmpty(r)
}

// ----- sending chat -----

// checkText validates a chat message against the server's rules.
func (s *session) checkText(r *room, m *protocol.SendChat) (protocol.ErrorCode, string) {
	switch {
	case !utf8.ValidString(m.Text):
		return protocol.CodeInvalidUTF8, "text is not valid UTF-8"
	case len(m.Text) > s.srv.cfg.MaxTextBytes:
		return protocol.CodeTextTooLong, "text is longer than the server's limit of " + strconv.Itoa(s.srv.cfg.MaxTextBytes) + " bytes"
	case strings.TrimSpace(m.Text) == "":
		return protocol.CodeEmptyText, "text is empty"
	case strings.ContainsFunc(m.Text, isControl):
		return protocol.CodeBadText, "text contains control characters (only tab and newline are allowed)"
	case m.To != "" && r.memberNamed(m.To) == nil:
		return protocol.CodeNoSuchMember, m.To + " is not in the room"
	}
	return protocol.CodeNone, ""
}

// isControl reports the characters chat text may not hold: C0 controls but
// tab and newline, DEL and C1 controls. They could drive a terminal.
func isControl(r rune) bool {
	return r < 0x20 && r != '\t' && r != '\n' || r >= 0x7f && r < 0xa0
}

// ackIfStored acknowledges a resend of a message that is already stored,
// which must not fail for reasons that arose since (its recipient left,
// the sender is over the rate now).
func (s *session) ackIfStored(r *room, mem *member, m *protocol.SendChat) bool {
	e, ok, err := s.srv.store.Lookup(r.name, mem.name, m.ClientID)
	if err != nil || !ok {
		return false
	}
	s.queueText(&protocol.Ack{ClientID: e.ClientID, Seq: e.Seq, Time: e.Time})
	return true
}

func (s *session) send(m *protocol.SendChat) {
	reject := func(code protocol.ErrorCode, retry time.Duration, msg string) {
		s.queueText(&protocol.Error{Code: code, Ref: m.ClientID, RetryAfter: uint32(retry.Milliseconds()), Message: msg})
	}
	r, mem := s.membership()
	now := time.Now()
	switch {
	case mem == nil:
		reject(protocol.CodeNotInRoom, 0, "join a room before sending")
		return
	case m.ClientID == 0:
		reject(protocol.CodeBadClientID, 0, "client_id must not be zero")
		return
	}
	if s.mustResend != 0 {
		// Keep the sender's order: after a rate limit, nothing is taken
		// until the rejected message comes again.
		if m.ClientID != s.mustResend {
			reject(protocol.CodeRateLimited, max(s.resendAt.Sub(now), time.Millisecond), "resend the rate-limited message first")
			return
		}
		s.mustResend = 0 // it came again: judge it afresh
	}
	if code, msg := s.checkText(r, m); code != protocol.CodeNone {
		if !s.ackIfStored(r, mem, m) {
			reject(code, 0, msg)
		}
		return
	}
	lim := r.limiter(mem.name)
	if !lim.AllowN(now, 1) {
		if s.ackIfStored(r, mem, m) {
			return
		}
		res := lim.ReserveN(now, 1)
		wait := res.DelayFrom(now)
		res.CancelAt(now)
		s.mustResend, s.resendAt = m.ClientID, now.Add(wait)
		reject(protocol.CodeRateLimited, max(wait, time.Millisecond), "sending too fast")
		return
	}
	roomName := r.name
	s.srv.store.Append(&history.AppendRequest{
		Room: roomName, From: mem.name, To: m.To, ClientID: m.ClientID, Text: m.Text,
		Done: func(e *history.Entry, dup bool, err error) {
			if err != nil {
				// The store stops taking writes after a failure, so no
				// later message can overtake this one: close, and the
				// client resends everything unacknowledged, in order.
				s.log.Error("storing a message", "room", roomName, "err", err)
				s.closeWith(CloseInternal, "the server could not store a message")
				return
			}
			if !dup {
				s.srv.publish(roomName, e)
			}
			s.queueText(&protocol.Ack{ClientID: e.ClientID, Seq: e.Seq, Time: e.Time})
		},
	})
}
