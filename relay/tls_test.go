package relay

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleychat/parley/protocol"
)

// countingCache is a TLS session cache that counts the sessions it hands
// out, so a test can tell that a handshake offered a resumption.
type countingCache struct {
	tls.ClientSessionCache
	offered atomic.Int32
}

func (c *countingCache) Get(key string) (*tls.ClientSessionState, bool) {
	s, ok := c.ClientSessionCache.Get(key)
	if ok {
		c.offered.Add(1)
	}
	return s, ok
}

// listenOn starts a relay with cfg on a given address.
func listenOn(t *testing.T, addr string, cfg Config) *testServer {
	t.Helper()
	cfg.Logger = testLogger(t)
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	for range 50 { // the port may still be closing from the last server
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{Server: srv, addr: ln.Addr().String(), done: make(chan error, 1)}
	go func() { ts.done <- srv.Serve(ln) }()
	t.Cleanup(func() { ts.stop(t) })
	return ts
}

// mitm accepts TLS with a certificate of its own, as a man in the middle
// would, and relays what it decrypts to upstream over TLS.
func mitm(t *testing.T, upstream string) string {
	t.Helper()
	cert, err := NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{protocol.ALPN}})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				if err := c.(*tls.Conn).Handshake(); err != nil {
					return // the client saw through it
				}
				up, err := tls.Dial("tcp", upstream, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{protocol.ALPN}})
				if err != nil {
					return
				}
				defer up.Close()
				go io.Copy(up, c)
				io.Copy(c, up)
			}()
		}
	}()
	return ln.Addr().String()
}

// TestServerIdentity: the right pin connects, and a reconnect resumes the
// TLS session; a server whose key was replaced (new data directory, same
// address), a man in the middle with his own self-signed certificate, and
// a resumed session offered under a changed pin all fail with the
// distinct identity error, naming both keys.
func TestServerIdentity(t *testing.T) {
	addr := freeAddr(t)
	a := listenOn(t, addr, Config{DataDir: t.TempDir()})
	pinA := a.Fingerprint()
	cache := &countingCache{ClientSessionCache: tls.NewLRUClientSessionCache(8)}
	dialPin := func(addr, pin string) (*protocol.Conn, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return protocol.Dial(ctx, protocol.Invite{Addr: addr, Room: "lobby", Fingerprint: pin}, &protocol.DialConfig{SessionCache: cache})
	}
	wantChanged := func(what string, err error, expected, presented string) {
		t.Helper()
		var ie *protocol.IdentityError
		switch {
		case !errors.Is(err, protocol.ErrIdentityChanged) || !errors.As(err, &ie):
			t.Errorf("%s: %v, want %v", what, err, protocol.ErrIdentityChanged)
		case ie.Expected != expected || (presented != "" && ie.Presented != presented):
			t.Errorf("%s: expected %s presented %s, want %s and %s", what, ie.Expected, ie.Presented, expected, presented)
		default:
			t.Logf("%s: %v", what, err)
		}
	}

	for i, want := range []bool{false, true} {
		c, err := dialPin(addr, pinA)
		if err != nil {
			t.Fatalf("dial %d with the right pin: %v", i+1, err)
		}
		if got := c.ConnectionState().DidResume; got != want {
			t.Errorf("dial %d with the right pin: resumed %v, want %v", i+1, got, want)
		}
		c.Close()
	}

	// The pin changes (say a new invite for a key the server does not
	// have): the cached session is offered, the server would resume it,
	// and the pin is still checked.
	_, pinX, err := newFingerprint()
	if err != nil {
		t.Fatal(err)
	}
	offered := cache.offered.Load()
	_, err = dialPin(addr, pinX)
	wantChanged("a resumed session under a changed pin", err, pinX, pinA)
	if cache.offered.Load() == offered {
		t.Errorf("the dial under a changed pin offered no session to resume")
	}

	// A man in the middle with a certificate of his own.
	_, err = dialPin(mitm(t, addr), pinA)
	wantChanged("a man in the middle", err, pinA, "")

	// The server's key is replaced: a new data directory on the same
	// address.
	a.stop(t)
	b := listenOn(t, addr, Config{DataDir: t.TempDir()})
	if b.Fingerprint() == pinA {
		t.Fatal("the new server has the old key")
	}
	_, err = dialPin(addr, pinA)
	wantChanged("a replaced server key", err, pinA, b.Fingerprint())
	c, err := dialPin(addr, b.Fingerprint())
	if err != nil {
		t.Fatalf("the new key's own pin: %v", err)
	}
	c.Close()
}

// freeAddr returns a loopback address whose port is free now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// newFingerprint returns a fresh key's certificate and fingerprint.
func newFingerprint() (tls.Certificate, string, error) {
	cert, err := NewIdentity()
	if err != nil {
		return cert, "", err
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return cert, "", err
	}
	return cert, protocol.Fingerprint(leaf), nil
}
