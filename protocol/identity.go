package protocol

import (
	"bufio"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// ALPN is the TLS application protocol name of this protocol version.
const ALPN = "parley/1"

// Fingerprint returns a server's identity: the SHA-256 of the certificate's
// public key (SubjectPublicKeyInfo), base64url without padding (43 chars).
// It stays the same when the certificate is renewed with the same key.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// ValidFingerprint reports whether s has the form Fingerprint returns.
func ValidFingerprint(s string) bool {
	b, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil && len(b) == sha256.Size
}

var (
	// ErrIdentityChanged means the server presented a different key than
	// the one pinned for its address. It may be an attack; it is never
	// accepted automatically.
	ErrIdentityChanged = errors.New("server identity changed")
	// ErrUnknownServer means no fingerprint is pinned for the server and
	// trust on first use was not allowed.
	ErrUnknownServer = errors.New("server identity unknown")
)

// IdentityError reports a server whose key does not match the pin. It wraps
// ErrIdentityChanged or ErrUnknownServer.
type IdentityError struct {
	Addr      string // host:port dialled
	Expected  string // pinned fingerprint, empty when none
	Presented string // fingerprint the server presented
	Err       error
}

func (e *IdentityError) Error() string {
	if errors.Is(e.Err, ErrIdentityChanged) {
		return fmt.Sprintf("the identity of server %s changed: expected key %s, it presented %s; "+
			"if the server's key was replaced on purpose, get a new invite link, otherwise someone may be intercepting the connection",
			e.Addr, e.Expected, e.Presented)
	}
	return fmt.Sprintf("server %s is not known: its key fingerprint is %s; "+
		"use an invite link with ?fp=, or trust it on first use", e.Addr, e.Presented)
}

func (e *IdentityError) Unwrap() error { return e.Err }

// verifyPin returns a tls.Config.VerifyConnection function that accepts only
// a leaf certificate whose fingerprint is want. VerifyConnection runs on
// every handshake, resumed ones included.
func verifyPin(addr, want string, seen *string) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("protocol: server sent no certificate")
		}
		got := Fingerprint(cs.PeerCertificates[0])
		if seen != nil {
			*seen = got
		}
		if want == "" {
			return &IdentityError{Addr: addr, Presented: got, Err: ErrUnknownServer}
		}
		if got != want {
			return &IdentityError{Addr: addr, Expected: want, Presented: got, Err: ErrIdentityChanged}
		}
		return nil
	}
}

// KnownServers is a file of trusted server fingerprints, one "host:port
// fingerprint" pair per line, written by trust on first use. Entries are
// only added: a changed key is never written over an old one.
type KnownServers struct {
	Path string
	mu   sync.Mutex
}

// DefaultKnownServersPath is $XDG_CONFIG_HOME/parley/known_servers (or the
// platform's equivalent).
func DefaultKnownServersPath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "parley", "known_servers"), nil
}

// Lookup returns the fingerprint recorded for addr (host names compare
// case-insensitively).
func (k *KnownServers) Lookup(addr string) (string, bool, error) {
	addr = strings.ToLower(addr)
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.lookupLocked(addr)
}

// lookupLocked is Lookup for a lower-cased addr with k.mu held.
func (k *KnownServers) lookupLocked(addr string) (string, bool, error) {
	f, err := os.Open(k.Path)
	if errors.Is(err, os.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 2 && fields[0] == addr {
			return fields[1], true, nil
		}
	}
	return "", false, sc.Err()
}

// Add records fp for addr. It refuses to record a second, different
// fingerprint for an address.
func (k *KnownServers) Add(addr, fp string) error {
	addr = strings.ToLower(addr)
	// Hold the lock from the lookup to the write, so that two different
	// keys added at once are not both recorded.
	k.mu.Lock()
	defer k.mu.Unlock()
	if old, ok, err := k.lookupLocked(addr); err != nil {
		return err
	} else if ok {
		if old != fp {
			return &IdentityError{Addr: addr, Expected: old, Presented: fp, Err: ErrIdentityChanged}
		}
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(k.Path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(k.Path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	// A file whose last line has no newline (edited by hand) would
	// otherwise get the entry glued to that line, losing both.
	sep := ""
	if st, err := f.Stat(); err == nil && st.Size() > 0 {
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, st.Size()-1); err == nil && last[0] != '\n' {
			sep = "\n"
		}
	}
	if _, err := fmt.Fprintf(f, "%s%s %s\n", sep, addr, fp); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
