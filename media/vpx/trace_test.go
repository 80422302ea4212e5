package vpx

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var writeTrace = flag.Bool("write-trace", false, "rewrite testdata/vp8-640x360-1500k.trace, the frame sizes the relay's voice-under-video benchmark replays")

// tracePath is the frame-size trace, in the module's shared testdata.
var tracePath = filepath.Join("..", "..", "testdata", "vp8-640x360-1500k.trace")

// TestFrameSizeTrace encodes 10 s of the natural clip at 640×360, 30 fps
// and 1.5 Mbit/s, with a keyframe every 2 s (as a call with joins and
// losses has, the relay asking for them), and writes each frame's size and keyframe flag, so that
// the relay's benchmarks (pure Go, no codec) send video shaped like the
// real thing. Without -write-trace it checks that the stored trace still
// has the shape this encoder gives: its total within 10 % and keyframes
// where this run has them.
func TestFrameSizeTrace(t *testing.T) {
	const frames = 300
	if !*writeTrace && testing.Short() {
		t.Skip("encodes 10 s of video")
	}
	pics, _ := naturalClip(t, 640, 360, frames)
	enc, err := NewEncoder(Config{Bitrate: 1_500_000, KeyframeInterval: 60})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	start := time.Unix(1700000000, 0)
	type entry struct {
		size int
		key  bool
	}
	var got []entry
	total := 0
	for i, p := range pics {
		f, key, err := enc.Encode(p, start.Add(time.Duration(i)*time.Second/30), false)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, entry{len(f), key})
		total += len(f)
	}
	if *writeTrace {
		f, err := os.Create(tracePath)
		if err != nil {
			t.Fatal(err)
		}
		w := bufio.NewWriter(f)
		fmt.Fprintf(w, "# VP8 frame sizes: 640x360, 30 fps, 1.5 Mbit/s, a keyframe every 2 s, the natural clip of media/vpx/clip_test.go.\n")
		fmt.Fprintf(w, "# One frame per line: size in bytes, then k for a keyframe. Regenerate with\n")
		fmt.Fprintf(w, "#   go test ./media/vpx -run TestFrameSizeTrace -write-trace\n")
		for _, e := range got {
			k := ""
			if e.key {
				k = " k"
			}
			fmt.Fprintf(w, "%d%s\n", e.size, k)
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	stored, err := os.Open(tracePath)
	if err != nil {
		t.Fatalf("%v (run with -write-trace)", err)
	}
	defer stored.Close()
	sc := bufio.NewScanner(stored)
	var n, sum int
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		var size int
		var k string
		fmt.Sscanf(line, "%d %s", &size, &k)
		if n < len(got) && (k == "k") != got[n].key {
			t.Errorf("trace frame %d keyframe = %v, this encoder: %v", n, k == "k", got[n].key)
		}
		n++
		sum += size
	}
	if n != frames {
		t.Fatalf("the trace has %d frames, want %d", n, frames)
	}
	if d := float64(sum-total) / float64(total); d > 0.1 || d < -0.1 {
		t.Errorf("the trace totals %d bytes, this encoder %d: regenerate it", sum, total)
	}
	t.Logf("%d frames, %.2f Mbit/s", frames, float64(total)*8/10/1e6)
}
