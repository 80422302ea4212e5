package e2etest

import (
	"fmt"
	"os"
	"slices"
	"syscall"
	"testing"

	"github.com/parleychat/parley/relay"
)

func TestKillDuringBurst(t *testing.T) {
	t.Parallel()
	// 100 messages a second: the burst of 300 lasts long enough for the
	// kill to land in its middle.
	srv := startServer(t, serverOpts{
		listen: freePort(t),
		config: &relay.FileConfig{HistoryOnJoin: 1000, RetainMessages: 1000000, TextBurst: 20, TextPerMinute: 6000},
	})
	bob := startClient(t, srv.invite, "bob", "")
	carol := startClient(t, srv.invite, "carol", "")
	alice := startClient(t, srv.invite, "alice", "")
	for _, c := range []*client{bob, carol, alice} {
		c.waitConnected(t)
	}

	const n = 300
	var sent []string
	for i := range n {
		sent = append(sent, fmt.Sprintf("burst-%03d", i))
	}
	alice.send(t, sent...)
	alice.closeInput(t)

	evs := bob.waitEvents(t, "100 texts", 100, isType("text"))
	srv.kill()
	srv.waitExit(t)
	if last := evs[len(evs)-1]; last.Text == sent[n-1] {
		t.Fatalf("the whole burst was delivered before the kill")
	}
	srv2 := srv.restart(t)
	if srv2.fp != srv.fp {
		t.Errorf("fingerprint after a restart = %s, want %s", srv2.fp, srv.fp)
	}

	alice.exitWith(t, 0) // every line acknowledged, after resends
	erin := startClient(t, srv2.invite, "erin", "")
	erin.send(t, "erin-marker")
	for _, c := range []*client{bob, carol, erin} {
		evs := c.waitText(t, "erin-marker")
		texts := ofType(evs[:len(evs)-1], "text")
		checkSeqs(t, c.name, texts)
		var got []string
		for _, ev := range texts {
			got = append(got, ev.Text)
		}
		if !slices.Equal(got, sent) {
			t.Errorf("%s got %d texts, want the %d sent, each once in order:\n%s", c.name, len(got), n, summary(texts))
		}
		if gaps := ofType(evs, "gap"); len(gaps) > 0 {
			t.Errorf("%s got gap events %+v", c.name, gaps)
		}
	}
	for _, c := range []*client{alice, bob, carol} {
		all, _ := c.events.snapshot()
		t.Logf("%s: %d disconnects, %d connects", c.name, count(all, isType("disconnected")), count(all, isType("connected")))
	}
	for _, c := range []*client{bob, carol} {
		all, _ := c.events.snapshot()
		if d, r := count(all, isType("disconnected")), count(all, isType("connected")); d < 1 || r < 2 {
			t.Errorf("%s saw %d disconnects and %d connects, want at least 1 and 2 across the restart", c.name, d, r)
		}
	}
	for _, c := range []*client{bob, carol, erin} {
		c.closeInput(t)
	}
	for _, c := range []*client{bob, carol, erin} {
		c.exitWith(t, 0)
	}
}

func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	srv := startServer(t, serverOpts{})
	alice := startClient(t, srv.invite, "alice", "")
	alice.waitConnected(t)
	alice.send(t, "before-shutdown")
	alice.waitText(t, "before-shutdown")

	srv.signal(t, syscall.SIGTERM)
	// parleyd gives Shutdown 10 seconds and exits 1 if it needs longer.
	if code := srv.waitExit(t); code != 0 {
		t.Fatalf("parleyd exit code after SIGTERM = %d, want 0", code)
	}
	evs := alice.waitEvents(t, "disconnected event", 1, isType("disconnected"))
	if d := evs[len(evs)-1]; d.Code != "shutdown" {
		t.Errorf("disconnected event = %+v, want code %q (the server's goodbye)", d, "shutdown")
	}
	srv.waitLog(t, "shutting down record", func(r logRecord) bool { return r.str("msg") == "shutting down" })
	if alice.exited() {
		t.Fatalf("parley-cli exited when the server shut down, want it to keep reconnecting")
	}
	// Interrupted while it reconnects, the client exits with 130.
	alice.signal(t, os.Interrupt)
	alice.exitWith(t, 130)
}
