package e2etest

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/parleychat/parley/relay"
)

// knownServers returns the known_servers file of a client configuration
// directory, or "" if there is none.
func knownServers(t testing.TB, home string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(home, "parley", "known_servers"))
	if errors.Is(err, fs.ErrNotExist) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestFingerprintPinning(t *testing.T) {
	t.Parallel()
	srv := startServer(t, serverOpts{listen: freePort(t)})
	noFP := srv.roomInvite(t, "lobby", false)

	// (a) The invite's fingerprint is the pin.
	pinnedHome := t.TempDir()
	a := startClient(t, srv.invite, "alice", pinnedHome)
	a.send(t, "pinned-hello")
	a.waitText(t, "pinned-hello")
	a.closeInput(t)
	a.exitWith(t, 0)

	// (b) No pin and no trust on first use: refused, with the fingerprint
	// to check out of band.
	b := startClient(t, noFP, "bob", "")
	b.exitWith(t, 4)
	if msg := b.errs.text(); !strings.Contains(msg, srv.fp) {
		t.Errorf("stderr of a client with no pin = %q, want it to name the fingerprint %s", msg, srv.fp)
	}
	if ks := knownServers(t, b.home); ks != "" {
		t.Errorf("a refused server was recorded in known_servers: %q", ks)
	}

	// (c) Trust on first use records the key.
	tofuHome := t.TempDir()
	c := startClient(t, noFP, "carol", tofuHome, "--trust-on-first-use")
	c.send(t, "tofu-hello")
	c.closeInput(t)
	c.exitWith(t, 0)
	ks := knownServers(t, tofuHome)
	if !hasKnownServer(ks, srv.addr, srv.fp) {
		t.Fatalf("known_servers after trust on first use = %q, want a line %q", ks, srv.addr+" "+srv.fp)
	}

	// (d) The server gets a new key on the same address.
	srv.signal(t, syscall.SIGTERM)
	if code := srv.waitExit(t); code != 0 {
		t.Fatalf("parleyd exit code after SIGTERM = %d, want 0", code)
	}
	for _, f := range []string{"identity.key", "identity.crt"} {
		if err := os.Remove(filepath.Join(srv.opts.dataDir, f)); err != nil {
			t.Fatal(err)
		}
	}
	srv2 := srv.restart(t)
	if srv2.fp == srv.fp {
		t.Fatalf("parleyd kept fingerprint %s after its key was deleted", srv.fp)
	}
	if srv2.addr != srv.addr {
		t.Fatalf("restarted parleyd listens on %s, want %s", srv2.addr, srv.addr)
	}

	old := startClient(t, srv.invite, "alice", pinnedHome)
	old.exitWith(t, 3)
	if msg := old.errs.text(); !strings.Contains(msg, "identity") || !strings.Contains(msg, "changed") ||
		!strings.Contains(msg, srv.fp) || !strings.Contains(msg, srv2.fp) {
		t.Errorf("stderr with the old invite = %q, want it to say the server identity changed from %s to %s", msg, srv.fp, srv2.fp)
	}

	c2 := startClient(t, noFP, "carol", tofuHome, "--trust-on-first-use")
	c2.exitWith(t, 3)
	if msg := c2.errs.text(); !strings.Contains(msg, "identity") || !strings.Contains(msg, "changed") {
		t.Errorf("stderr of the trust-on-first-use client = %q, want it to say the server identity changed", msg)
	}
	if ks2 := knownServers(t, tofuHome); ks2 != ks {
		t.Errorf("known_servers changed after a refused key:\n%s\nwant\n%s", ks2, ks)
	}

	// The new invite works, also where known_servers pins the old key:
	// the invite's fingerprint comes first.
	d := startClient(t, srv2.invite, "alice", pinnedHome)
	d.send(t, "new-key-hello")
	d.waitText(t, "new-key-hello")
	d.closeInput(t)
	d.exitWith(t, 0)
}

// hasKnownServer reports whether a known_servers file pins addr to fp.
func hasKnownServer(file, addr, fp string) bool {
	for _, line := range strings.Split(file, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == addr && f[1] == fp {
			return true
		}
	}
	return false
}

func TestRoomPassword(t *testing.T) {
	t.Parallel()
	hash := hashPassword(t, "s3cret")
	if !strings.HasPrefix(hash, "$argon2id$") {
		t.Fatalf("parleyd hash-password = %q, want an argon2id hash", hash)
	}
	srv := startServer(t, serverOpts{config: &relay.FileConfig{
		Rooms: map[string]relay.RoomConfig{"team": {PasswordHash: hash}},
	}})
	team := srv.roomInvite(t, "team", true)

	alice := startClient(t, team, "alice", "", "--password", "s3cret")
	alice.send(t, "team-hello")
	alice.waitText(t, "team-hello")

	wrong := startClient(t, team, "mallory", "", "--password", "s3cret!")
	wrong.exitWith(t, 5)
	if msg := wrong.errs.text(); !strings.Contains(msg, "wrong password") {
		t.Errorf("stderr with a wrong password = %q, want it to say the password is wrong", msg)
	}
	none := startClient(t, team, "nobody", "")
	none.exitWith(t, 5)
	if msg := none.errs.text(); !strings.Contains(msg, "password") {
		t.Errorf("stderr with no password = %q, want it to say the room needs one", msg)
	}

	// The password may come from the environment.
	env := startClientEnv(t, team, "erin", "", []string{"PARLEY_PASSWORD=s3cret"})
	env.send(t, "env-hello")
	env.waitText(t, "env-hello")
	env.closeInput(t)
	env.exitWith(t, 0)

	// The lobby has no password.
	bob := startClient(t, srv.invite, "bob", "")
	bob.send(t, "lobby-hello")
	bob.waitText(t, "lobby-hello")
	bob.closeInput(t)
	bob.exitWith(t, 0)

	// Nobody refused ever showed up in the room.
	alice.send(t, "team-marker")
	evs := alice.waitText(t, "team-marker")
	for _, ev := range ofType(evs, "join") {
		if ev.From != "alice" && ev.From != "erin" {
			t.Errorf("alice saw %s join the room with a wrong or no password", ev.From)
		}
	}
	alice.closeInput(t)
	alice.exitWith(t, 0)
}

func TestUsage(t *testing.T) {
	t.Parallel()
	// Nothing listens there: usage errors come before any connection.
	invite := "parley://127.0.0.1:1/lobby?fp=" + strings.Repeat("A", 43)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"no name", []string{"join", invite}},
		{"bad name", []string{"join", invite, "--name", "two words"}},
		{"no invite", []string{"join", "--name", "alice"}},
		{"two invites", []string{"join", invite, invite, "--name", "alice"}},
		{"bad invite", []string{"join", "http://example.com/lobby", "--name", "alice"}},
		{"bad room", []string{"join", "parley://127.0.0.1:1/no%20spaces", "--name", "alice"}},
		{"bad fingerprint", []string{"join", "parley://127.0.0.1:1/lobby?fp=xyz", "--name", "alice"}},
		{"unknown flag", []string{"join", invite, "--name", "alice", "--nope"}},
		{"no command", []string{"--name", "alice"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := newFeed("parley-cli stderr", parseLine)
			p := startProc(t, "parley-cli", cliBin, tc.args, environ("XDG_CONFIG_HOME="+t.TempDir()), newFeed("parley-cli stdout", parseLine), errs)
			if code := p.waitExit(t); code != 2 {
				t.Errorf("parley-cli %q exit code = %d, want 2; stderr: %s", tc.args, code, errs.text())
			}
			if first, _, _ := strings.Cut(errs.text(), "\n"); !strings.HasPrefix(first, "parley-cli: ") {
				t.Errorf("parley-cli %q first stderr line = %q, want the reason", tc.args, first)
			}
		})
	}
}
