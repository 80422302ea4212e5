package relay

import (
	"bufio"
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/protocol"
	"github.com/parleychat/parley/relay/relaytest"
)

var (
	voiceBench     = flag.Bool("voicebench", false, "run TestVoiceUnderVideo, the measurement for docs/performance.md")
	voiceBenchRuns = flag.Int("voicebench-runs", 3, "runs of each case in TestVoiceUnderVideo")
	voiceBenchFor  = flag.Duration("voicebench-time", 20*time.Second, "length of each run of TestVoiceUnderVideo")
	voiceBenchOut  = flag.String("voicebench-out", "", "also write TestVoiceUnderVideo's table to this file")
)

// traceFrame is one frame of a recorded VP8 stream.
type traceFrame struct {
	size int
	key  bool
}

// loadTrace reads the frame sizes media/vpx records (testdata/README.md).
func loadTrace(t *testing.T) []traceFrame {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "testdata", "vp8-640x360-1500k.trace"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []traceFrame
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		var tf traceFrame
		var k string
		fmt.Sscanf(line, "%d %s", &tf.size, &k)
		tf.key = k == "k"
		out = append(out, tf)
	}
	return out
}

// benchLink is the receiver's downlink in the measurement.
const benchLinkKbps = 2500

// voiceSample is one voice frame's trip, sender to receiver.
type voiceSample struct {
	sent time.Time
	lag  time.Duration
}

// TestVoiceUnderVideo measures how long voice takes from sender to
// receiver while the same connection carries 1.5 Mbit/s of video (the
// frame sizes of our VP8 encoder on a natural clip, a keyframe every 10 s)
// and the receiver's link carries 2.5 Mbit/s. It compares, in one run:
//
//   - naive: a relay that forwards whole frames on one TCP stream per
//     client, first in first out (what the original design did);
//   - parley, unpaced: this relay with its pacer off: voice goes first and
//     video in 4 KiB fragments, but the link's buffer fills;
//   - parley: this relay as it runs.
//
// and the same voice on the idle link as a floor. It is a measurement, not
// a test of a target: run it with -voicebench (make bench does).
func TestVoiceUnderVideo(t *testing.T) {
	if !*voiceBench {
		t.Skip("a measurement: run with -voicebench (make bench does)")
	}
	trace := loadTrace(t)
	cases := []struct {
		name string
		run  func(t *testing.T, video bool) []voiceSample
	}{
		{"idle link, voice only (parley)", func(t *testing.T, _ bool) []voiceSample { return runParley(t, trace, false, false) }},
		{"naive relay: one stream, whole frames, FIFO", func(t *testing.T, _ bool) []voiceSample { return runNaive(t, trace) }},
		{"parley, pacer off", func(t *testing.T, _ bool) []voiceSample { return runParley(t, trace, true, true) }},
		{"parley", func(t *testing.T, _ bool) []voiceSample { return runParley(t, trace, true, false) }},
	}
	p50s := make([][]time.Duration, len(cases))
	p99s := make([][]time.Duration, len(cases))
	for run := range *voiceBenchRuns {
		for i, c := range cases {
			samples := c.run(t, true)
			p50, p99 := percentiles(samples, *voiceBenchFor/10)
			t.Logf("run %d, %s: %d voice frames, p50 %v, p99 %v", run+1, c.name, len(samples), p50, p99)
			p50s[i] = append(p50s[i], p50)
			p99s[i] = append(p99s[i], p99)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "| case | voice delay p50 | voice delay p99 | naive p99 ÷ this p99 |\n|---|---|---|---|\n")
	naive99 := median(p99s[1])
	for i, c := range cases {
		p50, p99 := median(p50s[i]), median(p99s[i])
		ratio := fmt.Sprintf("%.1f", float64(naive99)/float64(max(p99, time.Microsecond)))
		if i == 1 {
			ratio = "—"
		}
		fmt.Fprintf(&b, "| %s | %v | %v | %s |\n", c.name, p50.Round(100*time.Microsecond), p99.Round(100*time.Microsecond), ratio)
	}
	fmt.Fprintf(&b, "\nMedians of %d runs of %v each (the first tenth of each run left out as warm-up); the receiver's downlink is %d kbit/s (toxiproxy bandwidth toxic).\n",
		*voiceBenchRuns, *voiceBenchFor, benchLinkKbps)
	t.Log("\n" + b.String())
	if *voiceBenchOut != "" {
		if err := os.WriteFile(*voiceBenchOut, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func percentiles(s []voiceSample, warmup time.Duration) (p50, p99 time.Duration) {
	if len(s) == 0 {
		return 0, 0
	}
	start := s[0].sent
	var lags []time.Duration
	for _, v := range s {
		if v.sent.Sub(start) >= warmup {
			lags = append(lags, v.lag)
		}
	}
	slices.Sort(lags)
	return lags[len(lags)/2], lags[len(lags)*99/100]
}

func median(d []time.Duration) time.Duration {
	d = slices.Clone(d)
	slices.Sort(d)
	return d[len(d)/2]
}

// voiceData is a voice payload of the size of 32 kbit/s Opus.
var voiceData = make([]byte, 80)

// sendLoop calls voice every 20 ms and video (if set) for each frame of the
// trace at 30 fps, for d, from two goroutines.
func sendLoop(d time.Duration, trace []traceFrame, voice func(seq uint32) error, video func(n int, f traceFrame) error) error {
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
func runParley(t *testing.T, trace []traceFrame, video, unpaced bool) []voiceSample {
	ts := startServer(t, Config{DisablePacing: unpaced})
	defer ts.stop(t)
	link, err := relaytest.NewLink(ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer link.Close()
	if err := link.LimitBandwidth(relaytest.Downstream, benchLinkKbps); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var samples []voiceSample
	rcfg := protocol.DialConfig{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, link.Addr)
		},
		OnVoice: func(v *protocol.Voice) {
			now := time.Now()
			sent := time.UnixMicro(v.Captured)
			mu.Lock()
			samples = append(samples, voiceSample{sent, now.Sub(sent)})
			mu.Unlock()
		},
		OnVideo: func(*protocol.VideoFragment) {},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rcv, err := protocol.Dial(ctx, ts.invite("bench"), &rcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer rcv.Close()
	if _, err := rcv.Join(ctx, &protocol.Join{Room: "bench", Name: "listener"}); err != nil {
		t.Fatal(err)
	}
	snd, err := protocol.Dial(ctx, ts.invite("bench"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer snd.Close()
	if _, err := snd.Join(ctx, &protocol.Join{Room: "bench", Name: "speaker"}); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, protocol.MaxVideoFrameBytes)
	var videoFn func(int, traceFrame) error
	if video {
		videoFn = func(n int, f traceFrame) error {
			return snd.SendVideoFrame(&protocol.VideoFrame{FrameSeq: uint32(n), Captured: time.Now().UnixMicro(),
				Codec: protocol.CodecVP8, Keyframe: f.key, Data: data[:f.size]})
		}
	}
	err = sendLoop(*voiceBenchFor, trace, func(seq uint32) error {
		return snd.Send(&protocol.Voice{Seq: seq, Captured: time.Now().UnixMicro(), Codec: protocol.CodecOpus, Data: voiceData})
	}, videoFn)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	return slices.Clone(samples)
}

// runNaive measures voice through a naive relay: every message whole, in
// one TCP stream per client, forwarded first in, first out by a goroutine
// per receiver. Messages are a type byte (1 voice, 2 video), a 4-byte
// length, the sender's clock (8 bytes) and the payload.
func runNaive(t *testing.T, trace []traceFrame) []voiceSample {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
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
		t.Fatal(err)
	}
	defer link.Close()
	if err := link.LimitBandwidth(relaytest.Downstream, benchLinkKbps); err != nil {
		t.Fatal(err)
	}
	rc, err := net.Dial("tcp", link.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	<-conns // the relay has the receiver
	var samples []voiceSample
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
				samples = append(samples, voiceSample{sent, time.Since(sent)})
			}
		}
	}()
	sc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
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
	err = sendLoop(*voiceBenchFor, trace, func(uint32) error { return send(1, len(voiceData)) },
		func(_ int, f traceFrame) error { return send(2, f.size) })
	if err != nil {
		t.Fatal(err)
	}
	sc.Close() // the relay closes the receiver's queue when the sender is gone
	<-readDone
	ln.Close()
	relayWG.Wait()
	return samples
}
