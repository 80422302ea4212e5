package protocol

import (
	"encoding/binary"
	"net"
	"sync"
	"sync/atomic"

	"golang.org/x/time/rate"
)

// yamux framing, as specified by hashicorp/yamux spec.md: a 12-byte header
// (version u8, type u8, flags u16, stream id u32, length u32), followed by
// length bytes of body for data frames only.
const (
	yamuxHeaderSize   = 12
	yamuxTypeData     = 0
	yamuxTypeWindow   = 1
	yamuxTypePing     = 2
	yamuxTypeGoAway   = 3
	yamuxFlagSYN      = 1
	yamuxMaxFrameType = yamuxTypeGoAway
)

// GuardLimits bound what a client may make yamux do. yamux is not a hardened
// boundary: it allocates a receive buffer of a frame's declared size, starts
// a goroutine per ping and creates a stream per SYN before the application
// sees any of it. The guard reads the client's yamux headers first and ends
// the session when a limit is crossed.
type GuardLimits struct {
	// PreHelloFrame is the largest data frame body before the hello is
	// done (default 512 bytes).
	PreHelloFrame uint32
	// StreamOpens and StreamOpenBurst bound stream opens per second after
	// the hello (default 4 per second, burst 16). Before the hello only one
	// stream may be opened.
	StreamOpens     float64
	StreamOpenBurst int
	// MaxOpens bounds the streams a client may open over a session's
	// life, control included (default 32; Handshake makes it four times
	// ServerConfig.MaxStreams). A client opens one stream per
	// kind and never closes one, so this is far above what any client
	// needs; it caps what a flood of SYNs can make yamux do whatever the
	// open rate.
	MaxOpens int
	// Pings and PingBurst bound yamux pings per second (default 2, burst 8).
	Pings     float64
	PingBurst int
}

func (l *GuardLimits) withDefaults() GuardLimits {
	g := *l
	if g.PreHelloFrame == 0 {
		g.PreHelloFrame = 512
	}
	if g.StreamOpens == 0 {
		g.StreamOpens = 4
	}
	if g.StreamOpenBurst == 0 {
		g.StreamOpenBurst = 16
	}
	if g.Pings == 0 {
		g.Pings = 2
	}
	if g.PingBurst == 0 {
		g.PingBurst = 8
	}
	if g.MaxOpens == 0 {
		g.MaxOpens = 32
	}
	return g
}

// guard wraps the server's TLS connection under yamux. Read is called only
// by yamux's receive goroutine, which owns every field except helloDone and
// violation.
type guard struct {
	net.Conn
	limits GuardLimits

	helloDone atomic.Bool
	violation atomic.Pointer[Error]

	hdr   [yamuxHeaderSize]byte
	hdrN  int
	body  uint32 // body bytes of the current data frame still to come
	opens int    // streams the client opened
	openL *rate.Limiter
	pingL *rate.Limiter
}

func newGuard(c net.Conn, limits GuardLimits) *guard {
	l := limits.withDefaults()
	return &guard{
		Conn:   c,
		limits: l,
		openL:  rate.NewLimiter(rate.Limit(l.StreamOpens), l.StreamOpenBurst),
		pingL:  rate.NewLimiter(rate.Limit(l.Pings), l.PingBurst),
	}
}

// Read passes bytes to yamux after checking every complete header in them.
func (g *guard) Read(p []byte) (int, error) {
	n, err := g.Conn.Read(p)
	if v := g.inspect(p[:n]); v != nil {
		g.violation.CompareAndSwap(nil, v)
		return 0, v
	}
	return n, err
}

func (g *guard) inspect(p []byte) *Error {
	for len(p) > 0 {
		if g.body > 0 {
			k := min(uint32(len(p)), g.body)
			g.body -= k
			p = p[k:]
			continue
		}
		k := copy(g.hdr[g.hdrN:], p)
		g.hdrN += k
		p = p[k:]
		if g.hdrN < yamuxHeaderSize {
			return nil
		}
		g.hdrN = 0
		if v := g.checkHeader(); v != nil {
			return v
		}
	}
	return nil
}

func (g *guard) checkHeader() *Error {
	typ := g.hdr[1]
	flags := binary.BigEndian.Uint16(g.hdr[2:4])
	length := binary.BigEndian.Uint32(g.hdr[8:12])
	if typ > yamuxMaxFrameType {
		return errorf(CodeMalformed, "yamux frame type %d", typ)
	}
	authed := g.helloDone.Load()
	if typ == yamuxTypeData {
		if !authed && length > g.limits.PreHelloFrame {
			return errorf(CodeFrameTooLarge, "a %d-byte frame before the hello", length)
		}
		g.body = length
	}
	if (typ == yamuxTypeData || typ == yamuxTypeWindow) && flags&yamuxFlagSYN != 0 {
		if !authed {
			if g.opens > 0 {
				return errorf(CodeTooManyStreams, "a second stream before the hello")
			}
		} else if !g.openL.Allow() {
			return errorf(CodeStreamRate, "streams opened faster than %g per second", g.limits.StreamOpens)
		} else if g.opens >= g.limits.MaxOpens {
			return errorf(CodeTooManyStreams, "more than %d streams opened in one session", g.limits.MaxOpens)
		}
		g.opens++
	}
	if typ == yamuxTypePing && flags&yamuxFlagSYN != 0 && !g.pingL.Allow() {
		return errorf(CodeStreamRate, "pings faster than %g per second", g.limits.Pings)
	}
	return nil
}

// coalescer holds back the 12-byte header of a yamux data frame until its
// body follows, and writes both at once. yamux's send loop writes a
// frame's header and body in two calls, which over TLS makes two records
// and two system calls per frame: a 29-byte record for every header. Only
// yamux's send loop writes, so the held header is always followed by its
// body.
type coalescer struct {
	net.Conn
	mu   sync.Mutex
	held []byte // a data frame's header, waiting for its body
}

func (c *coalescer) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.held) > 0 {
		c.held = append(c.held, p...)
		_, err := c.Conn.Write(c.held)
		c.held = c.held[:0]
		if cap(c.held) > 4<<10 {
			c.held = nil // a large frame is rare: do not keep its buffer for the session's life
		}
		if err != nil {
			return 0, err
		}
		return len(p), nil
	}
	if len(p) == yamuxHeaderSize && p[1] == yamuxTypeData && binary.BigEndian.Uint32(p[8:12]) > 0 {
		c.held = append(c.held[:0], p...)
		return len(p), nil
	}
	return c.Conn.Write(p)
}
