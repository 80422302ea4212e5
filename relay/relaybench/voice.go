// Package relaybench measures a relay the way docs/performance.md reports
// it, for the relay's tests and for parley-load: voice delay while the same
// connection carries video over a slow link, against a naive relay in the
// same run.
package relaybench

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/parleychat/parley/protocol"
	"github.com/parleychat/parley/relay"
	"github.com/parleychat/parley/relay/relaytest"
)

// TraceFrame is one frame of a recorded VP8 stream.
type TraceFrame struct {
	Size int
	Key  bool
}

// LoadTrace reads a frame-size trace (testdata/README.md): one frame per
// line, its size, then "k" for a keyframe; # starts a comment.
func LoadTrace(path string) ([]TraceFrame, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []TraceFrame
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		var tf TraceFrame
		var k string
		if _, err := fmt.Sscanf(line, "%d %s", &tf.Size, &k); err != nil && tf.Size == 0 {
			return nil, fmt.Errorf("%s: bad line %q", path, line)
		}
		tf.Key = k == "k"
		out = append(out, tf)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no frames", path)
	}
	return out, sc.Err()
}

// Config configures a voice-under-video run.
type Config struct {
	Trace    []TraceFrame  // the video's frame sizes, looped, at 30 fps
	LinkKbps int           // the receiver's downlink (default 2500)
	Duration time.Duration // how long to send (default 20 s)
}

// Sample is one voice frame's trip, sender to receiver.
type Sample struct {
	Sent time.Time
	Lag  time.Duration
}

// Case is what a run measures.
type Case int

// Cases.
const (
	Idle    Case = iota // parley, voice only: the floor
	Naive               // one TCP stream per client, whole frames, first in first out
	Unpaced             // parley with its pacer off
	Parley              // parley as it runs
)

func (c Case) String() string {
	return [...]string{"idle link, voice only (parley)", "naive relay: one stream, whole frames, FIFO", "parley, pacer off", "parley"}[c]
}

// VoiceUnderVideo runs one case and returns every voice frame's trip.
func VoiceUnderVideo(ctx context.Context, c Case, cfg Config) ([]Sample, error) {
	if cfg.LinkKbps == 0 {
		cfg.LinkKbps = 2500
	}
	if cfg.Duration == 0 {
		cfg.Duration = 20 * time.Second
	}
	switch c {
	case Idle:
		return runParley(ctx, cfg, false, false)
	case Naive:
		return runNaive(ctx, cfg)
	case Unpaced:
		return runParley(ctx, cfg, true, true)
	}
	return runParley(ctx, cfg, true, false)
}

// Percentiles returns the p50 and p99 of the lags, leaving out the samples
// sent in the first warmup.
func Percentiles(s []Sample, warmup time.Duration) (p50, p99 time.Duration) {
	lags := Lags(s, warmup)
	if len(lags) == 0 {
		return 0, 0
	}
	return lags[len(lags)/2], lags[len(lags)*99/100]
}

// Lags returns the lags of the samples after warmup, sorted.
func Lags(s []Sample, warmup time.Duration) []time.Duration {
	if len(s) == 0 {
		return nil
	}
	start := s[0].Sent
	var lags []time.Duration
	for _, v := range s {
		if v.Sent.Sub(start) >= warmup {
			lags = append(lags, v.Lag)
		}
	}
	slices.Sort(lags)
	return lags
}

// voiceData is a voice payload of the size of 32 kbit/s Opus.
var voiceData = make([]byte, 80)

// sendLoop calls voice every 20 ms and video (if set) for each frame of the
// trace at 30 fps, for d, from two goroutines.
func sendLoop(d time.Duration, trace []TraceFrame, voice func(seq uint32) error, video func(n int, f TraceFrame) error) error {
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	loop := func(every time.Duration, step func(i int) error) {
		defer wg.Done()
		tick := time.NewTicker(every)
		defer tick.Stop()
		deadline := time.Now().Add(d)
		for i := 0; time.Now().Before(deadline); i++ {
			if err := step(i); err != nil {
				errs <- err
				return
			}
			<-tick.C
		}
	}
	wg.Add(1)
	go loop(20*time.Millisecond, func(i int) error { return voice(uint32(i)) })
	if video != nil {
		wg.Add(1)
		go loop(time.Second/30, func(i int) error { return video(i, trace[i%len(trace)]) })
	}
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

// runParley measures voice through this relay, video on or off.
func runParley(ctx context.Context, cfg Config, video, unpaced bool) ([]Sample, error) {
	srv, err := relay.New(relay.Config{DisablePacing: unpaced, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go srv.Serve(ln)
	inv, _ := protocol.ParseInvite(srv.Invite(ln.Addr().String(), "bench"))
	link, err := relaytest.NewLink(ln.Addr().String())
	if err != nil {
		return nil, err
	}
	defer link.Close()
	if err := link.LimitBandwidth(relaytest.Downstream, cfg.LinkKbps); err != nil {
		return nil, err
	}
	var mu sync.Mutex
	var samples []Sample
	rcfg := protocol.DialConfig{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, link.Addr)
		},
		OnVoice: func(v *protocol.Voice) {
			now := time.Now()
			sent := time.UnixMicro(v.Captured)
			mu.Lock()
			samples = append(samples, Sample{sent, now.Sub(sent)})
			mu.Unlock()
		},
		OnVideo: func(*protocol.VideoFragment) {},
	}
	jctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	rcv, err := protocol.Dial(jctx, inv, &rcfg)
	if err != nil {
		return nil, err
	}
	defer rcv.Close()
	if _, err := rcv.Join(jctx, &protocol.Join{Room: "bench", Name: "listener"}); err != nil {
		return nil, err
	}
	snd, err := protocol.Dial(jctx, inv, nil)
	if err != nil {
		return nil, err
	}
	defer snd.Close()
	if _, err := snd.Join(jctx, &protocol.Join{Room: "bench", Name: "speaker"}); err != nil {
		return nil, err
	}
	data := make([]byte, protocol.MaxVideoFrameBytes)
	var videoFn func(int, TraceFrame) error
	if video {
		videoFn = func(n int, f TraceFrame) error {
			return snd.SendVideoFrame(&protocol.VideoFrame{FrameSeq: uint32(n), Captured: time.Now().UnixMicro(),
				Codec: protocol.CodecVP8, Keyframe: f.Key, Data: data[:f.Size]})
		}
	}
	err = sendLoop(cfg.Duration, cfg.Trace, func(seq uint32) error {
		return snd.Send(&protocol.Voice{Seq: seq, Captured: time.Now().UnixMicro(), Codec: protocol.CodecOpus, Data: voiceData})
	}, videoFn)
	if err != nil {
		return nil, err
	}
	mu.Lock()
	defer mu.Unlock()
	return slices.Clone(samples), nil
}

// runNaive measures voice through a naive relay: every message whole, in
// one TCP stream per client, forwarded first in, first out by a goroutine
// per receiver. Messages are a type byte (1 voice, 2 video), a 4-byte
// length, the sender's clock (8 bytes) and the payload.
func runNaive(ctx context.Context, cfg Config) ([]Sample, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer ln.Close()
	var relayWG sync.WaitGroup
	var mu sync.Mutex
	var receivers []chan []byte
	conns := make(chan net.Conn, 2)
	relayWG.Add(1)
	go func() { // accept the receiver, then the sender
		defer relayWG.Done()
		for i := 0; i < 2; i++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if i == 0 {
				conns <- c
				q := make(chan []byte, 4096)
				mu.Lock()
				receivers = append(receivers, q)
				mu.Unlock()
				relayWG.Add(1)
				go func() {
					defer relayWG.Done()
					defer c.Close() // after the last message: the receiver reads to the end
					for m := range q {
						if _, err := c.Write(m); err != nil {
							return
						}
					}
				}()
				continue
			}
			relayWG.Add(1)
			go func() { // read the sender, queue for everyone
				defer relayWG.Done()
				defer c.Close()
				defer func() {
					mu.Lock()
					for _, q := range receivers {
						close(q)
					}
					mu.Unlock()
				}()
				r := bufio.NewReader(c)
				hdr := make([]byte, 5)
				for {
					if _, err := io.ReadFull(r, hdr); err != nil {
						return
					}
					m := make([]byte, 5+binary.BigEndian.Uint32(hdr[1:]))
					copy(m, hdr)
					if _, err := io.ReadFull(r, m[5:]); err != nil {
						return
					}
					mu.Lock()
					for _, q := range receivers {
						q <- m
					}
					mu.Unlock()
				}
			}()
		}
	}()
	link, err := relaytest.NewLink(ln.Addr().String())
	if err != nil {
		return nil, err
	}
	defer link.Close()
	if err := link.LimitBandwidth(relaytest.Downstream, cfg.LinkKbps); err != nil {
		return nil, err
	}
	rc, err := net.Dial("tcp", link.Addr)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	<-conns // the relay has the receiver
	var samples []Sample
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		r := bufio.NewReader(rc)
		hdr := make([]byte, 5)
		buf := make([]byte, protocol.MaxVideoFrameBytes)
		for {
			if _, err := io.ReadFull(r, hdr); err != nil {
				return
			}
			n := binary.BigEndian.Uint32(hdr[1:])
			if _, err := io.ReadFull(r, buf[:n]); err != nil {
				return
			}
			if hdr[0] == 1 {
				sent := time.UnixMicro(int64(binary.BigEndian.Uint64(buf)))
				samples = append(samples, Sample{sent, time.Since(sent)})
			}
		}
	}()
	sc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return nil, err
	}
	var wmu sync.Mutex
	send := func(typ byte, n int) error {
		m := make([]byte, 5+8+n)
		m[0] = typ
		binary.BigEndian.PutUint32(m[1:], uint32(8+n))
		binary.BigEndian.PutUint64(m[5:], uint64(time.Now().UnixMicro()))
		wmu.Lock()
		defer wmu.Unlock()
		_, err := sc.Write(m)
		return err
	}
	err = sendLoop(cfg.Duration, cfg.Trace, func(uint32) error { return send(1, len(voiceData)) },
		func(_ int, f TraceFrame) error { return send(2, f.Size) })
	if err != nil {
		return nil, err
	}
	sc.Close() // the relay closes the receiver's queue when the sender is gone
	<-readDone
	ln.Close()
	relayWG.Wait()
	return samples, nil
}
