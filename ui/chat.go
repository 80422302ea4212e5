package ui

import (
	"image"
	"image/color"
	"strings"
	"time"

	"gioui.org/font"
	"gioui.org/io/key"
	"gioui.org/layout"
	"gioui.org/op"
	"gioui.org/text"
	"gioui.org/widget"
	"gioui.org/widget/material"
)

// chatItem is one line of the chat panel.
type chatItem struct {
	ChatLine
	header bool // starts a group: shows the name and time
	sel    widget.Selectable
}

// chatState is the chat panel: the history, the list that shows it and
// the editor.
type chatState struct {
	items  []*chatItem
	list   widget.List
	editor widget.Editor
	send   widget.Clickable
	jump   widget.Clickable
	// unseen counts the lines that came while the list was scrolled up.
	unseen int
	// jumpRect is where the "new messages" button was last drawn, in
	// window pixels (empty when hidden); for tests.
	jumpRect image.Rectangle
	// listRect is where the list was last drawn, in window pixels.
	listRect image.Rectangle
	// focused is whether the editor had focus in the last frame.
	focused bool
}

func (c *chatState) init() {
	c.list.Axis = layout.Vertical
	c.list.ScrollToEnd = true
	c.editor.Submit = true
}

func (c *chatState) reset() {
	for i := range c.items {
		c.items[i] = nil
	}
	c.items = c.items[:0]
	c.list.Position = layout.Position{}
	c.editor.SetText("")
	c.unseen = 0
}

// maxChatLines is how many lines the panel keeps; beyond, the oldest
// chatDrop go.
const (
	maxChatLines = 5000
	chatDrop     = 1000
)

// groupGap is how far apart two messages of one sender may be and still
// share a header.
const groupGap = 5 * time.Minute

// add appends a line from the backend (or the window's own error lines).
func (c *chatState) add(a *App, l ChatLine) {
	it := &chatItem{ChatLine: l, header: true}
	if n := len(c.items); n > 0 {
		p := c.items[n-1]
		if l.Kind == LineText && p.Kind == LineText && p.From == l.From && l.Time.Sub(p.Time) < groupGap {
			it.header = false
		}
	}
	if len(c.items) >= maxChatLines {
		n := copy(c.items, c.items[chatDrop:])
		clear(c.items[n:])
		c.items = c.items[:n]
		c.items[0].header = true
		c.list.Position.First = max(c.list.Position.First-chatDrop, 0)
	}
	c.items = append(c.items, it)
	if c.list.Position.BeforeEnd {
		c.unseen++
	}
	if sp := &a.call.side; !sp.open || sp.tab != tabChat {
		sp.unread++
	}
	a.tr.chat(l)
}

// localError shows a line only this member sees.
func (c *chatState) localError(a *App, now time.Time, text string) {
	c.add(a, ChatLine{Kind: LineError, Time: now, Text: text})
}

// submit sends what the editor holds: a room message, "/msg NAME TEXT"
// a private one, "//TEXT" a message that begins with "/".
func (a *App) submitChat(now time.Time, text string) {
	c := &a.call.chat
	text = strings.TrimSpace(text)
	if text == "" {
		return
	}
	switch {
	case strings.HasPrefix(text, "//"):
		a.b.Send(text[1:])
	case text == "/msg" || strings.HasPrefix(text, "/msg ") || strings.HasPrefix(text, "/msg\n"):
		rest := strings.TrimSpace(text[len("/msg"):])
		name, msg, _ := strings.Cut(rest, " ")
		if i := strings.IndexAny(name, "\n\t"); i >= 0 {
			name, msg = name[:i], name[i+1:]+" "+msg
		}
		msg = strings.TrimSpace(msg)
		if name == "" || msg == "" {
			c.localError(a, now, "To send a private message: /msg NAME TEXT")
			return
		}
		a.b.SendPrivate(name, msg)
	case strings.HasPrefix(text, "/"):
		cmd, _, _ := strings.Cut(text, " ")
		c.localError(a, now, "Unknown command "+cmd+" — /msg NAME TEXT sends a private message; start with // to send a line that begins with /")
		return
	default:
		a.b.Send(text)
	}
	c.editor.SetText("")
	// Sending means reading the newest lines.
	c.list.Position.BeforeEnd = false
	c.unseen = 0
}

// prefillPrivate puts "/msg NAME " in the editor and focuses it.
func (a *App) prefillPrivate(name string) {
	c := &a.call.chat
	s := "/msg " + name + " "
	c.editor.SetText(s)
	n := len([]rune(s))
	c.editor.SetCaret(n, n)
	a.call.side.tab = tabChat
	a.call.side.open = true
	a.call.focusEditor = true
}

// layoutChat draws the chat panel in gtx's constraints; origin is where
// it is in the window.
func (a *App) layoutChat(gtx layout.Context, origin image.Point) layout.Dimensions {
	c := &a.call.chat
	size := gtx.Constraints.Max

	// Input first: the editor's events, the send button.
	for {
		ev, ok := c.editor.Update(gtx)
		if !ok {
			break
		}
		if s, ok := ev.(widget.SubmitEvent); ok {
			a.submitChat(gtx.Now, s.Text)
		}
	}
	if c.send.Clicked(gtx) {
		a.submitChat(gtx.Now, c.editor.Text())
		gtx.Execute(key.FocusCmd{Tag: &c.editor})
	}
	if c.jump.Clicked(gtx) {
		c.list.Position.BeforeEnd = false
		c.unseen = 0
	}

	// The editor box at the bottom, as tall as its text (up to 5 lines).
	pad := gtx.Dp(12)
	egtx := gtx
	egtx.Constraints.Min = image.Point{}
	egtx.Constraints.Max.X = size.X - 2*pad
	egtx.Constraints.Max.Y = gtx.Dp(140)
	edTop := size.Y - pad
	ecall, ed := measure(egtx, func(gtx layout.Context) layout.Dimensions {
		return a.layoutComposer(gtx, origin.Add(image.Pt(pad, 0)), size.Y-pad)
	})
	edTop -= ed.Size.Y
	place(gtx.Ops, ecall, image.Pt(pad, edTop))

	// The history above it.
	lr := image.Rect(0, 0, size.X, edTop-gtx.Dp(8))
	c.listRect = lr.Add(origin)
	if lr.Dy() > 0 {
		at(gtx, lr, func(gtx layout.Context) layout.Dimensions {
			if len(c.items) == 0 {
				return a.layoutChatEmpty(gtx)
			}
			ls := material.List(a.th, &c.list)
			ls.AnchorStrategy = material.Overlay
			ls.Indicator.Color = colSurface4
			ls.Indicator.HoverColor = colTextFaint
			ls.Indicator.MinorWidth = 6
			ls.Indicator.CornerRadius = 3
			return ls.Layout(gtx, len(c.items), func(gtx layout.Context, i int) layout.Dimensions {
				return a.layoutChatItem(gtx, i)
			})
		})
		if !c.list.Position.BeforeEnd {
			c.unseen = 0
		}
	}

	// The "new messages" button over the list's bottom.
	c.jumpRect = image.Rectangle{}
	if c.list.Position.BeforeEnd && c.unseen > 0 && lr.Dy() > gtx.Dp(60) {
		txt := "New messages"
		if c.unseen == 1 {
			txt = "1 new message"
		} else if c.unseen < 100 {
			txt = itoa(c.unseen) + " new messages"
		}
		bgtx := gtx
		bgtx.Constraints.Min = image.Point{}
		call, d := measure(bgtx, func(gtx layout.Context) layout.Dimensions {
			return a.layoutButton(gtx, button{clk: &c.jump, icon: a.ic.arrowDown, text: txt,
				bg: colAccent, fg: rgb(0xffffff), hover: colAccentHi, height: 30, padX: 12, radius: 15, size: sizeSmall})
		})
		p := image.Pt((size.X-d.Size.X)/2, lr.Max.Y-d.Size.Y-gtx.Dp(10))
		place(gtx.Ops, call, p)
		c.jumpRect = image.Rectangle{Min: p, Max: p.Add(d.Size)}.Add(origin)
	}

	// Focus: when the call window opens (or a roster name was clicked).
	if a.call.focusEditor {
		a.call.focusEditor = false
		gtx.Execute(key.FocusCmd{Tag: &c.editor})
	}
	if f := gtx.Focused(&c.editor); f != c.focused {
		c.focused = f
		if f {
			a.tr.focus("chat-editor")
		}
	}
	return layout.Dimensions{Size: size}
}

// layoutComposer is the message editor with its send button; origin is
// where it is in the window, but for its y, which is bottom minus its
// height.
func (a *App) layoutComposer(gtx layout.Context, origin image.Point, bottom int) layout.Dimensions {
	c := &a.call.chat
	w := gtx.Constraints.Max.X
	btn := gtx.Dp(36)
	padL, padY := gtx.Dp(12), gtx.Dp(10)
	egtx := gtx
	egtx.Constraints.Min = image.Pt(w-padL-btn-gtx.Dp(6), 0)
	egtx.Constraints.Max.X = egtx.Constraints.Min.X
	egtx.Constraints.Max.Y = gtx.Constraints.Max.Y - 2*padY
	es := material.Editor(a.th, &c.editor, "Message everyone")
	es.Color = colText
	es.HintColor = colTextFaint
	es.TextSize = sizeBody
	es.SelectionColor = withAlpha(colAccent, 0x70)
	ecall, ed := record(egtx, es.Layout)
	h := max(ed.Size.Y+2*padY, gtx.Dp(42))
	r := image.Rect(0, 0, w, h)
	rad := gtx.Dp(10)
	fillRRect(gtx.Ops, r, rad, colSurface2)
	border := colBorder
	if gtx.Focused(&c.editor) {
		border = withAlpha(colAccent, 0xc0)
	}
	strokeRRect(gtx.Ops, r, rad, gtx.Dp(1), border)
	place(gtx.Ops, ecall, image.Pt(padL, (h-ed.Size.Y)/2))
	// Send button, bottom right.
	bp := image.Pt(w-btn-gtx.Dp(3), h-btn-gtx.Dp(3))
	abs := origin.Add(bp).Add(image.Pt(0, bottom-h))
	st := op.Offset(bp).Push(gtx.Ops)
	empty := strings.TrimSpace(c.editor.Text()) == ""
	c.send.Layout(gtx, func(gtx layout.Context) layout.Dimensions {
		fg := colAccent
		if empty {
			fg = colTextFaint
		}
		if c.send.Hovered() && !empty {
			fillRRect(gtx.Ops, image.Rect(0, 0, btn, btn), gtx.Dp(8), colSurface3)
		}
		iconAt(gtx, a.ic.send, image.Pt(btn/2, btn/2), 20, fg)
		hoverCursor(gtx.Ops, image.Rect(0, 0, btn, btn))
		if c.send.Hovered() {
			a.tooltip(gtx, image.Pt(btn, btn), abs, "Send (Enter) · new line: Shift+Enter", false)
		}
		return layout.Dimensions{Size: image.Pt(btn, btn)}
	})
	st.Pop()
	return layout.Dimensions{Size: r.Max}
}

func (a *App) layoutChatEmpty(gtx layout.Context) layout.Dimensions {
	size := gtx.Constraints.Max
	l := a.label(sizeSmall, colTextFaint, "No messages yet. Say hello — everyone in the room sees it.\n\n/msg NAME TEXT sends a private message.")
	l.Alignment = text.Middle
	gtx.Constraints.Min = image.Point{}
	gtx.Constraints.Max.X = size.X - gtx.Dp(48)
	call, d := measure(gtx, l.Layout)
	place(gtx.Ops, call, image.Pt((size.X-d.Size.X)/2, (size.Y-d.Size.Y)/2))
	return layout.Dimensions{Size: size}
}

// layoutChatItem draws one line of the history.
func (a *App) layoutChatItem(gtx layout.Context, i int) layout.Dimensions {
	it := a.call.chat.items[i]
	w := gtx.Constraints.Max.X
	padX := gtx.Dp(14)
	top := gtx.Dp(2)
	if it.header {
		top = gtx.Dp(10)
	}
	if i == 0 {
		top = gtx.Dp(8)
	}
	inner := w - 2*padX
	gtx.Constraints.Min = image.Point{}
	gtx.Constraints.Max.X = inner
	y := top
	hhmm := it.Time.Format("15:04")
	switch it.Kind {
	case LineSystem, LineError:
		col := colTextFaint
		if it.Kind == LineError {
			col = colErrorText
		}
		tcall, td := measure(gtx, a.line(sizeTiny, colTextFaint, hhmm).Layout)
		gap := gtx.Dp(8)
		lgtx := gtx
		lgtx.Constraints.Max.X = max(inner-td.Size.X-gap, 0)
		l := a.label(sizeSmall, col, it.Text)
		if it.Kind == LineSystem {
			l.Font.Style = font.Italic
		}
		l.State = &it.sel
		call, d := measure(lgtx, l.Layout)
		base := (d.Size.Y - td.Size.Y) / 2
		if d.Size.Y > gtx.Dp(20) {
			base = gtx.Dp(1)
		}
		place(gtx.Ops, tcall, image.Pt(padX, y+base))
		place(gtx.Ops, call, image.Pt(padX+td.Size.X+gap, y))
		y += d.Size.Y
	default:
		if it.header || it.Kind == LinePrivate {
			y = a.layoutChatHeader(gtx, it, padX, y, hhmm)
		}
		col := colText
		l := a.label(sizeBody, col, it.Text)
		l.State = &it.sel
		call, d := measure(gtx, l.Layout)
		x := padX
		if it.Kind == LinePrivate {
			// A violet bar marks private lines.
			fillRect(gtx.Ops, image.Rect(padX-gtx.Dp(8), y-gtx.Dp(1), padX-gtx.Dp(5), y+d.Size.Y+gtx.Dp(1)), colPrivate)
		}
		place(gtx.Ops, call, image.Pt(x, y))
		y += d.Size.Y
	}
	return layout.Dimensions{Size: image.Pt(w, y+gtx.Dp(2))}
}

// layoutChatHeader draws "name  HH:MM" (or "alice → you (private)") and
// returns the y below it.
func (a *App) layoutChatHeader(gtx layout.Context, it *chatItem, x, y int, hhmm string) int {
	var who string
	col := avatarColor(it.From)
	switch {
	case it.Kind == LinePrivate && it.Mine:
		who = "You → " + it.To + " (private)"
		col = colPrivate
	case it.Kind == LinePrivate:
		who = it.From + " → you (private)"
		col = colPrivate
	case it.Mine:
		who = it.From + " (you)"
	default:
		who = it.From
	}
	if it.Kind != LinePrivate {
		col = nameColor(col)
	}
	gap := gtx.Dp(8)
	tcall, td := measure(gtx, a.line(sizeTiny, colTextFaint, hhmm).Layout)
	ngtx := gtx
	ngtx.Constraints.Max.X = max(gtx.Constraints.Max.X-td.Size.X-gap, 0)
	ncall, nd := measure(ngtx, bold(a.line(sizeSmall, col, who)).Layout)
	place(gtx.Ops, ncall, image.Pt(x, y))
	place(gtx.Ops, tcall, image.Pt(x+nd.Size.X+gap, y+(nd.Size.Y-td.Size.Y)/2+gtx.Dp(1)))
	return y + nd.Size.Y + gtx.Dp(2)
}

// nameColor lightens an avatar colour enough to read as text on the
// dark panel.
func nameColor(c color.NRGBA) color.NRGBA {
	mix := func(v uint8) uint8 { return uint8(int(v) + (255-int(v))*40/100) }
	return color.NRGBA{R: mix(c.R), G: mix(c.G), B: mix(c.B), A: 0xff}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	neg := n < 0
	if neg {
		n = -n
	}
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}
