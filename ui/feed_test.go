package ui

import (
	"image"
	"image/color"
	"sync"
	"testing"
)

func TestVideoFeedReusesPictures(t *testing.T) {
	var calls int
	f := NewVideoFeed(func() { calls++ })
	if pic, fresh := f.Take(); pic != nil || fresh {
		t.Fatalf("Take before Put = %v, %v", pic, fresh)
	}
	a := solidPicture(64, 48, rgba(255, 0, 0))
	b := solidPicture(64, 48, rgba(0, 0, 255))
	f.Put(a)
	p1, fresh := f.Take()
	if p1 == nil || !fresh {
		t.Fatal("no new picture after Put")
	}
	if p, fresh := f.Take(); p != p1 || fresh {
		t.Errorf("Take without Put = %p, %v; want the same picture, not new", p, fresh)
	}
	// Warm up: three pictures circulate.
	for range 3 {
		f.Put(b)
		f.Take()
	}
	if n := testing.AllocsPerRun(200, func() {
		f.Put(a)
		f.Take()
	}); n != 0 {
		t.Errorf("Put+Take allocate %v times in steady state, want 0", n)
	}
	if n := testing.AllocsPerRun(200, func() {
		f.Put(a)
		f.Put(b)
		f.Take()
	}); n != 0 {
		t.Errorf("Put+Put+Take allocate %v times in steady state, want 0", n)
	}
	if f.Frames() < 400 || calls != int(f.Frames()) {
		t.Errorf("Frames = %d, changed called %d times", f.Frames(), calls)
	}
	// The picture the window holds stays untouched by later Puts.
	held, _ := f.Take()
	want := append([]byte(nil), held.Pix...)
	f.Put(a)
	f.Put(b)
	f.Put(a)
	for i := range want {
		if held.Pix[i] != want[i] {
			t.Fatal("Put wrote into the picture the window holds")
		}
	}
	// A new size makes a new picture.
	f.Put(solidPicture(32, 24, rgba(0, 255, 0)))
	if p, _ := f.Take(); p.Rect.Dx() != 32 || p.Rect.Dy() != 24 {
		t.Errorf("picture %v after a 32×24 Put", p.Rect)
	}
	f.Clear()
	if p, fresh := f.Take(); p != nil || fresh {
		t.Errorf("Take after Clear = %v, %v", p, fresh)
	}
}

func TestVideoFeedConcurrent(t *testing.T) {
	f := NewVideoFeed(nil)
	pic := solidPicture(32, 32, rgba(10, 200, 10))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 500 {
			f.Put(pic)
		}
	}()
	for range 500 {
		if p, _ := f.Take(); p != nil && p.Pix[1] < 150 {
			t.Errorf("torn picture: green %d", p.Pix[1])
			break
		}
	}
	wg.Wait()
}

func TestYCbCrToRGBA(t *testing.T) {
	for _, c := range []color.RGBA{
		{0, 0, 0, 255}, {255, 255, 255, 255}, {255, 0, 0, 255}, {0, 255, 0, 255}, {0, 0, 255, 255},
		{128, 128, 128, 255}, {255, 255, 0, 255}, {0, 255, 255, 255}, {255, 0, 255, 255}, {76, 140, 200, 255},
	} {
		src := solidPicture(6, 4, c)
		dst := image.NewRGBA(image.Rect(0, 0, 6, 4))
		yCbCrToRGBA(dst, src)
		// What the standard library makes of the same YCbCr values.
		yy, cb, cr := color.RGBToYCbCr(c.R, c.G, c.B)
		wr, wg, wb := color.YCbCrToRGB(yy, cb, cr)
		for i := 0; i < len(dst.Pix); i += 4 {
			p := dst.Pix[i : i+4]
			if absDiff(p[0], wr) > 1 || absDiff(p[1], wg) > 1 || absDiff(p[2], wb) > 1 || p[3] != 255 {
				t.Fatalf("yCbCrToRGBA(%v) = %v at %d, want %d %d %d 255", c, p, i/4, wr, wg, wb)
			}
			// And close to the colour itself (YCbCr rounding).
			if absDiff(p[0], c.R) > 3 || absDiff(p[1], c.G) > 3 || absDiff(p[2], c.B) > 3 {
				t.Fatalf("yCbCrToRGBA(%v) = %v, far from the colour", c, p)
			}
		}
	}
	// A picture that is not at the origin, with odd sizes, and chroma that
	// differs between the 2×2 blocks.
	src := image.NewYCbCr(image.Rect(3, 5, 10, 10), image.YCbCrSubsampleRatio420)
	for i := range src.Y {
		src.Y[i] = uint8(i * 7)
	}
	for i := range src.Cb {
		src.Cb[i], src.Cr[i] = uint8(40+i*13), uint8(200-i*11)
	}
	dst := image.NewRGBA(image.Rect(0, 0, 7, 5))
	yCbCrToRGBA(dst, src)
	for y := range 5 {
		for x := range 7 {
			want := color.RGBAModel.Convert(src.At(3+x, 5+y)).(color.RGBA)
			o := dst.PixOffset(x, y)
			got := dst.Pix[o : o+4]
			if absDiff(got[0], want.R) > 1 || absDiff(got[1], want.G) > 1 || absDiff(got[2], want.B) > 1 {
				t.Errorf("pixel (%d,%d) = %v, want %v", x, y, got, want)
			}
		}
	}
}
