package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"text/template"
	"time"

	"github.com/parleychat/parley/relay/relaybench"
)

// benchOptions say what "parley-load bench" runs.
type benchOptions struct {
	out     string // the document to write
	plot    string // the voice delay plot
	include string // directory of fragments made by make bench (vp8-vs-jpeg.md, go.txt)
	trace   string // the VP8 frame-size trace
	runs    int
	quick   bool // shorter runs, for trying the tool
	only    string
}

// benchData is what the document template shows.
type benchData struct {
	Date, Machine, GoVersion, Command string
	Runs                              int

	Fanout       []fanoutRow
	FanoutRatio  float64 // Parley / NATS, median of the runs' ratios
	FanoutRatioT float64 // Parley / NATS with TLS
	FanoutCfg    loadConfig

	Capacity    *loadResult
	CapacityCfg loadConfig
	// The same load at half the clients and rooms: where the delay comes
	// from when the full load saturates the machine.
	CapacityHalf    *loadResult
	CapacityHalfCfg loadConfig

	Idle    *loadResult
	IdleCfg loadConfig

	Voice      []voiceRow
	VoiceRatio float64
	VoicePlot  string
	VoiceFor   time.Duration

	G2G50, G2G95, G2G99 time.Duration
	G2GPictures         uint64
	G2GFor              time.Duration

	ClientCores, ClientFPS float64
	ClientFor              time.Duration

	VP8JPEG string // Markdown table, from media/vpx's measurement
	GoBench string // benchstat-format lines
}

type fanoutRow struct {
	Server                string
	PerSec, Cores, PerCPU float64
	P50, P99              time.Duration
	PerCPURuns            []string
}

type voiceRow struct {
	Case     string
	P50, P99 time.Duration
	Ratio    string
}

// runBench runs the scenarios of docs/performance.md and writes it.
func runBench(ctx context.Context, args []string) error {
	var o benchOptions
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.StringVar(&o.out, "out", "docs/performance.md", "the document to write")
	fs.StringVar(&o.plot, "plot", "docs/voice-under-video.png", "the voice delay plot to draw")
	fs.StringVar(&o.include, "include", "bench", "directory with vp8-vs-jpeg.md and go.txt from make bench")
	fs.StringVar(&o.trace, "trace", "testdata/vp8-640x360-1500k.trace", "the VP8 frame-size trace")
	fs.IntVar(&o.runs, "runs", 3, "runs of each comparison")
	fs.BoolVar(&o.quick, "quick", false, "short runs, to try the tool (the figures are not for the document)")
	fs.StringVar(&o.only, "only", "", "run one scenario and print it: fanout, capacity, idle, voice, g2g, client")
	if err := fs.Parse(args); err != nil {
		return err
	}
	d := &benchData{Date: time.Now().UTC().Format("2006-01-02"), Machine: machine(), GoVersion: runtime.Version(),
		Command: "make bench", Runs: o.runs}
	scale := func(full time.Duration) time.Duration {
		if o.quick {
			return full / 4
		}
		return full
	}
	want := func(name string) bool { return o.only == "" || o.only == name }
	step := func(format string, args ...any) { fmt.Fprintf(os.Stderr, "== "+format+"\n", args...) }

	if want("fanout") {
		d.FanoutCfg = loadConfig{Clients: 500, Rooms: 50, Speakers: 2, VoiceBytes: 100, Duration: scale(10 * time.Second), Warmup: 2 * time.Second}
		servers := []string{"parley", "nats", "nats-tls", "raw"}
		perCPU := make(map[string][]float64)
		rows := make(map[string]*fanoutRow)
		var ratios, ratiosTLS []float64
		for run := range o.runs {
			got := make(map[string]float64)
			for _, s := range servers {
				step("fan-out, run %d of %d: %s", run+1, o.runs, s)
				cfg := d.FanoutCfg
				cfg.Server = s
				r, err := runLoad(ctx, cfg)
				if err != nil {
					return fmt.Errorf("fan-out %s: %w", s, err)
				}
				got[s] = r.PerCPUSecond
				perCPU[s] = append(perCPU[s], r.PerCPUSecond)
				row := rows[s]
				if row == nil {
					row = &fanoutRow{Server: s}
					rows[s] = row
				}
				row.PerCPURuns = append(row.PerCPURuns, fmt.Sprintf("%.0f", r.PerCPUSecond))
				if run == o.runs/2 || o.runs == 1 { // the middle run's other figures
					row.PerSec, row.Cores, row.P50, row.P99 = r.VoicePerSec, r.ServerCores, r.P50, r.P99
				}
			}
			ratios = append(ratios, got["parley"]/got["nats"])
			ratiosTLS = append(ratiosTLS, got["parley"]/got["nats-tls"])
		}
		for _, s := range servers {
			rows[s].PerCPU = medianF(perCPU[s])
			d.Fanout = append(d.Fanout, *rows[s])
		}
		d.FanoutRatio, d.FanoutRatioT = medianF(ratios), medianF(ratiosTLS)
		if o.only != "" {
			for _, r := range d.Fanout {
				fmt.Printf("%-9s %8.0f delivered/s  %.2f cores  %8.0f per CPU-s  p50 %s p99 %s\n", r.Server, r.PerSec, r.Cores, r.PerCPU, fmtDur(r.P50), fmtDur(r.P99))
			}
			fmt.Printf("parley / nats %.2f, parley / nats-tls %.2f\n", d.FanoutRatio, d.FanoutRatioT)
		}
	}
	if want("capacity") {
		step("capacity")
		d.CapacityCfg = loadConfig{Server: "parley", Clients: 1000, Rooms: 100, Speakers: 1, VoiceBytes: 100,
			VideoSenders: 10, VideoBitrate: 500_000, Duration: scale(20 * time.Second), Warmup: 5 * time.Second}
		r, err := runLoad(ctx, d.CapacityCfg)
		if err != nil {
			return fmt.Errorf("capacity: %w", err)
		}
		d.Capacity = r
		if o.only != "" {
			printSummary(os.Stdout, d.CapacityCfg, r)
		}
		step("capacity at half the load")
		d.CapacityHalfCfg = d.CapacityCfg
		d.CapacityHalfCfg.Clients, d.CapacityHalfCfg.Rooms = d.CapacityCfg.Clients/2, d.CapacityCfg.Rooms/2
		if r, err = runLoad(ctx, d.CapacityHalfCfg); err != nil {
			return fmt.Errorf("capacity at half the load: %w", err)
		}
		d.CapacityHalf = r
		if o.only != "" {
			printSummary(os.Stdout, d.CapacityHalfCfg, r)
		}
	}
	if want("idle") {
		step("idle connections")
		n := 10000
		if o.quick {
			n = 2000
		}
		d.IdleCfg = loadConfig{Server: "parley", Clients: n, Rooms: n / 1000, Idle: true}
		r, err := runLoad(ctx, d.IdleCfg)
		if err != nil {
			return fmt.Errorf("idle: %w", err)
		}
		d.Idle = r
		if o.only != "" {
			printSummary(os.Stdout, d.IdleCfg, r)
		}
	}
	if want("voice") {
		if err := benchVoice(ctx, o, d, scale(15*time.Second)); err != nil {
			return err
		}
	}
	if want("g2g") {
		step("glass to glass")
		d.G2GFor = scale(20 * time.Second)
		h, err := glassToGlass(ctx, d.G2GFor)
		if err != nil {
			return fmt.Errorf("glass to glass: %w", err)
		}
		d.G2G50, d.G2G95, d.G2G99, d.G2GPictures = h.percentile(50), h.percentile(95), h.percentile(99), h.count()
		if o.only != "" {
			fmt.Printf("glass to glass: %d pictures, p50 %s p95 %s p99 %s\n", d.G2GPictures, fmtDur(d.G2G50), fmtDur(d.G2G95), fmtDur(d.G2G99))
		}
	}
	if want("client") {
		step("client cost")
		d.ClientFor = scale(20 * time.Second)
		cores, fps, err := clientCost(ctx, d.ClientFor)
		if err != nil {
			return fmt.Errorf("client cost: %w", err)
		}
		d.ClientCores, d.ClientFPS = cores, fps
		if o.only != "" {
			fmt.Printf("client cost: %.1f%% of a core, %.0f pictures decoded per second\n", cores*100, fps)
		}
	}
	if o.only != "" {
		return nil
	}
	if b, err := os.ReadFile(filepath.Join(o.include, "vp8-vs-jpeg.md")); err == nil {
		d.VP8JPEG = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile(filepath.Join(o.include, "go.txt")); err == nil {
		d.GoBench = goBenchLines(string(b))
	}
	var out bytes.Buffer
	if err := docTemplate.Execute(&out, d); err != nil {
		return err
	}
	return os.WriteFile(o.out, out.Bytes(), 0o644)
}

// benchVoice runs the voice-under-video comparison and draws its plot.
func benchVoice(ctx context.Context, o benchOptions, d *benchData, dur time.Duration) error {
	trace, err := relaybench.LoadTrace(o.trace)
	if err != nil {
		return err
	}
	d.VoiceFor = dur
	cfg := relaybench.Config{Trace: trace, Duration: dur}
	cases := []relaybench.Case{relaybench.Idle, relaybench.Naive, relaybench.Unpaced, relaybench.Parley}
	p50s := make([][]time.Duration, len(cases))
	p99s := make([][]time.Duration, len(cases))
	lags := make([][]time.Duration, len(cases)) // of the last run, for the plot
	for run := range o.runs {
		for i, c := range cases {
			fmt.Fprintf(os.Stderr, "== voice under video, run %d of %d: %s\n", run+1, o.runs, c)
			s, err := relaybench.VoiceUnderVideo(ctx, c, cfg)
			if err != nil {
				return fmt.Errorf("voice under video, %s: %w", c, err)
			}
			p50, p99 := relaybench.Percentiles(s, dur/10)
			p50s[i], p99s[i] = append(p50s[i], p50), append(p99s[i], p99)
			lags[i] = relaybench.Lags(s, dur/10)
		}
	}
	naive := medianD(p99s[1])
	for i, c := range cases {
		row := voiceRow{Case: c.String(), P50: medianD(p50s[i]), P99: medianD(p99s[i]), Ratio: "—"}
		if c != relaybench.Naive {
			row.Ratio = fmt.Sprintf("%.1f", float64(naive)/float64(max(row.P99, time.Microsecond)))
		}
		d.Voice = append(d.Voice, row)
	}
	d.VoiceRatio = float64(naive) / float64(max(medianD(p99s[3]), time.Microsecond))
	if o.only != "" {
		for _, r := range d.Voice {
			fmt.Printf("%-45s p50 %-8s p99 %-8s naive/this %s\n", r.Case, fmtDur(r.P50), fmtDur(r.P99), r.Ratio)
		}
		return nil
	}
	if o.plot != "" {
		names := make([]string, len(cases))
		for i, c := range cases {
			names[i] = c.String()
		}
		if err := plotDelays(o.plot, names, lags); err != nil {
			return fmt.Errorf("plotting: %w", err)
		}
		d.VoicePlot = filepath.Base(o.plot)
	}
	return nil
}

func medianF(v []float64) float64 {
	v = slices.Clone(v)
	slices.Sort(v)
	return v[len(v)/2]
}

func medianD(v []time.Duration) time.Duration {
	v = slices.Clone(v)
	slices.Sort(v)
	return v[len(v)/2]
}

// machine describes this computer for the document.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb uint64
		fmt.Sscanf(string(b), "MemTotal: %d kB", &kb)
		mem = fmt.Sprintf(", %.0f GiB", float64(kb)/(1<<20))
	}
	return fmt.Sprintf("%d × %s%s, %s/%s", runtime.NumCPU(), model, mem, runtime.GOOS, runtime.GOARCH)
}

// goBenchLines keeps the result lines of go test -bench output.
func goBenchLines(s string) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, "Benchmark") || strings.HasPrefix(l, "pkg:") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

var docTemplate = template.Must(template.New("doc").Funcs(template.FuncMap{
	"dur":   fmtDur,
	"bytes": func(n uint64) string { return fmtBytes(n) },
	"kib":   func(f float64) string { return fmt.Sprintf("%.1f KiB", f/1024) },
	"pct":   func(f float64) string { return fmt.Sprintf("%.0f %%", f*100) },
	"f0":    func(f float64) string { return fmt.Sprintf("%.0f", f) },
	"f2":    func(f float64) string { return fmt.Sprintf("%.2f", f) },
	"join":  strings.Join,
	"secs":  func(d time.Duration) string { return fmt.Sprintf("%.0f s", d.Seconds()) },
	"div":   func(a, b int) int { return a / b },
	"sub":   func(a, b int) int { return a - b },
	"mul": func(a ...int) int {
		p := 1
		for _, v := range a {
			p *= v
		}
		return p
	},
}).Parse(docText))
