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

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"
)

// Link forwards TCP connections from Addr to an upstream address through
// toxiproxy. Downstream is the direction from upstream to the client.
type Link struct {
	Addr  string // where clients connect
	proxy *toxiproxy.Proxy
}

// NewLink starts a link to upstream on a free loopback port.
func NewLink(upstream string) (*Link, error) {
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	p := toxiproxy.NewProxy(srv, "link", "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		return nil, fmt.Errorf("relaytest: starting the link: %w", err)
	}
	return &Link{Addr: p.Listen, proxy: p}, nil
}

// Direction names a direction of a link.
type Direction string

// Directions.
const (
	Downstream Direction = "downstream" // upstream (the relay) to the client
	Upstream   Direction = "upstream"   // the client to upstream
)

// AddToxic adds a toxiproxy toxic (bandwidth, latency, slicer, timeout,
// ...; see toxiproxy's README) to one direction, affecting connections
// made from now on and those already open.
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

// Close stops the link and closes its connections.
func (l *Link) Close() { l.proxy.Stop() }

// IgnoreLinkLeaks are goleak options for tests that use a Link. When a
// link's client side closes first, toxiproxy (v2.5, the newest) stops
// copying to it but leaves the toxics of that direction blocked on their
// next send, and the reader of the other side blocked on its hand-off to
// them; they hold a few buffers until the test binary exits. Those
// goroutines are toxiproxy's, not the code under test.
var IgnoreLinkLeaks = []goleak.Option{
	goleak.IgnoreAnyFunction("github.com/Shopify/toxiproxy/v2/toxics.(*ToxicStub).Run"),
	goleak.IgnoreAnyFunction("github.com/Shopify/toxiproxy/v2.(*ToxicLink).read"),
}
