package video

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"image"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

var updateSeeds = flag.Bool("update-seeds", false, "rewrite the fuzz seed corpus in testdata/fuzz from ffmpeg's output")

// y4mClip returns a Y4M stream of n test-pattern frames of w×h.
func y4mClip(t testing.TB, w, h, n int, rate string) []byte {
	t.Helper()
	var num, den int
	fmt.Sscanf(rate, "%d:%d", &num, &den)
	var buf bytes.Buffer
	wr, err := NewY4MWriter(&buf, Y4MHeader{Width: w, Height: h, RateNum: num, RateDen: den})
	if err != nil {
		t.Fatal(err)
	}
	img := NewI420(w, h)
	for i := range n {
		Render(img, uint64(i), time.UnixMicro(int64(i)))
		if err := wr.WriteFrame(img); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func TestY4MRoundTrip(t *testing.T) {
	for _, sz := range []image.Point{{640, 360}, {35, 25}, {32, 24}} {
		data := y4mClip(t, sz.X, sz.Y, 4, "30000:1001")
		r, err := NewY4MReader(bytes.NewReader(data), Y4MOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want := Y4MHeader{Width: sz.X, Height: sz.Y, RateNum: 30000, RateDen: 1001, ColorSpace: "420jpeg"}
		if r.Header() != want {
			t.Errorf("Header() = %+v, want %+v", r.Header(), want)
		}
		ref := NewI420(sz.X, sz.Y)
		for i := range 4 {
			img, err := r.Next()
			if err != nil {
				t.Fatalf("%v frame %d: %v", sz, i, err)
			}
			Render(ref, uint64(i), time.UnixMicro(int64(i)))
			if !equalPictures(img, ref) {
				t.Fatalf("%v frame %d differs from what was written", sz, i)
			}
		}
		if _, err := r.Next(); err != io.EOF {
			t.Fatalf("Next after the last frame = %v, want io.EOF", err)
		}
	}
}

func TestY4MWriterRejects(t *testing.T) {
	for _, h := range []Y4MHeader{
		{Width: 0, Height: 10, RateNum: 30, RateDen: 1},
		{Width: 10, Height: 10, RateNum: 0, RateDen: 1},
		{Width: 10, Height: 10, RateNum: 30, RateDen: 1, ColorSpace: "444"},
	} {
		if _, err := NewY4MWriter(io.Discard, h); err == nil {
			t.Errorf("NewY4MWriter(%+v) succeeded", h)
		}
	}
	w, err := NewY4MWriter(io.Discard, Y4MHeader{Width: 10, Height: 10, RateNum: 30, RateDen: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFrame(NewI420(12, 10)); err == nil {
		t.Error("WriteFrame of the wrong size succeeded")
	}
	if err := w.WriteFrame(image.NewYCbCr(image.Rect(0, 0, 10, 10), image.YCbCrSubsampleRatio444)); err == nil {
		t.Error("WriteFrame of a 4:4:4 picture succeeded")
	}
}

func TestY4MReaderRejects(t *testing.T) {
	frame := "FRAME\n" + strings.Repeat("\x80", 16*16*3/2)
	for _, c := range []struct{ name, data string }{
		{"empty", ""},
		{"magic", "YUV4MPEG W16 H16 F30:1\n" + frame},
		{"no newline", "YUV4MPEG2 W16 H16 F30:1"},
		{"422", "YUV4MPEG2 W16 H16 F30:1 C422\n" + frame},
		{"444", "YUV4MPEG2 W16 H16 F30:1 C444\n" + frame},
		{"mono", "YUV4MPEG2 W16 H16 F30:1 Cmono\n" + frame},
		{"10 bit", "YUV4MPEG2 W16 H16 F30:1 C420p10\n" + frame},
		{"top field first", "YUV4MPEG2 W16 H16 F30:1 It\n" + frame},
		{"mixed", "YUV4MPEG2 W16 H16 F30:1 Im\n" + frame},
		{"no width", "YUV4MPEG2 H16 F30:1\n" + frame},
		{"zero width", "YUV4MPEG2 W0 H16 F30:1\n" + frame},
		{"negative height", "YUV4MPEG2 W16 H-16 F30:1\n" + frame},
		{"huge", "YUV4MPEG2 W99999999 H16 F30:1\n" + frame},
		{"too wide", "YUV4MPEG2 W8192 H16 F30:1\n" + frame},
		{"too many pixels", "YUV4MPEG2 W4096 H4096 F30:1\n" + frame},
		{"no rate", "YUV4MPEG2 W16 H16\n" + frame},
		{"zero rate", "YUV4MPEG2 W16 H16 F0:1\n" + frame},
		{"zero denominator", "YUV4MPEG2 W16 H16 F30:0\n" + frame},
		{"slow rate", "YUV4MPEG2 W16 H16 F1:3600\n" + frame},
		{"fast rate", "YUV4MPEG2 W16 H16 F100000:1\n" + frame},
		{"bad rate", "YUV4MPEG2 W16 H16 F30\n" + frame},
		{"bad aspect", "YUV4MPEG2 W16 H16 F30:1 Ax\n" + frame},
		{"long line", "YUV4MPEG2 W16 H16 F30:1 X" + strings.Repeat("x", 5000) + "\n" + frame},
	} {
		if _, err := NewY4MReader(strings.NewReader(c.data), Y4MOptions{}); err == nil {
			t.Errorf("%s: NewY4MReader succeeded", c.name)
		}
	}
	if _, err := NewY4MReader(strings.NewReader("YUV4MPEG2 W640 H360 F30:1\n"), Y4MOptions{MaxPixels: 320 * 180}); err == nil {
		t.Error("NewY4MReader accepted a size above MaxPixels")
	}
	// Errors in frames.
	hdr := "YUV4MPEG2 W16 H16 F30:1\n"
	for _, c := range []struct {
		name, data string
		want       error
	}{
		{"truncated", hdr + frame[:100], io.ErrUnexpectedEOF},
		{"truncated marker", hdr + "FRA", io.ErrUnexpectedEOF},
		{"bad marker", hdr + "FRAMES\n" + frame[6:], ErrY4M},
		{"long frame line", hdr + "FRAME " + strings.Repeat("x", 5000) + "\n", ErrY4M},
	} {
		r, err := NewY4MReader(strings.NewReader(c.data), Y4MOptions{})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if _, err := r.Next(); !errors.Is(err, c.want) {
			t.Errorf("%s: Next() = %v, want %v", c.name, err, c.want)
		}
	}
}

func TestY4MReaderAllocatesAfterChecks(t *testing.T) {
	// A header declaring a picture above the limit fails without
	// allocating it; one within the limit allocates nothing before the
	// first frame.
	measure := func(data string) (uint64, error) {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := NewY4MReader(strings.NewReader(data), Y4MOptions{})
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc, err
	}
	if n, err := measure("YUV4MPEG2 W4096 H4096 F30:1\nFRAME\n"); err == nil || n > 64<<10 {
		t.Errorf("oversized header: %d bytes allocated, error %v; want an error and little allocated", n, err)
	}
	if n, err := measure("YUV4MPEG2 W3840 H2160 F30:1\n"); err != nil || n > 64<<10 {
		t.Errorf("4K header: %d bytes allocated, error %v; want no error and little allocated", n, err)
	}
}

func TestY4MLoop(t *testing.T) {
	data := y4mClip(t, 64, 36, 3, "30:1")
	r, err := NewY4MReader(bytes.NewReader(data), Y4MOptions{Loop: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		img, err := r.Next()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if _, n, ok := ReadStamp(img); !ok || n != uint64(i%3) {
			t.Fatalf("frame %d has stamp %d, %v, want %d", i, n, ok, i%3)
		}
	}
	if _, err := NewY4MReader(io.MultiReader(bytes.NewReader(data)), Y4MOptions{Loop: true}); err == nil {
		t.Error("Loop accepted a reader that cannot seek")
	}
	empty, err := NewY4MReader(strings.NewReader("YUV4MPEG2 W16 H16 F30:1\n"), Y4MOptions{Loop: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := empty.Next(); err != io.EOF {
		t.Errorf("Next on an empty looping stream = %v, want io.EOF", err)
	}
}

func TestY4MPacing(t *testing.T) {
	data := y4mClip(t, 64, 36, 20, "10:1")
	synctest.Test(t, func(t *testing.T) {
		r, err := NewY4MReader(bytes.NewReader(data), Y4MOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		start := time.Now()
		read := func() (uint64, time.Duration) {
			t.Helper()
			img, ct, err := r.ReadFrame()
			if err != nil {
				t.Fatal(err)
			}
			_, n, ok := ReadStamp(img)
			if !ok {
				t.Fatal("no stamp")
			}
			return n, ct.Sub(start)
		}
		for want := range uint64(3) {
			if n, at := read(); n != want || at != time.Duration(want)*100*time.Millisecond {
				t.Fatalf("frame %d at %v, want %d at %v", n, at, want, time.Duration(want)*100*time.Millisecond)
			}
		}
		time.Sleep(450 * time.Millisecond) // the caller is late: frames 3 to 5 are dropped
		if n, at := read(); n != 6 || at != 650*time.Millisecond {
			t.Fatalf("late read: frame %d at %v, want 6 at 650ms", n, at)
		}
		if n, at := read(); n != 7 || at != 700*time.Millisecond {
			t.Fatalf("frame %d at %v, want 7 at 700ms", n, at)
		}
		time.Sleep(5 * time.Second)
		if _, _, err := r.ReadFrame(); err != io.EOF {
			t.Fatalf("ReadFrame past the end = %v, want io.EOF", err)
		}
	})
}

func TestOpenY4M(t *testing.T) {
	name := filepath.Join(t.TempDir(), "clip.y4m")
	if err := os.WriteFile(name, y4mClip(t, 64, 36, 2, "30:1"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := OpenY4M(name, Y4MOptions{Loop: true})
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenY4M(filepath.Join(t.TempDir(), "missing.y4m"), Y4MOptions{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("OpenY4M(missing) = %v, want os.ErrNotExist", err)
	}
}

// ffmpeg runs ffmpeg with args, or skips the test if it is not installed.
func ffmpeg(t testing.TB, args ...string) []byte {
	t.Helper()
	path, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Fatal("ffmpeg is not installed: run make deps (make test does)")
	}
	var stderr bytes.Buffer
	cmd := exec.Command(path, append([]string{"-nostdin", "-v", "error"}, args...)...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("ffmpeg %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return out
}

func TestY4MWithFFmpeg(t *testing.T) {
	dir := t.TempDir()
	theirs := filepath.Join(dir, "theirs.y4m")
	ffmpeg(t, "-f", "lavfi", "-i", "testsrc2=size=96x54:rate=25", "-vf", "scale=97:55", "-frames:v", "5", "-pix_fmt", "yuv420p", theirs)
	f, err := os.Open(theirs)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := NewY4MReader(f, Y4MOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if h := r.Header(); h.Width != 97 || h.Height != 55 || r.FrameRate() != 25 {
		t.Fatalf("header of ffmpeg's file = %+v", h)
	}
	var ours bytes.Buffer
	w, err := NewY4MWriter(&ours, r.Header())
	if err != nil {
		t.Fatal(err)
	}
	for {
		img, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := w.WriteFrame(img); err != nil {
			t.Fatal(err)
		}
	}
	oursName := filepath.Join(dir, "ours.y4m")
	if err := os.WriteFile(oursName, ours.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	md5 := func(name string) string {
		var lines []string
		for _, l := range strings.Split(string(ffmpeg(t, "-i", name, "-f", "framemd5", "-")), "\n") {
			if l != "" && !strings.HasPrefix(l, "#") {
				lines = append(lines, strings.TrimSpace(l[strings.LastIndex(l, ",")+1:]))
			}
		}
		return strings.Join(lines, " ")
	}
	if a, b := md5(theirs), md5(oursName); a != b || strings.Count(a, " ") != 4 {
		t.Fatalf("frame hashes differ:\nffmpeg's %s\nours     %s", a, b)
	}
}

// FuzzY4MReader reads arbitrary streams: nothing may panic or allocate
// beyond the limit, and what is accepted writes back and reads back the
// same.
func FuzzY4MReader(f *testing.F) {
	if *updateSeeds {
		writeY4MSeeds(f)
	}
	f.Add(y4mClip(f, 32, 24, 2, "30:1"))
	f.Add([]byte("YUV4MPEG2 W3 H1 F1:1 C420mpeg2 Ip A0:0 XCOMMENT\nFRAME\nabcde\nFRAME x\n12345"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := NewY4MReader(bytes.NewReader(data), Y4MOptions{MaxPixels: 1 << 16})
		if err != nil {
			return
		}
		var out bytes.Buffer
		w, err := NewY4MWriter(&out, r.Header())
		if err != nil {
			t.Fatalf("NewY4MWriter(%+v) of an accepted header: %v", r.Header(), err)
		}
		var frames []*image.YCbCr
		for {
			img, err := r.Next()
			if err != nil {
				break
			}
			frames = append(frames, ToI420(nil, img))
			if err := w.WriteFrame(img); err != nil {
				t.Fatal(err)
			}
		}
		r2, err := NewY4MReader(bytes.NewReader(out.Bytes()), Y4MOptions{MaxPixels: 1 << 16})
		if err != nil {
			t.Fatalf("rereading what was written: %v", err)
		}
		if r2.Header() != r.Header() {
			t.Fatalf("header %+v read back as %+v", r.Header(), r2.Header())
		}
		for i, want := range frames {
			img, err := r2.Next()
			if err != nil || !equalPictures(img, want) {
				t.Fatalf("frame %d read back differently (%v)", i, err)
			}
		}
		if _, err := r2.Next(); err != io.EOF {
			t.Fatalf("after %d frames: %v, want io.EOF", len(frames), err)
		}
	})
}

// writeY4MSeeds writes small files made by ffmpeg into the seed corpus.
func writeY4MSeeds(f *testing.F) {
	dir := filepath.Join("testdata", "fuzz", "FuzzY4MReader")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		f.Fatal(err)
	}
	for name, args := range map[string][]string{
		"ffmpeg-testsrc2-16x16": {"-f", "lavfi", "-i", "testsrc2=size=16x16:rate=30", "-frames:v", "2", "-pix_fmt", "yuv420p"},
		"ffmpeg-odd-17x9-ntsc":  {"-f", "lavfi", "-i", "testsrc=size=17x9:rate=30000/1001", "-frames:v", "2", "-pix_fmt", "yuv420p"},
		"ffmpeg-mpeg2-8x8":      {"-f", "lavfi", "-i", "color=c=red:size=8x8:rate=25", "-frames:v", "1", "-pix_fmt", "yuv420p", "-chroma_sample_location", "left"},
	} {
		data := ffmpeg(f, append(args, "-f", "yuv4mpegpipe", "-")...)
		seed := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(seed), 0o644); err != nil {
			f.Fatal(err)
		}
	}
}
