package protocol

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// testFingerprint is a well-formed fingerprint.
var testFingerprint = base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb, 0xef}, 16))

func TestParseInvite(t *testing.T) {
	fp := testFingerprint
	tests := []struct {
		link string
		want Invite
	}{
		{"parley://example.com:7701/dev-team?fp=" + fp, Invite{Addr: "example.com:7701", Room: "dev-team", Fingerprint: fp}},
		{"parley://example.com/r.1_x", Invite{Addr: "example.com:7700", Room: "r.1_x"}},
		{"parley://example.com", Invite{Addr: "example.com:7700", Room: "lobby"}},
		{"parley://example.com/", Invite{Addr: "example.com:7700", Room: "lobby"}},
		{"parley://example.com:9/?fp=" + fp, Invite{Addr: "example.com:9", Room: "lobby", Fingerprint: fp}},
		{"parley://[::1]:7700/lobby", Invite{Addr: "[::1]:7700", Room: "lobby"}},
		{"parley://[::1]/x", Invite{Addr: "[::1]:7700", Room: "x"}},
		{"parley://192.0.2.1:8000/x", Invite{Addr: "192.0.2.1:8000", Room: "x"}},
		{"  parley://example.com/x\n", Invite{Addr: "example.com:7700", Room: "x"}},
		{"parley://example.com/x?fp=", Invite{Addr: "example.com:7700", Room: "x"}},
		{"parley://[fe80::1%25eth0]:7701/x", Invite{Addr: "[fe80::1%eth0]:7701", Room: "x"}},
		{"parley://h%C3%A9.example/x", Invite{Addr: "hé.example:7700", Room: "x"}},
	}
	for _, tt := range tests {
		got, err := ParseInvite(tt.link)
		if err != nil || got != tt.want {
			t.Errorf("ParseInvite(%q) = %#v, %v, want %#v", tt.link, got, err, tt.want)
			continue
		}
		again, err := ParseInvite(got.String())
		if err != nil || again != got {
			t.Errorf("ParseInvite(%q) = %#v, %v, want %#v", got.String(), again, err, got)
		}
	}
}

func TestParseInviteErrors(t *testing.T) {
	for _, link := range []string{
		"",
		"example.com/lobby",
		"http://example.com/lobby",
		"parleys://example.com/lobby",
		"parley:///lobby",
		"parley://example.com/bad room",
		"parley://example.com/a/b",
		"parley://example.com/caf%C3%A9",
		"parley://example.com/" + strings.Repeat("r", MaxRoomBytes+1),
		"parley://example.com/lobby?fp=abc",
		"parley://example.com/lobby?fp=" + testFingerprint + "A",
		"parley://example.com/lobby?fp=" + strings.ReplaceAll(testFingerprint, "_", "/"),
		"parley://example.com:port/lobby",
		"parley://[::1/lobby",
		"parley://::/lobby",
		"parley://]0/lobby",
		"parley://[fe80::1%25et%25h0]/lobby",
	} {
		if got, err := ParseInvite(link); err == nil {
			t.Errorf("ParseInvite(%q) = %#v, nil, want an error", link, got)
		}
	}
	// A bad room carries its code.
	if _, err := ParseInvite("parley://example.com/bad!room"); CodeOf(err) != CodeBadRoom {
		t.Errorf("ParseInvite(bad room) error = %v, want code %v", err, CodeBadRoom)
	}
}

func TestInviteString(t *testing.T) {
	inv := Invite{Addr: "[::1]:7700", Room: "lobby", Fingerprint: testFingerprint}
	if got, want := inv.String(), "parley://[::1]:7700/lobby?fp="+testFingerprint; got != want {
		t.Errorf("(%#v).String() = %q, want %q", inv, got, want)
	}
	inv.Fingerprint = ""
	if got, want := inv.String(), "parley://[::1]:7700/lobby"; got != want {
		t.Errorf("(%#v).String() = %q, want %q", inv, got, want)
	}
	inv.Addr = "[fe80::1%eth0]:7700"
	if got, want := inv.String(), "parley://[fe80::1%25eth0]:7700/lobby"; got != want {
		t.Errorf("(%#v).String() = %q, want %q", inv, got, want)
	}
}

func TestValidName(t *testing.T) {
	for _, name := range []string{"zoë", "bob_2", "a", "Ærøskøbing", "日本", "x-y.z", strings.Repeat("n", MaxNameBytes), "🙂"} {
		if err := ValidName(name); err != nil {
			t.Errorf("ValidName(%q) = %v, want nil", name, err)
		}
	}
	for _, name := range []string{"", " ", "bob smith", "tab\there", "new\nline", "nul\x00", "bell\a", "del\x7f",
		"nbsp\u00a0x", "\xff\xfe", "ab\xc3", strings.Repeat("n", MaxNameBytes+1), strings.Repeat("é", MaxNameBytes/2+1)} {
		if err := ValidName(name); CodeOf(err) != CodeBadName {
			t.Errorf("ValidName(%q) = %v, want code %v", name, err, CodeBadName)
		}
	}
}

func TestValidRoom(t *testing.T) {
	for _, room := range []string{"lobby", "dev-team", "r.1_x", "A", strings.Repeat("r", MaxRoomBytes)} {
		if err := ValidRoom(room); err != nil {
			t.Errorf("ValidRoom(%q) = %v, want nil", room, err)
		}
	}
	for _, room := range []string{"", "a b", "a/b", "café", "a?b", "a%20", strings.Repeat("r", MaxRoomBytes+1)} {
		if err := ValidRoom(room); CodeOf(err) != CodeBadRoom {
			t.Errorf("ValidRoom(%q) = %v, want code %v", room, err, CodeBadRoom)
		}
	}
}

func TestFingerprint(t *testing.T) {
	cert, fp := testCert(t)
	if len(fp) != 43 || !ValidFingerprint(fp) {
		t.Errorf("Fingerprint(cert) = %q, want 43 base64url characters", fp)
	}
	if again := Fingerprint(cert.Leaf); again != fp {
		t.Errorf("Fingerprint(cert) = %q, then %q, want the same", fp, again)
	}
	for _, s := range []string{"", "abc", fp + "A", fp[:42], strings.Repeat("=", 43), fp[:40] + "+/="} {
		if ValidFingerprint(s) {
			t.Errorf("ValidFingerprint(%q) = true, want false", s)
		}
	}
}

func TestKnownServers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config", "parley", "known_servers")
	k := &KnownServers{Path: path}
	const addr = "example.com:7700"
	fp1 := testFingerprint
	fp2 := base64.RawURLEncoding.EncodeToString(make([]byte, 32))

	if fp, ok, err := k.Lookup(addr); fp != "" || ok || err != nil {
		t.Errorf("Lookup(%q) on a missing file = %q, %v, %v, want \"\", false, nil", addr, fp, ok, err)
	}
	if err := k.Add(addr, fp1); err != nil {
		t.Fatalf("Add(%q, %q) = %v, want nil", addr, fp1, err)
	}
	if fp, ok, err := k.Lookup(addr); fp != fp1 || !ok || err != nil {
		t.Errorf("Lookup(%q) = %q, %v, %v, want %q, true, nil", addr, fp, ok, err, fp1)
	}
	if fp, ok, err := k.Lookup("other.example:7700"); fp != "" || ok || err != nil {
		t.Errorf("Lookup(other) = %q, %v, %v, want \"\", false, nil", fp, ok, err)
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	// The same key again changes nothing.
	if err := k.Add(addr, fp1); err != nil {
		t.Errorf("Add(%q, %q) again = %v, want nil", addr, fp1, err)
	}
	// A different key is refused.
	err = k.Add(addr, fp2)
	if !errors.Is(err, ErrIdentityChanged) {
		t.Errorf("Add(%q, %q) = %v, want %v", addr, fp2, err, ErrIdentityChanged)
	}
	var ie *IdentityError
	if !errors.As(err, &ie) || ie.Addr != addr || ie.Expected != fp1 || ie.Presented != fp2 {
		t.Errorf("Add(%q, %q) = %#v, want an *IdentityError expecting %q", addr, fp2, err, fp1)
	}
	after, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(after, before) {
		t.Errorf("file after refused Add = %q, %v, want %q", after, err, before)
	}
	if fp, _, _ := k.Lookup(addr); fp != fp1 {
		t.Errorf("Lookup(%q) after refused Add = %q, want %q", addr, fp, fp1)
	}
	if info, err := os.Stat(path); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("Stat(%q) = %v, %v, want mode 0600", path, info.Mode(), err)
	}

	// Another address is added beside the first.
	if err := k.Add("[::1]:7700", fp2); err != nil {
		t.Fatal(err)
	}
	if fp, ok, _ := k.Lookup("[::1]:7700"); fp != fp2 || !ok {
		t.Errorf("Lookup([::1]:7700) = %q, %v, want %q, true", fp, ok, fp2)
	}
	if fp, _, _ := k.Lookup(addr); fp != fp1 {
		t.Errorf("Lookup(%q) = %q, want %q", addr, fp, fp1)
	}
}

func TestKnownServersIgnoresBadLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "known_servers")
	content := "# comment\n\nexample.com:7700\nexample.com:7700 a b\nexample.com:7700 " + testFingerprint + "\n"
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	k := &KnownServers{Path: path}
	if fp, ok, err := k.Lookup("example.com:7700"); fp != testFingerprint || !ok || err != nil {
		t.Errorf("Lookup(example.com:7700) = %q, %v, %v, want %q, true, nil", fp, ok, err, testFingerprint)
	}
}

// TestKnownServersConcurrentAdd checks that two different keys added for
// one address at the same time are not both recorded.
func TestKnownServersConcurrentAdd(t *testing.T) {
	for range 20 {
		path := filepath.Join(t.TempDir(), "known_servers")
		k := &KnownServers{Path: path}
		fps := []string{testFingerprint, base64.RawURLEncoding.EncodeToString(make([]byte, 32))}
		var wg sync.WaitGroup
		errs := make([]error, len(fps))
		for i, fp := range fps {
			wg.Go(func() { errs[i] = k.Add("example.com:7700", fp) })
		}
		wg.Wait()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if lines := strings.Count(string(b), "\n"); lines != 1 {
			t.Fatalf("concurrent Add of two keys wrote %d lines (%q), errors %v, want 1", lines, b, errs)
		}
	}
}
