package video

import (
	"image"
	"math"
)

// PSNR returns the peak signal-to-noise ratio in dB between two pictures of
// the same size, over all three planes with the Y, Cb and Cr mean squared
// errors weighted 4:1:1:
//
//	10·log10(255² / ((4·MSE(Y) + MSE(Cb) + MSE(Cr)) / 6))
//
// Identical pictures give +Inf. It panics if a picture is not 4:2:0 or the
// sizes differ.
func PSNR(a, b *image.YCbCr) float64 {
	must420("PSNR", a)
	must420("PSNR", b)
	if a.Rect.Size() != b.Rect.Size() {
		panic("video.PSNR: pictures of different sizes")
	}
	w, h := a.Rect.Dx(), a.Rect.Dy()
	cw, ch := chromaSize(a)
	mseY := sse(a.Y, a.YStride, b.Y, b.YStride, w, h) / float64(w*h)
	mseCb := sse(a.Cb, a.CStride, b.Cb, b.CStride, cw, ch) / float64(cw*ch)
	mseCr := sse(a.Cr, a.CStride, b.Cr, b.CStride, cw, ch) / float64(cw*ch)
	mse := (4*mseY + mseCb + mseCr) / 6
	if mse == 0 {
		return math.Inf(1)
	}
	return 10 * math.Log10(255*255/mse)
}

// sse returns the sum of squared differences of two w×h planes.
func sse(a []byte, as int, b []byte, bs int, w, h int) float64 {
	var total uint64
	for y := range h {
		ra, rb := a[y*as:y*as+w], b[y*bs:y*bs+w]
		var s uint64
		for x, v := range ra {
			d := int(v) - int(rb[x])
			s += uint64(d * d)
		}
		total += s
	}
	return float64(total)
}
