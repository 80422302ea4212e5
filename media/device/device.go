// Package device captures video from cameras (V4L2, through
// pion/mediadevices' camera driver) and from the screen (X11, through Xlib
// directly: see Screen for why not mediadevices' screen driver) as
// media.VideoSource. Pictures are delivered as 4:2:0 *image.YCbCr whatever
// the device gives (YUYV, NV12, MJPEG, BGRX ...), converted into one reused
// picture, with the time the device returned each as its capture time (the
// camera driver does not expose the kernel's frame timestamps).
//
// Opening a camera re-runs the driver's discovery, so that a camera plugged
// in after the program began is found. The driver registers in
// mediadevices' process-wide manager: this package serialises its use of
// it, and other users of that manager in the same program would see its
// entries change.
//
// Tested here: screen capture under Xvfb (size and content, with MIT-SHM
// and with XGetImage), Close during a wait, the errors
// for a missing display, a missing camera and a path that is not a camera,
// and the choice among a camera's formats. Not tested, for want of a camera
// on the test machines: capturing from a real V4L2 camera.
package device

import (
	"errors"
	"fmt"
	"image"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/mediadevices/pkg/driver"
	mdvideo "github.com/pion/mediadevices/pkg/io/video"

	"github.com/parleychat/parley/media"
	"github.com/parleychat/parley/media/video"
)

// Errors a user can act on.
var (
	ErrNoCamera  = errors.New("device: no camera found")
	ErrNoDisplay = errors.New("device: screen capture needs an X11 display ($DISPLAY is not set)")
	// ErrClosed is returned by ReadFrame after Close.
	ErrClosed = errors.New("device: closed")
)

// managerMu serialises discovery and opening in mediadevices' global
// driver manager.
var managerMu sync.Mutex

// source is a mediadevices driver, its reader, and the picture it converts
// into.
type source struct {
	name   string
	closed atomic.Bool

	mu  sync.Mutex // held by ReadFrame; Close takes it to wait for a read in flight
	d   driver.Driver
	r   mdvideo.Reader
	img *image.YCbCr
}

var (
	_ media.VideoSource = (*Camera)(nil)
	_ media.VideoSource = (*Screen)(nil)
)

// open opens d and starts recording with p.
func open(name string, d driver.Driver, choose func([]propMedia) (propMedia, error)) (*source, error) {
	if err := d.Open(); err != nil {
		return nil, fmt.Errorf("device: opening %s: %w", name, err)
	}
	p, err := choose(d.Properties())
	if err != nil {
		d.Close()
		return nil, err
	}
	rec, ok := d.(driver.VideoRecorder)
	if !ok {
		d.Close()
		return nil, fmt.Errorf("device: %s does not record video", name)
	}
	r, err := rec.VideoRecord(p)
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("device: starting %s at %d×%d %s: %w", name, p.Width, p.Height, p.FrameFormat, err)
	}
	return &source{name: name, d: d, r: r}, nil
}

// ReadFrame returns the next picture, blocking until the camera delivers
// it, and the time it arrived. The picture is reused by the next call.
func (s *source) ReadFrame() (*image.YCbCr, time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return nil, time.Time{}, ErrClosed
	}
	img, release, err := s.r.Read()
	captured := time.Now()
	if err != nil {
		if s.closed.Load() {
			return nil, time.Time{}, ErrClosed
		}
		return nil, time.Time{}, fmt.Errorf("device: reading %s: %w", s.name, err)
	}
	s.img = video.ToI420(s.img, img)
	if release != nil {
		release()
	}
	return s.img, captured, nil
}

// Close stops the camera, after waiting for a ReadFrame in flight (at most
// one frame interval; a stalled camera times out after 5 s).
func (s *source) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.d.Close()
}
