package protocol

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// DefaultPort is the TCP port used when an invite link names none.
const DefaultPort = "7700"

// Invite is a parsed invite link: parley://HOST:PORT/ROOM?fp=FINGERPRINT.
type Invite struct {
	Addr        string // host:port
	Room        string
	Fingerprint string // empty when the link carries none
}

// ParseInvite parses an invite link. The port defaults to DefaultPort and
// the room to "lobby".
func ParseInvite(s string) (Invite, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil {
		return Invite{}, fmt.Errorf("invite link %q: %w", s, err)
	}
	if u.Scheme != "parley" {
		return Invite{}, fmt.Errorf("invite link %q: want a parley://HOST:PORT/ROOM link", s)
	}
	if u.Hostname() == "" {
		return Invite{}, fmt.Errorf("invite link %q: no host", s)
	}
	port := u.Port()
	if port == "" {
		port = DefaultPort
	}
	inv := Invite{Addr: net.JoinHostPort(u.Hostname(), port), Room: strings.Trim(u.Path, "/")}
	if inv.Room == "" {
		inv.Room = "lobby"
	}
	if err := ValidRoom(inv.Room); err != nil {
		return Invite{}, fmt.Errorf("invite link %q: %w", s, err)
	}
	q := u.Query()
	if fp := q.Get("fp"); fp != "" {
		if !ValidFingerprint(fp) {
			return Invite{}, fmt.Errorf("invite link %q: fingerprint %q is not a base64url SHA-256", s, fp)
		}
		inv.Fingerprint = fp
	}
	return inv, nil
}

// String formats the invite as a link.
func (inv Invite) String() string {
	s := "parley://" + inv.Addr + "/" + inv.Room
	if inv.Fingerprint != "" {
		s += "?fp=" + inv.Fingerprint
	}
	return s
}

// ValidRoom checks a room name: 1 to MaxRoomBytes of ASCII letters, digits,
// '-', '_' and '.', so that it fits an invite link unescaped.
func ValidRoom(room string) error {
	if room == "" || len(room) > MaxRoomBytes {
		return &Error{Code: CodeBadRoom, Message: fmt.Sprintf("room name must be 1 to %d characters", MaxRoomBytes)}
	}
	for _, c := range []byte(room) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return &Error{Code: CodeBadRoom, Message: fmt.Sprintf("room name %q may hold only letters, digits, '-', '_' and '.'", room)}
		}
	}
	return nil
}

// ValidName checks a member name: 1 to MaxNameBytes bytes of UTF-8 with
// only graphic characters and no white space (so "/msg NAME text" works).
func ValidName(name string) error {
	if name == "" || len(name) > MaxNameBytes {
		return &Error{Code: CodeBadName, Message: fmt.Sprintf("name must be 1 to %d bytes", MaxNameBytes)}
	}
	if !utf8.ValidString(name) {
		return &Error{Code: CodeBadName, Message: "name is not valid UTF-8"}
	}
	for _, r := range name {
		if !unicode.IsGraphic(r) || unicode.IsSpace(r) {
			return &Error{Code: CodeBadName, Message: fmt.Sprintf("name %q may not contain spaces or control characters", name)}
		}
	}
	return nil
}
