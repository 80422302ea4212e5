package vpx

/*
#cgo pkg-config: vpx
#include <stdlib.h>
#include <vpx/vpx_encoder.h>
#include <vpx/vp8cx.h>

typedef struct {
	const void *buf;
	size_t size;
	int key;
} parley_pkt;

// parley_enc is an encoder: its context, configuration and packet iterator
// live in C memory.
typedef struct {
	vpx_codec_ctx_t ctx;
	vpx_codec_enc_cfg_t cfg;
	vpx_codec_iter_t iter;
	parley_pkt pkt; // the packet parley_enc_next returned
	int initialized;
} parley_enc;

static parley_enc *parley_enc_new(void) {
	parley_enc *e = calloc(1, sizeof(parley_enc));
	if (e && vpx_codec_enc_config_default(vpx_codec_vp8_cx(), &e->cfg, 0) != VPX_CODEC_OK) {
		free(e);
		return NULL;
	}
	return e;
}

static void parley_enc_destroy(parley_enc *e) {
	if (e->initialized) {
		vpx_codec_destroy(&e->ctx);
		e->initialized = 0;
	}
}

static void parley_enc_free(parley_enc *e) {
	parley_enc_destroy(e);
	free(e);
}

// parley_enc_start (re)creates the libvpx encoder from e->cfg and applies
// the codec controls.
static vpx_codec_err_t parley_enc_start(parley_enc *e, int speed, int max_intra_pct, int screen) {
	parley_enc_destroy(e);
	vpx_codec_err_t err = vpx_codec_enc_init(&e->ctx, vpx_codec_vp8_cx(), &e->cfg, 0);
	if (err != VPX_CODEC_OK) return err;
	e->initialized = 1;
	if ((err = vpx_codec_control(&e->ctx, VP8E_SET_CPUUSED, -speed)) != VPX_CODEC_OK) return err;
	if ((err = vpx_codec_control(&e->ctx, VP8E_SET_STATIC_THRESHOLD, 1)) != VPX_CODEC_OK) return err;
	if ((err = vpx_codec_control(&e->ctx, VP8E_SET_NOISE_SENSITIVITY, 0)) != VPX_CODEC_OK) return err;
	if ((err = vpx_codec_control(&e->ctx, VP8E_SET_TOKEN_PARTITIONS, VP8_ONE_TOKENPARTITION)) != VPX_CODEC_OK) return err;
	if ((err = vpx_codec_control(&e->ctx, VP8E_SET_MAX_INTRA_BITRATE_PCT, max_intra_pct)) != VPX_CODEC_OK) return err;
	if ((err = vpx_codec_control(&e->ctx, VP8E_SET_SCREEN_CONTENT_MODE, screen)) != VPX_CODEC_OK) return err;
	return VPX_CODEC_OK;
}

static vpx_codec_err_t parley_enc_set_bitrate(parley_enc *e, unsigned int kbps) {
	e->cfg.rc_target_bitrate = kbps;
	return vpx_codec_enc_config_set(&e->ctx, &e->cfg);
}

// parley_enc_encode encodes a w×h I420 picture whose planes libvpx reads
// during the call only.
static vpx_codec_err_t parley_enc_encode(parley_enc *e,
		unsigned char *y, unsigned char *u, unsigned char *v, int ystride, int cstride,
		unsigned int w, unsigned int h, vpx_codec_pts_t pts, unsigned long duration, int force_key) {
	vpx_image_t img;
	if (!vpx_img_wrap(&img, VPX_IMG_FMT_I420, w, h, 1, y)) return VPX_CODEC_INVALID_PARAM;
	img.planes[VPX_PLANE_Y] = y;
	img.planes[VPX_PLANE_U] = u;
	img.planes[VPX_PLANE_V] = v;
	img.stride[VPX_PLANE_Y] = ystride;
	img.stride[VPX_PLANE_U] = cstride;
	img.stride[VPX_PLANE_V] = cstride;
	e->iter = NULL;
	return vpx_codec_encode(&e->ctx, &img, pts, duration, force_key ? VPX_EFLAG_FORCE_KF : 0, VPX_DL_REALTIME);
}

// parley_enc_next puts the next frame packet of the last encode into e->pkt
// and returns 1, or returns 0.
static int parley_enc_next(parley_enc *e) {
	parley_pkt *out = &e->pkt;
	const vpx_codec_cx_pkt_t *pkt;
	while ((pkt = vpx_codec_get_cx_data(&e->ctx, &e->iter)) != NULL) {
		if (pkt->kind == VPX_CODEC_CX_FRAME_PKT) {
			out->buf = pkt->data.frame.buf;
			out->size = pkt->data.frame.sz;
			out->key = (pkt->data.frame.flags & VPX_FRAME_IS_KEY) != 0;
			return 1;
		}
	}
	return 0;
}

static const char *parley_enc_error(parley_enc *e) {
	const char *detail = vpx_codec_error_detail(&e->ctx);
	return detail ? detail : vpx_codec_error(&e->ctx);
}
*/
import "C"

import (
	"errors"
	"fmt"
	"image"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/parleychat/parley/media/video"
)

// Encoder defaults and limits.
const (
	DefaultBitrate          = 800_000 // bits per second
	DefaultFrameRate        = 30
	DefaultKeyframeInterval = 300 // pictures: 10 s at 30 fps
	// DefaultSpeed: on a 640×360 webcam-like clip at 800 kbit/s, speed 4
	// costs 1.8 times the CPU of speed 8 for 0.3 dB of PSNR, speed 12 saves
	// a fifth for 0.3 dB less (BenchmarkEncode).
	DefaultSpeed = 8

	MinBitrate = 20_000
	MaxBitrate = 20_000_000
	MinSpeed   = 4  // slowest real-time speed of libvpx's VP8
	MaxSpeed   = 16 // fastest
)

// ErrClosed is returned by Encode and Decode after Close.
var ErrClosed = errors.New("vpx: closed")

// Config configures an Encoder. The zero value is 800 kbit/s at 30
// pictures per second, a keyframe at least every 300 pictures, speed 8.
type Config struct {
	// Bitrate is the target in bits per second, MinBitrate to MaxBitrate;
	// 0 means DefaultBitrate.
	Bitrate int
	// FrameRate is the pictures per second the source delivers; 0 means
	// 30. The rate control follows the capture times; this is only the
	// rate assumed where they do not advance, and it scales the keyframe
	// size cap.
	FrameRate float64
	// KeyframeInterval is the most pictures between two keyframes; 0
	// means DefaultKeyframeInterval, a negative value keyframes only on
	// demand (and at the start and on a resize).
	KeyframeInterval int
	// Speed trades quality for CPU time, MinSpeed (best) to MaxSpeed
	// (fastest); 0 means DefaultSpeed. It is libvpx's VP8E_SET_CPUUSED,
	// negated: a fixed speed rather than libvpx's default of adapting the
	// speed to use the whole frame interval.
	Speed int
	// Screen tunes the encoder for screen content (VP8E_SET_SCREEN_CONTENT_MODE).
	Screen bool
	// DropFrames lets the encoder drop a picture (Encode returns an empty
	// frame) when its buffer would otherwise overflow, rather than
	// overshooting the bitrate.
	DropFrames bool
}

// Encoder is a VP8 encoder; it implements media.VideoEncoder. Encode and
// Close are called from one goroutine at a time; SetBitrate from any.
type Encoder struct {
	cfg     Config
	bitrate atomic.Int64 // set by SetBitrate, applied by Encode

	// Owned by the goroutine calling Encode.
	c       *C.parley_enc // C memory; nil after Close
	started bool          // c holds a running encoder of size w×h
	w, h    int
	applied int64 // bitrate the running encoder has
	period  int64 // nominal picture duration in microseconds
	base    time.Time
	lastPTS int64 // microseconds since base
	frames  int64 // pictures encoded since the (re)start
	buf     []byte
}

// NewEncoder returns a VP8 encoder. libvpx is set up at the first picture,
// at its size.
func NewEncoder(cfg Config) (*Encoder, error) {
	if cfg.Bitrate == 0 {
		cfg.Bitrate = DefaultBitrate
	}
	if cfg.FrameRate == 0 {
		cfg.FrameRate = DefaultFrameRate
	}
	if cfg.KeyframeInterval == 0 {
		cfg.KeyframeInterval = DefaultKeyframeInterval
	}
	if cfg.Speed == 0 {
		cfg.Speed = DefaultSpeed
	}
	switch {
	case cfg.Bitrate < MinBitrate || cfg.Bitrate > MaxBitrate:
		return nil, fmt.Errorf("vpx: bitrate %d out of range (%d to %d)", cfg.Bitrate, MinBitrate, MaxBitrate)
	case !(cfg.FrameRate >= 1 && cfg.FrameRate <= 240):
		return nil, fmt.Errorf("vpx: frame rate %g out of range (1 to 240)", cfg.FrameRate)
	case cfg.Speed < MinSpeed || cfg.Speed > MaxSpeed:
		return nil, fmt.Errorf("vpx: speed %d out of range (%d to %d)", cfg.Speed, MinSpeed, MaxSpeed)
	}
	c := C.parley_enc_new()
	if c == nil {
		return nil, errors.New("vpx: cannot create a VP8 encoder")
	}
	e := &Encoder{cfg: cfg, c: c, period: int64(1e6 / cfg.FrameRate)}
	e.bitrate.Store(int64(cfg.Bitrate))
	return e, nil
}

// SetBitrate sets the target bitrate in bits per second (clamped to
// MinBitrate to MaxBitrate) from the next picture on. It is safe to call
// from any goroutine.
func (e *Encoder) SetBitrate(bps int) {
	e.bitrate.Store(int64(min(max(bps, MinBitrate), MaxBitrate)))
}

// start (re)creates the libvpx encoder for w×h pictures.
func (e *Encoder) start(w, h int) error {
	cfg := &e.c.cfg
	cfg.g_w, cfg.g_h = C.uint(w), C.uint(h)
	cfg.g_timebase.num, cfg.g_timebase.den = 1, 1_000_000 // microseconds
	cfg.g_threads = 1
	cfg.g_error_resilient = C.VPX_ERROR_RESILIENT_DEFAULT
	cfg.g_pass = C.VPX_RC_ONE_PASS
	cfg.g_lag_in_frames = 0
	cfg.rc_end_usage = C.VPX_CBR
	cfg.rc_resize_allowed = 0
	cfg.rc_dropframe_thresh = 0
	if e.cfg.DropFrames {
		cfg.rc_dropframe_thresh = 30
	}
	cfg.rc_min_quantizer, cfg.rc_max_quantizer = 2, 56
	cfg.rc_undershoot_pct, cfg.rc_overshoot_pct = 100, 15
	cfg.rc_buf_initial_sz, cfg.rc_buf_optimal_sz, cfg.rc_buf_sz = 500, 600, 1000
	e.applied = e.bitrate.Load()
	cfg.rc_target_bitrate = C.uint(e.applied / 1000)
	cfg.kf_mode = C.VPX_KF_AUTO
	cfg.kf_min_dist = 0
	if e.cfg.KeyframeInterval > 0 {
		cfg.kf_max_dist = C.uint(e.cfg.KeyframeInterval)
	} else {
		cfg.kf_mode = C.VPX_KF_DISABLED
	}
	// Keyframes at most 0.5 × the 600 ms optimal buffer (WebRTC's rule),
	// as a percentage of an average frame: 30·fps.
	maxIntra := max(300, int(30*e.cfg.FrameRate))
	screen := 0
	if e.cfg.Screen {
		screen = 1
	}
	e.started = false
	if err := C.parley_enc_start(e.c, C.int(e.cfg.Speed), C.int(maxIntra), C.int(screen)); err != C.VPX_CODEC_OK {
		return fmt.Errorf("vpx: starting a %d×%d encoder: %s", w, h, C.GoString(C.parley_enc_error(e.c)))
	}
	e.started, e.w, e.h = true, w, h
	e.frames, e.lastPTS = 0, 0
	return nil
}

// Encode compresses one picture (4:2:0, at most video.MaxWidth ×
// video.MaxHeight and video.MaxPixels); forceKey asks for a keyframe. A
// picture of a new size restarts the encoder at that size, which makes a
// keyframe. The frame aliases the encoder's buffer and is valid until the
// next call; it is empty when the encoder dropped the picture (only with
// Config.DropFrames). keyframe is read from the frame's own header.
//
// Timestamps come from the capture times, in microseconds from the first
// picture after a (re)start; where a capture time does not advance, the
// picture is taken to follow the previous one by 1/Config.FrameRate.
func (e *Encoder) Encode(img *image.YCbCr, captured time.Time, forceKey bool) (frame []byte, keyframe bool, err error) {
	if e.c == nil {
		return nil, false, ErrClosed
	}
	if img == nil || img.SubsampleRatio != image.YCbCrSubsampleRatio420 || img.Rect.Empty() {
		return nil, false, errors.New("vpx: Encode needs a 4:2:0 picture")
	}
	w, h := img.Rect.Dx(), img.Rect.Dy()
	cw, ch := (w+1)/2, (h+1)/2
	if w > video.MaxWidth || h > video.MaxHeight || w*h > video.MaxPixels {
		return nil, false, fmt.Errorf("vpx: picture %d×%d too large", w, h)
	}
	if img.YStride < w || img.CStride < cw || len(img.Y) < (h-1)*img.YStride+w ||
		len(img.Cb) < (ch-1)*img.CStride+cw || len(img.Cr) < (ch-1)*img.CStride+cw {
		return nil, false, errors.New("vpx: Encode: picture planes shorter than its size")
	}
	if !e.started || w != e.w || h != e.h {
		if err := e.start(w, h); err != nil {
			return nil, false, err
		}
	}
	if b := e.bitrate.Load(); b != e.applied {
		if err := C.parley_enc_set_bitrate(e.c, C.uint(b/1000)); err != C.VPX_CODEC_OK {
			return nil, false, fmt.Errorf("vpx: setting the bitrate to %d: %s", b, C.GoString(C.parley_enc_error(e.c)))
		}
		e.applied = b
	}

	var pts, duration int64
	if e.frames == 0 {
		e.base, pts, duration = captured, 0, e.period
	} else {
		pts = captured.Sub(e.base).Microseconds()
		if captured.IsZero() || e.base.IsZero() || pts <= e.lastPTS {
			pts = e.lastPTS + e.period
		}
		duration = pts - e.lastPTS
	}
	force := 0
	if forceKey {
		force = 1
	}
	if err := C.parley_enc_encode(e.c,
		(*C.uchar)(unsafe.Pointer(&img.Y[0])), (*C.uchar)(unsafe.Pointer(&img.Cb[0])), (*C.uchar)(unsafe.Pointer(&img.Cr[0])),
		C.int(img.YStride), C.int(img.CStride), C.uint(w), C.uint(h),
		C.vpx_codec_pts_t(pts), C.ulong(duration), C.int(force)); err != C.VPX_CODEC_OK {
		return nil, false, fmt.Errorf("vpx: encode: %s", C.GoString(C.parley_enc_error(e.c)))
	}
	e.lastPTS = pts
	e.frames++

	e.buf = e.buf[:0]
	for C.parley_enc_next(e.c) != 0 {
		e.buf = append(e.buf, unsafe.Slice((*byte)(e.c.pkt.buf), int(e.c.pkt.size))...)
	}
	if len(e.buf) == 0 {
		return e.buf, false, nil
	}
	return e.buf, e.buf[0]&1 == 0, nil
}

// Close frees the encoder. It never fails; Encode fails with ErrClosed
// afterwards.
func (e *Encoder) Close() error {
	if e.c != nil {
		C.parley_enc_free(e.c)
		e.c = nil
	}
	return nil
}
