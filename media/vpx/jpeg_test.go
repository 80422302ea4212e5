package vpx

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"image"
	"image/jpeg"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/media/video"
)

var (
	vpxJPEG    = flag.Bool("vpxjpeg", false, "run TestVP8VersusJPEG, the bits comparison for docs/performance.md")
	vpxJPEGOut = flag.String("vpxjpeg-out", "", "also write TestVP8VersusJPEG's table, in Markdown, to this file")
)

// point is one encoding of the clip: its size and quality.
type point struct {
	setting string
	bits    int     // all frames
	ssim    float64 // ffmpeg's "All", the mean over frames
	psnr    float64 // video.PSNR, the mean over frames
}

// ssimOf returns ffmpeg's SSIM ("All": the planes weighted by their sizes)
// of the pictures against the source clip, the mean over frames.
func ssimOf(t *testing.T, dir string, source []byte, pics []*image.YCbCr) float64 {
	t.Helper()
	src := filepath.Join(dir, "source.y4m")
	if _, err := os.Stat(src); err != nil {
		if err := os.WriteFile(src, source, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	w, err := video.NewY4MWriter(&buf, video.Y4MHeader{Width: pics[0].Rect.Dx(), Height: pics[0].Rect.Dy(), RateNum: 30, RateDen: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pics {
		if err := w.WriteFrame(p); err != nil {
			t.Fatal(err)
		}
	}
	dec := filepath.Join(dir, "decoded.y4m")
	if err := os.WriteFile(dec, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	stats := filepath.Join(dir, "ssim.txt")
	tool(t, "ffmpeg", "-nostdin", "-i", dec, "-i", src, "-lavfi", "[0:v][1:v]ssim=stats_file="+stats, "-f", "null", "-")
	f, err := os.Open(stats)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var sum float64
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		for _, field := range strings.Fields(sc.Text()) {
			if v, ok := strings.CutPrefix(field, "All:"); ok {
				x, err := strconv.ParseFloat(v, 64)
				if err != nil {
					t.Fatalf("ssim stats: %q", sc.Text())
				}
				sum += x
				n++
			}
		}
	}
	if n != len(pics) {
		t.Fatalf("ssim stats for %d frames, want %d", n, len(pics))
	}
	return sum / float64(n)
}

func meanPSNR(a, b []*image.YCbCr) float64 {
	var s float64
	for i := range a {
		s += min(video.PSNR(a[i], b[i]), 99)
	}
	return s / float64(len(a))
}

// bitsAt interpolates the bits a curve needs for an SSIM, linearly in
// log(bits) between its two nearest points; ok is false outside the curve.
func bitsAt(curve []point, ssim float64) (bits float64, ok bool) {
	c := slices.Clone(curve)
	slices.SortFunc(c, func(a, b point) int { return a.bits - b.bits })
	for i := 1; i < len(c); i++ {
		lo, hi := c[i-1], c[i]
		if (ssim >= lo.ssim && ssim <= hi.ssim) || (ssim <= lo.ssim && ssim >= hi.ssim) {
			f := 0.0
			if hi.ssim != lo.ssim {
				f = (ssim - lo.ssim) / (hi.ssim - lo.ssim)
			}
			return math.Exp(math.Log(float64(lo.bits)) + f*(math.Log(float64(hi.bits))-math.Log(float64(lo.bits)))), true
		}
	}
	return 0, false
}

// TestVP8VersusJPEG compares the bits of VP8 with those of per-frame JPEG
// (what the original design sent: each frame as a 360×360 JPEG with PIL's
// defaults, quality 75 and 4:2:0) on the same 5 s clip at equal SSIM. Run it
// with
//
//	go test ./media/vpx -run TestVP8VersusJPEG -vpxjpeg -v
func TestVP8VersusJPEG(t *testing.T) {
	if !*vpxJPEG {
		t.Skip("a measurement: run with -vpxjpeg")
	}
	const size, frames = 360, 150
	source, y4m := naturalClip(t, size, size, frames)
	dir := t.TempDir()
	seconds := float64(frames) / 30

	var jpegs []point
	for _, q := range []int{30, 50, 65, 75, 85, 95} {
		var bits int
		var dec []*image.YCbCr
		var buf bytes.Buffer
		for _, p := range source {
			buf.Reset()
			if err := jpeg.Encode(&buf, p, &jpeg.Options{Quality: q}); err != nil {
				t.Fatal(err)
			}
			bits += 8 * buf.Len()
			img, err := jpeg.Decode(&buf)
			if err != nil {
				t.Fatal(err)
			}
			dec = append(dec, video.ToI420(nil, img))
		}
		jpegs = append(jpegs, point{fmt.Sprintf("JPEG q%d", q), bits, ssimOf(t, dir, y4m, dec), meanPSNR(source, dec)})
	}
	var vp8s []point
	for _, kbps := range []int{40, 60, 80, 120, 160, 240, 320, 480, 640, 960, 1500, 2500} {
		e := newEncoder(t, Config{Bitrate: kbps * 1000})
		d := newDecoder(t)
		var bits int
		var dec []*image.YCbCr
		for n, p := range source {
			frame, _, err := e.Encode(p, clipStart.Add(time.Duration(n)*time.Second/30), false)
			if err != nil {
				t.Fatal(err)
			}
			bits += 8 * len(frame)
			img, err := d.Decode(frame)
			if err != nil {
				t.Fatal(err)
			}
			dec = append(dec, video.ToI420(nil, img))
		}
		vp8s = append(vp8s, point{fmt.Sprintf("VP8 %dk", kbps), bits, ssimOf(t, dir, y4m, dec), meanPSNR(source, dec)})
	}

	var out strings.Builder
	fmt.Fprintf(&out, "clip: %d×%d, %d frames at 30 fps (%.0f s), lavfi (see naturalFilter)\n", size, size, frames, seconds)
	fmt.Fprintf(&out, "%-10s %10s %12s %8s %9s\n", "encoding", "kbit/s", "bytes/frame", "SSIM", "PSNR dB")
	for _, p := range append(jpegs, vp8s...) {
		fmt.Fprintf(&out, "%-10s %10.0f %12.0f %8.4f %9.2f\n", p.setting, float64(p.bits)/seconds/1000, float64(p.bits)/8/frames, p.ssim, p.psnr)
	}
	fmt.Fprintf(&out, "\nat equal SSIM (VP8 bits interpolated in log(bits)):\n")
	fmt.Fprintf(&out, "%-10s %8s %12s %12s %8s\n", "JPEG", "SSIM", "JPEG kbit/s", "VP8 kbit/s", "VP8/JPEG")
	var ratio75 float64
	for _, j := range jpegs {
		v, ok := bitsAt(vp8s, j.ssim)
		if !ok {
			fmt.Fprintf(&out, "%-10s %8.4f %12.0f %12s %8s\n", j.setting, j.ssim, float64(j.bits)/seconds/1000, "out of range", "")
			continue
		}
		r := v / float64(j.bits)
		if j.setting == "JPEG q75" {
			ratio75 = r
		}
		fmt.Fprintf(&out, "%-10s %8.4f %12.0f %12.0f %8.3f (1/%.1f)\n", j.setting, j.ssim, float64(j.bits)/seconds/1000, v/seconds/1000, r, 1/r)
	}
	t.Log("\n" + out.String())
	if *vpxJPEGOut != "" {
		var md strings.Builder
		fmt.Fprintf(&md, "| JPEG | SSIM | JPEG kbit/s | VP8 kbit/s at equal SSIM | VP8 / JPEG |\n|---|---|---|---|---|\n")
		for _, j := range jpegs {
			name := strings.TrimPrefix(j.setting, "JPEG ")
			if name == "q75" {
				name = "**q75 (PIL's default)**"
			}
			if v, ok := bitsAt(vp8s, j.ssim); ok {
				r := v / float64(j.bits)
				fmt.Fprintf(&md, "| %s | %.4f | %.0f | %.0f | %.3f (1/%.1f) |\n", name, j.ssim, float64(j.bits)/seconds/1000, v/seconds/1000, r, 1/r)
			} else {
				fmt.Fprintf(&md, "| %s | %.4f | %.0f | — (VP8 tops out at SSIM %.3f) | — |\n", name, j.ssim, float64(j.bits)/seconds/1000, vp8s[len(vp8s)-1].ssim)
			}
		}
		if err := os.WriteFile(*vpxJPEGOut, []byte(md.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if ratio75 == 0 {
		t.Fatal("JPEG q75's SSIM is outside the VP8 curve: widen the bitrates")
	}
	if ratio75 > 1.0/8 {
		t.Errorf("VP8 needs %.3f of JPEG q75's bits at its SSIM: above the 1/8 target", ratio75)
	}
}
