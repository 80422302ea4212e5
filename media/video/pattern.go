package video

import (
	"fmt"
	"image"
	"image/color"
	"time"
)

// Default size and rate of the test pattern.
const (
	DefaultWidth     = 640
	DefaultHeight    = 360
	DefaultFrameRate = 30
)

// PatternConfig configures a TestPattern. The zero value is 640×360 at 30
// pictures per second.
type PatternConfig struct {
	Width, Height int     // picture size, 32×24 to MaxWidth×MaxHeight; 0 means 640×360
	FrameRate     float64 // pictures per second, 0.1 to 1000; 0 means 30
}

// TestPattern is a generated media.VideoSource: colour bars, a textured
// ramp, a bouncing checkered box and a sweeping bar, with the capture time
// and frame number stamped across the top (see ReadStamp). Frame n is
// Render's picture for n and its capture time.
//
// ReadFrame is called from one goroutine at a time; Close may be called from
// any, and makes a waiting ReadFrame return ErrClosed.
type TestPattern struct {
	img  *image.YCbCr // reused for every frame
	pace *pacer
}

// NewTestPattern returns a test pattern source.
func NewTestPattern(cfg PatternConfig) (*TestPattern, error) {
	w, h := cfg.Width, cfg.Height
	if w == 0 && h == 0 {
		w, h = DefaultWidth, DefaultHeight
	}
	if w < stampCols || h < stampGridRows {
		return nil, fmt.Errorf("video: test pattern size %d×%d too small (at least %d×%d)", w, h, stampCols, stampGridRows)
	}
	if err := checkSize(w, h); err != nil {
		return nil, fmt.Errorf("video: test pattern: %w", err)
	}
	fps := cfg.FrameRate
	if fps == 0 {
		fps = DefaultFrameRate
	}
	num, den, err := rateFromFloat(fps)
	if err != nil {
		return nil, fmt.Errorf("video: test pattern: %w", err)
	}
	p, err := newPacer(num, den)
	if err != nil {
		return nil, fmt.Errorf("video: test pattern: %w", err)
	}
	return &TestPattern{img: NewI420(w, h), pace: p}, nil
}

// Size returns the picture size.
func (p *TestPattern) Size() (w, h int) { return p.img.Rect.Dx(), p.img.Rect.Dy() }

// ReadFrame returns the next picture when it is due: frame n at start +
// n/rate, where start is the first call. A caller that is late gets the
// frame due now at once, and the frame numbers it missed are skipped. The
// capture time is the time ReadFrame returns. The picture is reused by the
// next call.
func (p *TestPattern) ReadFrame() (*image.YCbCr, time.Time, error) {
	n, now, err := p.pace.wait()
	if err != nil {
		return nil, time.Time{}, err
	}
	Render(p.img, n, now)
	return p.img, now, nil
}

// Close stops the source. It never fails.
func (p *TestPattern) Close() error {
	p.pace.close()
	return nil
}

// Colours of the pattern, as Y, Cb, Cr.
type ycc struct{ y, cb, cr byte }

func rgb(r, g, b uint8) ycc {
	y, cb, cr := color.RGBToYCbCr(r, g, b)
	return ycc{y, cb, cr}
}

var (
	// 75% colour bars: white, yellow, cyan, green, magenta, red, blue.
	barColours = [...]ycc{
		rgb(191, 191, 191), rgb(191, 191, 0), rgb(0, 191, 191), rgb(0, 191, 0),
		rgb(191, 0, 191), rgb(191, 0, 0), rgb(0, 0, 191),
	}
	boxColours = [2]ycc{rgb(230, 120, 20), rgb(20, 40, 120)}
	sweepLuma  = byte(white)
)

// patternLayout is where the parts of frame n of a w×h pattern are.
type patternLayout struct {
	w, h          int
	stampEnd      int // first row below the stamp
	barsEnd       int // first row of the ramp
	boxX, boxY    int // top-left corner of the box
	boxSize       int
	checker       int // size of the box's checker cells
	sweepX, sweep int // left edge and width of the sweeping bar
}

func layout(w, h int, frame uint64) patternLayout {
	l := patternLayout{w: w, h: h, stampEnd: stampHeight(h)}
	l.barsEnd = l.stampEnd + (h-l.stampEnd)*2/3
	l.boxSize = max(2, min(w/8, h-l.stampEnd))
	l.checker = max(1, l.boxSize/8)
	f := frame & (1<<stampFrameBits - 1)
	l.boxX = bounce(f*uint64(max(1, w/160)), w-l.boxSize)
	l.boxY = l.stampEnd + bounce(f*uint64(max(1, h/120)), h-l.stampEnd-l.boxSize)
	l.sweep = max(2, w/64)
	l.sweepX = int(f * uint64(max(1, w/90)) % uint64(w))
	return l
}

// bounce returns t folded into [0, span] as a ball bouncing between 0 and
// span.
func bounce(t uint64, span int) int {
	if span <= 0 {
		return 0
	}
	p := t % uint64(2*span)
	if p > uint64(span) {
		p = uint64(2*span) - p
	}
	return int(p)
}

// texture is a fixed pseudo-random value in [-12, 12] for pixel (x, y).
func texture(x, y int) int {
	h := uint32(x)*0x9e3779b1 ^ uint32(y)*0x85ebca77
	h ^= h >> 15
	h *= 0x2c1b3c6d
	h ^= h >> 12
	return int(h>>24)%25 - 12
}

// Render draws frame number frame of the test pattern, captured at
// captured, into dst (4:2:0, any size of at least 32×24). The picture is a
// pure function of the frame number (modulo 2^40), the capture time to the
// microsecond, and the size: so Render(dst, frame, captured) with the values
// ReadStamp returns regenerates exactly the picture that was sent. It panics
// if dst is not a 4:2:0 picture.
func Render(dst *image.YCbCr, frame uint64, captured time.Time) {
	must420("Render", dst)
	w, h := dst.Rect.Dx(), dst.Rect.Dy()
	l := layout(w, h, frame)
	for y := l.stampEnd; y < h; y++ {
		l.lumaRow(yRow(dst, y), y)
	}
	_, ch := chromaSize(dst)
	for cy := (l.stampEnd + 1) / 2; cy < ch; cy++ {
		cb, cr := cRows(dst, cy)
		l.chromaRow(cb, cr, 2*cy)
	}
	drawStamp(dst, frame, captured)
}

// lumaRow draws row y (below the stamp) of the Y plane.
func (l *patternLayout) lumaRow(row []byte, y int) {
	w := l.w
	if y < l.barsEnd {
		for i, c := range barColours {
			fill(row[i*w/len(barColours):(i+1)*w/len(barColours)], c.y)
		}
	} else {
		for x := range row {
			v := 16 + 219*x/max(1, w-1) + texture(x, y)
			row[x] = byte(min(235, max(16, v)))
		}
	}
	if y >= l.boxY && y < l.boxY+l.boxSize {
		cy := (y - l.boxY) / l.checker
		for x := l.boxX; x < l.boxX+l.boxSize; x++ {
			row[x] = boxColours[(cy+(x-l.boxX)/l.checker)&1].y
		}
	}
	fill(row[l.sweepX:min(w, l.sweepX+l.sweep)], sweepLuma)
}

// chromaRow draws the chroma row whose samples sit at luma row y.
func (l *patternLayout) chromaRow(cb, cr []byte, y int) {
	w := l.w
	if y < l.barsEnd {
		for i, c := range barColours {
			lo, hi := (i*w/len(barColours)+1)/2, ((i+1)*w/len(barColours)+1)/2
			fill(cb[lo:hi], c.cb)
			fill(cr[lo:hi], c.cr)
		}
	} else {
		fill(cb, 128)
		fill(cr, 128)
	}
	if y >= l.boxY && y < l.boxY+l.boxSize {
		cy := (y - l.boxY) / l.checker
		for cx := (l.boxX + 1) / 2; cx < (l.boxX+l.boxSize+1)/2; cx++ {
			c := boxColours[(cy+(2*cx-l.boxX)/l.checker)&1]
			cb[cx], cr[cx] = c.cb, c.cr
		}
	}
	lo, hi := (l.sweepX+1)/2, (min(w, l.sweepX+l.sweep)+1)/2
	fill(cb[lo:hi], 128)
	fill(cr[lo:hi], 128)
}
