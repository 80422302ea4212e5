package protocol

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"
)

// DialConfig configures the client side of a session. The zero value of each
// field means the default given in its comment.
type DialConfig struct {
	// KnownServers, if set, supplies the pin when the invite carries none,
	// and records the key on trust on first use.
	KnownServers *KnownServers
	// TrustOnFirstUse accepts and records the key of a server that has no
	// pin. A server whose pin is known is still held to it.
	TrustOnFirstUse bool
	// Software names the client in the Hello (default "parley-go").
	Software string
	// Timeout bounds TCP, TLS and Hello/Welcome (default 10s).
	Timeout time.Duration
	// KeepAliveInterval is the yamux keepalive period (default 15s).
	KeepAliveInterval time.Duration
	// WriteTimeout bounds writes to the connection (default 10s).
	WriteTimeout time.Duration
	// SessionCache lets reconnects resume TLS sessions; the pin is checked
	// on resumed sessions too. Nil disables resumption.
	SessionCache tls.ClientSessionCache
	// DialContext opens the TCP connection (default net.Dialer).
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)

	// OnVoice, if set, receives every Voice the server sends, on the voice
	// stream's reader goroutine, instead of Receive. v and v.Data are
	// valid only during the call: copy what you keep, and return quickly,
	// since the next frame waits. Setting it opens the voice stream when
	// the session starts; the server sends voice only to clients that
	// opened that stream.
	OnVoice func(v *Voice)
	// OnVideo is OnVoice for video fragments and the video stream.
	OnVideo func(f *VideoFragment)
	// FragmentData is the most data bytes SendVideoFrame puts in one
	// fragment (default DefaultFragmentData; see FragmentData).
	FragmentData int
}

// Conn is the client side of a session: typed messages over per-kind
// streams on one TLS connection. Send may be called from any goroutine;
// Receive from one goroutine at a time. Pings are answered internally.
type Conn struct {
	sess        *yamux.Session
	raw         net.Conn
	welcome     Welcome
	fingerprint string

	onVoice      func(*Voice)
	onVideo      func(*VideoFragment)
	fragmentData int

	mu      sync.Mutex
	streams [KindFile + 1]*Stream // guarded by mu; opened on first use
	ctlDone chan struct{}         // closed when the control reader has finished
	pongs   map[uint64]chan struct{}
	pending []Message // read while Join waited; guarded by mu

	in       chan inbound
	done     chan struct{}
	closeMu  sync.Mutex
	closeErr error // first reason the session ended; guarded by closeMu
	closed   bool
	local    atomic.Bool // Close or Abort was called: the end is this side's
	readers  sync.WaitGroup
}

type inbound struct {
	m   Message
	err error
}

// DialInvite parses an invite link and dials it.
func DialInvite(ctx context.Context, link string, cfg *DialConfig) (*Conn, error) {
	inv, err := ParseInvite(link)
	if err != nil {
		return nil, err
	}
	return Dial(ctx, inv, cfg)
}

// Dial connects to the server of inv, verifies its key against the pin (the
// invite's fingerprint, else the known-servers entry), and completes the
// Hello/Welcome exchange. A key that does not match fails with an
// *IdentityError wrapping ErrIdentityChanged; a server with no pin fails
// with ErrUnknownServer unless cfg.TrustOnFirstUse is set.
func Dial(ctx context.Context, inv Invite, cfg *DialConfig) (*Conn, error) {
	if cfg == nil {
		cfg = &DialConfig{}
	}
	ctx, cancel := context.WithTimeout(ctx, orDefault(cfg.Timeout, 10*time.Second))
	defer cancel()

	pin := inv.Fingerprint
	pinFromFile := false
	if pin == "" && cfg.KnownServers != nil {
		fp, ok, err := cfg.KnownServers.Lookup(inv.Addr)
		if err != nil {
			return nil, fmt.Errorf("reading known servers: %w", err)
		}
		pin, pinFromFile = fp, ok
	}
	tofu := pin == "" && cfg.TrustOnFirstUse

	dial := cfg.DialContext
	if dial == nil {
		dial = (&net.Dialer{KeepAlive: -1}).DialContext
	}
	nc, err := dial(ctx, "tcp", inv.Addr)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", inv.Addr, err)
	}
	setNotSentLowat(nc, NotSentLowat)
	if d, ok := ctx.Deadline(); ok {
		nc.SetDeadline(d)
	}

	var presented string
	tcfg := &tls.Config{
		MinVersion:         tls.VersionTLS13,
		NextProtos:         []string{ALPN},
		ServerName:         hostOnly(inv.Addr),
		InsecureSkipVerify: true, // self-signed: the pin below is the check
		ClientSessionCache: cfg.SessionCache,
		VerifyConnection:   verifyPin(inv.Addr, pin, &presented),
	}
	if tofu {
		tcfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("protocol: server sent no certificate")
			}
			presented = Fingerprint(cs.PeerCertificates[0])
			return nil
		}
	}
	tc := tls.Client(nc, tcfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		nc.Close()
		var ie *IdentityError
		if errors.As(err, &ie) {
			return nil, ie
		}
		return nil, fmt.Errorf("TLS handshake with %s: %w", inv.Addr, err)
	}
	if cfg.KnownServers != nil && !pinFromFile {
		// Record a key we now trust, from the invite or on first use. Add
		// never replaces a different recorded key.
		if err := cfg.KnownServers.Add(inv.Addr, presented); err != nil && tofu {
			tc.Close()
			return nil, err
		}
	}

	sess, err := yamux.Client(&coalescer{Conn: tc}, yamuxConfig(cfg.KeepAliveInterval, cfg.WriteTimeout, 8))
	if err != nil {
		tc.Close()
		return nil, err
	}
	c := &Conn{
		sess:         sess,
		raw:          tc,
		fingerprint:  presented,
		pongs:        make(map[uint64]chan struct{}),
		in:           make(chan inbound, 64),
		done:         make(chan struct{}),
		ctlDone:      make(chan struct{}),
		onVoice:      cfg.OnVoice,
		onVideo:      cfg.OnVideo,
		fragmentData: orDefault(cfg.FragmentData, DefaultFragmentData),
	}
	if err := c.hello(ctx, cfg); err != nil {
		sess.Close()
		c.readers.Wait()
		return nil, err
	}
	nc.SetDeadline(time.Time{})
	go c.watch()
	kinds := []StreamKind{KindText}
	if c.onVoice != nil {
		kinds = append(kinds, KindVoice)
	}
	if c.onVideo != nil {
		kinds = append(kinds, KindVideo)
	}
	for _, k := range kinds {
		if _, err := c.stream(k); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

func hostOnly(addr string) string {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return h
}

func (c *Conn) hello(ctx context.Context, cfg *DialConfig) error {
	ctl, err := c.openStream(KindControl)
	if err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok {
		ctl.SetReadDeadline(d)
	}
	hello := &Hello{MinVersion: Version, MaxVersion: Version, Software: orDefault(cfg.Software, "parley-go")}
	if err := ctl.WriteMessage(hello); err != nil {
		return fmt.Errorf("sending hello: %w", err)
	}
	m, err := ctl.ReadMessage()
	if err != nil {
		return handshakeErr("waiting for the welcome", err)
	}
	switch m := m.(type) {
	case *Welcome:
		c.welcome = *m
	case *Goodbye:
		return m.Err()
	default:
		return errorf(CodeUnexpected, "server answered hello with %s", m.Type())
	}
	ctl.SetReadDeadline(time.Time{})
	c.streams[KindControl] = ctl
	c.readers.Add(1)
	go c.read(ctl)
	return nil
}

// openStream opens a yamux stream and announces its kind.
func (c *Conn) openStream(kind StreamKind) (*Stream, error) {
	ys, err := c.sess.OpenStream()
	if err != nil {
		return nil, fmt.Errorf("opening %s stream: %w", kind, err)
	}
	if _, err := ys.Write([]byte{byte(kind)}); err != nil {
		ys.Close()
		return nil, fmt.Errorf("opening %s stream: %w", kind, err)
	}
	return newStream(ys, kind), nil
}

// stream returns the stream of a kind, opening it on first use.
func (c *Conn) stream(kind StreamKind) (*Stream, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.streams[kind]; s != nil {
		return s, nil
	}
	s, err := c.openStream(kind)
	if err != nil {
		return nil, err
	}
	c.streams[kind] = s
	c.readers.Add(1)
	go c.read(s)
	return s, nil
}

// read delivers one stream's messages to Receive and answers pings. The
// control reader alone decides why the session ended: it reads the server's
// Goodbye, which other streams' readers could otherwise beat with a plain
// end of stream.
func (c *Conn) read(s *Stream) {
	defer c.readers.Done()
	control := s.Kind() == KindControl
	if control {
		defer close(c.ctlDone)
	}
	if (s.Kind() == KindVoice && c.onVoice != nil) || (s.Kind() == KindVideo && c.onVideo != nil) {
		if err := c.readMedia(s); err != nil && !isEOF(err) {
			c.fail(err)
			c.sess.Close()
		}
		return
	}
	for {
		m, err := s.ReadMessage()
		if err != nil {
			if control || !isEOF(err) {
				c.fail(c.ended(err))
				c.sess.Close()
			}
			return
		}
		switch m := m.(type) {
		case *Ping:
			// Answer off this goroutine: the write may wait, and this
			// reader must keep reading. Counted so Close waits for it.
			c.readers.Add(1)
			go func() {
				defer c.readers.Done()
				c.Send(&Pong{Nonce: m.Nonce})
			}()
			continue
		case *Pong:
			c.mu.Lock()
			if ch := c.pongs[m.Nonce]; ch != nil {
				close(ch)
				delete(c.pongs, m.Nonce)
			}
			c.mu.Unlock()
			continue
		case *Goodbye:
			c.fail(m.Err())
			c.sess.Close()
			return
		}
		select {
		case c.in <- inbound{m: m}:
		case <-c.sess.CloseChan():
			// Keep what fits for Receive; the rest of a dead session is
			// dropped (text is resumed from the server's history). Stop at
			// the first drop: a later message must never overtake it.
			select {
			case c.in <- inbound{m: m}:
			default:
				return
			}
		}
	}
}

// readMedia hands a media stream's frames to OnVoice or OnVideo without
// copying them.
func (c *Conn) readMedia(s *Stream) error {
	var v Voice
	var f VideoFragment
	for {
		h, p, err := s.ReadFrame()
		if err != nil {
			return err
		}
		switch h.Type {
		case TypeVoice:
			if err := ParseVoice(p, &v); err != nil {
				return err
			}
			c.onVoice(&v)
		case TypeVideoFragment:
			if err := ParseVideoFragment(p, &f); err != nil {
				return err
			}
			c.onVideo(&f)
		default:
			// An Error, or a known type of this range added later.
			m, err := Decode(h.Type, p)
			if err != nil {
				return err
			}
			select {
			case c.in <- inbound{m: m}:
			case <-c.sess.CloseChan():
				return nil
			}
		}
	}
}

func isEOF(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, yamux.ErrSessionShutdown) ||
		errors.Is(err, yamux.ErrStreamClosed) || errors.Is(err, yamux.ErrConnectionReset) || errors.Is(err, net.ErrClosed)
}

// ended says why the connection ended when a stream read err: the end of
// the stream means the whole session went, and yamux knows why.
func (c *Conn) ended(err error) error {
	if !isEOF(err) {
		return err
	}
	if c.local.Load() {
		return ErrClosed
	}
	select {
	case <-c.sess.CloseChan():
	default:
		return err
	}
	// yamux keeps the reason only for Accept, which returns it once the
	// session is shut down (the server opens no streams).
	if _, serr := c.sess.AcceptStream(); errors.Is(serr, yamux.ErrKeepAliveTimeout) {
		return fmt.Errorf("%w (%v)", ErrKeepalive, serr)
	}
	return fmt.Errorf("%w (%v)", ErrConnectionLost, err)
}

// fail records the first reason the session ended.
func (c *Conn) fail(err error) {
	c.closeMu.Lock()
	if c.closeErr == nil {
		c.closeErr = err
	}
	c.closeMu.Unlock()
}

// watch closes done when the session has ended and the control reader has
// read all the server sent.
func (c *Conn) watch() {
	<-c.sess.CloseChan()
	<-c.ctlDone
	c.closeMu.Lock()
	if !c.closed {
		c.closed = true
		close(c.done)
	}
	c.closeMu.Unlock()
}

// Err returns why the session ended: the server's Goodbye as an *Error, a
// read error, or ErrClosed after Close.
func (c *Conn) Err() error {
	c.closeMu.Lock()
	defer c.closeMu.Unlock()
	if c.closeErr != nil {
		return c.closeErr
	}
	return ErrClosed
}

// ErrClosed is returned after the session has ended without a reason.
var ErrClosed = errors.New("protocol: connection closed")

// Welcome returns the server's Welcome.
func (c *Conn) Welcome() Welcome { return c.welcome }

// Fingerprint returns the fingerprint of the key the server presented.
func (c *Conn) Fingerprint() string { return c.fingerprint }

// ConnectionState returns the state of the TLS connection; DidResume says
// whether it resumed an earlier session (DialConfig.SessionCache).
func (c *Conn) ConnectionState() tls.ConnectionState {
	if tc, ok := c.raw.(*tls.Conn); ok {
		return tc.ConnectionState()
	}
	return tls.ConnectionState{}
}

// Done is closed when the session has ended.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Send writes m on the stream of its kind, opening the stream on first use.
func (c *Conn) Send(m Message) error {
	s, err := c.stream(m.Type().Kind())
	if err != nil {
		return err
	}
	if err := s.WriteMessage(m); err != nil {
		select {
		case <-c.done:
			return fmt.Errorf("sending %s: %w", m.Type(), c.Err())
		default:
			return fmt.Errorf("sending %s: %w", m.Type(), err)
		}
	}
	return nil
}

// SendVideoFrame cuts f into fragments of at most DialConfig.FragmentData
// bytes and writes them in order on the video stream, one write each, so
// that voice written meanwhile by another goroutine goes out between them
// rather than behind the whole frame. It does not pace: a caller that
// sends large frames on a slow uplink spaces them itself.
func (c *Conn) SendVideoFrame(f *VideoFrame) error {
	s, err := c.stream(KindVideo)
	if err != nil {
		return err
	}
	return f.Fragment(c.fragmentData, func(frag *VideoFragment) error {
		if err := s.WriteMessage(frag); err != nil {
			select {
			case <-c.done:
				return fmt.Errorf("sending video: %w", c.Err())
			default:
				return fmt.Errorf("sending video: %w", err)
			}
		}
		return nil
	})
}

// Receive returns the next message from any stream. After the session ends
// it returns the reason (see Err).
func (c *Conn) Receive(ctx context.Context) (Message, error) {
	c.mu.Lock()
	if len(c.pending) > 0 {
		m := c.pending[0]
		c.pending = c.pending[1:]
		c.mu.Unlock()
		return m, nil
	}
	c.mu.Unlock()
	select {
	case in := <-c.in:
		return in.m, in.err
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.done:
		// Deliver what was already read before reporting the end.
		select {
		case in := <-c.in:
			return in.m, in.err
		default:
			return nil, c.Err()
		}
	}
}

// Join sends j and waits for the server's Joined or Error. Messages that
// arrive meanwhile (history may overtake Joined, since it travels on the
// text stream) are kept for Receive.
func (c *Conn) Join(ctx context.Context, j *Join) (*Joined, error) {
	if err := c.Send(j); err != nil {
		return nil, err
	}
	var held []Message
	defer func() {
		c.mu.Lock()
		c.pending = append(held, c.pending...)
		c.mu.Unlock()
	}()
	for {
		m, err := c.Receive(ctx)
		if err != nil {
			return nil, err
		}
		switch m := m.(type) {
		case *Joined:
			return m, nil
		case *Error:
			if m.Ref == 0 {
				return nil, m
			}
		}
		held = append(held, m)
	}
}

// Ping measures the round trip through the server's scheduler on the
// control stream.
func (c *Conn) Ping(ctx context.Context) (time.Duration, error) {
	var b [8]byte
	rand.Read(b[:])
	nonce := binary.BigEndian.Uint64(b[:])
	ch := make(chan struct{})
	c.mu.Lock()
	c.pongs[nonce] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pongs, nonce)
		c.mu.Unlock()
	}()
	start := time.Now()
	if err := c.Send(&Ping{Nonce: nonce}); err != nil {
		return 0, err
	}
	select {
	case <-ch:
		return time.Since(start), nil
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-c.done:
		return 0, c.Err()
	}
}

// Close says goodbye and ends the session. It waits for the connection's
// goroutines to finish.
func (c *Conn) Close() error {
	c.local.Store(true)
	select {
	case <-c.done:
	default:
		c.mu.Lock()
		ctl := c.streams[KindControl]
		c.mu.Unlock()
		if ctl != nil {
			ctl.SetWriteDeadline(time.Now().Add(time.Second))
			if ctl.WriteMessage(&Goodbye{Code: CodeLeaving}) == nil {
				lingerClose(c.raw, c.sess, time.Second)
			}
		}
	}
	err := c.sess.Close()
	c.readers.Wait()
	<-c.done
	return err
}

// Abort ends the session at once, without a goodbye.
func (c *Conn) Abort() {
	c.local.Store(true)
	c.sess.Close()
	c.readers.Wait()
	<-c.done
}
