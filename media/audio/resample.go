package audio

import (
	"fmt"
	"math"

	"github.com/parleychat/parley/media"
)

// The resampler is band-limited interpolation (J. O. Smith's method): each
// output sample is the input convolved with a windowed sinc centred on the
// output instant. The sinc is cut off at 0.95 of the lower of the two
// Nyquist frequencies, windowed by a Kaiser window (β = 8) over 16 zero
// crossings each side, and tabulated at 256 points per zero crossing with
// linear interpolation between table entries. Stop-band rejection is about
// 80 dB; the pass band is flat to within 0.1 dB up to 0.9 of the lower
// Nyquist frequency.
const (
	sincZeros   = 16
	sincOver    = 256
	kaiserBeta  = 8.0
	sincCutoff  = 0.95
	maxRateWAV  = 768000
	minRateWAV  = 1000
	maxChannels = 64
)

// sincTable holds h(x) = sinc(x)·kaiser(x/sincZeros) for x = i/sincOver,
// i in [0, sincZeros·sincOver], plus one guard entry.
var sincTable = func() []float32 {
	n := sincZeros * sincOver
	t := make([]float32, n+2)
	i0b := besselI0(kaiserBeta)
	for i := 0; i <= n; i++ {
		x := float64(i) / sincOver
		s := 1.0
		if i > 0 {
			s = math.Sin(math.Pi*x) / (math.Pi * x)
		}
		r := x / sincZeros
		w := besselI0(kaiserBeta*math.Sqrt(1-r*r)) / i0b
		t[i] = float32(s * w)
	}
	return t
}()

// besselI0 is the zeroth-order modified Bessel function of the first kind.
func besselI0(x float64) float64 {
	sum, term := 1.0, 1.0
	for k := 1; k < 50; k++ {
		term *= (x / 2) / float64(k)
		sum += term * term
		if term*term < sum*1e-17 {
			break
		}
	}
	return sum
}

// Resampler converts a mono stream from one sample rate to 48 kHz. Write
// input with Write, take output with Read, and call Flush at the end of the
// input to get the tail. It is used from one goroutine.
type Resampler struct {
	in, out int64   // sample rates
	fc      float64 // cutoff as a fraction of the input rate's Nyquist
	reach   float64 // half width of the kernel in input samples
	buf     []float32
	bufPos  int64 // absolute input index of buf[0]
	written int64 // input samples written
	n       int64 // index of the next output sample
	flushed bool
}

// NewResampler returns a resampler from rate (Hz) to media.SampleRate.
func NewResampler(rate int) (*Resampler, error) {
	if rate < minRateWAV || rate > maxRateWAV {
		return nil, fmt.Errorf("audio: sample rate %d Hz is outside [%d, %d]", rate, minRateWAV, maxRateWAV)
	}
	r := &Resampler{in: int64(rate), out: media.SampleRate}
	r.fc = sincCutoff * math.Min(1, float64(r.out)/float64(r.in))
	r.reach = sincZeros / r.fc
	return r, nil
}

// Write queues input samples.
func (r *Resampler) Write(samples []float32) {
	r.buf = append(r.buf, samples...)
	r.written += int64(len(samples))
}

// Flush marks the end of the input: Read then pads it with silence and
// returns the tail, ending after ceil(input×48000/rate) samples in all.
func (r *Resampler) Flush() { r.flushed = true }

// total is the number of output samples for the input written so far.
func (r *Resampler) total() int64 { return (r.written*r.out + r.in - 1) / r.in }

// Read writes as many output samples into dst as the queued input allows
// and returns how many.
func (r *Resampler) Read(dst []float32) int {
	k := 0
	for k < len(dst) {
		if r.flushed && r.n >= r.total() {
			break
		}
		num := r.n * r.in
		ti := num / r.out
		frac := float64(num%r.out) / float64(r.out)
		t := float64(ti) + frac
		if r.in == r.out {
			if ti >= r.written {
				break
			}
			dst[k] = r.buf[ti-r.bufPos]
		} else {
			hi := int64(math.Floor(t + r.reach))
			if hi >= r.written && !r.flushed {
				break
			}
			lo := int64(math.Ceil(t - r.reach))
			dst[k] = r.convolve(t, lo, hi)
		}
		k++
		r.n++
	}
	r.trim()
	return k
}

// convolve sums the kernel centred on t over input indices lo..hi
// (silence outside the input).
func (r *Resampler) convolve(t float64, lo, hi int64) float32 {
	if lo < 0 {
		lo = 0
	}
	if end := r.bufPos + int64(len(r.buf)) - 1; hi > end {
		hi = end
	}
	scale := r.fc * sincOver
	var acc float64
	for j := lo; j <= hi; j++ {
		x := math.Abs(t-float64(j)) * scale
		i := int(x)
		if i >= sincZeros*sincOver {
			continue
		}
		f := float32(x - float64(i))
		h := sincTable[i] + f*(sincTable[i+1]-sincTable[i])
		acc += float64(h * r.buf[j-r.bufPos])
	}
	return float32(acc * r.fc)
}

// trim drops input that no future output sample needs.
func (r *Resampler) trim() {
	t := float64(r.n*r.in) / float64(r.out)
	lo := int64(math.Ceil(t-r.reach)) - 1
	if r.in == r.out {
		lo = r.n * r.in / r.out
	}
	drop := lo - r.bufPos
	if drop <= 0 || drop < int64(len(r.buf))/2 && drop < 4096 {
		return
	}
	if drop > int64(len(r.buf)) {
		drop = int64(len(r.buf))
	}
	n := copy(r.buf, r.buf[drop:])
	r.buf = r.buf[:n]
	r.bufPos += drop
}
