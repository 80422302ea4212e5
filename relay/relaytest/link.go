// Package relaytest helps test and measure programs that talk to a Parley
// relay. Link is a TCP proxy on loopback whose direction of traffic can be
// shaped — bandwidth, latency, cut — with toxiproxy used as a library, so
// that a test can put one client behind a slow or broken link without
// network namespaces.
package relaytest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/stream"
	"github.com/Shopify/toxiproxy/v2/toxics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	zlog "github.com/rs/zerolog/log"
	"go.uber.org/goleak"
)

// Link forwards TCP connections from Addr to an upstream address through
// toxiproxy. Downstream is the direction from upstream to the client.
//
// The link accepts and dials itself and hands each connection's two
// directions to toxiproxy's chains of toxics, writing their output through
// a drain: toxiproxy (v2.5) stops reading a chain when a write to its
// destination fails (the client, or the relay, closed first) and the
// chain's toxics then block on their next send for good, each holding a
// goroutine and its buffers. A drain never fails a write: after the first
// failure it closes the connection, as toxiproxy would, and drops what
// the chain still delivers, so that every chain ends.
type Link struct {
	Addr     string // where clients connect
	upstream string
	srv      *toxiproxy.ApiServer
	proxy    *toxiproxy.Proxy // never started: it holds the toxics and the chains
	ln       net.Listener
	accepted chan struct{} // closed when the accept loop has returned

	mu     sync.Mutex            // guards the fields below
	conns  map[net.Conn]struct{} // open connection ends behind drains
	raw    map[net.Conn]struct{} // connection ends without drains
	closed bool
	chains sync.WaitGroup // toxiproxy chains not yet ended (two per connection)
}

// Some toxics log through zerolog's global logger (a bandwidth toxic says
// when it is interrupted, as Close does): not to stderr.
func init() { zlog.Logger = zerolog.Nop() }

// NewLink starts a link to upstream on a free loopback port.
func NewLink(upstream string) (*Link, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("relaytest: starting the link: %w", err)
	}
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	l := &Link{
		Addr:     ln.Addr().String(),
		upstream: upstream,
		srv:      srv,
		proxy:    toxiproxy.NewProxy(srv, "link", ln.Addr().String(), upstream),
		ln:       ln,
		accepted: make(chan struct{}),
		conns:    make(map[net.Conn]struct{}),
		raw:      make(map[net.Conn]struct{}),
	}
	go l.accept()
	return l, nil
}

// accept connects each client to upstream through the toxics, as
// toxiproxy's own proxy does.
func (l *Link) accept() {
	defer close(l.accepted)
	for {
		client, err := l.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", l.upstream)
		if err != nil {
			client.Close()
			continue
		}
		// toxiproxy resets a connection made while a reset_peer toxic is
		// in place by setting SetLinger(0) on both of its ends, which
		// must then be the *net.TCPConn themselves: such a connection
		// does without drains.
		raw := l.hasReset()
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			client.Close()
			up.Close()
			return
		}
		var toUp, toClient io.WriteCloser = up, client
		if raw {
			l.raw[client], l.raw[up] = struct{}{}, struct{}{}
		} else {
			l.conns[client], l.conns[up] = struct{}{}, struct{}{}
			l.chains.Add(2)
			toUp, toClient = l.newDrain(up), l.newDrain(client)
		}
		l.mu.Unlock()
		name := client.RemoteAddr().String()
		l.proxy.Toxics.StartLink(l.srv, name+"upstream", client, toUp, stream.Upstream)
		l.proxy.Toxics.StartLink(l.srv, name+"downstream", up, toClient, stream.Downstream)
	}
}

// hasReset reports whether a reset_peer toxic is in place.
func (l *Link) hasReset() bool {
	for _, w := range l.toxics() {
		if _, ok := w.Toxic.(*toxics.ResetToxic); ok {
			return true
		}
	}
	return false
}

// toxics returns the toxics in place.
func (l *Link) toxics() []*toxics.ToxicWrapper {
	var out []*toxics.ToxicWrapper
	for _, t := range l.proxy.Toxics.GetToxicArray() {
		out = append(out, t.(*toxics.ToxicWrapper))
	}
	return out
}

// drain is the destination of one direction of a connection: see Link.
// Only toxiproxy's writer goroutine of that direction uses it.
type drain struct {
	l      *Link
	conn   net.Conn
	failed bool
	once   sync.Once
}

func (l *Link) newDrain(c net.Conn) *drain { return &drain{l: l, conn: c} }

// Write writes to the connection until a write fails, and then drops
// everything.
func (d *drain) Write(b []byte) (int, error) {
	if !d.failed {
		if _, err := d.conn.Write(b); err != nil {
			d.failed = true
			d.conn.Close() // what toxiproxy does when a write fails
		}
	}
	return len(b), nil
}

// Close closes the connection; toxiproxy calls it when the chain has
// ended.
func (d *drain) Close() error {
	err := d.conn.Close()
	d.once.Do(func() {
		d.l.mu.Lock()
		delete(d.l.conns, d.conn)
		d.l.mu.Unlock()
		d.l.chains.Done()
	})
	return err
}

// Direction names a direction of a link.
type Direction string

// Directions.
const (
	Downstream Direction = "downstream" // upstream (the relay) to the client
	Upstream   Direction = "upstream"   // the client to upstream
)

// AddToxic adds a toxiproxy toxic (bandwidth, latency, slicer, timeout,
// reset_peer, ...; see toxiproxy's README) to one direction, affecting
// connections made from now on and those already open.
func (l *Link) AddToxic(name, typ string, dir Direction, attrs map[string]any) error {
	b, err := json.Marshal(map[string]any{"name": name, "type": typ, "stream": dir, "toxicity": 1.0, "attributes": attrs})
	if err != nil {
		return err
	}
	if _, err := l.proxy.Toxics.AddToxicJson(bytes.NewReader(b)); err != nil {
		return fmt.Errorf("relaytest: adding toxic %s: %w", name, err)
	}
	return nil
}

// RemoveToxic removes a toxic added with AddToxic.
func (l *Link) RemoveToxic(name string) error {
	if err := l.proxy.Toxics.RemoveToxic(context.Background(), name); err != nil {
		return fmt.Errorf("relaytest: removing toxic %s: %w", name, err)
	}
	return nil
}

// Partition makes the link drop everything in both directions without
// closing a connection, until Heal: a silent partition (toxiproxy's
// timeout toxic with no timeout). New connections are accepted and then
// get nothing through either.
func (l *Link) Partition() error {
	for _, dir := range []Direction{Upstream, Downstream} {
		if err := l.AddToxic("partition-"+string(dir), "timeout", dir, map[string]any{"timeout": 0}); err != nil {
			return err
		}
	}
	return nil
}

// Heal ends a Partition.
func (l *Link) Heal() error {
	for _, dir := range []Direction{Upstream, Downstream} {
		if err := l.RemoveToxic("partition-" + string(dir)); err != nil {
			return err
		}
	}
	return nil
}

// LimitBandwidth caps one direction at kbps kilobits per second.
// (toxiproxy counts in KB/s; the rate is rounded to whole KB/s.)
func (l *Link) LimitBandwidth(dir Direction, kbps int) error {
	return l.AddToxic("bandwidth-"+string(dir), "bandwidth", dir, map[string]any{"rate": max(1, kbps/8)})
}

// Close stops the link, closes its connections, and waits (at most 10 s)
// until toxiproxy has ended the chains of toxics behind them, dropping
// what they held. It returns an error if some did not end.
func (l *Link) Close() error {
	l.ln.Close()
	<-l.accepted
	l.mu.Lock()
	l.closed = true
	for c := range l.conns {
		c.Close()
	}
	for c := range l.raw {
		c.Close()
	}
	l.mu.Unlock()
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		// What the toxics hold goes at once rather than at their pace
		// (a bandwidth toxic would take minutes): remove them, the last
		// of each chain first, since a toxic's removal pushes what it
		// holds into the next. A timeout toxic stays: it drops what it
		// gets, and removing it would leave the toxic in front of it
		// blocked (see IgnoreLinkLeaks).
		ts := l.toxics()
		slices.SortFunc(ts, func(a, b *toxics.ToxicWrapper) int { return b.Index - a.Index })
		for _, w := range ts {
			if _, ok := w.Toxic.(*toxics.TimeoutToxic); !ok {
				l.proxy.Toxics.RemoveToxic(context.Background(), w.Name)
			}
		}
		l.chains.Wait()
	}()
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	select {
	case <-ended:
		return nil
	case <-t.C:
		l.mu.Lock()
		n := len(l.conns)
		l.mu.Unlock()
		return fmt.Errorf("relaytest: toxiproxy has not finished with the link 10 s after Close: %d connection ends still open, or a toxic is stuck", n)
	}
}

// IgnoreLinkLeaks is a goleak option for tests that use a Link with a
// reset_peer or timeout toxic. Once one of those has closed its part of a
// chain (reset_peer at the first data, timeout when it is removed, as Heal
// does), toxiproxy (v2.5) leaves the toxic in front of it blocked on its
// next send, holding a few buffers until the test binary exits. Those
// goroutines are toxiproxy's, not the code under test. The chains of other
// toxics end with their connections (see Link).
var IgnoreLinkLeaks = goleak.IgnoreAnyFunction("github.com/Shopify/toxiproxy/v2/toxics.(*ToxicStub).Run")
