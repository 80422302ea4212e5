package ui

import "image"

// Tile aspect ratio of the video grid: 16:9.
const (
	aspectW = 16
	aspectH = 9
)

// gridFit chooses how n tiles of aspect aw:ah fit into area with gap
// pixels between them: the number of columns and rows that makes the
// tiles largest, and the tile size. Among equally large choices it takes
// the one with the fewest empty cells, then the one with fewer rows.
func gridFit(n int, area image.Point, gap, aw, ah int) (cols, rows int, tile image.Point) {
	if n <= 0 || area.X <= 0 || area.Y <= 0 {
		return 0, 0, image.Point{}
	}
	bestEmpty := 0
	for c := 1; c <= n; c++ {
		r := (n + c - 1) / c
		if c > 1 && (c-1)*r >= n {
			// Fewer columns hold as many rows: this c leaves a
			// column empty.
			continue
		}
		w := (area.X - (c-1)*gap) / c
		h := (area.Y - (r-1)*gap) / r
		if w <= 0 || h <= 0 {
			continue
		}
		// The largest aw:ah tile inside w×h.
		tw, th := w, w*ah/aw
		if th > h {
			tw, th = h*aw/ah, h
		}
		if tw <= 0 || th <= 0 {
			continue
		}
		empty := c*r - n
		better := tw*th > tile.X*tile.Y ||
			tw*th == tile.X*tile.Y && (empty < bestEmpty || empty == bestEmpty && r < rows)
		if better {
			cols, rows, tile, bestEmpty = c, r, image.Pt(tw, th), empty
		}
	}
	return cols, rows, tile
}

// gridRects appends to dst the rectangles of n tiles fitted into area:
// rows filled left to right, top to bottom, the whole grid centred, and a
// last row that is not full centred too.
func gridRects(dst []image.Rectangle, n int, area image.Rectangle, gap, aw, ah int) []image.Rectangle {
	cols, rows, tile := gridFit(n, area.Size(), gap, aw, ah)
	if cols == 0 {
		return dst
	}
	gridH := rows*tile.Y + (rows-1)*gap
	y := area.Min.Y + (area.Dy()-gridH)/2
	for r := range rows {
		inRow := cols
		if left := n - r*cols; left < inRow {
			inRow = left
		}
		rowW := inRow*tile.X + (inRow-1)*gap
		x := area.Min.X + (area.Dx()-rowW)/2
		for range inRow {
			dst = append(dst, image.Rectangle{Min: image.Pt(x, y), Max: image.Pt(x+tile.X, y+tile.Y)})
			x += tile.X + gap
		}
		y += tile.Y + gap
	}
	return dst
}

// stageRects lays out a call in which screens are shared: the screens
// large in the main part of area, the cameras in a strip beside them (on
// the right when the area is wide, below when it is tall). It appends the
// screens' rectangles and then the cameras'.
func stageRects(dst []image.Rectangle, screens, cameras int, area image.Rectangle, gap int) []image.Rectangle {
	if cameras == 0 {
		return gridRects(dst, screens, area, gap, aspectW, aspectH)
	}
	main, strip := area, area
	if area.Dx()*aspectH >= area.Dy()*aspectW {
		// Wide: a column on the right, a fifth of the width (at least
		// room for a readable tile).
		sw := max(area.Dx()/5, min(area.Dx()/3, 180))
		main.Max.X -= sw + gap
		strip.Min.X = main.Max.X + gap
	} else {
		sh := max(area.Dy()/5, min(area.Dy()/3, 100))
		main.Max.Y -= sh + gap
		strip.Min.Y = main.Max.Y + gap
	}
	dst = gridRects(dst, screens, main, gap, aspectW, aspectH)
	return gridRects(dst, cameras, strip, gap, aspectW, aspectH)
}
