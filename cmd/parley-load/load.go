package main

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/parleychat/parley/protocol"
)

// loadConfig says what load to put on a server.
type loadConfig struct {
	Server        string        // "parley" (spawned), "nats", "nats-tls", "raw", or "invite" (a running parleyd)
	Invite        string        // with Server "invite"
	ServerPID     int           // with Server "invite": to measure its CPU and memory (0: not measured)
	Clients       int           // members in all
	Rooms         int           // rooms, clients spread evenly over them
	Speakers      int           // speakers per room, each sending a voice frame every 20 ms
	VoiceBytes    int           // voice payload per frame
	VideoSenders  int           // members sending video, one per room in the first rooms
	VideoBitrate  int           // bits per second each
	TextPerSecond float64       // chat messages per second, from random members
	Duration      time.Duration // measured time
	Warmup        time.Duration // load before measuring
	Idle          bool          // connect and join only: measure memory per connection
	Progress      io.Writer     // a line a second while it runs; nil: quiet
}

// loadResult is what a run measured, after its warm-up.
type loadResult struct {
	Server        string        `json:"server"`
	Clients       int           `json:"clients"`
	Rooms         int           `json:"rooms"`
	Seconds       float64       `json:"seconds"`
	VoiceSent     uint64        `json:"voice_sent"`
	VoiceGot      uint64        `json:"voice_delivered"`
	VoicePerSec   float64       `json:"voice_delivered_per_s"`
	VideoGot      uint64        `json:"video_fragments_delivered"`
	TextGot       uint64        `json:"text_delivered"`
	P50           time.Duration `json:"voice_delay_p50_ns"`
	P99           time.Duration `json:"voice_delay_p99_ns"`
	P999          time.Duration `json:"voice_delay_p999_ns"`
	ServerCPU     time.Duration `json:"server_cpu_ns"`
	ServerCores   float64       `json:"server_cores"`
	ClientCores   float64       `json:"client_cores"` // this process: the simulated clients
	PerCPUSecond  float64       `json:"delivered_per_server_cpu_s"`
	PeakRSS       uint64        `json:"server_peak_rss"`
	HeapPerConn   float64       `json:"server_heap_per_conn"`
	GoroutinesPer float64       `json:"server_goroutines_per_conn"`
	Drops         dropCounts    `json:"drops"`
	ConnectTime   time.Duration `json:"connect_time_ns"`
	hist          *histogram
}

// dropCounts are the relay's drops by reason during the measurement.
type dropCounts struct {
	VoiceLate      uint64 `json:"voice_late"`
	VideoCongested uint64 `json:"video_congested"`
	VideoWaitKey   uint64 `json:"video_wait_keyframe"`
	InOverCap      uint64 `json:"in_over_cap"`
	InNotInRoom    uint64 `json:"in_not_in_room"`
}

// stamp puts the send time into the first 8 bytes of a payload.
func stamp(b []byte) { binary.BigEndian.PutUint64(b, uint64(time.Now().UnixNano())) }

func stampAge(b []byte) time.Duration {
	return time.Since(time.Unix(0, int64(binary.BigEndian.Uint64(b))))
}

// runLoad runs one load and measures it.
func runLoad(ctx context.Context, cfg loadConfig) (*loadResult, error) {
	res := &loadResult{Server: cfg.Server, Clients: cfg.Clients, Rooms: cfg.Rooms, hist: newHistogram()}
	var srv *child
	pid := cfg.ServerPID
	target := cfg.Invite
	if cfg.Server != "invite" {
		var err error
		if srv, err = startChild(ctx, cfg.Server); err != nil {
			return nil, err
		}
		defer srv.stop()
		pid = srv.hello.PID
		target = srv.hello.Invite
		if target == "" {
			target = srv.hello.Addr
		}
	}
	var base serverStats
	if srv != nil {
		base, _ = srv.stats()
	}
	var eng engine
	switch cfg.Server {
	case "nats", "nats-tls":
		eng = &natsEngine{tls: cfg.Server == "nats-tls"}
	case "raw":
		eng = &rawEngine{}
	default:
		eng = &parleyEngine{}
	}
	start := time.Now()
	if err := eng.connect(ctx, cfg, target, res); err != nil {
		eng.close()
		return nil, err
	}
	res.ConnectTime = time.Since(start)
	defer eng.close()
	progress(cfg, "%d clients connected in %v", cfg.Clients, res.ConnectTime.Round(time.Millisecond))

	if cfg.Idle {
		if srv == nil {
			return res, nil
		}
		st, err := srv.stats()
		if err != nil {
			return nil, err
		}
		res.HeapPerConn = float64(int64(st.HeapAlloc)-int64(base.HeapAlloc)) / float64(cfg.Clients)
		res.GoroutinesPer = float64(st.Goroutines-base.Goroutines) / float64(cfg.Clients)
		if ps, err := srv.proc(); err == nil {
			res.PeakRSS = ps.PeakRSS
		}
		return res, nil
	}

	lctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	eng.start(lctx, &wg, cfg)
	sleep(ctx, cfg.Warmup)
	eng.measure(true)
	var cpu0, self0 time.Duration
	if ps, err := readProc(os.Getpid()); err == nil {
		self0 = ps.CPU
	}
	if pid != 0 {
		if ps, err := readProc(pid); err == nil {
			cpu0 = ps.CPU
		}
	}
	var st0 serverStats
	if srv != nil {
		st0, _ = srv.stats()
	}
	t0 := time.Now()
	for left := cfg.Duration; left > 0; left -= time.Second {
		sleep(ctx, min(left, time.Second))
		if cfg.Progress != nil {
			sent, got := eng.counts()
			progress(cfg, "%5.1fs  voice sent %d delivered %d  p99 %s", time.Since(t0).Seconds(), sent, got, fmtDur(res.hist.percentile(99)))
		}
	}
	elapsed := time.Since(t0)
	eng.measure(false)
	if ps, err := readProc(os.Getpid()); err == nil {
		res.ClientCores = (ps.CPU - self0).Seconds() / elapsed.Seconds()
	}
	if pid != 0 {
		if ps, err := readProc(pid); err == nil {
			res.ServerCPU = ps.CPU - cpu0
			res.PeakRSS = ps.PeakRSS
		}
	}
	if srv != nil {
		if st1, err := srv.stats(); err == nil {
			m0, m1 := st0.Media, st1.Media
			res.Drops = dropCounts{VoiceLate: m1.VoiceLate - m0.VoiceLate, VideoCongested: m1.VideoCongested - m0.VideoCongested,
				VideoWaitKey: m1.VideoWaitKey - m0.VideoWaitKey, InOverCap: m1.InOverCap - m0.InOverCap, InNotInRoom: m1.InNotInRoom - m0.InNotInRoom}
		}
	}
	cancel()
	wg.Wait()
	res.Seconds = elapsed.Seconds()
	res.VoiceSent, res.VoiceGot = eng.counts()
	res.VideoGot, res.TextGot = eng.otherCounts()
	res.VoicePerSec = float64(res.VoiceGot) / res.Seconds
	res.P50, res.P99, res.P999 = res.hist.percentile(50), res.hist.percentile(99), res.hist.percentile(99.9)
	if res.ServerCPU > 0 {
		res.ServerCores = res.ServerCPU.Seconds() / res.Seconds
		res.PerCPUSecond = float64(res.VoiceGot) / res.ServerCPU.Seconds()
	}
	return res, nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func progress(cfg loadConfig, format string, args ...any) {
	if cfg.Progress != nil {
		fmt.Fprintf(cfg.Progress, format+"\n", args...)
	}
}

// engine is one kind of client.
type engine interface {
	connect(ctx context.Context, cfg loadConfig, target string, res *loadResult) error
	start(ctx context.Context, wg *sync.WaitGroup, cfg loadConfig)
	measure(on bool) // count and time only between measure(true) and measure(false)
	counts() (voiceSent, voiceGot uint64)
	otherCounts() (video, text uint64)
	close()
}

// meter counts what is sent and delivered while measuring.
type meter struct {
	on                  atomic.Bool
	sent, got, vid, txt atomic.Uint64
	hist                *histogram
}

func (m *meter) measure(on bool) { m.on.Store(on) }
func (m *meter) counts() (uint64, uint64) {
	return m.sent.Load(), m.got.Load()
}
func (m *meter) otherCounts() (uint64, uint64) { return m.vid.Load(), m.txt.Load() }

func (m *meter) delivered(age time.Duration) {
	if m.on.Load() {
		m.got.Add(1)
		m.hist.add(age)
	}
}

// connectAll runs connect for clients 0..n-1, at most 64 at a time.
func connectAll(ctx context.Context, n int, connect func(i int) error) error {
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	var firstErr error
	var mu sync.Mutex
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := connect(i); err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = fmt.Errorf("client %d: %w", i, err)
				}
				mu.Unlock()
			}
		}()
		if ctx.Err() != nil {
			break
		}
	}
	wg.Wait()
	return firstErr
}

// spread gives the k-th of n periodic senders its phase in a period d:
// evenly apart, as the clocks of independent microphones and cameras are.
// Started together, every sender would tick at the same instant, and the
// relay would see bursts of all of them at once that no real call has.
func spread(k, n int, d time.Duration) time.Duration {
	if n <= 1 {
		return 0
	}
	return d * time.Duration(k%n) / time.Duration(n)
}

// every calls f every d until ctx is done, starting at the given phase
// (0 ≤ phase < d) of the period.
func every(ctx context.Context, wg *sync.WaitGroup, d, phase time.Duration, f func()) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		if phase > 0 {
			select {
			case <-time.After(phase):
			case <-ctx.Done():
				return
			}
		}
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				f()
			case <-ctx.Done():
				return
			}
		}
	}()
}

// ----- Parley -----

type parleyEngine struct {
	meter
	conns   []*protocol.Conn
	rooms   []int // room of each client
	shutMu  sync.Mutex
	invite  protocol.Invite
	texters []int
}

func (e *parleyEngine) connect(ctx context.Context, cfg loadConfig, target string, res *loadResult) error {
	e.hist = res.hist
	inv, err := protocol.ParseInvite(target)
	if err != nil {
		return err
	}
	e.invite = inv
	e.conns = make([]*protocol.Conn, cfg.Clients)
	e.rooms = make([]int, cfg.Clients)
	cache := tls.NewLRUClientSessionCache(64)
	return connectAll(ctx, cfg.Clients, func(i int) error {
		room := i % cfg.Rooms
		e.rooms[i] = room
		dc := &protocol.DialConfig{Software: "parley-load", SessionCache: cache, Timeout: 60 * time.Second}
		if !cfg.Idle {
			dc.OnVoice = func(v *protocol.Voice) { e.delivered(time.Since(time.UnixMicro(v.Captured))) }
			dc.OnVideo = func(f *protocol.VideoFragment) {
				if e.on.Load() {
					e.vid.Add(1)
				}
			}
		}
		c, err := protocol.Dial(ctx, inv, dc)
		if err != nil {
			return err
		}
		e.shutMu.Lock()
		e.conns[i] = c
		e.shutMu.Unlock()
		jctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		if _, err := c.Join(jctx, &protocol.Join{Room: "load-" + strconv.Itoa(room), Name: "c" + strconv.Itoa(i)}); err != nil {
			return err
		}
		if !cfg.Idle {
			go e.drain(c) // control and text messages: counted, not kept
		}
		return nil
	})
}

// drain reads a client's control and text messages.
func (e *parleyEngine) drain(c *protocol.Conn) {
	for {
		m, err := c.Receive(context.Background())
		if err != nil {
			return
		}
		if _, ok := m.(*protocol.Chat); ok && e.on.Load() {
			e.txt.Add(1)
		}
	}
}

func (e *parleyEngine) start(ctx context.Context, wg *sync.WaitGroup, cfg loadConfig) {
	perRoom := make(map[int][]int)
	for i, r := range e.rooms {
		perRoom[r] = append(perRoom[r], i)
	}
	voice := make([]byte, max(cfg.VoiceBytes, 1))
	for r := range cfg.Rooms {
		members := perRoom[r]
		for s := 0; s < cfg.Speakers && s < len(members); s++ {
			c := e.conns[members[s]]
			var seq atomic.Uint32
			every(ctx, wg, 20*time.Millisecond, spread(r*cfg.Speakers+s, cfg.Rooms*cfg.Speakers, 20*time.Millisecond), func() {
				v := protocol.Voice{Seq: seq.Add(1), Captured: time.Now().UnixMicro(), Codec: protocol.CodecOpus, Level: 40, Data: voice}
				if c.Send(&v) == nil && e.on.Load() {
					e.sent.Add(1)
				}
			})
		}
		if r < cfg.VideoSenders && len(members) > cfg.Speakers {
			c := e.conns[members[cfg.Speakers]]
			frames := videoFrames(cfg.VideoBitrate)
			var n atomic.Uint32
			every(ctx, wg, time.Second/30, spread(r, cfg.VideoSenders, time.Second/30), func() {
				i := n.Add(1) - 1
				f := frames[int(i)%len(frames)]
				c.SendVideoFrame(&protocol.VideoFrame{FrameSeq: i, Captured: time.Now().UnixMicro(), Codec: protocol.CodecVP8,
					Keyframe: f.key, Data: f.data})
			})
		}
	}
	if cfg.TextPerSecond > 0 {
		every(ctx, wg, time.Duration(float64(time.Second)/cfg.TextPerSecond), 0, func() {
			i := int(time.Now().UnixNano()) % len(e.conns)
			if i < 0 {
				i = -i
			}
			e.conns[i].Send(&protocol.SendChat{ClientID: uint64(time.Now().UnixNano()) | 1, Text: "load test message"})
		})
	}
}

func (e *parleyEngine) close() {
	e.shutMu.Lock()
	conns := e.conns
	e.shutMu.Unlock()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 256)
	for _, c := range conns {
		if c == nil {
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			c.Abort()
			<-sem
		})
	}
	wg.Wait()
}

// frame is one synthetic video frame.
type frame struct {
	data []byte
	key  bool
}

// videoFrames returns 2 s of 30 fps video at bps: a keyframe eight times a
// delta frame, then 59 deltas (the shape of a VP8 stream with a keyframe
// every 2 s).
func videoFrames(bps int) []frame {
	delta := bps / 8 * 2 / (59 + 8)
	out := make([]frame, 60)
	for i := range out {
		n := delta
		if i == 0 {
			n *= 8
		}
		out[i] = frame{data: make([]byte, max(n, 1)), key: i == 0}
	}
	return out
}

// ----- NATS: the same fan-out with an embedded nats-server and nats.go -----

type natsEngine struct {
	meter
	tls   bool
	conns []*nats.Conn
	rooms []int
	mu    sync.Mutex
}

func (e *natsEngine) connect(ctx context.Context, cfg loadConfig, addr string, res *loadResult) error {
	e.hist = res.hist
	e.conns = make([]*nats.Conn, cfg.Clients)
	e.rooms = make([]int, cfg.Clients)
	url := "nats://" + addr
	opts := []nats.Option{nats.NoEcho(), nats.Timeout(60 * time.Second)}
	if e.tls {
		url = "tls://" + addr
		opts = append(opts, nats.Secure(&tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}))
	}
	return connectAll(ctx, cfg.Clients, func(i int) error {
		room := i % cfg.Rooms
		e.rooms[i] = room
		nc, err := nats.Connect(url, opts...)
		if err != nil {
			return err
		}
		e.mu.Lock()
		e.conns[i] = nc
		e.mu.Unlock()
		_, err = nc.Subscribe("room."+strconv.Itoa(room), func(m *nats.Msg) {
			if len(m.Data) >= 8 {
				e.delivered(stampAge(m.Data))
			}
		})
		if err != nil {
			return err
		}
		return nc.Flush()
	})
}

func (e *natsEngine) start(ctx context.Context, wg *sync.WaitGroup, cfg loadConfig) {
	perRoom := make(map[int][]int)
	for i, r := range e.rooms {
		perRoom[r] = append(perRoom[r], i)
	}
	for r := range cfg.Rooms {
		members := perRoom[r]
		subject := "room." + strconv.Itoa(r)
		for s := 0; s < cfg.Speakers && s < len(members); s++ {
			nc := e.conns[members[s]]
			buf := make([]byte, max(cfg.VoiceBytes, 8))
			every(ctx, wg, 20*time.Millisecond, spread(r*cfg.Speakers+s, cfg.Rooms*cfg.Speakers, 20*time.Millisecond), func() {
				stamp(buf)
				if nc.Publish(subject, buf) == nil && e.on.Load() {
					e.sent.Add(1)
				}
			})
		}
	}
}

func (e *natsEngine) close() {
	for _, nc := range e.conns {
		if nc != nil {
			nc.Close()
		}
	}
}

// ----- raw TCP: the ceiling -----

type rawEngine struct {
	meter
	conns []net.Conn
	rooms []int
	mu    sync.Mutex
}

func (e *rawEngine) connect(ctx context.Context, cfg loadConfig, addr string, res *loadResult) error {
	e.hist = res.hist
	e.conns = make([]net.Conn, cfg.Clients)
	e.rooms = make([]int, cfg.Clients)
	return connectAll(ctx, cfg.Clients, func(i int) error {
		room := i % cfg.Rooms
		e.rooms[i] = room
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		e.mu.Lock()
		e.conns[i] = c
		e.mu.Unlock()
		var hdr [2]byte
		binary.BigEndian.PutUint16(hdr[:], uint16(room))
		if _, err := c.Write(hdr[:]); err != nil {
			return err
		}
		go func() {
			buf := make([]byte, rawFrame)
			for {
				if _, err := io.ReadFull(c, buf); err != nil {
					return
				}
				e.delivered(stampAge(buf))
			}
		}()
		return nil
	})
}

func (e *rawEngine) start(ctx context.Context, wg *sync.WaitGroup, cfg loadConfig) {
	perRoom := make(map[int][]int)
	for i, r := range e.rooms {
		perRoom[r] = append(perRoom[r], i)
	}
	for r := range cfg.Rooms {
		members := perRoom[r]
		for s := 0; s < cfg.Speakers && s < len(members); s++ {
			c := e.conns[members[s]]
			buf := make([]byte, rawFrame)
			every(ctx, wg, 20*time.Millisecond, spread(r*cfg.Speakers+s, cfg.Rooms*cfg.Speakers, 20*time.Millisecond), func() {
				stamp(buf)
				if _, err := c.Write(buf); err == nil && e.on.Load() {
					e.sent.Add(1)
				}
			})
		}
	}
}

func (e *rawEngine) close() {
	for _, c := range e.conns {
		if c != nil {
			c.Close()
		}
	}
}
