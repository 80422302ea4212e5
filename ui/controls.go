package ui

import (
	"image"
	"image/color"

	"gioui.org/layout"
	"gioui.org/op/clip"
	"gioui.org/op/paint"
	"gioui.org/unit"
	"gioui.org/widget"
)

type menuKind int

const (
	menuNone  menuKind = iota
	menuAudio          // microphones and speakers
	menuCamera
)

// menuRow is one row of a device menu: a heading, or a device to pick.
type menuRow struct {
	heading string
	kind    DeviceKind
	dev     Device
	empty   bool // a "none found" line
}

// controls is the bar at the bottom of the call window.
type controls struct {
	mic, micMenu, cam, camMenu, screen, leave, people, chat widget.Clickable

	menu    menuKind
	devices Devices // as Backend.Devices said when the menu opened
	rows    []menuRow
	items   []widget.Clickable // one per row
	scrim   widget.Clickable
	anchor  image.Rectangle // the button that opened the menu, in window pixels

	// Where the buttons were drawn, in window pixels; for tests.
	rects map[*widget.Clickable]image.Rectangle
}

func (a *App) handleControls(gtx layout.Context) {
	c := &a.call
	k := &c.ctl
	if k.mic.Clicked(gtx) {
		a.toggleMic()
	}
	if k.cam.Clicked(gtx) {
		a.toggleCamera()
	}
	if k.screen.Clicked(gtx) {
		a.toggleScreen()
	}
	if k.leave.Clicked(gtx) {
		a.leaveCall()
		return
	}
	if k.micMenu.Clicked(gtx) {
		a.openMenu(menuAudio, k.rects[&k.micMenu])
	}
	if k.camMenu.Clicked(gtx) {
		a.openMenu(menuCamera, k.rects[&k.camMenu])
	}
	if k.chat.Clicked(gtx) {
		if c.side.open && c.side.tab == tabChat {
			c.side.open = false
		} else {
			c.side.open, c.side.tab = true, tabChat
			c.focusEditor = true
		}
	}
	if k.people.Clicked(gtx) {
		if c.side.open && c.side.tab == tabPeople {
			c.side.open = false
		} else {
			c.side.open, c.side.tab = true, tabPeople
		}
	}
}

// openMenu asks the backend for its devices and opens a picker.
func (a *App) openMenu(m menuKind, anchor image.Rectangle) {
	k := &a.call.ctl
	if k.menu == m {
		k.menu = menuNone
		return
	}
	k.menu = m
	k.anchor = anchor
	k.devices = a.b.Devices()
	k.rows = k.rows[:0]
	add := func(heading string, kind DeviceKind, devs []Device, none string) {
		k.rows = append(k.rows, menuRow{heading: heading})
		if len(devs) == 0 {
			k.rows = append(k.rows, menuRow{kind: kind, empty: true, dev: Device{Name: none}})
		}
		for _, d := range devs {
			k.rows = append(k.rows, menuRow{kind: kind, dev: d})
		}
	}
	switch m {
	case menuAudio:
		add("Microphone", Microphone, k.devices.Microphones, "No microphone found")
		add("Speaker", Speaker, k.devices.Speakers, "No speaker found")
	case menuCamera:
		add("Camera", Camera, k.devices.Cameras, "No camera found")
	}
	if len(k.items) < len(k.rows) {
		for i := range k.items {
			delete(k.rects, &k.items[i])
		}
		k.items = make([]widget.Clickable, len(k.rows))
	}
}

func (d *Devices) current(kind DeviceKind) string {
	switch kind {
	case Camera:
		return d.Camera
	case Microphone:
		return d.Microphone
	}
	return d.Speaker
}

func (d *Devices) setCurrent(kind DeviceKind, id string) {
	switch kind {
	case Camera:
		d.Camera = id
	case Microphone:
		d.Microphone = id
	default:
		d.Speaker = id
	}
}

// ctlSpec is one button of the bar.
type ctlSpec struct {
	clk      *widget.Clickable
	icon     *widget.Icon
	bg, fg   color.NRGBA
	w        unit.Dp
	label    string
	tip      string
	menu     *widget.Clickable // the attached device picker, if any
	menuTip  string
	ring     bool // a green ring: the member is talking
	badge    int  // a count on the button (unread chat lines)
	noLabels bool
}

const (
	ctlBtnH   = 44
	ctlMainW  = 52
	ctlChevW  = 26
	ctlGap    = 12
	ctlLeaveW = 64
)

func (s ctlSpec) width(gtx layout.Context) int {
	w := gtx.Dp(s.w)
	if s.menu != nil {
		w += gtx.Dp(1) + gtx.Dp(ctlChevW)
	}
	return w
}

// layoutControls draws the bar; origin is its place in the window.
func (a *App) layoutControls(gtx layout.Context, origin image.Point) layout.Dimensions {
	c := &a.call
	k := &c.ctl
	if k.rects == nil {
		k.rects = make(map[*widget.Clickable]image.Rectangle)
	}
	size := gtx.Constraints.Max
	fillRect(gtx.Ops, image.Rectangle{Max: size}, colSurface)
	fillRect(gtx.Ops, image.Rect(0, 0, size.X, gtx.Dp(1)), colBorder)
	self := c.self()
	talking := self != nil && self.talking && !c.micMuted

	mic := ctlSpec{clk: &k.mic, icon: a.ic.mic, bg: colSurface3, fg: colText, w: ctlMainW,
		label: "Mute", tip: "Mute the microphone (" + shortcutMod + "+D)",
		menu: &k.micMenu, menuTip: "Microphone and speaker", ring: talking}
	if c.micMuted {
		mic.icon, mic.bg, mic.fg, mic.label, mic.tip = a.ic.micOff, colDanger, rgb(0xffffff), "Unmute", "Unmute the microphone ("+shortcutMod+"+D)"
	}
	cam := ctlSpec{clk: &k.cam, icon: a.ic.cam, bg: colSurface3, fg: colText, w: ctlMainW,
		label: "Stop video", tip: "Turn the camera off (" + shortcutMod + "+E)",
		menu: &k.camMenu, menuTip: "Choose a camera"}
	if c.camOff {
		cam.icon, cam.bg, cam.fg, cam.label, cam.tip = a.ic.camOff, colDanger, rgb(0xffffff), "Start video", "Turn the camera on ("+shortcutMod+"+E)"
	}
	scr := ctlSpec{clk: &k.screen, icon: a.ic.screen, bg: colSurface3, fg: colText, w: ctlMainW,
		label: "Share screen", tip: "Share your screen (" + shortcutMod + "+Shift+E)"}
	if c.sharing {
		scr.icon, scr.bg, scr.fg, scr.label, scr.tip = a.ic.stopScreen, colAccent, rgb(0xffffff), "Stop sharing", "Stop sharing your screen ("+shortcutMod+"+Shift+E)"
	}
	leave := ctlSpec{clk: &k.leave, icon: a.ic.leave, bg: colDanger, fg: rgb(0xffffff), w: ctlLeaveW,
		label: "Leave", tip: "Leave the call (" + shortcutMod + "+Shift+Q)"}
	chatOn := c.side.open && c.side.tab == tabChat
	peopleOn := c.side.open && c.side.tab == tabPeople
	people := ctlSpec{clk: &k.people, icon: a.ic.people, bg: colSurface3, fg: colText, w: ctlMainW,
		label: "People", tip: "Who is in the room"}
	if peopleOn {
		people.bg = colSurface4
		people.fg = colAccentHi
	}
	chat := ctlSpec{clk: &k.chat, icon: a.ic.chat, bg: colSurface3, fg: colText, w: ctlMainW,
		label: "Chat", tip: "Show or hide the chat", badge: c.side.unread}
	if chatOn {
		chat.bg = colSurface4
		chat.fg = colAccentHi
	}

	center := [...]ctlSpec{mic, cam, scr, leave}
	right := [...]ctlSpec{people, chat}
	gap := gtx.Dp(ctlGap)
	pad := gtx.Dp(16)
	cw := 0
	for i, s := range center {
		if i > 0 {
			cw += gap
		}
		cw += s.width(gtx)
	}
	rw := 0
	for i, s := range right {
		if i > 0 {
			rw += gtx.Dp(8)
		}
		rw += s.width(gtx)
	}
	x := (size.X - cw) / 2
	if lim := size.X - pad - rw - gap - cw; x > lim {
		x = lim
	}
	x = max(x, pad)
	statusW := x - pad - gap
	top := gtx.Dp(8)
	for i, s := range center {
		if i > 0 {
			x += gap
		}
		x += a.ctlButton(gtx, s, image.Pt(x, top), origin)
	}
	a.layoutStatus(gtx, image.Pt(pad, 0), statusW, size.Y)

	rx := size.X - pad - rw
	for i, s := range right {
		if i > 0 {
			rx += gtx.Dp(8)
		}
		rx += a.ctlButton(gtx, s, image.Pt(rx, top), origin)
	}
	return layout.Dimensions{Size: size}
}

// ctlButton draws one button of the bar at p (bar pixels) with its label
// below, and returns its width.
func (a *App) ctlButton(gtx layout.Context, s ctlSpec, p image.Point, origin image.Point) int {
	k := &a.call.ctl
	h := gtx.Dp(ctlBtnH)
	mw := gtx.Dp(s.w)
	rad := gtx.Dp(12)
	total := s.width(gtx)

	st := opOffset(gtx, p)
	main := image.Rect(0, 0, mw, h)
	k.rects[s.clk] = main.Add(p).Add(origin)
	s.clk.Layout(gtx, func(gtx layout.Context) layout.Dimensions {
		bg := s.bg
		if s.clk.Hovered() {
			bg = lighten(bg)
		}
		rr := clip.RRect{Rect: main, NW: rad, SW: rad, NE: rad, SE: rad}
		if s.menu != nil {
			rr.NE, rr.SE = 0, 0
		}
		paint.FillShape(gtx.Ops, bg, rr.Op(gtx.Ops))
		if s.ring {
			strokeRRect(gtx.Ops, main.Inset(gtx.Dp(1)), rad, gtx.Dp(2), colTalking)
		}
		iconAt(gtx, s.icon, image.Pt(mw/2, h/2), 24, s.fg)
		if s.badge > 0 {
			b := itoa(s.badge)
			if s.badge > 99 {
				b = "99+"
			}
			bc, bd := measure(gtx, bold(a.line(sizeTiny, rgb(0xffffff), b)).Layout)
			bw := max(bd.Size.X+gtx.Dp(8), gtx.Dp(18))
			br := image.Rect(mw-bw+gtx.Dp(4), -gtx.Dp(4), mw+gtx.Dp(4), -gtx.Dp(4)+gtx.Dp(18))
			fillRRect(gtx.Ops, br, gtx.Dp(9), colDanger)
			place(gtx.Ops, bc, image.Pt(br.Min.X+(bw-bd.Size.X)/2, br.Min.Y+(br.Dy()-bd.Size.Y)/2))
		}
		hoverCursor(gtx.Ops, main)
		if s.clk.Hovered() {
			a.tooltip(gtx, main.Size(), k.rects[s.clk].Min, s.tip, false)
		}
		return layout.Dimensions{Size: main.Size()}
	})
	if s.menu != nil {
		x := mw + gtx.Dp(1)
		cr := image.Rect(0, 0, gtx.Dp(ctlChevW), h)
		k.rects[s.menu] = cr.Add(image.Pt(x, 0)).Add(p).Add(origin)
		cst := opOffset(gtx, image.Pt(x, 0))
		s.menu.Layout(gtx, func(gtx layout.Context) layout.Dimensions {
			bg := s.bg
			if s.menu.Hovered() {
				bg = lighten(bg)
			}
			paint.FillShape(gtx.Ops, bg, clip.RRect{Rect: cr, NE: rad, SE: rad}.Op(gtx.Ops))
			iconAt(gtx, a.ic.chevronUp, image.Pt(cr.Dx()/2, h/2), 20, s.fg)
			hoverCursor(gtx.Ops, cr)
			if s.menu.Hovered() {
				a.tooltip(gtx, cr.Size(), k.rects[s.menu].Min, s.menuTip, false)
			}
			return layout.Dimensions{Size: cr.Size()}
		})
		cst.Pop()
	}
	// The label, centred under the whole button.
	lgtx := gtx
	lgtx.Constraints = layout.Constraints{Max: image.Pt(total+2*gtx.Dp(ctlGap)-gtx.Dp(4), gtx.Dp(20))}
	lc, ld := measure(lgtx, a.line(sizeTiny, colTextDim, s.label).Layout)
	place(gtx.Ops, lc, image.Pt((total-ld.Size.X)/2, h+gtx.Dp(4)))
	st.Pop()
	return total
}

// layoutStatus draws the connection's state and numbers at p, w wide,
// centred in a bar h high.
func (a *App) layoutStatus(gtx layout.Context, p image.Point, w, h int) {
	if w < gtx.Dp(40) {
		return
	}
	s := a.call.status
	if !a.call.statusSeen {
		s.State = Connected
	}
	state, numbers := statusText(s)
	dot := colTalking
	switch s.State {
	case Connecting:
		dot = colTextDim
	case Reconnecting:
		dot = colWarn
	case Disconnected:
		dot = colDanger
	}
	lgtx := gtx
	lgtx.Constraints = layout.Constraints{Max: image.Pt(w-gtx.Dp(16), h)}
	sc, sd := measure(lgtx, medium(a.line(sizeSmall, colText, state)).Layout)
	var nc = sc
	var nd layout.Dimensions
	if numbers != "" && a.call.statusSeen {
		nc, nd = measure(lgtx, a.line(sizeTiny, colTextDim, numbers).Layout)
	}
	th := sd.Size.Y + nd.Size.Y
	y := p.Y + (h-th)/2
	fillCircle(gtx.Ops, image.Pt(p.X+gtx.Dp(4), y+sd.Size.Y/2), gtx.Dp(4), dot)
	place(gtx.Ops, sc, image.Pt(p.X+gtx.Dp(16), y))
	if nd.Size.Y > 0 {
		place(gtx.Ops, nc, image.Pt(p.X+gtx.Dp(16), y+sd.Size.Y))
	}
}

// layoutMenu draws the open device picker over everything, with a scrim
// that closes it.
func (a *App) layoutMenu(gtx layout.Context, l callLayout) {
	k := &a.call.ctl
	if k.menu == menuNone {
		return
	}
	if k.scrim.Clicked(gtx) {
		k.menu = menuNone
		return
	}
	for i, r := range k.rows {
		if r.heading != "" || r.empty {
			continue
		}
		if k.items[i].Clicked(gtx) {
			a.b.SelectDevice(r.kind, r.dev.ID)
			k.devices.setCurrent(r.kind, r.dev.ID)
			k.menu = menuNone
			return
		}
	}
	// The scrim: a click anywhere else closes the menu.
	k.scrim.Layout(gtx, func(gtx layout.Context) layout.Dimensions {
		return layout.Dimensions{Size: a.size}
	})
	w := min(gtx.Dp(300), a.size.X-gtx.Dp(16))
	rowH, headH := gtx.Dp(36), gtx.Dp(30)
	pad := gtx.Dp(6)
	h := 2 * pad
	for _, r := range k.rows {
		if r.heading != "" {
			h += headH
		} else {
			h += rowH
		}
	}
	x := min(max(k.anchor.Min.X-gtx.Dp(20), gtx.Dp(8)), a.size.X-w-gtx.Dp(8))
	y := max(l.bar.Min.Y-gtx.Dp(8)-h, gtx.Dp(8))
	st := opOffset(gtx, image.Pt(x, y))
	defer st.Pop()
	box := image.Rect(0, 0, w, h)
	fillRRect(gtx.Ops, box.Add(image.Pt(0, gtx.Dp(2))), gtx.Dp(10), argb(0x66000000))
	fillRRect(gtx.Ops, box, gtx.Dp(10), colSurface2)
	strokeRRect(gtx.Ops, box, gtx.Dp(10), gtx.Dp(1), colBorder)
	ry := pad
	for i, r := range k.rows {
		if r.heading != "" {
			lc, ld := measure(gtx, medium(a.line(sizeTiny, colTextFaint, r.heading)).Layout)
			place(gtx.Ops, lc, image.Pt(gtx.Dp(14), ry+headH-ld.Size.Y-gtx.Dp(6)))
			ry += headH
			continue
		}
		rr := image.Rect(pad, ry, w-pad, ry+rowH)
		if r.empty {
			lc, ld := measure(gtx, a.line(sizeSmall, colTextFaint, r.dev.Name).Layout)
			place(gtx.Ops, lc, image.Pt(gtx.Dp(38), ry+(rowH-ld.Size.Y)/2))
			ry += rowH
			continue
		}
		selected := k.devices.current(r.kind) == r.dev.ID
		clk := &k.items[i]
		k.rects[clk] = rr.Add(image.Pt(x, y))
		ist := opOffset(gtx, rr.Min)
		clk.Layout(gtx, func(gtx layout.Context) layout.Dimensions {
			sz := rr.Size()
			if clk.Hovered() {
				fillRRect(gtx.Ops, image.Rectangle{Max: sz}, gtx.Dp(6), colSurface3)
			}
			if selected {
				iconAt(gtx, a.ic.check, image.Pt(gtx.Dp(16), sz.Y/2), 18, colAccentHi)
			}
			lgtx := gtx
			lgtx.Constraints = layout.Constraints{Max: image.Pt(sz.X-gtx.Dp(40), sz.Y)}
			col := colText
			if selected {
				col = colAccentHi
			}
			name := r.dev.Name
			if name == "" {
				name = r.dev.ID
			}
			lc, ld := measure(lgtx, a.line(sizeBody, col, name).Layout)
			place(gtx.Ops, lc, image.Pt(gtx.Dp(32), (sz.Y-ld.Size.Y)/2))
			hoverCursor(gtx.Ops, image.Rectangle{Max: sz})
			return layout.Dimensions{Size: sz}
		})
		ist.Pop()
		ry += rowH
	}
}
