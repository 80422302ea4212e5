package audio

import (
	"math"
	"math/bits"
	"math/cmplx"
)

// maxFreqSamples bounds the samples DominantFrequency looks at (about 22 s
// at 48 kHz); a longer input is measured on its first maxFreqSamples.
const maxFreqSamples = 1 << 20

// DominantFrequency returns the frequency in Hz of the strongest sinusoid
// in pcm, sampled at sampleRate, or 0 for fewer than 16 samples or
// silence. It removes the mean, applies a Hann window, finds the peak bin of
// a zero-padded FFT, then refines the peak by a golden-section search of
// the windowed spectrum's magnitude (evaluated exactly with the Goertzel
// recurrence) within one bin each side. For a clean tone of a few seconds
// the error is far below 0.01 Hz; noise and other tones set the real limit.
func DominantFrequency(pcm []int16, sampleRate int) float64 {
	if len(pcm) > maxFreqSamples {
		pcm = pcm[:maxFreqSamples]
	}
	n := len(pcm)
	if n < 16 || sampleRate <= 0 {
		return 0
	}
	var mean float64
	for _, v := range pcm {
		mean += float64(v)
	}
	mean /= float64(n)
	x := make([]float64, n)
	energy := 0.0
	for i, v := range pcm {
		w := 0.5 - 0.5*math.Cos(2*math.Pi*float64(i)/float64(n-1))
		x[i] = (float64(v) - mean) * w
		energy += x[i] * x[i]
	}
	if energy == 0 {
		return 0
	}
	size := 1 << bits.Len(uint(n-1))
	spec := make([]complex128, size)
	for i, v := range x {
		spec[i] = complex(v, 0)
	}
	fft(spec)
	peak, best := 1, 0.0
	for k := 1; k < size/2; k++ {
		if m := cmplx.Abs(spec[k]); m > best {
			peak, best = k, m
		}
	}
	// Golden-section search for the maximum of |X(f)| in (peak±1) bins.
	bin := 1 / float64(size) // in cycles per sample
	lo, hi := (float64(peak)-1)*bin, (float64(peak)+1)*bin
	lo = max(lo, 0)
	hi = min(hi, 0.5)
	const g = 0.6180339887498949
	a, b := hi-g*(hi-lo), lo+g*(hi-lo)
	fa, fb := goertzelPower(x, a), goertzelPower(x, b)
	for range 60 {
		if fa < fb {
			lo, a, fa = a, b, fb
			b = lo + g*(hi-lo)
			fb = goertzelPower(x, b)
		} else {
			hi, b, fb = b, a, fa
			a = hi - g*(hi-lo)
			fa = goertzelPower(x, a)
		}
		if hi-lo < 1e-12 {
			break
		}
	}
	return (lo + hi) / 2 * float64(sampleRate)
}

// goertzelPower returns |Σ x[n]·e^(-2πi·f·n)|² for f in cycles per sample.
func goertzelPower(x []float64, f float64) float64 {
	w := 2 * math.Pi * f
	c := 2 * math.Cos(w)
	var s1, s2 float64
	for _, v := range x {
		s1, s2 = v+c*s1-s2, s1
	}
	return s1*s1 + s2*s2 - c*s1*s2
}

// fft transforms a in place; len(a) is a power of two.
func fft(a []complex128) {
	n := len(a)
	shift := 64 - bits.Len(uint(n-1))
	for i := range a {
		j := int(bits.Reverse64(uint64(i)) >> shift)
		if n > 1 && i < j {
			a[i], a[j] = a[j], a[i]
		}
	}
	for size := 2; size <= n; size <<= 1 {
		half := size / 2
		step := cmplx.Exp(complex(0, -2*math.Pi/float64(size)))
		for start := 0; start < n; start += size {
			w := complex(1, 0)
			for k := range half {
				u, v := a[start+k], a[start+k+half]*w
				a[start+k], a[start+k+half] = u+v, u-v
				w *= step
			}
		}
	}
}
