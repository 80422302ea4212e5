// Command parleyd is the Parley relay server.
//
//	parleyd [--listen ADDR] [--data DIR] [--config FILE] [--log-format text|json] [--public-addr HOST:PORT]
//	parleyd hash-password < password.txt
//
// On start it prints the listen address, the server's key fingerprint and an
// invite link for the room "lobby". SIGINT or SIGTERM shut it down.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/parleychat/parley/relay"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "hash-password" {
		os.Exit(hashPassword(os.Stdin, os.Stdout))
	}
	opts, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "parleyd:", err)
		os.Exit(2)
	}
	if err := run(opts); err != nil {
		fmt.Fprintln(os.Stderr, "parleyd:", err)
		os.Exit(1)
	}
}

func run(opts options) error {
	cfg, err := opts.config()
	if err != nil {
		return err
	}
	srv, err := relay.New(cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", opts.listen)
	if err != nil {
		srv.Close()
		return err
	}
	announce(os.Stdout, srv, ln.Addr(), opts)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		srv.Close()
		return err
	case <-ctx.Done():
	}
	cfg.Logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = srv.Shutdown(sctx)
	if serr := <-served; !errors.Is(serr, relay.ErrServerClosed) {
		return serr
	}
	st := srv.Stats()
	cfg.Logger.Info("stopped", "closes", st.CloseReasons, "handshake_failures", st.HandshakeFailures)
	return err
}
