package session

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/parleychat/parley/media/audiodev/pulsetest"
	"github.com/parleychat/parley/media/speexdsp"
	"github.com/parleychat/parley/protocol"
	"github.com/parleychat/parley/ui"
)

// pulse gives the sessions' speakers a real device: PulseAudio's null
// sink A, the default. Its sink "room" is a room whose microphone (the
// sink's monitor) hears its speaker.
var pulse *pulsetest.Server

func TestMain(m *testing.M) {
	var err error
	pulse, err = pulsetest.Start("A", "room")
	if err != nil {
		fmt.Fprintln(os.Stderr, "session tests need PulseAudio (make deps installs it):", err)
		os.Exit(1)
	}
	code := m.Run()
	pulse.Close()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// watcher collects a session's events.
type watcher struct {
	t    *testing.T
	name string
	mu   sync.Mutex
	evs  []ui.Event
	at   []time.Time // when each event came
	more chan struct{}
	done chan struct{}
	from int // waitFor looks at events from this one on
}

// skip makes waitFor ignore the events so far.
func (w *watcher) skip() {
	w.mu.Lock()
	w.from = len(w.evs)
	w.mu.Unlock()
}

func watch(t *testing.T, name string, s *Session) *watcher {
	w := &watcher{t: t, name: name, more: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for ev := range s.Events() {
			w.mu.Lock()
			w.evs = append(w.evs, ev)
			w.at = append(w.at, time.Now())
			w.mu.Unlock()
			select {
			case w.more <- struct{}{}:
			default:
			}
		}
	}()
	return w
}

// waitFor waits for an event that matches and returns it.
func waitFor[T ui.Event](w *watcher, what string, match func(T) bool) T {
	w.t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	w.mu.Lock()
	seen := w.from
	w.mu.Unlock()
	for {
		w.mu.Lock()
		evs := w.evs
		w.mu.Unlock()
		for ; seen < len(evs); seen++ {
			if ev, ok := evs[seen].(T); ok && match(ev) {
				return ev
			}
		}
		select {
		case <-w.more:
		case <-deadline.C:
			w.t.Fatalf("%s: no %s; events: %v", w.name, what, evs)
		}
	}
}

func anyEvent[T ui.Event](T) bool { return true }

// newSession returns a session that hosts on a free loopback port and
// keeps its state in the test's directories.
func newSession(t *testing.T) *Session { return newSessionConfig(t, Config{}) }

// newSessionConfig is newSession with more of the Config.
func newSessionConfig(t *testing.T, cfg Config) *Session {
	cfg.KnownServers = t.TempDir() + "/known_servers"
	cfg.HostDataDir = t.TempDir()
	cfg.HostListen = "127.0.0.1:0"
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := New(cfg)
	t.Cleanup(s.Close)
	return s
}

var testMedia = ui.MediaChoice{Video: []string{TestPattern}, Audio: []string{TestTone}}

// TestHostAndJoin: alice hosts a room in her app, bob joins it with the
// invite link; they see each other, their video and their messages.
func TestHostAndJoin(t *testing.T) {
	// Every new picture invalidates the window: the test waits on that.
	pictures := make(chan struct{}, 1)
	wake := func() {
		select {
		case pictures <- struct{}{}:
		default:
		}
	}
	alice := newSession(t)
	alice.SetInvalidate(wake)
	aw := watch(t, "alice", alice)
	alice.Host(ui.HostRequest{Room: "team", Name: "alice", Media: testMedia})
	hosting := waitFor(aw, "hosting", anyEvent[ui.Hosting])
	inv, err := protocol.ParseInvite(hosting.Invite)
	if err != nil || inv.Room != "team" || inv.Fingerprint == "" {
		t.Fatalf("Hosting invite %q: %v", hosting.Invite, err)
	}
	waitFor(aw, "alice joined", func(j ui.Joined) bool { return j.Room == "team" && j.Name == "alice" })
	self := waitFor(aw, "alice's own tile", func(p ui.ParticipantJoined) bool { return p.Self && p.Name == "alice" })

	bob := newSession(t)
	bob.SetInvalidate(wake)
	bw := watch(t, "bob", bob)
	// bob dials the host on loopback, with the host's fingerprint.
	local := protocol.Invite{Addr: hosting.Addr, Room: "team", Fingerprint: inv.Fingerprint}
	bob.Join(ui.JoinRequest{Invite: local.String(), Name: "bob", Media: testMedia})
	waitFor(bw, "bob connected", func(s ui.Status) bool { return s.State == ui.Connected })
	aliceAtBob := waitFor(bw, "alice's tile at bob", func(p ui.ParticipantJoined) bool { return p.Name == "alice" && !p.Self })
	bobAtAlice := waitFor(aw, "bob's tile at alice", func(p ui.ParticipantJoined) bool { return p.Name == "bob" })
	waitFor(aw, "bob joined line", func(l ui.ChatLine) bool { return l.Kind == ui.LineSystem && l.Text == "bob joined" })

	// Video both ways, and alice's own preview.
	for what, feed := range map[string]*ui.VideoFeed{"bob's picture of alice": aliceAtBob.Camera,
		"alice's picture of bob": bobAtAlice.Camera, "alice's preview": self.Camera} {
		deadline := time.NewTimer(20 * time.Second)
		for feed.Frames() < 10 {
			select {
			case <-pictures:
			case <-deadline.C:
				t.Fatalf("%s: %d pictures", what, feed.Frames())
			}
		}
		deadline.Stop()
		// The test pattern is 640×360; the sender may scale it down (by
		// the ladder's steps) when the machine or the link is busy.
		if img, _ := feed.Take(); img == nil || img.Rect.Dx() < 160 || abs(img.Rect.Dx()*9-img.Rect.Dy()*16) > 32 {
			var size any
			if img != nil {
				size = img.Rect.Size()
			}
			t.Errorf("%s: picture of size %v, want the test pattern's 16:9", what, size)
		}
	}

	bob.Send("hello alice")
	waitFor(aw, "bob's message", func(l ui.ChatLine) bool { return l.From == "bob" && l.Text == "hello alice" && !l.Mine })
	alice.SendPrivate("bob", "psst")
	waitFor(bw, "alice's private message", func(l ui.ChatLine) bool { return l.Kind == ui.LinePrivate && l.Text == "psst" })

	// alice turns her camera off and mutes: bob sees the state.
	alice.SetCamera(false)
	alice.SetMicMuted(true)
	waitFor(bw, "alice's state", func(s ui.ParticipantState) bool { return s.ID == aliceAtBob.ID && s.State == 0 })
	alice.SetCamera(true)
	waitFor(bw, "alice's camera back", func(s ui.ParticipantState) bool {
		return s.ID == aliceAtBob.ID && s.State&protocol.StateVideo != 0
	})

	if d := alice.Devices(); len(d.Cameras) == 0 || d.Cameras[len(d.Cameras)-1].ID != TestPattern {
		t.Errorf("Devices().Cameras = %v, want the test pattern last", d.Cameras)
	}

	bob.Leave()
	waitFor(bw, "bob left", anyEvent[ui.Left])
	waitFor(aw, "bob's tile gone", func(p ui.ParticipantLeft) bool { return p.Name == "bob" })
	alice.Leave()
	waitFor(aw, "alice left", anyEvent[ui.Left])
}

// TestJoinErrors: what a user gets wrong is explained, and fatal.
func TestJoinErrors(t *testing.T) {
	host := newSession(t)
	hw := watch(t, "host", host)
	host.Host(ui.HostRequest{Name: "host", Media: ui.MediaChoice{Video: []string{"none"}, Audio: []string{"none"}}})
	h := waitFor(hw, "hosting", anyEvent[ui.Hosting])
	waitFor(hw, "connected", func(s ui.Status) bool { return s.State == ui.Connected })
	inv, _ := protocol.ParseInvite(h.Invite)
	inv.Addr = h.Addr
	other := inv
	other.Fingerprint = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	noFP := inv
	noFP.Fingerprint = ""
	dead := inv
	dead.Addr = "127.0.0.1:1"

	tests := []struct {
		name   string
		req    ui.JoinRequest
		kind   ui.ErrorKind
		phrase string
	}{
		{"not a link", ui.JoinRequest{Invite: "http://example.com", Name: "x"}, ui.ErrBadInvite, "not a Parley invite"},
		{"wrong key", ui.JoinRequest{Invite: other.String(), Name: "x"}, ui.ErrIdentityChanged, "intercepting"},
		{"no key", ui.JoinRequest{Invite: noFP.String(), Name: "x"}, ui.ErrUnknownServer, "trust this server"},
		{"unreachable", ui.JoinRequest{Invite: dead.String(), Name: "x"}, ui.ErrUnreachable, "Cannot reach"},
		{"name taken", ui.JoinRequest{Invite: inv.String(), Name: "host"}, ui.ErrNameTaken, "already uses that name"},
	}
	none := ui.MediaChoice{Video: []string{"none"}, Audio: []string{"none"}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSession(t)
			w := watch(t, tt.name, s)
			tt.req.Media = none
			s.Join(tt.req)
			e := waitFor(w, "an error", anyEvent[ui.Error])
			if e.Kind != tt.kind || !e.Fatal || !strings.Contains(e.Message, tt.phrase) {
				t.Errorf("error = %+v, want kind %v, fatal, saying %q", e, tt.kind, tt.phrase)
			}
			left := waitFor(w, "left", anyEvent[ui.Left])
			if left.Err == nil {
				t.Errorf("Left.Err = nil after a failed join")
			}
		})
	}
	// With trust on first use the link without a key works.
	s := newSession(t)
	w := watch(t, "tofu", s)
	s.Join(ui.JoinRequest{Invite: noFP.String(), Name: "tofu", TrustOnFirstUse: true, Media: none})
	waitFor(w, "connected", func(s ui.Status) bool { return s.State == ui.Connected })
	s.Leave()
	waitFor(w, "left", anyEvent[ui.Left])

}

// TestMissingDevices: a camera or microphone that cannot be opened is said
// in plain words, the fallback in the list is used, and the call goes on.
func TestMissingDevices(t *testing.T) {
	s := newSession(t)
	w := watch(t, "host", s)
	s.Host(ui.HostRequest{Name: "host", Media: ui.MediaChoice{
		Video: []string{"camera:/dev/parley-no-such-camera", TestPattern},
		Audio: []string{"mic:parley-no-such-microphone", "none"},
	}})
	waitFor(w, "connected", func(s ui.Status) bool { return s.State == ui.Connected })
	cam := waitFor(w, "the camera notice", func(e ui.Error) bool { return strings.Contains(e.Message, "camera") })
	if cam.Fatal || cam.Kind != ui.ErrNoDevice || !strings.HasPrefix(cam.Message, "The camera could not be opened (") ||
		!strings.HasSuffix(cam.Message, "): the others see a test pattern.") {
		t.Errorf("camera notice = %+v", cam)
	}
	mic := waitFor(w, "the microphone notice", func(e ui.Error) bool { return strings.Contains(e.Message, "microphone") })
	if mic.Fatal || mic.Message != "No microphone was found: the others cannot hear you." {
		t.Errorf("microphone notice = %+v", mic)
	}
	if d := s.Devices(); d.Camera != TestPattern {
		t.Errorf("camera in use = %q, want the test pattern", d.Camera)
	}
	s.Leave()
	waitFor(w, "left", anyEvent[ui.Left])
}

func abs(v int) int { return max(v, -v) }

// TestHostPublicAddr: the invite link of a hosted room names the address
// others reach it by, when it is given.
func TestHostPublicAddr(t *testing.T) {
	s := New(Config{
		KnownServers:   t.TempDir() + "/known_servers",
		HostDataDir:    t.TempDir(),
		HostListen:     "127.0.0.1:0",
		HostPublicAddr: "chat.example.org:7700",
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	t.Cleanup(s.Close)
	w := watch(t, "host", s)
	s.Host(ui.HostRequest{Name: "host", Media: ui.MediaChoice{Video: []string{"none"}, Audio: []string{"none"}}})
	h := waitFor(w, "hosting", anyEvent[ui.Hosting])
	inv, err := protocol.ParseInvite(h.Invite)
	if err != nil || inv.Addr != "chat.example.org:7700" || inv.Room != "lobby" {
		t.Errorf("invite %q (%v), want chat.example.org:7700/lobby", h.Invite, err)
	}
	waitFor(w, "connected", func(s ui.Status) bool { return s.State == ui.Connected })
	s.Leave()
	waitFor(w, "left", anyEvent[ui.Left])
}

// TestHostWithPassword: a room hosted from the app with a password lets
// in whoever gives it, and tells whoever does not, in plain words, that
// the password is wrong. The host joins its own room with it.
func TestHostWithPassword(t *testing.T) {
	none := ui.MediaChoice{Video: []string{"none"}, Audio: []string{"none"}}
	host := newSession(t)
	hw := watch(t, "host", host)
	host.Host(ui.HostRequest{Name: "host", Password: "open sesame", Media: none})
	h := waitFor(hw, "hosting", anyEvent[ui.Hosting])
	waitFor(hw, "connected", func(s ui.Status) bool { return s.State == ui.Connected })
	if strings.Contains(h.Invite, "sesame") {
		t.Errorf("the invite link %q carries the password", h.Invite)
	}
	inv, _ := protocol.ParseInvite(h.Invite)
	inv.Addr = h.Addr
	for _, tc := range []struct {
		name, password string
		ok             bool
	}{{"no password", "", false}, {"wrong password", "sesame", false}, {"right password", "open sesame", true}} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSession(t)
			w := watch(t, tc.name, s)
			s.Join(ui.JoinRequest{Invite: inv.String(), Name: "guest", Password: tc.password, Media: none})
			if tc.ok {
				waitFor(w, "joined", func(j ui.Joined) bool { return j.Name == "guest" })
				s.Leave()
				waitFor(w, "left", anyEvent[ui.Left])
				return
			}
			e := waitFor(w, "an error", anyEvent[ui.Error])
			if e.Kind != ui.ErrBadPassword || !e.Fatal || !strings.Contains(e.Message, "password") {
				t.Errorf("error = %+v, want a fatal ErrBadPassword that says so", e)
			}
			waitFor(w, "left", anyEvent[ui.Left])
		})
	}
}

// TestLeaveWhileHostStarts: leaving while the hosted relay is still
// starting ends the attempt — the window's Cancel — and the session can
// host again at once.
func TestLeaveWhileHostStarts(t *testing.T) {
	none := ui.MediaChoice{Video: []string{"none"}, Audio: []string{"none"}}
	s := newSession(t)
	w := watch(t, "host", s)
	s.Host(ui.HostRequest{Name: "host", Media: none})
	s.Leave() // Host returned at once: the relay starts on the call's goroutine
	waitFor(w, "left", anyEvent[ui.Left])
	w.skip()
	s.Host(ui.HostRequest{Name: "host", Media: none})
	waitFor(w, "connected", func(st ui.Status) bool { return st.State == ui.Connected })
	s.Leave()
}

// TestHostEndsTheCall: when the host leaves, the call is over for its
// guests: they are told so in plain words and stop, instead of showing
// "reconnecting" for ever.
func TestHostEndsTheCall(t *testing.T) {
	none := ui.MediaChoice{Video: []string{"none"}, Audio: []string{"none"}}
	host := newSession(t)
	hw := watch(t, "host", host)
	host.Host(ui.HostRequest{Name: "host", Media: none})
	h := waitFor(hw, "hosting", anyEvent[ui.Hosting])
	waitFor(hw, "connected", func(s ui.Status) bool { return s.State == ui.Connected })
	inv, _ := protocol.ParseInvite(h.Invite)
	inv.Addr = h.Addr
	guest := newSession(t)
	gw := watch(t, "guest", guest)
	guest.Join(ui.JoinRequest{Invite: inv.String(), Name: "guest", Media: none})
	waitFor(gw, "joined", func(j ui.Joined) bool { return j.Name == "guest" })
	host.Leave()
	e := waitFor(gw, "an error", anyEvent[ui.Error])
	if !e.Fatal || !strings.Contains(e.Message, "host ended the call") {
		t.Errorf("the guest was told %+v, want a fatal error saying the host ended the call", e)
	}
	waitFor(gw, "left", anyEvent[ui.Left])
}

// TestEchoCancelled: alice's speaker is in the room her microphone records
// (PulseAudio's null sink "room" and its monitor), as with laptop speakers
// and no headset, and bob talks (the test tone, at -9 dBov, loud and
// without a pause). By default her microphone's frames are cleaned of the
// echo: once the canceller has learnt the room, bob's voice coming back
// through her microphone does not make her tile show her talking (nor go
// back to bob). With echo cancellation off, it does all the time.
func TestEchoCancelled(t *testing.T) {
	const (
		learn   = 3 * time.Second // for the canceller, once alice's speaker is in the room
		measure = 4 * time.Second // then the time alice's tile shows her talking is measured
	)
	for _, on := range []bool{true, false} {
		name := "on"
		if !on {
			name = "off"
		}
		t.Run(name, func(t *testing.T) {
			// Alice's log, with the canceller's counters as her call
			// ends, goes to the test's.
			log := slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
			alice := newSessionConfig(t, Config{NoEchoCancel: !on, Logger: log})
			aw := watch(t, "alice", alice)
			alice.Host(ui.HostRequest{Name: "alice", Media: ui.MediaChoice{Video: []string{"none"},
				Audio: []string{"mic:" + pulse.MonitorDevice("room")}}})
			h := waitFor(aw, "hosting", anyEvent[ui.Hosting])
			self := waitFor(aw, "alice's own tile", func(p ui.ParticipantJoined) bool { return p.Self })
			inv, _ := protocol.ParseInvite(h.Invite)
			inv.Addr = h.Addr
			bob := newSession(t)
			watch(t, "bob", bob)
			bob.Join(ui.JoinRequest{Invite: inv.String(), Name: "bob", Media: ui.MediaChoice{Video: []string{"none"}, Audio: []string{TestTone}}})
			bobAtAlice := waitFor(aw, "bob's tile", func(p ui.ParticipantJoined) bool { return p.Name == "bob" })
			waitFor(aw, "bob talking", func(e ui.Talking) bool { return e.ID == bobAtAlice.ID && e.Talking })

			// Bob's voice into the room from now on. (The session tells
			// the window of no switched speaker: Devices says it.)
			room := pulse.PlaybackDevice("room")
			alice.SelectDevice(ui.Speaker, room)
			deadline := time.Now().Add(10 * time.Second)
			for alice.Devices().Speaker != room {
				if time.Now().After(deadline) {
					t.Fatal("alice's speaker did not switch to the room")
				}
				time.Sleep(10 * time.Millisecond)
			}
			// The canceller learns the room from bob's voice: it has learn
			// for that, and, with it on, the time until alice's tile goes
			// quiet if it still shows her talking then. Each window
			// measured starts after that.
			switched := time.Now()
			<-time.After(learn) // a measurement's run-up, not a wait for an event
			// A stall of the call's audio (a machine too loaded to run it
			// in time) makes the canceller pair the streams afresh and
			// learn again, which takes seconds: a window in which that
			// happened is logged and another is measured, three at most.
			echo := alice.active().echo
			settled := switched.Add(learn)
			for window := 1; ; window++ {
				from := time.Now()
				if on && talkingSince(aw, self.ID) {
					waitFor(aw, "alice's tile quiet: the canceller learned the echo", func(e ui.Talking) bool { return e.ID == self.ID && !e.Talking })
					from = time.Now()
					t.Logf("the canceller took %v more to learn the echo", from.Sub(settled).Round(time.Millisecond))
				}
				resyncs := echoResyncs(echo)
				to := from.Add(measure)
				<-time.After(time.Until(to)) // the window is a measurement, not a wait for an event
				talked, spans, bobStopped := talkTime(aw, self.ID, bobAtAlice.ID, from, to)
				if len(spans) > 0 {
					t.Logf("alice's tile showed her talking in window %d at %s", window, strings.Join(spans, ", "))
				}
				t.Logf("echo cancellation %s: alice's tile showed her talking for %v of %v", name, talked.Round(time.Millisecond), measure)
				if bobStopped {
					t.Fatal("bob's tile at alice stopped talking during the measure")
				}
				if n := echoResyncs(echo) - resyncs; n > 0 && talked > measure/5 {
					if window < 3 {
						t.Logf("the call's audio stalled in window %d: the canceller paired the streams afresh %d times (%+v); measuring again", window, n, echo.Stats())
						settled = time.Now()
						continue
					}
					t.Errorf("the call's audio stalled in all of %d windows of %v", window, measure)
				}
				if on && talked > measure/5 {
					t.Errorf("with echo cancellation alice's tile showed her talking for %v of %v: the echo of bob's voice went through", talked, measure)
				}
				if !on && talked < measure*9/10 {
					t.Errorf("without echo cancellation alice's tile showed her talking for only %v of %v: the room does not echo", talked, measure)
				}
				break
			}
		})
	}
}

// echoResyncs returns how often the canceller (nil: none) paired the
// streams afresh.
func echoResyncs(echo *speexdsp.Canceller) uint64 {
	if echo == nil {
		return 0
	}
	return echo.Stats().Resyncs
}

// talkTime returns how long the watcher's events showed self talking
// between from and to, when, and whether they showed other stop talking
// meanwhile.
func talkTime(w *watcher, self, other uint32, from, to time.Time) (talked time.Duration, spans []string, otherStopped bool) {
	w.mu.Lock()
	evs, at := w.evs, w.at
	w.mu.Unlock()
	talking, since := false, from
	for i, ev := range evs {
		e, ok := ev.(ui.Talking)
		switch {
		case !ok || at[i].After(to):
		case e.ID == other && !e.Talking && at[i].After(from):
			otherStopped = true
		case e.ID == self && e.Talking != talking:
			if !e.Talking && at[i].After(from) {
				talked += at[i].Sub(later(since, from))
				spans = append(spans, span(later(since, from).Sub(from), at[i].Sub(from)))
			}
			talking, since = e.Talking, at[i]
		}
	}
	if talking {
		talked += to.Sub(later(since, from))
		spans = append(spans, span(later(since, from).Sub(from), to.Sub(from)))
	}
	return talked, spans, otherStopped
}

// testLog writes a log to the test's.
type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// talkingSince reports whether the last Talking event for id says
// talking, and makes waitFor look at the events after that one.
func talkingSince(w *watcher, id uint32) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := len(w.evs) - 1; i >= w.from; i-- {
		if e, ok := w.evs[i].(ui.Talking); ok && e.ID == id {
			w.from = i + 1
			return e.Talking
		}
	}
	return false
}

// span formats a stretch of the measured window.
func span(from, to time.Duration) string {
	return fmt.Sprintf("%v–%v", from.Round(10*time.Millisecond), to.Round(10*time.Millisecond))
}

// later returns the later of a and b.
func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
