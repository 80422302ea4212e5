// Package vpx is Parley's VP8 encoder and decoder: media.VideoEncoder and
// media.VideoDecoder over libvpx, through cgo.
//
// It calls libvpx directly rather than through pion/mediadevices'
// pkg/codec/vpx (v0.9.4), which does not serve a conferencing client:
//
//   - Its encoder sets no codec controls. VP8E_SET_CPUUSED stays 0, which in
//     libvpx's real-time mode means "pick the speed so that encoding fills
//     the whole frame interval": the encoder takes as much CPU as it is
//     given, with nothing left for the four decoders beside it. Nor can it
//     cap keyframe size (VP8E_SET_MAX_INTRA_BITRATE_PCT), which matters on
//     a TCP link shared with voice.
//   - On a new picture size it initialises a new libvpx context and frees
//     the old one without vpx_codec_destroy, leaking the old encoder's
//     buffers on every resize; it also re-applies the whole configuration
//     before every frame.
//   - It pulls pictures from a video.Reader and stamps them with time.Now,
//     not with their capture times, and copies every frame twice into new
//     allocations.
//   - Its decoder allocates a new picture for every frame, reads frames
//     through an io.Reader into a fixed 1 MiB buffer (a larger keyframe is
//     cut), and has no notion of waiting for a keyframe.
//
// The wrapper here is small: a C struct holding the libvpx context and
// configuration (C memory, so that libvpx never holds a Go pointer), and
// pictures passed as plane pointers that libvpx reads only during the call
// (with lag 0 it copies the picture before returning).
//
// # Encoder settings
//
// Real-time conferencing: one pass, CBR, no lag (each picture's frame comes
// out of the call that takes it), error resilient, one thread, one token
// partition, quantizer 2–56, a 1 s rate-control buffer (0.5 s initial, 0.6 s
// optimal, as WebRTC uses), keyframes at most 900% of an average frame at
// 30 fps (scaled with the frame rate), a keyframe at least every
// DefaultKeyframeInterval pictures (300, 10 s at 30 fps) and whenever asked,
// and a fixed speed (VP8E_SET_CPUUSED = -Speed, DefaultSpeed 8).
//
// # Decoder
//
// The decoder checks each frame's header itself before libvpx sees it
// (ParseFrameHeader): a truncated or malformed header is an error, and a
// keyframe declaring a picture larger than video.MaxWidth×video.MaxHeight
// or video.MaxPixels is refused before libvpx allocates anything for it.
// After any error it refuses delta frames (ErrNeedKeyframe) until a
// keyframe decodes. It copies each picture into one *image.YCbCr that it
// reuses while the size stays the same.
package vpx
