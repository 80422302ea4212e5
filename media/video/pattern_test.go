package video

import (
	"errors"
	"image"
	"math/rand/v2"
	"testing"
	"testing/synctest"
	"time"
)

// raceEnabled is set when the race detector runs: it makes sync.Pool drop
// items, so allocation counts are not checked then.
var raceEnabled bool

func TestStampRoundTrip(t *testing.T) {
	img := NewI420(640, 360)
	times := []time.Time{
		time.Date(2026, 3, 1, 12, 30, 45, 123456789, time.UTC),
		time.UnixMicro(0),
		time.Date(2200, 1, 1, 0, 0, 0, 999, time.UTC),
	}
	frames := []uint64{0, 1, 29, 12345, 1<<40 - 1}
	for _, ct := range times {
		for _, n := range frames {
			Render(img, n, ct)
			got, gotN, ok := ReadStamp(img)
			want := ct.Truncate(time.Microsecond)
			if !ok || !got.Equal(want) || gotN != n {
				t.Errorf("ReadStamp(Render(%d, %v)) = %v, %d, %v, want %v, %d, true", n, ct, got, gotN, ok, want, n)
			}
		}
	}
	// Frame numbers wrap at 2^40; times before the epoch stamp as 0.
	Render(img, 1<<40+7, time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC))
	if got, n, ok := ReadStamp(img); !ok || n != 7 || !got.Equal(time.UnixMicro(0)) {
		t.Errorf("ReadStamp(Render(2^40+7, 1960)) = %v, %d, %v, want %v, 7, true", got, n, ok, time.UnixMicro(0))
	}
}

func TestStampSurvivesScaling(t *testing.T) {
	src := NewI420(640, 360)
	ct := time.Date(2026, 5, 6, 7, 8, 9, 10_000, time.UTC)
	Render(src, 987654, ct)
	for _, sz := range []image.Point{{320, 180}, {160, 90}, {1280, 720}, {360, 360}, {427, 240}, {641, 359}} {
		dst := NewI420(sz.X, sz.Y)
		Scale(dst, src)
		got, n, ok := ReadStamp(dst)
		if !ok || n != 987654 || !got.Equal(ct) {
			t.Errorf("ReadStamp(scaled to %v) = %v, %d, %v, want %v, 987654, true", sz, got, n, ok, ct)
		}
	}
	// Rendered directly at other sizes.
	for _, sz := range []image.Point{{320, 180}, {32, 24}, {1920, 1080}, {333, 211}} {
		img := NewI420(sz.X, sz.Y)
		Render(img, 42, ct)
		if got, n, ok := ReadStamp(img); !ok || n != 42 || !got.Equal(ct) {
			t.Errorf("ReadStamp(Render at %v) = %v, %d, %v, want %v, 42, true", sz, got, n, ok, ct)
		}
	}
}

func TestReadStampRejects(t *testing.T) {
	if _, _, ok := ReadStamp(nil); ok {
		t.Error("ReadStamp(nil) ok")
	}
	if _, _, ok := ReadStamp(NewI420(640, 360)); ok {
		t.Error("ReadStamp(black picture) ok")
	}
	if _, _, ok := ReadStamp(NewI420(16, 8)); ok {
		t.Error("ReadStamp(16×8 picture) ok")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	noise := NewI420(320, 180)
	for range 200 {
		for i := range noise.Y {
			noise.Y[i] = byte(rng.UintN(256))
		}
		if _, _, ok := ReadStamp(noise); ok {
			t.Fatal("ReadStamp(noise) ok")
		}
	}
	// Random cells with valid sync cells: only the magic and the CRC can
	// tell.
	img := NewI420(320, 180)
	for range 2000 {
		drawStamp(img, rng.Uint64(), time.UnixMicro(rng.Int64N(1<<55)))
		for r := range stampRows {
			for c := range stampDataCols {
				if rng.IntN(2) == 0 {
					flipCell(img, r, 2+c)
				}
			}
		}
		if _, _, ok := ReadStamp(img); ok {
			t.Fatal("ReadStamp(random cells) ok")
		}
	}
	// Any single flipped data cell is detected.
	ct := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for r := range stampRows {
		for c := range stampDataCols {
			drawStamp(img, 1000, ct)
			flipCell(img, r, 2+c)
			if got, n, ok := ReadStamp(img); ok {
				t.Fatalf("ReadStamp(cell %d,%d flipped) = %v, %d, true, want ok false", r, c, got, n)
			}
		}
	}
}

// flipCell inverts stamp cell (r, c) of img.
func flipCell(img *image.YCbCr, r, c int) {
	w, h := img.Rect.Dx(), img.Rect.Dy()
	for y := cellY(r, h); y < cellY(r+1, h); y++ {
		row := yRow(img, y)
		for x := cellX(c, w); x < cellX(c+1, w); x++ {
			row[x] = white + black - row[x]
		}
	}
}

func TestRenderIsPure(t *testing.T) {
	ct := time.Date(2026, 7, 1, 0, 0, 0, 500_000_100, time.UTC)
	a, b := NewI420(640, 360), NewI420(640, 360)
	Render(a, 77, ct)
	Render(b, 300, ct.Add(time.Hour)) // other content first
	Render(b, 77, ct.Add(300*time.Nanosecond))
	if !equalPictures(a, b) {
		t.Fatal("Render(77, t) differs between calls (or depends on more than the microsecond)")
	}
	got, n, ok := ReadStamp(a)
	if !ok {
		t.Fatal("no stamp")
	}
	Render(b, n, got)
	if !equalPictures(a, b) {
		t.Fatal("Render(ReadStamp(Render(77, t))) differs from Render(77, t)")
	}
}

func TestRenderMoves(t *testing.T) {
	ct := time.Now()
	a, b := NewI420(640, 360), NewI420(640, 360)
	for n := uint64(0); n < 30; n++ {
		Render(a, n, ct)
		Render(b, n+1, ct)
		sh := stampHeight(360)
		if PSNR(crop(a, sh), crop(b, sh)) > 40 {
			t.Fatalf("frames %d and %d hardly differ below the stamp", n, n+1)
		}
	}
}

// crop returns the part of img below row y0.
func crop(img *image.YCbCr, y0 int) *image.YCbCr {
	y0 &^= 1
	return img.SubImage(image.Rect(0, y0, img.Rect.Dx(), img.Rect.Dy())).(*image.YCbCr)
}

func equalPictures(a, b *image.YCbCr) bool {
	if a.Rect.Size() != b.Rect.Size() {
		return false
	}
	for y := range a.Rect.Dy() {
		if string(yRow(a, y)) != string(yRow(b, y)) {
			return false
		}
	}
	_, ch := chromaSize(a)
	for cy := range ch {
		acb, acr := cRows(a, cy)
		bcb, bcr := cRows(b, cy)
		if string(acb) != string(bcb) || string(acr) != string(bcr) {
			return false
		}
	}
	return true
}

func TestNewTestPatternErrors(t *testing.T) {
	for _, cfg := range []PatternConfig{
		{Width: 16, Height: 16},
		{Width: 8192, Height: 8192},
		{Width: 640, Height: 0},
		{FrameRate: -1},
		{FrameRate: 5000},
	} {
		if p, err := NewTestPattern(cfg); err == nil {
			p.Close()
			t.Errorf("NewTestPattern(%+v) succeeded", cfg)
		}
	}
}

func TestTestPatternPacing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, err := NewTestPattern(PatternConfig{})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		start := time.Now()
		read := func() (uint64, time.Time) {
			t.Helper()
			img, ct, err := p.ReadFrame()
			if err != nil {
				t.Fatal(err)
			}
			if img.Rect.Dx() != 640 || img.Rect.Dy() != 360 {
				t.Fatalf("picture size %v, want 640×360", img.Rect.Size())
			}
			got, n, ok := ReadStamp(img)
			if !ok || !got.Equal(ct.Truncate(time.Microsecond)) {
				t.Fatalf("stamp %v, %v, want capture time %v", got, ok, ct)
			}
			return n, ct
		}
		due := func(n uint64) time.Time {
			return start.Add((time.Duration(n)*time.Second + 29) / 30)
		}
		for want := uint64(0); want < 5; want++ {
			n, ct := read()
			if n != want || !ct.Equal(due(want)) || !time.Now().Equal(due(want)) {
				t.Fatalf("frame %d at %v, want frame %d at %v", n, ct.Sub(start), want, due(want).Sub(start))
			}
		}
		// A caller 100 ms late gets the frame due now at once, and the
		// frames it missed are skipped.
		time.Sleep(due(4).Add(100 * time.Millisecond).Sub(time.Now()))
		before := time.Now()
		if n, ct := read(); n != 7 || !ct.Equal(before) {
			t.Fatalf("late read: frame %d at %v, want frame 7 at once (%v)", n, ct.Sub(start), before.Sub(start))
		}
		if n, ct := read(); n != 8 || !ct.Equal(due(8)) {
			t.Fatalf("frame %d at %v, want 8 at %v", n, ct.Sub(start), due(8).Sub(start))
		}
	})
}

func TestTestPatternCloseUnblocks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, err := NewTestPattern(PatternConfig{FrameRate: 1})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := p.ReadFrame(); err != nil {
			t.Fatal(err)
		}
		errc := make(chan error, 1)
		go func() {
			_, _, err := p.ReadFrame()
			errc <- err
		}()
		synctest.Wait() // the reader waits for frame 1
		p.Close()
		if err := <-errc; !errors.Is(err, ErrClosed) {
			t.Fatalf("ReadFrame during Close = %v, want ErrClosed", err)
		}
		if _, _, err := p.ReadFrame(); !errors.Is(err, ErrClosed) {
			t.Fatalf("ReadFrame after Close = %v, want ErrClosed", err)
		}
	})
}

func TestTestPatternNoAllocs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, err := NewTestPattern(PatternConfig{Width: 320, Height: 180})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		p.ReadFrame()
		p.ReadFrame() // makes the timer
		if n := testing.AllocsPerRun(20, func() { p.ReadFrame() }); n != 0 {
			t.Errorf("ReadFrame allocates %v times per frame, want 0", n)
		}
	})
}

func BenchmarkRender(b *testing.B) {
	img := NewI420(640, 360)
	ct := time.Now()
	b.ReportAllocs()
	var n uint64
	for b.Loop() {
		Render(img, n, ct)
		n++
	}
}

func BenchmarkReadStamp(b *testing.B) {
	img := NewI420(640, 360)
	Render(img, 5, time.Now())
	b.ReportAllocs()
	for b.Loop() {
		ReadStamp(img)
	}
}
