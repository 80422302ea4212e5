package e2etest

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/parleychat/parley/relay"
)

// fastText lets a member send in bursts without being rate limited.
func fastText() *relay.FileConfig {
	return &relay.FileConfig{TextBurst: 1000, TextPerMinute: 600000}
}

func TestThreeClientsSameOrder(t *testing.T) {
	t.Parallel()
	srv := startServer(t, serverOpts{config: fastText()})
	alice := startClient(t, srv.invite, "alice", "")
	bob := startClient(t, srv.invite, "bob", "")
	carol := startClient(t, srv.invite, "carol", "")
	clients := []*client{alice, bob, carol}
	for _, c := range clients {
		c.waitConnected(t)
	}

	const perSender = 50
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for _, c := range []*client{alice, bob} {
		wg.Go(func() {
			for i := range perSender {
				if _, err := fmt.Fprintf(c.stdin, "%s-%02d\n", c.name, i); err != nil {
					errs <- fmt.Errorf("writing to %s: %w", c.name, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	// Once everyone has 100 texts, a marker from carol closes the list:
	// anything delivered twice would come before it.
	for _, c := range clients {
		c.waitEvents(t, "100 texts", 2*perSender, isType("text"))
	}
	carol.send(t, "marker")
	var first []event
	for _, c := range clients {
		evs := c.waitText(t, "marker")
		texts := ofType(evs[:len(evs)-1], "text")
		checkSeqs(t, c.name, texts)
		if len(texts) != 2*perSender {
			t.Errorf("%s got %d texts before the marker, want %d", c.name, len(texts), 2*perSender)
		}
		next := map[string]int{}
		for _, ev := range texts {
			want := fmt.Sprintf("%s-%02d", ev.From, next[ev.From])
			if ev.Text != want {
				t.Errorf("%s: text from %s = %q, want %q (each sender's lines in order, once)", c.name, ev.From, ev.Text, want)
			}
			next[ev.From]++
			if ev.Mine != (ev.From == c.name) {
				t.Errorf("%s: text %q from %s has mine = %v", c.name, ev.Text, ev.From, ev.Mine)
			}
		}
		if first == nil {
			first = texts
			continue
		}
		same := slices.EqualFunc(first, texts, func(a, b event) bool {
			return a.Seq == b.Seq && a.From == b.From && a.Text == b.Text
		})
		if !same {
			t.Errorf("%s saw the texts in another order than %s:\n%s\nvs\n%s", c.name, alice.name, summary(texts), summary(first))
		}
	}
	for _, c := range clients {
		c.closeInput(t)
	}
	for _, c := range clients {
		c.exitWith(t, 0)
	}
}

// summary lists seq, sender and text of events, one per line.
func summary(evs []event) string {
	var b strings.Builder
	for _, ev := range evs {
		fmt.Fprintf(&b, "%d %s %q\n", ev.Seq, ev.From, ev.Text)
	}
	return b.String()
}

func TestHistoryOnJoin(t *testing.T) {
	t.Parallel()
	srv := startServer(t, serverOpts{config: &relay.FileConfig{HistoryOnJoin: 5, TextBurst: 1000, TextPerMinute: 600000}})
	alice := startClient(t, srv.invite, "alice", "")
	var sent []string
	for i := range 12 {
		sent = append(sent, fmt.Sprintf("history-%02d", i))
	}
	alice.send(t, sent...)
	alice.closeInput(t)
	alice.exitWith(t, 0) // every line acknowledged

	dave := startClient(t, srv.invite, "dave", "")
	dave.send(t, "dave-marker")
	evs := dave.waitText(t, "dave-marker")
	var got []string
	for _, ev := range ofType(evs[:len(evs)-1], "text") {
		got = append(got, ev.Text)
	}
	if want := sent[len(sent)-5:]; !slices.Equal(got, want) {
		t.Errorf("dave's history on join = %q, want %q", got, want)
	}
	dave.closeInput(t)
	dave.exitWith(t, 0)
}

func TestPrivateMessages(t *testing.T) {
	t.Parallel()
	srv := startServer(t, serverOpts{config: fastText()})
	alice := startClient(t, srv.invite, "alice", "")
	bob := startClient(t, srv.invite, "bob", "")
	carol := startClient(t, srv.invite, "carol", "")
	for _, c := range []*client{alice, bob, carol} {
		c.waitConnected(t)
	}

	alice.send(t, "/msg bob secret-1", "/msg nobody secret-2", "after-private")
	isSecret := func(ev event) bool { return strings.Contains(ev.Text, "secret") }

	evs := bob.waitText(t, "after-private")
	priv := ofType(evs, "private")
	if len(priv) != 1 || priv[0].From != "alice" || priv[0].To != "bob" || priv[0].Text != "secret-1" || priv[0].Mine {
		t.Errorf("bob's private events before the marker = %+v, want one from alice to bob with text secret-1", priv)
	}
	if n := count(ofType(evs, "text"), isSecret); n != 0 {
		t.Errorf("bob got %d private texts as room texts", n)
	}

	evs = alice.waitText(t, "after-private")
	priv = ofType(evs, "private")
	if len(priv) != 1 || priv[0].From != "alice" || priv[0].To != "bob" || priv[0].Text != "secret-1" || !priv[0].Mine {
		t.Errorf("alice's private events = %+v, want her own copy (mine) to bob with text secret-1", priv)
	}
	// The message to a name not in the room is refused.
	evs = alice.waitEvents(t, "error for /msg nobody", 1, isType("error"))
	if e := evs[len(evs)-1]; e.Code != "no such member" {
		t.Errorf("alice's error after /msg nobody = %+v, want code %q", e, "no such member")
	}

	// The marker comes after the private message in the room's order, so
	// carol reaching it without the secret proves she never gets it.
	evs = carol.waitText(t, "after-private")
	if n := count(evs, isSecret); n != 0 || len(ofType(evs, "private")) != 0 {
		t.Errorf("carol saw a private message meant for bob: %+v", evs)
	}
	for _, c := range []*client{alice, bob, carol} {
		c.closeInput(t)
	}
	for _, c := range []*client{alice, bob, carol} {
		c.exitWith(t, 0)
	}
	if all, _ := carol.events.snapshot(); count(all, isSecret) != 0 {
		t.Errorf("carol saw a private message meant for bob: %+v", all)
	}
}

func TestNameTaken(t *testing.T) {
	t.Parallel()
	srv := startServer(t, serverOpts{})
	bob := startClient(t, srv.invite, "bob", "")
	bob.waitConnected(t)

	bob2 := startClient(t, srv.invite, "bob", "")
	bob2.exitWith(t, 5)
	if msg := bob2.errs.text(); !strings.Contains(msg, "name taken") && !strings.Contains(msg, "already in use") {
		t.Errorf("second bob's stderr = %q, want it to say the name is taken", msg)
	}
	if lines := strings.Count(strings.TrimSpace(bob2.errs.text()), "\n") + 1; lines != 1 {
		t.Errorf("second bob's stderr has %d lines, want a one-line reason:\n%s", lines, bob2.errs.text())
	}

	// The first bob is still in the room.
	bob.send(t, "still-here")
	bob.waitText(t, "still-here")
	bob.closeInput(t)
	bob.exitWith(t, 0)
}

func TestRejectedInput(t *testing.T) {
	t.Parallel()
	srv := startServer(t, serverOpts{config: &relay.FileConfig{MaxTextBytes: 100}})
	alice := startClient(t, srv.invite, "alice", "")
	alice.waitConnected(t)
	alice.send(t,
		"",                       // ignored
		"   ",                    // ignored
		"/nope",                  // unknown command: a local error
		"/msg bob",               // no text: a local error
		"\x1b[31mred",            // refused: a control character
		strings.Repeat("x", 101), // refused: over max_text_bytes
		"//slash",                // sends "/slash"
		"tab\there",              // a tab is fine
		"last",
	)
	evs := alice.waitText(t, "last")
	var texts, codes []string
	local := 0
	for _, ev := range evs {
		switch ev.Type {
		case "text":
			texts = append(texts, ev.Text)
		case "error":
			if ev.Code == "" {
				local++
			} else {
				codes = append(codes, ev.Code)
			}
		}
	}
	if want := []string{"/slash", "tab\there", "last"}; !slices.Equal(texts, want) {
		t.Errorf("texts sent = %q, want %q", texts, want)
	}
	if local != 2 {
		t.Errorf("got %d local error events, want 2 (unknown command, /msg without text)", local)
	}
	if want := []string{"control characters in text", "text too long"}; !slices.Equal(codes, want) {
		t.Errorf("server error codes = %q, want %q", codes, want)
	}
	// Refused lines do not hold up the exit.
	alice.closeInput(t)
	alice.exitWith(t, 0)
}
