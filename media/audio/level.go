package audio

import "math"

// SilentLevel is the RFC 6464 level of digital silence: -127 dBov.
const SilentLevel = 127

// LevelDBov returns the RMS level of pcm in dBov: decibels relative to the
// overload point, where a full-scale square wave is 0 dBov and a full-scale
// sine about -3 dBov. Silence (and an empty frame) is -127 dBov, the floor
// of RFC 6464.
func LevelDBov(pcm []int16) float64 {
	if len(pcm) == 0 {
		return -SilentLevel
	}
	var sum float64
	for _, v := range pcm {
		x := float64(v)
		sum += x * x
	}
	rms := math.Sqrt(sum/float64(len(pcm))) / 32768
	if rms == 0 {
		return -SilentLevel
	}
	return max(20*math.Log10(rms), -SilentLevel)
}

// Level returns the RMS level of pcm as RFC 6464 carries it: -dBov rounded
// to an integer in [0, 127], where 0 is the loudest and 127 silence.
func Level(pcm []int16) uint8 {
	l := math.Round(-LevelDBov(pcm))
	return uint8(min(max(l, 0), SilentLevel))
}

// TalkDetector turns frame levels into a "talking" indicator: a frame at
// or above the threshold starts talking at once, and talking ends only
// after Hangover quiet frames in a row, so that the pauses between words do
// not make the indicator flicker. The zero value uses the defaults.
type TalkDetector struct {
	// Threshold is the quietest RFC 6464 level that counts as speech;
	// 0 means 50 (-50 dBov).
	Threshold uint8
	// Hangover is how many quiet frames end talking; 0 means 15 (300 ms).
	Hangover int

	quiet   int // quiet frames in a row
	talking bool
}

// Frame feeds the level of one frame and reports whether the speaker is
// talking.
func (d *TalkDetector) Frame(level uint8) bool {
	th, hang := d.Threshold, d.Hangover
	if th == 0 {
		th = 50
	}
	if hang == 0 {
		hang = 15
	}
	if level <= th {
		d.talking, d.quiet = true, 0
		return true
	}
	d.quiet++
	if d.quiet >= hang {
		d.talking = false
	}
	return d.talking
}
