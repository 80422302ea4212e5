package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/parleychat/parley/relay"
)

type options struct {
	listen     string
	dataDir    string
	configFile string
	logFormat  string
	publicAddr string
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("parleyd", flag.ContinueOnError)
	fs.StringVar(&o.listen, "listen", ":7700", "TCP address to listen on")
	fs.StringVar(&o.dataDir, "data", relay.DefaultDataDir(), "directory for the server key and the chat history")
	fs.StringVar(&o.configFile, "config", "", "JSON configuration file (room passwords, limits, retention)")
	fs.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&o.publicAddr, "public-addr", "", "HOST:PORT to put in invite links (default: guessed from --listen)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() != 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.logFormat != "text" && o.logFormat != "json" {
		return o, fmt.Errorf("--log-format must be text or json, not %q", o.logFormat)
	}
	return o, nil
}

func (o options) config() (relay.Config, error) {
	var h slog.Handler = slog.NewTextHandler(os.Stderr, nil)
	if o.logFormat == "json" {
		h = slog.NewJSONHandler(os.Stderr, nil)
	}
	cfg := relay.Config{DataDir: o.dataDir, Logger: slog.New(h)}
	if o.configFile != "" {
		if err := relay.LoadConfigFile(o.configFile, &cfg); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

// announce prints where the server listens, its fingerprint and an invite,
// and keeps the invite in the data directory for scripts.
func announce(w io.Writer, srv *relay.Server, addr net.Addr, o options) {
	public := o.publicAddr
	if public == "" {
		public = relay.PublicAddr(addr)
	}
	invite := srv.Invite(public, "lobby")
	fmt.Fprintf(w, "parleyd listening on %s\n", addr)
	fmt.Fprintf(w, "fingerprint: %s\n", srv.Fingerprint())
	fmt.Fprintf(w, "invite: %s\n", invite)
	os.WriteFile(filepath.Join(o.dataDir, "invite.txt"), []byte(invite+"\n"), 0o644)
}

// hashPassword reads a password from the first line of r and prints its
// argon2id hash for the "password_hash" of a room in the config file.
func hashPassword(r io.Reader, w io.Writer) int {
	line, err := bufio.NewReader(r).ReadString('\n')
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		fmt.Fprintln(os.Stderr, "parleyd hash-password: give the password on standard input:", err)
		return 2
	}
	h, err := relay.HashPassword(pw)
	if err != nil {
		fmt.Fprintln(os.Stderr, "parleyd hash-password:", err)
		return 1
	}
	fmt.Fprintln(w, h)
	return 0
}
