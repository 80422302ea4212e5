// Package video holds Parley's pure-Go video tools: a moving test pattern
// that stamps its capture time and frame number into the picture, Y4M files
// as sources (and a writer for tests and tools), I420 scaling and
// conversion, and PSNR.
//
// Every picture here is a 4:2:0 *image.YCbCr (I420), as media requires:
// the Y plane at full resolution and Cb and Cr at half resolution in both
// directions (rounded up for odd sizes).
//
// The test pattern makes glass-to-glass latency and quality measurable: a
// receiver reads the stamp from a decoded picture with ReadStamp, learns
// when and as which frame it was captured, and can regenerate exactly what
// was sent with Render to compute PSNR.
package video
