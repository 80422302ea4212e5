package ui

import (
	"errors"
	"image"
	"io"
	"sync"

	"gioui.org/app"
	"gioui.org/layout"
	"gioui.org/op"
	"gioui.org/unit"
	"gioui.org/widget/material"
)

// StartMode says what the window does when it opens.
type StartMode int

// Start modes.
const (
	// StartScreen shows the start screen (the zero value).
	StartScreen StartMode = iota
	// StartHost hosts a room at once with Options.Host.
	StartHost
	// StartJoin joins at once with Options.Join.
	StartJoin
)

// Options configure an App. Every field is optional.
type Options struct {
	// Start is what happens when the window opens; the start screen by
	// default.
	Start StartMode
	// Join is what StartJoin joins with. Its Name, Invite and Password
	// also prefill the start screen (over the remembered name).
	Join JoinRequest
	// Host is what StartHost hosts. Its Room prefills the start screen.
	Host HostRequest
	// Media is what joins and hosts from the start screen send (and what
	// StartJoin and StartHost send when their own Media is empty). Empty
	// means the backend's default.
	Media MediaChoice

	// PrefsPath is the JSON file where the window remembers the last name
	// and the recent invite links, e.g. $XDG_CONFIG_HOME/parley/app.json.
	// "" remembers nothing. A missing or unreadable file is an empty one.
	PrefsPath string

	// Trace, if not nil, receives one JSON object per line describing
	// what the window shows, when it changes (see trace.go). For
	// end-to-end tests; writes happen on the frame goroutine, so it
	// should be quick (a file or a buffered pipe).
	Trace io.Writer

	// BindInvalidate, if not nil, is called once by NewApp with the
	// App's Invalidate, for a backend built before the App that needs
	// to wake the window (e.g. from its VideoFeeds).
	BindInvalidate func(invalidate func())

	// Size is the window's initial size in dp; zero means 960×600.
	Size image.Point
}

// Default and smallest window sizes, in dp.
var (
	DefaultSize = image.Pt(960, 600)
	MinSize     = image.Pt(560, 400)
)

type screen int

const (
	screenStart screen = iota
	screenCall
)

func (s screen) String() string {
	if s == screenCall {
		return "call"
	}
	return "start"
}

// App is the window: the start screen and the call. Its state belongs
// to the goroutine that runs Layout (the frame loop); events from the
// backend come in through post, which any goroutine may call.
type App struct {
	b    Backend
	opts Options
	th   *material.Theme
	ic   *iconSet
	tr   *tracer

	mu        sync.Mutex
	inbox     []Event     // guarded by mu: events not yet applied
	spare     []Event     // frame loop: the inbox's previous backing array
	win       *app.Window // guarded by mu: the window, while Run runs
	stopped   bool        // guarded by mu: Run returned
	pendingOp bool        // frame loop: the start mode is still to be acted on

	screen   screen
	traced   screen // the screen last traced; -1 before the first frame
	size     image.Point
	prefs    prefs
	start    startState
	call     callState
	banner   *Error   // the error the start screen explains, if any
	notices  []notice // dismissable notices, oldest first
	noticeID int
	title    string // the window title set last
	ended    bool   // the last call ended; its late events are ignored
}

// NewApp returns the window's state for b. Call Run with a window, or
// drive Layout yourself (as the tests do).
func NewApp(b Backend, opts Options) *App {
	a := &App{
		b:      b,
		opts:   opts,
		th:     newTheme(),
		ic:     loadIcons(),
		tr:     newTracer(opts.Trace),
		traced: -1,
	}
	a.prefs = loadPrefs(opts.PrefsPath)
	a.start.init(a)
	a.call.init()
	a.pendingOp = opts.Start != StartScreen
	if opts.BindInvalidate != nil {
		opts.BindInvalidate(a.Invalidate)
	}
	return a
}

// Invalidate asks for a new frame. Any goroutine may call it, at any
// time; before Run has a window (and after Run returns) it does nothing.
func (a *App) Invalidate() {
	a.mu.Lock()
	w := a.win
	a.mu.Unlock()
	if w != nil {
		w.Invalidate()
	}
}

// post queues an event from the backend for the frame loop and wakes it.
// A Status replaces a Status still queued, so that a window that draws
// no frames (minimised) does not pile them up.
func (a *App) post(e Event) {
	a.mu.Lock()
	if _, ok := e.(Status); ok && len(a.inbox) > 0 {
		if _, last := a.inbox[len(a.inbox)-1].(Status); last {
			a.inbox = a.inbox[:len(a.inbox)-1]
		}
	}
	a.inbox = append(a.inbox, e)
	w := a.win
	a.mu.Unlock()
	if w != nil {
		w.Invalidate()
	}
}

// Run shows the window and runs its event loop until the window is
// closed; it leaves a call in progress then. It reads Backend.Events on a
// goroutine of its own, which ends before Run returns. The window gets
// the title "Parley", its size (Options.Size) and MinSize.
func (a *App) Run(w *app.Window) error {
	size := a.opts.Size
	if size == (image.Point{}) {
		size = DefaultSize
	}
	w.Option(
		app.Title("Parley"),
		app.Size(unit.Dp(size.X), unit.Dp(size.Y)),
		app.MinSize(unit.Dp(MinSize.X), unit.Dp(MinSize.Y)),
	)
	a.mu.Lock()
	if a.stopped {
		a.mu.Unlock()
		return errors.New("ui: Run called twice")
	}
	a.win = w
	a.mu.Unlock()

	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		a.readEvents(done)
	}()
	defer func() {
		a.mu.Lock()
		a.win, a.stopped = nil, true
		a.mu.Unlock()
		close(done)
		wg.Wait()
	}()

	var ops op.Ops
	for {
		switch e := w.Event().(type) {
		case app.DestroyEvent:
			if a.screen == screenCall || a.start.busy {
				a.b.Leave()
			}
			return e.Err
		case app.FrameEvent:
			gtx := app.NewContext(&ops, e)
			a.Layout(gtx)
			e.Frame(gtx.Ops)
			if t := a.wantTitle(); t != a.title {
				a.title = t
				w.Option(app.Title(t))
			}
		}
	}
}

// readEvents moves the backend's events into the inbox until done is
// closed or the backend closes its channel.
func (a *App) readEvents(done <-chan struct{}) {
	events := a.b.Events()
	for {
		select {
		case e, ok := <-events:
			if !ok {
				return
			}
			a.post(e)
		case <-done:
			return
		}
	}
}

// drain applies the queued events, in order.
func (a *App) drain() {
	a.mu.Lock()
	evs := a.inbox
	a.inbox = a.spare[:0]
	a.mu.Unlock()
	for i, e := range evs {
		a.apply(e)
		evs[i] = nil
		a.traceScreen()
	}
	a.spare = evs[:0]
}

// Layout draws the window: it applies the backend's events that came in
// since the last frame, handles input and lays out the current screen.
func (a *App) Layout(gtx layout.Context) layout.Dimensions {
	a.size = gtx.Constraints.Max
	if a.pendingOp {
		a.pendingOp = false
		a.startMode()
	}
	a.drain()
	fillRect(gtx.Ops, image.Rectangle{Max: a.size}, colBg)
	a.traceScreen()
	switch a.screen {
	case screenCall:
		a.layoutCall(gtx)
	default:
		a.layoutStart(gtx)
	}
	return layout.Dimensions{Size: a.size}
}

// traceScreen traces the screen when it changed.
func (a *App) traceScreen() {
	if a.traced != a.screen {
		a.traced = a.screen
		a.tr.screen(a.screen)
	}
}

// wantTitle is the window title for the current state.
func (a *App) wantTitle() string {
	if a.screen == screenCall && a.call.room != "" {
		return a.call.room + " — Parley"
	}
	return "Parley"
}

// startMode acts on Options.Start when the first frame comes.
func (a *App) startMode() {
	switch a.opts.Start {
	case StartJoin:
		req := a.opts.Join
		if len(req.Media.Video) == 0 && len(req.Media.Audio) == 0 {
			req.Media = a.opts.Media
		}
		a.beginJoin(req)
	case StartHost:
		req := a.opts.Host
		if len(req.Media.Video) == 0 && len(req.Media.Audio) == 0 {
			req.Media = a.opts.Media
		}
		a.beginHost(req)
	}
}

// live reports whether events about a call are for the window: not after
// the call ended (by Leave, Cancel or the backend's Left) until the next
// Join or Host — the backend's last words about an old call are not.
func (a *App) live() bool { return !a.ended }

// apply changes the state by one backend event.
func (a *App) apply(e Event) {
	switch e.(type) {
	case Left:
	case Error:
		if !a.live() {
			a.tr.error(e.(Error))
			return
		}
	default:
		if !a.live() {
			return
		}
	}
	switch e := e.(type) {
	case Joined:
		a.onJoined(e)
	case Hosting:
		a.call.hosting = true
		a.setInvite(e.Invite)
	case Left:
		wasIn := a.screen == screenCall || a.start.busy
		joining := a.screen == screenStart && a.start.busy
		// A join that failed with an error not marked fatal still
		// explains itself on the start screen.
		var why *Error
		for i := len(a.notices) - 1; i >= 0 && joining; i-- {
			if a.notices[i].err.Kind != ErrNoDevice {
				why = &a.notices[i].err
				break
			}
		}
		var banner Error
		switch {
		case !wasIn || a.banner != nil:
		case why != nil:
			banner = *why
		case e.Err != nil:
			banner = Error{Kind: ErrOther, Message: e.Err.Error(), Fatal: true}
		}
		a.endCall()
		if banner != (Error{}) {
			a.showBanner(banner)
		}
	case Status:
		a.call.setStatus(a, e)
	case Error:
		a.onError(e)
	case ParticipantJoined:
		a.call.join(a, e.Participant)
	case ParticipantLeft:
		a.call.leave(e.ID)
	case ParticipantState:
		a.call.setState(e.ID, e.State)
	case Talking:
		if m := a.call.member(e.ID); m != nil {
			m.talking = e.Talking
		}
	case ChatLine:
		a.call.chat.add(a, e)
	}
}

func (a *App) onJoined(e Joined) {
	a.call.room = e.Room
	if e.Invite != "" {
		a.setInvite(e.Invite)
	}
	first := a.screen != screenCall
	a.start.busy = false
	a.banner = nil
	a.screen = screenCall
	if first {
		a.call.focusEditor = true
		a.rememberJoin(e)
	}
}

// onError shows an error: a fatal one ends the call and explains itself
// on the start screen; the others are notices (the call goes on, or the
// join is still under way).
func (a *App) onError(e Error) {
	a.tr.error(e)
	if e.Kind == ErrUnknownServer && a.start.busy {
		a.start.tofuFor = a.start.pendingInvite
	}
	if e.Fatal {
		a.endCall()
		a.showBanner(e)
		return
	}
	a.addNotice(e)
}

// showBanner puts an error on the start screen, and on the field it is
// about.
func (a *App) showBanner(e Error) {
	a.banner = &e
	s := &a.start
	s.busy = false
	switch e.Kind {
	case ErrNameTaken:
		s.nameErr = "Someone in the room has this name — pick another."
		s.focus = &s.name
	case ErrBadInvite:
		s.inviteErr = "Not a Parley invite link."
		s.focus = &s.invite
	case ErrBadPassword:
		s.focus = &s.password
	}
}

// endCall goes back to the start screen and forgets the call.
func (a *App) endCall() {
	a.ended = true
	if a.screen != screenStart {
		a.start.focusFirst = true
	}
	a.screen = screenStart
	a.start.busy = false
	a.call.reset()
	a.notices = a.notices[:0]
}

// beginJoin asks the backend to join and shows the start screen busy.
func (a *App) beginJoin(req JoinRequest) {
	a.ended = false
	a.banner = nil
	a.call.reset()
	a.start.busy = true
	a.start.busyText = "Connecting…"
	a.start.pendingInvite = req.Invite
	a.start.pendingName = req.Name
	a.b.Join(req)
}

// beginHost asks the backend to host a room and shows the start screen
// busy.
func (a *App) beginHost(req HostRequest) {
	a.ended = false
	a.banner = nil
	a.call.reset()
	a.start.busy = true
	a.start.busyText = "Starting the room…"
	a.start.pendingInvite = ""
	a.start.pendingName = req.Name
	a.b.Host(req)
}

// leaveCall ends the call from the window: the start screen comes at
// once, the backend's Left confirms.
func (a *App) leaveCall() {
	a.b.Leave()
	a.endCall()
}

func (a *App) setInvite(s string) {
	if s == a.call.invite {
		return
	}
	a.call.invite = s
	a.call.inviteEd.SetText(s)
	a.tr.invite(s)
}
