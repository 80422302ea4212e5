package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"
)

// runMain is "parley-load run".
func runMain(ctx context.Context, args []string) error {
	var cfg loadConfig
	var asJSON bool
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.StringVar(&cfg.Server, "server", "parley", "the server to load: parley (a relay in a child process), nats, nats-tls or raw (baselines)")
	fs.StringVar(&cfg.Invite, "invite", "", "load a running parleyd at this invite link instead")
	fs.IntVar(&cfg.ServerPID, "server-pid", 0, "with --invite: the parleyd's process ID, to measure its CPU and memory")
	fs.IntVar(&cfg.Clients, "clients", 100, "simulated clients")
	fs.IntVar(&cfg.Rooms, "rooms", 10, "rooms (clients are spread evenly)")
	fs.IntVar(&cfg.Speakers, "speakers", 1, "speakers per room, each a 20 ms voice frame every 20 ms")
	fs.IntVar(&cfg.VoiceBytes, "voice-bytes", 100, "voice payload per frame (bytes)")
	fs.IntVar(&cfg.VideoSenders, "video", 0, "video senders (one per room, in the first rooms)")
	fs.IntVar(&cfg.VideoBitrate, "video-bitrate", 500_000, "bits per second per video sender")
	fs.Float64Var(&cfg.TextPerSecond, "text-rate", 0, "chat messages per second in all")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "how long to measure")
	fs.DurationVar(&cfg.Warmup, "warmup", 2*time.Second, "load before measuring")
	fs.BoolVar(&cfg.Idle, "idle", false, "connect and join only, then measure the server's memory per connection")
	fs.BoolVar(&asJSON, "json", false, "print the summary as one JSON object")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if cfg.Invite != "" {
		cfg.Server = "invite"
	}
	switch {
	case cfg.Clients < 1 || cfg.Rooms < 1 || cfg.Rooms > cfg.Clients:
		return errors.New("need at least one client and one room, and no more rooms than clients")
	case cfg.Server != "invite" && cfg.Server != "parley" && cfg.Server != "nats" && cfg.Server != "nats-tls" && cfg.Server != "raw":
		return fmt.Errorf("unknown --server %q", cfg.Server)
	case (cfg.Server == "nats" || cfg.Server == "nats-tls" || cfg.Server == "raw") && (cfg.VideoSenders > 0 || cfg.TextPerSecond > 0 || cfg.Idle):
		return errors.New("the baselines carry voice-sized frames only")
	}
	cfg.Progress = os.Stderr
	res, err := runLoad(ctx, cfg)
	if err != nil {
		return err
	}
	if asJSON {
		return json.NewEncoder(os.Stdout).Encode(res)
	}
	printSummary(os.Stdout, cfg, res)
	return nil
}

// printSummary writes the result as a table.
func printSummary(w io.Writer, cfg loadConfig, r *loadResult) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	row("server", r.Server)
	row("clients / rooms", fmt.Sprintf("%d / %d (connected in %v)", r.Clients, r.Rooms, r.ConnectTime.Round(time.Millisecond)))
	if cfg.Idle {
		row("server heap per connection", fmtBytes(uint64(max(r.HeapPerConn, 0))))
		row("server goroutines per connection", fmt.Sprintf("%.2f", r.GoroutinesPer))
		row("server peak RSS", fmtBytes(r.PeakRSS))
		tw.Flush()
		return
	}
	row("measured", fmt.Sprintf("%.1f s after %v of warm-up", r.Seconds, cfg.Warmup))
	row("voice frames sent / delivered", fmt.Sprintf("%d / %d (%.0f delivered per second)", r.VoiceSent, r.VoiceGot, r.VoicePerSec))
	row("voice delay p50 / p99 / p99.9", strings.Join([]string{fmtDur(r.P50), fmtDur(r.P99), fmtDur(r.P999)}, " / "))
	if cfg.VideoSenders > 0 {
		row("video fragments delivered", fmt.Sprint(r.VideoGot))
	}
	if cfg.TextPerSecond > 0 {
		row("chat messages delivered", fmt.Sprint(r.TextGot))
	}
	if r.ServerCPU > 0 {
		row("server CPU", fmt.Sprintf("%.2f s (%.2f cores; the clients used %.2f)", r.ServerCPU.Seconds(), r.ServerCores, r.ClientCores))
		row("delivered per server CPU second", fmt.Sprintf("%.0f", r.PerCPUSecond))
	}
	if r.PeakRSS > 0 {
		row("server peak RSS", fmtBytes(r.PeakRSS))
	}
	d := r.Drops
	row("relay drops", fmt.Sprintf("voice late %d, video congested %d, video waiting for keyframe %d, over cap %d, not in room %d",
		d.VoiceLate, d.VideoCongested, d.VideoWaitKey, d.InOverCap, d.InNotInRoom))
	tw.Flush()
}

// benchMain is "parley-load bench"; see bench.go.
func benchMain(ctx context.Context, args []string) error {
	return runBench(ctx, args)
}
