package ui

import (
	"bytes"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"gioui.org/f32"
	"gioui.org/gpu/headless"
	"gioui.org/io/input"
	"gioui.org/io/key"
	"gioui.org/io/pointer"
	"gioui.org/layout"
	"gioui.org/op"
	"gioui.org/unit"
	"go.uber.org/goleak"
)

var update = flag.Bool("update", false, "rewrite the golden images in testdata")

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeBackend records what the window asks of it.
type fakeBackend struct {
	mu      sync.Mutex
	calls   []string
	joins   []JoinRequest
	hosts   []HostRequest
	sent    []string
	private [][2]string
	mic     []bool
	camera  []bool
	screen  []bool
	selects []string
	devices Devices
	events  chan Event
}

func newFakeBackend() *fakeBackend {
	return &fakeBackend{
		events: make(chan Event, 16),
		devices: Devices{
			Cameras:     []Device{{ID: "/dev/video0", Name: "Integrated Camera"}, {ID: "/dev/video2", Name: "Logitech C920"}},
			Microphones: []Device{{ID: "mic0", Name: "Built-in Microphone"}, {ID: "mic1", Name: "USB Headset"}},
			Speakers:    []Device{{ID: "spk0", Name: "Built-in Speakers"}},
			Camera:      "/dev/video0", Microphone: "mic0", Speaker: "spk0",
		},
	}
}

func (b *fakeBackend) record(s string) {
	b.mu.Lock()
	b.calls = append(b.calls, s)
	b.mu.Unlock()
}

func (b *fakeBackend) Join(req JoinRequest) {
	b.mu.Lock()
	b.joins = append(b.joins, req)
	b.mu.Unlock()
	b.record("join")
}

func (b *fakeBackend) Host(req HostRequest) {
	b.mu.Lock()
	b.hosts = append(b.hosts, req)
	b.mu.Unlock()
	b.record("host")
}
func (b *fakeBackend) Leave() { b.record("leave") }
func (b *fakeBackend) Send(text string) {
	b.mu.Lock()
	b.sent = append(b.sent, text)
	b.mu.Unlock()
	b.record("send")
}

func (b *fakeBackend) SendPrivate(to, text string) {
	b.mu.Lock()
	b.private = append(b.private, [2]string{to, text})
	b.mu.Unlock()
	b.record("private")
}

func (b *fakeBackend) SetMicMuted(m bool) {
	b.mu.Lock()
	b.mic = append(b.mic, m)
	b.mu.Unlock()
	b.record("mic")
}

func (b *fakeBackend) SetCamera(on bool) {
	b.mu.Lock()
	b.camera = append(b.camera, on)
	b.mu.Unlock()
	b.record("camera")
}

func (b *fakeBackend) ShareScreen(on bool) {
	b.mu.Lock()
	b.screen = append(b.screen, on)
	b.mu.Unlock()
	b.record("screen")
}

func (b *fakeBackend) SelectDevice(kind DeviceKind, id string) {
	b.mu.Lock()
	b.selects = append(b.selects, fmt.Sprintf("%d:%s", kind, id))
	b.mu.Unlock()
	b.record("select")
}

func (b *fakeBackend) Devices() Devices     { return b.devices }
func (b *fakeBackend) Events() <-chan Event { return b.events }

func (b *fakeBackend) callList() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.calls...)
}

// t0 is the time of the tests' frames and chat lines.
var t0 = time.Date(2025, 3, 14, 9, 30, 0, 0, time.UTC)

// harness drives an App through Gio's input router and renders it with
// the headless GPU, at one pixel per dp.
type harness struct {
	t    testing.TB
	app  *App
	b    *fakeBackend
	r    input.Router
	ops  op.Ops
	size image.Point
	now  time.Time
	win  *headless.Window
}

func newHarness(t testing.TB, w, h int, opts Options) *harness {
	t.Helper()
	b := newFakeBackend()
	hs := &harness{t: t, b: b, size: image.Pt(w, h), now: t0}
	hs.app = NewApp(b, opts)
	return hs
}

// frame lays out one frame and hands its ops to the router.
func (h *harness) frame() {
	h.ops.Reset()
	gtx := layout.Context{
		Ops:         &h.ops,
		Now:         h.now,
		Metric:      unit.Metric{PxPerDp: 1, PxPerSp: 1},
		Constraints: layout.Exact(h.size),
		Source:      h.r.Source(),
	}
	h.app.Layout(gtx)
	h.r.Frame(&h.ops)
}

// frames lays out n frames (focus and clicks take a frame to land).
func (h *harness) frames(n int) {
	for range n {
		h.frame()
	}
}

func (h *harness) post(evs ...Event) {
	for _, e := range evs {
		h.app.post(e)
	}
}

// screenshot renders the last frame.
func (h *harness) screenshot() *image.RGBA {
	h.t.Helper()
	if h.win == nil {
		w, err := headless.NewWindow(h.size.X, h.size.Y)
		if err != nil {
			h.t.Fatalf("headless.NewWindow: %v", err)
		}
		h.win = w
		h.t.Cleanup(w.Release)
	}
	if err := h.win.Frame(&h.ops); err != nil {
		h.t.Fatalf("Frame: %v", err)
	}
	img := image.NewRGBA(image.Rectangle{Max: h.size})
	if err := h.win.Screenshot(img); err != nil {
		h.t.Fatalf("Screenshot: %v", err)
	}
	return img
}

func (h *harness) key(name key.Name, mods key.Modifiers) {
	h.r.Queue(key.Event{Name: name, Modifiers: mods, State: key.Press},
		key.Event{Name: name, Modifiers: mods, State: key.Release})
}

// typeText types s into the focused editor as the window does: replace
// the selection, then put the caret after the text.
func (h *harness) typeText(s string) {
	sel := h.r.EditorState().Selection.Range
	h.r.Queue(key.EditEvent{Range: sel, Text: s})
	p := min(sel.Start, sel.End) + utf8.RuneCountInString(s)
	h.r.Queue(key.SelectionEvent{Start: p, End: p})
}

// click presses and releases the primary button at p.
func (h *harness) click(p image.Point) {
	pos := f32.Pt(float32(p.X), float32(p.Y))
	h.r.Queue(
		pointer.Event{Kind: pointer.Move, Source: pointer.Mouse, Position: pos},
		pointer.Event{Kind: pointer.Press, Source: pointer.Mouse, Buttons: pointer.ButtonPrimary, Position: pos},
		pointer.Event{Kind: pointer.Release, Source: pointer.Mouse, Position: pos},
	)
}

// hover moves the pointer to p.
func (h *harness) hover(p image.Point) {
	h.r.Queue(pointer.Event{Kind: pointer.Move, Source: pointer.Mouse, Position: f32.Pt(float32(p.X), float32(p.Y))})
}

// scroll turns the wheel at p by dy pixels (negative: up).
func (h *harness) scroll(p image.Point, dy float32) {
	pos := f32.Pt(float32(p.X), float32(p.Y))
	h.r.Queue(
		pointer.Event{Kind: pointer.Move, Source: pointer.Mouse, Position: pos},
		pointer.Event{Kind: pointer.Scroll, Source: pointer.Mouse, Position: pos, Scroll: f32.Pt(0, dy)},
	)
}

func center(r image.Rectangle) image.Point {
	return image.Pt((r.Min.X+r.Max.X)/2, (r.Min.Y+r.Max.Y)/2)
}

// Golden comparison: a pixel differs when a channel differs by more than
// goldenChannelTol; an image matches when at most goldenMaxFraction of its
// pixels differ and no goldenTile×goldenTile square has more than
// goldenMaxTile of its pixels differing. (GPU rasterisers differ a little
// at glyph and curve edges, a pixel here and there; a layout change moves
// many pixels, and a changed icon or badge — a few hundred pixels, too few
// for the fraction — fills a square.)
const (
	goldenChannelTol  = 24
	goldenMaxFraction = 0.004
	goldenTile        = 16
	goldenMaxTile     = 0.1
)

// checkGolden compares img with testdata/name.png (or writes it with
// -update); on a mismatch it writes testdata/name.actual.png.
func checkGolden(t *testing.T, name string, img *image.RGBA) {
	t.Helper()
	path := filepath.Join("testdata", name+".png")
	actual := filepath.Join("testdata", name+".actual.png")
	if *update {
		writePNG(t, path, img)
		os.Remove(actual)
		return
	}
	f, err := os.Open(path)
	if err != nil {
		writePNG(t, actual, img)
		t.Fatalf("no golden %s (run go test -update): wrote %s", path, actual)
	}
	defer f.Close()
	want, err := png.Decode(f)
	if err != nil {
		t.Fatalf("decoding %s: %v", path, err)
	}
	frac, why := diffImages(want, img)
	if why != "" || frac > goldenMaxFraction {
		writePNG(t, actual, img)
		if why == "" {
			why = fmt.Sprintf("%.3f%% of the pixels differ (at most %.3f%% may)", 100*frac, 100*goldenMaxFraction)
		}
		t.Errorf("%s: %s; the actual image is in %s", name, why, actual)
		return
	}
	os.Remove(actual)
}

// diffImages returns the fraction of pixels of got that differ from want.
func diffImages(want image.Image, got *image.RGBA) (float64, string) {
	if want.Bounds().Size() != got.Bounds().Size() {
		return 1, fmt.Sprintf("size %v, want %v", got.Bounds().Size(), want.Bounds().Size())
	}
	wb := want.Bounds()
	diff := 0
	tilesX := (wb.Dx() + goldenTile - 1) / goldenTile
	tiles := make([]int, tilesX*((wb.Dy()+goldenTile-1)/goldenTile))
	for y := range wb.Dy() {
		for x := range wb.Dx() {
			w := color.NRGBAModel.Convert(want.At(wb.Min.X+x, wb.Min.Y+y)).(color.NRGBA)
			o := got.PixOffset(x, y)
			g := got.Pix[o : o+4]
			if absDiff(w.R, g[0]) > goldenChannelTol || absDiff(w.G, g[1]) > goldenChannelTol ||
				absDiff(w.B, g[2]) > goldenChannelTol || absDiff(w.A, g[3]) > goldenChannelTol {
				diff++
				tiles[y/goldenTile*tilesX+x/goldenTile]++
			}
		}
	}
	for i, n := range tiles {
		if float64(n) > goldenMaxTile*goldenTile*goldenTile {
			x, y := i%tilesX*goldenTile, i/tilesX*goldenTile
			return float64(diff) / float64(wb.Dx()*wb.Dy()), fmt.Sprintf("%d of the %d pixels of the square at (%d,%d) differ (a changed detail)",
				n, goldenTile*goldenTile, x, y)
		}
	}
	return float64(diff) / float64(wb.Dx()*wb.Dy()), ""
}

func absDiff(a, b uint8) int {
	if a > b {
		return int(a - b)
	}
	return int(b - a)
}

func writePNG(t *testing.T, path string, img image.Image) {
	t.Helper()
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestCompression}
	if err := enc.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// layoutCtx is a context with the harness's metric, for the App's
// geometry helpers.
func layoutCtx(h *harness) layout.Context {
	return layout.Context{Metric: unit.Metric{PxPerDp: 1, PxPerSp: 1}, Constraints: layout.Exact(h.size)}
}

func rgba(r, g, b uint8) color.RGBA { return color.RGBA{R: r, G: g, B: b, A: 255} }
