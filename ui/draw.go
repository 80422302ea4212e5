package ui

import (
	"image"
	"image/color"

	"gioui.org/f32"
	"gioui.org/font"
	"gioui.org/io/pointer"
	"gioui.org/layout"
	"gioui.org/op"
	"gioui.org/op/clip"
	"gioui.org/op/paint"
	"gioui.org/text"
	"gioui.org/unit"
	"gioui.org/widget"
	"gioui.org/widget/material"
)

// Drawing helpers. Rectangles are in the pixels of the current transform.

func fillRect(ops *op.Ops, r image.Rectangle, c color.NRGBA) {
	paint.FillShape(ops, c, clip.Rect(r).Op())
}

func fillRRect(ops *op.Ops, r image.Rectangle, radius int, c color.NRGBA) {
	paint.FillShape(ops, c, clip.UniformRRect(r, radius).Op(ops))
}

func strokeRRect(ops *op.Ops, r image.Rectangle, radius, width int, c color.NRGBA) {
	paint.FillShape(ops, c, clip.Stroke{Path: clip.UniformRRect(r, radius).Path(ops), Width: float32(width)}.Op())
}

func fillCircle(ops *op.Ops, center image.Point, radius int, c color.NRGBA) {
	r := image.Rect(center.X-radius, center.Y-radius, center.X+radius, center.Y+radius)
	paint.FillShape(ops, c, clip.Ellipse(r).Op(ops))
}

// at lays w out in r with exact constraints.
func at(gtx layout.Context, r image.Rectangle, w layout.Widget) layout.Dimensions {
	if r.Dx() <= 0 || r.Dy() <= 0 {
		return layout.Dimensions{}
	}
	defer op.Offset(r.Min).Push(gtx.Ops).Pop()
	gtx.Constraints = layout.Exact(r.Size())
	return w(gtx)
}

func opOffset(gtx layout.Context, p image.Point) op.TransformStack {
	return op.Offset(p).Push(gtx.Ops)
}

// measure records w with gtx's maximum constraints (and no minimum) and
// returns its call and size, to be placed later.
func measure(gtx layout.Context, w layout.Widget) (op.CallOp, layout.Dimensions) {
	gtx.Constraints.Min = image.Point{}
	return record(gtx, w)
}

// record is measure with gtx's constraints as they are.
func record(gtx layout.Context, w layout.Widget) (op.CallOp, layout.Dimensions) {
	m := op.Record(gtx.Ops)
	d := w(gtx)
	return m.Stop(), d
}

// place adds a recorded widget at p.
func place(ops *op.Ops, call op.CallOp, p image.Point) {
	defer op.Offset(p).Push(ops).Pop()
	call.Add(ops)
}

// label is a one-colour label of the theme's face.
func (a *App) label(size unit.Sp, c color.NRGBA, s string) material.LabelStyle {
	l := material.Label(a.th, size, s)
	l.Color = c
	l.SelectionColor = withAlpha(colAccent, 0x70)
	return l
}

// line is a label that stays on one line and ends in … when cut.
func (a *App) line(size unit.Sp, c color.NRGBA, s string) material.LabelStyle {
	l := a.label(size, c, s)
	l.MaxLines = 1
	l.WrapPolicy = text.WrapGraphemes
	return l
}

func bold(l material.LabelStyle) material.LabelStyle {
	l.Font.Weight = font.Bold
	return l
}

func medium(l material.LabelStyle) material.LabelStyle {
	l.Font.Weight = font.Medium
	return l
}

// icon draws ic at size in c.
func icon(gtx layout.Context, ic *widget.Icon, size unit.Dp, c color.NRGBA) layout.Dimensions {
	s := gtx.Dp(size)
	gtx.Constraints = layout.Exact(image.Pt(s, s))
	return ic.Layout(gtx, c)
}

// iconAt draws ic centred on p.
func iconAt(gtx layout.Context, ic *widget.Icon, p image.Point, size unit.Dp, c color.NRGBA) {
	s := gtx.Dp(size)
	defer op.Offset(p.Sub(image.Pt(s/2, s/2))).Push(gtx.Ops).Pop()
	icon(gtx, ic, size, c)
}

// hoverCursor makes the pointer a hand over r.
func hoverCursor(ops *op.Ops, r image.Rectangle) {
	defer clip.Rect(r).Push(ops).Pop()
	pointer.CursorPointer.Add(ops)
}

// button is a clickable rounded rectangle with an optional icon and a
// label.
type button struct {
	clk    *widget.Clickable
	icon   *widget.Icon
	text   string
	bg, fg color.NRGBA
	// hover is the background under the pointer; zero: bg lightened.
	hover    color.NRGBA
	size     unit.Sp
	height   unit.Dp
	padX     unit.Dp
	radius   unit.Dp
	disabled bool
	// minW is the smallest width.
	minW unit.Dp
}

func (a *App) layoutButton(gtx layout.Context, b button) layout.Dimensions {
	if b.size == 0 {
		b.size = sizeBody
	}
	if b.height == 0 {
		b.height = 36
	}
	if b.padX == 0 {
		b.padX = 16
	}
	if b.radius == 0 {
		b.radius = 8
	}
	if b.hover == (color.NRGBA{}) {
		b.hover = lighten(b.bg)
	}
	if b.disabled {
		gtx = gtx.Disabled()
		b.fg = withAlpha(b.fg, 0x80)
		b.bg = withAlpha(b.bg, 0xa0)
	}
	h := gtx.Dp(b.height)
	pad := gtx.Dp(b.padX)
	iconSize := unit.Dp(18)
	gap := gtx.Dp(8)
	lgtx := gtx
	lgtx.Constraints.Min = image.Point{}
	lgtx.Constraints.Max.X -= 2 * pad
	if b.icon != nil {
		lgtx.Constraints.Max.X -= gtx.Dp(iconSize) + gap
	}
	if lgtx.Constraints.Max.X < 0 {
		lgtx.Constraints.Max.X = 0
	}
	var lcall op.CallOp
	var ld layout.Dimensions
	if b.text != "" {
		lcall, ld = measure(lgtx, medium(a.line(b.size, b.fg, b.text)).Layout)
	}
	w := 2*pad + ld.Size.X
	if b.icon != nil {
		w += gtx.Dp(iconSize)
		if b.text != "" {
			w += gap
		}
	}
	if mw := gtx.Dp(b.minW); w < mw {
		w = mw
	}
	if w < gtx.Constraints.Min.X {
		w = gtx.Constraints.Min.X
	}
	if w > gtx.Constraints.Max.X {
		w = gtx.Constraints.Max.X
	}
	size := image.Pt(w, h)
	return b.clk.Layout(gtx, func(gtx layout.Context) layout.Dimensions {
		bg := b.bg
		if b.clk.Hovered() && !b.disabled {
			bg = b.hover
		}
		r := image.Rectangle{Max: size}
		fillRRect(gtx.Ops, r, gtx.Dp(b.radius), bg)
		content := ld.Size.X
		if b.icon != nil {
			content += gtx.Dp(iconSize)
			if b.text != "" {
				content += gap
			}
		}
		x := (w - content) / 2
		if b.icon != nil {
			s := gtx.Dp(iconSize)
			iconAt(gtx, b.icon, image.Pt(x+s/2, h/2), iconSize, b.fg)
			x += s + gap
		}
		if b.text != "" {
			place(gtx.Ops, lcall, image.Pt(x, (h-ld.Size.Y)/2))
		}
		if !b.disabled {
			hoverCursor(gtx.Ops, r)
		}
		return layout.Dimensions{Size: size}
	})
}

// lighten mixes c a little towards white.
func lighten(c color.NRGBA) color.NRGBA {
	mix := func(v uint8) uint8 { return uint8(int(v) + (255-int(v))*14/100) }
	return color.NRGBA{R: mix(c.R), G: mix(c.G), B: mix(c.B), A: c.A}
}

// field draws an input box around an editor: a filled rounded rectangle,
// a border that turns accent when focused and red when invalid.
func (a *App) field(gtx layout.Context, ed *widget.Editor, hint string, invalid bool) layout.Dimensions {
	padX, padY := gtx.Dp(12), gtx.Dp(9)
	focused := gtx.Focused(ed)
	egtx := gtx
	egtx.Constraints.Min = image.Point{X: gtx.Constraints.Max.X - 2*padX}
	egtx.Constraints.Max.X -= 2 * padX
	egtx.Constraints.Max.Y -= 2 * padY
	es := material.Editor(a.th, ed, hint)
	es.Color = colText
	es.HintColor = colTextFaint
	es.TextSize = sizeBody
	es.SelectionColor = withAlpha(colAccent, 0x70)
	call, d := record(egtx, es.Layout)
	size := image.Pt(gtx.Constraints.Max.X, d.Size.Y+2*padY)
	r := image.Rectangle{Max: size}
	rad := gtx.Dp(8)
	fillRRect(gtx.Ops, r, rad, colSurface2)
	border, bw := colBorder, gtx.Dp(1)
	switch {
	case invalid:
		border, bw = colDanger, gtx.Dp(1.5)
	case focused:
		border, bw = colAccent, gtx.Dp(1.5)
	}
	strokeRRect(gtx.Ops, r, rad, bw, border)
	place(gtx.Ops, call, image.Pt(padX, padY))
	return layout.Dimensions{Size: size}
}

// tooltip draws text in a small dark box above (or below) the widget of
// size sz whose top left corner is at abs in the window, on top of
// everything else, kept inside the window.
func (a *App) tooltip(gtx layout.Context, sz, abs image.Point, s string, below bool) {
	m := op.Record(gtx.Ops)
	lgtx := gtx
	lgtx.Constraints = layout.Constraints{Max: image.Pt(gtx.Dp(320), gtx.Dp(100))}
	call, d := measure(lgtx, a.line(sizeSmall, colText, s).Layout)
	padX, padY := gtx.Dp(8), gtx.Dp(5)
	box := image.Rect(0, 0, d.Size.X+2*padX, d.Size.Y+2*padY)
	x := (sz.X - box.Dx()) / 2
	margin := gtx.Dp(6)
	if over := abs.X + x + box.Dx() - (a.size.X - margin); over > 0 {
		x -= over
	}
	if under := margin - (abs.X + x); under > 0 {
		x += under
	}
	y := -box.Dy() - gtx.Dp(6)
	if below {
		y = sz.Y + gtx.Dp(6)
	}
	off := op.Offset(image.Pt(x, y)).Push(gtx.Ops)
	fillRRect(gtx.Ops, box, gtx.Dp(6), rgb(0x050608))
	strokeRRect(gtx.Ops, box, gtx.Dp(6), 1, colBorder)
	place(gtx.Ops, call, image.Pt(padX, padY))
	off.Pop()
	op.Defer(gtx.Ops, m.Stop())
}

// mirrorX flips what follows horizontally inside a box of width w.
func mirrorX(ops *op.Ops, w int) op.TransformStack {
	t := f32.AffineId().Scale(f32.Pt(float32(w)/2, 0), f32.Pt(-1, 1))
	return op.Affine(t).Push(ops)
}
