package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"sync"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/parleychat/parley/relay"
)

// The servers a measurement runs against live in a child process — this
// program started again with the hidden "serve" command — so that their CPU
// time and memory are measured apart from the clients'. The child prints
// one JSON line (serverHello) when it is ready, answers each "stats" line
// on its standard input with a serverStats line, and shuts down when its
// input ends.

// serverHello is the child's first line.
type serverHello struct {
	Addr   string `json:"addr"`
	Invite string `json:"invite,omitempty"` // parley
	PID    int    `json:"pid"`
}

// serverStats is the child's answer to "stats".
type serverStats struct {
	HeapAlloc  uint64            `json:"heap_alloc"` // after a GC
	HeapInuse  uint64            `json:"heap_inuse"`
	Sys        uint64            `json:"sys"`
	Goroutines int               `json:"goroutines"`
	Sessions   int               `json:"sessions"`
	Media      relay.MediaStats  `json:"media"`
	Closes     map[string]uint64 `json:"closes,omitempty"`
}

// serveMain is "parley-load serve --kind parley|nats|nats-tls|raw".
func serveMain(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	kind := fs.String("kind", "parley", "parley, nats, nats-tls or raw")
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var hello serverHello
	var stats func() serverStats
	var stop func()
	switch *kind {
	case "parley":
		srv, err := relay.New(relay.Config{
			Logger:    slog.New(slog.DiscardHandler),
			TextBurst: 1000, TextPerMinute: 60000, // the load decides the text rate
			MaxPendingHandshakes: 20000,
			StreamOpenBurst:      64,
		})
		if err != nil {
			return err
		}
		ln, err := net.Listen("tcp", *listen)
		if err != nil {
			return err
		}
		go srv.Serve(ln)
		hello = serverHello{Addr: ln.Addr().String(), Invite: srv.Invite(ln.Addr().String(), "lobby")}
		stats = func() serverStats {
			st := srv.Stats()
			return serverStats{Sessions: st.Sessions, Media: st.Media, Closes: st.Closes}
		}
		stop = func() { srv.Close() }
	case "nats", "nats-tls":
		opts := &natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
			MaxPayload: 1 << 20, MaxPending: 64 << 20, WriteDeadline: 10 * time.Second}
		if *kind == "nats-tls" {
			cert, err := relay.NewIdentity()
			if err != nil {
				return err
			}
			opts.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}
			opts.TLS = true
		}
		ns, err := natsserver.NewServer(opts)
		if err != nil {
			return err
		}
		go ns.Start()
		if !ns.ReadyForConnections(10 * time.Second) {
			return fmt.Errorf("nats server not ready")
		}
		hello = serverHello{Addr: ns.Addr().String()}
		stats = func() serverStats { return serverStats{Sessions: ns.NumClients()} }
		stop = ns.Shutdown
	case "raw":
		ln, err := net.Listen("tcp", *listen)
		if err != nil {
			return err
		}
		rs := newRawServer()
		go rs.serve(ln)
		hello = serverHello{Addr: ln.Addr().String()}
		stats = func() serverStats { return serverStats{Sessions: rs.clients()} }
		stop = func() { ln.Close(); rs.close() }
	default:
		return fmt.Errorf("unknown server kind %q", *kind)
	}
	if path := os.Getenv("PARLEY_LOAD_CPUPROFILE"); path != "" {
		// For profiling the server under load: go tool pprof path.
		if f, err := os.Create(path); err == nil {
			pprof.StartCPUProfile(f)
			defer func() { pprof.StopCPUProfile(); f.Close() }()
		}
	}
	hello.PID = os.Getpid()
	out := json.NewEncoder(os.Stdout)
	out.Encode(hello)
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		if in.Text() != "stats" {
			continue
		}
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		if path := os.Getenv("PARLEY_LOAD_HEAPPROFILE"); path != "" {
			if f, err := os.Create(path); err == nil {
				pprof.WriteHeapProfile(f)
				f.Close()
			}
		}
		st := stats()
		st.HeapAlloc, st.HeapInuse, st.Sys, st.Goroutines = ms.HeapAlloc, ms.HeapInuse, ms.Sys, runtime.NumGoroutine()
		out.Encode(st)
	}
	stop()
	return nil
}

// rawServer is the ceiling for fan-out: no encryption, no framing, no
// queues. Each client sends a 2-byte room number, then fixed-size frames;
// each frame is written, as it is read, to every other client of the room
// with one write each.
type rawServer struct {
	mu    sync.Mutex
	rooms map[uint16]map[net.Conn]struct{}
	all   map[net.Conn]struct{}
}

// rawFrame is the size of a frame on the raw server.
const rawFrame = 100

func newRawServer() *rawServer {
	return &rawServer{rooms: make(map[uint16]map[net.Conn]struct{}), all: make(map[net.Conn]struct{})}
}

func (s *rawServer) serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go s.handle(c)
	}
}

func (s *rawServer) handle(c net.Conn) {
	defer c.Close()
	var hdr [2]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return
	}
	room := binary.BigEndian.Uint16(hdr[:])
	s.mu.Lock()
	if s.rooms[room] == nil {
		s.rooms[room] = make(map[net.Conn]struct{})
	}
	s.rooms[room][c] = struct{}{}
	s.all[c] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.rooms[room], c)
		delete(s.all, c)
		s.mu.Unlock()
	}()
	buf := make([]byte, rawFrame)
	var peers []net.Conn
	for {
		if _, err := io.ReadFull(c, buf); err != nil {
			return
		}
		peers = peers[:0]
		s.mu.Lock()
		for p := range s.rooms[room] {
			if p != c {
				peers = append(peers, p)
			}
		}
		s.mu.Unlock()
		for _, p := range peers {
			p.Write(buf)
		}
	}
}

func (s *rawServer) clients() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.all)
}

func (s *rawServer) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.all {
		c.Close()
	}
}

// child is a server running in a child process.
type child struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	out   *bufio.Scanner
	hello serverHello
	mu    sync.Mutex
}

// startChild starts "parley-load serve --kind kind".
func startChild(ctx context.Context, kind string) (*child, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, self, "serve", "--kind", kind)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd, in: in, out: bufio.NewScanner(outPipe)}
	c.out.Buffer(make([]byte, 1<<20), 1<<20)
	if !c.out.Scan() {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("the %s server did not start", kind)
	}
	if err := json.Unmarshal(c.out.Bytes(), &c.hello); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("the %s server said %q: %w", kind, c.out.Text(), err)
	}
	return c, nil
}

// stats asks the child for its counters.
func (c *child) stats() (serverStats, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var st serverStats
	if _, err := io.WriteString(c.in, "stats\n"); err != nil {
		return st, err
	}
	if !c.out.Scan() {
		return st, fmt.Errorf("the server went away")
	}
	return st, json.Unmarshal(c.out.Bytes(), &st)
}

// proc reads the child's CPU time and memory.
func (c *child) proc() (procStat, error) { return readProc(c.hello.PID) }

// stop shuts the child down and waits for it.
func (c *child) stop() {
	c.in.Close()
	done := make(chan struct{})
	go func() { c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		c.cmd.Process.Kill()
		<-done
	}
}
