package ui

import (
	"image"

	"gioui.org/layout"
	"gioui.org/op"
	"gioui.org/unit"
	"gioui.org/widget"
	"gioui.org/widget/material"

	"github.com/parleychat/parley/protocol"
)

type sideTab int

const (
	tabChat sideTab = iota
	tabPeople
)

// sidePanel is the panel on the right: the chat, or the roster.
type sidePanel struct {
	open                      bool
	tab                       sideTab
	chatTab, peopleTab, close widget.Clickable
	people                    widget.List
	// unread counts the chat lines that came while the chat was hidden.
	unread int
}

const sideHeaderH = 44

func (a *App) layoutSide(gtx layout.Context, origin image.Point) layout.Dimensions {
	sp := &a.call.side
	if sp.chatTab.Clicked(gtx) {
		sp.tab = tabChat
		a.call.focusEditor = true
	}
	if sp.peopleTab.Clicked(gtx) {
		sp.tab = tabPeople
	}
	if sp.close.Clicked(gtx) {
		sp.open = false
	}
	if sp.tab == tabChat {
		sp.unread = 0
	}
	size := gtx.Constraints.Max
	fillRect(gtx.Ops, image.Rectangle{Max: size}, colSurface)
	fillRect(gtx.Ops, image.Rect(0, 0, gtx.Dp(1), size.Y), colBorder)

	// The tabs.
	hh := gtx.Dp(sideHeaderH)
	x := gtx.Dp(12)
	x += a.layoutTab(gtx, &sp.chatTab, "Chat", -1, sp.tab == tabChat, image.Pt(x, 0), hh)
	x += gtx.Dp(4)
	a.layoutTab(gtx, &sp.peopleTab, "People", len(a.call.members), sp.tab == tabPeople, image.Pt(x, 0), hh)
	cs := gtx.Dp(28)
	a.closeButton(gtx, &sp.close, image.Pt(size.X-gtx.Dp(10)-cs, (hh-cs)/2), 28)
	fillRect(gtx.Ops, image.Rect(gtx.Dp(1), hh-gtx.Dp(1), size.X, hh), colBorder)

	body := image.Rect(gtx.Dp(1), hh, size.X, size.Y)
	at(gtx, body, func(gtx layout.Context) layout.Dimensions {
		if sp.tab == tabPeople {
			return a.layoutPeople(gtx)
		}
		return a.layoutChat(gtx, origin.Add(body.Min))
	})
	return layout.Dimensions{Size: size}
}

// layoutTab draws a tab title (and a count, if not negative) at p and
// returns its width.
func (a *App) layoutTab(gtx layout.Context, clk *widget.Clickable, title string, count int, active bool, p image.Point, h int) int {
	defer opOffset(gtx, p).Pop()
	col := colTextDim
	if active {
		col = colText
	}
	lc, ld := measure(gtx, medium(a.line(sizeBody, col, title)).Layout)
	padX := gtx.Dp(10)
	w := ld.Size.X + 2*padX
	var cc op.CallOp
	var cd layout.Dimensions
	cw := 0
	if count >= 0 {
		cc, cd = measure(gtx, medium(a.line(sizeTiny, col, itoa(count))).Layout)
		cw = max(cd.Size.X+gtx.Dp(10), gtx.Dp(20))
		w += cw + gtx.Dp(6)
	}
	clk.Layout(gtx, func(gtx layout.Context) layout.Dimensions {
		r := image.Rect(0, 0, w, h)
		if clk.Hovered() && !active {
			fillRRect(gtx.Ops, image.Rect(0, gtx.Dp(6), w, h-gtx.Dp(6)), gtx.Dp(6), colSurface2)
		}
		place(gtx.Ops, lc, image.Pt(padX, (h-ld.Size.Y)/2))
		if count >= 0 {
			bx := padX + ld.Size.X + gtx.Dp(6)
			bh := gtx.Dp(18)
			br := image.Rect(bx, (h-bh)/2, bx+cw, (h+bh)/2)
			fillRRect(gtx.Ops, br, bh/2, colSurface3)
			place(gtx.Ops, cc, image.Pt(bx+(cw-cd.Size.X)/2, br.Min.Y+(bh-cd.Size.Y)/2))
		}
		if active {
			fillRRect(gtx.Ops, image.Rect(padX/2, h-gtx.Dp(3), w-padX/2, h), gtx.Dp(1), colAccent)
		}
		hoverCursor(gtx.Ops, r)
		return layout.Dimensions{Size: r.Max}
	})
	return w
}

// layoutPeople is the roster: who is in the room, their microphone and
// camera; a click on someone else starts a private message.
func (a *App) layoutPeople(gtx layout.Context) layout.Dimensions {
	c := &a.call
	sp := &c.side
	for _, m := range c.members {
		if m.row.Clicked(gtx) && !m.Self {
			a.prefillPrivate(m.Name)
		}
	}
	sp.people.Axis = layout.Vertical
	ls := material.List(a.th, &sp.people)
	ls.AnchorStrategy = material.Overlay
	ls.Indicator.Color = colSurface4
	// The member itself first.
	n := len(c.members)
	selfIdx := -1
	for i, m := range c.members {
		if m.Self {
			selfIdx = i
		}
	}
	order := func(i int) *member {
		if selfIdx < 0 {
			return c.members[i]
		}
		switch {
		case i == 0:
			return c.members[selfIdx]
		case i <= selfIdx:
			return c.members[i-1]
		}
		return c.members[i]
	}
	size := gtx.Constraints.Max
	hint := a.label(sizeSmall, colTextFaint, "Click someone to send them a private message.")
	hgtx := gtx
	hgtx.Constraints = layout.Constraints{Max: image.Pt(size.X-gtx.Dp(32), size.Y)}
	hc, hd := measure(hgtx, hint.Layout)
	listH := size.Y
	if n > 1 {
		listH -= hd.Size.Y + gtx.Dp(24)
		place(gtx.Ops, hc, image.Pt(gtx.Dp(16), size.Y-hd.Size.Y-gtx.Dp(12)))
	}
	at(gtx, image.Rect(0, 0, size.X, listH), func(gtx layout.Context) layout.Dimensions {
		gtx.Constraints.Min = image.Point{}
		return ls.Layout(gtx, n, func(gtx layout.Context, i int) layout.Dimensions {
			return a.layoutPerson(gtx, order(i), i == 0)
		})
	})
	return layout.Dimensions{Size: size}
}

func (a *App) layoutPerson(gtx layout.Context, m *member, first bool) layout.Dimensions {
	w := gtx.Constraints.Max.X
	h := gtx.Dp(48)
	top := 0
	if first {
		top = gtx.Dp(6)
	}
	defer opOffset(gtx, image.Pt(0, top)).Pop()
	dims := m.row.Layout(gtx, func(gtx layout.Context) layout.Dimensions {
		r := image.Rect(gtx.Dp(6), 0, w-gtx.Dp(6), h)
		if m.row.Hovered() && !m.Self {
			fillRRect(gtx.Ops, r, gtx.Dp(8), colSurface2)
		}
		av := gtx.Dp(30)
		cx := gtx.Dp(16) + av/2
		fillCircle(gtx.Ops, image.Pt(cx, h/2), av/2, avatarColor(m.Name))
		if m.talking && m.has(protocol.StateAudio) {
			strokeRRect(gtx.Ops, image.Rect(cx-av/2-gtx.Dp(3), h/2-av/2-gtx.Dp(3), cx+av/2+gtx.Dp(3), h/2+av/2+gtx.Dp(3)), av/2+gtx.Dp(3), gtx.Dp(2), colTalking)
		}
		ic, id := measure(gtx, medium(a.line(sizeSmall, rgb(0xffffff), m.initials)).Layout)
		place(gtx.Ops, ic, image.Pt(cx-id.Size.X/2, (h-id.Size.Y)/2))

		// Icons on the right: microphone, camera.
		is := unit.Dp(18)
		isz := gtx.Dp(is)
		ix := w - gtx.Dp(18) - isz/2
		camIc, camCol := a.ic.cam, colTextDim
		if !m.has(protocol.StateVideo) {
			camIc, camCol = a.ic.camOff, colTextFaint
		}
		iconAt(gtx, camIc, image.Pt(ix, h/2), is, camCol)
		ix -= isz + gtx.Dp(10)
		micIc, micCol := a.ic.mic, colTextDim
		if !m.has(protocol.StateAudio) {
			micIc, micCol = a.ic.micOff, colDangerHi
		}
		if m.talking && m.has(protocol.StateAudio) {
			micCol = colTalking
		}
		iconAt(gtx, micIc, image.Pt(ix, h/2), is, micCol)
		if m.has(protocol.StateScreen) {
			ix -= isz + gtx.Dp(10)
			iconAt(gtx, a.ic.screen, image.Pt(ix, h/2), is, colAccentHi)
		}

		// The name, and "you".
		nx := cx + av/2 + gtx.Dp(12)
		lgtx := gtx
		lgtx.Constraints = layout.Constraints{Max: image.Pt(max(ix-isz/2-gtx.Dp(10)-nx, 0), h)}
		nc, nd := measure(lgtx, func(gtx layout.Context) layout.Dimensions {
			ch := []layout.FlexChild{layout.Rigid(medium(a.line(sizeBody, colText, m.Name)).Layout)}
			if m.Self {
				ch = append(ch, layout.Rigid(layout.Spacer{Width: 6}.Layout),
					layout.Rigid(a.line(sizeSmall, colTextFaint, "(you)").Layout))
			}
			return layout.Flex{Alignment: layout.Baseline}.Layout(gtx, ch...)
		})
		place(gtx.Ops, nc, image.Pt(nx, (h-nd.Size.Y)/2))
		if !m.Self {
			hoverCursor(gtx.Ops, r)
		}
		return layout.Dimensions{Size: image.Pt(w, h)}
	})
	dims.Size.Y += top
	return dims
}
