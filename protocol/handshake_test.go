package protocol

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"net"
	"reflect"
	"sync/atomic"
	"testing"
	"time"
)

// testCert returns a self-signed ed25519 certificate and its fingerprint.
func testCert(t testing.TB) (tls.Certificate, string) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv, Leaf: leaf}, Fingerprint(leaf)
}

// serveOne runs Handshake on one connection from ln and passes the result
// to serve, which owns the ServerConn. It returns a channel that yields
// serve's error (or the handshake's) when it is done.
func serveOne(ln net.Listener, cfg *ServerConfig, serve func(*ServerConn) error) <-chan error {
	return serveOneWrapped(ln, cfg, nil, serve)
}

// serveOneWrapped is serveOne with the accepted connection wrapped by wrap.
func serveOneWrapped(ln net.Listener, cfg *ServerConfig, wrap func(net.Conn) net.Conn, serve func(*ServerConn) error) <-chan error {
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		if wrap != nil {
			c = wrap(c)
		}
		sc, err := Handshake(context.Background(), c, cfg)
		if err != nil {
			done <- err
			return
		}
		defer sc.Close()
		done <- serve(sc)
	}()
	return done
}

// echoSession is the server side of a test session: it accepts the text
// stream, reads one SendChat, acks it and waits for the client's Goodbye.
func echoSession(sc *ServerConn) error {
	ctx := context.Background()
	s, err := sc.AcceptStream(ctx)
	if err != nil {
		return fmt.Errorf("accepting the text stream: %w", err)
	}
	defer sc.StreamDone()
	if s.Kind() != KindText {
		return fmt.Errorf("first stream is %v, want text", s.Kind())
	}
	m, err := s.ReadMessage()
	if err != nil {
		return fmt.Errorf("reading the text stream: %w (violation %v)", err, sc.Violation())
	}
	sc2, ok := m.(*SendChat)
	if !ok {
		return fmt.Errorf("read %+v, want a SendChat", m)
	}
	// yamux may report a write as failed when the session ends right
	// after it; the client checks that the ack arrived.
	_ = s.WriteMessage(&Ack{ClientID: sc2.ClientID, Seq: 1})
	for {
		m, err := sc.Control().ReadMessage()
		if err != nil {
			return fmt.Errorf("reading the goodbye: %w (violation %v)", err, sc.Violation())
		}
		if _, ok := m.(*Goodbye); ok {
			return nil
		}
	}
}

// echoClient dials ln, checks the Welcome, sends a SendChat, waits for its
// ack and closes the session; the server runs echoSession.
func echoClient(t *testing.T, ln net.Listener, fp string, done <-chan error) {
	t.Helper()
	ctx := context.Background()
	conn, err := Dial(ctx, Invite{Addr: ln.Addr().String(), Room: "lobby", Fingerprint: fp}, &DialConfig{Software: "test-client"})
	if err != nil {
		t.Fatalf("Dial() error: %v (server: %v)", err, <-done)
	}
	if got := conn.Welcome(); got.Software != "test-server" || got.Version != Version || got.MaxTextBytes != 4096 {
		t.Errorf("Welcome() = %+v, want software test-server, version %d", got, Version)
	}
	if got := conn.Fingerprint(); got != fp {
		t.Errorf("Fingerprint() = %q, want %q", got, fp)
	}
	send := &SendChat{ClientID: 7, Text: "hi"}
	if err := conn.Send(send); err != nil {
		t.Errorf("Send(%+v) = %v", send, err)
	}
	// The server has seen everything once the ack arrives.
	if m, err := conn.Receive(ctx); err != nil || !reflect.DeepEqual(m, &Ack{ClientID: 7, Seq: 1}) {
		t.Errorf("Receive() = %+v, %v, want an ack", m, err)
	}
	conn.Close()
	if err := <-done; err != nil {
		t.Fatalf("server: %v", err)
	}
}

func testServerConfig(cert tls.Certificate) *ServerConfig {
	return &ServerConfig{Certificate: cert, Welcome: Welcome{Software: "test-server", MaxTextBytes: 4096}}
}

// TestDialHandshake runs sessions back to back.
func TestDialHandshake(t *testing.T) {
	cert, fp := testCert(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for range 20 {
		echoClient(t, ln, fp, serveOne(ln, testServerConfig(cert), echoSession))
	}
}

// holdConn delays the end of the handshake: Handshake clears the deadline
// of the connection once the Hello/Welcome exchange is done, and holdConn
// holds that call until the server has read and processed what the client
// sent right after the Welcome.
type holdConn struct {
	net.Conn
	reads   atomic.Int64  // Read calls started
	started chan struct{} // a token after each Read starts; capacity 1
}

func (c *holdConn) Read(p []byte) (int, error) {
	c.reads.Add(1)
	select {
	case c.started <- struct{}{}:
	default:
	}
	return c.Conn.Read(p)
}

func (c *holdConn) SetDeadline(t time.Time) error {
	if t.IsZero() {
		// yamux's receive loop is blocked in a read. It starts the next
		// one only once what this one returns (the client's next
		// stream) went through TLS, the guard and yamux. The timer
		// bounds the wait when the session failed.
		r0 := c.reads.Load()
		timeout := time.NewTimer(2 * time.Second)
		defer timeout.Stop()
		for c.reads.Load() < r0+1 {
			select {
			case <-c.started:
			case <-timeout.C:
				return c.Conn.SetDeadline(t)
			}
		}
	}
	return c.Conn.SetDeadline(t)
}

// TestHandshakeStreamAfterWelcome checks that a stream the client opens as
// soon as it has the Welcome (as Dial does with the text stream) does not
// count as a second stream before the hello, however late the server's
// handshake finishes.
func TestHandshakeStreamAfterWelcome(t *testing.T) {
	cert, fp := testCert(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	wrap := func(c net.Conn) net.Conn { return &holdConn{Conn: c, started: make(chan struct{}, 1)} }
	cfg := testServerConfig(cert)
	cfg.HandshakeTimeout = time.Minute
	echoClient(t, ln, fp, serveOneWrapped(ln, cfg, wrap, echoSession))
}

func TestDialWrongFingerprint(t *testing.T) {
	cert, _ := testCert(t)
	_, other := testCert(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := serveOne(ln, &ServerConfig{Certificate: cert}, func(*ServerConn) error { return nil })
	conn, err := Dial(context.Background(), Invite{Addr: ln.Addr().String(), Room: "lobby", Fingerprint: other}, nil)
	if !errors.Is(err, ErrIdentityChanged) {
		t.Errorf("Dial(wrong fingerprint) = %v, %v, want %v", conn, err, ErrIdentityChanged)
	}
	var ie *IdentityError
	if errors.As(err, &ie) && ie.Expected != other {
		t.Errorf("Dial(wrong fingerprint) error %+v, want Expected %q", ie, other)
	}
	if err == nil {
		conn.Close()
	}
	if err := <-done; err == nil {
		t.Errorf("Handshake() after a refused certificate = nil, want an error")
	}
}
