package relay

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleychat/parley/protocol"
)

// rawMux is a client that speaks yamux by hand over real TLS: it writes
// yamux frames one by one, so a test can send what the yamux library never
// would — data after a FIN, resets, SYN floods, windows filled and never
// credited back. A goroutine reads the server's frames: it keeps the data of
// each stream, answers keepalive pings, and credits the server's send
// window as it receives data unless told not to (a client that stops
// reading).
type rawMux struct {
	t    testing.TB
	conn *tls.Conn

	wmu  sync.Mutex // serialises frame writes
	next uint32     // next stream ID to open (odd: the client's)

	mu       sync.Mutex // guards the fields below
	in       map[uint32]*bytes.Buffer
	rsts     map[uint32]bool
	sent     map[uint32]int // data sent per stream, less the window the server granted since
	noCredit bool
	done     bool  // the server closed the connection
	err      error // why the reader stopped
	more     chan struct{}

	readerDone chan struct{}
	// readTimeout bounds a read of a stream's data (default 10 s).
	readTimeout time.Duration
	gate        sync.RWMutex // write-locked while the client does not read its connection
	paused      atomic.Bool
}

// yamux frame types and flags, from yamux's spec.md.
const (
	ymData    = 0
	ymWindow  = 1
	ymPing    = 2
	ymGoAway  = 3
	ymSYN     = 1
	ymACK     = 2
	ymFIN     = 4
	ymRST     = 8
	ymWindow0 = 256 << 10 // yamux's initial stream window
)

func dialMux(t testing.TB, addr string) *rawMux {
	t.Helper()
	m := dialMuxOwned(t, addr)
	t.Cleanup(m.close)
	return m
}

// dialMuxOwned is dialMux for a caller that closes the client itself (a
// test that makes thousands, whose cleanups would keep them all in memory
// until it ends).
func dialMuxOwned(t testing.TB, addr string) *rawMux {
	t.Helper()
	tc, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{protocol.ALPN}})
	if err != nil {
		t.Fatalf("dialling %s: %v", addr, err)
	}
	m := &rawMux{t: t, conn: tc, next: 1, in: make(map[uint32]*bytes.Buffer), rsts: make(map[uint32]bool), sent: make(map[uint32]int),
		more: make(chan struct{}), readerDone: make(chan struct{})}
	go m.readLoop()
	return m
}

// close closes the connection and waits for the reader; it may be called
// more than once.
func (m *rawMux) close() {
	m.conn.Close()
	m.resumeReading()
	<-m.readerDone
}

// frame writes one yamux frame. Errors are returned, not fatal: the server
// may have closed the connection, which is often what a test waits for.
func (m *rawMux) frame(typ uint8, flags uint16, id, length uint32, body []byte) error {
	var h [12]byte
	h[1] = typ
	binary.BigEndian.PutUint16(h[2:], flags)
	binary.BigEndian.PutUint32(h[4:], id)
	binary.BigEndian.PutUint32(h[8:], length)
	m.wmu.Lock()
	defer m.wmu.Unlock()
	m.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := m.conn.Write(append(h[:], body...))
	return err
}

// open opens a stream with a SYN data frame carrying body (which may be
// empty: then a window update opens it) and returns its ID. body must fit
// the initial window.
func (m *rawMux) open(body []byte) (uint32, error) {
	m.wmu.Lock()
	id := m.next
	m.next += 2
	m.wmu.Unlock()
	if len(body) == 0 {
		return id, m.frame(ymWindow, ymSYN, id, 0, nil)
	}
	m.mu.Lock()
	m.sent[id] += len(body)
	m.mu.Unlock()
	return id, m.frame(ymData, ymSYN, id, uint32(len(body)), body)
}

// errNoWindow: the server granted no window to send more within the wait.
var errNoWindow = errors.New("rawmux: the stream's send window stayed full")

// send writes data on a stream, cut into frames of at most 16 KiB, within
// the stream's send window as yamux requires (the server closes a client
// that sends more). It waits up to 2 s for the server to grant window;
// a client that does not read its connection never sees it granted, and
// gets errNoWindow once it has sent a window's worth.
func (m *rawMux) send(id uint32, b []byte) error {
	for len(b) > 0 {
		var n int
		if !m.wait(2*time.Second, func() bool {
			n = min(len(b), 16<<10, ymWindow0-m.sent[id])
			return n > 0
		}) {
			return errNoWindow
		}
		m.mu.Lock()
		m.sent[id] += n
		m.mu.Unlock()
		if err := m.frame(ymData, 0, id, uint32(n), b[:n]); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

func (m *rawMux) fin(id uint32) error { return m.frame(ymWindow, ymFIN, id, 0, nil) }
func (m *rawMux) rst(id uint32) error { return m.frame(ymWindow, ymRST, id, 0, nil) }

// stopCrediting makes the client stop granting the server window: like a
// client that stopped reading, the server can then send at most one window
// per stream.
func (m *rawMux) stopCrediting() {
	m.mu.Lock()
	m.noCredit = true
	m.mu.Unlock()
}

// pauseReading makes the client stop reading its connection, after the
// frame being read; the kernel's buffers then fill and the server's writes
// stall. resumeReading undoes it.
func (m *rawMux) pauseReading() {
	m.gate.Lock()
	m.paused.Store(true)
}

func (m *rawMux) resumeReading() {
	if m.paused.CompareAndSwap(true, false) {
		m.gate.Unlock()
	}
}

func (m *rawMux) readLoop() {
	defer close(m.readerDone)
	var h [12]byte
	var err error
	for {
		m.gate.RLock() // wait while paused
		m.gate.RUnlock()
		if _, err = io.ReadFull(m.conn, h[:]); err != nil {
			break
		}
		typ, flags := h[1], binary.BigEndian.Uint16(h[2:])
		id, length := binary.BigEndian.Uint32(h[4:]), binary.BigEndian.Uint32(h[8:])
		switch typ {
		case ymData:
			body := make([]byte, length)
			if _, err = io.ReadFull(m.conn, body); err != nil {
				break
			}
			m.mu.Lock()
			b := m.in[id]
			if b == nil {
				b = new(bytes.Buffer)
				m.in[id] = b
			}
			b.Write(body)
			credit := !m.noCredit && length > 0
			m.signalLocked()
			m.mu.Unlock()
			if credit {
				m.frame(ymWindow, 0, id, length, nil)
			}
		case ymWindow:
			m.mu.Lock()
			m.sent[id] -= int(length)
			m.signalLocked()
			m.mu.Unlock()
		case ymPing:
			if flags&ymSYN != 0 {
				m.frame(ymPing, ymACK, 0, length, nil)
			}
		}
		if flags&ymRST != 0 {
			m.mu.Lock()
			m.rsts[id] = true
			m.signalLocked()
			m.mu.Unlock()
		}
		if err != nil {
			break
		}
	}
	m.mu.Lock()
	m.done, m.err = true, err
	m.signalLocked()
	m.mu.Unlock()
}

func (m *rawMux) signalLocked() {
	close(m.more)
	m.more = make(chan struct{})
}

// wait waits until cond holds (under m.mu) or d passes; it reports whether
// cond held.
func (m *rawMux) wait(d time.Duration, cond func() bool) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		m.mu.Lock()
		ok, more := cond(), m.more
		m.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-more:
		case <-timer.C:
			return false
		}
	}
}

// waitClosed waits for the server to close the connection.
func (m *rawMux) waitClosed(d time.Duration) bool {
	return m.wait(d, func() bool { return m.done })
}

// waitGoodbye waits until the server has closed the connection or sent a
// Goodbye on stream 1 (the control stream before the hello), which a
// client must answer by closing.
func (m *rawMux) waitGoodbye(d time.Duration) bool {
	return m.wait(d, func() bool {
		if m.done {
			return true
		}
		b := m.in[1]
		if b == nil {
			return false
		}
		for rest := b.Bytes(); len(rest) >= protocol.HeaderSize; {
			msg, n, err := protocol.DecodeFrame(rest)
			if err != nil {
				return false
			}
			if msg.Type() == protocol.TypeGoodbye {
				return true
			}
			rest = rest[n:]
		}
		return false
	})
}

// streamReader reads the data the server sent on one stream.
type streamReader struct {
	m  *rawMux
	id uint32
}

func (r streamReader) Read(p []byte) (int, error) {
	var n int
	var err error
	d := r.m.readTimeout
	if d == 0 {
		d = 10 * time.Second
	}
	r.m.wait(d, func() bool {
		b := r.m.in[r.id]
		if b != nil && b.Len() > 0 {
			n, _ = b.Read(p)
			return true
		}
		if r.m.done {
			err = io.EOF
			return true
		}
		return false
	})
	if n == 0 && err == nil {
		err = os.ErrDeadlineExceeded
	}
	return n, err
}

// muxSession is a rawMux past the hello, with the control stream's frames.
type muxSession struct {
	*rawMux
	ctl uint32
	fr  *protocol.FrameReader
}

// muxHello opens the control stream, says hello and reads the Welcome.
func muxHello(t testing.TB, addr string) *muxSession {
	t.Helper()
	s := muxHelloOwned(t, addr)
	t.Cleanup(s.close)
	return s
}

// muxHelloOwned is muxHello for a caller that closes the session itself.
func muxHelloOwned(t testing.TB, addr string) *muxSession {
	t.Helper()
	m := dialMuxOwned(t, addr)
	hello := frame(&protocol.Hello{MinVersion: 1, MaxVersion: 1, Software: "rawmux"})
	id, err := m.open(append([]byte{byte(protocol.KindControl)}, hello...))
	if err != nil {
		t.Fatal(err)
	}
	s := &muxSession{rawMux: m, ctl: id, fr: protocol.NewFrameReader(streamReader{m, id})}
	if msg := s.next(); msg == nil || msg.Type() != protocol.TypeWelcome {
		t.Fatalf("answer to hello: %v, want welcome", msg)
	}
	return s
}

// next reads the next control message; nil when the connection ended.
func (s *muxSession) next() protocol.Message {
	h, p, err := s.fr.Next()
	if err != nil {
		return nil
	}
	msg, err := protocol.Decode(h.Type, p)
	if err != nil {
		s.t.Fatalf("decoding %v from the server: %v", h.Type, err)
	}
	return msg
}

// goodbye reads control messages until a Goodbye and returns it, or nil if
// the connection ended without one.
func (s *muxSession) goodbye() *protocol.Goodbye {
	for {
		msg := s.next()
		if msg == nil {
			return nil
		}
		if g, ok := msg.(*protocol.Goodbye); ok {
			return g
		}
	}
}

// ----- measurements -----

// heapInUse returns the live heap after two collections.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// totalAlloc returns the bytes allocated since the process started.
func totalAlloc() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.TotalAlloc
}

// openFDs returns how many file descriptors the process has open.
func openFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("counting file descriptors: %v", err)
	}
	return len(ents)
}

// settle waits until f() is at most want (a goroutine count or the like
// that falls as the server finishes tearing sessions down), and returns
// the last value.
func settle(t testing.TB, what string, want int, f func() int) int {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		n := f()
		if n <= want || time.Now().After(deadline) {
			return n
		}
		time.Sleep(20 * time.Millisecond) // polling a count the runtime publishes
	}
}

// serverGoroutines counts the goroutines running relay or yamux code on
// the server side (those of yamux sessions started by yamux.Server). It
// tells the server's goroutines from the test's own.
func serverGoroutines() int {
	buf := make([]byte, 8<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "parley/relay.(*session)") || strings.Contains(g, "parley/relay.(*Server).handle") {
			n++
		}
	}
	return n
}

// rtts measures n Ping round trips of a client and returns them sorted.
func rtts(t testing.TB, c *client, n int) []time.Duration {
	t.Helper()
	out := make([]time.Duration, 0, n)
	for range n {
		ctx, cancel := contextWithTimeout(5 * time.Second)
		d, err := c.conn.Ping(ctx)
		cancel()
		if err != nil {
			t.Fatalf("witness ping: %v", err)
		}
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[min(len(d)-1, len(d)*p/100)]
}

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
