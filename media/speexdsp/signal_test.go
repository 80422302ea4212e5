package speexdsp

import (
	"math"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/parleychat/parley/media"
	"github.com/parleychat/parley/media/audio"
)

// speech returns text spoken by espeak-ng's voice, as 48 kHz mono,
// written to a WAV file in dir too (for paplay).
func speech(t testing.TB, dir, voice, text string) ([]int16, string) {
	t.Helper()
	if _, err := exec.LookPath("espeak-ng"); err != nil {
		t.Fatal("espeak-ng is not installed: make deps installs it")
	}
	path := filepath.Join(dir, voice+".wav")
	if out, err := exec.Command("espeak-ng", "-v", voice, "-w", path, text).CombinedOutput(); err != nil {
		t.Fatalf("espeak-ng: %v: %s", err, out)
	}
	pcm, _, err := audio.ReadWAVFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return pcm, path
}

// farText is what the far end says: long enough for the room test.
const farText = `When you listen to a call on the speakers of a laptop, the microphone
hears everything the others say and sends it straight back to them, a
fraction of a second later. An echo canceller learns the path from the
speaker to the microphone and subtracts what it predicts. It needs a few
seconds of speech to learn, and it must keep learning, because people
move, doors open and the volume changes. What is left after the filter is
removed by a second stage, which also takes away the hum of the fan.
The near end must still be heard when both talk at once. That is the hard
part, since the filter must not learn from the near end's voice.`

// nearText is what the near end says while the far end talks.
const nearText = `Hello, can you hear me? I am talking over you now, on purpose.`

// energy returns the sum of the squares of s.
func energy(s []int16) float64 {
	var e float64
	for _, v := range s {
		e += float64(v) * float64(v)
	}
	return e
}

// ratioDB returns 10·log10(a/b), with a floor for silence.
func ratioDB(a, b float64) float64 { return 10 * math.Log10((a+1)/(b+1)) }

// findLag returns the lag in [lo, hi] samples at which sig best matches ref
// (sig[i+lag] ≈ g·ref[i]) and the correlation coefficient there: first on
// 1 ms envelopes, then to the sample around the best of them.
func findLag(ref, sig []int16, lo, hi int) (int, float64) {
	const block = media.SampleRate / 1000
	env := func(s []int16) []float64 {
		e := make([]float64, len(s)/block)
		for i := range e {
			e[i] = math.Sqrt(energy(s[i*block : (i+1)*block]))
		}
		return e
	}
	er, es := env(ref), env(sig)
	best, lag := math.Inf(-1), 0
	for l := lo / block; l <= hi/block; l++ {
		if r := correlation(er, es, l); r > best {
			best, lag = r, l*block
		}
	}
	fr, fs := floats(ref), floats(sig)
	best, fine := math.Inf(-1), lag
	for l := lag - 2*block; l <= lag+2*block; l++ {
		if r := correlation(fr, fs, l); r > best {
			best, fine = r, l
		}
	}
	return fine, best
}

func floats(s []int16) []float64 {
	f := make([]float64, len(s))
	for i, v := range s {
		f[i] = float64(v)
	}
	return f
}

// correlation returns the correlation coefficient of a[i] and b[i+lag]
// where both exist.
func correlation(a, b []float64, lag int) float64 {
	var ab, aa, bb float64
	for i := max(0, -lag); i < len(a) && i+lag < len(b); i++ {
		x, y := a[i], b[i+lag]
		ab += x * y
		aa += x * x
		bb += y * y
	}
	if aa == 0 || bb == 0 {
		return 0
	}
	return ab / math.Sqrt(aa*bb)
}

// gain returns the least-squares gain g of ref in sig[lag:]: sig ≈ g·ref
// plus what is uncorrelated with ref.
func gain(ref, sig []int16, lag int) float64 {
	var rs, rr float64
	for i := max(0, -lag); i < len(ref) && i+lag < len(sig); i++ {
		rs += float64(ref[i]) * float64(sig[i+lag])
		rr += float64(ref[i]) * float64(ref[i])
	}
	return rs / rr
}
