package relay

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/protocol"
	pclient "github.com/parleychat/parley/protocol/client"
	"github.com/parleychat/parley/relay/relaytest"
)

// TestSlowTextReceiverInABurst: the room gets 200 messages a second for
// 5 s while one member cannot keep up. Text is never dropped: either every
// message arrives in order, or the member is cut and after its resume
// every message it missed arrives, in order, once. Both happen: behind a
// 16 KB/s link (toxiproxy buffers what the relay writes, so the relay is
// never held back and the member gets everything, late), and for a member
// that stops reading during the burst, which the relay cuts as a slow
// consumer (lag limit 100) and which then resumes.
func TestSlowTextReceiverInABurst(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for several seconds")
	}
	for _, tc := range []struct {
		name    string
		maxLag  int
		link    bool // behind a 16 KB/s link
		freeze  bool // stops reading during the burst
		wantCut bool
		size    int // of each message
	}{
		{"behind a 16 KB/s link", 0, true, false, false, 150},
		// 1 MB in all: more than the stream window and the kernel's
		// buffers, so the relay's writes stall.
		{"stops reading", 100, false, true, true, 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, fast(Config{MaxTextLag: tc.maxLag, SlowConsumerGrace: 500 * time.Millisecond}))
			var opts memberOpts
			if tc.link {
				link, err := relaytest.NewLink(ts.addr)
				if err != nil {
					t.Fatal(err)
				}
				defer link.Close()
				if err := link.LimitBandwidth(relaytest.Downstream, 128); err != nil { // 16 KB/s
					t.Fatal(err)
				}
				opts.addr = link.Addr
			}
			slow := startMember(t, ts, "lobby", "slow", opts)
			slow.waitConnected(1)
			sender := dial(t, ts)
			sender.join("lobby", "sender")
			drainClient(t, sender)
			if tc.freeze {
				slow.conn().freeze()
			}
			var sent []string
			tick := time.NewTicker(5 * time.Millisecond) // 200 a second
			for range 1000 {
				<-tick.C
				text := fmt.Sprintf("burst %04d %s", len(sent), strings.Repeat("t", tc.size))
				sent = append(sent, text)
				sender.say("", text)
			}
			tick.Stop()
			if tc.freeze {
				// The member reads again only once the relay has cut it.
				// (Under -race on a busy machine the store commits fewer
				// messages a second than the burst sends, so the member
				// may fall behind only after the burst has ended.)
				deadline := time.Now().Add(time.Minute)
				for ts.Stats().CloseReasons[CloseTextLag] == 0 {
					if time.Now().After(deadline) {
						t.Fatalf("the member that stopped reading was not cut within a minute of the burst (%v)", ts.Stats().CloseReasons)
					}
					time.Sleep(10 * time.Millisecond) // polling the relay's counter
				}
				slow.conn().thaw()
			}
			start := time.Now()
			evs := slow.waitEvents("every message", 2*time.Minute, func(evs []pclient.Event) bool { return len(texts(evs)) >= len(sent) })
			checkExactlyOnce(t, "slow", texts(evs), sent)
			cuts := count(evs, pclient.EventDisconnected)
			t.Logf("the slow member got all %d messages, in order, once, %v after the burst ended (and it read again); cut %d times (%v)",
				len(sent), time.Since(start).Round(time.Millisecond), cuts, ts.Stats().CloseReasons)
			if tc.wantCut && cuts == 0 {
				t.Errorf("the member that stopped reading was not cut")
			}
		})
	}
}

// TestLimits: one member sends 100 chat messages a second, a 70 KiB
// text, text that is not UTF-8, and voice at twice the voice cap. Each
// refused message gets its explicit error (none is dropped silently), the
// excess voice is dropped at ingress and counted, and another member's
// chat round trip and voice are as before.
func TestLimits(t *testing.T) {
	ts := startServer(t, Config{})
	witness := dialMedia(t, ts, protocol.DialConfig{})
	witness.join("lobby", "witness")
	expect[*protocol.Synced](witness.client)
	roundTrips := func(n int) []time.Duration {
		var out []time.Duration
		for range n {
			start := time.Now()
			witness.say("", "rt")
			for {
				if m, ok := witness.recv().(*protocol.Chat); ok && m.From == "witness" {
					break
				}
			}
			out = append(out, time.Since(start))
		}
		return sortedCopy(out)
	}
	before := roundTrips(10)

	loud := dialMedia(t, ts, protocol.DialConfig{})
	loud.join("lobby", "loud")
	// Texts over the length limit and not UTF-8, first: after a rate
	// limit, every other message is refused as rate limited until the
	// limited one comes again (docs/protocol.md §10.2).
	big := loud.say("", strings.Repeat("x", 70<<10))
	bad := loud.say("", "not \xff\xfe utf-8")
	// Then 100 messages a second for two seconds.
	tick := time.NewTicker(10 * time.Millisecond)
	ids := map[uint64]bool{}
	for i := range 200 {
		<-tick.C
		ids[loud.say("", fmt.Sprint("loud ", i))] = true
	}
	tick.Stop()
	acked, limited := 0, 0
	var bigErr, badErr *protocol.Error
	for got := 0; got < len(ids)+2; got++ {
		switch m := loud.recv().(type) {
		case *protocol.Chat, *protocol.Synced, *protocol.MemberJoined, *protocol.MemberLeft:
			got--
		case *protocol.Ack:
			acked++
		default:
			t.Fatalf("loud got %T %+v", m, m)
		case *protocol.Error:
			switch m.Ref {
			case big:
				bigErr = m
			case bad:
				badErr = m
			default:
				if m.Code != protocol.CodeRateLimited || m.RetryAfter == 0 {
					t.Fatalf("message %d refused with %v, want rate limited with a retry delay", m.Ref, m)
				}
				limited++
			}
		}
	}
	t.Logf("100 messages a second for 2 s: %d acked, %d refused as rate limited; 70 KiB: %v; bad UTF-8: %v", acked, limited, bigErr, badErr)
	if acked+limited != len(ids) {
		t.Errorf("%d acked and %d refused of %d sent", acked, limited, len(ids))
	}
	if acked > 20+5 { // the burst and the refill over 2 s at 2 a second
		t.Errorf("%d of the 200 messages were taken, want the burst of 20 and a few more", acked)
	}
	if bigErr == nil || bigErr.Code != protocol.CodeTextTooLong {
		t.Errorf("a 70 KiB text got %v, want %v", bigErr, protocol.CodeTextTooLong)
	}
	if badErr == nil || badErr.Code != protocol.CodeInvalidUTF8 {
		t.Errorf("invalid UTF-8 got %v, want %v", badErr, protocol.CodeInvalidUTF8)
	}

	// Voice at twice the cap (256 kbit/s): 1280-byte frames every 20 ms
	// for 4 s. After the one-second burst, half of it is over the cap.
	const frames = 200
	sent := make(chan error, 1)
	go func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := range frames {
			<-tick.C
			v := voiceFrame(uint32(i))
			v.Data = make([]byte, 1280-protocol.VoiceHeaderSize)
			if err := loud.conn.Send(v); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	time.Sleep(1500 * time.Millisecond) // past the one-second burst: the condition under test
	during := roundTrips(10)
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the voice to be counted", func() bool {
		m := ts.Stats().Media
		return m.VoiceIn+m.InOverCap == frames
	})
	m := ts.Stats().Media
	witness.waitMedia("the voice under the cap", func(v []gotVoice, _ []gotFrame) bool { return len(v) == int(m.VoiceIn) })
	t.Logf("voice at 512 kbit/s for 4 s: %d frames forwarded, %d dropped at ingress; the witness's chat round trip p50 %v before, %v during",
		m.VoiceIn, m.InOverCap, pct(before, 50), pct(during, 50))
	// 4 s at twice the cap with a 1 s burst: 2.5 s worth at the cap.
	if m.InOverCap < frames/4 || m.VoiceIn > frames*7/10 {
		t.Errorf("%d voice frames forwarded and %d dropped, want about 125 and 75", m.VoiceIn, m.InOverCap)
	}
	if pct(during, 50) > 3*pct(before, 50) && pct(during, 50) > pct(before, 50)+5*time.Millisecond {
		t.Errorf("the witness's chat round trip went from %v to %v", pct(before, 50), pct(during, 50))
	}
}

// TestAuthorization: sending with no room, after leaving one, privately
// to a member of another room; joining with a wrong password; and message
// types a client may not send. Each is refused with its error (request
// errors keep the session, forbidden types end it with a Goodbye), and
// nothing changes: no message stored, no member added, no room opened.
func TestAuthorization(t *testing.T) {
	hash, err := HashPassword("s3cret")
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, Config{Rooms: map[string]RoomConfig{"team": {PasswordHash: hash}}})
	witness := dial(t, ts)
	witness.join("lobby", "witness")
	expect[*protocol.Synced](witness)
	other := dial(t, ts)
	other.join("elsewhere", "bob")
	rooms := ts.Stats().Rooms

	c := dial(t, ts)
	refused := func(what string, want protocol.ErrorCode) {
		t.Helper()
		e := expect[*protocol.Error](c, rosterNoise...)
		if e.Code != want {
			t.Errorf("%s: %v, want %v", what, e, want)
		} else {
			t.Logf("%s: %v", what, e)
		}
	}
	c.say("", "before joining")
	refused("a message with no room joined", protocol.CodeNotInRoom)
	c.join("lobby", "carol")
	expect[*protocol.Synced](c)
	expect[*protocol.MemberJoined](witness, protocol.TypeSynced)
	c.say("bob", "to someone in another room")
	refused("a private message to a member of another room", protocol.CodeNoSuchMember)
	if err := c.conn.Send(&protocol.Leave{}); err != nil {
		t.Fatal(err)
	}
	expect[*protocol.MemberLeft](witness)
	c.say("", "after leaving")
	refused("a message after leaving", protocol.CodeNotInRoom)
	for _, pw := range []string{"", "wrong"} {
		_, err := c.tryJoin(&protocol.Join{Room: "team", Name: "carol", Password: pw})
		if !errors.Is(err, protocol.CodeBadPassword) {
			t.Errorf("joining team with password %q: %v, want %v", pw, err, protocol.CodeBadPassword)
		}
	}
	if n := ts.Stats().Rooms; n != rooms {
		t.Errorf("%d rooms after the refused joins, %d before", n, rooms)
	}
	// Media and signalling from a session in no room go nowhere.
	if err := c.conn.Send(voiceFrame(1)); err != nil {
		t.Fatal(err)
	}
	c.conn.Send(&protocol.StateUpdate{State: protocol.StateAudio})
	c.conn.Send(&protocol.KeyframeRequest{Source: 1})
	waitFor(t, "the voice from no room to be counted", func() bool { return ts.Stats().Media.InNotInRoom == 1 })

	// Types only a server sends end the session.
	for i, m := range []protocol.Message{
		&protocol.Welcome{Version: 1},
		&protocol.Joined{Room: "lobby", Name: "mallory", Token: make([]byte, 16)},
		&protocol.MemberJoined{Member: protocol.Member{ID: 9, Name: "ghost"}},
		&protocol.Chat{Seq: 1, From: "witness", Text: "forged"},
		&protocol.Ack{ClientID: 1, Seq: 1},
		&protocol.Synced{Seq: 1},
		&protocol.Gap{From: 1, To: 2},
	} {
		r := dialRaw(t, ts)
		r.hello()
		if m.Type().Kind() == protocol.KindControl {
			r.write(r.ctl, frame(&protocol.Join{Room: "lobby", Name: fmt.Sprint("mallory", i)}))
			expect := r.next()
			if _, ok := expect.(*protocol.Joined); !ok {
				t.Fatalf("mallory's join: %v", expect)
			}
			r.write(r.ctl, frame(m))
		} else {
			r.write(r.open(m.Type().Kind()), frame(m))
		}
		r.expectGoodbye(protocol.CodeUnexpected)
		t.Logf("%v from a client: Goodbye unexpected", m.Type())
	}
	// Nothing reached the room: the witness's next message is its own.
	witness.say("", "marker")
	for {
		msg := witness.recv()
		if ch, ok := msg.(*protocol.Chat); ok {
			if ch.Text != "marker" || ch.Seq != 1 {
				t.Fatalf("the witness's next chat is %+v, want its marker as the room's first message", ch)
			}
			break
		}
	}
	if st := ts.Stats(); st.Rooms != rooms {
		t.Errorf("%d rooms at the end, %d before", st.Rooms, rooms)
	}
}
