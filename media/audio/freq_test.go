package audio

import (
	"math"
	"math/rand/v2"
	"testing"
)

// sine returns n samples of a sine of frequency f at rate with peak amp.
func sine(n int, f float64, rate int, amp float64) []int16 {
	pcm := make([]int16, n)
	for i := range pcm {
		pcm[i] = int16(math.Round(amp * math.Sin(2*math.Pi*f*float64(i)/float64(rate))))
	}
	return pcm
}

func TestDominantFrequency(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		f     float64
		rate  int
		secs  float64
		noise float64 // peak of uniform noise added
		tol   float64
	}{
		{440, 48000, 3, 0, 0.01},
		{440.37, 48000, 3, 0, 0.01},
		{1000, 48000, 0.5, 0, 0.05},
		{97.5, 8000, 2, 0, 0.01},
		{440, 48000, 2, 3000, 0.1},
		{7000.25, 44100, 1, 1000, 0.1},
	} {
		pcm := sine(int(tc.secs*float64(tc.rate)), tc.f, tc.rate, 10000)
		for i := range pcm {
			pcm[i] += int16(tc.noise * (2*rng.Float64() - 1))
		}
		got := DominantFrequency(pcm, tc.rate)
		if math.Abs(got-tc.f) > tc.tol {
			t.Errorf("DominantFrequency(%v Hz, %d Hz, %v s, noise %v) = %.4f, want within %v", tc.f, tc.rate, tc.secs, tc.noise, got, tc.tol)
		}
	}
	if got := DominantFrequency(make([]int16, 4800), 48000); got != 0 {
		t.Errorf("DominantFrequency(silence) = %v, want 0", got)
	}
	if got := DominantFrequency(nil, 48000); got != 0 {
		t.Errorf("DominantFrequency(nil) = %v, want 0", got)
	}
}

func TestFFT(t *testing.T) {
	// A naive DFT agrees with fft.
	n := 64
	rng := rand.New(rand.NewPCG(3, 4))
	x := make([]complex128, n)
	for i := range x {
		x[i] = complex(rng.Float64(), rng.Float64())
	}
	want := make([]complex128, n)
	for k := range want {
		for j, v := range x {
			s, c := math.Sincos(-2 * math.Pi * float64(j*k) / float64(n))
			want[k] += v * complex(c, s)
		}
	}
	fft(x)
	for k := range x {
		if d := x[k] - want[k]; math.Hypot(real(d), imag(d)) > 1e-9 {
			t.Fatalf("fft bin %d = %v, want %v", k, x[k], want[k])
		}
	}
}

func BenchmarkDominantFrequency3s(b *testing.B) {
	pcm := sine(3*48000, 440, 48000, 10000)
	for b.Loop() {
		DominantFrequency(pcm, 48000)
	}
}
