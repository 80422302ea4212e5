package video

import (
	"image"
	"image/color"
)

// ToI420 converts src to a 4:2:0 picture of the same size, stored in dst if
// dst is a 4:2:0 picture of that size (else in a new picture), and returns
// it. Cameras and screen grabbers deliver other layouts (4:2:2 YUYV, JPEG's
// 4:2:2 or 4:4:4, RGBA): chroma is averaged over each 2×2 block, and RGB is
// converted with image/color's formulas (JFIF, full range), as Go's image
// packages convert back. src must not be dst.
func ToI420(dst *image.YCbCr, src image.Image) *image.YCbCr {
	r := src.Bounds()
	w, h := r.Dx(), r.Dy()
	if dst == nil || !is420(dst) || dst.Rect.Dx() != w || dst.Rect.Dy() != h {
		dst = image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
	}
	if w == 0 || h == 0 {
		return dst
	}
	switch s := src.(type) {
	case *image.YCbCr:
		ycbcrToI420(dst, s)
	case *image.RGBA:
		RGB32ToI420(dst, s.Pix[s.PixOffset(r.Min.X, r.Min.Y):], s.Stride, w, h, 0, 1, 2)
	case *image.Gray:
		for y := range h {
			copy(yRow(dst, y), s.Pix[s.PixOffset(r.Min.X, r.Min.Y+y):][:w])
		}
		_, ch := chromaSize(dst)
		for cy := range ch {
			cb, cr := cRows(dst, cy)
			fill(cb, 128)
			fill(cr, 128)
		}
	default:
		genericToI420(dst, src)
	}
	return dst
}

// ycbcrToI420 copies the Y plane and averages each 2×2 block's chroma.
func ycbcrToI420(dst, src *image.YCbCr) {
	w, h := dst.Rect.Dx(), dst.Rect.Dy()
	r := src.Rect
	for y := range h {
		i := src.YOffset(r.Min.X, r.Min.Y+y)
		copy(yRow(dst, y), src.Y[i:i+w])
	}
	cw, ch := chromaSize(dst)
	if src.SubsampleRatio == image.YCbCrSubsampleRatio420 && r.Min.X%2 == 0 && r.Min.Y%2 == 0 {
		for cy := range ch {
			cb, cr := cRows(dst, cy)
			i := src.COffset(r.Min.X, r.Min.Y+2*cy)
			copy(cb, src.Cb[i:i+cw])
			copy(cr, src.Cr[i:i+cw])
		}
		return
	}
	for cy := range ch {
		cb, cr := cRows(dst, cy)
		y0 := r.Min.Y + 2*cy
		y1 := min(y0+1, r.Max.Y-1)
		for cx := range cw {
			x0 := r.Min.X + 2*cx
			x1 := min(x0+1, r.Max.X-1)
			a, b := src.COffset(x0, y0), src.COffset(x1, y0)
			c, d := src.COffset(x0, y1), src.COffset(x1, y1)
			cb[cx] = byte((int(src.Cb[a]) + int(src.Cb[b]) + int(src.Cb[c]) + int(src.Cb[d]) + 2) / 4)
			cr[cx] = byte((int(src.Cr[a]) + int(src.Cr[b]) + int(src.Cr[c]) + int(src.Cr[d]) + 2) / 4)
		}
	}
}

// RGB32ToI420 converts w×h pixels of 4 bytes each, rows stride bytes apart
// starting at pix, into dst (a 4:2:0 picture of that size, else a new one)
// and returns it. r, g and b are the byte offsets of the colours within a
// pixel (0, 1, 2 for RGBA; 2, 1, 0 for the BGRX of X11 and most frame
// buffers); the fourth byte is ignored. The conversion is ToI420's.
func RGB32ToI420(dst *image.YCbCr, pix []byte, stride, w, h, r, g, b int) *image.YCbCr {
	if dst == nil || !is420(dst) || dst.Rect.Dx() != w || dst.Rect.Dy() != h {
		dst = image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
	}
	if w <= 0 || h <= 0 {
		return dst
	}
	if r|g|b < 0 || r > 3 || g > 3 || b > 3 || stride < 4*w || len(pix) < (h-1)*stride+4*w {
		panic("video.RGB32ToI420: bad pixel layout")
	}
	for y := range h {
		row, in := yRow(dst, y), pix[y*stride:y*stride+4*w]
		for x := range row {
			p := in[4*x : 4*x+4]
			row[x] = luma(int32(p[r]), int32(p[g]), int32(p[b]))
		}
	}
	cw, ch := chromaSize(dst)
	for cy := range ch {
		cb, cr := cRows(dst, cy)
		y0 := 2 * cy
		y1 := min(y0+1, h-1)
		for cx := range cw {
			x0 := 2 * cx
			x1 := min(x0+1, w-1)
			var sr, sg, sb int32
			for _, o := range [4]int{y0*stride + 4*x0, y0*stride + 4*x1, y1*stride + 4*x0, y1*stride + 4*x1} {
				sr += int32(pix[o+r])
				sg += int32(pix[o+g])
				sb += int32(pix[o+b])
			}
			cb[cx], cr[cx] = chroma((sr+2)/4, (sg+2)/4, (sb+2)/4)
		}
	}
	return dst
}

// genericToI420 converts any image through its colour model.
func genericToI420(dst *image.YCbCr, src image.Image) {
	r := src.Bounds()
	w, h := r.Dx(), r.Dy()
	rgb := func(x, y int) (int32, int32, int32) {
		c := color.RGBAModel.Convert(src.At(r.Min.X+x, r.Min.Y+y)).(color.RGBA)
		return int32(c.R), int32(c.G), int32(c.B)
	}
	for y := range h {
		row := yRow(dst, y)
		for x := range row {
			row[x] = luma(rgb(x, y))
		}
	}
	cw, ch := chromaSize(dst)
	for cy := range ch {
		cb, cr := cRows(dst, cy)
		for cx := range cw {
			var sr, sg, sb int32
			for _, p := range [4]image.Point{{2 * cx, 2 * cy}, {2*cx + 1, 2 * cy}, {2 * cx, 2*cy + 1}, {2*cx + 1, 2*cy + 1}} {
				r, g, b := rgb(min(p.X, w-1), min(p.Y, h-1))
				sr, sg, sb = sr+r, sg+g, sb+b
			}
			cb[cx], cr[cx] = chroma((sr+2)/4, (sg+2)/4, (sb+2)/4)
		}
	}
}

// luma and chroma are image/color's RGBToYCbCr, split.
func luma(r, g, b int32) byte {
	return byte((19595*r + 38470*g + 7471*b + 1<<15) >> 16)
}

func chroma(r, g, b int32) (byte, byte) {
	cb := -11056*r - 21712*g + 32768*b + 257<<15
	if uint32(cb)&0xff000000 == 0 {
		cb >>= 16
	} else {
		cb = ^(cb >> 31)
	}
	cr := 32768*r - 27440*g - 5328*b + 257<<15
	if uint32(cr)&0xff000000 == 0 {
		cr >>= 16
	} else {
		cr = ^(cr >> 31)
	}
	return byte(cb), byte(cr)
}
