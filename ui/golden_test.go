package ui

import (
	"testing"
)

// Goldens: what the window looks like, at 960×600 dp, one pixel per dp.
// Run go test -update to regenerate; look at testdata/*.png after.

func callHarness(t *testing.T, w, h int, ps []person, extra ...Event) *harness {
	t.Helper()
	hs := newHarness(t, w, h, Options{})
	hs.post(callEvents(ps)...)
	hs.post(extra...)
	hs.frames(3)
	return hs
}

func TestGoldenGrid(t *testing.T) {
	for _, n := range []int{1, 2, 5, 9} {
		t.Run(itoa(n), func(t *testing.T) {
			hs := callHarness(t, 960, 600, people(n))
			checkGolden(t, "grid_"+itoa(n), hs.screenshot())
		})
	}
}

func TestGoldenChat(t *testing.T) {
	hs := callHarness(t, 960, 600, people(3), chatLines()...)
	checkGolden(t, "chat", hs.screenshot())
}

func TestGoldenStart(t *testing.T) {
	hs := newHarness(t, 960, 600, Options{})
	hs.app.prefs.Recent = []recent{{Invite: "parley://192.0.2.10:7700/team?fp=abc", Room: "team", Server: "192.0.2.10:7700"},
		{Invite: "parley://chat.example.org:7700/lobby?fp=def"}}
	hs.app.start.name.SetText("ada")
	hs.app.start.refreshRecent(hs.app)
	hs.frames(2)
	checkGolden(t, "start", hs.screenshot())
}

func TestGoldenIdentityChanged(t *testing.T) {
	hs := newHarness(t, 960, 600, Options{Join: JoinRequest{Name: "ada", Invite: "parley://192.0.2.10:7700/team?fp=V8l9QGqNh23mdcTY6UWkv5GfD9xDY7Ea84LL6uQQ9ww"}})
	hs.frame()
	hs.app.tryJoin()
	hs.post(Error{Kind: ErrIdentityChanged, Fatal: true,
		Message: "192.0.2.10:7700 presented a key whose fingerprint is not the one in the invite link."},
		Left{})
	hs.frames(2)
	checkGolden(t, "identity_changed", hs.screenshot())
}

func TestGoldenReconnecting(t *testing.T) {
	hs := callHarness(t, 960, 600, people(3), append(chatLines()[:5],
		Status{State: Reconnecting, Detail: "connection reset by peer"})...)
	checkGolden(t, "reconnecting", hs.screenshot())
}
