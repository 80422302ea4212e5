// Package record writes what a call sends to files that ordinary tools
// play: VP8 video in IVF (this file's neighbour ivf.go) and Opus audio in
// Ogg. It also reads IVF back, for tests and tools. It is pure Go.
//
// IVF is the small container of the libvpx tools: a 32-byte file header and
// a 12-byte header per frame (size and timestamp). It is written by hand
// here: pion/webrtc's ivfwriter takes RTP packets and reassembles frames
// from them, while Parley's pipeline has whole VP8 frames and capture
// times, and no RTP.
package record
