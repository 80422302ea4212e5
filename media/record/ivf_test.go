package record

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

var updateSeeds = flag.Bool("update-seeds", false, "rewrite the fuzz seed corpus in testdata/fuzz from ffmpeg's output")

// seekBuffer is an in-memory io.WriteSeeker.
type seekBuffer struct {
	b   []byte
	pos int
}

func (s *seekBuffer) Write(p []byte) (int, error) {
	if need := s.pos + len(p); need > len(s.b) {
		s.b = append(s.b, make([]byte, need-len(s.b))...)
	}
	copy(s.b[s.pos:], p)
	s.pos += len(p)
	return len(p), nil
}

func (s *seekBuffer) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
		s.pos = int(off)
	case io.SeekCurrent:
		s.pos += int(off)
	case io.SeekEnd:
		s.pos = len(s.b) + int(off)
	}
	return int64(s.pos), nil
}

func TestIVFRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var frames [][]byte
	for range 10 {
		f := make([]byte, 1+rng.IntN(3000))
		for j := range f {
			f[j] = byte(rng.UintN(256))
		}
		frames = append(frames, f)
	}
	var buf seekBuffer
	buf.Write([]byte("prefix")) // the header need not start the stream
	w, err := NewIVFWriter(&buf, IVFHeader{Width: 640, Height: 360, TimebaseNum: 1, TimebaseDen: 30})
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range frames {
		if err := w.WriteFrame(f, uint64(3*i+1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if buf.pos != len(buf.b) {
		t.Errorf("after Close the writer is at %d, want the end %d", buf.pos, len(buf.b))
	}
	r, err := NewIVFReader(bytes.NewReader(buf.b[len("prefix"):]))
	if err != nil {
		t.Fatal(err)
	}
	want := IVFHeader{FourCC: [4]byte{'V', 'P', '8', '0'}, Width: 640, Height: 360, TimebaseNum: 1, TimebaseDen: 30, Frames: 10}
	if r.Header() != want {
		t.Errorf("Header() = %+v, want %+v", r.Header(), want)
	}
	for i, f := range frames {
		got, pts, err := r.ReadFrame()
		if err != nil || !bytes.Equal(got, f) || pts != uint64(3*i+1) {
			t.Fatalf("ReadFrame() %d = %d bytes, pts %d, %v; want %d bytes, pts %d", i, len(got), pts, err, len(f), 3*i+1)
		}
	}
	if _, _, err := r.ReadFrame(); err != io.EOF {
		t.Fatalf("ReadFrame at the end = %v, want io.EOF", err)
	}
}

func TestIVFHeaderEncoding(t *testing.T) {
	h := IVFHeader{FourCC: [4]byte{'V', 'P', '8', '0'}, Width: 0x0280, Height: 0x0168, TimebaseNum: 1, TimebaseDen: 1000, Frames: 7}
	want := "DKIF\x00\x00\x20\x00VP80\x80\x02\x68\x01\xe8\x03\x00\x00\x01\x00\x00\x00\x07\x00\x00\x00\x00\x00\x00\x00"
	if got := string(h.AppendBinary(nil)); got != want {
		t.Errorf("AppendBinary = %q, want %q", got, want)
	}
}

func TestIVFWriterRejects(t *testing.T) {
	for _, h := range []IVFHeader{{Width: 0, Height: 10}, {Width: 10, Height: 10, TimebaseNum: 1}} {
		if _, err := NewIVFWriter(io.Discard, h); err == nil {
			t.Errorf("NewIVFWriter(%+v) succeeded", h)
		}
	}
	w, err := NewIVFWriter(io.Discard, IVFHeader{Width: 16, Height: 16})
	if err != nil {
		t.Fatal(err)
	}
	if h := w.Header(); h.TimebaseNum != 1 || h.TimebaseDen != 1000 || string(h.FourCC[:]) != "VP80" {
		t.Errorf("defaults: %+v, want VP80 and 1/1000", h)
	}
	if err := w.WriteFrame(nil, 0); err == nil {
		t.Error("WriteFrame(empty) succeeded")
	}
	if err := w.WriteFrame([]byte{1}, 5); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFrame([]byte{1}, 5); err == nil {
		t.Error("WriteFrame with a repeated timestamp succeeded")
	}
	if err := w.WriteFrame(make([]byte, MaxIVFFrameSize+1), 6); err == nil {
		t.Error("WriteFrame above MaxIVFFrameSize succeeded")
	}
	if err := w.Close(); err != nil {
		t.Errorf("Close on a writer that cannot seek = %v, want nil", err)
	}
	if err := w.WriteFrame([]byte{1}, 9); err == nil {
		t.Error("WriteFrame after Close succeeded")
	}
}

func TestIVFTimestamp(t *testing.T) {
	w, _ := NewIVFWriter(io.Discard, IVFHeader{Width: 1, Height: 1, TimebaseNum: 1001, TimebaseDen: 30000})
	for _, c := range []struct {
		d    time.Duration
		want uint64
	}{{0, 0}, {-time.Second, 0}, {time.Second * 1001 / 30000, 1}, {time.Hour, 107892}} {
		if got := w.Timestamp(c.d); got != c.want {
			t.Errorf("Timestamp(%v) = %d, want %d", c.d, got, c.want)
		}
	}
}

func TestIVFReaderRejects(t *testing.T) {
	hdr := IVFHeader{FourCC: [4]byte{'V', 'P', '8', '0'}, Width: 16, Height: 16, TimebaseNum: 1, TimebaseDen: 30}.AppendBinary(nil)
	withByte := func(i int, v byte) []byte { b := bytes.Clone(hdr); b[i] = v; return b }
	for _, c := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"short", hdr[:20]},
		{"signature", withByte(0, 'X')},
		{"version", withByte(4, 1)},
		{"header size", withByte(6, 16)},
		{"huge header", withByte(7, 0xff)},
		{"cut extended header", withByte(6, 40)},
	} {
		if _, err := NewIVFReader(bytes.NewReader(c.data)); err == nil {
			t.Errorf("%s: NewIVFReader succeeded", c.name)
		}
	}
	frame := func(size uint32, data string) []byte {
		b := append(bytes.Clone(hdr), byte(size), byte(size>>8), byte(size>>16), byte(size>>24), 0, 0, 0, 0, 0, 0, 0, 0)
		return append(b, data...)
	}
	for _, c := range []struct {
		name string
		data []byte
		want error
	}{
		{"cut frame header", frame(3, "")[:ivfHeaderSize+5], io.ErrUnexpectedEOF},
		{"cut frame", frame(10, "abc"), io.ErrUnexpectedEOF},
		{"oversized frame", frame(1<<30, "abc"), ErrIVF},
		{"large cut frame", frame(MaxIVFFrameSize, "abc"), io.ErrUnexpectedEOF},
	} {
		r, err := NewIVFReader(bytes.NewReader(c.data))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, _, err = r.ReadFrame()
		runtime.ReadMemStats(&after)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: ReadFrame() = %v, want %v", c.name, err, c.want)
		}
		if n := after.TotalAlloc - before.TotalAlloc; n > 256<<10 {
			t.Errorf("%s: ReadFrame allocated %d bytes for a few bytes of data", c.name, n)
		}
	}
}

// tool runs an ffmpeg tool, or skips the test if it is not installed. It
// fails the test if the tool fails or prints anything on stderr.
func tool(t testing.TB, name string, args ...string) string {
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
	return string(out)
}

// CheckWithFFmpeg fails t unless ffmpeg decodes the IVF file name without
// a word and ffprobe counts frames frames in it.
func checkWithFFmpeg(t *testing.T, name string, frames int) {
	t.Helper()
	if out := tool(t, "ffmpeg", "-nostdin", "-i", name, "-f", "null", "-"); out != "" {
		t.Errorf("ffmpeg printed %q", out)
	}
	out := tool(t, "ffprobe", "-count_frames", "-select_streams", "v:0", "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", name)
	if got := strings.TrimSpace(out); got != fmt.Sprint(frames) {
		t.Errorf("ffprobe counts %s frames in %s, want %d", got, name, frames)
	}
}

func TestIVFWithFFmpeg(t *testing.T) {
	dir := t.TempDir()
	theirs := filepath.Join(dir, "theirs.ivf")
	tool(t, "ffmpeg", "-nostdin", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=30", "-frames:v", "20", "-c:v", "libvpx", "-b:v", "200k", theirs)
	f, err := os.Open(theirs)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := NewIVFReader(f)
	if err != nil {
		t.Fatal(err)
	}
	if h := r.Header(); string(h.FourCC[:]) != "VP80" || h.Width != 64 || h.Height != 48 {
		t.Fatalf("header of ffmpeg's file: %+v", h)
	}
	type frame struct {
		data []byte
		pts  uint64
	}
	var frames []frame
	for {
		b, pts, err := r.ReadFrame()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		frames = append(frames, frame{bytes.Clone(b), pts})
	}
	if len(frames) != 20 {
		t.Fatalf("read %d frames from ffmpeg's file, want 20", len(frames))
	}
	// Rewrite them at 30 fps (time base 1/30) and in milliseconds.
	for _, tb := range []uint32{30, 0} {
		name := filepath.Join(dir, fmt.Sprintf("ours-%d.ivf", tb))
		out, err := os.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		h := IVFHeader{Width: 64, Height: 48}
		if tb != 0 {
			h.TimebaseNum, h.TimebaseDen = 1, tb
		}
		w, err := NewIVFWriter(out, h)
		if err != nil {
			t.Fatal(err)
		}
		for i, fr := range frames {
			pts := uint64(i)
			if tb == 0 {
				pts = w.Timestamp(time.Duration(i) * time.Second / 30)
			}
			if err := w.WriteFrame(fr.data, pts); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if err := out.Close(); err != nil {
			t.Fatal(err)
		}
		checkWithFFmpeg(t, name, 20)
		md5 := func(name string) string {
			var hashes []string
			for _, l := range strings.Split(tool(t, "ffmpeg", "-nostdin", "-i", name, "-f", "framemd5", "-"), "\n") {
				if l != "" && !strings.HasPrefix(l, "#") {
					hashes = append(hashes, strings.TrimSpace(l[strings.LastIndex(l, ",")+1:]))
				}
			}
			return strings.Join(hashes, " ")
		}
		if a, b := md5(theirs), md5(name); a != b {
			t.Errorf("ffmpeg decodes %s differently from the original:\n%s\n%s", name, a, b)
		}
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		r, err := NewIVFReader(f)
		f.Close()
		if err != nil || r.Header().Frames != 20 {
			t.Errorf("frame count in the header after Close: %+v, %v, want 20", r.Header(), err)
		}
	}
}

// FuzzIVFReader reads arbitrary files: nothing may panic, and what is
// accepted writes back and reads back the same.
func FuzzIVFReader(f *testing.F) {
	if *updateSeeds {
		writeIVFSeeds(f)
	}
	var buf bytes.Buffer
	w, _ := NewIVFWriter(&buf, IVFHeader{Width: 16, Height: 16, TimebaseNum: 1, TimebaseDen: 30})
	w.WriteFrame([]byte("\x50\x42\x00\x9d\x01\x2a\x10\x00\x10\x00"), 0)
	w.WriteFrame([]byte("\x51\x02\x00"), 1)
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := NewIVFReader(bytes.NewReader(data))
		if err != nil {
			return
		}
		h := r.Header()
		var out seekBuffer
		w, err := NewIVFWriter(&out, h)
		if err != nil {
			return // a size or time base the writer does not write
		}
		type frame struct {
			data []byte
			pts  uint64
		}
		var frames []frame
		for {
			b, pts, err := r.ReadFrame()
			if err != nil {
				break
			}
			if w.WriteFrame(b, pts) != nil {
				break // empty frames and timestamps that do not increase are not written
			}
			frames = append(frames, frame{bytes.Clone(b), pts})
		}
		w.Close()
		r2, err := NewIVFReader(bytes.NewReader(out.b))
		if err != nil {
			t.Fatalf("rereading what was written: %v", err)
		}
		want := w.Header() // h with the writer's defaults and frame count
		if want.Frames != uint32(len(frames)) {
			t.Fatalf("writer counted %d frames, wrote %d", want.Frames, len(frames))
		}
		if r2.Header() != want {
			t.Fatalf("header %+v read back as %+v", want, r2.Header())
		}
		for i, fr := range frames {
			b, pts, err := r2.ReadFrame()
			if err != nil || !bytes.Equal(b, fr.data) || pts != fr.pts {
				t.Fatalf("frame %d read back differently (%v)", i, err)
			}
		}
		if _, _, err := r2.ReadFrame(); err != io.EOF {
			t.Fatalf("after %d frames: %v, want io.EOF", len(frames), err)
		}
	})
}

// writeIVFSeeds writes small files made by ffmpeg into the seed corpus.
func writeIVFSeeds(f *testing.F) {
	dir := filepath.Join("testdata", "fuzz", "FuzzIVFReader")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		f.Fatal(err)
	}
	for name, src := range map[string]string{
		"ffmpeg-vp8-16x16": "testsrc2=size=16x16:rate=30",
		"ffmpeg-vp8-18x10": "testsrc=size=18x10:rate=25",
	} {
		file := filepath.Join(f.TempDir(), "seed.ivf")
		tool(f, "ffmpeg", "-nostdin", "-f", "lavfi", "-i", src, "-frames:v", "3", "-c:v", "libvpx", "-b:v", "50k", file)
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		seed := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(seed), 0o644); err != nil {
			f.Fatal(err)
		}
	}
}
