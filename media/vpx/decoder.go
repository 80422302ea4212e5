package vpx

/*
#cgo pkg-config: vpx
#include <stdlib.h>
#include <vpx/vpx_decoder.h>
#include <vpx/vp8dx.h>

typedef struct {
	const unsigned char *planes[3];
	int stride[3];
	unsigned int w, h;
	int corrupt;
} parley_pic;

typedef struct {
	vpx_codec_ctx_t ctx;
	parley_pic pic; // the picture of the last decode
} parley_dec;

static parley_dec *parley_dec_new(void) {
	parley_dec *d = calloc(1, sizeof(parley_dec));
	if (!d) return NULL;
	vpx_codec_dec_cfg_t cfg = {0};
	cfg.threads = 1;
	if (vpx_codec_dec_init(&d->ctx, vpx_codec_vp8_dx(), &cfg, 0) != VPX_CODEC_OK) {
		free(d);
		return NULL;
	}
	return d;
}

static void parley_dec_free(parley_dec *d) {
	vpx_codec_destroy(&d->ctx);
	free(d);
}

// parley_dec_decode decodes one frame (read during the call only) and
// describes the picture it shows in d->pic (w = 0 when it shows none).
static vpx_codec_err_t parley_dec_decode(parley_dec *d, const unsigned char *data, unsigned int size) {
	parley_pic *pic = &d->pic;
	pic->w = pic->h = 0;
	pic->corrupt = 0;
	vpx_codec_err_t err = vpx_codec_decode(&d->ctx, data, size, NULL, 0);
	if (err != VPX_CODEC_OK) return err;
	int corrupt = 0;
	if (vpx_codec_control(&d->ctx, VP8D_GET_FRAME_CORRUPTED, &corrupt) == VPX_CODEC_OK) pic->corrupt = corrupt;
	vpx_codec_iter_t iter = NULL;
	vpx_image_t *img = vpx_codec_get_frame(&d->ctx, &iter);
	if (img == NULL) return VPX_CODEC_OK;
	if (img->fmt != VPX_IMG_FMT_I420) return VPX_CODEC_UNSUP_BITSTREAM;
	for (int i = 0; i < 3; i++) {
		pic->planes[i] = img->planes[i];
		pic->stride[i] = img->stride[i];
	}
	pic->w = img->d_w;
	pic->h = img->d_h;
	while (vpx_codec_get_frame(&d->ctx, &iter) != NULL) {
	}
	return VPX_CODEC_OK;
}

static const char *parley_dec_error(parley_dec *d) {
	const char *detail = vpx_codec_error_detail(&d->ctx);
	return detail ? detail : vpx_codec_error(&d->ctx);
}
*/
import "C"

import (
	"errors"
	"fmt"
	"image"
	"unsafe"
)

// Decoding errors.
var (
	// ErrNeedKeyframe is returned for a delta frame before the first
	// keyframe, or after an error, until a keyframe decodes.
	ErrNeedKeyframe = errors.New("vpx: delta frame without its reference: waiting for a keyframe")
	// ErrCorrupt is wrapped when libvpx cannot decode a frame or reports
	// it corrupt.
	ErrCorrupt = errors.New("vpx: corrupt VP8 frame")
)

// Decoder is a VP8 decoder; it implements media.VideoDecoder. It is used
// from one goroutine at a time.
type Decoder struct {
	c       *C.parley_dec // C memory; nil after Close
	img     *image.YCbCr  // the picture returned, reused while the size stays
	needKey bool          // refuse delta frames until a keyframe decodes
}

// NewDecoder returns a VP8 decoder.
func NewDecoder() (*Decoder, error) {
	c := C.parley_dec_new()
	if c == nil {
		return nil, errors.New("vpx: cannot create a VP8 decoder")
	}
	return &Decoder{c: c, needKey: true}, nil
}

// Decode decompresses one frame. The picture is owned by the decoder and
// valid until the next call. A frame whose header is malformed or declares
// too large a picture (see ParseFrameHeader), that libvpx cannot decode or
// reports corrupt, is an error (ErrFrame, ErrTooLarge, ErrCorrupt); so is a
// delta frame before the first keyframe or after an error
// (ErrNeedKeyframe): the caller then waits for, or asks for, a keyframe. A
// frame that is not shown (a VP8 reference-only frame; Parley's encoder
// makes none) gives a nil picture and no error.
func (d *Decoder) Decode(frame []byte) (*image.YCbCr, error) {
	if d.c == nil {
		return nil, ErrClosed
	}
	h, err := ParseFrameHeader(frame)
	if err != nil {
		d.needKey = true
		return nil, err
	}
	if !h.Keyframe && d.needKey {
		return nil, ErrNeedKeyframe
	}
	if rc := C.parley_dec_decode(d.c, (*C.uchar)(unsafe.Pointer(&frame[0])), C.uint(len(frame))); rc != C.VPX_CODEC_OK {
		d.needKey = true
		return nil, fmt.Errorf("%w: %s", ErrCorrupt, C.GoString(C.parley_dec_error(d.c)))
	}
	pic := &d.c.pic
	if pic.corrupt != 0 {
		d.needKey = true
		return nil, fmt.Errorf("%w: decoded with errors", ErrCorrupt)
	}
	if h.Keyframe {
		d.needKey = false
	}
	if pic.w == 0 {
		return nil, nil
	}
	w, hh := int(pic.w), int(pic.h)
	if d.img == nil || d.img.Rect.Dx() != w || d.img.Rect.Dy() != hh {
		d.img = image.NewYCbCr(image.Rect(0, 0, w, hh), image.YCbCrSubsampleRatio420)
	}
	copyPlane(d.img.Y, d.img.YStride, pic.planes[0], int(pic.stride[0]), w, hh)
	cw, ch := (w+1)/2, (hh+1)/2
	copyPlane(d.img.Cb, d.img.CStride, pic.planes[1], int(pic.stride[1]), cw, ch)
	copyPlane(d.img.Cr, d.img.CStride, pic.planes[2], int(pic.stride[2]), cw, ch)
	return d.img, nil
}

// copyPlane copies a w×h plane from C memory.
func copyPlane(dst []byte, dstStride int, src *C.uchar, srcStride, w, h int) {
	in := unsafe.Slice((*byte)(unsafe.Pointer(src)), (h-1)*srcStride+w)
	for y := range h {
		copy(dst[y*dstStride:y*dstStride+w], in[y*srcStride:y*srcStride+w])
	}
}

// Close frees the decoder. It never fails; Decode fails with ErrClosed
// afterwards.
func (d *Decoder) Close() error {
	if d.c != nil {
		C.parley_dec_free(d.c)
		d.c = nil
	}
	return nil
}
