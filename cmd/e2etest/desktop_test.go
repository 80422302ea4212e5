package e2etest

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"image"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/media/video"
	"github.com/parleychat/parley/protocol"
	"github.com/parleychat/parley/relay/relaytest"
)

var updateScreenshot = flag.Bool("update-screenshot", false, "copy the desktop call's screenshot to docs/screenshot-call.png")

// The desktop app is built on first use: only its tests pay for it.
var desktopBuild lazyBinary

func desktopApp(t testing.TB) string {
	t.Helper()
	return desktopBuild.get(t, "github.com/parleychat/parley/cmd/parley", raceEnabled)
}

// xvfb is a private X server.
type xvfb struct {
	*proc
	display string // ":N"
}

// startXvfb starts Xvfb on a free display number, which it reports
// through -displayfd once it accepts connections.
func startXvfb(t testing.TB, width, height int) *xvfb {
	t.Helper()
	if _, err := exec.LookPath("Xvfb"); err != nil {
		t.Fatalf("the desktop tests need Xvfb (make deps installs it): %v", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	args := []string{"-displayfd", "3", "-screen", "0", fmt.Sprintf("%dx%dx24", width, height), "-nolisten", "tcp", "-noreset"}
	out, errs := newFeed("Xvfb", parseLine), newFeed("Xvfb stderr", parseLine)
	p := startProcFiles(t, "Xvfb", "Xvfb", args, environ(), out, errs, []*os.File{w})
	w.Close()
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil {
		t.Fatalf("Xvfb reported no display: %v; stderr: %s", err, errs.text())
	}
	return &xvfb{proc: p, display: ":" + strings.TrimSpace(line)}
}

// run runs an X client (xdotool, import) against this display.
func (x *xvfb) run(t testing.TB, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = environ("DISPLAY=" + x.display)
	out, err := cmd.Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("%s %s: %v %s", name, strings.Join(args, " "), err, msg)
	}
	return strings.TrimSpace(string(out))
}

// uiTrace is one line of the app's trace (ui/trace.go).
type uiTrace struct {
	Type    string      `json:"type"`
	Screen  string      `json:"screen"`
	Tiles   []traceTile `json:"tiles"`
	From    string      `json:"from"`
	Text    string      `json:"text"`
	Kind    string      `json:"kind"`
	State   string      `json:"state"`
	Message string      `json:"message"`
	Fatal   bool        `json:"fatal"`
	Widget  string      `json:"widget"`
	SendBps int         `json:"send_bps"`
	RecvBps int         `json:"recv_bps"`
}

type traceTile struct {
	Name    string `json:"name"`
	Self    bool   `json:"self"`
	X       int    `json:"x"`
	Y       int    `json:"y"`
	W       int    `json:"w"`
	H       int    `json:"h"`
	Video   bool   `json:"video"`
	Talking bool   `json:"talking"`
	Muted   bool   `json:"muted"`
}

func parseTrace(line string) (uiTrace, error) {
	var tr uiTrace
	err := json.Unmarshal([]byte(line), &tr)
	return tr, err
}

// desktop is a running parley app with its trace.
type desktop struct {
	*proc
	trace *feed[uiTrace]
	x     *xvfb
}

// startDesktop starts the app on the X server x with args; its trace comes
// through a pipe on file descriptor 3.
func startDesktop(t testing.TB, x *xvfb, args ...string) *desktop {
	t.Helper()
	bin := desktopApp(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	d := &desktop{trace: newFeed("parley trace", parseTrace), x: x}
	env := environ("DISPLAY="+x.display, "XDG_CONFIG_HOME="+t.TempDir(), "PARLEY_UI_TRACE=/dev/fd/3")
	d.proc = startProcFiles(t, "parley", bin, args, env, newFeed("parley", parseLine), newFeed("parley stderr", parseLine), []*os.File{w})
	w.Close()
	go func() {
		// The trace ends when the app exits and closes its end.
		buf := make([]byte, 32<<10)
		for {
			n, err := r.Read(buf)
			d.trace.Write(buf[:n])
			if err != nil {
				break
			}
		}
		r.Close()
		d.trace.finish()
	}()
	t.Cleanup(func() {
		for _, b := range d.trace.badLines() {
			t.Errorf("the app's trace has a line that is not JSON: %s", b)
		}
	})
	return d
}

// lastTiles returns the tiles of the last tiles line of the trace.
func lastTiles(items []uiTrace) []traceTile {
	for i := len(items) - 1; i >= 0; i-- {
		if items[i].Type == "tiles" {
			return items[i].Tiles
		}
	}
	return nil
}

func tileOf(tiles []traceTile, name string) (traceTile, bool) {
	for _, tl := range tiles {
		if tl.Name == name {
			return tl, true
		}
	}
	return traceTile{}, false
}

// screenshot takes a picture of the window.
func (d *desktop) screenshot(t testing.TB, window, path string) image.Image {
	t.Helper()
	d.x.run(t, "import", "-window", window, "png:"+path)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("decoding the screenshot %s: %v", path, err)
	}
	return img
}

// lumaStats returns the mean and the standard deviation of the luma in r.
func lumaStats(img image.Image, r image.Rectangle) (mean, stddev float64) {
	var sum, sq, n float64
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			cr, cg, cb, _ := img.At(x, y).RGBA()
			l := (0.299*float64(cr) + 0.587*float64(cg) + 0.114*float64(cb)) / 257
			sum += l
			sq += l * l
			n++
		}
	}
	if n == 0 {
		return 0, 0
	}
	mean = sum / n
	return mean, math.Sqrt(max(0, sq/n-mean*mean))
}

// meanAbsDiff returns the mean absolute difference of the luma of a and b
// in r.
func meanAbsDiff(a, b image.Image, r image.Rectangle) float64 {
	var sum, n float64
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			ar, ag, ab, _ := a.At(x, y).RGBA()
			br, bg, bb, _ := b.At(x, y).RGBA()
			la := 0.299*float64(ar) + 0.587*float64(ag) + 0.114*float64(ab)
			lb := 0.299*float64(br) + 0.587*float64(bg) + 0.114*float64(bb)
			sum += math.Abs(la-lb) / 257
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return sum / n
}

// TestDesktopCall is the desktop app end to end under Xvfb: alice in the
// app with the test pattern and tone, bob in parley-cli sending the test
// pattern and a tone and recording. A message typed into the window
// reaches bob, bob's message shows in the window, the window shows bob's
// moving video, and bob's recording of alice decodes.
func TestDesktopCall(t *testing.T) {
	t.Parallel()
	srv := startServer(t, serverOpts{})
	rec := t.TempDir()
	bob := startClient(t, srv.invite, "bob", "", "--send-video", "testpattern", "--send-audio", "tone", "--record", rec)
	bob.waitConnected(t)

	// alice reaches parleyd through a link the test can cut.
	link, err := relaytest.NewLink(srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := link.Close(); err != nil {
			t.Error(err)
		}
	})
	inv, err := protocol.ParseInvite(srv.invite)
	if err != nil {
		t.Fatal(err)
	}
	inv.Addr = link.Addr

	x := startXvfb(t, 1280, 800)
	app := startDesktop(t, x, "--join", inv.String(), "--name", "alice", "--video", "testpattern", "--audio", "tone")

	// The call window opens with the chat entry focused, and shows bob's
	// video.
	app.trace.waitFor(t, "the call screen", func(items []uiTrace) bool {
		for _, it := range items {
			if it.Type == "screen" && it.Screen == "call" {
				return true
			}
		}
		return false
	})
	app.trace.waitFor(t, "the chat entry focused", func(items []uiTrace) bool {
		for _, it := range items {
			if it.Type == "focus" && it.Widget == "chat-editor" {
				return true
			}
		}
		return false
	})
	items := app.trace.waitFor(t, "bob's tile with video and alice's preview", func(items []uiTrace) bool {
		b, okB := tileOf(lastTiles(items), "bob")
		a, okA := tileOf(lastTiles(items), "alice")
		return okB && okA && b.Video && a.Video && a.Self
	})
	bobTile, _ := tileOf(lastTiles(items), "bob")
	bobVideo := image.Rect(bobTile.X, bobTile.Y, bobTile.X+bobTile.W, bobTile.Y+bobTile.H).Inset(min(bobTile.W, bobTile.H) / 8)
	// Both send a tone: each tile shows its member talking (the ring is
	// driven by the audio level, bob's from his voice frames, alice's from
	// her own source).
	app.trace.waitFor(t, "bob and alice shown talking", func(items []uiTrace) bool {
		b, okB := tileOf(lastTiles(items), "bob")
		a, okA := tileOf(lastTiles(items), "alice")
		return okB && okA && b.Talking && a.Talking
	})

	// Alice types into the window; bob gets it.
	window := x.run(t, "xdotool", "search", "--sync", "--onlyvisible", "--name", "Parley")
	window = strings.Fields(window)[0]
	x.run(t, "xdotool", "mousemove", "--window", window, "20", "20")
	x.run(t, "xdotool", "type", "--delay", "15", "hello from the window")
	x.run(t, "xdotool", "key", "Return")
	bob.waitText(t, "hello from the window")

	// Bob answers; the window shows it.
	bob.send(t, "hi alice, bob here")
	app.trace.waitFor(t, "bob's message in the chat panel", func(items []uiTrace) bool {
		for _, it := range items {
			if it.Type == "chat" && it.From == "bob" && it.Text == "hi alice, bob here" && it.Kind == "text" {
				return true
			}
		}
		return false
	})

	// The status line counts what flows both ways.
	app.trace.waitFor(t, "a status line with both bit rates", func(items []uiTrace) bool {
		for _, it := range items {
			if it.Type == "status" && it.State == "connected" && it.SendBps > 100_000 && it.RecvBps > 100_000 {
				return true
			}
		}
		return false
	})

	// Bob's tile shows moving, non-black video: screenshots until two differ
	// there (the test pattern moves and stamps its time in every frame).
	dir := t.ArtifactDir()
	first := app.screenshot(t, window, filepath.Join(dir, "call-1.png"))
	if !first.Bounds().Intersect(bobVideo).Eq(bobVideo) {
		t.Fatalf("bob's tile %v lies outside the screenshot %v", bobVideo, first.Bounds())
	}
	mean, sd := lumaStats(first, bobVideo)
	t.Logf("bob's tile %v: luma mean %.1f, standard deviation %.1f", bobVideo, mean, sd)
	if mean < 20 || sd < 15 {
		t.Errorf("bob's tile looks blank: luma mean %.1f, standard deviation %.1f", mean, sd)
	}
	deadline := time.Now().Add(waitTimeout)
	var diff float64
	last := filepath.Join(dir, "call-1.png")
	for i := 2; ; i++ {
		last = filepath.Join(dir, fmt.Sprintf("call-%d.png", i))
		second := app.screenshot(t, window, last)
		if diff = meanAbsDiff(first, second, bobVideo); diff > 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bob's tile did not change in %v (mean difference %.2f)", waitTimeout, diff)
		}
	}
	t.Logf("bob's tile changed between screenshots: mean luma difference %.1f; screenshots in %s", diff, dir)
	if *updateScreenshot {
		copyFile(t, last, filepath.Join("..", "..", "docs", "screenshot-call.png"))
	}

	// alice's link breaks (every connection reset): the window says so.
	// bob writes meanwhile; when the link is back the app reconnects by
	// itself and shows what bob wrote.
	if err := link.AddToxic("cut", "reset_peer", relaytest.Downstream, map[string]any{"timeout": 0}); err != nil {
		t.Fatal(err)
	}
	app.trace.waitFor(t, "the status reconnecting", func(items []uiTrace) bool {
		return len(items) > 0 && lastStatus(items) == "reconnecting"
	})
	bob.send(t, "did you drop out?")
	bob.waitText(t, "did you drop out?")                              // stored and acknowledged
	app.screenshot(t, window, filepath.Join(dir, "reconnecting.png")) // for people to look at
	if err := link.RemoveToxic("cut"); err != nil {
		t.Fatal(err)
	}
	app.trace.waitFor(t, "bob's message from while alice was away", func(items []uiTrace) bool {
		for _, it := range items {
			if it.Type == "chat" && it.From == "bob" && it.Text == "did you drop out?" {
				return true
			}
		}
		return false
	})
	app.trace.waitFor(t, "the status connected again", func(items []uiTrace) bool { return lastStatus(items) == "connected" })

	// Alice leaves with the keyboard (Ctrl+Shift+Q): the window goes back
	// to the start screen and bob sees her go. Ctrl-C then ends the app.
	x.run(t, "xdotool", "key", "ctrl+shift+q")
	bob.waitEvents(t, "alice leaving", 1, func(ev event) bool { return ev.Type == "leave" && ev.From == "alice" })
	app.trace.waitFor(t, "the start screen after leaving", func(items []uiTrace) bool {
		return startAfterCall(items)
	})
	app.signal(t, os.Interrupt)
	if code := app.waitExit(t); code != 0 {
		t.Errorf("the app exited with %d after SIGINT, want 0", code)
	}
	bob.send(t, "/quit")
	bob.exitWith(t, 0)
	ivf, ogg := filepath.Join(rec, "alice.ivf"), filepath.Join(rec, "alice.ogg")
	for _, f := range []string{ivf, ogg} {
		if msg := ffmpegErrors(t, f); msg != "" {
			t.Errorf("ffmpeg decoding %s: %s", f, msg)
		}
	}
	// The call lasted as long as the steps above took (about a second):
	// enough for some pictures, each alice's test pattern with its stamp.
	pics := decodeVideo(t, ivf, 640, 360)
	pcm := decodeAudio(t, ogg)
	t.Logf("bob's recording of alice: %d pictures, %.2f s of audio", len(pics), float64(len(pcm))/48000)
	if len(pics) < 5 || len(pcm) < 48000/5 {
		t.Errorf("bob's recording of alice has %d pictures and %d samples, want at least 5 and 0.2 s", len(pics), len(pcm))
	}
	for i, p := range pics {
		if _, _, ok := video.ReadStamp(p); !ok {
			t.Errorf("picture %d of bob's recording of alice is not her test pattern (no stamp)", i)
			break
		}
	}
}

// lastStatus returns the state of the trace's last status line.
func lastStatus(items []uiTrace) string {
	for i := len(items) - 1; i >= 0; i-- {
		if items[i].Type == "status" {
			return items[i].State
		}
	}
	return ""
}

// startAfterCall reports whether the trace shows the start
// screen after the call screen.
func startAfterCall(items []uiTrace) bool {
	inCall := false
	for _, it := range items {
		if it.Type != "screen" {
			continue
		}
		if it.Screen == "call" {
			inCall = true
		} else if inCall && it.Screen == "start" {
			return true
		}
	}
	return false
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
