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
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/parleychat/parley/media/pipeline"
	"github.com/parleychat/parley/protocol"
	"github.com/parleychat/parley/protocol/client"
)

const usage = `usage: parley-cli join INVITE --name NAME [--json] [--trust-on-first-use] [--password P]
         [--send-video SOURCE] [--send-audio SOURCE] [--record DIR] [--play] [--echo-cancel=false]
         [--duration D]

Each line of standard input is sent to the room. Commands:
  /msg NAME TEXT   send TEXT privately to NAME
  /quit            leave the room (also {quit}); end of input does the same
  //TEXT           send a line that starts with "/"
The password may also come from the PARLEY_PASSWORD environment variable.

Voice and video:
  --send-video SOURCE  testpattern, camera, camera:/dev/videoN, screen, or a .y4m file
  --send-audio SOURCE  tone, tone:HZ (default 440), mic, mic:DEVICE, or a .wav file
  --record DIR         write what each member sends to DIR/NAME.ivf (VP8) and DIR/NAME.ogg (Opus)
  --play               play the others' voice on the default speaker
  --speaker DEVICE     play it on this device instead (a PortAudio name or part of one)
  --echo-cancel=false  send the microphone as it is: by default, with a microphone and a
                       speaker, the speaker's echo and steady noise are taken out of it
  --video-bitrate BPS  the most the video uses, in bits per second (default 1000000)
  --duration D         leave after D (e.g. 30s, 5m) and exit 0
With any of these, the end of standard input does not end the call: it
lasts until --duration, /quit, or Ctrl-C.`

// Exit codes.
const (
	exitOK              = 0
	exitFailure         = 1 // the connection or the server failed
	exitUsage           = 2
	exitIdentityChanged = 3 // the server's key is not the pinned one
	exitUnknownServer   = 4 // no pin and no --trust-on-first-use
	exitRefused         = 5 // the server refused the join: password, name, room
	exitEnded           = 6 // the host ended the call (the server will not come back)
	exitInterrupted     = 130
)

type options struct {
	invite   protocol.Invite
	name     string
	password string
	json     bool
	tofu     bool
	media    mediaOptions
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
	fs.StringVar(&o.media.sendVideo, "send-video", "", "video source")
	fs.StringVar(&o.media.sendAudio, "send-audio", "", "audio source")
	fs.StringVar(&o.media.record, "record", "", "directory for recordings")
	fs.BoolVar(&o.media.play, "play", false, "play received voice")
	fs.StringVar(&o.media.speaker, "speaker", "", "the audio device to play on")
	fs.BoolVar(&o.media.echoCancel, "echo-cancel", true, "cancel the speaker's echo in the microphone")
	fs.IntVar(&o.media.videoBitrate, "video-bitrate", 0, "video bitrate in bits per second")
	fs.DurationVar(&o.media.duration, "duration", 0, "leave after this long")
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
	if o.media.duration < 0 {
		return o, errors.New("--duration must not be negative")
	}
	if o.media.videoBitrate < 0 {
		return o, errors.New("--video-bitrate must not be negative")
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
	var call *pipeline.Call
	var parts callParts
	if o.media.active() {
		if call, parts, err = newCall(o.media, slog.New(slog.DiscardHandler)); err != nil {
			return exitFailure, err
		}
	}
	cfg := client.Config{
		Invite:   o.invite,
		Name:     o.name,
		Password: o.password,
		Dial: protocol.DialConfig{
			KnownServers:    &protocol.KnownServers{Path: ksPath},
			TrustOnFirstUse: o.tofu,
			Software:        "parley-cli",
			SessionCache:    tls.NewLRUClientSessionCache(4),
		},
	}
	if call != nil {
		cfg.Media = call
	}
	c := client.New(cfg)
	runDone := make(chan error, 1)
	go func() { runDone <- c.Run(ctx) }()
	p := &printer{out: stdout, status: stderr, json: o.json}

	var callDone chan error
	stopCall := func() {}
	if call != nil {
		cctx, cancel := context.WithCancel(ctx)
		callDone = make(chan error, 1)
		go func() { callDone <- call.Run(cctx, c) }()
		stopped := false
		stopCall = func() {
			if stopped {
				return
			}
			stopped = true
			cancel()
			if callDone != nil {
				if err := <-callDone; err != nil {
					p.local("media: " + err.Error())
				}
			}
			p.mediaStats(call.Stats(), parts)
			if parts.echo != nil {
				parts.echo.Close()
			}
		}
	}
	defer stopCall()
	var timeUp <-chan time.Time
	if o.media.duration > 0 {
		t := time.NewTimer(o.media.duration)
		defer t.Stop()
		timeUp = t.C
	}

	lines := readLines(stdin)
	flushed := make(chan error, 1)
	leaving := false
	startLeaving := func() {
		if leaving {
			return
		}
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
				stopCall()
				return exitFor(<-runDone, ctx)
			}
			p.print(ev)
		case line, ok := <-lines:
			if !ok {
				if call == nil {
					startLeaving() // a media call lasts beyond its input
				}
				lines = nil
				continue
			}
			if quit := handleLine(c, p, line); quit {
				startLeaving()
			}
		case <-timeUp:
			startLeaving()
		case err := <-callDone:
			// A source failed (a device went away): say so, and leave.
			callDone = nil
			if err != nil {
				p.local("media: " + err.Error())
			}
			startLeaving()
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
	case protocol.CodeEnded:
		return exitEnded, errors.New("the host ended the call")
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
	// Reason, for "disconnected": why, in a few words (client.Reason):
	// the server's Goodbye code, "keepalive timeout" or "connection lost".
	Reason string `json:"reason,omitempty"`
	State  string `json:"state,omitempty"` // for "state", "join": media the member sends, e.g. "audio,video"
}

// stateNames lists the media of a member state, e.g. "audio,video".
func stateNames(st uint8) string {
	var names []string
	for _, b := range []struct {
		bit  uint8
		name string
	}{{protocol.StateAudio, "audio"}, {protocol.StateVideo, "video"}, {protocol.StateScreen, "screen"}} {
		if st&b.bit != 0 {
			names = append(names, b.name)
		}
	}
	return strings.Join(names, ",")
}

// jsonMedia is the --json summary of a media call, printed when it ends.
type jsonMedia struct {
	Type           string   `json:"type"` // "media"
	Time           string   `json:"time"`
	VoiceSent      uint64   `json:"voice_sent"`
	VideoSent      uint64   `json:"video_sent"`
	KeyframesSent  uint64   `json:"keyframes_sent"`
	ScreenSent     uint64   `json:"screen_sent,omitempty"`
	VoiceReceived  uint64   `json:"voice_received"`
	VideoReceived  uint64   `json:"video_received"`
	VideoBroken    uint64   `json:"video_broken"`
	KeyframesAsked uint64   `json:"keyframes_asked"`
	Files          []string `json:"files,omitempty"`
	// EchoCancelled is how many microphone frames the echo canceller
	// cleaned.
	EchoCancelled uint64 `json:"echo_cancelled,omitempty"`
}

// mediaStats reports what a media call sent and received.
func (p *printer) mediaStats(st pipeline.Stats, parts callParts) {
	m := jsonMedia{Type: "media", Time: time.Now().UTC().Format(jsonTime), VoiceSent: st.VoiceSent,
		VideoSent: st.VideoSent[protocol.TrackCamera], KeyframesSent: st.KeyframesSent[protocol.TrackCamera] + st.KeyframesSent[protocol.TrackScreen],
		ScreenSent: st.VideoSent[protocol.TrackScreen], VoiceReceived: st.VoiceReceived, VideoReceived: st.VideoFramesReceived,
		VideoBroken: st.VideoBroken, KeyframesAsked: st.KeyframesAsked}
	if parts.rec != nil {
		m.Files = parts.rec.Files()
		slices.Sort(m.Files)
	}
	if parts.echo != nil {
		m.EchoCancelled = parts.echo.Stats().Frames
	}
	if p.json {
		b, _ := json.Marshal(m)
		fmt.Fprintf(p.out, "%s\n", b)
		return
	}
	fmt.Fprintf(p.status, "media: sent %d voice frames and %d video frames (%d keyframes); received %d voice frames and %d video frames\n",
		m.VoiceSent, m.VideoSent+m.ScreenSent, m.KeyframesSent, m.VoiceReceived, m.VideoReceived)
	if parts.echo != nil {
		fmt.Fprintf(p.status, "media: the speaker's echo was cancelled in %d microphone frames\n", m.EchoCancelled)
	}
	for _, f := range m.Files {
		fmt.Fprintf(p.status, "media: recorded %s\n", f)
	}
}

func (p *printer) print(ev client.Event) {
	if p.json {
		je := jsonEvent{Type: string(ev.Type), Room: ev.Room, Seq: ev.Seq, GapTo: ev.GapTo, From: ev.From, To: ev.To,
			Text: ev.Text, Time: ev.Time.UTC().Format(jsonTime), Mine: ev.Mine, State: stateNames(ev.State)}
		if ev.Err != nil {
			je.Error = ev.Err.Error()
			if code := protocol.CodeOf(ev.Err); code != protocol.CodeNone {
				je.Code = code.String()
			}
			if ev.Type == client.EventDisconnected {
				je.Reason = client.Reason(ev.Err)
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
		if ev.State != 0 {
			fmt.Fprintf(p.out, "%s * %s joined (sending %s)\n", ts, ev.From, stateNames(ev.State))
		} else {
			fmt.Fprintf(p.out, "%s * %s joined\n", ts, ev.From)
		}
	case client.EventState:
		if ev.State != 0 {
			fmt.Fprintf(p.out, "%s * %s now sends %s\n", ts, ev.From, stateNames(ev.State))
		} else {
			fmt.Fprintf(p.out, "%s * %s sends no media now\n", ts, ev.From)
		}
	case client.EventLeave:
		fmt.Fprintf(p.out, "%s * %s left (%s)\n", ts, ev.From, ev.Text)
	case client.EventGap:
		fmt.Fprintf(p.out, "%s ! messages %d to %d were removed by the server's retention before you could see them\n", ts, ev.Seq, ev.GapTo)
	case client.EventError:
		fmt.Fprintf(p.out, "%s ! %v\n", ts, ev.Err)
	case client.EventConnected:
		fmt.Fprintf(p.status, "%s connected to %s as %s in room %s\n", ts, ev.Text, ev.From, ev.Room)
	case client.EventDisconnected:
		if protocol.CodeOf(ev.Err) != protocol.CodeNone {
			fmt.Fprintf(p.status, "%s disconnected by the server, %s (%v); reconnecting\n", ts, client.Reason(ev.Err), ev.Err)
		} else {
			fmt.Fprintf(p.status, "%s disconnected, %s (%v); reconnecting\n", ts, client.Reason(ev.Err), ev.Err)
		}
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
