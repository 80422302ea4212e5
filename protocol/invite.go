package protocol

import (
	"fmt"
	"net"
	"net/netip"
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
	if !validHost(u.Hostname()) {
		return Invite{}, fmt.Errorf("invite link %q: bad host %q", s, u.Hostname())
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

// validHost rejects hosts that url.Parse lets through but that String could
// not write back: "::" and "]x", or an IPv6 zone with bytes other than
// ASCII letters, digits, '.', '-' and '_'.
func validHost(h string) bool {
	if ip, err := netip.ParseAddr(h); err == nil {
		return !strings.ContainsFunc(ip.Zone(), func(c rune) bool {
			return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_')
		})
	}
	return !strings.ContainsAny(h, ":[]")
}

// String formats the invite as a link.
func (inv Invite) String() string {
	// url.URL escapes what the host needs, such as the '%' of an IPv6 zone.
	u := url.URL{Scheme: "parley", Host: inv.Addr, Path: "/" + inv.Room}
	if inv.Fingerprint != "" {
		u.RawQuery = "fp=" + inv.Fingerprint
	}
	return u.String()
}

// ValidRoom checks a room name: 1 to MaxRoomBytes of ASCII letters, digits,
// '-', '_' and '.', starting with a letter or digit, so that it fits an
// invite link unescaped and is never "." or "..".
func ValidRoom(room string) error {
	if room == "" || len(room) > MaxRoomBytes {
		return &Error{Code: CodeBadRoom, Message: fmt.Sprintf("room name must be 1 to %d characters", MaxRoomBytes)}
	}
	if c := room[0]; c == '-' || c == '_' || c == '.' {
		return &Error{Code: CodeBadRoom, Message: fmt.Sprintf("room name %q must start with a letter or digit", room)}
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
