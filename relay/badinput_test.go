package relay

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/parleychat/parley/protocol"
)

// raw is a hand-driven client: real TLS and yamux, frames written byte by
// byte, so tests can send what a correct client never would.
type raw struct {
	t    *testing.T
	tls  *tls.Conn
	sess *yamux.Session
	ctl  net.Conn
	fr   *protocol.FrameReader
}

func dialRaw(t *testing.T, ts *testServer) *raw {
	t.Helper()
	tc, err := tls.Dial("tcp", ts.addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{protocol.ALPN}})
	if err != nil {
		t.Fatal(err)
	}
	yc := yamux.DefaultConfig()
	yc.LogOutput = io.Discard
	sess, err := yamux.Client(tc, yc)
	if err != nil {
		t.Fatal(err)
	}
	r := &raw{t: t, tls: tc, sess: sess}
	t.Cleanup(func() { sess.Close() })
	r.ctl = r.open(protocol.KindControl)
	r.fr = protocol.NewFrameReader(r.ctl)
	return r
}

// open opens a stream of a kind. Errors are ignored as in write: the
// server may already have closed the session.
func (r *raw) open(kind protocol.StreamKind) net.Conn {
	s, err := r.sess.OpenStream()
	if err != nil {
		return nil
	}
	s.Write([]byte{byte(kind)})
	return s
}

// write sends bytes. Its error is ignored: the server may close the session
// as soon as it has read them, and yamux may then report the write as
// failed although it went out. What the server answers is what counts.
func (r *raw) write(w net.Conn, b []byte) {
	if w != nil {
		w.Write(b)
	}
}

func frame(m protocol.Message) []byte {
	b, err := protocol.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

// hello does the Hello/Welcome exchange.
func (r *raw) hello() {
	r.t.Helper()
	r.write(r.ctl, frame(&protocol.Hello{MinVersion: 1, MaxVersion: 1, Software: "raw"}))
	if m := r.next(); m.Type() != protocol.TypeWelcome {
		r.t.Fatalf("answer to hello: %s, want welcome", m.Type())
	}
}

// next reads the next control message.
func (r *raw) next() protocol.Message {
	r.t.Helper()
	r.ctl.SetReadDeadline(time.Now().Add(5 * time.Second))
	h, p, err := r.fr.Next()
	if err != nil {
		r.t.Fatalf("reading the control stream: %v", err)
	}
	m, err := protocol.Decode(h.Type, p)
	if err != nil {
		r.t.Fatal(err)
	}
	return m
}

// expectGoodbye reads control messages until a Goodbye and checks its code.
func (r *raw) expectGoodbye(want protocol.ErrorCode) {
	r.t.Helper()
	for {
		if g, ok := r.next().(*protocol.Goodbye); ok {
			if g.Code != want {
				r.t.Fatalf("Goodbye code = %v (%s), want %v", g.Code, g.Message, want)
			}
			return
		}
	}
}

// expectClosed waits for the server to drop the connection.
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 1024)
	for {
		_, err := c.Read(buf)
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("the server did not close the connection")
		}
		return
	}
}

// stillServing proves the server still serves others: a client joins,
// sends and receives its message.
func stillServing(t *testing.T, ts *testServer) {
	t.Helper()
	c := dial(t, ts)
	c.join("lobby", "witness")
	expect[*protocol.Synced](c, protocol.TypeChat, protocol.TypeGap) // past the room's history
	c.say("", "still here")
	if m := c.chats(1)[0]; m.Text != "still here" {
		t.Fatalf("witness got %q", m.Text)
	}
	c.conn.Close()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling a counter the server exposes
	}
}

func TestOversizedDeclaredLength(t *testing.T) {
	ts := startServer(t, Config{})
	for _, kind := range []protocol.StreamKind{protocol.KindControl, protocol.KindText} {
		r := dialRaw(t, ts)
		r.hello()
		w := r.ctl
		typ := protocol.TypePing
		if kind == protocol.KindText {
			w, typ = r.open(kind), protocol.TypeSendChat
		}
		// A header declaring 1 GiB, then nothing: refused at the header.
		r.write(w, protocol.AppendHeader(nil, protocol.Header{Type: typ, Length: 1 << 30}))
		r.expectGoodbye(protocol.CodeFrameTooLarge)
	}
	stillServing(t, ts)
}

func TestUnknownTypes(t *testing.T) {
	ts := startServer(t, Config{})
	r := dialRaw(t, ts)
	r.hello()
	// An unknown extension type is skipped; the session goes on.
	r.write(r.ctl, append(protocol.AppendHeader(nil, protocol.Header{Type: 0x99, Length: 3}), 1, 2, 3))
	r.write(r.ctl, frame(&protocol.Ping{Nonce: 42}))
	if p, ok := r.next().(*protocol.Pong); !ok || p.Nonce != 42 {
		t.Fatalf("after an unknown frame, ping got %+v, want pong 42", p)
	}
	// The same type flagged critical ends the session.
	r.write(r.ctl, protocol.AppendHeader(nil, protocol.Header{Type: 0x99, Flags: protocol.FlagCritical}))
	r.expectGoodbye(protocol.CodeUnknownCritical)
	stillServing(t, ts)
}

func TestMalformedPayload(t *testing.T) {
	ts := startServer(t, Config{})
	r := dialRaw(t, ts)
	r.hello()
	// A Join whose room length points past the end of the payload.
	r.write(r.ctl, append(protocol.AppendHeader(nil, protocol.Header{Type: protocol.TypeJoin, Length: 2}), 50, 'x'))
	r.expectGoodbye(protocol.CodeMalformed)
	stillServing(t, ts)
}

func TestSecondHello(t *testing.T) {
	ts := startServer(t, Config{})
	r := dialRaw(t, ts)
	r.hello()
	r.write(r.ctl, frame(&protocol.Hello{MinVersion: 1, MaxVersion: 1}))
	r.expectGoodbye(protocol.CodeUnexpected)
	stillServing(t, ts)
}

func TestJoinBeforeHello(t *testing.T) {
	ts := startServer(t, Config{})
	r := dialRaw(t, ts)
	r.write(r.ctl, frame(&protocol.Join{Room: "lobby", Name: "sneaky"}))
	r.expectGoodbye(protocol.CodeUnexpected)
	stillServing(t, ts)
	if got := ts.Stats().HandshakeFailures["unexpected"]; got != 1 {
		t.Fatalf("handshake failures[unexpected] = %d, want 1", got)
	}
}

func TestUnsupportedVersion(t *testing.T) {
	ts := startServer(t, Config{})
	r := dialRaw(t, ts)
	r.write(r.ctl, frame(&protocol.Hello{MinVersion: 7, MaxVersion: 9}))
	r.expectGoodbye(protocol.CodeVersion)
}

func TestTooManyStreams(t *testing.T) {
	ts := startServer(t, Config{MaxStreams: 4})
	r := dialRaw(t, ts)
	r.hello()
	r.open(protocol.KindText)
	r.open(protocol.KindVoice)
	r.open(protocol.KindVideo)
	r.open(protocol.KindFile) // the fifth stream, control included
	r.expectGoodbye(protocol.CodeTooManyStreams)
	stillServing(t, ts)
}

func TestDuplicateStreamKind(t *testing.T) {
	ts := startServer(t, Config{})
	r := dialRaw(t, ts)
	r.hello()
	r.open(protocol.KindText)
	r.open(protocol.KindText)
	r.expectGoodbye(protocol.CodeBadStream)
}

// Streams opened faster than the limit are cut at the yamux layer, before
// yamux allocates for them.
func TestStreamOpenFlood(t *testing.T) {
	ts := startServer(t, Config{MaxStreams: 1000})
	r := dialRaw(t, ts)
	r.hello()
	for i := 0; i < 100; i++ {
		// Opened without a word written: yamux on the server would keep
		// each one until its accept backlog overflows.
		if _, err := r.sess.OpenStream(); err != nil {
			break // the server has cut us
		}
	}
	expectClosed(t, r.tls)
	// The flood may reach the relay before its handshake has finished —
	// the client opens streams as soon as it reads the Welcome, which the
	// relay may not yet know was sent — and is then a failed handshake
	// rather than a closed session. Either way the reason is the rate.
	var st Stats
	waitFor(t, "the flood's end to be counted", func() bool {
		st = ts.Stats()
		return st.Sessions == 0 && st.Pending == 0 && len(st.Closes)+len(st.HandshakeFailures) > 0
	})
	if st.Closes["stream rate"]+st.HandshakeFailures["stream rate"] != 1 || len(st.Closes)+len(st.HandshakeFailures) != 1 {
		t.Fatalf("the flood was closed for %v (handshake failures %v), want one stream rate", st.Closes, st.HandshakeFailures)
	}
	stillServing(t, ts)
}

// Before the hello a client may open one stream and send small frames.
func TestPreHelloLimits(t *testing.T) {
	ts := startServer(t, Config{})
	r := dialRaw(t, ts)
	r.open(protocol.KindText) // a second stream before the hello
	expectClosed(t, r.tls)

	r = dialRaw(t, ts)
	r.write(r.ctl, make([]byte, 4096)) // a 4 KiB frame before the hello
	expectClosed(t, r.tls)
	stillServing(t, ts)
	st := ts.Stats().HandshakeFailures
	if st["too many streams"] != 1 || st["frame too large"] != 1 {
		t.Fatalf("handshake failures = %v, want one each of too many streams and frame too large", st)
	}
}

// A TCP connection that sends nothing is closed at the handshake deadline.
func TestSilentConnectionClosedAtDeadline(t *testing.T) {
	ts := startServer(t, Config{HandshakeTimeout: 300 * time.Millisecond})
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	expectClosed(t, c)
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Fatalf("closed after %v, before the 300ms deadline", d)
	}
	waitFor(t, "the timeout to be counted", func() bool { return ts.Stats().HandshakeFailures["handshake timeout"] == 1 })
	stillServing(t, ts)
}

// A TLS client that stops after the handshake is held to the same deadline.
func TestSilentAfterTLSClosedAtDeadline(t *testing.T) {
	ts := startServer(t, Config{HandshakeTimeout: 300 * time.Millisecond})
	tc, err := tls.Dial("tcp", ts.addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{protocol.ALPN}})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	expectClosed(t, tc)
	waitFor(t, "the timeout to be counted", func() bool { return ts.Stats().HandshakeFailures["handshake timeout"] == 1 })
}

func TestNotTLS(t *testing.T) {
	ts := startServer(t, Config{})
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("GET / HTTP/1.1\r\nHost: parley\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	expectClosed(t, c)
	waitFor(t, "the failure to be counted", func() bool { return ts.Stats().HandshakeFailures["handshake failed"] == 1 })
	stillServing(t, ts)
}

func TestWrongALPN(t *testing.T) {
	ts := startServer(t, Config{})
	tc, err := tls.Dial("tcp", ts.addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
	if err == nil {
		defer tc.Close()
		expectClosed(t, tc)
	}
	stillServing(t, ts)
}

// Messages only a server sends are refused from a client.
func TestServerOnlyMessageFromClient(t *testing.T) {
	ts := startServer(t, Config{})
	r := dialRaw(t, ts)
	r.hello()
	r.write(r.ctl, frame(&protocol.Joined{Room: "lobby", Name: "x"}))
	r.expectGoodbye(protocol.CodeUnexpected)

	r = dialRaw(t, ts)
	r.hello()
	r.write(r.open(protocol.KindText), frame(&protocol.Chat{Seq: 1, From: "forged", Text: "hi"}))
	r.expectGoodbye(protocol.CodeUnexpected)
	stillServing(t, ts)
}
