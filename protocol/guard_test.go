package protocol

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"reflect"
	"testing"
)

// yamux frame types and flags as the client sends them.
const (
	ySYN = 1
	yACK = 2
	yFIN = 4
	yRST = 8
)

// yframe returns a yamux header followed, for data frames, by a body of
// length bytes.
func yframe(typ uint8, flags uint16, id, length uint32) []byte {
	b := []byte{0, typ}
	b = binary.BigEndian.AppendUint16(b, flags)
	b = binary.BigEndian.AppendUint32(b, id)
	b = binary.BigEndian.AppendUint32(b, length)
	if typ == yamuxTypeData {
		b = append(b, bytes.Repeat([]byte{0xff}, int(length))...) // 0xff: an invalid type if read as a header
	}
	return b
}

// preHelloTraffic is what a client sends before the Welcome: it opens the
// control stream, announces its kind, sends a Hello, pings and acknowledges.
func preHelloTraffic() []byte {
	return concat(
		yframe(yamuxTypeWindow, ySYN, 1, 0),
		yframe(yamuxTypeData, 0, 1, 1),
		yframe(yamuxTypeData, 0, 1, 25),
		yframe(yamuxTypePing, ySYN, 0, 1),
		yframe(yamuxTypeWindow, yACK, 1, 4096),
		yframe(yamuxTypeData, 0, 1, 512),
		yframe(yamuxTypeData, 0, 1, 0),
	)
}

// postHelloTraffic is ordinary traffic after the Welcome.
func postHelloTraffic() []byte {
	return concat(
		yframe(yamuxTypeWindow, ySYN, 3, 0),
		yframe(yamuxTypeData, 0, 3, 1),
		yframe(yamuxTypeData, 0, 3, 70000),
		yframe(yamuxTypeData, ySYN, 5, 3),
		yframe(yamuxTypePing, ySYN, 0, 2),
		yframe(yamuxTypePing, yACK, 0, 7),
		yframe(yamuxTypeWindow, 0, 3, 1<<20),
		yframe(yamuxTypeData, yFIN, 5, 0),
		yframe(yamuxTypeWindow, yRST, 3, 0),
		yframe(yamuxTypeGoAway, 0, 0, 0),
	)
}

// feed passes chunks to g.inspect and returns the first violation.
func feed(g *guard, chunks ...[]byte) *Error {
	for _, c := range chunks {
		if v := g.inspect(c); v != nil {
			return v
		}
	}
	return nil
}

func checkIdle(t *testing.T, g *guard, what string) {
	t.Helper()
	if g.hdrN != 0 || g.body != 0 {
		t.Errorf("after %s: guard has %d header bytes and %d body bytes pending, want 0, 0", what, g.hdrN, g.body)
	}
}

// TestGuardNormalTraffic feeds valid traffic one byte at a time and split
// at every byte boundary.
func TestGuardNormalTraffic(t *testing.T) {
	pre, post := preHelloTraffic(), postHelloTraffic()

	g := newGuard(nil, GuardLimits{})
	for i := range pre {
		if v := g.inspect(pre[i : i+1]); v != nil {
			t.Fatalf("inspect(byte %d of the pre-hello traffic) = %v, want nil", i, v)
		}
	}
	checkIdle(t, g, "the pre-hello traffic")
	g.helloDone.Store(true)
	for i := range post {
		if v := g.inspect(post[i : i+1]); v != nil {
			t.Fatalf("inspect(byte %d of the post-hello traffic) = %v, want nil", i, v)
		}
	}
	checkIdle(t, g, "the post-hello traffic")

	for i := range len(pre) + 1 {
		g := newGuard(nil, GuardLimits{})
		if v := feed(g, pre[:i], pre[i:]); v != nil {
			t.Fatalf("inspect(pre-hello traffic split at %d) = %v, want nil", i, v)
		}
		checkIdle(t, g, "the pre-hello traffic")
	}
	// The post-hello traffic is long; its headers are what matters.
	for i := range len(post) + 1 {
		if i > 200 && i < len(post)-200 {
			continue
		}
		g := newGuard(nil, GuardLimits{})
		g.helloDone.Store(true)
		if v := feed(g, post[:i], post[i:]); v != nil {
			t.Fatalf("inspect(post-hello traffic split at %d) = %v, want nil", i, v)
		}
		checkIdle(t, g, "the post-hello traffic")
	}
}

func TestGuardViolations(t *testing.T) {
	tiny := GuardLimits{StreamOpens: 1e-6, StreamOpenBurst: 3, Pings: 1e-6, PingBurst: 2}
	repeat := func(n int, b []byte) []byte { return bytes.Repeat(b, n) }
	tests := []struct {
		name      string
		limits    GuardLimits
		helloDone bool
		input     []byte
		code      ErrorCode // CodeNone: accepted
	}{
		{"second SYN before hello", GuardLimits{}, false,
			concat(yframe(yamuxTypeWindow, ySYN, 1, 0), yframe(yamuxTypeWindow, ySYN, 3, 0)), CodeTooManyStreams},
		{"second SYN on data before hello", GuardLimits{}, false,
			concat(yframe(yamuxTypeWindow, ySYN, 1, 0), yframe(yamuxTypeData, ySYN, 3, 1)), CodeTooManyStreams},
		{"SYN|ACK counts", GuardLimits{}, false,
			concat(yframe(yamuxTypeWindow, ySYN, 1, 0), yframe(yamuxTypeWindow, ySYN|yACK, 3, 0)), CodeTooManyStreams},
		{"large frame before hello", GuardLimits{}, false,
			yframe(yamuxTypeData, 0, 1, 513)[:yamuxHeaderSize], CodeFrameTooLarge},
		{"largest frame before hello", GuardLimits{}, false,
			yframe(yamuxTypeData, 0, 1, 512), CodeNone},
		{"custom pre-hello limit", GuardLimits{PreHelloFrame: 100}, false,
			concat(yframe(yamuxTypeData, 0, 1, 100), yframe(yamuxTypeData, 0, 1, 101)), CodeFrameTooLarge},
		{"large window update before hello", GuardLimits{}, false,
			yframe(yamuxTypeWindow, 0, 1, 1<<30), CodeNone},
		{"large frame after hello", GuardLimits{}, true,
			yframe(yamuxTypeData, 0, 1, 1<<16), CodeNone},
		{"opens within the burst", tiny, true,
			repeat(3, yframe(yamuxTypeWindow, ySYN, 3, 0)), CodeNone},
		{"opens over the rate", tiny, true,
			repeat(4, yframe(yamuxTypeWindow, ySYN, 3, 0)), CodeStreamRate},
		{"opens over the default rate", GuardLimits{}, true,
			repeat(100, yframe(yamuxTypeWindow, ySYN, 3, 0)), CodeStreamRate},
		{"pings within the burst", tiny, true,
			repeat(2, yframe(yamuxTypePing, ySYN, 0, 1)), CodeNone},
		{"ping flood", tiny, true,
			repeat(3, yframe(yamuxTypePing, ySYN, 0, 1)), CodeStreamRate},
		{"ping flood before hello", tiny, false,
			repeat(3, yframe(yamuxTypePing, ySYN, 0, 1)), CodeStreamRate},
		{"ping flood at the default rate", GuardLimits{}, true,
			repeat(100, yframe(yamuxTypePing, ySYN, 0, 1)), CodeStreamRate},
		{"ping answers are free", tiny, true,
			repeat(100, yframe(yamuxTypePing, yACK, 0, 1)), CodeNone},
		{"unknown frame type", GuardLimits{}, true,
			yframe(4, 0, 0, 0), CodeMalformed},
		{"frame type 255", GuardLimits{}, false,
			yframe(255, 0, 0, 0), CodeMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Whole, and one byte at a time.
			for _, split := range []bool{false, true} {
				g := newGuard(nil, tt.limits)
				g.helloDone.Store(tt.helloDone)
				var v *Error
				if split {
					for i := range tt.input {
						if v = g.inspect(tt.input[i : i+1]); v != nil {
							break
						}
					}
				} else {
					v = g.inspect(tt.input)
				}
				if got := CodeOf(errOrNil(v)); got != tt.code {
					t.Errorf("inspect(%x, split %v) = %v, want code %v", tt.input, split, v, tt.code)
				}
			}
		})
	}
}

// errOrNil converts a nil *Error to a nil error.
func errOrNil(e *Error) error {
	if e == nil {
		return nil
	}
	return e
}

// readerConn is a net.Conn whose reads come from r; only Read is used.
type readerConn struct {
	net.Conn
	r io.Reader
}

func (c readerConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func TestGuardRead(t *testing.T) {
	input := concat(preHelloTraffic(), yframe(yamuxTypeWindow, ySYN, 3, 0))
	g := newGuard(readerConn{r: bytes.NewReader(input)}, GuardLimits{})
	var got []byte
	buf := make([]byte, 7)
	var err error
	for {
		var n int
		n, err = g.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			break
		}
	}
	if CodeOf(err) != CodeTooManyStreams {
		t.Errorf("Read() = %v, want code %v", err, CodeTooManyStreams)
	}
	if v := g.violation.Load(); v == nil || v.Code != CodeTooManyStreams {
		t.Errorf("violation = %v, want code %v", v, CodeTooManyStreams)
	}
	if !bytes.HasPrefix(input, got) || len(got) > len(preHelloTraffic())+yamuxHeaderSize {
		t.Errorf("Read() passed %d bytes, want a prefix of the %d valid ones", len(got), len(preHelloTraffic()))
	}

	// A clean stream passes through unchanged, EOF included.
	g = newGuard(readerConn{r: bytes.NewReader(preHelloTraffic())}, GuardLimits{})
	all, err := io.ReadAll(g)
	if err != nil || !bytes.Equal(all, preHelloTraffic()) {
		t.Errorf("ReadAll(guard) = %d bytes, %v, want %d bytes", len(all), err, len(preHelloTraffic()))
	}
	if v := g.violation.Load(); v != nil {
		t.Errorf("violation = %v, want nil", v)
	}
}

// writeLog is a net.Conn that records each Write.
type writeLog struct {
	net.Conn
	writes [][]byte
}

func (w *writeLog) Write(p []byte) (int, error) {
	w.writes = append(w.writes, bytes.Clone(p))
	return len(p), nil
}

func yamuxHeader(typ byte, length uint32) []byte {
	h := make([]byte, yamuxHeaderSize)
	h[1] = typ
	binary.BigEndian.PutUint32(h[4:8], 3) // stream 3
	binary.BigEndian.PutUint32(h[8:12], length)
	return h
}

// TestCoalescer: a data frame's header and body go out in one write;
// frames without a body go out at once.
func TestCoalescer(t *testing.T) {
	w := &writeLog{}
	c := &coalescer{Conn: w}
	data := yamuxHeader(yamuxTypeData, 5)
	window := yamuxHeader(yamuxTypeWindow, 1<<16)
	ping := yamuxHeader(yamuxTypePing, 7)
	empty := yamuxHeader(yamuxTypeData, 0) // a FIN or SYN without data
	for _, p := range [][]byte{data, []byte("hello"), window, ping, empty, data, []byte("world")} {
		if n, err := c.Write(p); n != len(p) || err != nil {
			t.Fatalf("Write(%x) = %d, %v", p, n, err)
		}
	}
	want := [][]byte{append(bytes.Clone(data), "hello"...), window, ping, empty, append(bytes.Clone(data), "world"...)}
	if !reflect.DeepEqual(w.writes, want) {
		t.Errorf("writes = %x, want %x", w.writes, want)
	}
}
