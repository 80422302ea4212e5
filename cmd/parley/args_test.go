package main

import (
	"errors"
	"flag"
	"strings"
	"testing"

	"github.com/parleychat/parley/ui"
)

func TestParseArgs(t *testing.T) {
	t.Setenv("PARLEY_PASSWORD", "")
	t.Setenv("PARLEY_UI_TRACE", "")
	o, err := parseArgs([]string{"--join", "parley://h:1/r?fp=x", "--name", "bob", "--video", "camera:/dev/video2,testpattern", "--audio", "tone"})
	if err != nil {
		t.Fatal(err)
	}
	if o.ui.Start != ui.StartJoin || o.ui.Join.Name != "bob" || o.ui.Join.Invite != "parley://h:1/r?fp=x" {
		t.Errorf("--join: %+v", o.ui.Join)
	}
	if got := strings.Join(o.ui.Join.Media.Video, ","); got != "camera:/dev/video2,testpattern" {
		t.Errorf("video choice = %q", got)
	}
	if o.noEchoCancel {
		t.Error("echo cancellation is off by default")
	}
	if o, err := parseArgs([]string{"--echo-cancel=false"}); err != nil || !o.noEchoCancel {
		t.Errorf("--echo-cancel=false: noEchoCancel %v, err %v", o.noEchoCancel, err)
	}
	o, err = parseArgs([]string{"--host", "--room", "team", "--name", "alice", "--listen", "127.0.0.1:7800", "--public-addr", "chat.example.org:443"})
	if err != nil {
		t.Fatal(err)
	}
	if o.ui.Start != ui.StartHost || o.ui.Host.Room != "team" || o.ui.Host.Name != "alice" || o.listen != "127.0.0.1:7800" || o.publicAddr != "chat.example.org:443" {
		t.Errorf("--host: %+v, listen %q", o.ui.Host, o.listen)
	}
	o, err = parseArgs(nil)
	if err != nil || o.ui.Start != ui.StartScreen || o.listen != ":7700" {
		t.Errorf("no arguments: start %v, listen %q, err %v", o.ui.Start, o.listen, err)
	}

	for _, bad := range [][]string{
		{"--host", "--join", "parley://h:1/r"},
		{"--join", "parley://h:1/r"},
		{"--video", "webcam"},
		{"--audio", "speaker"},
		{"extra"},
	} {
		if _, err := parseArgs(bad); err == nil {
			t.Errorf("parseArgs(%q) accepted it", bad)
		}
	}
}

func TestHelpAndNoDisplay(t *testing.T) {
	if _, err := parseArgs([]string{"--help"}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("parseArgs(--help) = %v, want flag.ErrHelp (usage on stdout, exit 0)", err)
	}
	t.Setenv("DISPLAY", "")
	t.Setenv("WAYLAND_DISPLAY", "")
	if err := checkDisplay(); err == nil || !strings.Contains(err.Error(), "parley-cli") {
		t.Errorf("checkDisplay() without a display = %v, want an error that points to parley-cli", err)
	}
	t.Setenv("DISPLAY", ":99")
	if err := checkDisplay(); err != nil {
		t.Errorf("checkDisplay() with DISPLAY set = %v", err)
	}
}
