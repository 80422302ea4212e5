package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/parleychat/parley/protocol"
	"github.com/parleychat/parley/protocol/client"
	"github.com/parleychat/parley/relay"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// server is a relay on a fixed loopback port that can be restarted.
type server struct {
	t    *testing.T
	addr string
	cfg  relay.Config
	srv  *relay.Server
	done chan error
}

func startServer(t *testing.T, cfg relay.Config) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	s := &server{t: t, addr: ln.Addr().String(), cfg: cfg}
	s.serve(ln)
	t.Cleanup(s.stop)
	return s
}

func (s *server) serve(ln net.Listener) {
	srv, err := relay.New(s.cfg)
	if err != nil {
		s.t.Fatal(err)
	}
	s.srv, s.done = srv, make(chan error, 1)
	go func() { s.done <- srv.Serve(ln) }()
}

func (s *server) stop() {
	if s.srv == nil {
		return
	}
	s.srv.Close()
	<-s.done
	s.srv = nil
}

func (s *server) restart() {
	s.stop()
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		s.t.Fatal(err)
	}
	s.serve(ln)
}

func (s *server) invite() protocol.Invite {
	return protocol.Invite{Addr: s.addr, Room: "lobby", Fingerprint: s.srv.Fingerprint()}
}

// running is a client whose Run goroutine the test controls.
type running struct {
	*client.Client
	cancel context.CancelFunc
	result chan error
}

func run(t *testing.T, cfg client.Config) *running {
	t.Helper()
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff, cfg.MaxBackoff = 10*time.Millisecond, 100*time.Millisecond
	}
	c := client.New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Client: c, cancel: cancel, result: make(chan error, 1)}
	go func() { r.result <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		for range c.Events() {
		}
		<-r.result
	})
	return r
}

// next returns the next event of one of the given types.
func (r *running) next(t *testing.T, types ...client.EventType) client.Event {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-r.Events():
			if !ok {
				t.Fatalf("events closed while waiting for %v: %v", types, <-r.result)
			}
			for _, typ := range types {
				if ev.Type == typ {
					return ev
				}
			}
		case <-timeout:
			t.Fatalf("timed out waiting for %v", types)
		}
	}
}

// texts collects n room messages.
func (r *running) texts(t *testing.T, n int) []client.Event {
	t.Helper()
	var out []client.Event
	for len(out) < n {
		out = append(out, r.next(t, client.EventText))
	}
	return out
}

// Messages sent while the server restarts are resent and delivered once,
// in order, to a member that reconnects by itself.
func TestResendAndResumeAcrossRestart(t *testing.T) {
	s := startServer(t, relay.Config{DataDir: t.TempDir(), TextBurst: 1000, TextPerMinute: 600000})
	inv := s.invite()
	alice := run(t, client.Config{Invite: inv, Name: "alice"})
	bob := run(t, client.Config{Invite: inv, Name: "bob"})
	alice.next(t, client.EventConnected)
	bob.next(t, client.EventConnected)

	const n = 200
	for i := 0; i < n; i++ {
		alice.Send(fmt.Sprint("m", i))
		if i == n/2 {
			s.restart()
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := alice.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	got := bob.texts(t, n)
	for i, ev := range got {
		if ev.Text != fmt.Sprint("m", i) || (i > 0 && ev.Seq <= got[i-1].Seq) {
			t.Fatalf("bob's message %d = %q seq %d (previous seq %d), want m%d in order", i, ev.Text, ev.Seq, got[max(i-1, 0)].Seq, i)
		}
	}
}

// The client paces itself to the server's announced rate and resends what
// the server refused as too fast, keeping order.
func TestRateLimitedBurstKeepsOrder(t *testing.T) {
	s := startServer(t, relay.Config{TextBurst: 5, TextPerMinute: 1200})
	inv := s.invite()
	alice := run(t, client.Config{Invite: inv, Name: "alice"})
	alice.next(t, client.EventConnected)
	const n = 30
	for i := 0; i < n; i++ {
		alice.Send(fmt.Sprint("m", i))
	}
	for i, ev := range alice.texts(t, n) {
		if ev.Text != fmt.Sprint("m", i) || !ev.Mine {
			t.Fatalf("message %d = %q (mine %v), want m%d", i, ev.Text, ev.Mine, i)
		}
	}
}

func TestFatalErrors(t *testing.T) {
	hash, _ := relay.HashPassword("right")
	s := startServer(t, relay.Config{Rooms: map[string]relay.RoomConfig{"team": {PasswordHash: hash}}})
	inv := s.invite()
	inv.Room = "team"
	c := run(t, client.Config{Invite: inv, Name: "eve", Password: "wrong"})
	if err := <-c.result; !errors.Is(err, protocol.CodeBadPassword) {
		t.Fatalf("Run with a wrong password = %v, want %v", err, protocol.CodeBadPassword)
	}
	c.result <- nil // for the cleanup

	noPin := protocol.Invite{Addr: s.addr, Room: "lobby"}
	c = run(t, client.Config{Invite: noPin, Name: "eve"})
	err := <-c.result
	var ie *protocol.IdentityError
	if !errors.Is(err, protocol.ErrUnknownServer) || !errors.As(err, &ie) || ie.Presented != s.srv.Fingerprint() {
		t.Fatalf("Run without a pin = %v, want ErrUnknownServer presenting %s", err, s.srv.Fingerprint())
	}
	c.result <- nil

	// Trust on first use records the key; a different key is refused later.
	ks := &protocol.KnownServers{Path: filepath.Join(t.TempDir(), "known_servers")}
	c = run(t, client.Config{Invite: noPin, Name: "tofu", Dial: protocol.DialConfig{KnownServers: ks, TrustOnFirstUse: true}})
	c.next(t, client.EventConnected)
	if fp, ok, _ := ks.Lookup(s.addr); !ok || fp != s.srv.Fingerprint() {
		t.Fatalf("known servers after TOFU: %q %v, want %s", fp, ok, s.srv.Fingerprint())
	}
	c.cancel()
	for range c.Events() {
	}
	<-c.result
	c.result <- nil

	s.stop()
	s.cfg.Certificate = nil
	cert, _ := relay.NewIdentity() // a new key on the same address
	s.cfg.Certificate = &cert
	s.restart()
	c = run(t, client.Config{Invite: noPin, Name: "tofu", Dial: protocol.DialConfig{KnownServers: ks, TrustOnFirstUse: true}})
	if err := <-c.result; !errors.Is(err, protocol.ErrIdentityChanged) {
		t.Fatalf("Run after the key changed = %v, want ErrIdentityChanged", err)
	}
	c.result <- nil
}

// A failure before the first join ends Run, not retried, even one that is
// not fatal (here the name is in use): trying again, as a new Client, is
// the caller's choice.
func TestFirstJoinFailureReturned(t *testing.T) {
	s := startServer(t, relay.Config{})
	alice := run(t, client.Config{Invite: s.invite(), Name: "alice"})
	alice.next(t, client.EventConnected)
	var dials atomic.Int32
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	c := run(t, client.Config{Invite: s.invite(), Name: "alice", Dial: protocol.DialConfig{DialContext: dial}})
	var err error
	select {
	case err = <-c.result:
	case <-time.After(10 * time.Second):
		t.Fatalf("Run under a name in use has not returned after 10 s and %d connection attempts", dials.Load())
	}
	if !errors.Is(err, protocol.CodeNameTaken) || client.Fatal(err) {
		t.Fatalf("Run under a name in use = %v, want %v (not fatal)", err, protocol.CodeNameTaken)
	}
	if n := dials.Load(); n != 1 {
		t.Errorf("%d connection attempts, want 1", n)
	}
	c.result <- nil // for the cleanup
}

// A reconnect reports only real roster changes.
func TestRosterAcrossReconnect(t *testing.T) {
	s := startServer(t, relay.Config{DataDir: t.TempDir()})
	inv := s.invite()
	alice := run(t, client.Config{Invite: inv, Name: "alice"})
	alice.next(t, client.EventConnected)
	if ev := alice.next(t, client.EventJoin); ev.From != "alice" {
		t.Fatalf("first join event is %q, want alice herself", ev.From)
	}
	s.restart()
	alice.next(t, client.EventDisconnected)
	alice.next(t, client.EventConnected)
	bob := run(t, client.Config{Invite: inv, Name: "bob"})
	bob.next(t, client.EventConnected)
	// After the reconnect alice sees bob join, and no second join of her own.
	if ev := alice.next(t, client.EventJoin, client.EventLeave); ev.Type != client.EventJoin || ev.From != "bob" {
		t.Fatalf("after reconnect alice saw %s %s, want bob joining", ev.Type, ev.From)
	}
}

// A server whose history was reset (one without a data directory restarted)
// numbers messages from 1 again; the client must not take the new messages
// for ones it has already seen. Alice's last messages may still be
// unacknowledged when the server goes away, so she may send them again into
// the new history: even then (the new head can equal bob's last seq) bob is
// told of the reset and gets the new history from its start.
func TestHistoryReset(t *testing.T) {
	for _, flushFirst := range []bool{true, false} {
		t.Run(fmt.Sprintf("acked=%v", flushFirst), func(t *testing.T) {
			cert, err := relay.NewIdentity() // the same key across the restart
			if err != nil {
				t.Fatal(err)
			}
			s := startServer(t, relay.Config{Certificate: &cert})
			inv := s.invite()
			alice := run(t, client.Config{Invite: inv, Name: "alice"})
			bob := run(t, client.Config{Invite: inv, Name: "bob"})
			alice.next(t, client.EventConnected)
			bob.next(t, client.EventConnected)
			for i := range 5 {
				alice.Send(fmt.Sprint("before", i))
			}
			if flushFirst {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if err := alice.Flush(ctx); err != nil {
					t.Fatal(err)
				}
			}
			bob.texts(t, 5)
			s.restart()
			bob.next(t, client.EventConnected)
			if ev := bob.next(t, client.EventError); ev.Err == nil || !strings.Contains(ev.Err.Error(), "reset") {
				t.Fatalf("want an error event about the reset history, got %v", ev.Err)
			}
			alice.next(t, client.EventConnected)
			alice.Send("after restart")
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := alice.Flush(ctx); err != nil {
				t.Fatalf("Flush after the reset: %v", err)
			}
			// Bob gets the new history in order from seq 1: any of alice's
			// messages she sent again, then the new one.
			for want := uint64(1); ; want++ {
				ev := bob.texts(t, 1)[0]
				if ev.Seq != want {
					t.Fatalf("bob got %q with seq %d, want seq %d", ev.Text, ev.Seq, want)
				}
				if ev.Text == "after restart" {
					if flushFirst && ev.Seq != 1 {
						t.Fatalf("alice's acked messages were sent again: the new one has seq %d", ev.Seq)
					}
					break
				}
				if !strings.HasPrefix(ev.Text, "before") {
					t.Fatalf("bob got %q", ev.Text)
				}
			}
		})
	}
}
