package ui

import (
	"image"
	"strings"
	"unicode"
	"unicode/utf8"

	"gioui.org/layout"
	"gioui.org/op"
	"gioui.org/op/clip"
	"gioui.org/unit"
	"gioui.org/widget"

	"github.com/parleychat/parley/protocol"
)

// tileRef is one tile of the grid: a member's camera (or initials), or a
// member's shared screen.
type tileRef struct {
	m      *member
	screen bool
}

// tileState is the grid's scratch space, reused from frame to frame.
type tileState struct {
	refs  []tileRef
	rects []image.Rectangle
	trace []traceTile // this frame's tiles
	last  []traceTile // the tiles last traced
}

func (t *tileState) reset() {
	clear(t.refs)
	t.refs = t.refs[:0]
	t.rects = t.rects[:0]
}

// layoutGrid draws the tiles in area (window pixels; gtx has the window's
// origin).
func (a *App) layoutGrid(gtx layout.Context, area image.Rectangle) {
	t := &a.call.tiles
	clear(t.refs)
	t.refs = t.refs[:0]
	screens := 0
	for _, m := range a.call.members {
		if m.has(protocol.StateScreen) && m.Screen != nil {
			t.refs = append(t.refs, tileRef{m: m, screen: true})
			screens++
		}
	}
	// The member itself first, then the others in the order they came.
	if s := a.call.self(); s != nil {
		t.refs = append(t.refs, tileRef{m: s})
	}
	for _, m := range a.call.members {
		if !m.Self {
			t.refs = append(t.refs, tileRef{m: m})
		}
	}
	gap := gtx.Dp(8)
	t.rects = t.rects[:0]
	if screens > 0 {
		t.rects = stageRects(t.rects, screens, len(t.refs)-screens, area, gap)
	} else {
		t.rects = gridRects(t.rects, len(t.refs), area, gap, aspectW, aspectH)
	}
	t.trace = t.trace[:0]
	for i, r := range t.rects {
		ref := t.refs[i]
		video := a.layoutTile(gtx, r, ref)
		t.trace = append(t.trace, traceTile{
			Name: ref.m.Name, Self: ref.m.Self, Screen: ref.screen,
			X: r.Min.X, Y: r.Min.Y, W: r.Dx(), H: r.Dy(),
			Video: video, Talking: ref.m.talking && !ref.screen && !(ref.m.Self && a.call.micMuted),
			Muted: !ref.m.has(protocol.StateAudio),
		})
	}
	if !equalTiles(t.trace, t.last) {
		a.tr.tiles(t.trace)
		t.last = append(t.last[:0], t.trace...)
	}
}

func equalTiles(a, b []traceTile) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// layoutTile draws one tile in r and reports whether it shows video.
func (a *App) layoutTile(gtx layout.Context, r image.Rectangle, ref tileRef) bool {
	m := ref.m
	defer op.Offset(r.Min).Push(gtx.Ops).Pop()
	gtx.Constraints = layout.Exact(r.Size())
	size := r.Size()
	rad := gtx.Dp(10)
	small := size.Y < gtx.Dp(110)

	var view *videoView
	var showing bool
	if ref.screen {
		view = &m.scr
		showing = view.update(m.Screen) && m.has(protocol.StateScreen)
	} else {
		view = &m.cam
		showing = view.update(m.Camera) && m.has(protocol.StateVideo)
	}

	box := image.Rectangle{Max: size}
	cl := clip.UniformRRect(box, rad).Push(gtx.Ops)
	if showing {
		fillRect(gtx.Ops, box, colLetterbox)
		var mirror op.TransformStack
		mirrored := m.Self && !ref.screen
		if mirrored {
			mirror = mirrorX(gtx.Ops, size.X)
		}
		widget.Image{Src: view.img, Fit: widget.Contain, Position: layout.Center}.Layout(gtx)
		if mirrored {
			mirror.Pop()
		}
	} else {
		fillRect(gtx.Ops, box, colSurface2)
		if ref.screen {
			a.layoutScreenWaiting(gtx, size, m)
		} else {
			a.layoutInitials(gtx, size, m.Name, m.initials, small)
		}
	}
	cl.Pop()

	a.layoutNameStrip(gtx, size, ref, small)

	if m.talking && !ref.screen && !(m.Self && a.call.micMuted) {
		bw := gtx.Dp(3)
		strokeRRect(gtx.Ops, box.Inset(bw/2), rad, bw, colTalking)
	}
	return showing
}

// layoutInitials draws the name's initials in a coloured circle in the
// middle of the tile.
func (a *App) layoutInitials(gtx layout.Context, size image.Point, name, initials string, small bool) {
	// The circle sits in the space above the name strip.
	stripH := gtx.Dp(36)
	if small {
		stripH = gtx.Dp(30)
	}
	space := size.Y - stripH
	d := min(space*70/100, size.X*30/100, gtx.Dp(128))
	if !small {
		d = min(size.Y*42/100, size.X*30/100, gtx.Dp(128))
	}
	if d < gtx.Dp(18) {
		return // too small a tile: the name says who it is
	}
	c := image.Pt(size.X/2, size.Y/2-gtx.Dp(8))
	if small {
		c.Y = space / 2
	}
	fillCircle(gtx.Ops, c, d/2, avatarColor(name))
	ts := unit.Sp(float32(d) * 0.40)
	if gtx.Metric.PxPerSp > 0 {
		ts = unit.Sp(float32(d) / gtx.Metric.PxPerSp * 0.40)
	}
	lgtx := gtx
	lgtx.Constraints = layout.Constraints{Max: image.Pt(d, d)}
	call, ld := measure(lgtx, medium(a.line(ts, rgb(0xffffff), initials)).Layout)
	place(gtx.Ops, call, c.Sub(image.Pt(ld.Size.X/2, ld.Size.Y/2)))
}

// layoutScreenWaiting fills a screen tile that has no picture yet.
func (a *App) layoutScreenWaiting(gtx layout.Context, size image.Point, m *member) {
	txt := "Waiting for " + m.Name + "’s screen…"
	if m.Self {
		txt = "You are sharing your screen"
	}
	is := unit.Dp(40)
	if size.Y < gtx.Dp(140) {
		is = 24
	}
	c := image.Pt(size.X/2, size.Y/2-gtx.Dp(14))
	iconAt(gtx, a.ic.screen, c, is, colTextFaint)
	lgtx := gtx
	lgtx.Constraints = layout.Constraints{Max: image.Pt(size.X-gtx.Dp(24), gtx.Dp(40))}
	call, d := measure(lgtx, a.line(sizeSmall, colTextDim, txt).Layout)
	place(gtx.Ops, call, image.Pt((size.X-d.Size.X)/2, c.Y+gtx.Dp(is)/2+gtx.Dp(8)))
}

// layoutNameStrip draws the name on a translucent strip at the bottom
// left, after the icons for a muted microphone and a camera that is off.
func (a *App) layoutNameStrip(gtx layout.Context, size image.Point, ref tileRef, small bool) {
	m := ref.m
	name := m.label
	if ref.screen {
		name = m.screenLabel
	}
	ts, is := sizeSmall, unit.Dp(16)
	if small {
		ts, is = sizeTiny, 14
	}
	margin := gtx.Dp(6)
	padX, padY := gtx.Dp(8), gtx.Dp(4)
	gap := gtx.Dp(4)
	isz := gtx.Dp(is)
	var icBuf [2]*widget.Icon
	var colBuf [2]bool
	ics, cols := icBuf[:0], colBuf[:0] // the icons, and whether each is red
	if ref.screen {
		ics = append(ics, a.ic.screen)
		cols = append(cols, false)
	} else {
		if !m.has(protocol.StateAudio) {
			ics = append(ics, a.ic.micOff)
			cols = append(cols, true)
		}
		if !m.has(protocol.StateVideo) {
			ics = append(ics, a.ic.camOff)
			cols = append(cols, false)
		}
	}
	iconsW := len(ics) * (isz + gap)
	maxText := size.X - 2*margin - 2*padX - iconsW
	if maxText < gtx.Dp(20) {
		maxText = max(size.X-2*margin-2*padX, 0)
		ics = nil
		iconsW = 0
	}
	lgtx := gtx
	lgtx.Constraints = layout.Constraints{Max: image.Pt(maxText, gtx.Dp(40))}
	call, ld := measure(lgtx, medium(a.line(ts, colText, name)).Layout)
	h := max(ld.Size.Y, isz) + 2*padY
	w := 2*padX + iconsW + ld.Size.X
	strip := image.Rect(margin, size.Y-margin-h, margin+w, size.Y-margin)
	if strip.Min.Y < 0 {
		return
	}
	fillRRect(gtx.Ops, strip, gtx.Dp(6), colStrip)
	x := strip.Min.X + padX
	cy := strip.Min.Y + h/2
	for i, ic := range ics {
		c := colText
		if cols[i] {
			c = colDangerHi
		}
		iconAt(gtx, ic, image.Pt(x+isz/2, cy), is, c)
		x += isz + gap
	}
	place(gtx.Ops, call, image.Pt(x, cy-ld.Size.Y/2))
}

// initials are the first letters of up to two parts of a name ("ada",
// "Ada Lovelace", "ada_lovelace", "adaLovelace").
func initials(name string) string {
	var parts []string
	cur := strings.Builder{}
	flush := func() {
		if cur.Len() > 0 {
			parts = append(parts, cur.String())
			cur.Reset()
		}
	}
	prevLower := false
	for _, r := range name {
		switch {
		case r == ' ' || r == '_' || r == '-' || r == '.':
			flush()
			prevLower = false
			continue
		case unicode.IsUpper(r) && prevLower:
			flush()
		}
		cur.WriteRune(r)
		prevLower = unicode.IsLower(r)
	}
	flush()
	var out []rune
	for _, p := range parts {
		if r, _ := utf8.DecodeRuneInString(p); r != utf8.RuneError {
			out = append(out, unicode.ToUpper(r))
		}
		if len(out) == 2 {
			break
		}
	}
	if len(out) == 0 {
		return "?"
	}
	return string(out)
}
