package ui

import (
	"testing"
	"time"
)

func TestFormatBitrate(t *testing.T) {
	for _, tc := range []struct {
		bps  int
		want string
	}{
		{0, "0 kbit/s"}, {-5, "0 kbit/s"}, {499, "0 kbit/s"}, {500, "1 kbit/s"}, {64_000, "64 kbit/s"},
		{999_499, "999 kbit/s"}, {1_000_000, "1.0 Mbit/s"}, {1_450_000, "1.5 Mbit/s"}, {9_940_000, "9.9 Mbit/s"},
		{10_000_000, "10 Mbit/s"}, {25_600_000, "26 Mbit/s"},
	} {
		if got := formatBitrate(tc.bps); got != tc.want {
			t.Errorf("formatBitrate(%d) = %q, want %q", tc.bps, got, tc.want)
		}
	}
}

func TestStatusText(t *testing.T) {
	for _, tc := range []struct {
		s              Status
		state, numbers string
	}{
		{Status{State: Connecting}, "Connecting…", ""},
		{Status{State: Connected, RTT: 23400 * time.Microsecond, SendBps: 1_450_000, RecvBps: 64_000}, "Connected", "23 ms · ↑ 1.5 Mbit/s  ↓ 64 kbit/s"},
		{Status{State: Connected, SendBps: 1000}, "Connected", "↑ 1 kbit/s  ↓ 0 kbit/s"},
		{Status{State: Reconnecting, Detail: "connection reset"}, "Reconnecting…", "connection reset"},
		{Status{State: Disconnected}, "Disconnected", ""},
	} {
		state, numbers := statusText(tc.s)
		if state != tc.state || numbers != tc.numbers {
			t.Errorf("statusText(%+v) = %q, %q; want %q, %q", tc.s, state, numbers, tc.state, tc.numbers)
		}
	}
}

func TestInitials(t *testing.T) {
	for in, want := range map[string]string{
		"ada": "A", "Ada Lovelace": "AL", "ada_lovelace": "AL", "adaLovelace": "AL", "ada-b-c": "AB",
		"": "?", "__": "?", "élodie": "É", "bob.smith": "BS", "X": "X",
	} {
		if got := initials(in); got != want {
			t.Errorf("initials(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestValidation(t *testing.T) {
	for name, bad := range map[string]bool{"ada": false, "": true, "ada lovelace": true, "ada\t": true, "a_very_long_name_of_more_than_32_chars": true, "ümlaut": false} {
		if got := validName(name) != ""; got != bad {
			t.Errorf("validName(%q) = %q, want an error: %v", name, validName(name), bad)
		}
	}
	for inv, bad := range map[string]bool{"parley://h:1/r?fp=x": false, "": true, "http://h/r": true, "parley://": true, "PARLEY://h": true} {
		if got := validInvite(inv) != ""; got != bad {
			t.Errorf("validInvite(%q) = %q, want an error: %v", inv, validInvite(inv), bad)
		}
	}
}

func TestDescribeInvite(t *testing.T) {
	for _, tc := range []struct {
		r    recent
		want string
	}{
		{recent{Invite: "parley://192.0.2.10:7700/team?fp=abc"}, "team on 192.0.2.10:7700"},
		{recent{Invite: "parley://192.0.2.10:7700/team?fp=abc", Room: "Team", Server: "example.org:7700"}, "Team on example.org:7700"},
		{recent{Invite: "parley://192.0.2.10:7700"}, "192.0.2.10:7700"},
	} {
		if got := describeInvite(tc.r); got != tc.want {
			t.Errorf("describeInvite(%+v) = %q, want %q", tc.r, got, tc.want)
		}
	}
}

func TestRecentInvites(t *testing.T) {
	var p prefs
	for i := range 10 {
		p.addRecent("parley://h:1/r"+itoa(i), "", "", t0)
	}
	p.addRecent("parley://h:1/r5", "", "", t0)
	if len(p.Recent) != maxRecent || p.Recent[0].Invite != "parley://h:1/r5" || p.Recent[1].Invite != "parley://h:1/r9" {
		t.Errorf("recent = %+v", p.Recent)
	}
}
