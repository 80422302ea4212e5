package main

import (
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/parleychat/parley/ui"
)

const usage = `usage: parley                          (the start screen)
       parley --host [--room ROOM] [--name NAME] [--password P] [--listen ADDR] [--public-addr HOST:PORT] [--video V] [--audio A]
       parley --join INVITE --name NAME [--password P] [--trust-on-first-use] [--video V] [--audio A]

--video and --audio list what to send, tried in order: camera (or
camera:/dev/videoN), testpattern or none; mic (or mic:DEVICE), tone or
none (e.g. --video camera,testpattern). The default is the camera and the
microphone; without them the call goes on without video or voice, and the
window says so. The microphone is cleaned of the speaker's echo and of
steady noise; --echo-cancel=false sends it as it is.`

type options struct {
	ui           ui.Options
	listen       string // where a hosted room listens
	publicAddr   string // HOST:PORT in a hosted room's links ("" guess)
	noEchoCancel bool   // send the microphone as it is
}

func parseArgs(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("parley", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	host := fs.Bool("host", false, "host a room on this computer")
	room := fs.String("room", "", "the room to host (default lobby)")
	fs.StringVar(&o.listen, "listen", ":7700", "where a hosted room listens (another free port if this one is taken)")
	fs.StringVar(&o.publicAddr, "public-addr", "", "HOST:PORT others reach a hosted room at, put in its invite link")
	join := fs.String("join", "", "join the room of this invite link")
	name := fs.String("name", "", "your name")
	password := fs.String("password", os.Getenv("PARLEY_PASSWORD"), "the room's password")
	tofu := fs.Bool("trust-on-first-use", false, "accept and remember the key of a server whose link has none")
	videoList := fs.String("video", "", "video to send: camera, testpattern, none (a list, tried in order)")
	audioList := fs.String("audio", "", "audio to send: mic, tone, none (a list, tried in order)")
	echoCancel := fs.Bool("echo-cancel", true, "cancel the speaker's echo in the microphone")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() != 0 {
		return o, errors.New("unexpected argument " + fs.Arg(0))
	}
	o.noEchoCancel = !*echoCancel
	media, err := mediaChoice(*videoList, *audioList)
	if err != nil {
		return o, err
	}
	o.ui.Media = media
	if dir, err := os.UserConfigDir(); err == nil {
		o.ui.PrefsPath = filepath.Join(dir, "parley", "app.json")
	}
	if trace := os.Getenv("PARLEY_UI_TRACE"); trace != "" {
		// For end-to-end tests: what the window shows, as JSON lines.
		f, err := os.Create(trace)
		if err != nil {
			return o, err
		}
		o.ui.Trace = f
	}
	switch {
	case *host && *join != "":
		return o, errors.New("--host and --join exclude each other")
	case *host:
		if *name == "" {
			*name = defaultName()
		}
		o.ui.Start = ui.StartHost
		o.ui.Host = ui.HostRequest{Room: *room, Name: *name, Password: *password, Media: media}
	case *join != "":
		if *name == "" {
			return o, errors.New("--join needs --name")
		}
		o.ui.Start = ui.StartJoin
		o.ui.Join = ui.JoinRequest{Invite: *join, Name: *name, Password: *password, TrustOnFirstUse: *tofu, Media: media}
	default:
		o.ui.Join = ui.JoinRequest{Name: *name}
	}
	return o, nil
}

// mediaChoice parses --video and --audio.
func mediaChoice(videoList, audioList string) (ui.MediaChoice, error) {
	var m ui.MediaChoice
	for _, v := range splitList(videoList) {
		if v != "camera" && !strings.HasPrefix(v, "camera:") && v != "testpattern" && v != "none" {
			return m, errors.New("--video takes camera, camera:/dev/videoN, testpattern or none, not " + v)
		}
		m.Video = append(m.Video, v)
	}
	for _, a := range splitList(audioList) {
		if a != "mic" && !strings.HasPrefix(a, "mic:") && a != "tone" && a != "none" {
			return m, errors.New("--audio takes mic, mic:DEVICE, tone or none, not " + a)
		}
		m.Audio = append(m.Audio, a)
	}
	return m, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// defaultName is the user's login name, if it is a valid member name.
func defaultName() string {
	for _, v := range []string{os.Getenv("USER"), os.Getenv("LOGNAME")} {
		if v != "" && !strings.ContainsAny(v, " \t") {
			return v
		}
	}
	return "host"
}

// checkDisplay says plainly when there is no desktop to open a window on
// (Gio's own error names the Wayland call that failed).
func checkDisplay() error {
	if runtime.GOOS != "linux" && runtime.GOOS != "freebsd" && runtime.GOOS != "openbsd" {
		return nil
	}
	if os.Getenv("DISPLAY") == "" && os.Getenv("WAYLAND_DISPLAY") == "" {
		return errors.New("no display to open a window on (DISPLAY and WAYLAND_DISPLAY are unset); " +
			"in a terminal, use parley-cli (make run-terminal starts a server and joins it)")
	}
	return nil
}
