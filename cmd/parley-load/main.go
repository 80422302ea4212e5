// Command parley-load puts load on a Parley relay and measures it: N
// simulated clients in R rooms, S speakers per room sending 20 ms voice
// frames, V video senders, chat at a set rate. It reports delivered frames
// per second, the voice delay (send to receipt, on one clock) p50, p99 and
// p99.9, the relay's drops by reason, its CPU time and peak memory.
//
//	parley-load run [--server parley|nats|nats-tls|raw] [--invite LINK --server-pid PID] [flags]
//	parley-load bench [--out docs/performance.md] [--quick]
//
// By default the relay runs in a child process (so that its CPU and memory
// are measured apart from the clients'); --invite measures a running
// parleyd instead (give --server-pid for its CPU and memory). "bench" runs
// the scenarios of docs/performance.md and writes the file.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	raiseFileLimit()
	var err error
	cmd := "run"
	args := os.Args[1:]
	if len(args) > 0 && (args[0] == "run" || args[0] == "serve" || args[0] == "bench" || args[0] == "media-client") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		err = serveMain(args)
	case "bench":
		err = benchMain(ctx, args)
	case "media-client":
		err = mediaClientMain(args)
	default:
		err = runMain(ctx, args)
	}
	if errors.Is(err, flag.ErrHelp) {
		return // the flag set printed the usage
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "parley-load:", err)
		os.Exit(1)
	}
}

// raiseFileLimit lets the process (and its child server) hold as many
// connections as the system allows.
func raiseFileLimit() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil && l.Cur < l.Max {
		l.Cur = l.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}
