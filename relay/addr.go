package relay

import (
	"net"
	"os"
	"path/filepath"
	"runtime"
)

// DefaultDataDir is where a server keeps its key and history unless told
// otherwise: $XDG_DATA_HOME/parley, else ~/.local/share/parley on Unix (the
// platform's equivalent elsewhere).
func DefaultDataDir() string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "parley")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "parley-data"
	}
	switch runtime.GOOS {
	case "darwin":
		return filepath.Join(home, "Library", "Application Support", "parley")
	case "windows":
		if d, err := os.UserConfigDir(); err == nil {
			return filepath.Join(d, "parley")
		}
	}
	return filepath.Join(home, ".local", "share", "parley")
}

// PublicAddr turns a listener's address into one that others can dial, for
// invite links: a wildcard address becomes this machine's first global
// IPv4 address (loopback if it has none); other addresses stay as they are.
func PublicAddr(addr net.Addr) string {
	host, port, _ := net.SplitHostPort(addr.String())
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsUnspecified() {
		return addr.String()
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil && n.IP.IsGlobalUnicast() {
				return net.JoinHostPort(n.IP.String(), port)
			}
		}
	}
	return net.JoinHostPort("127.0.0.1", port)
}
