package relay

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/protocol"
	pclient "github.com/parleychat/parley/protocol/client"
)

func TestNamesUniqueInRoom(t *testing.T) {
	ts := startServer(t, Config{})
	a, b, c := dial(t, ts), dial(t, ts), dial(t, ts)
	a.join("lobby", "alice")
	_, err := b.tryJoin(&protocol.Join{Room: "lobby", Name: "alice"})
	if !errors.Is(err, protocol.CodeNameTaken) {
		t.Fatalf("second alice in lobby: err = %v, want %v", err, protocol.CodeNameTaken)
	}
	// The session stays usable: the same name in another room is fine.
	b.join("other", "alice")
	// Invalid names and rooms are refused with their own codes.
	if _, err := c.tryJoin(&protocol.Join{Room: "lobby", Name: "two words"}); !errors.Is(err, protocol.CodeBadName) {
		t.Fatalf("name with a space: err = %v, want %v", err, protocol.CodeBadName)
	}
	if _, err := c.tryJoin(&protocol.Join{Room: "no/slash", Name: "carol"}); !errors.Is(err, protocol.CodeBadRoom) {
		t.Fatalf("room with a slash: err = %v, want %v", err, protocol.CodeBadRoom)
	}
	c.join("lobby", "carol")
	if _, err := c.tryJoin(&protocol.Join{Room: "other", Name: "carol"}); !errors.Is(err, protocol.CodeAlreadyJoined) {
		t.Fatalf("join while joined: err = %v, want %v", err, protocol.CodeAlreadyJoined)
	}
}

func TestRosterEvents(t *testing.T) {
	ts := startServer(t, Config{})
	a, b := dial(t, ts), dial(t, ts)
	a.join("lobby", "alice")
	j := b.join("lobby", "bob")
	if len(j.Members) != 2 || j.Members[0].Name != "alice" || j.Members[1].Name != "bob" || j.MemberID != j.Members[1].ID {
		t.Fatalf("bob's Joined roster = %+v (id %d), want alice then bob", j.Members, j.MemberID)
	}
	mj := expect[*protocol.MemberJoined](a, protocol.TypeSynced)
	if mj.Name != "bob" || mj.ID != j.MemberID {
		t.Fatalf("alice saw %+v, want bob with id %d", mj, j.MemberID)
	}
	if err := b.conn.Send(&protocol.Leave{}); err != nil {
		t.Fatal(err)
	}
	ml := expect[*protocol.MemberLeft](a, protocol.TypeSynced)
	if ml.Name != "bob" || ml.Reason != protocol.LeftNormally {
		t.Fatalf("alice saw %+v, want bob left normally", ml)
	}
	// bob can join again after leaving.
	b.join("lobby", "bob")
	expect[*protocol.MemberJoined](a, protocol.TypeSynced)
	b.conn.Abort()
	if ml := expect[*protocol.MemberLeft](a, protocol.TypeSynced); ml.Reason != protocol.LeftDisconnected {
		t.Fatalf("after bob's connection died alice saw reason %v, want %v", ml.Reason, protocol.LeftDisconnected)
	}
}

func TestHistoryOnJoin(t *testing.T) {
	ts := startServer(t, Config{HistoryOnJoin: 5, TextBurst: 100, TextPerMinute: 6000})
	a := dial(t, ts)
	a.join("lobby", "alice")
	for i := 1; i <= 12; i++ {
		a.say("", fmt.Sprint("m", i))
		if i == 6 {
			a.say("alice", "private to self") // not room history
		}
	}
	a.chats(13)
	d := dial(t, ts)
	d.join("lobby", "dave")
	got := d.chats(5)
	for i, m := range got {
		if want := fmt.Sprint("m", 8+i); m.Text != want {
			t.Fatalf("history[%d] = %q, want %q", i, m.Text, want)
		}
	}
	if s := expect[*protocol.Synced](d); s.Seq != 13 {
		t.Fatalf("Synced.Seq = %d, want 13", s.Seq)
	}
}

func TestPrivateMessageVisibility(t *testing.T) {
	ts := startServer(t, Config{})
	a, b, c := dial(t, ts), dial(t, ts), dial(t, ts)
	a.join("lobby", "alice")
	b.join("lobby", "bob")
	c.join("lobby", "carol")
	a.say("bob", "secret")
	a.say("", "public")
	if m := b.chats(1)[0]; m.Text != "secret" || m.To != "bob" || m.From != "alice" {
		t.Fatalf("bob got %+v, want alice's secret", m)
	}
	if m := c.chats(1)[0]; m.Text != "public" {
		t.Fatalf("carol's first message is %q, want the public one: she saw a private message", m.Text)
	}
	if m := a.chats(1)[0]; m.Text != "secret" || m.ClientID == 0 {
		t.Fatalf("alice's own copy = %+v, want the secret with her client id", m)
	}
	id := a.say("nobody", "hello?")
	e := expect[*protocol.Error](a, append(rosterNoise, protocol.TypeChat, protocol.TypeAck)...)
	if e.Code != protocol.CodeNoSuchMember || e.Ref != id {
		t.Fatalf("private message to a stranger: %+v, want %v for ref %d", e, protocol.CodeNoSuchMember, id)
	}
}

func TestTextValidation(t *testing.T) {
	ts := startServer(t, Config{MaxTextBytes: 100})
	a := dial(t, ts)
	id := a.say("", "before joining")
	if e := expect[*protocol.Error](a); e.Code != protocol.CodeNotInRoom || e.Ref != id {
		t.Fatalf("send before join: %+v, want %v", e, protocol.CodeNotInRoom)
	}
	a.join("lobby", "alice")
	for _, tc := range []struct {
		text string
		code protocol.ErrorCode
	}{
		{strings.Repeat("x", 101), protocol.CodeTextTooLong},
		{"bad \xff utf-8", protocol.CodeInvalidUTF8},
		{"  \n\t", protocol.CodeEmptyText},
		{"colour \x1b[31mred", protocol.CodeBadText},
		{"bell\a", protocol.CodeBadText},
		{"c1 \u009b", protocol.CodeBadText},
	} {
		id := a.say("", tc.text)
		e := expect[*protocol.Error](a, rosterNoise...)
		if e.Code != tc.code || e.Ref != id {
			t.Errorf("send %q: %+v, want %v for ref %d", tc.text, e, tc.code, id)
		}
	}
	if err := a.conn.Send(&protocol.SendChat{ClientID: 0, Text: "no id"}); err != nil {
		t.Fatal(err)
	}
	if e := expect[*protocol.Error](a, rosterNoise...); e.Code != protocol.CodeBadClientID {
		t.Fatalf("client id 0: %+v, want %v", e, protocol.CodeBadClientID)
	}
	// After all that the session still works.
	a.say("", "fine")
	if m := a.chats(1)[0]; m.Text != "fine" || m.Seq != 1 {
		t.Fatalf("after rejected sends got %+v, want seq 1 'fine'", m)
	}
}

func TestIdempotentResend(t *testing.T) {
	ts := startServer(t, Config{})
	a, b := dial(t, ts), dial(t, ts)
	a.join("lobby", "alice")
	b.join("lobby", "bob")
	for i := 0; i < 3; i++ {
		if err := a.conn.Send(&protocol.SendChat{ClientID: 77, Text: "once"}); err != nil {
			t.Fatal(err)
		}
	}
	var acks []*protocol.Ack
	for len(acks) < 3 {
		if ack, ok := a.recv().(*protocol.Ack); ok {
			acks = append(acks, ack)
		}
	}
	for _, ack := range acks {
		if ack.Seq != 1 || ack.ClientID != 77 {
			t.Fatalf("ack = %+v, want seq 1 for every resend", ack)
		}
	}
	a.say("", "marker")
	if ms := b.chats(2); ms[0].Text != "once" || ms[1].Text != "marker" || ms[1].Seq != 2 {
		t.Fatalf("bob got %q (seq %d), %q (seq %d); want once, then marker with seq 2", ms[0].Text, ms[0].Seq, ms[1].Text, ms[1].Seq)
	}
}

// A resend of a message the server stored is acknowledged even when it
// would now be refused: here its recipient has left.
func TestResendOfStoredMessageIsAcked(t *testing.T) {
	ts := startServer(t, Config{})
	a, b := dial(t, ts), dial(t, ts)
	a.join("lobby", "alice")
	b.join("lobby", "bob")
	id := a.say("bob", "psst")
	first := expect[*protocol.Ack](a, append(rosterNoise, protocol.TypeChat)...)
	b.conn.Close()
	expect[*protocol.MemberLeft](a, protocol.TypeChat, protocol.TypeMemberJoined)
	if err := a.conn.Send(&protocol.SendChat{ClientID: id, To: "bob", Text: "psst"}); err != nil {
		t.Fatal(err)
	}
	if ack := expect[*protocol.Ack](a, protocol.TypeChat); ack.Seq != first.Seq {
		t.Fatalf("resend acked with seq %d, want %d", ack.Seq, first.Seq)
	}
}

// Over the rate the sender gets explicit errors, and after a rejection
// nothing later is taken until the rejected message is resent, so the
// sender's order survives rate limiting.
func TestRateLimitKeepsOrder(t *testing.T) {
	ts := startServer(t, Config{TextBurst: 3, TextPerMinute: 60})
	a := dial(t, ts)
	a.join("lobby", "alice")
	var ids []uint64
	for i := 1; i <= 5; i++ {
		ids = append(ids, a.say("", fmt.Sprint("m", i)))
	}
	acked := map[uint64]bool{}
	limited := map[uint64]*protocol.Error{}
	for len(acked)+len(limited) < 5 {
		switch m := a.recv().(type) {
		case *protocol.Ack:
			acked[m.ClientID] = true
		case *protocol.Error:
			if m.Code != protocol.CodeRateLimited || m.RetryAfter == 0 {
				t.Fatalf("got %+v, want rate limited with a retry delay", m)
			}
			limited[m.Ref] = m
		}
	}
	for i, id := range ids {
		if wantAck := i < 3; acked[id] != wantAck {
			t.Fatalf("message %d: acked %v, want %v (burst of 3)", i+1, acked[id], wantAck)
		}
	}
	// Message 5 alone is refused even when tokens come back: 4 first.
	if err := a.conn.Send(&protocol.SendChat{ClientID: ids[4], Text: "m5"}); err != nil {
		t.Fatal(err)
	}
	e := expect[*protocol.Error](a, protocol.TypeChat, protocol.TypeSynced)
	if e.Ref != ids[4] || e.Code != protocol.CodeRateLimited {
		t.Fatalf("m5 before m4: %+v, want rate limited", e)
	}
}

func TestResumeAfterReconnect(t *testing.T) {
	ts := startServer(t, Config{TextBurst: 100, TextPerMinute: 6000})
	a, b := dial(t, ts), dial(t, ts)
	a.join("lobby", "alice")
	j := b.join("lobby", "bob")
	a.say("", "one")
	a.say("bob", "private two")
	last := b.chats(2)[1].Seq
	// bob stops reading, then his connection dies.
	a.say("", "three")
	a.say("bob", "private four")
	a.say("", "five")
	a.chats(5)
	b.conn.Abort()

	b2 := dial(t, ts)
	if _, err := b2.tryJoin(&protocol.Join{Room: "lobby", Name: "bob", Resume: true, AfterSeq: last, Token: j.Token}); err != nil {
		t.Fatal(err)
	}
	got := b2.chats(3)
	want := []string{"three", "private four", "five"}
	for i := range want {
		if got[i].Text != want[i] {
			t.Fatalf("resumed message %d = %q, want %q", i, got[i].Text, want[i])
		}
	}
	// Someone who takes the name "bob" fresh sees no private history.
	b2.conn.Abort()
	expect[*protocol.MemberLeft](a, protocol.TypeMemberJoined, protocol.TypeChat, protocol.TypeAck)
	b3 := dial(t, ts)
	if _, err := b3.tryJoin(&protocol.Join{Room: "lobby", Name: "bob", Resume: true, AfterSeq: 0}); err != nil {
		t.Fatal(err)
	}
	for _, m := range b3.chats(3) {
		if m.To != "" {
			t.Fatalf("a new holder of the name saw the private message %+v", m)
		}
	}
}

// A resume counts after_seq in the history named by history_id: one from
// another history (the server's was reset since) gets the recent history,
// as a fresh join does, rather than a replay cut at a number that means
// something else now.
func TestResumeIntoAnotherHistory(t *testing.T) {
	ts := startServer(t, Config{TextBurst: 100, TextPerMinute: 6000})
	a := dial(t, ts)
	ja := a.join("lobby", "alice")
	if ja.HistoryID == 0 {
		t.Fatal("Joined carries history_id 0")
	}
	for _, text := range []string{"one", "two", "three"} {
		a.say("", text)
	}
	a.chats(3)
	for _, tc := range []struct {
		historyID uint64
		want      []string
	}{
		{ja.HistoryID, []string{"three"}},
		{0, []string{"three"}}, // unknown: after_seq is trusted
		{ja.HistoryID ^ 0x10, []string{"one", "two", "three"}},
	} {
		b := dial(t, ts)
		jb, err := b.tryJoin(&protocol.Join{Room: "lobby", Name: "bob", Resume: true, AfterSeq: 2, HistoryID: tc.historyID})
		if err != nil {
			t.Fatal(err)
		}
		if jb.HistoryID != ja.HistoryID {
			t.Fatalf("history_id %x on a second join, %x on the first", jb.HistoryID, ja.HistoryID)
		}
		var got []string
		for _, m := range b.chats(len(tc.want)) {
			got = append(got, m.Text)
		}
		if synced := expect[*protocol.Synced](b, protocol.TypeMemberJoined, protocol.TypeMemberLeft); synced.Seq != 3 {
			t.Fatalf("Synced at %d, want 3", synced.Seq)
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Fatalf("resume after 2 with history_id %x: got %q, want %q", tc.historyID, got, tc.want)
		}
		b.conn.Close()
		// Alice's acks and Synced (control) may come after her chats (text).
		expect[*protocol.MemberLeft](a, protocol.TypeMemberJoined, protocol.TypeAck, protocol.TypeSynced)
	}
}

// A valid token takes a name over from a stale session, which is closed
// with CodeReplaced.
func TestTokenReplacesStaleSession(t *testing.T) {
	ts := startServer(t, Config{})
	a, old := dial(t, ts), dial(t, ts)
	a.join("lobby", "alice")
	j := old.join("lobby", "bob")
	fresh := dial(t, ts)
	if _, err := fresh.tryJoin(&protocol.Join{Room: "lobby", Name: "bob", Token: []byte("wrong token 1234")}); !errors.Is(err, protocol.CodeNameTaken) {
		t.Fatalf("wrong token: err = %v, want %v", err, protocol.CodeNameTaken)
	}
	if _, err := fresh.tryJoin(&protocol.Join{Room: "lobby", Name: "bob", Token: j.Token, Resume: true}); err != nil {
		t.Fatalf("join with the token: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		_, err := old.conn.Receive(ctx)
		if err != nil {
			if !errors.Is(err, protocol.CodeReplaced) {
				t.Fatalf("old session ended with %v, want %v", err, protocol.CodeReplaced)
			}
			break
		}
	}
	if ml := expect[*protocol.MemberLeft](a, protocol.TypeSynced, protocol.TypeMemberJoined); ml.Reason != protocol.LeftReplaced {
		t.Fatalf("alice saw %+v, want bob replaced", ml)
	}
}

// A Join on a connection older than the one holding the name with the
// same token is stale: its client gave up on it while it waited and
// connected again. It fails with name taken and leaves the newer session
// alone.
func TestStaleJoinDoesNotReplaceNewerSession(t *testing.T) {
	ts := startServer(t, Config{})
	first := dial(t, ts)
	j := first.join("lobby", "bob")
	stale, current := dial(t, ts), dial(t, ts) // accepted in this order
	first.conn.Abort()
	rejoin := &protocol.Join{Room: "lobby", Name: "bob", Token: j.Token, Resume: true, AfterSeq: j.HeadSeq}
	if _, err := current.tryJoin(rejoin); err != nil {
		t.Fatalf("join on the newer connection: %v", err)
	}
	if _, err := stale.tryJoin(rejoin); !errors.Is(err, protocol.CodeNameTaken) {
		t.Fatalf("join on the older connection: err = %v, want %v", err, protocol.CodeNameTaken)
	}
	current.say("", "still here")
	if m := current.chats(1)[0]; m.Text != "still here" || m.From != "bob" {
		t.Fatalf("the newer session got %+v, want its own message", m)
	}
}

func TestRoomPassword(t *testing.T) {
	hash, err := HashPassword("s3cret")
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, Config{Rooms: map[string]RoomConfig{"team": {PasswordHash: hash}}})
	c := dial(t, ts)
	for _, pw := range []string{"", "wrong"} {
		_, err := c.tryJoin(&protocol.Join{Room: "team", Name: "eve", Password: pw})
		if !errors.Is(err, protocol.CodeBadPassword) {
			t.Fatalf("password %q: err = %v, want %v", pw, err, protocol.CodeBadPassword)
		}
	}
	if _, err := c.tryJoin(&protocol.Join{Room: "team", Name: "eve", Password: "s3cret"}); err != nil {
		t.Fatalf("right password: %v", err)
	}
}

// Retention removes messages a resuming member has not seen: it gets a Gap
// for exactly the removed range, then the rest.
func TestGapAfterRetention(t *testing.T) {
	ts := startServer(t, Config{DataDir: t.TempDir(), RetainMessages: 3, TextBurst: 100, TextPerMinute: 6000})
	a, b := dial(t, ts), dial(t, ts)
	a.join("lobby", "alice")
	j := b.join("lobby", "bob")
	a.say("", "m1")
	b.chats(1)
	b.conn.Abort()
	for i := 2; i <= 8; i++ {
		a.say("", fmt.Sprint("m", i))
	}
	a.chats(8)
	if err := ts.store.Prune(); err != nil {
		t.Fatal(err)
	}
	b2 := dial(t, ts)
	if _, err := b2.tryJoin(&protocol.Join{Room: "lobby", Name: "bob", Resume: true, AfterSeq: 1, Token: j.Token}); err != nil {
		t.Fatal(err)
	}
	g := expect[*protocol.Gap](b2, rosterNoise...)
	if g.From != 2 || g.To != 5 {
		t.Fatalf("gap = %d..%d, want 2..5", g.From, g.To)
	}
	for i, m := range b2.chats(3) {
		if want := fmt.Sprint("m", 6+i); m.Text != want {
			t.Fatalf("after the gap got %q, want %q", m.Text, want)
		}
	}
}

// History survives a restart of the server on the same data directory.
func TestHistoryPersists(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, Config{DataDir: dir})
	fp := ts.Fingerprint()
	a := dial(t, ts)
	a.join("lobby", "alice")
	a.say("", "kept")
	expect[*protocol.Ack](a, protocol.TypeChat, protocol.TypeSynced)
	a.conn.Close()
	ts.stop(t)

	ts2 := startServer(t, Config{DataDir: dir})
	if ts2.Fingerprint() != fp {
		t.Fatalf("fingerprint changed across restart: %s, was %s", ts2.Fingerprint(), fp)
	}
	b := dial(t, ts2)
	b.join("lobby", "bob")
	if m := b.chats(1)[0]; m.Text != "kept" || m.Seq != 1 {
		t.Fatalf("after restart history = %+v, want 'kept' seq 1", m)
	}
}

// frozenConn is a client connection whose reads can be blocked, to make a
// client that stops reading (like derp's TestSendFreeze).
type frozenConn struct {
	net.Conn
	mu     sync.Mutex
	frozen chan struct{} // non-nil while frozen; closed to thaw
}

func (c *frozenConn) freeze() {
	c.mu.Lock()
	c.frozen = make(chan struct{})
	c.mu.Unlock()
}

func (c *frozenConn) thaw() {
	c.mu.Lock()
	if c.frozen != nil {
		close(c.frozen)
		c.frozen = nil
	}
	c.mu.Unlock()
}

func (c *frozenConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	ch := c.frozen
	c.mu.Unlock()
	if ch != nil {
		<-ch
	}
	return c.Conn.Read(p)
}

// A client that stops reading does not hold the others back; it is cut as
// a slow consumer and later resumes without losing anything.
func TestFrozenClientIsCut(t *testing.T) {
	ts := startServer(t, Config{MaxTextLag: 20, SlowConsumerGrace: 100 * time.Millisecond, TextBurst: 1 << 20, TextPerMinute: 1 << 30})
	var fc *frozenConn
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := protocol.Dial(ctx, ts.invite("lobby"), &protocol.DialConfig{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			fc = &frozenConn{Conn: c}
			return fc, err
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Abort()
	frozen := &client{t: t, conn: conn}
	j := frozen.join("lobby", "frozen")
	expect[*protocol.Synced](frozen)

	a, b := dial(t, ts), dial(t, ts)
	a.join("lobby", "alice")
	b.join("lobby", "bob")
	// alice reads what she is sent, or she would be a slow consumer too.
	drained := make(chan struct{})
	dctx, stopDrain := context.WithCancel(context.Background())
	go func() {
		defer close(drained)
		for {
			if _, err := a.conn.Receive(dctx); err != nil {
				return
			}
		}
	}()
	defer func() { stopDrain(); <-drained }()
	fc.freeze()
	defer fc.thaw()
	// alice talks until the frozen member is cut (bob hears that it left
	// as too slow), and a little more; bob must get every message.
	text := strings.Repeat("x", 500)
	sent, cut := 0, false
	for extra := 0; extra < 50; {
		sent++
		if err := a.conn.Send(&protocol.SendChat{ClientID: uint64(sent), Text: fmt.Sprint(sent, text)}); err != nil {
			t.Fatal(err)
		}
		for got := false; !got; {
			switch m := b.recv().(type) {
			case *protocol.Chat:
				if !strings.HasPrefix(m.Text, fmt.Sprint(sent, "x")) {
					t.Fatalf("bob's message %d is %.10q...", sent, m.Text)
				}
				got = true
			case *protocol.MemberLeft:
				if m.Name != "frozen" || m.Reason != protocol.LeftSlow {
					t.Fatalf("bob saw %+v, want frozen cut as too slow", m)
				}
				cut = true
			}
		}
		if cut {
			extra++
		}
	}
	// The close is counted when the session's goroutines have finished,
	// a moment after the others hear of it.
	waitFor(t, "the slow consumer's close is counted", func() bool { return ts.Stats().Closes["slow consumer"] == 1 })
	n := sent
	fc.thaw()
	// It comes back and resumes: every message exactly once, in order.
	f2 := dial(t, ts)
	if _, err := f2.tryJoin(&protocol.Join{Room: "lobby", Name: "frozen", Resume: true, AfterSeq: 0, Token: j.Token}); err != nil {
		t.Fatal(err)
	}
	for i, m := range f2.chats(n) {
		if m.Seq != uint64(i+1) {
			t.Fatalf("resumed message %d has seq %d", i+1, m.Seq)
		}
	}
	expect[*protocol.Synced](f2, rosterNoise...)
}

func TestShutdownSaysGoodbye(t *testing.T) {
	ts := startServer(t, Config{})
	a := dial(t, ts)
	a.join("lobby", "alice")
	go ts.stop(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		if _, err := a.conn.Receive(ctx); err != nil {
			if !errors.Is(err, protocol.CodeShutdown) {
				t.Fatalf("Receive after shutdown: %v, want %v", err, protocol.CodeShutdown)
			}
			return
		}
	}
}

// TestEndStopsClients: a server ended by its host (End, not Shutdown)
// tells its clients CodeEnded, and a protocol/client member stops instead
// of reconnecting; the reason is counted.
func TestEndStopsClients(t *testing.T) {
	ts := startServer(t, Config{})
	m := startMember(t, ts, "lobby", "guest", memberOpts{})
	m.waitConnected(1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ts.End(ctx); err != nil {
		t.Fatalf("End: %v", err)
	}
	select {
	case <-m.ended:
		if err := m.runErr; !errors.Is(err, protocol.CodeEnded) || !pclient.Fatal(err) {
			t.Errorf("Run returned %v after End, want the fatal %v", err, protocol.CodeEnded)
		}
	case <-ctx.Done():
		t.Fatal("the member did not stop after End: it is reconnecting")
	}
	if n := ts.Stats().CloseReasons[CloseEnded]; n != 1 {
		t.Errorf("close reasons %v, want one ended", ts.Stats().CloseReasons)
	}
	if dials := len(m.dialTimes()); dials != 1 {
		t.Errorf("the member dialled %d times, want once", dials)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestConfigFile(t *testing.T) {
	hash, _ := HashPassword("pw")
	path := filepath.Join(t.TempDir(), "parleyd.json")
	writeFile(t, path, `{"history_on_join": 7, "retain_for": "48h", "rooms": {"team": {"password_hash": "`+hash+`"}}}`)
	var cfg Config
	if err := LoadConfigFile(path, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.HistoryOnJoin != 7 || cfg.RetainFor != 48*time.Hour || cfg.Rooms["team"].PasswordHash != hash {
		t.Fatalf("LoadConfigFile = %+v", cfg)
	}
	writeFile(t, path, `{"histroy_on_join": 7}`)
	if err := LoadConfigFile(path, &cfg); err == nil || !strings.Contains(err.Error(), "histroy_on_join") {
		t.Fatalf("misspelt field: err = %v, want it named", err)
	}
	writeFile(t, path, `{"rooms": {"team": {"password_hash": "plaintext"}}}`)
	if err := LoadConfigFile(path, &cfg); err == nil {
		t.Fatal("a plain-text password was accepted as a hash")
	}
}

// A session that is closed while its Join is being handled (here for a
// protocol error on its text stream) must not stay behind as a member.
func TestNoGhostMemberAfterCloseDuringJoin(t *testing.T) {
	hash, err := HashPassword("pw") // the check makes the join take a while
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, Config{Rooms: map[string]RoomConfig{"secret": {PasswordHash: hash}}})
	for i := range 5 {
		r := dialRaw(t, ts)
		r.hello()
		txt := r.open(protocol.KindText)
		r.write(r.ctl, frame(&protocol.Join{Room: "secret", Name: "ghost", Password: "pw"}))
		r.write(txt, frame(&protocol.Ping{Nonce: 1})) // a control type on the text stream: fatal
		expectClosed(t, r.tls)
		waitFor(t, "the session to end", func() bool { return ts.Stats().Closes["unexpected"] == uint64(i+1) })
		c := dial(t, ts)
		if _, err := c.tryJoin(&protocol.Join{Room: "secret", Name: "ghost", Password: "pw"}); err != nil {
			t.Fatalf("round %d: joining as ghost after its session ended: %v", i, err)
		}
		c.conn.Close()
		waitFor(t, "the room to empty", func() bool { return ts.Stats().Rooms == 0 })
	}
}

// A member that was idle for longer than the grace and then falls behind
// in a burst is judged from when it fell behind, not from its last write:
// members that read all the time are never cut.
func TestIdleMembersSurviveBurst(t *testing.T) {
	const grace = 100 * time.Millisecond
	ts := startServer(t, Config{TextBurst: 60000, TextPerMinute: 60000, MaxTextLag: 20, SlowConsumerGrace: grace})
	witness := dial(t, ts)
	witness.join("lobby", "witness")
	expect[*protocol.Synced](witness)
	var senders []*client
	for i := range 4 {
		c := dial(t, ts)
		c.join("lobby", fmt.Sprint("s", i))
		senders = append(senders, c)
		go func() { // every member reads all the time
			for {
				if _, err := c.conn.Receive(context.Background()); err != nil {
					return
				}
			}
		}()
	}
	// Idle for longer than the grace: the condition under test, not a
	// wait for something to happen.
	time.Sleep(2 * grace)
	const each = 200
	for _, c := range senders {
		go func() {
			for j := 1; j <= each; j++ {
				if c.conn.Send(&protocol.SendChat{ClientID: uint64(j), Text: "burst"}) != nil {
					return
				}
			}
		}()
	}
	witness.chats(len(senders) * each)
	if n := ts.Stats().Closes["slow consumer"]; n != 0 {
		t.Fatalf("%d members that read all the time were cut as slow consumers", n)
	}
}
