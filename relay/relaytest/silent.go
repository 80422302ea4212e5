package relaytest

import (
	"net"
	"sync"
)

// SilentLink forwards TCP connections from Addr to an upstream address,
// and can be partitioned: then it drops everything in both directions and
// passes no close either way, as a pulled cable or a dead route does, so
// that neither end learns anything until its own timeouts say so. (The
// timeout toxic of toxiproxy drops data but passes a close on.) When the
// partition heals, an end that closed meanwhile has its close passed on.
type SilentLink struct {
	Addr string
	ln   net.Listener
	up   string

	mu     sync.Mutex // guards the fields below
	cut    bool
	healed *sync.Cond
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// NewSilentLink starts a link to upstream on a free loopback port.
func NewSilentLink(upstream string) (*SilentLink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	l := &SilentLink{Addr: ln.Addr().String(), ln: ln, up: upstream, conns: make(map[net.Conn]struct{})}
	l.healed = sync.NewCond(&l.mu)
	l.wg.Add(1)
	go l.accept()
	return l, nil
}

// Partition starts dropping everything.
func (l *SilentLink) Partition() {
	l.mu.Lock()
	l.cut = true
	l.mu.Unlock()
}

// Heal forwards again.
func (l *SilentLink) Heal() {
	l.mu.Lock()
	l.cut = false
	l.healed.Broadcast()
	l.mu.Unlock()
}

// Close stops the link and closes its connections.
func (l *SilentLink) Close() {
	l.ln.Close()
	l.mu.Lock()
	l.closed, l.cut = true, false
	for c := range l.conns {
		c.Close()
	}
	l.healed.Broadcast()
	l.mu.Unlock()
	l.wg.Wait()
}

func (l *SilentLink) accept() {
	defer l.wg.Done()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", l.up)
		if err != nil {
			c.Close()
			continue
		}
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			c.Close()
			u.Close()
			return
		}
		l.conns[c], l.conns[u] = struct{}{}, struct{}{}
		l.mu.Unlock()
		l.wg.Add(2)
		go l.pump(c, u)
		go l.pump(u, c)
	}
}

// pump copies src to dst, dropping what it reads while the link is cut.
// An end of src is passed on as a close of dst at once when the link is
// not cut. When it is, it is held until the link heals, and then passed on
// only as TCP would: when dst next sends, which the closed end answers
// with a reset (the reverse pump's write fails and it closes both).
func (l *SilentLink) pump(src, dst net.Conn) {
	defer l.wg.Done()
	buf := make([]byte, 32<<10)
	cutAtEnd := false
	for {
		n, err := src.Read(buf)
		l.mu.Lock()
		cut := l.cut
		l.mu.Unlock()
		if n > 0 && !cut {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				err = werr
			}
		}
		if err != nil {
			cutAtEnd = cut
			break
		}
	}
	l.mu.Lock()
	for l.cut {
		l.healed.Wait()
	}
	l.mu.Unlock()
	if cutAtEnd {
		// The end came during the partition: src is gone, but dst learns
		// of it only from its next write.
		if tc, ok := src.(*net.TCPConn); ok {
			tc.CloseRead()
		}
		src.Close()
		return
	}
	l.mu.Lock()
	delete(l.conns, src)
	delete(l.conns, dst)
	l.mu.Unlock()
	src.Close()
	dst.Close()
}
