package vpx

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/parleychat/parley/media/record"
	"github.com/parleychat/parley/media/video"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var clipStart = time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC)

// captureTime is when frame n of a 30 fps clip was captured.
func captureTime(n int) time.Time { return clipStart.Add(time.Duration(n) * time.Second / 30) }

// encoded is one encoded frame and what it was made from.
type encoded struct {
	data     []byte
	key      bool
	n        int // frame number
	captured time.Time
	w, h     int // picture size encoded
}

// encodeFrames encodes frames first..first+count-1 of the test pattern at
// w×h (rendered at render×… and scaled when render is not zero), calling
// before(n) first if it is not nil.
func encodeFrames(t testing.TB, e *Encoder, w, h, first, count int, before func(n int) (forceKey bool)) []encoded {
	t.Helper()
	pic := video.NewI420(w, h)
	var out []encoded
	for n := first; n < first+count; n++ {
		video.Render(pic, uint64(n), captureTime(n))
		force := false
		if before != nil {
			force = before(n)
		}
		frame, key, err := e.Encode(pic, captureTime(n), force)
		if err != nil {
			t.Fatalf("Encode frame %d: %v", n, err)
		}
		if len(frame) == 0 {
			t.Fatalf("Encode frame %d: dropped", n)
		}
		out = append(out, encoded{bytes.Clone(frame), key, n, captureTime(n), w, h})
	}
	return out
}

func newEncoder(t testing.TB, cfg Config) *Encoder {
	t.Helper()
	e, err := NewEncoder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func newDecoder(t testing.TB) *Decoder {
	t.Helper()
	d, err := NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// writeIVF writes frames to a file in dir with a millisecond time base from
// their capture times, and returns its name.
func writeIVF(t testing.TB, dir, name string, frames []encoded) string {
	t.Helper()
	path := filepath.Join(dir, name)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := record.NewIVFWriter(f, record.IVFHeader{Width: uint16(frames[0].w), Height: uint16(frames[0].h)})
	if err != nil {
		t.Fatal(err)
	}
	for _, fr := range frames {
		if err := w.WriteFrame(fr.data, w.Timestamp(fr.captured.Sub(clipStart))); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// tool runs an ffmpeg tool, or skips the test if it is not installed. It
// fails the test if the tool fails or prints anything on stderr.
func tool(t testing.TB, name string, args ...string) []byte {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed: run make deps (make test does)", name)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(path, append([]string{"-v", "error"}, args...)...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.Bytes())
	}
	return out
}

// checkWithFFmpeg fails t unless ffmpeg decodes the IVF file without a word
// and ffprobe counts frames frames.
func checkWithFFmpeg(t testing.TB, name string, frames int) {
	t.Helper()
	if out := tool(t, "ffmpeg", "-nostdin", "-i", name, "-f", "null", "-"); len(out) != 0 {
		t.Errorf("ffmpeg printed %q", out)
	}
	out := tool(t, "ffprobe", "-count_frames", "-select_streams", "v:0", "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", name)
	if got := strings.TrimSpace(string(out)); got != strconv.Itoa(frames) {
		t.Errorf("ffprobe counts %s frames in %s, want %d", got, name, frames)
	}
}

// ffmpegDecode decodes an IVF file with ffmpeg (its own VP8 decoder) into
// pictures.
func ffmpegDecode(t testing.TB, name string) []*image.YCbCr {
	t.Helper()
	out := tool(t, "ffmpeg", "-nostdin", "-i", name, "-f", "yuv4mpegpipe", "-pix_fmt", "yuv420p", "-")
	r, err := video.NewY4MReader(bytes.NewReader(out), video.Y4MOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var pics []*image.YCbCr
	for {
		img, err := r.Next()
		if err == io.EOF {
			return pics
		}
		if err != nil {
			t.Fatal(err)
		}
		pics = append(pics, video.ToI420(nil, img))
	}
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func equalPictures(a, b *image.YCbCr) bool {
	return a.Rect.Size() == b.Rect.Size() && math.IsInf(video.PSNR(a, b), 1)
}

// checkDecoded decodes frames with a new decoder and checks every stamp
// (read from the picture scaled to readAt, if not zero) and, when minPSNR is
// not zero, the PSNR against the regenerated original. It returns the
// decoded pictures.
func checkDecoded(t *testing.T, frames []encoded, readAt image.Point, minPSNR float64) []*image.YCbCr {
	t.Helper()
	d := newDecoder(t)
	var pics []*image.YCbCr
	var psnrs []float64
	for _, fr := range frames {
		img, err := d.Decode(fr.data)
		if err != nil {
			t.Fatalf("Decode frame %d: %v", fr.n, err)
		}
		if img.Rect.Dx() != fr.w || img.Rect.Dy() != fr.h {
			t.Fatalf("frame %d decoded at %v, want %d×%d", fr.n, img.Rect.Size(), fr.w, fr.h)
		}
		pics = append(pics, video.ToI420(nil, img))
		read := img
		if readAt != (image.Point{}) {
			read = video.NewI420(readAt.X, readAt.Y)
			video.Scale(read, img)
		}
		ct, n, ok := video.ReadStamp(read)
		if !ok || n != uint64(fr.n) || !ct.Equal(fr.captured.Truncate(time.Microsecond)) {
			t.Fatalf("frame %d: stamp %v, %d, %v, want %v, %d, true", fr.n, ct, n, ok, fr.captured, fr.n)
		}
		if minPSNR != 0 {
			orig := video.NewI420(fr.w, fr.h)
			video.Render(orig, n, ct) // regenerated from the stamp alone
			psnrs = append(psnrs, video.PSNR(orig, img))
		}
	}
	if minPSNR != 0 {
		lo := slices.Min(psnrs)
		t.Logf("PSNR over %d frames: min %.2f dB, median %.2f dB", len(psnrs), lo, median(psnrs))
		if lo < minPSNR {
			t.Errorf("lowest PSNR %.2f dB, want at least %.0f dB", lo, minPSNR)
		}
	}
	return pics
}

func frameBits(frames []encoded) int {
	n := 0
	for _, f := range frames {
		n += 8 * len(f.data)
	}
	return n
}

func TestRoundTrip(t *testing.T) {
	e := newEncoder(t, Config{Bitrate: 800_000})
	frames := encodeFrames(t, e, 640, 360, 0, 90, nil)
	t.Logf("640×360 at 800 kbit/s: %.0f kbit/s over 3 s, keyframe %d bytes", float64(frameBits(frames))/3/1000, len(frames[0].data))
	for i, f := range frames {
		h, err := ParseFrameHeader(f.data)
		if err != nil || h.Keyframe != f.key || h.Keyframe != (i == 0) || !h.Show {
			t.Fatalf("frame %d: key %v, header %+v, %v; want a keyframe only first", i, f.key, h, err)
		}
		if h.Keyframe && (h.Width != 640 || h.Height != 360) {
			t.Fatalf("keyframe header size %d×%d", h.Width, h.Height)
		}
	}
	ours := checkDecoded(t, frames, image.Point{}, 30)
	name := writeIVF(t, t.TempDir(), "clip.ivf", frames)
	checkWithFFmpeg(t, name, len(frames))
	theirs := ffmpegDecode(t, name)
	if len(theirs) != len(ours) {
		t.Fatalf("ffmpeg decoded %d frames, we %d", len(theirs), len(ours))
	}
	for i := range ours {
		if !equalPictures(ours[i], theirs[i]) {
			t.Fatalf("frame %d: ffmpeg's picture differs from ours (PSNR %.1f dB)", i, video.PSNR(ours[i], theirs[i]))
		}
	}
}

func TestStampsAtLowBitrate(t *testing.T) {
	t.Run("320x180", func(t *testing.T) {
		e := newEncoder(t, Config{Bitrate: 150_000})
		// The sender downscales its 640×360 pictures.
		big, small := video.NewI420(640, 360), video.NewI420(320, 180)
		var frames []encoded
		for n := range 90 {
			video.Render(big, uint64(n), captureTime(n))
			video.Scale(small, big)
			frame, key, err := e.Encode(small, captureTime(n), false)
			if err != nil {
				t.Fatal(err)
			}
			frames = append(frames, encoded{bytes.Clone(frame), key, n, captureTime(n), 320, 180})
		}
		t.Logf("%.0f kbit/s", float64(frameBits(frames))/3/1000)
		checkDecoded(t, frames, image.Point{}, 0)
		checkWithFFmpeg(t, writeIVF(t, t.TempDir(), "low.ivf", frames), len(frames))
	})
	t.Run("640x360 shown at 320x180", func(t *testing.T) {
		e := newEncoder(t, Config{Bitrate: 150_000})
		frames := encodeFrames(t, e, 640, 360, 0, 90, nil)
		checkDecoded(t, frames, image.Pt(320, 180), 0)
	})
}

func TestSetBitrateLowersFrameSizes(t *testing.T) {
	e := newEncoder(t, Config{Bitrate: 1_500_000})
	before := encodeFrames(t, e, 640, 360, 0, 60, nil)
	e.SetBitrate(200_000)
	after := encodeFrames(t, e, 640, 360, 60, 60, nil)
	sizes := func(fs []encoded) []float64 {
		var s []float64
		for _, f := range fs {
			s = append(s, float64(len(f.data)))
		}
		return s
	}
	// Medians of the second halves, once the rate control has settled.
	mb, ma := median(sizes(before[30:])), median(sizes(after[30:]))
	t.Logf("median frame at 1500 kbit/s: %.0f bytes; at 200 kbit/s: %.0f bytes", mb, ma)
	if ma > mb/3 {
		t.Errorf("median frame size %.0f bytes after SetBitrate(200k), %.0f before: want under a third", ma, mb)
	}
	for _, f := range after {
		if f.key {
			t.Errorf("frame %d is a keyframe: SetBitrate must not restart the encoder", f.n)
		}
	}
	checkDecoded(t, append(before, after...), image.Point{}, 0)
}

func TestSetBitrateFromAnotherGoroutine(t *testing.T) {
	e := newEncoder(t, Config{})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
				e.SetBitrate(100_000 + i%10*100_000)
			}
		}
	})
	encodeFrames(t, e, 320, 180, 0, 30, nil)
	close(stop)
	wg.Wait()
}

func TestKeyframes(t *testing.T) {
	e := newEncoder(t, Config{})
	forced := map[int]bool{10: true, 25: true, 26: true}
	frames := encodeFrames(t, e, 320, 180, 0, 40, func(n int) bool { return forced[n] })
	for _, f := range frames {
		h, err := ParseFrameHeader(f.data)
		if err != nil {
			t.Fatal(err)
		}
		want := f.n == 0 || forced[f.n]
		if f.key != want || h.Keyframe != want {
			t.Errorf("frame %d: keyframe %v (header %v), want %v", f.n, f.key, h.Keyframe, want)
		}
	}
	checkDecoded(t, frames, image.Point{}, 0)

	e = newEncoder(t, Config{KeyframeInterval: 15})
	for _, f := range encodeFrames(t, e, 320, 180, 0, 50, nil) {
		if want := f.n%15 == 0; f.key != want {
			t.Errorf("interval 15: frame %d keyframe %v, want %v", f.n, f.key, want)
		}
	}
	e = newEncoder(t, Config{KeyframeInterval: -1})
	for _, f := range encodeFrames(t, e, 160, 90, 0, 40, nil) {
		if f.key != (f.n == 0) {
			t.Errorf("on demand only: frame %d keyframe %v", f.n, f.key)
		}
	}
}

func TestResize(t *testing.T) {
	e := newEncoder(t, Config{Bitrate: 600_000})
	var frames []encoded
	n := 0
	for _, sz := range []image.Point{{640, 360}, {320, 180}, {426, 241}, {640, 360}} {
		fs := encodeFrames(t, e, sz.X, sz.Y, n, 20, nil)
		if !fs[0].key {
			t.Errorf("first frame at %v is not a keyframe", sz)
		}
		for _, f := range fs[1:] {
			if f.key {
				t.Errorf("frame %d at %v is a keyframe", f.n, sz)
			}
		}
		frames = append(frames, fs...)
		n += 20
	}
	checkDecoded(t, frames, image.Point{}, 0)
	name := writeIVF(t, t.TempDir(), "resize.ivf", frames)
	checkWithFFmpeg(t, name, len(frames))
	for i, pic := range ffmpegDecode(t, name) {
		// ffmpeg scales every picture to the first size; the stamp reads
		// at any size.
		if _, n, ok := video.ReadStamp(pic); !ok || n != uint64(frames[i].n) {
			t.Errorf("ffmpeg's frame %d: stamp %d, %v", i, n, ok)
		}
	}
}

// rss returns the resident set size of the process in bytes.
func rss(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Skip("no /proc/self/statm")
	}
	f := strings.Fields(string(b))
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

func TestEncoderDoesNotLeakOnResize(t *testing.T) {
	e := newEncoder(t, Config{Speed: MaxSpeed})
	a, b := video.NewI420(640, 360), video.NewI420(632, 352)
	cycle := func(n int) {
		for i := range n {
			for _, pic := range []*image.YCbCr{a, b} {
				if _, _, err := e.Encode(pic, captureTime(i), false); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	cycle(10)
	before := rss(t)
	cycle(100)
	grown := rss(t) - before
	t.Logf("RSS grew by %d KiB over 200 restarts", grown>>10)
	if grown > 32<<20 {
		t.Errorf("RSS grew by %d MiB over 200 encoder restarts: a leak", grown>>20)
	}
}

func TestEncoderRejects(t *testing.T) {
	for _, cfg := range []Config{{Bitrate: 1000}, {Bitrate: 1 << 30}, {Speed: 2}, {Speed: 17}, {FrameRate: -1}, {FrameRate: 1000}} {
		if e, err := NewEncoder(cfg); err == nil {
			e.Close()
			t.Errorf("NewEncoder(%+v) succeeded", cfg)
		}
	}
	e := newEncoder(t, Config{})
	for _, img := range []*image.YCbCr{
		nil,
		image.NewYCbCr(image.Rect(0, 0, 64, 64), image.YCbCrSubsampleRatio444),
		video.NewI420(64, 64).SubImage(image.Rect(0, 0, 0, 0)).(*image.YCbCr),
		{SubsampleRatio: image.YCbCrSubsampleRatio420, Rect: image.Rect(0, 0, 64, 64), YStride: 64, CStride: 32, Y: make([]byte, 100)},
		image.NewYCbCr(image.Rect(0, 0, 5000, 16), image.YCbCrSubsampleRatio420),
	} {
		if _, _, err := e.Encode(img, time.Now(), false); err == nil {
			t.Errorf("Encode(%v) succeeded", img)
		}
	}
	e.Close()
	if _, _, err := e.Encode(video.NewI420(64, 64), time.Now(), false); !errors.Is(err, ErrClosed) {
		t.Errorf("Encode after Close = %v, want ErrClosed", err)
	}
	e.Close() // again
}

func TestEncoderZeroCaptureTimes(t *testing.T) {
	// A source without capture times still gets a working rate control.
	e := newEncoder(t, Config{Bitrate: 300_000})
	pic := video.NewI420(320, 180)
	bits := 0
	for n := range 90 {
		video.Render(pic, uint64(n), time.Time{})
		frame, _, err := e.Encode(pic, time.Time{}, false)
		if err != nil {
			t.Fatal(err)
		}
		bits += 8 * len(frame)
	}
	if kbps := bits / 3 / 1000; kbps < 150 || kbps > 600 {
		t.Errorf("%d kbit/s without capture times, want about 300", kbps)
	}
}

func TestEncoderAllocations(t *testing.T) {
	e := newEncoder(t, Config{})
	pic := video.NewI420(640, 360)
	n := 0
	encode := func() {
		video.Render(pic, uint64(n), captureTime(n))
		if _, _, err := e.Encode(pic, captureTime(n), n%50 == 0); err != nil {
			t.Fatal(err)
		}
		n++
	}
	for range 60 {
		encode()
	}
	if a := testing.AllocsPerRun(40, encode); a != 0 {
		t.Errorf("Encode allocates %v times per picture, want 0", a)
	}
}

func TestDecoderAllocations(t *testing.T) {
	frames := encodeFrames(t, newEncoder(t, Config{}), 640, 360, 0, 60, nil)
	d := newDecoder(t)
	i := 0
	decode := func() {
		if _, err := d.Decode(frames[i%len(frames)].data); err != nil {
			t.Fatal(err)
		}
		i++
	}
	for range 10 {
		decode()
	}
	if a := testing.AllocsPerRun(40, decode); a != 0 {
		t.Errorf("Decode allocates %v times per frame, want 0", a)
	}
	before := rss(t)
	for range 600 {
		decode()
	}
	if grown := rss(t) - before; grown > 8<<20 {
		t.Errorf("RSS grew by %d MiB over 600 decodes", grown>>20)
	}
}

func TestDecoderNeedsKeyframe(t *testing.T) {
	frames := encodeFrames(t, newEncoder(t, Config{}), 320, 180, 0, 10, nil)
	d := newDecoder(t)
	if _, err := d.Decode(frames[3].data); !errors.Is(err, ErrNeedKeyframe) {
		t.Fatalf("Decode(delta frame first) = %v, want ErrNeedKeyframe", err)
	}
	if _, err := d.Decode(frames[0].data); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Decode(frames[1].data); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Decode(frames[2].data[:len(frames[2].data)/2]); err == nil {
		t.Log("a delta frame cut in half decoded without error")
	}
	d.Close()
	if _, err := d.Decode(frames[0].data); !errors.Is(err, ErrClosed) {
		t.Fatalf("Decode after Close = %v, want ErrClosed", err)
	}
}

func TestDecoderRobustness(t *testing.T) {
	frames := encodeFrames(t, newEncoder(t, Config{Bitrate: 400_000}), 320, 180, 0, 5, nil)
	key, delta := frames[0].data, frames[1].data
	ref := newDecoder(t)
	want, err := ref.Decode(key)
	if err != nil {
		t.Fatal(err)
	}
	want = video.ToI420(nil, want)
	d := newDecoder(t)
	recovered := func(what string) {
		t.Helper()
		got, err := d.Decode(key)
		if err != nil || !equalPictures(got, want) {
			t.Fatalf("after %s: the keyframe decodes as %v, %v", what, got != nil, err)
		}
	}
	errs := 0
	for n := 0; n < len(key); n += 1 + n/8 {
		if _, err := d.Decode(key[:n]); err != nil {
			errs++
			recovered(fmt.Sprintf("the keyframe cut at %d bytes (%v)", n, err))
		}
	}
	t.Logf("%d of the cut keyframes were errors", errs)
	for n := 0; n < len(delta); n++ {
		d.Decode(delta[:n])
	}
	recovered("cut delta frames")
	garbage := bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 300)
	for _, b := range [][]byte{nil, {0}, garbage, append([]byte{0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xb4, 0x00}, garbage...)} {
		if _, err := d.Decode(b); err == nil {
			t.Errorf("Decode(% x...) succeeded", b[:min(len(b), 10)])
		}
		recovered("garbage")
	}
	for i := 0; i < len(key); i += 7 {
		b := bytes.Clone(key)
		b[i] ^= 0x55
		d.Decode(b)
		recovered(fmt.Sprintf("byte %d flipped", i))
	}
	// Declared picture sizes above the limits are refused before libvpx
	// sees them.
	for _, sz := range []image.Point{{16383, 16383}, {video.MaxWidth + 1, 16}, {4096, 4096}} {
		hdr, err := FrameHeader{Keyframe: true, Show: true, FirstPartSize: 10, Width: sz.X, Height: sz.Y}.AppendBinary(nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.Decode(append(hdr, garbage...)); !errors.Is(err, ErrTooLarge) {
			t.Errorf("keyframe of %v: %v, want ErrTooLarge", sz, err)
		}
	}
	recovered("oversized keyframes")
}

func TestParseFrameHeader(t *testing.T) {
	for _, c := range []struct {
		name string
		b    []byte
		want FrameHeader
		err  error
	}{
		{"keyframe", []byte{0x50, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, FrameHeader{Keyframe: true, Show: true, FirstPartSize: 18, Width: 640, Height: 360}, nil},
		{"scaled keyframe", []byte{0x10, 0x00, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x42, 0x68, 0xc1}, FrameHeader{Keyframe: true, Show: true, Width: 640, Height: 360, HScale: 1, VScale: 3}, nil},
		{"delta", []byte{0x31, 0x00, 0x00, 1}, FrameHeader{Show: true, FirstPartSize: 1}, nil},
		{"hidden delta, version 3", []byte{0x07, 0x00, 0x00}, FrameHeader{Version: 3}, nil},
		{"empty", nil, FrameHeader{}, ErrFrame},
		{"short tag", []byte{0x31, 0}, FrameHeader{}, ErrFrame},
		{"version 4", []byte{0x09, 0, 0}, FrameHeader{}, ErrFrame},
		{"short keyframe", []byte{0x10, 0, 0, 0x9d, 0x01, 0x2a, 0x80}, FrameHeader{}, ErrFrame},
		{"start code", []byte{0x10, 0, 0, 0x9d, 0x01, 0x2b, 0x80, 0x02, 0x68, 0x01}, FrameHeader{}, ErrFrame},
		{"zero width", []byte{0x10, 0, 0, 0x9d, 0x01, 0x2a, 0x00, 0x40, 0x68, 0x01}, FrameHeader{}, ErrFrame},
		{"partition past the end", []byte{0x30, 0x01, 0x00, 1, 2, 3}, FrameHeader{}, ErrFrame},
		{"huge", []byte{0x10, 0, 0, 0x9d, 0x01, 0x2a, 0xff, 0x3f, 0xff, 0x3f}, FrameHeader{}, ErrTooLarge},
	} {
		got, err := ParseFrameHeader(c.b)
		if !errors.Is(err, c.err) || got != c.want {
			t.Errorf("%s: ParseFrameHeader(% x) = %+v, %v, want %+v, %v", c.name, c.b, got, err, c.want, c.err)
		}
	}
}

// FuzzParseFrameHeader checks that accepted headers encode back to the
// bytes they were parsed from.
func FuzzParseFrameHeader(f *testing.F) {
	f.Add([]byte{0x50, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0x31, 0x00, 0x00, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseFrameHeader(b)
		if err != nil {
			return
		}
		enc, err := h.AppendBinary(nil)
		if err != nil {
			t.Fatalf("AppendBinary(%+v) of a parsed header: %v", h, err)
		}
		if len(enc) != h.Size() || !bytes.Equal(enc, b[:h.Size()]) {
			t.Fatalf("AppendBinary(%+v) = % x, want % x", h, enc, b[:h.Size()])
		}
	})
}

// FuzzDecode feeds arbitrary frames to the decoder: nothing may crash, and
// whatever came before, a good keyframe then decodes to its picture.
func FuzzDecode(f *testing.F) {
	frames := encodeFrames(f, newEncoder(f, Config{Bitrate: 100_000}), 64, 48, 0, 4, nil)
	for _, fr := range frames {
		f.Add(fr.data)
	}
	key := frames[0].data
	ref := newDecoder(f)
	want, err := ref.Decode(key)
	if err != nil {
		f.Fatal(err)
	}
	want = video.ToI420(nil, want)
	d := newDecoder(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		img, err := d.Decode(b)
		if err == nil && img != nil && (img.Rect.Dx() > video.MaxWidth || img.Rect.Dy() > video.MaxHeight) {
			t.Fatalf("decoded a %v picture", img.Rect.Size())
		}
		got, err := d.Decode(key)
		if err != nil || !equalPictures(got, want) {
			t.Fatalf("the keyframe after % x: %v", b[:min(len(b), 16)], err)
		}
	})
}

func TestDropFrames(t *testing.T) {
	// Noise at the lowest bitrate: the encoder must drop pictures to hold
	// it, and what it sends still decodes.
	e := newEncoder(t, Config{Bitrate: MinBitrate, DropFrames: true})
	d := newDecoder(t)
	pic := video.NewI420(320, 180)
	seed := uint32(1)
	dropped := 0
	for n := range 60 {
		for i := range pic.Y {
			seed = seed*1664525 + 1013904223
			pic.Y[i] = byte(seed >> 24)
		}
		frame, _, err := e.Encode(pic, captureTime(n), false)
		if err != nil {
			t.Fatal(err)
		}
		if len(frame) == 0 {
			dropped++
			continue
		}
		if _, err := d.Decode(frame); err != nil {
			t.Fatalf("frame %d after %d dropped: %v", n, dropped, err)
		}
	}
	t.Logf("%d of 60 pictures dropped", dropped)
	if dropped == 0 {
		t.Error("no picture dropped at 20 kbit/s of noise")
	}
}
