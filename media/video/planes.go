package video

import (
	"fmt"
	"image"
)

// Size limits for pictures made or read here. Larger declared sizes are
// rejected before anything is allocated.
const (
	MaxWidth  = 4096
	MaxHeight = 4096
	MaxPixels = 4096 * 2304 // 4K UHD (3840×2160) fits
)

// NewI420 returns a new 4:2:0 picture of w×h pixels, black.
func NewI420(w, h int) *image.YCbCr {
	img := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
	for i := range img.Y {
		img.Y[i] = 16
	}
	for i := range img.Cb {
		img.Cb[i] = 128
		img.Cr[i] = 128
	}
	return img
}

// checkSize reports whether w×h is a picture size this package accepts.
func checkSize(w, h int) error {
	if w < 1 || h < 1 || w > MaxWidth || h > MaxHeight || w*h > MaxPixels {
		return fmt.Errorf("picture size %d×%d out of range (1×1 to %d×%d, at most %d pixels)", w, h, MaxWidth, MaxHeight, MaxPixels)
	}
	return nil
}

// is420 reports whether img is a 4:2:0 picture whose planes hold its
// rectangle.
func is420(img *image.YCbCr) bool {
	if img == nil || img.SubsampleRatio != image.YCbCrSubsampleRatio420 || img.Rect.Empty() {
		return false
	}
	w, h := img.Rect.Dx(), img.Rect.Dy()
	cw, ch := chromaSize(img)
	return img.YStride >= w && img.CStride >= cw &&
		len(img.Y) >= (h-1)*img.YStride+w &&
		len(img.Cb) >= (ch-1)*img.CStride+cw && len(img.Cr) >= (ch-1)*img.CStride+cw
}

func must420(fn string, img *image.YCbCr) {
	if !is420(img) {
		panic("video." + fn + ": not a 4:2:0 picture")
	}
}

// chromaSize returns the size of img's chroma planes (4:2:0).
func chromaSize(img *image.YCbCr) (cw, ch int) {
	r := img.Rect
	return (r.Max.X+1)/2 - r.Min.X/2, (r.Max.Y+1)/2 - r.Min.Y/2
}

// yRow returns row y (0 = the picture's top row) of img's Y plane.
func yRow(img *image.YCbCr, y int) []byte {
	i := y * img.YStride
	return img.Y[i : i+img.Rect.Dx()]
}

// cRows returns row cy (0 = top) of img's Cb and Cr planes.
func cRows(img *image.YCbCr, cy int) (cb, cr []byte) {
	cw, _ := chromaSize(img)
	i := cy * img.CStride
	return img.Cb[i : i+cw], img.Cr[i : i+cw]
}
