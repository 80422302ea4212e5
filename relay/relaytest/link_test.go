package relaytest

import (
	"io"
	"net"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

// sent is how much each end of a connection writes in TestLinkEndsItsChains;
// each end is closed once it has read read of it, the rest still on the
// way.
const sent, read = 128 << 10, 32 << 10

// writeSome writes sent bytes to c and returns.
func writeSome(c net.Conn) {
	buf := make([]byte, 4096)
	for range sent / len(buf) {
		if _, err := c.Write(buf); err != nil {
			return
		}
	}
}

// streamer is an upstream that writes sent bytes to every connection and
// reads from it until it ends.
type streamer struct {
	ln      net.Listener
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   []net.Conn
	readAll sync.WaitGroup // each connection has read read bytes
}

func newStreamer(t *testing.T, conns int) *streamer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &streamer{ln: ln}
	s.readAll.Add(conns)
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.wg.Go(func() {
				_, err := io.ReadFull(c, make([]byte, read))
				s.readAll.Done()
				if err == nil {
					io.Copy(io.Discard, c)
				}
			})
			s.wg.Go(func() { writeSome(c) })
		}
	})
	return s
}

// closeConns closes the upstream ends, as a relay does when it drops a
// client.
func (s *streamer) closeConns() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.Close()
	}
}

func (s *streamer) close() {
	s.ln.Close()
	s.closeConns()
	s.wg.Wait()
}

// TestLinkEndsItsChains closes connections through a shaped link while
// data is on its way in both directions, from the client's end and from
// upstream's, and checks that Close leaves no goroutine behind. toxiproxy
// by itself leaves the toxics of a direction whose destination closed first
// blocked for good.
func TestLinkEndsItsChains(t *testing.T) {
	const conns = 10
	for _, tc := range []struct {
		name      string
		clientEnd bool // the client closes; else upstream does
	}{
		{"client closes", true},
		{"upstream closes", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer goleak.VerifyNone(t)
			up := newStreamer(t, conns)
			defer up.close()
			link, err := NewLink(up.ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			for _, dir := range []Direction{Upstream, Downstream} {
				if err := link.AddToxic("latency-"+string(dir), "latency", dir, map[string]any{"latency": 20, "jitter": 10}); err != nil {
					t.Fatal(err)
				}
			}
			if err := link.AddToxic("slicer", "slicer", Downstream, map[string]any{"average_size": 64, "size_variation": 32, "delay": 10}); err != nil {
				t.Fatal(err)
			}
			if err := link.LimitBandwidth(Upstream, 800); err != nil { // 100 KB/s
				t.Fatal(err)
			}
			var clients sync.WaitGroup
			var cs []net.Conn
			for range conns {
				c, err := net.Dial("tcp", link.Addr)
				if err != nil {
					t.Fatal(err)
				}
				cs = append(cs, c)
				clients.Go(func() { writeSome(c) })
				clients.Go(func() {
					if _, err := io.ReadFull(c, make([]byte, read)); err != nil {
						t.Error(err)
					}
					if tc.clientEnd {
						c.Close()
					}
				})
			}
			clients.Wait()
			if !tc.clientEnd {
				up.readAll.Wait()
				up.closeConns()
			}
			if err := link.Close(); err != nil {
				t.Fatal(err)
			}
			for _, c := range cs {
				c.Close()
			}
		})
	}
}
