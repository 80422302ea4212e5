package ui

import (
	"image"
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

func TestGoldenScreenShare(t *testing.T) {
	ps := people(4)
	ps[1].screen = true
	hs := callHarness(t, 960, 600, ps)
	checkGolden(t, "screen_share", hs.screenshot())
}

func TestGoldenPeople(t *testing.T) {
	ps := people(5)
	ps[3].screen = true
	hs := callHarness(t, 960, 600, ps)
	k := &hs.app.call.ctl
	hs.click(center(k.rects[&k.people]))
	hs.frames(2)
	// The pointer over bob's row shows its tooltip.
	l := hs.app.regions(layoutCtx(hs))
	hs.hover(image.Pt(l.panel.Min.X+100, l.panel.Min.Y+sideHeaderH+6+48+24))
	hs.frames(2)
	checkGolden(t, "people", hs.screenshot())
}

func TestGoldenDeviceMenu(t *testing.T) {
	hs := callHarness(t, 960, 600, people(2))
	k := &hs.app.call.ctl
	hs.click(center(k.rects[&k.micMenu]))
	hs.frames(2)
	hs.hover(center(k.rects[&k.items[2]]))
	hs.frames(2)
	checkGolden(t, "device_menu", hs.screenshot())
}

func TestGoldenTooltip(t *testing.T) {
	hs := callHarness(t, 960, 600, people(2))
	k := &hs.app.call.ctl
	hs.hover(center(k.rects[&k.mic]))
	hs.frames(2)
	checkGolden(t, "tooltip", hs.screenshot())
}

// TestGoldenSmall is the call window at its smallest, with the chat.
func TestGoldenSmall(t *testing.T) {
	hs := callHarness(t, MinSize.X, MinSize.Y, people(4), chatLines()...)
	checkGolden(t, "small", hs.screenshot())
	// Without the chat panel, the grid takes the width.
	k := &hs.app.call.ctl
	hs.click(center(k.rects[&k.chat]))
	hs.frames(2)
	hs.post(ChatLine{Kind: LineText, Time: t0, From: "bob", Text: "you there?"})
	hs.frames(2)
	checkGolden(t, "small_nochat", hs.screenshot())
}

func TestGoldenStartNarrow(t *testing.T) {
	hs := newHarness(t, MinSize.X, 720, Options{})
	s := &hs.app.start
	s.name.SetText("ada lovelace")
	s.invite.SetText("http://example.org")
	hs.frame()
	hs.app.tryJoin()
	hs.frames(2)
	checkGolden(t, "start_narrow", hs.screenshot())
}

func TestGoldenConnecting(t *testing.T) {
	hs := newHarness(t, 960, 600, Options{Start: StartJoin, Join: JoinRequest{Name: "ada", Invite: "parley://192.0.2.10:7700/team?fp=abc"}})
	hs.frames(2)
	checkGolden(t, "connecting", hs.screenshot())
}

// TestGoldenMutedHint: talking with the microphone muted shows no talking
// ring on the own tile, and a hint that nobody hears.
func TestGoldenMutedHint(t *testing.T) {
	ps := people(2)
	ps[0].muted, ps[0].talking = true, true
	hs := callHarness(t, 960, 600, ps)
	checkGolden(t, "muted_hint", hs.screenshot())
}
