package ui

import (
	"image"
	"testing"
)

// TestGridFit checks the grid for 1 to 25 tiles in several areas: every
// tile inside the area, none overlapping, all of one 16:9 size, and no
// other number of columns giving larger tiles.
func TestGridFit(t *testing.T) {
	areas := []image.Point{{640, 480}, {1280, 720}, {1920, 1080}, {600, 900}, {300, 200}, {1000, 300}, {2000, 500}, {333, 777}}
	const gap = 8
	for _, area := range areas {
		for n := 1; n <= 25; n++ {
			bounds := image.Rectangle{Min: image.Pt(17, 31), Max: image.Pt(17, 31).Add(area)}
			rects := gridRects(nil, n, bounds, gap, aspectW, aspectH)
			if len(rects) != n {
				t.Fatalf("gridRects(%d, %v) gave %d tiles", n, area, len(rects))
			}
			size := rects[0].Size()
			if size.X <= 0 || size.Y <= 0 {
				t.Fatalf("gridRects(%d, %v): empty tile %v", n, area, rects[0])
			}
			if d := size.X*aspectH - size.Y*aspectW; d < -aspectW || d > aspectH*aspectW {
				t.Errorf("gridRects(%d, %v): tile %v is not 16:9", n, area, size)
			}
			for i, r := range rects {
				if r.Size() != size {
					t.Errorf("gridRects(%d, %v): tile %d is %v, tile 0 %v", n, area, i, r.Size(), size)
				}
				if !r.In(bounds) {
					t.Errorf("gridRects(%d, %v): tile %d %v outside %v", n, area, i, r, bounds)
				}
				for j := range i {
					if r.Overlaps(rects[j]) {
						t.Errorf("gridRects(%d, %v): tiles %d %v and %d %v overlap", n, area, i, r, j, rects[j])
					}
				}
			}
			// No column count makes larger tiles.
			for c := 1; c <= n; c++ {
				r := (n + c - 1) / c
				w := (area.X - (c-1)*gap) / c
				h := (area.Y - (r-1)*gap) / r
				tw, th := w, w*aspectH/aspectW
				if th > h {
					tw, th = h*aspectW/aspectH, h
				}
				if tw*th > size.X*size.Y {
					t.Errorf("gridRects(%d, %v): tiles %v, but %d columns give %dx%d", n, area, size, c, tw, th)
				}
			}
		}
	}
}

func TestGridShapes(t *testing.T) {
	for _, tc := range []struct {
		n          int
		area       image.Point
		cols, rows int
	}{
		{1, image.Pt(1280, 720), 1, 1},
		{2, image.Pt(1280, 720), 2, 1},
		{2, image.Pt(600, 900), 1, 2},
		{4, image.Pt(1280, 720), 2, 2},
		{5, image.Pt(1280, 720), 3, 2},
		{9, image.Pt(1280, 720), 3, 3},
		{10, image.Pt(1280, 720), 4, 3},
		{3, image.Pt(2000, 400), 3, 1},
	} {
		c, r, _ := gridFit(tc.n, tc.area, 8, aspectW, aspectH)
		if c != tc.cols || r != tc.rows {
			t.Errorf("gridFit(%d, %v) = %d×%d, want %d×%d", tc.n, tc.area, c, r, tc.cols, tc.rows)
		}
	}
	if c, r, s := gridFit(0, image.Pt(100, 100), 8, 16, 9); c != 0 || r != 0 || s != (image.Point{}) {
		t.Errorf("gridFit(0) = %d, %d, %v", c, r, s)
	}
	if rects := gridRects(nil, 3, image.Rect(0, 0, 4, 4), 8, 16, 9); len(rects) != 0 {
		t.Errorf("gridRects in a 4×4 area with 8 px gaps: %v", rects)
	}
}

func TestGridCentresLastRow(t *testing.T) {
	area := image.Rect(0, 0, 1280, 720)
	rects := gridRects(nil, 5, area, 8, aspectW, aspectH)
	// 3 + 2: the second row's two tiles centred under the first's three.
	left := rects[3].Min.X - area.Min.X
	right := area.Max.X - rects[4].Max.X
	if d := left - right; d < -1 || d > 1 {
		t.Errorf("last row not centred: %d px left, %d px right", left, right)
	}
	top := rects[0].Min.Y - area.Min.Y
	bottom := area.Max.Y - rects[4].Max.Y
	if d := top - bottom; d < -1 || d > 1 {
		t.Errorf("grid not centred: %d px above, %d px below", top, bottom)
	}
}

func TestStageRects(t *testing.T) {
	for _, area := range []image.Rectangle{image.Rect(0, 0, 1280, 720), image.Rect(10, 10, 610, 910)} {
		for cams := 0; cams <= 9; cams++ {
			rects := stageRects(nil, 1, cams, area, 8)
			if len(rects) != 1+cams {
				t.Fatalf("stageRects(1, %d, %v) gave %d tiles", cams, area, len(rects))
			}
			for i, r := range rects {
				if !r.In(area) || r.Empty() {
					t.Errorf("stageRects(1, %d, %v): tile %d %v outside or empty", cams, area, i, r)
				}
				for j := range i {
					if r.Overlaps(rects[j]) {
						t.Errorf("stageRects(1, %d, %v): tiles %d and %d overlap", cams, area, i, j)
					}
				}
				if i > 0 && r.Dx()*r.Dy() > rects[0].Dx()*rects[0].Dy() {
					t.Errorf("stageRects(1, %d, %v): camera tile %v larger than the screen %v", cams, area, r, rects[0])
				}
			}
		}
	}
}
