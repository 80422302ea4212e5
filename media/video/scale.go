package video

import (
	"image"
	"sync"
)

// Scale resizes src into dst, to dst's size. Both are 4:2:0 pictures; it
// panics otherwise. A dimension that shrinks is area averaged (each output
// pixel is the mean of the source area it covers, with fractional edge
// weights); one that grows is interpolated bilinearly; an equal size is
// copied. Each plane is scaled on its own. Scale allocates nothing once it has
// seen a pair of sizes (it keeps its filter tables in a pool).
func Scale(dst, src *image.YCbCr) {
	must420("Scale", dst)
	must420("Scale", src)
	s := scalers.Get().(*scaler)
	defer scalers.Put(s)
	dw, dh := dst.Rect.Dx(), dst.Rect.Dy()
	sw, sh := src.Rect.Dx(), src.Rect.Dy()
	s.plane(&s.luma, dst.Y, dst.YStride, dw, dh, src.Y, src.YStride, sw, sh)
	dcw, dch := chromaSize(dst)
	scw, sch := chromaSize(src)
	s.plane(&s.chroma, dst.Cb, dst.CStride, dcw, dch, src.Cb, src.CStride, scw, sch)
	s.plane(&s.chroma, dst.Cr, dst.CStride, dcw, dch, src.Cr, src.CStride, scw, sch)
}

var scalers = sync.Pool{New: func() any { return new(scaler) }}

// scaler holds the filter tables for one luma and one chroma size pair and
// a row buffer.
type scaler struct {
	luma, chroma struct{ h, v filter }
	tmp          []uint32
}

// weightBits is the precision of the filter weights: each output sample's
// weights sum to 1<<weightBits.
const weightBits = 14

// filter maps n output samples to taps consecutive input samples each.
type filter struct {
	src, n int     // input and output lengths it was built for
	taps   int     // input samples per output sample
	start  []int   // first input sample of output sample i
	weight []int32 // n×taps weights; each output's sum to 1<<weightBits
}

// build makes f map src input samples to n output samples, unless it
// already does.
func (f *filter) build(src, n int) {
	if f.src == src && f.n == n && f.start != nil {
		return
	}
	f.src, f.n = src, n
	// Contributions of the input samples to output i, in exact integer
	// arithmetic: output i covers [i·src, (i+1)·src) in units of 1/n
	// input samples.
	type tap struct{ j, w int }
	var taps [][]tap
	switch {
	case src == n:
		f.taps = 1
	case src > n: // area averaging
		f.taps = 0
		for i := range n {
			a, b := i*src, (i+1)*src
			var t []tap
			for j := a / n; j*n < b; j++ {
				overlap := min(b, (j+1)*n) - max(a, j*n)
				t = append(t, tap{j, overlap})
			}
			taps = append(taps, t)
			f.taps = max(f.taps, len(t))
		}
	default: // bilinear
		f.taps = min(2, src)
	}
	f.start = make([]int, n)
	f.weight = make([]int32, n*f.taps)
	for i := range n {
		w := f.weight[i*f.taps : (i+1)*f.taps]
		switch {
		case src == n:
			f.start[i], w[0] = i, 1<<weightBits
		case src > n:
			t := taps[i]
			s := min(t[0].j, src-f.taps)
			f.start[i] = s
			sum, big := int32(0), 0
			for _, tp := range t {
				k := tp.j - s
				w[k] = int32((tp.w<<weightBits + src/2) / src)
				sum += w[k]
				if w[k] > w[big] {
					big = k
				}
			}
			w[big] += 1<<weightBits - sum
		default:
			// Sample centres: output i sits at input (i+0.5)·src/n - 0.5,
			// kept in units of 1/(2n).
			pos := (2*i+1)*src - n
			j, frac := 0, 0 // frac in units of 1/(2n)
			if pos > 0 {
				j, frac = pos/(2*n), pos%(2*n)
			}
			if j >= src-1 {
				j, frac = src-1, 0
			}
			s := min(j, src-f.taps)
			f.start[i] = s
			fw := int32((frac<<weightBits + n) / (2 * n))
			w[j-s] += 1<<weightBits - fw
			if fw != 0 {
				w[j-s+1] += fw
			}
		}
	}
}

// plane scales one plane of sw×sh samples into one of dw×dh.
func (s *scaler) plane(fs *struct{ h, v filter }, dst []byte, dstStride, dw, dh int, src []byte, srcStride, sw, sh int) {
	if dw == sw && dh == sh {
		for y := range dh {
			copy(dst[y*dstStride:y*dstStride+dw], src[y*srcStride:y*srcStride+sw])
		}
		return
	}
	if sw == 2*dw && sh == 2*dh {
		halve(dst, dstStride, dw, dh, src, srcStride)
		return
	}
	fs.h.build(sw, dw)
	fs.v.build(sh, dh)
	if cap(s.tmp) < sw {
		s.tmp = make([]uint32, sw)
	}
	tmp := s.tmp[:sw]
	hf, vf := &fs.h, &fs.v
	for y := range dh {
		// Vertical pass into tmp, in 8.8 fixed point.
		r0 := vf.start[y]
		ws := vf.weight[y*vf.taps : (y+1)*vf.taps]
		row := src[r0*srcStride : r0*srcStride+sw]
		w0 := uint32(ws[0])
		for x, v := range row {
			tmp[x] = w0 * uint32(v)
		}
		for t := 1; t < len(ws); t++ {
			if ws[t] == 0 {
				continue
			}
			wt := uint32(ws[t])
			row := src[(r0+t)*srcStride : (r0+t)*srcStride+sw]
			for x, v := range row {
				tmp[x] += wt * uint32(v)
			}
		}
		for x := range tmp {
			tmp[x] = (tmp[x] + 1<<(weightBits-9)) >> (weightBits - 8)
		}
		// Horizontal pass.
		out := dst[y*dstStride : y*dstStride+dw]
		if hf.taps == 1 {
			for x := range out {
				out[x] = byte((tmp[hf.start[x]] + 1<<7) >> 8)
			}
			continue
		}
		for x := range out {
			ws := hf.weight[x*hf.taps : (x+1)*hf.taps]
			in := tmp[hf.start[x] : hf.start[x]+hf.taps]
			var acc uint32
			for t, w := range ws {
				acc += uint32(w) * in[t]
			}
			out[x] = byte((acc + 1<<(weightBits+7)) >> (weightBits + 8))
		}
	}
}

// halve scales a plane down by two in both directions: each output sample
// is the rounded mean of a 2×2 block (what the general filter computes too).
func halve(dst []byte, dstStride, dw, dh int, src []byte, srcStride int) {
	for y := range dh {
		out := dst[y*dstStride : y*dstStride+dw]
		a := src[2*y*srcStride : 2*y*srcStride+2*dw]
		b := src[(2*y+1)*srcStride : (2*y+1)*srcStride+2*dw]
		for x := range out {
			out[x] = byte((uint(a[2*x]) + uint(a[2*x+1]) + uint(b[2*x]) + uint(b[2*x+1]) + 2) >> 2)
		}
	}
}
