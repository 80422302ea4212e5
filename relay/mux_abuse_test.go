package relay

import (
	"bytes"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/protocol"
)

// pingThrough sends a Parley Ping on the control stream and waits for the
// Pong. The server reads a connection's yamux frames in order, so the Pong
// says that everything the client wrote before the Ping has been read off
// the socket by the server.
func (s *muxSession) pingThrough(nonce uint64) bool {
	if err := s.send(s.ctl, frame(&protocol.Ping{Nonce: nonce})); err != nil {
		return false
	}
	for {
		msg := s.next()
		if msg == nil {
			return false
		}
		if p, ok := msg.(*protocol.Pong); ok && p.Nonce == nonce {
			return true
		}
	}
}

// windowOf returns about one yamux window (256 KiB less a frame) of valid
// frames of a stream kind, kind byte first, that a relay accepts from a
// session that is not in a room: chat it refuses with an error, media it
// drops, file chunks it skips.
func windowOf(kind protocol.StreamKind) []byte {
	b := []byte{byte(kind)}
	for {
		var m protocol.Message
		switch kind {
		case protocol.KindText:
			m = &protocol.SendChat{ClientID: uint64(len(b)), Text: strings.Repeat("w", 16<<10)}
		case protocol.KindVoice:
			m = &protocol.Voice{Seq: uint32(len(b)), Codec: protocol.CodecOpus, Data: make([]byte, 4000)}
		case protocol.KindVideo:
			m = &protocol.VideoFragment{FrameSeq: uint32(len(b)), Codec: protocol.CodecVP8, Count: 1, Data: make([]byte, 60000)}
		default:
			f := append(protocol.AppendHeader(nil, protocol.Header{Type: 0x70, Length: 60000}), make([]byte, 60000)...)
			if len(b)+len(f) > ymWindow0 {
				return b
			}
			b = append(b, f...)
			continue
		}
		f := frame(m)
		if len(b)+len(f) > ymWindow0 {
			return b
		}
		b = append(b, f...)
	}
}

// TestWindowPinning fills every stream a client may open with a full yamux
// window, in the two ways a client could arrange for the relay not to read
// them, from many sessions at once. The relay must read (or refuse) what
// it gets, so that it holds little per session, and close the offenders.
func TestWindowPinning(t *testing.T) {
	const sessions = 20
	kinds := []protocol.StreamKind{protocol.KindText, protocol.KindVoice, protocol.KindVideo, protocol.KindFile}
	windows := make(map[protocol.StreamKind][]byte)
	for _, k := range kinds {
		windows[k] = windowOf(k)
	}
	for _, tc := range []struct {
		name string
		// attack opens streams and fills their windows; it returns the
		// bytes it sent.
		attack func(s *muxSession) int
		// closedBy is the reason the relay counts for the offenders.
		closedBy string
	}{
		{
			// A stream whose kind byte does not come first: a relay that
			// read kind bytes in turn in its accept loop would leave the
			// other streams unread behind it until the 5 s deadline.
			// Then two more such streams, for the most a client may
			// open (8, control included).
			name: "behind streams without a kind byte",
			attack: func(s *muxSession) int {
				s.open(nil)
				sent := 0
				for _, k := range kinds {
					w := windows[k]
					id, err := s.open(w[:16<<10])
					if err != nil || s.send(id, w[16<<10:]) != nil {
						return sent
					}
					sent += len(w)
				}
				s.open(nil)
				s.open(nil)
				return sent
			},
			closedBy: "handshake timeout", // the kind bytes never come
		},
		{
			// The client half-closes each stream after its kind byte,
			// which a relay that merely stopped reading at the end of a
			// stream would take quietly, then sends a window on it
			// anyway. (yamux buffers data after a FIN.)
			name: "after the client's FIN",
			attack: func(s *muxSession) int {
				var ids []uint32
				for _, k := range kinds {
					id, err := s.open([]byte{byte(k)})
					if err != nil || s.fin(id) != nil {
						return 0
					}
					ids = append(ids, id)
				}
				if !s.pingThrough(99) {
					return 0 // already cut for the FIN
				}
				sent := 0
				for i, id := range ids {
					if s.send(id, windows[kinds[i]][1:]) != nil {
						return sent
					}
					sent += len(windows[kinds[i]])
				}
				return sent
			},
			closedBy: "bad stream",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, Config{})
			witness := dial(t, ts)
			witness.join("lobby", "w")
			before := rtts(t, witness, 20)
			baseG := serverGoroutines()
			base := heapInUse()

			var wg sync.WaitGroup
			muxes := make([]*muxSession, sessions)
			sent := make([]int, sessions)
			for i := range muxes {
				muxes[i] = muxHello(t, ts.addr)
			}
			start := time.Now()
			for i, s := range muxes {
				wg.Add(1)
				go func() {
					defer wg.Done()
					s.stopCrediting()
					sent[i] = tc.attack(s)
				}()
			}
			wg.Wait()
			// Each Pong says the server has read everything that
			// session sent before it.
			alive := 0
			for i, s := range muxes {
				if s.pingThrough(uint64(i + 1)) {
					alive++
				}
			}
			readAt := time.Now()
			peak := heapInUse()
			// The relay lets go of drained receive buffers once a second:
			// what it holds a moment later is what an idle offender costs.
			held := peak
			for time.Since(readAt) < 2500*time.Millisecond && (int64(held)-int64(base))/sessions > sessionHeldBudget {
				time.Sleep(50 * time.Millisecond) // polling the heap, which the relay shrinks on its own schedule
				held = heapInUse()
			}
			heldAfter := time.Since(readAt)
			during := rtts(t, witness, 20)
			total := 0
			for _, n := range sent {
				total += n
			}
			perSession := (int64(held) - int64(base)) / sessions
			peakPerSession := (int64(peak) - int64(base)) / sessions

			closed := 0
			for _, s := range muxes {
				if s.waitClosed(10 * time.Second) {
					closed++
				}
			}
			tookClose := time.Since(start)
			waitFor(t, "the offenders' sessions to end", func() bool { return ts.Stats().Sessions == 1 })
			g := settle(t, "server goroutines", baseG, serverGoroutines)
			after := heapInUse()
			t.Logf("%d sessions sent %d KiB each on streams the relay could have left unread; %d still open once it was all read off the socket",
				sessions, total/sessions>>10, alive)
			t.Logf("heap per session (test clients included): +%d KiB once read off the socket, +%d KiB %v later; %+d KiB after they ended; server goroutines %d before, %d after",
				peakPerSession>>10, perSession>>10, heldAfter.Round(10*time.Millisecond), (int64(after)-int64(base))/sessions>>10, baseG, g)
			t.Logf("%d of %d offenders closed within %v: %v", closed, sessions, tookClose.Round(time.Millisecond), ts.Stats().Closes)
			t.Logf("witness ping p50/p95 %v/%v before, %v/%v during", pct(before, 50), pct(before, 95), pct(during, 50), pct(during, 95))
			if peakPerSession > sessionPeakBudget {
				t.Errorf("heap grew by %d KiB per session while the offenders' data was read, over the budget of %d KiB", peakPerSession>>10, sessionPeakBudget>>10)
			}
			if alive > 0 && perSession > sessionHeldBudget {
				t.Errorf("heap is %d KiB per open offender %v after its data was read, over the budget of %d KiB", perSession>>10, heldAfter, sessionHeldBudget>>10)
			}
			if closed != sessions || ts.Stats().Closes[tc.closedBy] != sessions {
				t.Errorf("%d of %d offenders were closed, counted %v, want all for %s", closed, sessions, ts.Stats().Closes, tc.closedBy)
			}
			if g > baseG {
				t.Errorf("%d server goroutines after the offenders ended, %d before", g, baseG)
			}
			if grown := int64(after) - int64(base); grown > 2<<20 {
				t.Errorf("the heap is %d KiB larger after the offenders ended", grown>>10)
			}
			stillServing(t, ts)
		})
	}
}

// Per-session budgets of what a client can make the relay hold of what it
// sent (docs/reliability.md): at most twice a 256 KiB window on each of the
// five streams while it keeps them full, and once the relay has read it,
// the frame buffers and little else. The measurements include the test's
// own client of each session.
const (
	sessionPeakBudget = 5 * 2 * ymWindow0
	sessionHeldBudget = 256 << 10
)

// join joins a room on the control stream and waits for Joined.
func (s *muxSession) join(room, name string) *protocol.Joined {
	s.t.Helper()
	if err := s.send(s.ctl, frame(&protocol.Join{Room: room, Name: name})); err != nil {
		s.t.Fatalf("sending join: %v", err)
	}
	for {
		msg := s.next()
		if msg == nil {
			s.t.Fatalf("%s: connection closed before Joined", name)
		}
		switch m := msg.(type) {
		case *protocol.Joined:
			return m
		case *protocol.Error:
			s.t.Fatalf("%s: join refused: %v", name, m)
		}
	}
}

// goroutinesRunning counts goroutines whose stack mentions fn.
func goroutinesRunning(fn string) int {
	buf := make([]byte, 16<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), fn)
}

// witnessPings measures the witness's Ping round trip until stop is
// closed, and returns the samples sorted.
func witnessPings(t *testing.T, c *client, stop <-chan struct{}) []time.Duration {
	var out []time.Duration
	for {
		select {
		case <-stop:
			sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
			return out
		default:
		}
		out = append(out, rtts(t, c, 1)...)
	}
}

// latencyUnchanged checks a witness's ping round trips during an attack
// against those before it, in the same run: the median may be at most
// three times as long, or 5 ms longer, on this shared machine.
func latencyUnchanged(t *testing.T, before, during []time.Duration) {
	t.Helper()
	b, d := pct(before, 50), pct(during, 50)
	t.Logf("witness ping p50/p95: %v/%v before, %v/%v during (%d samples)", b, pct(before, 95), d, pct(during, 95), len(during))
	if d > 3*b && d > b+5*time.Millisecond {
		t.Errorf("the witness's median round trip went from %v to %v during the attack", b, d)
	}
}

// TestStreamFlood opens ten thousand streams without writing on them, then
// ten thousand more that are reset as soon as they are opened, from many
// sessions at once: first with the default limits (the open rate cuts
// each session after 16), then with the open rate lifted, so that the caps
// on streams open at once and opened in a session's life have to hold by
// themselves. Memory per session stays
// within budget and a witness's round trip does not change.
func TestStreamFlood(t *testing.T) {
	const perSession, workers = 10000, 2
	for _, tc := range []struct {
		name string
		cfg  Config
		// Without the open rate the relay still caps the streams and
		// memory, but tens of thousands of SYNs a second cost CPU that
		// others notice: that is what the rate is for.
		checkLatency bool
	}{
		{"default limits", Config{}, true},
		{"no open rate", Config{StreamOpens: 1e9, StreamOpenBurst: 1 << 30}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, tc.cfg)
			witness := dial(t, ts)
			witness.join("lobby", "w")
			before := rtts(t, witness, 50)
			baseG := serverGoroutines()
			base := heapInUse()
			for _, reset := range []bool{false, true} {
				var mu sync.Mutex
				var opened, sessions int
				var peak uint64
				stop := make(chan struct{})
				pings := make(chan []time.Duration)
				go func() { pings <- witnessPings(t, witness, stop) }()
				var wg sync.WaitGroup
				for range workers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						// Each worker floods sessions until together they
						// have opened ten thousand streams.
						for {
							mu.Lock()
							done := opened >= perSession
							mu.Unlock()
							if done {
								return
							}
							s := muxHelloOwned(t, ts.addr)
							n := 0
							for ; n < perSession; n++ {
								id, err := s.open(nil)
								if err == nil && reset {
									err = s.rst(id)
								}
								if err != nil {
									break
								}
							}
							if !s.waitClosed(10 * time.Second) {
								t.Errorf("a session that opened %d streams was not closed", n)
							}
							s.close()
							mu.Lock()
							opened += n
							sessions++
							if sessions%workers == 0 {
								peak = max(peak, heapInUse())
							}
							mu.Unlock()
						}
					}()
				}
				wg.Wait()
				close(stop)
				during := <-pings
				waitFor(t, "the flooding sessions to end", func() bool { st := ts.Stats(); return st.Sessions == 1 && st.Pending == 0 })
				g := settle(t, "server goroutines", baseG, serverGoroutines)
				after := heapInUse()
				t.Logf("reset=%v: %d sessions sent %d SYNs (%d each on average) before the relay closed them: %v",
					reset, sessions, opened, opened/max(sessions, 1), ts.Stats().Closes)
				t.Logf("heap: %+d KiB per flooding session at the peak (%d at once, test clients included), %+d KiB after; server goroutines %d before, %d after",
					(int64(peak)-int64(base))/workers>>10, workers, (int64(after)-int64(base))>>10, baseG, g)
				if tc.checkLatency {
					latencyUnchanged(t, before, during)
				} else {
					t.Logf("witness ping p50/p95 %v/%v during (not checked)", pct(during, 50), pct(during, 95))
				}
				if per := (int64(peak) - int64(base)) / workers; per > sessionPeakBudget {
					t.Errorf("%d KiB per flooding session, over the budget of %d KiB", per>>10, sessionPeakBudget>>10)
				}
				if g > baseG {
					t.Errorf("%d server goroutines after the flood, %d before", g, baseG)
				}
				if int64(after)-int64(base) > 4<<20 {
					t.Errorf("the heap is %d KiB larger after the flood", (int64(after)-int64(base))>>10)
				}
				closes := ts.Stats().Closes
				if closes["stream rate"]+closes["too many streams"]+closes["bad stream"] == 0 {
					t.Errorf("no session was closed by a stream limit: %v", closes)
				}
			}
			stillServing(t, ts)
		})
	}
}

// TestOpenResetChurn opens streams, sends on them and resets them in a
// tight loop, from a member of a room whose first message was stored. The
// relay closes the session at once — for the reset, the open rate or the
// streams open at once, whichever it sees first — and nothing partial or
// duplicated reaches the room: the one stored message once, none of the resent copies, nothing of
// the half-sent one.
func TestOpenResetChurn(t *testing.T) {
	ts := startServer(t, Config{})
	witness := dial(t, ts)
	witness.join("lobby", "w")
	whole := frame(&protocol.SendChat{ClientID: 7, Text: "churn"})
	partial := frame(&protocol.SendChat{ClientID: 8, Text: "partial message, never whole"})
	partial = partial[:len(partial)/2]
	for _, withData := range []bool{true, false} {
		s := muxHello(t, ts.addr)
		s.join("lobby", fmt.Sprint("churner-", withData))
		if withData {
			// The message is stored and acked once, on a first text
			// stream; the churn then resends it on new ones.
			id, err := s.open(append([]byte{byte(protocol.KindText)}, whole...))
			if err != nil {
				t.Fatal(err)
			}
			fr := protocol.NewFrameReader(streamReader{s.rawMux, id})
			for {
				h, p, err := fr.Next()
				if err != nil {
					t.Fatalf("reading the ack: %v", err)
				}
				if m, _ := protocol.Decode(h.Type, p); m != nil && m.Type() == protocol.TypeAck {
					break
				}
			}
		}
		n := 0
		start := time.Now()
		for ; n < 10000; n++ {
			var id uint32
			var err error
			if withData {
				id, err = s.open(append(append([]byte{byte(protocol.KindText)}, whole...), partial...))
			} else {
				id, err = s.open(nil)
			}
			if err == nil {
				err = s.rst(id)
			}
			if err != nil {
				break
			}
		}
		if !s.waitClosed(10 * time.Second) {
			t.Fatalf("a session that opened and reset %d streams was not closed", n)
		}
		t.Logf("data=%v: %d streams opened and reset before the write failed; closed after %v",
			withData, n, time.Since(start).Round(time.Millisecond))
		s.close()
	}
	// Cut for the open rate, for a reset stream, or for more streams
	// open at once than allowed (the relay may see the opens before the
	// resets): whichever the relay saw first.
	waitFor(t, "both churners' closes to be counted", func() bool {
		c := ts.Stats().Closes
		return c["stream rate"]+c["bad stream"]+c["too many streams"] == 2
	})
	t.Logf("closes: %v", ts.Stats().Closes)
	// The witness hears its own marker after whatever the churner got
	// into the room.
	witness.say("", "marker")
	got := 0
	for {
		m := expect[*protocol.Chat](witness, append(rosterNoise, protocol.TypeAck)...)
		if m.Text == "marker" {
			break
		}
		if m.Text != "churn" {
			t.Fatalf("the room got %q from the churner", m.Text)
		}
		got++
	}
	if got != 1 {
		t.Fatalf("the room got the churner's message %d times, want once", got)
	}
	stillServing(t, ts)
}

// TestPingFlood floods pings without reading the answers: yamux pings,
// for each of which yamux starts a goroutine to answer, and Parley Pings,
// whose Pongs queue up for a client that does not take them, once from a
// client that reads its connection but grants no window for the answers
// and once from one that does not read at all. Goroutines and memory stay
// bounded and the session is closed.
func TestPingFlood(t *testing.T) {
	ts := startServer(t, Config{WriteTimeout: 2 * time.Second})
	baseG := serverGoroutines()
	for _, tc := range []struct {
		name, closedBy string
		reason         CloseReason
		readsConn      bool
		flood          func(s *muxSession) int
	}{
		{"yamux pings", "stream rate", CloseStreamRate, true, func(s *muxSession) int {
			n := 0
			for ; n < 10000; n++ {
				if s.frame(ymPing, ymSYN, 0, uint32(n), nil) != nil {
					break
				}
			}
			return n
		}},
		{"Parley pings, answers not credited", "slow consumer", CloseQueueFull, true, floodParleyPings},
		{"Parley pings, connection not read", "slow consumer", CloseWriteTimeout, false, floodParleyPings},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := muxHello(t, ts.addr)
			s.stopCrediting()
			if !tc.readsConn {
				s.pauseReading()
			}
			base := heapInUse()
			g0 := runtime.NumGoroutine()
			peakG := g0
			stop, sampled := make(chan struct{}), make(chan struct{})
			go func() {
				defer close(sampled)
				tick := time.NewTicker(time.Millisecond) // sampling interval
				defer tick.Stop()
				for {
					peakG = max(peakG, runtime.NumGoroutine())
					select {
					case <-stop:
						return
					case <-tick.C:
					}
				}
			}()
			before := ts.Stats().Closes[tc.closedBy]
			start := time.Now()
			n := tc.flood(s)
			peak := heapInUse()
			waitFor(t, "the relay to close the flooder", func() bool { return ts.Stats().Closes[tc.closedBy] > before })
			took := time.Since(start)
			close(stop)
			<-sampled
			// Its connection is gone too: after what was buffered, the
			// client reads the end.
			s.resumeReading()
			closed := s.waitClosed(10 * time.Second)
			t.Logf("%d pings sent; closed after %v (%v); goroutines %d before, at most %d during; heap %+d KiB at the end of the flood",
				n, took.Round(time.Millisecond), ts.Stats().Closes, g0, peakG, (int64(peak)-int64(base))>>10)
			if !closed {
				t.Fatal("the flooder's connection stayed open")
			}
			if ts.Stats().CloseReasons[tc.reason] == 0 {
				t.Errorf("close reasons %v, want %v", ts.Stats().CloseReasons, tc.reason)
			}
			if peakG > g0+32 {
				t.Errorf("goroutines went from %d to %d during the flood", g0, peakG)
			}
			if grown := int64(peak) - int64(base); grown > sessionPeakBudget {
				t.Errorf("the flood grew the heap by %d KiB, over the per-session budget of %d KiB", grown>>10, sessionPeakBudget>>10)
			}
		})
	}
	if g := settle(t, "server goroutines", baseG, serverGoroutines); g > baseG {
		t.Errorf("%d server goroutines after the floods, %d before", g, baseG)
	}
	t.Logf("closes: %v", ts.Stats().Closes)
	stillServing(t, ts)
}

// floodParleyPings sends Parley Pings on the control stream as fast as the
// stream's window lets it, for at most 5 s.
func floodParleyPings(s *muxSession) int {
	ping := frame(&protocol.Ping{Nonce: 1})
	batch := bytes.Repeat(ping, (16<<10)/len(ping))
	n := 0
	for start := time.Now(); time.Since(start) < 5*time.Second; n += len(batch) / len(ping) {
		if s.send(s.ctl, batch) != nil {
			break
		}
	}
	return n
}
