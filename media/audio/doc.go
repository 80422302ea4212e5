// Package audio holds Parley's pure-Go audio parts: generated and file
// sources, levels, frequency measurement, mixing, and the adaptive jitter
// buffer that turns the packets of one speaker into a steady 20 ms playout.
//
// Sources (Tone, WAVSource) implement media.AudioSource and run at
// real-time pace: frame n is due at start + n×20 ms, where start is the time
// of the first ReadFrame; a caller that is late gets the frame at once, so
// the pace never drifts. The capture time a source returns is the frame's
// due time.
//
// Everything here speaks the media format: 48 kHz mono int16 in frames of
// media.FrameSamples. WAV files of other rates and channel counts are
// converted (see Resampler); levels follow RFC 6464.
//
// JitterBuffer is pure logic: callers pass the clock in, so that it behaves
// the same in a test as on a live link.
package audio
