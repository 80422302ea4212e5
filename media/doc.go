// Package media will hold Parley's capture, codecs (VP8, Opus), jitter
// buffer and playback, with cgo confined to its subpackages so that protocol
// and relay stay pure Go. It is the subject of the voice-and-video
// milestone; nothing in it is implemented yet.
package media
