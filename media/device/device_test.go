package device

import (
	"bufio"
	"errors"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pion/mediadevices/pkg/frame"
	"github.com/pion/mediadevices/pkg/prop"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestNoDisplay(t *testing.T) {
	t.Setenv("DISPLAY", "")
	if _, err := OpenScreen(ScreenConfig{}); !errors.Is(err, ErrNoDisplay) {
		t.Fatalf("OpenScreen without $DISPLAY = %v, want ErrNoDisplay", err)
	}
	if got, want := ErrNoDisplay.Error(), "screen capture needs an X11 display ($DISPLAY is not set)"; !strings.Contains(got, want) {
		t.Errorf("error %q does not say %q", got, want)
	}
	t.Setenv("DISPLAY", ":987")
	_, err := OpenScreen(ScreenConfig{})
	if err == nil || !strings.Contains(err.Error(), `cannot open X11 display ":987"`) {
		t.Fatalf("OpenScreen with a display that does not exist = %v", err)
	}
}

func TestNoCamera(t *testing.T) {
	if m, _ := filepath.Glob("/dev/video*"); len(m) > 0 {
		t.Skip("this machine has V4L2 devices")
	}
	_, err := OpenCamera(CameraConfig{})
	if !errors.Is(err, ErrNoCamera) || !strings.Contains(err.Error(), "no camera found") {
		t.Fatalf("OpenCamera() = %v, want ErrNoCamera", err)
	}
	if _, err := OpenCamera(CameraConfig{Device: "/dev/video7"}); err == nil || !strings.Contains(err.Error(), "no camera at /dev/video7") {
		t.Errorf("OpenCamera(/dev/video7) = %v", err)
	}
	if _, err := OpenCamera(CameraConfig{Device: "/dev/null"}); err == nil || !strings.Contains(err.Error(), "/dev/null is not a camera") {
		t.Errorf("OpenCamera(/dev/null) = %v", err)
	}
}

func TestChooseCameraProp(t *testing.T) {
	p := func(w, h int, fps float32, f frame.Format) prop.Media {
		return prop.Media{Video: prop.Video{Width: w, Height: h, FrameRate: fps, FrameFormat: f}}
	}
	offers := []prop.Media{
		p(1920, 1080, 30, frame.FormatMJPEG),
		p(640, 480, 30, frame.FormatYUYV),
		p(640, 360, 15, frame.FormatYUYV),
		p(640, 360, 30, frame.FormatMJPEG),
		p(640, 360, 30, frame.FormatYUYV),
		p(640, 360, 60, frame.FormatYUYV),
		p(320, 240, 30, frame.FormatYUYV),
		p(640, 360, 30, frame.FormatZ16), // depth: not read
	}
	for _, c := range []struct {
		cfg  CameraConfig
		want prop.Media
	}{
		{CameraConfig{Width: 640, Height: 360, FrameRate: 30}, p(640, 360, 30, frame.FormatYUYV)},
		{CameraConfig{Width: 640, Height: 360, FrameRate: 50}, p(640, 360, 60, frame.FormatYUYV)},
		{CameraConfig{Width: 1280, Height: 720, FrameRate: 30}, p(1920, 1080, 30, frame.FormatMJPEG)}, // 2.25× the area, 640×480 is 3× less
		{CameraConfig{Width: 1920, Height: 1080, FrameRate: 30}, p(1920, 1080, 30, frame.FormatMJPEG)},
		{CameraConfig{Width: 320, Height: 240, FrameRate: 30}, p(320, 240, 30, frame.FormatYUYV)},
	} {
		got, ok := chooseCameraProp(offers, c.cfg)
		if !ok || got.Video != c.want.Video {
			t.Errorf("chooseCameraProp(%+v) = %+v, %v, want %+v", c.cfg, got.Video, ok, c.want.Video)
		}
	}
	if _, ok := chooseCameraProp([]prop.Media{p(640, 360, 30, frame.FormatZ16)}, CameraConfig{Width: 640, Height: 360, FrameRate: 30}); ok {
		t.Error("chose a depth-only camera")
	}
}

// startXvfb starts an X server on a free display number with a w×h screen
// and returns the display name.
func startXvfb(t *testing.T, w, h int) string {
	t.Helper()
	path, err := exec.LookPath("Xvfb")
	if err != nil {
		t.Fatal("Xvfb is not installed: run make deps (make test does)")
	}
	r, wr, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// -displayfd: Xvfb picks a free display number and writes it to fd 3
	// once it accepts connections. -noreset: without it the server resets
	// (and forgets the painted root window) whenever its last client
	// leaves, as the painting program does.
	cmd := exec.Command(path, "-displayfd", "3", "-noreset", "-screen", "0", strconv.Itoa(w)+"x"+strconv.Itoa(h)+"x24", "-nolisten", "tcp")
	cmd.ExtraFiles = []*os.File{wr}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	wr.Close()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	r.SetReadDeadline(time.Now().Add(20 * time.Second))
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil {
		t.Fatalf("Xvfb did not report its display: %v", err)
	}
	return ":" + strings.TrimSpace(line)
}

// paintRoot sets the root window of $DISPLAY to red on the left half and
// blue on the right.
func paintRoot(t *testing.T, w, h int) {
	t.Helper()
	if _, err := exec.LookPath("display"); err != nil {
		t.Fatal("ImageMagick's display is not installed: run make deps (make test does)")
	}
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			c := color.RGBA{220, 20, 20, 255}
			if x >= w/2 {
				c = color.RGBA{20, 20, 220, 255}
			}
			img.SetRGBA(x, y, c)
		}
	}
	name := filepath.Join(t.TempDir(), "root.png")
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
	f.Close()
	// display sets the root window's background and exits (with status 1
	// even when it worked, so only the capture judges).
	out, err := exec.Command("display", "-window", "root", name).CombinedOutput()
	t.Logf("display -window root: %v %s", err, out)
}

// checkCapture reads pictures from s and checks their size and colours
// (see paintRoot). The X server handles the painting client's last
// requests and ours in no set order, so the first pictures may still show
// the old contents: it waits for the painted colours for up to 60
// pictures, then checks three more.
func checkCapture(t *testing.T, s *Screen) {
	t.Helper()
	if w, h := s.Size(); w != 320 || h != 240 {
		t.Fatalf("Size() = %d×%d, want 320×240", w, h)
	}
	good := 0
	for i := 0; good < 3; i++ {
		pic, captured, err := s.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		if pic.Rect.Dx() != 320 || pic.Rect.Dy() != 240 || pic.SubsampleRatio != image.YCbCrSubsampleRatio420 {
			t.Fatalf("frame %d: %v %v, want 320×240 4:2:0", i, pic.Rect, pic.SubsampleRatio)
		}
		if d := time.Since(captured); d < 0 || d > time.Second {
			t.Errorf("frame %d: capture time %v ago", i, d)
		}
		left := color.YCbCr{Y: pic.Y[120*pic.YStride+40], Cb: pic.Cb[60*pic.CStride+20], Cr: pic.Cr[60*pic.CStride+20]}
		right := color.YCbCr{Y: pic.Y[120*pic.YStride+280], Cb: pic.Cb[60*pic.CStride+140], Cr: pic.Cr[60*pic.CStride+140]}
		switch {
		case left.Cr > 200 && left.Cb < 120 && right.Cb > 200 && right.Cr < 120:
			good++
		case good > 0 || i >= 60:
			t.Fatalf("frame %d: left %v, right %v; want red on the left and blue on the right", i, left, right)
		}
	}
}

func TestScreenCapture(t *testing.T) {
	t.Setenv("DISPLAY", startXvfb(t, 320, 240))
	paintRoot(t, 320, 240)
	s, err := OpenScreen(ScreenConfig{FrameRate: 30})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !s.SharedMemory() {
		t.Error("capture does not use MIT-SHM on a local Xvfb")
	}
	checkCapture(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.ReadFrame(); !errors.Is(err, ErrClosed) {
		t.Fatalf("ReadFrame after Close = %v, want ErrClosed", err)
	}

	// Without MIT-SHM (as on a remote display), through XGetImage.
	allowSharedMemory = false
	defer func() { allowSharedMemory = true }()
	s2, err := OpenScreen(ScreenConfig{FrameRate: 30})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if s2.SharedMemory() {
		t.Error("capture uses MIT-SHM though not allowed")
	}
	checkCapture(t, s2)

	if _, err := OpenScreen(ScreenConfig{Screen: 1}); err == nil || !strings.Contains(err.Error(), "has no screen 1") {
		t.Errorf("OpenScreen(screen 1) = %v", err)
	}
}

func TestScreenCloseUnblocks(t *testing.T) {
	t.Setenv("DISPLAY", startXvfb(t, 64, 48))
	synctest.Test(t, func(t *testing.T) {
		s, err := OpenScreen(ScreenConfig{FrameRate: 1})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.ReadFrame(); err != nil {
			t.Fatal(err)
		}
		errc := make(chan error, 1)
		go func() {
			_, _, err := s.ReadFrame()
			errc <- err
		}()
		synctest.Wait() // the reader waits for the next picture
		s.Close()
		if err := <-errc; !errors.Is(err, ErrClosed) {
			t.Fatalf("ReadFrame during Close = %v, want ErrClosed", err)
		}
	})
}

func TestCamerasListsNoneHere(t *testing.T) {
	cams, err := Cameras()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/dev/video0"); err != nil && len(cams) != 0 {
		t.Errorf("Cameras() = %v on a machine without /dev/video0", cams)
	}
}
