package vpx

import (
	"bytes"
	"fmt"
	"image"
	"syscall"
	"testing"
	"time"

	"github.com/parleychat/parley/media/video"
)

// cpuTime returns the CPU time (user and system) the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchClip returns 60 pictures (2 s at 30 fps) of the moving test pattern
// or of the natural clip (see naturalFilter), which the benchmarks cycle
// through with advancing capture times.
func benchClip(b *testing.B, kind string, w, h int) []*image.YCbCr {
	if kind == "natural" {
		pics, _ := naturalClip(b, w, h, 60)
		return pics
	}
	var pics []*image.YCbCr
	for n := range 60 {
		p := video.NewI420(w, h)
		video.Render(p, uint64(n), captureTime(n))
		pics = append(pics, p)
	}
	return pics
}

// reportPerFrame reports wall and CPU milliseconds per frame and the share
// of one core that 30 frames a second would take.
func reportPerFrame(b *testing.B, cpu time.Duration) {
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/frame")
	cpuMs := float64(cpu.Microseconds()) / 1000 / float64(b.N)
	b.ReportMetric(cpuMs, "cpu-ms/frame")
	b.ReportMetric(cpuMs*30/10, "%core@30fps")
}

// BenchmarkEncode measures the encoder's cost on the moving test pattern:
//
//	go test ./media/vpx -run '^$' -bench Encode -count 5
func BenchmarkEncode(b *testing.B) {
	cases := []struct {
		clip              string
		w, h, kbps, speed int
	}{
		{"pattern", 640, 360, 800, 0},
		{"pattern", 320, 180, 250, 0},
		{"natural", 640, 360, 800, 0},
		{"natural", 320, 180, 250, 0},
		{"natural", 640, 360, 800, 4},
		{"natural", 640, 360, 800, 6},
		{"natural", 640, 360, 800, 10},
		{"natural", 640, 360, 800, 12},
	}
	for _, c := range cases {
		speed := c.speed
		if speed == 0 {
			speed = DefaultSpeed
		}
		b.Run(fmt.Sprintf("%s/%dx%d/%dk/speed%d", c.clip, c.w, c.h, c.kbps, speed), func(b *testing.B) {
			pics := benchClip(b, c.clip, c.w, c.h)
			e, err := NewEncoder(Config{Bitrate: c.kbps * 1000, Speed: speed})
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			n, bytes := 0, 0
			// Warm up past the first keyframe.
			for ; n < 30; n++ {
				e.Encode(pics[n%len(pics)], captureTime(n), false)
			}
			b.ReportAllocs()
			cpu := cpuTime()
			for b.Loop() {
				frame, _, err := e.Encode(pics[n%len(pics)], captureTime(n), false)
				if err != nil {
					b.Fatal(err)
				}
				bytes += len(frame)
				n++
			}
			reportPerFrame(b, cpuTime()-cpu)
			b.ReportMetric(float64(bytes)*8*30/1000/float64(b.N), "kbit/s")
		})
	}
}

// BenchmarkDecode measures the decoder on the same streams:
//
//	go test ./media/vpx -run '^$' -bench Decode -count 5
func BenchmarkDecode(b *testing.B) {
	for _, c := range []struct {
		clip       string
		w, h, kbps int
	}{{"pattern", 640, 360, 800}, {"natural", 640, 360, 800}, {"natural", 320, 180, 250}} {
		b.Run(fmt.Sprintf("%s/%dx%d/%dk", c.clip, c.w, c.h, c.kbps), func(b *testing.B) {
			e, err := NewEncoder(Config{Bitrate: c.kbps * 1000})
			if err != nil {
				b.Fatal(err)
			}
			pics := benchClip(b, c.clip, c.w, c.h)
			var frames [][]byte
			for n := range 300 { // 10 s: a keyframe, then delta frames
				frame, _, err := e.Encode(pics[n%len(pics)], captureTime(n), false)
				if err != nil {
					b.Fatal(err)
				}
				frames = append(frames, bytes.Clone(frame))
			}
			e.Close()
			d, err := NewDecoder()
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			i := 0
			b.ReportAllocs()
			cpu := cpuTime()
			for b.Loop() {
				// The stream restarts with its keyframe every 300 frames.
				if _, err := d.Decode(frames[i%len(frames)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
			reportPerFrame(b, cpuTime()-cpu)
		})
	}
}

// BenchmarkCall is the CPU budget case: per 1/30 s, encode one
// 640×360 picture of the natural clip at 800 kbit/s and decode four such
// streams (the same stream into four decoders). %core@30fps is the share
// of one core it takes at 30 pictures per second (target: at most 60).
//
//	go test ./media/vpx -run '^$' -bench Call -count 5
func BenchmarkCall(b *testing.B) {
	pics := benchClip(b, "natural", 640, 360)
	e, err := NewEncoder(Config{Bitrate: 800_000})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	var ds []*Decoder
	for range 4 {
		d, err := NewDecoder()
		if err != nil {
			b.Fatal(err)
		}
		defer d.Close()
		ds = append(ds, d)
	}
	n := 0
	step := func() {
		frame, _, err := e.Encode(pics[n%len(pics)], captureTime(n), false)
		if err != nil {
			b.Fatal(err)
		}
		for _, d := range ds {
			if _, err := d.Decode(frame); err != nil {
				b.Fatal(err)
			}
		}
		n++
	}
	for range 30 {
		step()
	}
	b.ReportAllocs()
	cpu := cpuTime()
	for b.Loop() {
		step()
	}
	reportPerFrame(b, cpuTime()-cpu)
}
