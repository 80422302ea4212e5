package device

/*
#cgo pkg-config: x11 xext
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <X11/Xlib.h>
#include <X11/Xutil.h>
#include <X11/extensions/XShm.h>

// The last X protocol error: Xlib's default handler would end the process.
static int parley_x11_error;

static int parley_x11_on_error(Display *dp, XErrorEvent *e) {
	parley_x11_error = e->error_code;
	return 0;
}

typedef struct {
	Display *dp;
	Window root;
	int w, h;
	XImage *img;
	XShmSegmentInfo shm;
	int use_shm;
	unsigned long rmask, gmask, bmask;
} parley_x11;

enum { PARLEY_X11_NO_DISPLAY = 1, PARLEY_X11_NO_SCREEN = 2 };

static void parley_x11_free_image(parley_x11 *x) {
	if (x->use_shm) {
		XShmDetach(x->dp, &x->shm);
		XSync(x->dp, False);
	}
	if (x->img) XDestroyImage(x->img); // frees data too, unless it is shared memory (data NULLed below)
	if (x->shm.shmaddr && x->shm.shmaddr != (char *)-1) shmdt(x->shm.shmaddr);
	x->img = NULL;
	x->shm.shmaddr = NULL;
	x->use_shm = 0;
}

// parley_x11_open connects to $DISPLAY and sets up capture of a screen,
// with MIT-SHM when the server allows it.
static int parley_x11_open(parley_x11 *x, int screen, int allow_shm) {
	XSetErrorHandler(parley_x11_on_error);
	x->dp = XOpenDisplay(NULL);
	if (!x->dp) return PARLEY_X11_NO_DISPLAY;
	if (screen < 0 || screen >= ScreenCount(x->dp)) return PARLEY_X11_NO_SCREEN;
	x->root = RootWindow(x->dp, screen);
	x->w = DisplayWidth(x->dp, screen);
	x->h = DisplayHeight(x->dp, screen);
	Visual *v = DefaultVisual(x->dp, screen);
	x->rmask = v->red_mask;
	x->gmask = v->green_mask;
	x->bmask = v->blue_mask;
	if (!allow_shm || !XShmQueryExtension(x->dp)) return 0;
	x->img = XShmCreateImage(x->dp, v, DefaultDepth(x->dp, screen), ZPixmap, NULL, &x->shm, x->w, x->h);
	if (!x->img) return 0;
	x->shm.shmid = shmget(IPC_PRIVATE, (size_t)x->img->bytes_per_line * x->img->height, IPC_CREAT | 0600);
	if (x->shm.shmid < 0) {
		XDestroyImage(x->img);
		x->img = NULL;
		return 0;
	}
	x->shm.shmaddr = x->img->data = shmat(x->shm.shmid, NULL, 0);
	x->shm.readOnly = False;
	parley_x11_error = 0;
	// Mark the segment for removal only after the server has attached it:
	// it cannot attach a segment already removed.
	if (x->shm.shmaddr != (char *)-1 && XShmAttach(x->dp, &x->shm)) {
		XSync(x->dp, False);
		x->use_shm = parley_x11_error == 0;
	}
	shmctl(x->shm.shmid, IPC_RMID, NULL);
	if (!x->use_shm) {
		if (x->img) x->img->data = NULL;
		parley_x11_free_image(x);
	} else {
		x->img->data = x->shm.shmaddr;
	}
	return 0;
}

// parley_x11_grab copies the screen into x->img; it returns an X error
// code, or -1 if the server sent no image.
static int parley_x11_grab(parley_x11 *x) {
	parley_x11_error = 0;
	if (x->use_shm) {
		if (!XShmGetImage(x->dp, x->root, x->img, 0, 0, AllPlanes)) return -1;
	} else {
		if (x->img) XDestroyImage(x->img);
		x->img = XGetImage(x->dp, x->root, 0, 0, x->w, x->h, AllPlanes, ZPixmap);
		if (!x->img) return parley_x11_error ? parley_x11_error : -1;
	}
	return parley_x11_error;
}

static void parley_x11_close(parley_x11 *x) {
	if (x->dp) {
		if (x->use_shm && x->img) x->img->data = NULL;
		parley_x11_free_image(x);
		XCloseDisplay(x->dp);
		x->dp = NULL;
	}
}
*/
import "C"

import (
	"fmt"
	"image"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/parleychat/parley/media/video"
)

// x11Mu serialises Xlib calls: the error handler records into one global.
var x11Mu sync.Mutex

// allowSharedMemory is false in a test of the XGetImage path.
var allowSharedMemory = true

// ScreenConfig says which screen to capture and how often. The zero value
// is X screen 0 of $DISPLAY at 10 pictures per second.
type ScreenConfig struct {
	// Screen is the X screen number (almost always 0).
	Screen int
	// FrameRate is the pictures per second, up to 60; 0 means 10.
	FrameRate float64
}

// Screen captures an X11 screen; it implements media.VideoSource.
// ReadFrame is called from one goroutine at a time; Close from any, and it
// makes a waiting ReadFrame return ErrClosed.
//
// It talks to Xlib directly (about 150 lines) instead of through
// pion/mediadevices' screen driver, which works (checked under Xvfb) but
// does not suit a desktop client: it copies the whole screen twice per
// picture, the first time into a fresh allocation (C.GoBytes: 8 MiB of
// garbage per 1080p picture), it needs MIT-SHM (no remote display), and it leaves
// Xlib's default error handler, which ends the process on any X protocol
// error, such as a capture of the old size after the screen was resized.
// Here the screen's BGRX pixels are converted once, straight from the
// shared memory segment into the reused 4:2:0 picture; capture falls back
// to XGetImage when MIT-SHM is not available; and protocol errors are
// returned from ReadFrame. A lost connection to the X server still ends
// the process (Xlib's I/O error handler exits).
type Screen struct {
	closed atomic.Bool
	done   chan struct{}

	mu     sync.Mutex // held by ReadFrame and Close
	x      *C.parley_x11
	order  [3]int // byte offsets of R, G, B in a pixel
	img    *image.YCbCr
	period time.Duration
	start  time.Time
	next   int64 // number of the next picture
	timer  *time.Timer
}

// OpenScreen opens screen capture on the X11 display named by $DISPLAY. It
// fails with ErrNoDisplay when $DISPLAY is not set.
func OpenScreen(cfg ScreenConfig) (*Screen, error) {
	display := os.Getenv("DISPLAY")
	if display == "" {
		return nil, ErrNoDisplay
	}
	if cfg.FrameRate == 0 {
		cfg.FrameRate = 10
	}
	if !(cfg.FrameRate > 0 && cfg.FrameRate <= 60) {
		return nil, fmt.Errorf("device: screen frame rate %g out of range (up to 60)", cfg.FrameRate)
	}
	x := (*C.parley_x11)(C.calloc(1, C.sizeof_parley_x11))
	if x == nil {
		return nil, fmt.Errorf("device: screen capture: out of memory")
	}
	x11Mu.Lock()
	shm := 0
	if allowSharedMemory {
		shm = 1
	}
	rc := C.parley_x11_open(x, C.int(cfg.Screen), C.int(shm))
	x11Mu.Unlock()
	fail := func(err error) (*Screen, error) {
		x11Mu.Lock()
		C.parley_x11_close(x)
		x11Mu.Unlock()
		C.free(unsafe.Pointer(x))
		return nil, err
	}
	switch rc {
	case C.PARLEY_X11_NO_DISPLAY:
		return fail(fmt.Errorf("device: screen capture: cannot open X11 display %q", display))
	case C.PARLEY_X11_NO_SCREEN:
		return fail(fmt.Errorf("device: X11 display %q has no screen %d", display, cfg.Screen))
	}
	s := &Screen{x: x, done: make(chan struct{}), period: time.Duration(float64(time.Second) / cfg.FrameRate)}
	switch {
	case x.rmask == 0xff0000 && x.gmask == 0xff00 && x.bmask == 0xff:
		s.order = [3]int{2, 1, 0}
	case x.rmask == 0xff && x.gmask == 0xff00 && x.bmask == 0xff0000:
		s.order = [3]int{0, 1, 2}
	default:
		return fail(fmt.Errorf("device: X11 display %q: unsupported pixel format (masks %#x %#x %#x; 24-bit colour needed)", display, x.rmask, x.gmask, x.bmask))
	}
	return s, nil
}

// Size returns the size of the screen.
func (s *Screen) Size() (w, h int) { return int(s.x.w), int(s.x.h) }

// SharedMemory reports whether capture uses MIT-SHM (else XGetImage, which
// copies every picture through the X connection).
func (s *Screen) SharedMemory() bool { return s.x.use_shm != 0 }

// ReadFrame captures the screen when the next picture is due (picture n at
// start + n/rate; a late caller gets one at once, and the missed ones are
// skipped), and returns it with the time of the capture. The picture is
// reused by the next call.
func (s *Screen) ReadFrame() (*image.YCbCr, time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return nil, time.Time{}, ErrClosed
	}
	now := time.Now()
	if s.start.IsZero() {
		s.start = now
	}
	n := max(s.next, int64(now.Sub(s.start)/s.period))
	if d := s.start.Add(time.Duration(n) * s.period).Sub(now); d > 0 {
		if s.timer == nil {
			s.timer = time.NewTimer(d)
		} else {
			s.timer.Reset(d)
		}
		select {
		case <-s.timer.C:
		case <-s.done:
			s.timer.Stop()
			return nil, time.Time{}, ErrClosed
		}
	}
	s.next = n + 1
	x11Mu.Lock()
	rc := C.parley_x11_grab(s.x)
	captured := time.Now()
	if rc != 0 {
		x11Mu.Unlock()
		return nil, time.Time{}, fmt.Errorf("device: screen capture failed (X error %d)", int(rc))
	}
	img := s.x.img
	if img.bits_per_pixel != 32 {
		x11Mu.Unlock()
		return nil, time.Time{}, fmt.Errorf("device: screen capture: %d bits per pixel, 32 needed", int(img.bits_per_pixel))
	}
	w, h, stride := int(img.width), int(img.height), int(img.bytes_per_line)
	pix := unsafe.Slice((*byte)(unsafe.Pointer(img.data)), (h-1)*stride+4*w)
	s.img = video.RGB32ToI420(s.img, pix, stride, w, h, s.order[0], s.order[1], s.order[2])
	x11Mu.Unlock()
	return s.img, captured, nil
}

// Close ends capture and the connection to the X server. It never fails.
func (s *Screen) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	close(s.done)
	s.mu.Lock()
	defer s.mu.Unlock()
	x11Mu.Lock()
	C.parley_x11_close(s.x)
	x11Mu.Unlock()
	C.free(unsafe.Pointer(s.x))
	s.x = nil
	return nil
}
