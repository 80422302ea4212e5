package e2etest

import (
	"context"
	"flag"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/parleychat/parley/protocol"
	pclient "github.com/parleychat/parley/protocol/client"
)

var stampedeClients = flag.Int("stampede.clients", 200, "clients in TestReconnectStampede (make soak runs 2000, without -race)")

// stampedeBack is the documented time within which every client of a
// stampede is back in its room after parleyd restarts (docs/reliability.md).
const stampedeBack = 30 * time.Second

// TestReconnectStampede cuts every client at once — parleyd is killed
// and restarted on the same port — and waits for all of them to be back
// in their rooms. They come back within stampedeBack, the server answers
// a newcomer's join promptly meanwhile, and no handshake times out: the
// clients' jittered backoff spreads them so that none waits its turn past
// the 5 s handshake deadline, which would make it retry and add to the
// queue. Clients are protocol/client, with its default backoff.
func TestReconnectStampede(t *testing.T) {
	t.Parallel()
	n := *stampedeClients
	const perRoom = 50
	srv := startServer(t, serverOpts{listen: freePort(t)})
	inv, err := protocol.ParseInvite(srv.invite)
	if err != nil {
		t.Fatal(err)
	}
	type member struct {
		c         *pclient.Client
		connected atomic.Int32
		back      chan struct{} // closed at the second connected event
		backAt    time.Time     // set before back is closed
	}
	var attempts, failures atomic.Int64
	members := make([]*member, n)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	start := time.Now()
	for i := range members {
		m := &member{back: make(chan struct{})}
		members[i] = m
		ri := inv
		ri.Room = fmt.Sprint("room", i/perRoom)
		m.c = pclient.New(pclient.Config{Invite: ri, Name: fmt.Sprint("m", i), Dial: protocol.DialConfig{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				attempts.Add(1)
				c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
				if err != nil {
					failures.Add(1)
				}
				return c, err
			},
		}})
		wg.Add(2)
		go func() {
			defer wg.Done()
			if err := m.c.Run(ctx); err != nil && ctx.Err() == nil {
				t.Errorf("a client gave up: %v", err)
			}
		}()
		go func() {
			defer wg.Done()
			for ev := range m.c.Events() {
				if ev.Type == pclient.EventConnected && m.connected.Add(1) == 2 {
					m.backAt = time.Now()
					close(m.back)
				}
			}
		}()
	}
	waitAll := func(what string, cond func(*member) bool) {
		deadline := time.Now().Add(2 * stampedeBack)
		for _, m := range members {
			for !cond(m) {
				if time.Now().After(deadline) {
					t.Fatalf("not every client %s within %v", what, 2*stampedeBack)
				}
				time.Sleep(10 * time.Millisecond) // polling the clients' connected counts
			}
		}
	}
	waitAll("connected", func(m *member) bool { return m.connected.Load() >= 1 })
	t.Logf("%d clients in %d rooms connected in %v", n, (n+perRoom-1)/perRoom, time.Since(start).Round(time.Millisecond))
	attempts0 := attempts.Load()

	srv.kill()
	srv.waitExit(t)
	cut := time.Now()
	srv2 := srv.restart(t)
	restarted := time.Since(cut)
	// A newcomer joins while the others come back.
	var joins []time.Duration
	probeDone := make(chan struct{})
	go func() {
		defer close(probeDone)
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			default:
			}
			done := true
			for _, m := range members {
				done = done && m.connected.Load() >= 2
			}
			if done && len(joins) > 0 {
				return
			}
			t0 := time.Now()
			c, _ := dialRoom(t, srv2, &protocol.Join{Room: "probe", Name: fmt.Sprint("probe", i)})
			joins = append(joins, time.Since(t0))
			c.Close()
		}
	}()
	var backAt []time.Duration
	for _, m := range members {
		select {
		case <-m.back:
			backAt = append(backAt, m.backAt.Sub(cut))
		case <-time.After(stampedeBack):
			t.Fatalf("a client was not back within %v of the cut", stampedeBack)
		}
	}
	<-probeDone
	slices.Sort(backAt)
	slices.Sort(joins)
	t.Logf("parleyd back %v after the kill; clients back: half after %v, all after %v; %d reconnect attempts (%d refused while it was down)",
		restarted.Round(time.Millisecond), backAt[len(backAt)/2].Round(time.Millisecond), backAt[len(backAt)-1].Round(time.Millisecond),
		attempts.Load()-attempts0, failures.Load())
	t.Logf("a newcomer's dial and join during the stampede: median %v, slowest %v (%d samples)",
		joins[len(joins)/2].Round(time.Millisecond), joins[len(joins)-1].Round(time.Millisecond), len(joins))
	if last := backAt[len(backAt)-1]; last > stampedeBack {
		t.Errorf("the last client was back %v after the cut, want within %v", last, stampedeBack)
	}
	// Responsive: a newcomer gets in while everyone else reconnects. Its
	// TLS handshake waits its turn among hundreds (under -race each is
	// 10-20 times slower), so the bound is twice the handshake deadline;
	// that no handshake timed out is checked on parleyd's counters below.
	if slowest := joins[len(joins)-1]; slowest > 10*time.Second {
		t.Errorf("a newcomer took %v to join during the stampede", slowest)
	}
	// parleyd logs its counters when it stops: no handshake timed out.
	cancel()
	wg.Wait()
	srv2.signal(t, syscall.SIGTERM)
	srv2.waitExit(t)
	rec := srv2.waitLog(t, "the stopped record", func(r logRecord) bool { return r.str("msg") == "stopped" })
	t.Logf("parleyd's counters: closes %v, handshake failures %v", rec["closes"], rec["handshake_failures"])
	for _, s := range []*server{srv, srv2} {
		recs, _ := s.logs.snapshot()
		for _, r := range recs {
			if r.str("msg") == "session closed" && r.str("reason") != "left" && r.str("reason") != "connection lost" {
				t.Logf("closed: %v", r)
			}
		}
	}
	if hf, _ := rec["handshake_failures"].(map[string]any); hf["handshake timeout"] != nil {
		t.Errorf("handshakes timed out in the stampede: %v", hf)
	}
}
