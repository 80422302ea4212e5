package relay_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/relay/relaybench"
)

var (
	voiceBench     = flag.Bool("voicebench", false, "run TestVoiceUnderVideo, the measurement for docs/performance.md")
	voiceBenchRuns = flag.Int("voicebench-runs", 3, "runs of each case in TestVoiceUnderVideo")
	voiceBenchFor  = flag.Duration("voicebench-time", 20*time.Second, "length of each run of TestVoiceUnderVideo")
	voiceBenchOut  = flag.String("voicebench-out", "", "also write TestVoiceUnderVideo's table to this file")
)

// TestVoiceUnderVideo measures how long voice takes from sender to
// receiver while the same connection carries 1.5 Mbit/s of video (the
// frame sizes of our VP8 encoder on a natural clip) and the receiver's link
// carries 2.5 Mbit/s, for the naive relay, this relay with its pacer off,
// and this relay, with the idle link as a floor (relaybench). It is a
// measurement, not a test of a target: run it with -voicebench (make bench
// runs it through parley-load bench).
func TestVoiceUnderVideo(t *testing.T) {
	if !*voiceBench {
		t.Skip("a measurement: run with -voicebench")
	}
	trace, err := relaybench.LoadTrace(filepath.Join("..", "testdata", "vp8-640x360-1500k.trace"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := relaybench.Config{Trace: trace, Duration: *voiceBenchFor}
	cases := []relaybench.Case{relaybench.Idle, relaybench.Naive, relaybench.Unpaced, relaybench.Parley}
	p50s := make([][]time.Duration, len(cases))
	p99s := make([][]time.Duration, len(cases))
	for run := range *voiceBenchRuns {
		for i, c := range cases {
			samples, err := relaybench.VoiceUnderVideo(context.Background(), c, cfg)
			if err != nil {
				t.Fatal(err)
			}
			p50, p99 := relaybench.Percentiles(samples, *voiceBenchFor/10)
			t.Logf("run %d, %s: %d voice frames, p50 %v, p99 %v", run+1, c, len(samples), p50, p99)
			p50s[i] = append(p50s[i], p50)
			p99s[i] = append(p99s[i], p99)
		}
	}
	median := func(d []time.Duration) time.Duration {
		d = slices.Clone(d)
		slices.Sort(d)
		return d[len(d)/2]
	}
	var b strings.Builder
	fmt.Fprintf(&b, "| case | voice delay p50 | voice delay p99 | naive p99 ÷ this p99 |\n|---|---|---|---|\n")
	naive99 := median(p99s[1])
	for i, c := range cases {
		p50, p99 := median(p50s[i]), median(p99s[i])
		ratio := fmt.Sprintf("%.1f", float64(naive99)/float64(max(p99, time.Microsecond)))
		if c == relaybench.Naive {
			ratio = "—"
		}
		fmt.Fprintf(&b, "| %s | %v | %v | %s |\n", c, p50.Round(100*time.Microsecond), p99.Round(100*time.Microsecond), ratio)
	}
	t.Log("\n" + b.String())
	if *voiceBenchOut != "" {
		if err := os.WriteFile(*voiceBenchOut, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
