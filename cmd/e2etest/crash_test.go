package e2etest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/protocol"
	"github.com/parleychat/parley/relay"
)

// dialRoom connects a Go client (protocol.Conn) to parleyd and joins.
func dialRoom(t testing.TB, srv *server, j *protocol.Join) (*protocol.Conn, *protocol.Joined) {
	t.Helper()
	inv, err := protocol.ParseInvite(srv.invite)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	c, err := protocol.Dial(ctx, inv, nil)
	if err != nil {
		t.Fatalf("Dial(%s): %v", srv.invite, err)
	}
	joined, err := c.Join(ctx, j)
	if err != nil {
		c.Abort()
		t.Fatalf("Join(%+v): %v", j, err)
	}
	return c, joined
}

// TestKill9UnderLoad kills parleyd with SIGKILL while ten senders send a
// thousand messages a second in all, and restarts it. Every message the
// server acknowledged is there afterwards, with the sequence number of its
// ack; where retention removed messages on the restart (the room keeps
// 1,500), a resuming member gets a gap marker for exactly that range.
// parleyd is built without the race detector here (serverOpts.atFullSpeed).
func TestKill9UnderLoad(t *testing.T) {
	t.Parallel()
	const senders, perSecond, retain = 10, 1000, 1500
	srv := startServer(t, serverOpts{
		listen:      freePort(t),
		atFullSpeed: true, // a thousand messages a second (see atFullSpeed)
		config:      &relay.FileConfig{RetainMessages: retain, TextBurst: 200, TextPerMinute: 6000},
	})
	type acked struct {
		seq  uint64
		text string
	}
	var mu sync.Mutex
	acks := map[string]acked{} // by sender/client id
	sentTotal := 0
	var wg sync.WaitGroup
	start := time.Now()
	for i := range senders {
		name := fmt.Sprint("sender", i)
		c, _ := dialRoom(t, srv, &protocol.Join{Room: "lobby", Name: name})
		defer c.Abort()
		texts := map[uint64]string{}
		var tmu sync.Mutex
		wg.Add(2)
		go func() { // acks
			defer wg.Done()
			for {
				m, err := c.Receive(context.Background())
				if err != nil {
					return
				}
				if a, ok := m.(*protocol.Ack); ok {
					tmu.Lock()
					text := texts[a.ClientID]
					tmu.Unlock()
					mu.Lock()
					acks[fmt.Sprint(name, "/", a.ClientID)] = acked{a.Seq, text}
					mu.Unlock()
				}
			}
		}()
		go func() { // 100 messages a second until the connection fails
			defer wg.Done()
			tick := time.NewTicker(time.Second / (perSecond / senders))
			defer tick.Stop()
			for id := uint64(1); ; id++ {
				<-tick.C
				text := fmt.Sprintf("%s-%d", name, id)
				tmu.Lock()
				texts[id] = text
				tmu.Unlock()
				if c.Send(&protocol.SendChat{ClientID: id, Text: text}) != nil {
					return
				}
				mu.Lock()
				sentTotal++
				mu.Unlock()
			}
		}()
	}
	// Kill it once more than the room keeps has been acknowledged, so that
	// the restart's retention removes some.
	deadline := time.Now().Add(waitTimeout)
	for {
		mu.Lock()
		n := len(acks)
		mu.Unlock()
		if n >= 2*retain {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d acks within %v", n, waitTimeout)
		}
		time.Sleep(10 * time.Millisecond) // polling the acks the senders count
	}
	srv.kill()
	killedAt := time.Since(start)
	srv.waitExit(t)
	wg.Wait() // every sender's connection has failed: no more acks
	mu.Lock()
	t.Logf("killed after %v: %d messages sent, %d acked (%.0f acked per second)",
		killedAt.Round(time.Millisecond), sentTotal, len(acks), float64(len(acks))/killedAt.Seconds())
	mu.Unlock()

	srv2 := srv.restart(t)
	c, joined := dialRoom(t, srv2, &protocol.Join{Room: "lobby", Name: "reader", Resume: true, AfterSeq: 0})
	defer c.Close()
	var gaps []*protocol.Gap
	got := map[uint64]*protocol.Chat{}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	for {
		m, err := c.Receive(ctx)
		if err != nil {
			t.Fatalf("reading the history: %v", err)
		}
		if g, ok := m.(*protocol.Gap); ok {
			gaps = append(gaps, g)
		}
		if ch, ok := m.(*protocol.Chat); ok {
			got[ch.Seq] = ch
		}
		if _, ok := m.(*protocol.Synced); ok {
			break
		}
	}
	low := joined.HeadSeq + 1
	for seq := range got {
		low = min(low, seq)
	}
	t.Logf("after the restart: head %d, %d messages kept from seq %d, gaps %v", joined.HeadSeq, len(got), low, gapList(gaps))
	if len(gaps) != 1 || gaps[0].From != 1 || gaps[0].To != low-1 {
		t.Errorf("gaps %v, want one from 1 to %d, where retention removed messages", gapList(gaps), low-1)
	}
	if uint64(len(got)) != joined.HeadSeq-low+1 {
		t.Errorf("%d messages from %d to %d, want every one", len(got), low, joined.HeadSeq)
	}
	missing, removed := 0, 0
	for key, a := range acks {
		if a.seq < low {
			removed++
			continue // covered by the gap
		}
		ch := got[a.seq]
		if ch == nil || ch.Text != a.text {
			missing++
			if missing <= 5 {
				t.Errorf("acked message %s (seq %d, %q) is missing after the restart: got %+v", key, a.seq, a.text, ch)
			}
		}
	}
	t.Logf("%d acked messages: %d there after the restart, %d removed by retention and covered by the gap, %d missing",
		len(acks), len(acks)-removed-missing, removed, missing)
}

func gapList(gaps []*protocol.Gap) string {
	s := ""
	for _, g := range gaps {
		s += fmt.Sprintf(" %d-%d", g.From, g.To)
	}
	return "[" + s + " ]"
}
