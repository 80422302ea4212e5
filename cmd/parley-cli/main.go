// Command parley-cli is Parley's terminal client: it joins a room, sends each
// line of standard input as a message and prints what happens in the room.
//
//	parley-cli join INVITE --name NAME [--json] [--trust-on-first-use] [--password P]
//
// See the README for the commands it understands and its exit codes.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts, err := parseArgs(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "parley-cli:", err)
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(exitUsage)
	}
	code, err := run(ctx, opts, os.Stdin, os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "parley-cli:", err)
	}
	os.Exit(code)
}
