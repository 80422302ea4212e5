package ui

import (
	"bytes"
	"encoding/json"
	"errors"
	"image"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"gioui.org/io/key"
	"gioui.org/op/paint"
)

// inCall returns a harness in a call with three people, the chat editor
// focused.
func inCall(t *testing.T, opts Options) *harness {
	t.Helper()
	hs := newHarness(t, 960, 600, opts)
	hs.post(callEvents(people(3))...)
	hs.frames(2)
	if !hs.r.Source().Focused(&hs.app.call.chat.editor) {
		t.Fatal("the chat editor has no focus when the call window opens")
	}
	return hs
}

func TestEnterSends(t *testing.T) {
	hs := inCall(t, Options{})
	hs.typeText("hello world")
	hs.frame()
	if got := hs.app.call.chat.editor.Text(); got != "hello world" {
		t.Fatalf("editor holds %q after typing, want %q", got, "hello world")
	}
	hs.key(key.NameReturn, 0)
	hs.frame()
	if want := []string{"hello world"}; !reflect.DeepEqual(hs.b.sent, want) {
		t.Errorf("Send calls = %q, want %q", hs.b.sent, want)
	}
	if got := hs.app.call.chat.editor.Text(); got != "" {
		t.Errorf("editor holds %q after Enter, want it empty", got)
	}
	// Shift+Enter makes a new line instead.
	hs.typeText("two")
	hs.frame()
	hs.key(key.NameReturn, key.ModShift)
	hs.frame()
	hs.typeText("lines")
	hs.frame()
	if got := hs.app.call.chat.editor.Text(); got != "two\nlines" {
		t.Errorf("editor holds %q after Shift+Enter, want %q", got, "two\nlines")
	}
	hs.key(key.NameReturn, 0)
	hs.frame()
	if want := []string{"hello world", "two\nlines"}; !reflect.DeepEqual(hs.b.sent, want) {
		t.Errorf("Send calls = %q, want %q", hs.b.sent, want)
	}
	// Blank lines are not sent.
	hs.typeText("   ")
	hs.frame()
	hs.key(key.NameReturn, 0)
	hs.frame()
	if len(hs.b.sent) != 2 {
		t.Errorf("a blank line was sent: %q", hs.b.sent)
	}
}

func TestMsgSendsPrivately(t *testing.T) {
	hs := inCall(t, Options{})
	for _, tc := range []struct {
		in      string
		private [][2]string
		sent    []string
	}{
		{in: "/msg bob hi", private: [][2]string{{"bob", "hi"}}},
		{in: "/msg chiara see you at 10", private: [][2]string{{"bob", "hi"}, {"chiara", "see you at 10"}}},
		{in: "//msg is a word", private: [][2]string{{"bob", "hi"}, {"chiara", "see you at 10"}}, sent: []string{"/msg is a word"}},
	} {
		hs.typeText(tc.in)
		hs.frame()
		hs.key(key.NameReturn, 0)
		hs.frame()
		if !reflect.DeepEqual(hs.b.private, tc.private) {
			t.Errorf("after %q: SendPrivate calls = %q, want %q", tc.in, hs.b.private, tc.private)
		}
		if !reflect.DeepEqual(hs.b.sent, tc.sent) {
			t.Errorf("after %q: Send calls = %q, want %q", tc.in, hs.b.sent, tc.sent)
		}
	}
	// Without a text: a line only this member sees, nothing sent.
	hs.typeText("/msg bob")
	hs.frame()
	hs.key(key.NameReturn, 0)
	hs.frame()
	items := hs.app.call.chat.items
	if len(items) == 0 || items[len(items)-1].Kind != LineError || !strings.Contains(items[len(items)-1].Text, "/msg NAME TEXT") {
		t.Errorf("no usage line after a /msg without text; lines: %+v", items)
	}
	if len(hs.b.private) != 2 || len(hs.b.sent) != 1 {
		t.Errorf("a /msg without text was sent: %q %q", hs.b.private, hs.b.sent)
	}
}

func TestShortcuts(t *testing.T) {
	hs := inCall(t, Options{})
	hs.typeText("draft")
	hs.frame()
	hs.key("D", key.ModShortcut)
	hs.frame()
	if want := []bool{true}; !reflect.DeepEqual(hs.b.mic, want) {
		t.Fatalf("SetMicMuted calls after Ctrl+D = %v, want %v", hs.b.mic, want)
	}
	if !hs.app.call.micMuted {
		t.Error("the controls don't show the microphone muted after Ctrl+D")
	}
	hs.key("D", key.ModShortcut)
	hs.frame()
	if want := []bool{true, false}; !reflect.DeepEqual(hs.b.mic, want) {
		t.Errorf("SetMicMuted calls after a second Ctrl+D = %v, want %v", hs.b.mic, want)
	}
	hs.key("E", key.ModShortcut)
	hs.frame()
	if want := []bool{false}; !reflect.DeepEqual(hs.b.camera, want) {
		t.Errorf("SetCamera calls after Ctrl+E = %v, want %v", hs.b.camera, want)
	}
	hs.key("E", key.ModShortcut|key.ModShift)
	hs.frame()
	if want := []bool{true}; !reflect.DeepEqual(hs.b.screen, want) {
		t.Errorf("ShareScreen calls after Ctrl+Shift+E = %v, want %v", hs.b.screen, want)
	}
	// The editor kept its text and its focus.
	if got := hs.app.call.chat.editor.Text(); got != "draft" {
		t.Errorf("editor holds %q after the shortcuts, want %q", got, "draft")
	}
	if !hs.r.Source().Focused(&hs.app.call.chat.editor) {
		t.Error("the editor lost focus to a shortcut")
	}
	hs.key("Q", key.ModShortcut|key.ModShift)
	hs.frame()
	if !slices.Contains(hs.b.callList(), "leave") {
		t.Errorf("Ctrl+Shift+Q did not leave; calls: %v", hs.b.callList())
	}
	if hs.app.screen != screenStart {
		t.Errorf("screen after Ctrl+Shift+Q = %v, want start", hs.app.screen)
	}
}

func TestControlButtons(t *testing.T) {
	hs := inCall(t, Options{})
	k := &hs.app.call.ctl
	hs.click(center(k.rects[&k.mic]))
	hs.frame()
	hs.click(center(k.rects[&k.cam]))
	hs.frame()
	hs.click(center(k.rects[&k.screen]))
	hs.frame()
	if !reflect.DeepEqual(hs.b.mic, []bool{true}) || !reflect.DeepEqual(hs.b.camera, []bool{false}) || !reflect.DeepEqual(hs.b.screen, []bool{true}) {
		t.Errorf("after clicking mic, camera, screen: mic %v camera %v screen %v, want [true] [false] [true]", hs.b.mic, hs.b.camera, hs.b.screen)
	}
	// The device picker: open, pick the second microphone.
	hs.click(center(k.rects[&k.micMenu]))
	hs.frame()
	hs.frame()
	if k.menu != menuAudio {
		t.Fatalf("menu = %v after clicking the microphone's arrow, want the audio menu", k.menu)
	}
	idx := -1
	for i, r := range k.rows {
		if r.dev.ID == "mic1" {
			idx = i
		}
	}
	if idx < 0 {
		t.Fatalf("no row for mic1 in %+v", k.rows)
	}
	hs.click(center(k.rects[&k.items[idx]]))
	hs.frame()
	if want := []string{"1:mic1"}; !reflect.DeepEqual(hs.b.selects, want) {
		t.Errorf("SelectDevice calls = %v, want %v", hs.b.selects, want)
	}
	if k.menu != menuNone {
		t.Error("the menu stayed open after picking a device")
	}
	// A click outside a menu closes it.
	hs.click(center(k.rects[&k.camMenu]))
	hs.frames(2)
	if k.menu != menuCamera {
		t.Fatalf("menu = %v after clicking the camera's arrow, want the camera menu", k.menu)
	}
	hs.click(image.Pt(300, 300))
	hs.frames(2)
	if k.menu != menuNone || len(hs.b.selects) != 1 {
		t.Errorf("after a click outside: menu %v, SelectDevice calls %v", k.menu, hs.b.selects)
	}
	// Leave.
	hs.click(center(k.rects[&k.leave]))
	hs.frame()
	if hs.app.screen != screenStart || !slices.Contains(hs.b.callList(), "leave") {
		t.Errorf("after clicking Leave: screen %v, calls %v", hs.app.screen, hs.b.callList())
	}
}

func TestCopyInvite(t *testing.T) {
	hs := inCall(t, Options{})
	hs.click(center(hs.app.call.copyRect))
	hs.frame()
	mime, data, ok := hs.r.WriteClipboard()
	want := "parley://192.0.2.10:7700/team?fp=V8l9QGqNh23mdcTY6UWkv5GfD9xDY7Ea84LL6uQQ9ww"
	if !ok || mime != "application/text" || string(data) != want {
		t.Errorf("clipboard = %q %q %v, want %q", mime, data, ok, want)
	}
	if !hs.now.Before(hs.app.call.copiedUntil) {
		t.Error("no “Copied” confirmation")
	}
	hs.now = hs.now.Add(3 * time.Second)
	hs.frame()
	if hs.now.Before(hs.app.call.copiedUntil) {
		t.Error("“Copied” still shows 3 s later")
	}
}

// TestChatFollows checks that the chat list follows new lines while it is
// at the end, stays where the user scrolled to otherwise, and offers a
// button to jump to the new lines.
func TestChatFollows(t *testing.T) {
	hs := inCall(t, Options{})
	c := &hs.app.call.chat
	line := func(i int) ChatLine {
		return ChatLine{Kind: LineText, Time: t0, From: testNames[i%4], Text: "line " + itoa(i)}
	}
	for i := range 40 {
		hs.post(line(i))
	}
	hs.frames(2)
	atEnd := func() bool {
		p := c.list.Position
		return !p.BeforeEnd && p.First+p.Count == len(c.items)
	}
	if !atEnd() {
		t.Fatalf("list not at the end after 40 lines: %+v", c.list.Position)
	}
	hs.post(line(40))
	hs.frames(2)
	if !atEnd() {
		t.Fatalf("list did not follow a new line: %+v", c.list.Position)
	}
	// Scroll up.
	hs.scroll(center(c.listRect), -400)
	hs.frames(2)
	if !c.list.Position.BeforeEnd {
		t.Fatalf("list still at the end after scrolling up: %+v", c.list.Position)
	}
	first := c.list.Position.First
	if !c.jumpRect.Empty() {
		t.Error("the new-messages button shows before any new line")
	}
	hs.post(line(41), line(42))
	hs.frames(2)
	if c.list.Position.First != first || !c.list.Position.BeforeEnd {
		t.Errorf("list moved when lines came while scrolled up: first %d → %d", first, c.list.Position.First)
	}
	if c.jumpRect.Empty() || c.unseen != 2 {
		t.Fatalf("no new-messages button (unseen %d)", c.unseen)
	}
	hs.click(center(c.jumpRect))
	hs.frames(2)
	if !atEnd() || c.unseen != 0 || !c.jumpRect.Empty() {
		t.Errorf("after the new-messages button: at end %v, unseen %d, button %v", atEnd(), c.unseen, c.jumpRect)
	}
	// Sending jumps to the end too.
	hs.scroll(center(c.listRect), -400)
	hs.frames(2)
	hs.typeText("back")
	hs.frame()
	hs.key(key.NameReturn, 0)
	hs.frames(2)
	if !atEnd() {
		t.Errorf("list not at the end after sending: %+v", c.list.Position)
	}
}

func TestRosterPrefillsPrivate(t *testing.T) {
	hs := inCall(t, Options{})
	hs.app.call.side.tab = tabPeople
	hs.frames(2)
	bob := hs.app.call.member(2)
	// Rows: ada (self) first, then bob; the list starts below the tabs.
	l := hs.app.regions(layoutCtx(hs))
	p := image.Pt(l.panel.Min.X+100, l.panel.Min.Y+sideHeaderH+6+48+24)
	hs.click(p)
	hs.frames(3) // the click, the focus, the editor's caret to the router
	if got := hs.app.call.chat.editor.Text(); got != "/msg "+bob.Name+" " {
		t.Errorf("editor holds %q after clicking %s in the roster, want %q", got, bob.Name, "/msg "+bob.Name+" ")
	}
	if hs.app.call.side.tab != tabChat || !hs.r.Source().Focused(&hs.app.call.chat.editor) {
		t.Error("the chat tab and its editor are not active after a click in the roster")
	}
	hs.typeText("psst")
	hs.frame()
	hs.key(key.NameReturn, 0)
	hs.frame()
	if want := [][2]string{{"bob", "psst"}}; !reflect.DeepEqual(hs.b.private, want) {
		t.Errorf("SendPrivate calls = %q, want %q", hs.b.private, want)
	}
}

func TestStartValidation(t *testing.T) {
	hs := newHarness(t, 960, 600, Options{})
	hs.frames(2)
	s := &hs.app.start
	if !hs.r.Source().Focused(&s.name) {
		t.Error("the name field has no focus on an empty start screen")
	}
	hs.trySubmit(&s.invite)
	if s.nameErr == "" || s.inviteErr == "" || len(hs.b.joins) != 0 {
		t.Fatalf("empty form: name error %q, invite error %q, joins %v", s.nameErr, s.inviteErr, hs.b.joins)
	}
	s.name.SetText("ada lovelace")
	s.invite.SetText("https://example.org/room")
	hs.trySubmit(&s.invite)
	if !strings.Contains(s.nameErr, "spaces") || !strings.Contains(s.inviteErr, "parley://") || len(hs.b.joins) != 0 {
		t.Fatalf("bad form: name error %q, invite error %q, joins %v", s.nameErr, s.inviteErr, hs.b.joins)
	}
	// Typing clears the field's message.
	hs.r.Source().Execute(key.FocusCmd{Tag: &s.name})
	hs.frame()
	hs.typeText("x")
	hs.frame()
	if s.nameErr != "" {
		t.Errorf("the name error stays after typing: %q", s.nameErr)
	}
	s.name.SetText("ada")
	s.invite.SetText("parley://192.0.2.10:7700/team?fp=abc")
	s.password.SetText("s3cret")
	hs.trySubmit(&s.password)
	want := []JoinRequest{{Invite: "parley://192.0.2.10:7700/team?fp=abc", Name: "ada", Password: "s3cret"}}
	if !reflect.DeepEqual(hs.b.joins, want) {
		t.Fatalf("Join calls = %+v, want %+v", hs.b.joins, want)
	}
	if !s.busy {
		t.Error("the start screen is not busy while joining")
	}
	// Hosting needs only a name.
	hs.post(Left{})
	hs.frame()
	s.room.SetText("")
	hs.trySubmit(&s.room)
	if want := []HostRequest{{Name: "ada"}}; !reflect.DeepEqual(hs.b.hosts, want) {
		t.Errorf("Host calls = %+v, want %+v", hs.b.hosts, want)
	}
	// A password typed for the hosted room goes with the request (and
	// the join form's password does not).
	hs.post(Left{})
	hs.frame()
	s.hostPassword.SetText("team only")
	hs.trySubmit(&s.hostPassword)
	if want := []HostRequest{{Name: "ada"}, {Name: "ada", Password: "team only"}}; !reflect.DeepEqual(hs.b.hosts, want) {
		t.Errorf("Host calls = %+v, want %+v", hs.b.hosts, want)
	}
}

// trySubmit presses Enter in ed.
func (h *harness) trySubmit(ed any) {
	h.r.Source().Execute(key.FocusCmd{Tag: ed})
	h.frame()
	h.key(key.NameReturn, 0)
	h.frame()
}

func TestErrorsOnStart(t *testing.T) {
	const inv = "parley://192.0.2.10:7700/team"
	hs := newHarness(t, 960, 600, Options{Start: StartJoin, Join: JoinRequest{Name: "ada", Invite: inv}})
	hs.frame()
	if len(hs.b.joins) != 1 || !hs.app.start.busy {
		t.Fatalf("StartJoin: joins %v, busy %v", hs.b.joins, hs.app.start.busy)
	}
	hs.post(Error{Kind: ErrUnknownServer, Message: "No fingerprint for 192.0.2.10:7700.", Fatal: true}, Left{})
	hs.frames(2)
	s := &hs.app.start
	if hs.app.banner == nil || hs.app.banner.Kind != ErrUnknownServer || s.busy {
		t.Fatalf("banner %+v, busy %v", hs.app.banner, s.busy)
	}
	if s.tofuFor != inv {
		t.Fatalf("no trust-on-first-use offer for %q (tofuFor %q)", inv, s.tofuFor)
	}
	checkGolden(t, "unknown_server", hs.screenshot())
	s.tofu.Value = true
	hs.trySubmit(&s.password)
	if len(hs.b.joins) != 2 || !hs.b.joins[1].TrustOnFirstUse {
		t.Fatalf("second join %+v, want TrustOnFirstUse", hs.b.joins)
	}
	if hs.app.banner != nil {
		t.Error("the banner stays while joining again")
	}
	// Another link is not trusted by the same box.
	hs.post(Error{Kind: ErrBadPassword, Message: "Wrong password.", Fatal: true}, Left{})
	hs.frame()
	s.invite.SetText("parley://198.51.100.7:7700/team")
	hs.trySubmit(&s.password)
	if len(hs.b.joins) != 3 || hs.b.joins[2].TrustOnFirstUse {
		t.Errorf("third join %+v, want no TrustOnFirstUse for another link", hs.b.joins[2])
	}
	// A join that works goes to the call.
	hs.post(callEvents(people(2))...)
	hs.frame()
	if hs.app.screen != screenCall || hs.app.banner != nil {
		t.Errorf("after Joined: screen %v, banner %+v", hs.app.screen, hs.app.banner)
	}
}

func TestNoticesAndFatalErrors(t *testing.T) {
	hs := inCall(t, Options{})
	hs.post(Error{Kind: ErrNoDevice, Message: "No camera found — others see your initials."})
	hs.frame()
	if len(hs.app.notices) != 1 || hs.app.screen != screenCall {
		t.Fatalf("non-fatal error: notices %v, screen %v", hs.app.notices, hs.app.screen)
	}
	checkGolden(t, "notice", hs.screenshot())
	// Dismiss it: its close button is at the right of the notice, over
	// the grid.
	l := hs.app.regions(layoutCtx(hs))
	w := min(l.grid.Dx(), 560)
	x := l.grid.Min.X + (l.grid.Dx()-w)/2 + w - 6 - 13
	hs.click(image.Pt(x, l.grid.Min.Y+8+20))
	hs.frame()
	if len(hs.app.notices) != 0 {
		t.Errorf("notice not dismissed: %v", hs.app.notices)
	}
	hs.post(Error{Kind: ErrOther, Message: "The server shut down.", Fatal: true}, Left{Err: errors.New("server shut down")})
	hs.frame()
	if hs.app.screen != screenStart || hs.app.banner == nil || hs.app.banner.Message != "The server shut down." {
		t.Errorf("fatal error: screen %v, banner %+v", hs.app.screen, hs.app.banner)
	}
}

func TestLeftWithError(t *testing.T) {
	hs := inCall(t, Options{})
	hs.post(Left{Err: errors.New("the relay closed the connection")})
	hs.frame()
	if hs.app.screen != screenStart || hs.app.banner == nil || !strings.Contains(hs.app.banner.Message, "relay closed") {
		t.Errorf("after Left with an error: screen %v, banner %+v", hs.app.screen, hs.app.banner)
	}
	if len(hs.app.call.members) != 0 || len(hs.app.call.chat.items) != 0 {
		t.Error("the call's members and chat outlive the call")
	}
}

func TestReconnectKeepsChat(t *testing.T) {
	hs := inCall(t, Options{})
	hs.post(Status{State: Reconnecting, Detail: "connection reset"})
	hs.frame()
	if l := hs.app.regions(layoutCtx(hs)); l.banner.Empty() {
		t.Fatal("no reconnecting banner")
	}
	hs.typeText("still here?")
	hs.frame()
	hs.key(key.NameReturn, 0)
	hs.frame()
	if !reflect.DeepEqual(hs.b.sent, []string{"still here?"}) {
		t.Errorf("Send while reconnecting = %q", hs.b.sent)
	}
	// Back: the backend sends Joined again and the members.
	hs.post(callEvents(people(3))...)
	hs.frame()
	if l := hs.app.regions(layoutCtx(hs)); !l.banner.Empty() {
		t.Error("the reconnecting banner stays after reconnecting")
	}
	if n := len(hs.app.call.members); n != 3 {
		t.Errorf("%d members after a reconnect that resent 3", n)
	}
}

func TestHosting(t *testing.T) {
	var trace bytes.Buffer
	hs := newHarness(t, 960, 600, Options{Start: StartHost, Host: HostRequest{Room: "friday", Name: "ada"}, Trace: &trace})
	hs.frame()
	if want := []HostRequest{{Room: "friday", Name: "ada"}}; !reflect.DeepEqual(hs.b.hosts, want) {
		t.Fatalf("Host calls = %+v, want %+v", hs.b.hosts, want)
	}
	const inv = "parley://203.0.113.5:7700/friday?fp=abc"
	hs.post(Hosting{Invite: inv, Addr: "[::]:7700"}, Joined{Room: "friday", Name: "ada", Server: "203.0.113.5:7700", Invite: inv})
	hs.frame()
	if !hs.app.call.hosting || hs.app.call.invite != inv || hs.app.screen != screenCall {
		t.Errorf("hosting %v, invite %q, screen %v", hs.app.call.hosting, hs.app.call.invite, hs.app.screen)
	}
	if !strings.Contains(trace.String(), `{"type":"invite","invite":"`+inv+`"}`) {
		t.Errorf("trace has no invite line:\n%s", trace.String())
	}
}

func TestPrefs(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "parley", "app.json")
	hs := newHarness(t, 960, 600, Options{PrefsPath: path})
	hs.frame()
	s := &hs.app.start
	s.name.SetText("ada")
	s.invite.SetText("parley://192.0.2.10:7700/team?fp=abc")
	hs.trySubmit(&s.invite)
	hs.post(Joined{Room: "team", Name: "ada", Server: "192.0.2.10:7700"})
	hs.frame()
	p := loadPrefs(path)
	if p.Name != "ada" || len(p.Recent) != 1 || p.Recent[0].Invite != "parley://192.0.2.10:7700/team?fp=abc" || p.Recent[0].Room != "team" {
		t.Fatalf("prefs after a join: %+v", p)
	}
	// A new window remembers.
	hs2 := newHarness(t, 960, 600, Options{PrefsPath: path})
	if got := hs2.app.start.name.Text(); got != "ada" {
		t.Errorf("name prefilled with %q, want ada", got)
	}
	if got := hs2.app.start.recentText; !reflect.DeepEqual(got, []string{"team on 192.0.2.10:7700"}) {
		t.Errorf("recent links %q", got)
	}
	// A corrupt or missing file is an empty one.
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if p := loadPrefs(path); !reflect.DeepEqual(p, prefs{}) {
		t.Errorf("corrupt prefs loaded as %+v", p)
	}
	if p := loadPrefs(filepath.Join(dir, "missing.json")); !reflect.DeepEqual(p, prefs{}) {
		t.Errorf("missing prefs loaded as %+v", p)
	}
	hs3 := newHarness(t, 960, 600, Options{PrefsPath: path})
	hs3.frame()
	if got := hs3.app.start.name.Text(); got != "" {
		t.Errorf("name %q from a corrupt file", got)
	}
}

func TestTrace(t *testing.T) {
	var trace bytes.Buffer
	hs := newHarness(t, 960, 600, Options{Trace: &trace})
	hs.frames(2)
	ps := people(2)
	ps[1].talking = false
	hs.post(callEvents(ps)...)
	hs.frames(2)
	hs.post(ChatLine{Kind: LineText, Time: t0, From: "bob", Text: "hi ada"},
		ChatLine{Kind: LinePrivate, Time: t0, From: "ada", To: "bob", Text: "psst", Mine: true})
	hs.frames(2)
	hs.post(Talking{ID: 2, Talking: true})
	hs.frames(3) // no change after the first: no more tiles lines
	hs.post(Error{Kind: ErrNoDevice, Message: "No camera found."})
	hs.frame()

	type line struct {
		Type, Screen, From, To, Text, Kind, Widget, State, Message string
		Tiles                                                      []traceTile
	}
	var lines []line
	dec := json.NewDecoder(&trace)
	for {
		var l line
		if err := dec.Decode(&l); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("trace is not JSON lines: %v", err)
		}
		lines = append(lines, l)
	}
	var types []string
	for _, l := range lines {
		types = append(types, l.Type)
	}
	want := []string{"screen", "focus", "invite", "screen", "status", "tiles", "focus", "chat", "chat", "tiles", "error"}
	if !reflect.DeepEqual(types, want) {
		t.Fatalf("trace types = %v, want %v", types, want)
	}
	if lines[0].Screen != "start" || lines[1].Widget != "name" || lines[3].Screen != "call" || lines[6].Widget != "chat-editor" {
		t.Errorf("trace: %+v", lines[:7])
	}
	if l := lines[7]; l.From != "bob" || l.Text != "hi ada" || l.Kind != "text" {
		t.Errorf("chat line %+v", l)
	}
	if l := lines[8]; l.To != "bob" || l.Kind != "private" {
		t.Errorf("private line %+v", l)
	}
	if l := lines[10]; l.Kind != "no-device" || l.Message != "No camera found." {
		t.Errorf("error line %+v", l)
	}
	// The tiles are where the grid drew them.
	tiles := lines[9].Tiles
	rects := hs.app.call.tiles.rects
	if len(tiles) != 2 || len(rects) != 2 {
		t.Fatalf("tiles %+v, rects %v", tiles, rects)
	}
	for i, tl := range tiles {
		r := image.Rect(tl.X, tl.Y, tl.X+tl.W, tl.Y+tl.H)
		if r != rects[i] {
			t.Errorf("tile %d at %v, drawn at %v", i, r, rects[i])
		}
		if !tl.Video {
			t.Errorf("tile %d (%s) has no video", i, tl.Name)
		}
	}
	if !tiles[0].Self || tiles[0].Name != "ada" || tiles[1].Name != "bob" || !tiles[1].Talking || lines[5].Tiles[1].Talking {
		t.Errorf("tiles: before %+v, after %+v", lines[5].Tiles, tiles)
	}
}

// TestVideoImageOps checks that a tile makes an ImageOp only for a new
// picture and allocates nothing on frames without one.
func TestVideoImageOps(t *testing.T) {
	f := NewVideoFeed(nil)
	var v videoView
	if v.update(f) {
		t.Fatal("a picture before any Put")
	}
	f.Put(solidPicture(64, 36, rgba(200, 30, 30)))
	if !v.update(f) {
		t.Fatal("no picture after Put")
	}
	first := v.img
	if !v.update(f) || v.img != first {
		t.Error("a new ImageOp without a new picture")
	}
	if n := testing.AllocsPerRun(100, func() { v.update(f) }); n != 0 {
		t.Errorf("update without a new picture allocates %v times", n)
	}
	f.Put(solidPicture(64, 36, rgba(30, 200, 30)))
	if !v.update(f) || v.img == first {
		t.Error("the same ImageOp after a new picture")
	}
	f.Clear()
	if v.update(f) || v.img != (paint.ImageOp{}) {
		t.Error("a picture after Clear")
	}
}

// TestReadEvents checks the goroutine that moves events from the backend
// into the window: in order, and it ends when told or when the channel
// closes.
func TestReadEvents(t *testing.T) {
	b := newFakeBackend()
	b.events = make(chan Event) // unbuffered: a send returns when it was read
	a := NewApp(b, Options{})
	done := make(chan struct{})
	ended := make(chan struct{})
	go func() {
		a.readEvents(done)
		close(ended)
	}()
	b.events <- ChatLine{Text: "1"}
	b.events <- ChatLine{Text: "2"}
	close(done)
	<-ended
	a.mu.Lock()
	got := slices.Clone(a.inbox)
	a.mu.Unlock()
	if len(got) != 2 || got[0].(ChatLine).Text != "1" || got[1].(ChatLine).Text != "2" {
		t.Errorf("inbox %v, want the two lines in order", got)
	}
	ended = make(chan struct{})
	go func() {
		a.readEvents(make(chan struct{}))
		close(ended)
	}()
	close(b.events)
	<-ended
}

func TestBindInvalidate(t *testing.T) {
	var got func()
	a := NewApp(newFakeBackend(), Options{BindInvalidate: func(f func()) { got = f }})
	if got == nil {
		t.Fatal("BindInvalidate not called")
	}
	got() // no window yet: nothing happens
	a.Invalidate()
}

// TestFrameAllocations checks that a call's frames allocate a bounded
// amount that does not grow with time (video pictures, chat lines and
// tiles reuse their memory).
func TestFrameAllocations(t *testing.T) {
	hs := callHarness(t, 960, 600, people(9), chatLines()...)
	hs.frames(10)
	first := testing.AllocsPerRun(20, hs.frame)
	hs.frames(200)
	later := testing.AllocsPerRun(20, hs.frame)
	if later > first {
		t.Errorf("allocations per frame grew from %v to %v", first, later)
	}
	if first > 200 {
		t.Errorf("%v allocations per frame, want at most 200", first)
	}
}

// TestJoinFailsWithoutFatal: a join that ends (Left) after an error not
// marked fatal shows that error on the start screen.
func TestJoinFailsWithoutFatal(t *testing.T) {
	hs := newHarness(t, 960, 600, Options{Start: StartJoin, Join: JoinRequest{Name: "ada", Invite: "parley://192.0.2.10:7700/team"}})
	hs.frame()
	hs.post(Error{Kind: ErrNoDevice, Message: "No camera found."}, Error{Kind: ErrNameTaken, Message: "ada is taken."})
	hs.frame()
	if !hs.app.start.busy || hs.app.banner != nil || len(hs.app.notices) != 2 {
		t.Fatalf("non-fatal errors while joining: busy %v, banner %+v, notices %d", hs.app.start.busy, hs.app.banner, len(hs.app.notices))
	}
	hs.post(Left{})
	hs.frames(2)
	if b := hs.app.banner; b == nil || b.Kind != ErrNameTaken || hs.app.start.nameErr == "" {
		t.Errorf("after Left: banner %+v, name error %q", b, hs.app.start.nameErr)
	}
	if !hs.r.Source().Focused(&hs.app.start.name) {
		t.Error("the name field has no focus after the name was taken")
	}
}

// TestCancelJoin: Cancel while joining leaves, and what the backend says
// about the cancelled call afterwards is ignored.
func TestCancelJoin(t *testing.T) {
	hs := newHarness(t, 960, 600, Options{Start: StartJoin, Join: JoinRequest{Name: "ada", Invite: "parley://192.0.2.10:7700/team"}})
	hs.frames(2)
	hs.app.start.cancel.Click() // the button's place is not known to the test
	hs.frame()
	if !slices.Contains(hs.b.callList(), "leave") || hs.app.start.busy {
		t.Fatalf("after Cancel: calls %v, busy %v", hs.b.callList(), hs.app.start.busy)
	}
	hs.post(callEvents(people(2))...)
	hs.post(Left{})
	hs.frame()
	if hs.app.screen != screenStart || hs.app.banner != nil || len(hs.app.call.members) != 0 {
		t.Errorf("late events of a cancelled join: screen %v, banner %+v, members %d", hs.app.screen, hs.app.banner, len(hs.app.call.members))
	}
	// A new join works.
	hs.trySubmit(&hs.app.start.invite)
	hs.post(callEvents(people(2))...)
	hs.frame()
	if hs.app.screen != screenCall || len(hs.b.joins) != 2 {
		t.Errorf("a join after a cancel: screen %v, joins %d", hs.app.screen, len(hs.b.joins))
	}
}
