package device

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/pion/mediadevices/pkg/driver"
	"github.com/pion/mediadevices/pkg/driver/camera"
	"github.com/pion/mediadevices/pkg/frame"
	"github.com/pion/mediadevices/pkg/prop"
)

type propMedia = prop.Media

// CameraConfig says which camera to open and how. The zero value is the
// first camera at the size nearest 640×360 and a rate nearest 30 per
// second.
type CameraConfig struct {
	// Device is "" for the first camera (/dev/video0 if it is one), or a
	// device path such as /dev/video2 or /dev/v4l/by-id/....
	Device string
	// Width and Height are the preferred picture size; 0 means 640×360.
	// The camera's nearest size is used.
	Width, Height int
	// FrameRate is the preferred pictures per second; 0 means 30.
	FrameRate float32
}

// Camera is a V4L2 camera; it implements media.VideoSource. ReadFrame is
// called from one goroutine at a time; Close from any.
type Camera struct {
	*source
	p prop.Media
}

// OpenCamera opens a camera. With no camera it fails with ErrNoCamera; a
// path that does not exist, or is not a camera, is an error naming it.
func OpenCamera(cfg CameraConfig) (*Camera, error) {
	if cfg.Width == 0 && cfg.Height == 0 {
		cfg.Width, cfg.Height = 640, 360
	}
	if cfg.FrameRate == 0 {
		cfg.FrameRate = 30
	}
	managerMu.Lock()
	defer managerMu.Unlock()
	camera.Initialize() // rediscover; this drops every video driver from the manager, screens too
	d, name, err := findCamera(cfg.Device, driver.GetManager().Query(driver.FilterDeviceType(driver.Camera)))
	if err != nil {
		return nil, err
	}
	var chosen prop.Media
	s, err := open(name, d, func(props []prop.Media) (prop.Media, error) {
		p, ok := chooseCameraProp(props, cfg)
		if !ok {
			return p, fmt.Errorf("device: camera %s offers no picture format Parley reads", name)
		}
		chosen = p
		return p, nil
	})
	if err != nil {
		return nil, err
	}
	return &Camera{source: s, p: chosen}, nil
}

// Size returns the picture size the camera delivers.
func (c *Camera) Size() (w, h int) { return c.p.Width, c.p.Height }

// findCamera picks the driver for path ("" = the first camera).
func findCamera(path string, drivers []driver.Driver) (driver.Driver, string, error) {
	// The camera driver labels a device "<name>;<device node>", e.g.
	// "video0;video0" or "usb-...-video-index0;video0".
	node := func(d driver.Driver) string {
		label := d.Info().Label
		return label[strings.LastIndex(label, camera.LabelSeparator)+1:]
	}
	if path == "" {
		if len(drivers) == 0 {
			return nil, "", ErrNoCamera
		}
		slices.SortFunc(drivers, func(a, b driver.Driver) int {
			return cmp.Or(-cmp.Compare(a.Info().Priority, b.Info().Priority), cmp.Compare(node(a), node(b)))
		})
		return drivers[0], "/dev/" + node(drivers[0]), nil
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, "", fmt.Errorf("device: no camera at %s (no such device)", path)
		}
		return nil, "", fmt.Errorf("device: camera %s: %w", path, err)
	}
	if _, err := os.Stat(real); err != nil {
		return nil, "", fmt.Errorf("device: camera %s: %w", path, err)
	}
	for _, d := range drivers {
		if node(d) == filepath.Base(real) {
			return d, path, nil
		}
	}
	return nil, "", fmt.Errorf("device: %s is not a camera (no V4L2 video capture device there)", path)
}

// formatCost ranks the formats a camera may offer by what converting them
// costs (lower is better); formats Parley does not read are absent.
var formatCost = map[frame.Format]int{
	frame.FormatI420:  0,
	frame.FormatNV12:  1,
	frame.FormatNV21:  1,
	frame.FormatYUYV:  2,
	frame.FormatYUY2:  2,
	frame.FormatUYVY:  2,
	frame.FormatMJPEG: 3, // a JPEG decode per frame
}

// chooseCameraProp picks among a camera's offers: the size nearest the
// wanted one (by area, then by aspect ratio), then a frame rate of at least
// the wanted one and nearest it, then the cheapest format.
func chooseCameraProp(props []prop.Media, cfg CameraConfig) (prop.Media, bool) {
	wantArea := float64(cfg.Width * cfg.Height)
	wantAspect := float64(cfg.Width) / float64(max(1, cfg.Height))
	score := func(p prop.Media) (size, aspect, rate float64, format int) {
		area := float64(p.Width * p.Height)
		size = max(area/wantArea, wantArea/area)
		aspect = max(float64(p.Width)/float64(p.Height)/wantAspect, wantAspect*float64(p.Height)/float64(p.Width))
		switch {
		case p.FrameRate == 0: // unknown: between an exact and a worse rate
			rate = 0.5
		case p.FrameRate >= cfg.FrameRate:
			rate = float64(p.FrameRate-cfg.FrameRate) / float64(cfg.FrameRate)
		default:
			rate = 1 + float64(cfg.FrameRate-p.FrameRate)/float64(cfg.FrameRate)
		}
		return size, aspect, rate, formatCost[p.FrameFormat]
	}
	var best prop.Media
	found := false
	for _, p := range props {
		if _, ok := formatCost[p.FrameFormat]; !ok || p.Width <= 0 || p.Height <= 0 {
			continue
		}
		if !found {
			best, found = p, true
			continue
		}
		s1, a1, r1, f1 := score(p)
		s2, a2, r2, f2 := score(best)
		if c := cmp.Or(cmp.Compare(s1, s2), cmp.Compare(a1, a2), cmp.Compare(r1, r2), cmp.Compare(f1, f2)); c < 0 {
			best = p
		}
	}
	return best, found // a FrameRate of 0 leaves the camera's rate as it is
}

// CameraInfo names a camera for a picker.
type CameraInfo struct {
	Path string // what CameraConfig.Device takes, e.g. /dev/video0
	Name string // the driver's label
}

// Cameras lists the cameras there are now (none is no error).
func Cameras() ([]CameraInfo, error) {
	managerMu.Lock()
	defer managerMu.Unlock()
	camera.Initialize()
	var out []CameraInfo
	for _, d := range driver.GetManager().Query(driver.FilterDeviceType(driver.Camera)) {
		label := d.Info().Label
		node := label[strings.LastIndex(label, camera.LabelSeparator)+1:]
		name := label[:max(0, strings.LastIndex(label, camera.LabelSeparator))]
		if name == "" {
			name = node
		}
		out = append(out, CameraInfo{Path: "/dev/" + node, Name: name})
	}
	slices.SortFunc(out, func(a, b CameraInfo) int { return cmp.Compare(a.Path, b.Path) })
	return out, nil
}
