package ui

import (
	"image"
	"image/color"
	"io"
	"strings"
	"time"

	"gioui.org/io/clipboard"
	"gioui.org/io/key"
	"gioui.org/layout"
	"gioui.org/op"
	"gioui.org/op/paint"
	"gioui.org/widget"

	"github.com/parleychat/parley/protocol"
)

// Sizes of the call window's regions, in dp.
const (
	topBarH   = 52
	ctlBarH   = 76
	bannerH   = 36
	gridPad   = 12
	panelMinW = 260
	panelMaxW = 360
)

// callLayout is where the call window's regions are, in window pixels.
type callLayout struct {
	top, banner, grid, panel, bar image.Rectangle
}

// regions splits the window.
func (a *App) regions(gtx layout.Context) callLayout {
	var l callLayout
	W, H := a.size.X, a.size.Y
	topH, barH := gtx.Dp(topBarH), gtx.Dp(ctlBarH)
	l.top = image.Rect(0, 0, W, topH)
	y := topH
	if a.call.status.State == Reconnecting && a.call.statusSeen {
		l.banner = image.Rect(0, y, W, y+gtx.Dp(bannerH))
		y = l.banner.Max.Y
	}
	l.bar = image.Rect(0, H-barH, W, H)
	body := image.Rect(0, y, W, l.bar.Min.Y)
	gridR := body
	if a.call.side.open {
		pw := min(max(W*30/100, gtx.Dp(panelMinW)), gtx.Dp(panelMaxW))
		if W-pw < gtx.Dp(300) {
			pw = W // too narrow for both: the panel covers the grid
		}
		l.panel = image.Rect(W-pw, y, W, body.Max.Y)
		gridR.Max.X = l.panel.Min.X
	}
	l.grid = gridR.Inset(gtx.Dp(gridPad))
	if l.grid.Dx() <= 0 || l.grid.Dy() <= 0 {
		l.grid = image.Rectangle{}
	}
	return l
}

// Keyboard shortcuts of the call window. They work wherever the focus is
// (the chat editor included): the filters have no Focus.
var shortcutFilters = []key.Filter{
	{Name: "D", Required: key.ModShortcut},
	{Name: "E", Required: key.ModShortcut, Optional: key.ModShift},
	{Name: "Q", Required: key.ModShortcut | key.ModShift},
	{Name: key.NameEscape},
}

func (a *App) handleShortcuts(gtx layout.Context) {
	for {
		ev, ok := gtx.Event(shortcutFilters[0], shortcutFilters[1], shortcutFilters[2], shortcutFilters[3])
		if !ok {
			break
		}
		ke, ok := ev.(key.Event)
		if !ok || ke.State != key.Press {
			continue
		}
		shift := ke.Modifiers.Contain(key.ModShift)
		switch {
		case ke.Name == "D":
			a.toggleMic()
		case ke.Name == "E" && shift:
			a.toggleScreen()
		case ke.Name == "E":
			a.toggleCamera()
		case ke.Name == "Q":
			a.leaveCall()
			return
		case ke.Name == key.NameEscape:
			a.call.ctl.menu = menuNone
		}
	}
}

func (a *App) toggleMic() {
	c := &a.call
	c.micMuted = !c.micMuted
	c.setSelfBit(protocol.StateAudio, !c.micMuted)
	a.b.SetMicMuted(c.micMuted)
}

func (a *App) toggleCamera() {
	c := &a.call
	c.camOff = !c.camOff
	c.setSelfBit(protocol.StateVideo, !c.camOff)
	a.b.SetCamera(!c.camOff)
}

func (a *App) toggleScreen() {
	c := &a.call
	c.sharing = !c.sharing
	c.setSelfBit(protocol.StateScreen, c.sharing)
	a.b.ShareScreen(c.sharing)
}

// layoutCall draws the call window.
func (a *App) layoutCall(gtx layout.Context) {
	a.handleShortcuts(gtx)
	if a.screen != screenCall {
		return // left by a shortcut
	}
	a.handleControls(gtx)
	if a.screen != screenCall {
		return
	}
	l := a.regions(gtx)

	if !l.grid.Empty() && l.panel.Dx() < a.size.X {
		grid := l.grid
		if len(a.call.members) <= 1 && a.call.invite != "" {
			// Alone: a card under the tile says how to invite.
			if call, d, ok := a.layoutAlone(gtx, l.grid); ok {
				grid.Max.Y -= d.Size.Y + gtx.Dp(12)
				place(gtx.Ops, call, image.Pt(l.grid.Min.X+(l.grid.Dx()-d.Size.X)/2, l.grid.Max.Y-d.Size.Y))
			}
		}
		a.layoutGrid(gtx, grid)
		a.layoutMutedHint(gtx, grid)
	} else {
		a.call.tiles.trace = a.call.tiles.trace[:0]
		if !equalTiles(a.call.tiles.trace, a.call.tiles.last) {
			a.tr.tiles(nil)
			a.call.tiles.last = a.call.tiles.last[:0]
		}
	}
	if !l.panel.Empty() {
		at(gtx, l.panel, func(gtx layout.Context) layout.Dimensions {
			return a.layoutSide(gtx, l.panel.Min)
		})
	}
	at(gtx, l.top, a.layoutTopBar)
	if !l.banner.Empty() {
		at(gtx, l.banner, a.layoutReconnecting)
	}
	at(gtx, l.bar, func(gtx layout.Context) layout.Dimensions {
		return a.layoutControls(gtx, l.bar.Min)
	})
	if len(a.notices) > 0 {
		area := l.grid
		if area.Empty() {
			area = l.panel
		}
		w := min(area.Dx(), gtx.Dp(560))
		st := opOffset(gtx, image.Pt(area.Min.X+(area.Dx()-w)/2, area.Min.Y))
		a.layoutNotices(gtx, w)
		st.Pop()
	}
	a.layoutMenu(gtx, l)
}

// layoutMutedHint tells a member who talks with the microphone muted that
// nobody hears them, over the bottom of the grid.
func (a *App) layoutMutedHint(gtx layout.Context, grid image.Rectangle) {
	self := a.call.self()
	if self == nil || !self.talking || !a.call.micMuted {
		return
	}
	lbl := medium(a.line(sizeSmall, rgb(0xffffff), "You are muted. Press "+shortcutMod+"+D to talk."))
	call, d := measure(gtx, lbl.Layout)
	padX, padY := gtx.Dp(14), gtx.Dp(8)
	box := image.Rectangle{Max: d.Size.Add(image.Pt(2*padX, 2*padY))}
	box = box.Add(image.Pt(grid.Min.X+(grid.Dx()-box.Dx())/2, grid.Max.Y-box.Dy()-gtx.Dp(16)))
	fillRRect(gtx.Ops, box, box.Dy()/2, colDanger)
	place(gtx.Ops, call, box.Min.Add(image.Pt(padX, padY)))
}

// layoutTopBar: the room's name and the invite link with Copy.
func (a *App) layoutTopBar(gtx layout.Context) layout.Dimensions {
	c := &a.call
	size := gtx.Constraints.Max
	fillRect(gtx.Ops, image.Rectangle{Max: size}, colSurface)
	fillRect(gtx.Ops, image.Rect(0, size.Y-gtx.Dp(1), size.X, size.Y), colBorder)
	pad := gtx.Dp(16)

	// Right: the invite.
	right := size.X - pad
	if c.invite != "" {
		if c.copyBtn.Clicked(gtx) {
			a.copyInvite(gtx)
		}
		copied := gtx.Now.Before(c.copiedUntil)
		txt, ic := "Copy", a.ic.copy
		bg := colAccent
		if copied {
			txt, ic, bg = "Copied", a.ic.check, rgb(0x2f8f5f)
		}
		bgtx := gtx
		bgtx.Constraints.Min = image.Point{}
		bcall, bd := measure(bgtx, func(gtx layout.Context) layout.Dimensions {
			return a.layoutButton(gtx, button{clk: &c.copyBtn, icon: ic, text: txt, bg: bg, fg: rgb(0xffffff),
				hover: colAccentHi, height: 32, padX: 12, minW: 92, size: sizeSmall})
		})
		bx := right - bd.Size.X
		bp := image.Pt(bx, (size.Y-bd.Size.Y)/2)
		place(gtx.Ops, bcall, bp)
		c.copyRect = image.Rectangle{Min: bp, Max: bp.Add(bd.Size)}
		if c.copyBtn.Hovered() && !copied {
			st := opOffset(gtx, bp)
			a.tooltip(gtx, bd.Size, bp, "Copy the invite link to the clipboard", true)
			st.Pop()
		}
		// The link, selectable, in a read-only field.
		fw := min(gtx.Dp(380), bx-gtx.Dp(8)-size.X*45/100)
		if fw >= gtx.Dp(120) {
			fx := bx - gtx.Dp(8) - fw
			fh := gtx.Dp(32)
			fr := image.Rect(fx, (size.Y-fh)/2, fx+fw, (size.Y+fh)/2)
			fillRRect(gtx.Ops, fr, gtx.Dp(8), colSurface2)
			strokeRRect(gtx.Ops, fr, gtx.Dp(8), gtx.Dp(1), colBorder)
			iconAt(gtx, a.ic.link, image.Pt(fr.Min.X+gtx.Dp(16), fr.Min.Y+fh/2), 16, colTextFaint)
			egtx := gtx
			tx := fr.Min.X + gtx.Dp(30)
			egtx.Constraints = layout.Exact(image.Pt(fr.Max.X-gtx.Dp(10)-tx, gtx.Dp(18)))
			st := opOffset(gtx, image.Pt(tx, fr.Min.Y+(fh-gtx.Dp(18))/2))
			c.inviteEd.Layout(egtx, a.th.Shaper, fontMono, sizeSmall, a.colorOp(gtx, colTextDim), a.colorOp(gtx, withAlpha(colAccent, 0x70)))
			st.Pop()
			lbl := "Invite"
			if c.hosting {
				lbl = "You’re hosting · invite"
			}
			lc, ld := measure(gtx, a.line(sizeSmall, colTextDim, lbl).Layout)
			lx := fr.Min.X - gtx.Dp(10) - ld.Size.X
			if lx > size.X*30/100 {
				place(gtx.Ops, lc, image.Pt(lx, (size.Y-ld.Size.Y)/2))
			}
			right = lx
		} else {
			right = bx
		}
	}

	// Left: the room's name and how many are in it.
	n := len(c.members)
	who := itoa(n) + " in the room"
	if n == 1 {
		who = "only you so far"
	}
	room := c.room
	if room == "" {
		room = "Call"
	}
	lgtx := gtx
	lgtx.Constraints = layout.Constraints{Max: image.Pt(max(right-pad-gtx.Dp(8), 0), size.Y)}
	call, d := measure(lgtx, func(gtx layout.Context) layout.Dimensions {
		return layout.Flex{Alignment: layout.Baseline}.Layout(gtx,
			layout.Rigid(bold(a.line(sizeHeading, colText, room)).Layout),
			layout.Rigid(layout.Spacer{Width: 10}.Layout),
			layout.Rigid(a.line(sizeSmall, colTextDim, who).Layout),
		)
	})
	place(gtx.Ops, call, image.Pt(pad, (size.Y-d.Size.Y)/2))
	return layout.Dimensions{Size: size}
}

// copyInvite puts the invite link on the clipboard and shows "Copied"
// for two seconds.
func (a *App) copyInvite(gtx layout.Context) {
	c := &a.call
	gtx.Execute(clipboard.WriteCmd{Type: "application/text", Data: io.NopCloser(strings.NewReader(c.invite))})
	c.copiedUntil = gtx.Now.Add(2 * time.Second)
	gtx.Execute(op.InvalidateCmd{At: c.copiedUntil})
}

// layoutAlone records the card that says how to invite others, shown
// under the grid while the member is alone in the room; ok is false when
// there is no room for it.
func (a *App) layoutAlone(gtx layout.Context, area image.Rectangle) (op.CallOp, layout.Dimensions, bool) {
	c := &a.call
	if c.copyBtn2.Clicked(gtx) {
		a.copyInvite(gtx)
	}
	w := min(area.Dx(), gtx.Dp(480))
	if w < gtx.Dp(260) || area.Dy() < gtx.Dp(220) {
		return op.CallOp{}, layout.Dimensions{}, false
	}
	m := op.Record(gtx.Ops)
	pad := gtx.Dp(14)
	copied := gtx.Now.Before(c.copiedUntil)
	txt, ic, bg := "Copy invite link", a.ic.copy, colAccent
	if copied {
		txt, ic, bg = "Copied", a.ic.check, rgb(0x2f8f5f)
	}
	bc, bd := measure(gtx, func(gtx layout.Context) layout.Dimensions {
		return a.layoutButton(gtx, button{clk: &c.copyBtn2, icon: ic, text: txt, bg: bg, fg: rgb(0xffffff),
			hover: colAccentHi, height: 34, padX: 14, size: sizeSmall, minW: 150})
	})
	tgtx := gtx
	tgtx.Constraints = layout.Constraints{Max: image.Pt(w-3*pad-bd.Size.X, gtx.Dp(200))}
	tc, td := measure(tgtx, func(gtx layout.Context) layout.Dimensions {
		return layout.Flex{Axis: layout.Vertical}.Layout(gtx,
			layout.Rigid(bold(a.label(sizeBody, colText, "You’re the only one here")).Layout),
			layout.Rigid(layout.Spacer{Height: 2}.Layout),
			layout.Rigid(a.label(sizeSmall, colTextDim, "Send the invite link to the people you want in the call.").Layout),
		)
	})
	h := max(td.Size.Y, bd.Size.Y) + 2*pad
	r := image.Rect(0, 0, w, h)
	fillRRect(gtx.Ops, r, gtx.Dp(12), colSurface)
	strokeRRect(gtx.Ops, r, gtx.Dp(12), gtx.Dp(1), colBorder)
	place(gtx.Ops, tc, image.Pt(pad+gtx.Dp(4), (h-td.Size.Y)/2))
	place(gtx.Ops, bc, image.Pt(w-pad-bd.Size.X, (h-bd.Size.Y)/2))
	return m.Stop(), layout.Dimensions{Size: r.Max}, true
}

// colorOp records a colour, as text widgets take it.
func (a *App) colorOp(gtx layout.Context, c color.NRGBA) op.CallOp {
	m := op.Record(gtx.Ops)
	paint.ColorOp{Color: c}.Add(gtx.Ops)
	return m.Stop()
}

// layoutReconnecting is the yellow banner while the connection is lost.
func (a *App) layoutReconnecting(gtx layout.Context) layout.Dimensions {
	size := gtx.Constraints.Max
	fillRect(gtx.Ops, image.Rectangle{Max: size}, colWarn)
	rest := "Messages you write now are sent when you’re back."
	if d := a.call.status.Detail; d != "" {
		rest = "(" + d + ") " + rest
	}
	pad := gtx.Dp(16)
	iconAt(gtx, a.ic.warning, image.Pt(pad+gtx.Dp(10), size.Y/2), 20, colWarnText)
	x := pad + gtx.Dp(30)
	lgtx := gtx
	lgtx.Constraints = layout.Constraints{Max: image.Pt(max(size.X-x-pad, 0), size.Y)}
	call, d := measure(lgtx, bold(a.line(sizeBody, colWarnText, "Connection lost — reconnecting…")).Layout)
	place(gtx.Ops, call, image.Pt(x, (size.Y-d.Size.Y)/2))
	x += d.Size.X + gtx.Dp(10)
	if w := size.X - x - pad; w > gtx.Dp(60) {
		lgtx.Constraints.Max.X = w
		call, d := measure(lgtx, a.line(sizeBody, colWarnText, rest).Layout)
		place(gtx.Ops, call, image.Pt(x, (size.Y-d.Size.Y)/2))
	}
	return layout.Dimensions{Size: size}
}

// statusText describes the connection for the controls bar: the state,
// then the numbers.
func statusText(s Status) (state, numbers string) {
	switch s.State {
	case Connecting:
		state = "Connecting…"
	case Connected:
		state = "Connected"
	case Reconnecting:
		state = "Reconnecting…"
	default:
		state = "Disconnected"
	}
	if s.State == Connected {
		var b strings.Builder
		if s.RTT > 0 {
			b.WriteString(itoa(int((s.RTT + time.Millisecond/2) / time.Millisecond)))
			b.WriteString(" ms · ")
		}
		b.WriteString("↑ ")
		b.WriteString(formatBitrate(s.SendBps))
		b.WriteString("  ↓ ")
		b.WriteString(formatBitrate(s.RecvBps))
		numbers = b.String()
	}
	if s.Detail != "" && s.State != Connected {
		if numbers != "" {
			numbers = s.Detail + " · " + numbers
		} else {
			numbers = s.Detail
		}
	}
	return state, numbers
}

// formatBitrate writes bits per second as kbit/s or Mbit/s.
func formatBitrate(bps int) string {
	switch {
	case bps < 0:
		bps = 0
	case bps >= 10_000_000:
		return itoa((bps+500_000)/1_000_000) + " Mbit/s"
	case bps >= 1_000_000:
		t := (bps + 50_000) / 100_000 // tenths of Mbit/s
		return itoa(t/10) + "." + itoa(t%10) + " Mbit/s"
	}
	return itoa((bps+500)/1000) + " kbit/s"
}

// notice is a dismissable message in the call window.
type notice struct {
	id    int
	err   Error
	close widget.Clickable
}

const maxNotices = 3

func (a *App) addNotice(e Error) {
	for _, n := range a.notices {
		if n.err == e {
			return // once is enough
		}
	}
	a.noticeID++
	if len(a.notices) >= maxNotices {
		copy(a.notices, a.notices[1:])
		a.notices = a.notices[:len(a.notices)-1]
	}
	a.notices = append(a.notices, notice{id: a.noticeID, err: e})
}

// layoutNotices draws the notices stacked, w wide, and handles their
// close buttons.
func (a *App) layoutNotices(gtx layout.Context, w int) layout.Dimensions {
	for i := 0; i < len(a.notices); i++ {
		if a.notices[i].close.Clicked(gtx) {
			a.notices = append(a.notices[:i], a.notices[i+1:]...)
			i--
		}
	}
	y := gtx.Dp(8)
	for i := range a.notices {
		n := &a.notices[i]
		pad := gtx.Dp(12)
		tx := pad + gtx.Dp(28)
		closeSz := gtx.Dp(26)
		lgtx := gtx
		lgtx.Constraints = layout.Constraints{Max: image.Pt(max(w-tx-closeSz-2*pad, 0), gtx.Dp(200))}
		msg := n.err.Message
		if msg == "" {
			msg = errorTitle(n.err.Kind)
		}
		call, d := measure(lgtx, a.label(sizeBody, colText, msg).Layout)
		h := max(d.Size.Y+2*gtx.Dp(10), gtx.Dp(40))
		r := image.Rect(0, y, w, y+h)
		fillRRect(gtx.Ops, r, gtx.Dp(8), colNoticeBg)
		strokeRRect(gtx.Ops, r, gtx.Dp(8), gtx.Dp(1), withAlpha(colWarn, 0x90))
		iconAt(gtx, a.ic.warning, image.Pt(pad+gtx.Dp(10), y+h/2), 20, colWarn)
		place(gtx.Ops, call, image.Pt(tx, y+(h-d.Size.Y)/2))
		a.closeButton(gtx, &n.close, image.Pt(w-pad/2-closeSz, y+(h-closeSz)/2), 26)
		y += h + gtx.Dp(8)
	}
	return layout.Dimensions{Size: image.Pt(w, y)}
}
