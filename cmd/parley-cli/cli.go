package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/parleychat/parley/protocol"
	"github.com/parleychat/parley/protocol/client"
)

const usage = `usage: parley-cli join INVITE --name NAME [--json] [--trust-on-first-use] [--password P]

Each line of standard input is sent to the room. Commands:
  /msg NAME TEXT   send TEXT privately to NAME
  /quit            leave the room (also {quit}); end of input does the same
  //TEXT           send a line that starts with "/"
The password may also come from the PARLEY_PASSWORD environment variable.`

// Exit codes.
const (
	exitOK              = 0
	exitFailure         = 1 // the connection or the server failed
	exitUsage           = 2
	exitIdentityChanged = 3 // the server's key is not the pinned one
	exitUnknownServer   = 4 // no pin and no --trust-on-first-use
	exitRefused         = 5 // the server refused the join: password, name, room
	exitInterrupted     = 130
)

type options struct {
	invite   protocol.Invite
	name     string
	password string
	json     bool
	tofu     bool
}

// parseArgs parses "join INVITE --flags..."; flags may come before or after
// the invite.
func parseArgs(args []string) (options, error) {
	var o options
	if len(args) == 0 || args[0] != "join" {
		return o, errors.New("the only command is join")
	}
	fs := flag.NewFlagSet("join", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.name, "name", "", "your name in the room")
	fs.StringVar(&o.password, "password", os.Getenv("PARLEY_PASSWORD"), "the room's password")
	fs.BoolVar(&o.json, "json", false, "print one JSON object per event")
	fs.BoolVar(&o.tofu, "trust-on-first-use", false, "accept and remember the key of a server with no pin")
	var positional []string
	rest := args[1:]
	for {
		if err := fs.Parse(rest); err != nil {
			return o, err
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if len(positional) != 1 {
		return o, errors.New("join needs exactly one invite link")
	}
	inv, err := protocol.ParseInvite(positional[0])
	if err != nil {
		return o, err
	}
	o.invite = inv
	if o.name == "" {
		return o, errors.New("--name is required")
	}
	if err := protocol.ValidName(o.name); err != nil {
		return o, err
	}
	return o, nil
}

// run joins the room and relays between the terminal and the room until
// input ends (then it waits for every message to be acknowledged), /quit,
// or a fatal error. It returns the exit code.
func run(ctx context.Context, o options, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	ksPath, err := protocol.DefaultKnownServersPath()
	if err != nil {
		return exitFailure, err
	}
	c := client.New(client.Config{
		Invite:   o.invite,
		Name:     o.name,
		Password: o.password,
		Dial: protocol.DialConfig{
			KnownServers:    &protocol.KnownServers{Path: ksPath},
			TrustOnFirstUse: o.tofu,
			Software:        "parley-cli",
			SessionCache:    tls.NewLRUClientSessionCache(4),
		},
	})
	runDone := make(chan error, 1)
	go func() { runDone <- c.Run(ctx) }()

	p := &printer{out: stdout, status: stderr, json: o.json}
	lines := readLines(stdin)
	flushed := make(chan error, 1)
	leaving := false
	startLeaving := func() {
		leaving = true
		lines = nil
		go func() {
			flushed <- c.Flush(ctx)
		}()
	}
	for {
		select {
		case ev, ok := <-c.Events():
			if !ok {
				return exitFor(<-runDone, ctx)
			}
			p.print(ev)
		case line, ok := <-lines:
			if !ok {
				startLeaving()
				continue
			}
			if quit := handleLine(c, p, line); quit && !leaving {
				startLeaving()
			}
		case err := <-flushed:
			if err == nil {
				c.Leave()
			}
		}
	}
}

// handleLine sends one input line; it reports whether the line was /quit.
func handleLine(c *client.Client, p *printer, line string) bool {
	line = strings.TrimRight(line, "\r\n")
	switch {
	case strings.TrimSpace(line) == "":
		return false
	case line == "/quit" || line == "{quit}":
		return true
	case strings.HasPrefix(line, "//"):
		c.Send(line[1:])
	case strings.HasPrefix(line, "/msg "):
		to, text, ok := strings.Cut(strings.TrimSpace(line[len("/msg "):]), " ")
		if !ok || strings.TrimSpace(text) == "" {
			p.local("usage: /msg NAME TEXT")
			return false
		}
		c.SendPrivate(to, text)
	case strings.HasPrefix(line, "/"):
		p.local("unknown command " + strings.Fields(line)[0] + " (commands: /msg NAME TEXT, /quit; //TEXT sends a line starting with /)")
	default:
		c.Send(line)
	}
	return false
}

// readLines delivers input lines until EOF, then closes the channel.
func readLines(r io.Reader) <-chan string {
	ch := make(chan string)
	go func() {
		defer close(ch)
		br := bufio.NewReader(r)
		for {
			line, err := br.ReadString('\n')
			if line != "" {
				ch <- line
			}
			if err != nil {
				return
			}
		}
	}()
	return ch
}

// exitFor maps the reason Run ended to an exit code.
func exitFor(err error, ctx context.Context) (int, error) {
	switch {
	case errors.Is(err, client.ErrLeft):
		return exitOK, nil
	case ctx.Err() != nil:
		return exitInterrupted, nil
	case errors.Is(err, protocol.ErrIdentityChanged):
		if ks, kerr := protocol.DefaultKnownServersPath(); kerr == nil {
			err = fmt.Errorf("%w (the trusted key is in %s)", err, ks)
		}
		return exitIdentityChanged, err
	case errors.Is(err, protocol.ErrUnknownServer):
		return exitUnknownServer, fmt.Errorf("%w (run with --trust-on-first-use to accept it)", err)
	}
	switch protocol.CodeOf(err) {
	case protocol.CodeBadPassword, protocol.CodeNameTaken, protocol.CodeBadName, protocol.CodeBadRoom,
		protocol.CodeRoomFull, protocol.CodeReplaced:
		return exitRefused, err
	}
	return exitFailure, err
}

// printer writes events: to out one per line, human-readable or JSON;
// connection status to status (stderr) in human mode.
type printer struct {
	out, status io.Writer
	json        bool
}

// jsonTime is RFC 3339 with milliseconds.
const jsonTime = "2006-01-02T15:04:05.000Z07:00"

// jsonEvent is the --json form of an event.
type jsonEvent struct {
	Type  string `json:"type"`
	Room  string `json:"room"`
	Seq   uint64 `json:"seq,omitempty"`
	GapTo uint64 `json:"gap_to,omitempty"`
	From  string `json:"from,omitempty"`
	To    string `json:"to,omitempty"`
	Text  string `json:"text,omitempty"`
	Time  string `json:"time"`
	Mine  bool   `json:"mine,omitempty"`
	Error string `json:"error,omitempty"`
	Code  string `json:"code,omitempty"`
}

func (p *printer) print(ev client.Event) {
	if p.json {
		je := jsonEvent{Type: string(ev.Type), Room: ev.Room, Seq: ev.Seq, GapTo: ev.GapTo, From: ev.From, To: ev.To,
			Text: ev.Text, Time: ev.Time.UTC().Format(jsonTime), Mine: ev.Mine}
		if ev.Err != nil {
			je.Error = ev.Err.Error()
			if code := protocol.CodeOf(ev.Err); code != protocol.CodeNone {
				je.Code = code.String()
			}
		}
		b, _ := json.Marshal(je)
		fmt.Fprintf(p.out, "%s\n", b)
		return
	}
	ts := ev.Time.Local().Format("15:04:05")
	switch ev.Type {
	case client.EventText:
		fmt.Fprintf(p.out, "%s <%s> %s\n", ts, ev.From, ev.Text)
	case client.EventPrivate:
		fmt.Fprintf(p.out, "%s <%s → %s> (private) %s\n", ts, ev.From, ev.To, ev.Text)
	case client.EventJoin:
		fmt.Fprintf(p.out, "%s * %s joined\n", ts, ev.From)
	case client.EventLeave:
		fmt.Fprintf(p.out, "%s * %s left (%s)\n", ts, ev.From, ev.Text)
	case client.EventGap:
		fmt.Fprintf(p.out, "%s ! messages %d to %d were removed by the server's retention before you could see them\n", ts, ev.Seq, ev.GapTo)
	case client.EventError:
		fmt.Fprintf(p.out, "%s ! %v\n", ts, ev.Err)
	case client.EventConnected:
		fmt.Fprintf(p.status, "%s connected to %s as %s in room %s\n", ts, ev.Text, ev.From, ev.Room)
	case client.EventDisconnected:
		fmt.Fprintf(p.status, "%s connection lost (%v); reconnecting\n", ts, ev.Err)
	}
}

// local reports a problem with the user's own input.
func (p *printer) local(msg string) {
	if p.json {
		b, _ := json.Marshal(jsonEvent{Type: "error", Error: msg, Time: time.Now().UTC().Format(jsonTime)})
		fmt.Fprintf(p.out, "%s\n", b)
		return
	}
	fmt.Fprintln(p.status, msg)
}
