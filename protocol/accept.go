package protocol

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/yamux"
)

// NotSentLowat is the TCP_NOTSENT_LOWAT both ends set on Linux.
const NotSentLowat = 16 << 10

// ServerConfig configures the server side of a session. The zero value of
// each field means the default given in its comment.
type ServerConfig struct {
	// Certificate is the server's identity. Required.
	Certificate tls.Certificate
	// HandshakeTimeout bounds TLS plus Hello/Welcome (default 5s).
	HandshakeTimeout time.Duration
	// Welcome is sent in answer to a Hello; Version is filled in.
	Welcome Welcome
	// Guard bounds what a client may make yamux do.
	Guard GuardLimits
	// KeepAliveInterval is the yamux keepalive period (default 15s). A
	// peer that does not answer within WriteTimeout is disconnected.
	KeepAliveInterval time.Duration
	// WriteTimeout bounds every write to the connection (default 10s); a
	// write that times out ends the whole session.
	WriteTimeout time.Duration
	// MaxStreams is how many streams a client may have open (default 8).
	MaxStreams int

	tlsOnce sync.Once
	tls     *tls.Config
}

// tlsConfig returns the TLS configuration of every connection: one for the
// whole server, so that a session ticket one connection issued resumes
// the next (a configuration per connection has ticket keys of its own, so
// no ticket would ever be accepted). The Certificate must not change once
// the first connection has been accepted.
func (c *ServerConfig) tlsConfig() *tls.Config {
	c.tlsOnce.Do(func() {
		c.tls = &tls.Config{
			MinVersion:   tls.VersionTLS13,
			Certificates: []tls.Certificate{c.Certificate},
			NextProtos:   []string{ALPN},
		}
	})
	return c.tls
}

func (c *ServerConfig) handshakeTimeout() time.Duration {
	return orDefault(c.HandshakeTimeout, 5*time.Second)
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func yamuxConfig(keepAlive, writeTimeout time.Duration, backlog int) *yamux.Config {
	yc := yamux.DefaultConfig()
	yc.AcceptBacklog = backlog
	yc.EnableKeepAlive = true
	yc.KeepAliveInterval = orDefault(keepAlive, 15*time.Second)
	yc.ConnectionWriteTimeout = orDefault(writeTimeout, 10*time.Second)
	// Neither side closes a stream but to end the session, so nothing
	// waits for a peer's FIN; a close timer would only keep a closed
	// stream, its session and every buffer of it alive until it fired.
	yc.StreamCloseTimeout = 0
	yc.StreamOpenTimeout = orDefault(writeTimeout, 10*time.Second)
	yc.LogOutput = io.Discard // yamux logs by string; errors reach us as values
	return yc
}

// ServerConn is an accepted session after a successful Hello/Welcome.
type ServerConn struct {
	raw     net.Conn
	guard   *guard
	sess    *yamux.Session
	control *Stream
	hello   Hello
	cfg     *ServerConfig

	mu      sync.Mutex
	streams int // open streams other than control; guarded by mu
}

// Handshake runs the server side of a session on a freshly accepted
// connection: TLS 1.3, yamux, the control stream and Hello/Welcome, all
// within cfg.HandshakeTimeout. Before the Hello the client may open one
// stream and send only small frames. On failure the connection is closed
// and the error carries a code (CodeTimeout, CodeVersion, CodeUnexpected,
// ...).
func Handshake(ctx context.Context, conn net.Conn, cfg *ServerConfig) (*ServerConn, error) {
	deadline := time.Now().Add(cfg.handshakeTimeout())
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	conn.SetDeadline(deadline)
	setNotSentLowat(conn, NotSentLowat)

	tc := tls.Server(conn, cfg.tlsConfig())
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, handshakeErr("TLS handshake", err)
	}
	if p := tc.ConnectionState().NegotiatedProtocol; p != ALPN {
		tc.Close()
		return nil, errorf(CodeVersion, "client did not offer ALPN %q", ALPN)
	}
	maxStreams := orDefault(cfg.MaxStreams, 8)
	limits := cfg.Guard
	if limits.MaxOpens == 0 {
		// Room for the relay to refuse the stream after its MaxStreams
		// with a Goodbye, and for the open rate's burst to trip first;
		// beyond that the guard cuts at once.
		limits.MaxOpens = 4 * maxStreams
	}
	g := newGuard(tc, limits)
	sess, err := yamux.Server(&coalescer{Conn: g}, yamuxConfig(cfg.KeepAliveInterval, cfg.WriteTimeout, maxStreams))
	if err != nil {
		tc.Close()
		return nil, err
	}
	sc := &ServerConn{raw: tc, guard: g, sess: sess, cfg: cfg}
	if err := sc.exchangeHello(ctx, deadline); err != nil {
		if v := g.violation.Load(); v != nil {
			err = v
		}
		if sc.control != nil && CodeOf(err) != CodeNone && CodeOf(err) != CodeTimeout {
			sc.Goodbye(CodeOf(err), err.Error(), time.Until(deadline))
		}
		sess.Close()
		return nil, err
	}
	conn.SetDeadline(time.Time{})
	return sc, nil
}

func (sc *ServerConn) exchangeHello(ctx context.Context, deadline time.Time) error {
	ys, err := sc.sess.AcceptStreamWithContext(ctx)
	if err != nil {
		return handshakeErr("waiting for the control stream", err)
	}
	ys.SetDeadline(deadline)
	kind, err := readKind(ys)
	if err != nil {
		return handshakeErr("reading the stream kind", err)
	}
	if kind != KindControl {
		return errorf(CodeUnexpected, "first stream is %s, want control", kind)
	}
	sc.control = sc.newStream(ys, KindControl)
	sc.control.SetReadLimit(sc.guard.limits.PreHelloFrame)
	h, p, err := sc.control.fr.Next()
	if err != nil {
		return handshakeErr("reading the hello", err)
	}
	if h.Type != TypeHello {
		return errorf(CodeUnexpected, "first message is %s, want hello", h.Type)
	}
	m, err := Decode(h.Type, p)
	if err != nil {
		return err
	}
	sc.hello = *m.(*Hello)
	if sc.hello.MinVersion > Version || sc.hello.MaxVersion < Version {
		return errorf(CodeVersion, "client speaks versions %d to %d, server speaks %d",
			sc.hello.MinVersion, sc.hello.MaxVersion, Version)
	}
	// The client may open its other streams as soon as it reads the
	// Welcome, so relax the guard before sending it.
	sc.guard.helloDone.Store(true)
	w := sc.cfg.Welcome
	w.Version = Version
	if err := sc.control.WriteMessage(&w); err != nil {
		return handshakeErr("writing the welcome", err)
	}
	sc.control.SetReadLimit(0)
	ys.SetDeadline(time.Time{})
	return nil
}

// handshakeErr gives timeouts their code; other errors pass through.
func handshakeErr(op string, err error) error {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) ||
		errors.Is(err, yamux.ErrTimeout) || (errors.As(err, &ne) && ne.Timeout()) {
		return &Error{Code: CodeTimeout, Message: op + ": no answer within the handshake deadline"}
	}
	if CodeOf(err) != CodeNone {
		return err
	}
	return fmt.Errorf("protocol: %s: %w", op, err)
}

func readKind(r io.Reader) (StreamKind, error) {
	var b [1]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return 0, err
	}
	return StreamKind(b[0]), nil
}

// Hello returns the client's Hello.
func (sc *ServerConn) Hello() Hello { return sc.hello }

// Control returns the control stream.
func (sc *ServerConn) Control() *Stream { return sc.control }

// RemoteAddr returns the client's address.
func (sc *ServerConn) RemoteAddr() net.Addr { return sc.raw.RemoteAddr() }

// Done is closed when the session has ended.
func (sc *ServerConn) Done() <-chan struct{} { return sc.sess.CloseChan() }

// AcceptStream waits for the client to open its next stream and reads the
// stream's kind; it is AcceptPending followed by Identify. While it waits
// for the kind byte (up to HandshakeTimeout) it accepts no other stream,
// so a server that serves several streams should call AcceptPending in its
// accept loop and Identify on each stream's own goroutine.
func (sc *ServerConn) AcceptStream(ctx context.Context) (*Stream, error) {
	p, err := sc.AcceptPending(ctx)
	if err != nil {
		return nil, err
	}
	return p.Identify()
}

// PendingStream is a stream the client opened whose kind byte has not been
// read yet. It holds a place under MaxStreams.
type PendingStream struct {
	sc *ServerConn
	ys *yamux.Stream
}

// AcceptPending waits for the client to open its next stream. It fails
// with CodeTooManyStreams when the client has MaxStreams streams open; the
// caller should then end the session. Call Identify on the stream, and
// StreamDone when a stream Identify returned is finished.
func (sc *ServerConn) AcceptPending(ctx context.Context) (*PendingStream, error) {
	ys, err := sc.sess.AcceptStreamWithContext(ctx)
	if err != nil {
		if v := sc.guard.violation.Load(); v != nil {
			return nil, v
		}
		return nil, err
	}
	sc.mu.Lock()
	sc.streams++
	n := sc.streams
	sc.mu.Unlock()
	// The control stream counts against the limit too.
	if n+1 > orDefault(sc.cfg.MaxStreams, 8) {
		ys.Close()
		return nil, errorf(CodeTooManyStreams, "more than %d streams", orDefault(sc.cfg.MaxStreams, 8))
	}
	return &PendingStream{sc: sc, ys: ys}, nil
}

// Identify reads the stream's kind byte, which must arrive within
// HandshakeTimeout. It fails with CodeBadStream for a kind this version
// does not know (or a second control stream), or for a stream the client
// closed or reset first, and with CodeTimeout when the byte does not come;
// the caller should then end the session. On failure the stream's place
// under MaxStreams is released.
func (p *PendingStream) Identify() (*Stream, error) {
	sc, ys := p.sc, p.ys
	ys.SetReadDeadline(time.Now().Add(sc.cfg.handshakeTimeout()))
	kind, err := readKind(ys)
	ys.SetReadDeadline(time.Time{})
	if err != nil {
		ys.Close()
		sc.StreamDone()
		if !sc.sess.IsClosed() && (errors.Is(err, io.EOF) || errors.Is(err, yamux.ErrConnectionReset)) {
			return nil, errorf(CodeBadStream, "the client ended a stream before its kind byte")
		}
		return nil, handshakeErr("reading the stream kind", err)
	}
	if !kind.Valid() || kind == KindControl {
		ys.Close()
		sc.StreamDone()
		return nil, errorf(CodeBadStream, "stream kind %d", uint8(kind))
	}
	return sc.newStream(ys, kind), nil
}

// newStream makes a server stream: one whose end while the session lives
// is the client's protocol error (Stream.ended).
func (sc *ServerConn) newStream(ys *yamux.Stream, kind StreamKind) *Stream {
	st := newStream(ys, kind)
	st.alive = func() bool { return !sc.sess.IsClosed() }
	return st
}

// StreamDone releases a stream's place under MaxStreams.
func (sc *ServerConn) StreamDone() {
	sc.mu.Lock()
	sc.streams--
	sc.mu.Unlock()
}

// Err returns why the multiplexer session ended, once it has: the limit
// the client crossed at the yamux layer (Violation), yamux.ErrKeepAliveTimeout
// when the client stopped answering keepalive pings, or another yamux
// error. It returns nil while the session lives. (Streams only see the end
// of file when the session goes; this says why.)
func (sc *ServerConn) Err() error {
	if !sc.sess.IsClosed() {
		return nil
	}
	if v := sc.guard.violation.Load(); v != nil {
		return v
	}
	// yamux keeps the reason only for Accept, which returns it once the
	// session is shut down (the client opens no streams then).
	_, err := sc.sess.AcceptStream()
	return err
}

// Violation returns the limit the client crossed at the yamux layer, if the
// guard ended the session.
func (sc *ServerConn) Violation() error {
	if v := sc.guard.violation.Load(); v != nil {
		return v
	}
	return nil
}

// Goodbye tells the client why the session ends and closes it. It waits at
// most timeout for the message to be written and then as long again for the
// client to close its side, so that closing never races the message away
// (a socket closed with unread input sends a reset, and the peer may lose
// what was in flight).
func (sc *ServerConn) Goodbye(code ErrorCode, msg string, timeout time.Duration) {
	msg = TruncateUTF8(msg, MaxErrorBytes)
	sc.control.SetWriteDeadline(time.Now().Add(timeout))
	if err := sc.control.WriteMessage(&Goodbye{Code: code, Message: msg}); err == nil {
		lingerClose(sc.raw, sc.sess, timeout)
	}
	sc.sess.Close()
}

// lingerClose half-closes the connection and waits up to d for the peer to
// close its side.
func lingerClose(raw net.Conn, sess *yamux.Session, d time.Duration) {
	if tc, ok := raw.(*tls.Conn); ok {
		_ = tc.CloseWrite()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-sess.CloseChan():
	case <-t.C:
	}
}

// Close ends the session at once.
func (sc *ServerConn) Close() error { return sc.sess.Close() }
