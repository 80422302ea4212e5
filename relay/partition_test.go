package relay

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/parleychat/parley/protocol"
	pclient "github.com/parleychat/parley/protocol/client"
	"github.com/parleychat/parley/relay/relaytest"
)

// partitionCase is one silent partition: how long, and each side's yamux
// keepalive interval and write timeout (a side notices a dead link within
// the sum).
type partitionCase struct {
	name                      string
	partition                 time.Duration
	serverKeepalive, serverWT time.Duration
	clientKeepalive, clientWT time.Duration
	dialTimeout               time.Duration
	wantReplaced              bool // the client is back before the relay notices
	// quiet: nobody talks during the partition. Otherwise the relay's
	// writes to the partitioned member, once the link heals, are answered
	// with a reset if the member gave up the connection meanwhile, and the
	// relay learns at once that it is gone.
	quiet bool
}

// runPartition drops everything between a member and the relay for a
// while without passing anything on, closes included (a relaytest
// SilentLink; toxiproxy's timeout toxic passes a close on), while
// another member talks, then heals the link. Both sides notice within
// their keepalive interval plus write timeout; the member reconnects with
// jittered backoff; its new session replaces the old one if the relay has
// not noticed yet; it gets every message once, in order.
func runPartition(t *testing.T, tc partitionCase) {
	ts := startServer(t, fast(Config{KeepAliveInterval: tc.serverKeepalive, WriteTimeout: tc.serverWT}))
	link, err := relaytest.NewSilentLink(ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer link.Close()
	p := startMember(t, ts, "lobby", "partitioned", memberOpts{addr: link.Addr,
		dial: protocol.DialConfig{KeepAliveInterval: tc.clientKeepalive, WriteTimeout: tc.clientWT, Timeout: tc.dialTimeout},
		min:  250 * time.Millisecond, max: 4 * time.Second})
	p.waitConnected(1)
	witness := dial(t, ts)
	witness.join("lobby", "witness")
	expect[*protocol.Synced](witness)
	ctx, cancel := contextWithTimeout(time.Hour)
	defer cancel()
	sentc := make(chan []string)
	stop := make(chan struct{})
	go func() { // the witness talks throughout, and watches the roster
		var sent []string
		say := func() {
			text := fmt.Sprint("during the partition ", len(sent))
			sent = append(sent, text)
			witness.conn.Send(&protocol.SendChat{ClientID: uint64(len(sent)), Text: text})
		}
		say()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				say()
				sentc <- sent
				return
			case <-tick.C:
				if !tc.quiet {
					say()
				}
			}
		}
	}()
	var left []*protocol.MemberLeft
	recvDone := make(chan struct{})
	rejoined := make(chan struct{}) // the witness saw the partitioned member join again
	go func() {
		defer close(recvDone)
		sawRejoin := false
		for {
			m, err := witness.conn.Receive(ctx)
			if err != nil {
				return
			}
			switch m := m.(type) {
			case *protocol.MemberLeft:
				left = append(left, m)
			case *protocol.MemberJoined:
				if m.Name == "partitioned" && !sawRejoin { // it may rejoin more than once
					sawRejoin = true
					close(rejoined)
				}
			}
		}
	}()

	dials0 := len(p.dialTimes())
	link.Partition()
	start := time.Now()
	healAt := time.NewTimer(tc.partition) // the condition under test: a partition this long
	var serverNoticed, clientNoticed time.Duration
	for healed := false; !healed; {
		select {
		case <-healAt.C:
			healed = true
		case <-time.After(10 * time.Millisecond): // polling the relay's counters and the member's events
		}
		if serverNoticed == 0 && ts.Stats().CloseReasons[CloseKeepalive] > 0 {
			serverNoticed = time.Since(start)
		}
		if clientNoticed == 0 && p.disconnects() > 0 {
			clientNoticed = time.Since(start)
		}
	}
	link.Heal()
	healed := time.Since(start)
	p.waitConnected(2)
	back := time.Since(start)
	close(stop)
	sent := <-sentc
	evs := p.waitEvents("every message", 30*time.Second, func(evs []pclient.Event) bool { return len(texts(evs)) >= len(sent) })
	// The room tells the witness that the member left (or was replaced)
	// before it tells that it joined again; the witness's writer may be
	// behind the member's.
	select {
	case <-rejoined:
	case <-time.After(10 * time.Second):
		t.Error("the witness did not see the partitioned member join again")
	}
	cancel()
	<-recvDone
	checkExactlyOnce(t, "partitioned", texts(evs), sent)

	dials := p.dialTimes()[dials0:]
	var gaps []time.Duration
	for i := 1; i < len(dials); i++ {
		gaps = append(gaps, dials[i].Sub(dials[i-1]).Round(time.Millisecond))
	}
	var reason string
	for _, ev := range evs {
		if ev.Type == pclient.EventDisconnected {
			reason = pclient.Reason(ev.Err)
			break
		}
	}
	t.Logf("partition of %v, healed after %v: the relay noticed after %v (keepalive %v + %v), the client after %v (%v + %v, %q); back after %v",
		tc.partition, healed.Round(time.Millisecond), serverNoticed.Round(time.Millisecond), tc.serverKeepalive, tc.serverWT,
		clientNoticed.Round(time.Millisecond), tc.clientKeepalive, tc.clientWT, reason, back.Round(time.Millisecond))
	t.Logf("%d connection attempts after the partition began, %v apart; close reasons %v; the witness saw %d leave",
		len(dials), gaps, ts.Stats().CloseReasons, len(left))
	margin := 2 * time.Second
	if clientNoticed == 0 || clientNoticed > tc.clientKeepalive+tc.clientWT+margin {
		t.Errorf("the client noticed after %v, want within %v", clientNoticed, tc.clientKeepalive+tc.clientWT)
	}
	if reason != "keepalive timeout" {
		t.Errorf("the client said it was disconnected for %q, want keepalive timeout", reason)
	}
	if tc.wantReplaced {
		// The others see the stale member leave as soon as it is
		// replaced; its session is counted once its goroutines are done.
		waitFor(t, "the stale session to be counted as replaced", func() bool { return ts.Stats().CloseReasons[CloseReplaced] == 1 })
		if len(left) != 1 || left[0].Reason != protocol.LeftReplaced {
			t.Errorf("the witness saw %+v leave, want the partitioned member replaced", left)
		}
	} else if serverNoticed == 0 || serverNoticed > tc.serverKeepalive+tc.serverWT+margin {
		t.Errorf("the relay noticed after %v, want within %v", serverNoticed, tc.serverKeepalive+tc.serverWT)
	}
	// Jittered backoff: several attempts during the partition, not all
	// the same time apart.
	if len(dials) < 3 {
		t.Errorf("%d connection attempts during the partition, want several", len(dials))
	} else if slices.Min(gaps) == slices.Max(gaps) {
		t.Errorf("the attempts were all %v apart: no jitter", gaps[0])
	}

}

// TestSilentPartition runs short partitions with short keepalives, so it
// takes seconds: one that both sides notice, and one in a quiet room that
// the client notices first and recovers from before the relay does: its
// join with its token replaces the stale session. make soak runs the full-length one (TestSoakSilentPartition).
func TestSilentPartition(t *testing.T) {
	for _, tc := range []partitionCase{
		{name: "both notice", partition: 4 * time.Second,
			serverKeepalive: 500 * time.Millisecond, serverWT: 500 * time.Millisecond,
			clientKeepalive: 500 * time.Millisecond, clientWT: 500 * time.Millisecond, dialTimeout: time.Second},
		{name: "the client comes back first", partition: 4 * time.Second, wantReplaced: true, quiet: true,
			serverKeepalive: time.Minute, serverWT: 10 * time.Second,
			clientKeepalive: 500 * time.Millisecond, clientWT: 500 * time.Millisecond, dialTimeout: time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) { runPartition(t, tc) })
	}
}
