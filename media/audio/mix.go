package audio

import (
	"math"

	"github.com/parleychat/parley/media"
)

// Mixer sums the frames of several speakers for playback. Add each
// speaker's frame, then Frame writes the sum, saturated to int16, and
// starts the next. It is used from one goroutine; the zero value is ready.
type Mixer struct {
	acc [media.FrameSamples]int32
	n   int // frames added since the last Frame
}

// Add adds one speaker's frame (at most FrameSamples samples; a shorter one
// is padded with silence).
func (m *Mixer) Add(pcm []int16) {
	for i, v := range pcm[:min(len(pcm), media.FrameSamples)] {
		m.acc[i] += int32(v)
	}
	m.n++
}

// Frame writes the sum of the frames added since the last call into dst
// (FrameSamples long), saturating at the int16 range, and reports how many
// frames were mixed. With none, dst is silence.
func (m *Mixer) Frame(dst []int16) int {
	for i := range dst[:min(len(dst), media.FrameSamples)] {
		dst[i] = saturate(m.acc[i])
	}
	n := m.n
	m.acc, m.n = [media.FrameSamples]int32{}, 0
	return n
}

// Mix writes the saturated sum of srcs into dst; samples past the end of a
// shorter source count as silence.
func Mix(dst []int16, srcs ...[]int16) {
	for i := range dst {
		var sum int32
		for _, s := range srcs {
			if i < len(s) {
				sum += int32(s[i])
			}
		}
		dst[i] = saturate(sum)
	}
}

func saturate(v int32) int16 {
	return int16(min(max(v, math.MinInt16), math.MaxInt16))
}
