package e2etest

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/protocol"
	"github.com/parleychat/parley/relay"
)

// freezeConn is a connection whose reads can be stopped: once frozen, Read
// blocks until thaw, so the kernel buffers fill and the server's writes to
// it stall, as with a client that stopped reading.
type freezeConn struct {
	net.Conn
	mu     sync.Mutex
	frozen bool
	thawed chan struct{}
}

func (c *freezeConn) Read(b []byte) (int, error) {
	c.mu.Lock()
	frozen, thawed := c.frozen, c.thawed
	c.mu.Unlock()
	if frozen {
		<-thawed
	}
	return c.Conn.Read(b)
}

func (c *freezeConn) freeze() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.frozen {
		c.frozen = true
		c.thawed = make(chan struct{})
	}
}

func (c *freezeConn) thaw() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.frozen {
		c.frozen = false
		close(c.thawed)
	}
}

// receiveUntil reads messages, keeping the chats, until stop says so or
// the connection ends (then err is why).
func receiveUntil(ctx context.Context, conn *protocol.Conn, stop func(protocol.Message) bool) (chats []*protocol.Chat, err error) {
	for {
		m, err := conn.Receive(ctx)
		if err != nil {
			return chats, err
		}
		if c, ok := m.(*protocol.Chat); ok {
			chats = append(chats, c)
		}
		if stop(m) {
			return chats, nil
		}
	}
}

// bulk returns the chats of the burst.
func bulk(chats []*protocol.Chat) []*protocol.Chat {
	var out []*protocol.Chat
	for _, c := range chats {
		if strings.HasPrefix(c.Text, "bulk-") {
			out = append(out, c)
		}
	}
	return out
}

// seqRanges describes the sequence numbers of chats as runs: "1-64 80-90".
func seqRanges(chats []*protocol.Chat) string {
	var b strings.Builder
	for i := 0; i < len(chats); {
		j := i
		for j+1 < len(chats) && chats[j+1].Seq == chats[j].Seq+1 {
			j++
		}
		fmt.Fprintf(&b, " %d-%d", chats[i].Seq, chats[j].Seq)
		i = j + 1
	}
	return strings.TrimSpace(b.String())
}

func isSynced(m protocol.Message) bool {
	_, ok := m.(*protocol.Synced)
	return ok
}

func TestSlowReceiverDoesNotHoldOthers(t *testing.T) {
	t.Parallel()
	srv := startServer(t, serverOpts{config: &relay.FileConfig{
		MaxTextLag: 50, TextBurst: 1000, TextPerMinute: 600000,
		// Only the lag may cut the frozen client within the test, not
		// a write timeout.
		WriteTimeout: relay.Duration(5 * time.Minute),
	}})
	inv, err := protocol.ParseInvite(srv.invite)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*waitTimeout)
	defer cancel()

	var fc *freezeConn
	cfg := &protocol.DialConfig{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		fc = &freezeConn{Conn: c}
		return fc, nil
	}}
	frozen, err := protocol.Dial(ctx, inv, cfg)
	if err != nil {
		t.Fatalf("Dial(%v) = %v", inv, err)
	}
	defer func() {
		fc.thaw()
		frozen.Abort()
	}()
	joined, err := frozen.Join(ctx, &protocol.Join{Room: inv.Room, Name: "frozen"})
	if err != nil {
		t.Fatalf("Join as frozen = %v", err)
	}
	seen, err := receiveUntil(ctx, frozen, isSynced)
	if err != nil {
		t.Fatalf("reading up to Synced: %v", err)
	}
	frozenAddr := fc.LocalAddr().String()
	fc.freeze()

	bob := startClient(t, srv.invite, "bob", "")
	carol := startClient(t, srv.invite, "carol", "")
	alice := startClient(t, srv.invite, "alice", "")
	for _, c := range []*client{bob, carol, alice} {
		c.waitConnected(t)
	}
	// 400 messages of 1000 bytes: more than the 256 KiB yamux stream
	// window plus MaxTextLag messages, so the server's writer to the frozen
	// client must stall however much the kernel buffers on loopback (about
	// 200 KiB here).
	const n = 400
	var sent []string
	for i := range n {
		sent = append(sent, fmt.Sprintf("bulk-%03d-%s", i, strings.Repeat(string(rune('a'+i%26)), 991)))
	}
	alice.send(t, sent...)
	alice.closeInput(t)

	isBulk := func(ev event) bool { return ev.Type == "text" && strings.HasPrefix(ev.Text, "bulk-") }
	for _, c := range []*client{bob, carol} {
		evs := c.waitEvents(t, fmt.Sprintf("%d bulk texts", n), n, isBulk)
		var texts []event
		for _, ev := range evs {
			if isBulk(ev) {
				texts = append(texts, ev)
			}
		}
		checkSeqs(t, c.name, texts)
		for i, ev := range texts {
			if ev.Text != sent[i] {
				t.Errorf("%s: bulk text %d = %.12q..., want %.12q...", c.name, i, ev.Text, sent[i])
				break
			}
		}
		// A burst puts everyone behind for a moment: that alone must not
		// cost a member that reads its connection.
		if d := count(evs, isType("disconnected")); d > 0 {
			t.Errorf("%s, which reads all the time, was disconnected %d times during the burst", c.name, d)
		}
	}
	alice.exitWith(t, 0)

	// The frozen member is more than max_text_lag behind and its
	// connection takes nothing: the server cuts it within the slow
	// consumer grace, even though the room has gone quiet.
	isCut := func(r logRecord) bool {
		return r.str("msg") == "session closed" && r.str("code") == "slow consumer" && r.str("remote") == frozenAddr
	}
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	var cut logRecord
	for cut == nil {
		recs, closed, more := srv.logs.next()
		for _, r := range recs {
			if isCut(r) {
				cut = r
			}
		}
		switch {
		case cut != nil:
		case closed:
			t.Fatal("parleyd exited before it cut the frozen client")
		default:
			select {
			case <-more:
			case <-deadline.C:
				t.Fatalf(`parleyd log: no "session closed" record with code "slow consumer" for the frozen client (%s) within %v`, frozenAddr, waitTimeout)
			}
		}
	}
	t.Logf("parleyd cut the frozen client: %v", cut)
	for _, c := range []*client{bob, carol} {
		evs := c.waitEvents(t, "frozen's leave event", 1, func(ev event) bool { return ev.Type == "leave" && ev.From == "frozen" })
		if ev := evs[len(evs)-1]; ev.Text != "too slow" {
			t.Errorf("%s saw frozen leave with reason %q, want %q", c.name, ev.Text, "too slow")
		}
	}

	// Thawed, the frozen client reads what was buffered, then finds its
	// connection closed.
	fc.thaw()
	drained, err := receiveUntil(ctx, frozen, func(protocol.Message) bool { return false })
	if ctx.Err() != nil {
		t.Fatalf("the frozen client's connection was not closed: Receive = %v", err)
	}
	t.Logf("after thawing, the frozen client read %d more messages, then: %v", len(drained), err)
	seen = append(seen, drained...)
	// What a connection delivers must be a prefix of the room's messages
	// (numbered from 1 here): clients resume after the last one they saw,
	// so a hole would never be filled. Resume after the prefix to go on
	// checking the server.
	prefix := 0
	for prefix < len(seen) && seen[prefix].Seq == uint64(prefix+1) {
		prefix++
	}
	if prefix < len(seen) {
		t.Errorf("the frozen client's connection delivered seqs %s before it ended: messages after a hole, "+
			"which a client resuming after the last seq it saw never gets", seqRanges(seen))
		seen = seen[:prefix]
	}
	if b := bulk(seen); len(b) >= n {
		t.Fatalf("the frozen client received all %d messages: it was never held back", len(b))
	}
	var after uint64
	if len(seen) > 0 {
		after = seen[len(seen)-1].Seq
	}

	// Resuming after the last message it saw, it gets the rest.
	again, err := protocol.Dial(ctx, inv, nil)
	if err != nil {
		t.Fatalf("Dial(%v) again = %v", inv, err)
	}
	defer again.Close()
	if _, err := again.Join(ctx, &protocol.Join{Room: inv.Room, Name: "frozen", Resume: true, AfterSeq: after, Token: joined.Token}); err != nil {
		t.Fatalf("Join with resume after %d = %v", after, err)
	}
	rest, err := receiveUntil(ctx, again, isSynced)
	if err != nil {
		t.Fatalf("reading the resumed room up to Synced: %v", err)
	}
	all := append(seen, rest...)
	for i := 1; i < len(all); i++ {
		if all[i].Seq <= all[i-1].Seq {
			t.Fatalf("frozen client: seq %d after %d, want strictly increasing", all[i].Seq, all[i-1].Seq)
		}
	}
	all = bulk(all)
	if len(all) != n {
		t.Fatalf("frozen client got %d bulk messages (%d before the cut: %s; %d after resuming after seq %d: %s), want %d",
			len(all), len(bulk(seen)), seqRanges(bulk(seen)), len(bulk(rest)), after, seqRanges(bulk(rest)), n)
	}
	for i, c := range all {
		if c.From != "alice" || c.Text != sent[i] {
			t.Fatalf("frozen client message %d = %s %.12q..., want alice %.12q...", i, c.From, c.Text, sent[i])
		}
	}
}
