package video

import (
	"image"
	"image/color"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

func randomPicture(rng *rand.Rand, w, h int) *image.YCbCr {
	img := NewI420(w, h)
	for _, p := range [][]byte{img.Y, img.Cb, img.Cr} {
		for i := range p {
			p[i] = byte(rng.UintN(256))
		}
	}
	return img
}

func TestScaleSameSizeCopies(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	src := randomPicture(rng, 91, 47)
	dst := NewI420(91, 47)
	Scale(dst, src)
	if !equalPictures(dst, src) {
		t.Fatal("Scale to the same size is not a copy")
	}
}

func TestScaleKeepsFlatColour(t *testing.T) {
	for _, sz := range [][4]int{{640, 360, 320, 180}, {640, 360, 427, 240}, {320, 180, 640, 360}, {100, 100, 33, 77}, {7, 5, 640, 3}, {1, 1, 9, 9}, {9, 9, 1, 1}} {
		src := NewI420(sz[0], sz[1])
		fill(src.Y, 77)
		fill(src.Cb, 200)
		fill(src.Cr, 3)
		dst := NewI420(sz[2], sz[3])
		Scale(dst, src)
		for _, c := range []struct {
			p    []byte
			want byte
		}{{dst.Y, 77}, {dst.Cb, 200}, {dst.Cr, 3}} {
			for i, v := range c.p {
				if v != c.want {
					t.Fatalf("Scale %v: sample %d = %d, want %d", sz, i, v, c.want)
				}
			}
		}
	}
}

// referenceScale is a float64 area-average / bilinear resampler of one
// plane, the model Scale follows.
func referenceScale(dst []byte, dw, dh int, src []byte, sw, sh int) {
	weights := func(s, n int) [][]float64 {
		out := make([][]float64, n)
		for i := range out {
			out[i] = make([]float64, s)
			switch {
			case s == n:
				out[i][i] = 1
			case s > n:
				a, b := float64(i)*float64(s)/float64(n), float64(i+1)*float64(s)/float64(n)
				for j := range s {
					if o := math.Min(b, float64(j+1)) - math.Max(a, float64(j)); o > 0 {
						out[i][j] = o * float64(n) / float64(s)
					}
				}
			default:
				p := (float64(i)+0.5)*float64(s)/float64(n) - 0.5
				p = math.Max(0, math.Min(p, float64(s-1)))
				j := int(p)
				f := p - float64(j)
				out[i][j] += 1 - f
				if f > 0 {
					out[i][j+1] += f
				}
			}
		}
		return out
	}
	hw, vw := weights(sw, dw), weights(sh, dh)
	for y := range dh {
		for x := range dw {
			var v float64
			for j := range sh {
				if vw[y][j] == 0 {
					continue
				}
				for i := range sw {
					v += vw[y][j] * hw[x][i] * float64(src[j*sw+i])
				}
			}
			dst[y*dw+x] = byte(math.Round(v))
		}
	}
}

func TestScaleMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, sz := range [][4]int{{64, 36, 32, 18}, {64, 36, 43, 24}, {32, 18, 64, 36}, {50, 30, 71, 13}, {17, 9, 5, 3}, {3, 40, 30, 4}} {
		src := randomPicture(rng, sz[0], sz[1])
		dst := NewI420(sz[2], sz[3])
		Scale(dst, src)
		ref := make([]byte, sz[2]*sz[3])
		referenceScale(ref, sz[2], sz[3], src.Y, sz[0], sz[1])
		for i := range ref {
			if d := int(ref[i]) - int(dst.Y[i]); d < -1 || d > 1 {
				t.Fatalf("Scale %v: Y[%d] = %d, reference %d", sz, i, dst.Y[i], ref[i])
			}
		}
	}
}

func TestScaleDownHalvesExactly(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	src := randomPicture(rng, 64, 36)
	dst := NewI420(32, 18)
	Scale(dst, src)
	for y := range 18 {
		for x := range 32 {
			s := int(src.Y[2*y*64+2*x]) + int(src.Y[2*y*64+2*x+1]) + int(src.Y[(2*y+1)*64+2*x]) + int(src.Y[(2*y+1)*64+2*x+1])
			if want := byte((s + 2) / 4); dst.Y[y*32+x] != want {
				t.Fatalf("Y(%d,%d) = %d, want the 2×2 mean %d", x, y, dst.Y[y*32+x], want)
			}
		}
	}
}

func TestScaleSubImage(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	big := randomPicture(rng, 100, 80)
	sub := big.SubImage(image.Rect(10, 20, 74, 56)).(*image.YCbCr)
	flat := NewI420(64, 36)
	ToI420(flat, sub)
	a, b := NewI420(32, 18), NewI420(32, 18)
	Scale(a, sub)
	Scale(b, flat)
	if !equalPictures(a, b) {
		t.Fatal("Scale of a sub-picture differs from Scale of its copy")
	}
}

func TestScaleNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under the race detector")
	}
	src, dst := NewI420(640, 360), NewI420(320, 180)
	Scale(dst, src)
	if n := testing.AllocsPerRun(10, func() { Scale(dst, src) }); n != 0 {
		t.Errorf("Scale allocates %v times per call, want 0", n)
	}
}

func BenchmarkScale(b *testing.B) {
	for _, sz := range [][4]int{{640, 360, 320, 180}, {640, 360, 480, 270}, {1280, 720, 640, 360}, {320, 180, 640, 360}} {
		b.Run(image.Pt(sz[0], sz[1]).String()+"to"+image.Pt(sz[2], sz[3]).String(), func(b *testing.B) {
			src, dst := NewI420(sz[0], sz[1]), NewI420(sz[2], sz[3])
			Render(src, 1, time.Now())
			b.ReportAllocs()
			for b.Loop() {
				Scale(dst, src)
			}
		})
	}
}

func TestPSNR(t *testing.T) {
	a := NewI420(64, 36)
	Render(a, 3, time.Now())
	if got := PSNR(a, a); !math.IsInf(got, 1) {
		t.Errorf("PSNR(a, a) = %v, want +Inf", got)
	}
	b := NewI420(64, 36)
	copy(b.Y, a.Y)
	copy(b.Cb, a.Cb)
	copy(b.Cr, a.Cr)
	for i := range b.Y {
		b.Y[i] ^= 1 // every luma sample off by one: MSE(Y) = 1
	}
	if got, want := PSNR(a, b), 10*math.Log10(255*255*6/4.0); math.Abs(got-want) > 1e-9 {
		t.Errorf("PSNR(luma off by one) = %v, want %v", got, want)
	}
	for i := range b.Cb {
		b.Cb[i] = a.Cb[i] ^ 2 // MSE(Cb) = 4
	}
	if got, want := PSNR(a, b), 10*math.Log10(255*255*6/8.0); math.Abs(got-want) > 1e-9 {
		t.Errorf("PSNR(luma off by 1, Cb by 2) = %v, want %v", got, want)
	}
}

func TestToI420(t *testing.T) {
	rgba := image.NewRGBA(image.Rect(0, 0, 5, 3))
	for i := 0; i < len(rgba.Pix); i += 4 {
		rgba.Pix[i], rgba.Pix[i+1], rgba.Pix[i+2], rgba.Pix[i+3] = 200, 100, 50, 255
	}
	wy, wcb, wcr := color.RGBToYCbCr(200, 100, 50)
	checkFlat := func(name string, img *image.YCbCr, y, cb, cr byte) {
		t.Helper()
		if !is420(img) {
			t.Fatalf("%s: not 4:2:0", name)
		}
		for _, c := range []struct {
			p    []byte
			want byte
		}{{img.Y, y}, {img.Cb, cb}, {img.Cr, cr}} {
			for i, v := range c.p {
				if v != c.want {
					t.Fatalf("%s: sample %d = %d, want %d", name, i, v, c.want)
				}
			}
		}
	}
	checkFlat("RGBA", ToI420(nil, rgba), wy, wcb, wcr)
	bgrx := make([]byte, 4*5*3+7*3) // rows of 27 bytes
	for y := range 3 {
		for x := range 5 {
			copy(bgrx[y*27+4*x:], []byte{50, 100, 200, 0})
		}
	}
	checkFlat("BGRX", RGB32ToI420(nil, bgrx, 27, 5, 3, 2, 1, 0), wy, wcb, wcr)
	nrgba := image.NewNRGBA(rgba.Rect)
	copy(nrgba.Pix, rgba.Pix)
	checkFlat("NRGBA", ToI420(nil, nrgba), wy, wcb, wcr)
	gray := image.NewGray(rgba.Rect)
	fill(gray.Pix, 99)
	checkFlat("Gray", ToI420(nil, gray), 99, 128, 128)

	for _, ratio := range []image.YCbCrSubsampleRatio{image.YCbCrSubsampleRatio444, image.YCbCrSubsampleRatio422, image.YCbCrSubsampleRatio440, image.YCbCrSubsampleRatio411, image.YCbCrSubsampleRatio410, image.YCbCrSubsampleRatio420} {
		src := image.NewYCbCr(image.Rect(0, 0, 7, 5), ratio)
		fill(src.Y, 50)
		fill(src.Cb, 60)
		fill(src.Cr, 70)
		checkFlat(ratio.String(), ToI420(nil, src), 50, 60, 70)
	}
	// 4:2:2: each output chroma sample is the mean of two rows.
	src := image.NewYCbCr(image.Rect(0, 0, 4, 2), image.YCbCrSubsampleRatio422)
	copy(src.Cb, []byte{10, 20, 30, 41})
	dst := ToI420(nil, src)
	if dst.Cb[0] != 20 || dst.Cb[1] != 31 {
		t.Errorf("4:2:2 chroma %v, want [20 31]", dst.Cb[:2])
	}
	// The destination is reused when it fits.
	if got := ToI420(dst, src); got != dst {
		t.Error("ToI420 did not reuse a destination of the right size")
	}
}
