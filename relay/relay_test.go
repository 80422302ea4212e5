package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/parleychat/parley/protocol"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testServer is a relay on a loopback port.
type testServer struct {
	*Server
	addr string
	done chan error
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("PARLEY_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startServer starts a relay with cfg (in memory unless cfg.DataDir is set)
// and shuts it down when the test ends.
func startServer(t testing.TB, cfg Config) *testServer {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{Server: srv, addr: ln.Addr().String(), done: make(chan error, 1)}
	go func() { ts.done <- srv.Serve(ln) }()
	t.Cleanup(func() { ts.stop(t) })
	return ts
}

func (ts *testServer) stop(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ts.Shutdown(ctx); err != nil && !errors.Is(err, ErrServerClosed) {
		t.Errorf("Shutdown: %v", err)
	}
	if err := <-ts.done; !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve returned %v, want ErrServerClosed", err)
	}
	ts.done <- ErrServerClosed // a second stop finds it again
}

func (ts *testServer) invite(room string) protocol.Invite {
	return protocol.Invite{Addr: ts.addr, Room: room, Fingerprint: ts.Fingerprint()}
}

// client is a test client with helpers that fail the test on error.
type client struct {
	t    testing.TB
	conn *protocol.Conn
	name string
	next uint64
}

func dial(t testing.TB, ts *testServer) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := protocol.Dial(ctx, ts.invite("lobby"), nil)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	cl := &client{t: t, conn: c}
	t.Cleanup(func() { c.Close() })
	return cl
}

func (c *client) join(room, name string) *protocol.Joined {
	c.t.Helper()
	j, err := c.tryJoin(&protocol.Join{Room: room, Name: name})
	if err != nil {
		c.t.Fatalf("Join(%s, %s): %v", room, name, err)
	}
	return j
}

func (c *client) tryJoin(j *protocol.Join) (*protocol.Joined, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	joined, err := c.conn.Join(ctx, j)
	if err == nil {
		c.name = j.Name
	}
	return joined, err
}

func (c *client) say(to, text string) uint64 {
	c.t.Helper()
	c.next++
	if err := c.conn.Send(&protocol.SendChat{ClientID: c.next, To: to, Text: text}); err != nil {
		c.t.Fatalf("Send: %v", err)
	}
	return c.next
}

// recv returns the next message that is not roster noise.
func (c *client) recv() protocol.Message {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m, err := c.conn.Receive(ctx)
	if err != nil {
		c.t.Fatalf("%s: Receive: %v", c.name, err)
	}
	return m
}

// expect reads messages until one of type T arrives, skipping the types in
// skip, and fails on anything else.
func expect[T protocol.Message](c *client, skip ...protocol.Type) T {
	c.t.Helper()
	for {
		m := c.recv()
		if t, ok := m.(T); ok {
			return t
		}
		skipped := false
		for _, st := range skip {
			skipped = skipped || m.Type() == st
		}
		if !skipped {
			var want T
			c.t.Fatalf("%s: got %s %+v, want %T", c.name, m.Type(), m, want)
		}
	}
}

var rosterNoise = []protocol.Type{protocol.TypeMemberJoined, protocol.TypeMemberLeft, protocol.TypeSynced}

// chats reads n chat messages, skipping roster events, acks and sync marks.
func (c *client) chats(n int) []*protocol.Chat {
	c.t.Helper()
	var out []*protocol.Chat
	for len(out) < n {
		out = append(out, expect[*protocol.Chat](c, append(rosterNoise, protocol.TypeAck)...))
	}
	return out
}

func TestChatFanOutOrder(t *testing.T) {
	ts := startServer(t, Config{TextBurst: 100, TextPerMinute: 6000})
	alice, bob, carol := dial(t, ts), dial(t, ts), dial(t, ts)
	alice.join("lobby", "alice")
	bob.join("lobby", "bob")
	joined := carol.join("lobby", "carol")
	if len(joined.Members) != 3 {
		t.Fatalf("carol's roster has %d members, want 3: %+v", len(joined.Members), joined.Members)
	}
	for i := 0; i < 10; i++ {
		alice.say("", fmt.Sprint("a", i))
		bob.say("", fmt.Sprint("b", i))
	}
	var views [3][]string
	for i, c := range []*client{alice, bob, carol} {
		for _, m := range c.chats(20) {
			views[i] = append(views[i], fmt.Sprintf("%d:%s:%s", m.Seq, m.From, m.Text))
		}
	}
	for i := 1; i < 3; i++ {
		if fmt.Sprint(views[i]) != fmt.Sprint(views[0]) {
			t.Fatalf("client %d saw\n%v\nclient 0 saw\n%v", i, views[i], views[0])
		}
	}
}

func TestAckAndEcho(t *testing.T) {
	ts := startServer(t, Config{})
	alice := dial(t, ts)
	alice.join("lobby", "alice")
	id := alice.say("", "hello")
	var ack *protocol.Ack
	var echo *protocol.Chat
	for ack == nil || echo == nil {
		switch m := alice.recv().(type) {
		case *protocol.Ack:
			ack = m
		case *protocol.Chat:
			echo = m
		}
	}
	if ack.ClientID != id || ack.Seq != 1 {
		t.Fatalf("ack = %+v, want client id %d seq 1", ack, id)
	}
	if echo.ClientID != id || echo.Seq != 1 || echo.From != "alice" || echo.Text != "hello" {
		t.Fatalf("echo = %+v", echo)
	}
}
