// Command parley is Parley's desktop client: video, voice and text in one
// window, joining a room with an invite link or hosting one.
//
//	parley                                   the start screen
//	parley --host [--room R] [--name N] [--password P] [--listen ADDR]   host a room here
//	parley --join INVITE --name N [--password P] [--trust-on-first-use]
//	       [--video camera|testpattern|none,...] [--audio mic|tone|none,...]
//
// See the README for what the window does.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"gioui.org/app"

	"github.com/parleychat/parley/ui"
	"github.com/parleychat/parley/ui/session"
)

func main() {
	opts, err := parseArgs(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		fmt.Println(usage)
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "parley:", err)
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	if err := checkDisplay(); err != nil {
		fmt.Fprintln(os.Stderr, "parley:", err)
		os.Exit(1)
	}
	s := session.New(session.Config{
		HostListen:     opts.listen,
		HostPublicAddr: opts.publicAddr,
		OnHosting:      func(invite string) { fmt.Println("invite:", invite) },
		NoEchoCancel:   opts.noEchoCancel,
	})
	go func() {
		// Ctrl-C in the terminal leaves the call as the Leave button does.
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
		s.Close()
		os.Exit(0)
	}()
	opts.ui.BindInvalidate = s.SetInvalidate
	a := ui.NewApp(s, opts.ui)
	go func() {
		err := a.Run(new(app.Window))
		s.Close()
		if err != nil {
			fmt.Fprintln(os.Stderr, "parley:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}()
	app.Main()
}
