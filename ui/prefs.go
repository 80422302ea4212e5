package ui

import (
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// prefs is what the window remembers between runs, in Options.PrefsPath.
type prefs struct {
	Name   string   `json:"name,omitempty"`
	Room   string   `json:"room,omitempty"` // the room last hosted
	Recent []recent `json:"recent,omitempty"`
}

// recent is an invite link joined before, newest first.
type recent struct {
	Invite string    `json:"invite"`
	Room   string    `json:"room,omitempty"`
	Server string    `json:"server,omitempty"`
	Used   time.Time `json:"used"`
}

// maxRecent is how many invite links are remembered.
const maxRecent = 6

// loadPrefs reads the preferences file; a missing, unreadable or corrupt
// file gives empty preferences.
func loadPrefs(path string) prefs {
	var p prefs
	if path == "" {
		return p
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return p
	}
	if json.Unmarshal(b, &p) != nil {
		return prefs{}
	}
	// Keep only what makes sense.
	kept := p.Recent[:0]
	for _, r := range p.Recent {
		if strings.HasPrefix(r.Invite, "parley://") && len(kept) < maxRecent {
			kept = append(kept, r)
		}
	}
	p.Recent = kept
	if len(p.Name) > 64 || strings.ContainsAny(p.Name, " \t\n") {
		p.Name = ""
	}
	return p
}

// save writes the preferences atomically (a temporary file renamed over
// the old one). It is called on joining a room, not per frame.
func (p prefs) save(path string) error {
	if path == "" {
		return nil
	}
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".app-*.json")
	if err != nil {
		return err
	}
	_, werr := tmp.Write(append(b, '\n'))
	cerr := tmp.Close()
	if werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), path)
	}
	if werr != nil {
		os.Remove(tmp.Name())
	}
	return werr
}

// addRecent puts invite first in the recent list.
func (p *prefs) addRecent(invite, room, server string, now time.Time) {
	out := []recent{{Invite: invite, Room: room, Server: server, Used: now}}
	for _, r := range p.Recent {
		if r.Invite != invite && len(out) < maxRecent {
			out = append(out, r)
		}
	}
	p.Recent = out
}

// describeInvite is how a recent link is shown: "lobby on host:7700".
func describeInvite(r recent) string {
	room, server := r.Room, r.Server
	if u, err := url.Parse(r.Invite); err == nil {
		if server == "" {
			server = u.Host
		}
		if room == "" {
			room = strings.TrimPrefix(u.Path, "/")
		}
	}
	switch {
	case room != "" && server != "":
		return room + " on " + server
	case server != "":
		return server
	}
	return r.Invite
}

// rememberJoin saves the name and, for a joined link, the link.
func (a *App) rememberJoin(e Joined) {
	name := e.Name
	if name == "" {
		name = a.start.pendingName
	}
	changed := false
	if name != "" && name != a.prefs.Name {
		a.prefs.Name = name
		changed = true
	}
	if inv := a.start.pendingInvite; inv != "" {
		a.prefs.addRecent(inv, e.Room, e.Server, time.Now())
		changed = true
	} else if a.call.hosting && e.Room != a.prefs.Room {
		a.prefs.Room = e.Room
		changed = true
	}
	if changed {
		// A failure to remember is not worth a word to the user.
		_ = a.prefs.save(a.opts.PrefsPath)
		a.start.refreshRecent(a)
	}
}
