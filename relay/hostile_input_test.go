package relay

import (
	"crypto/tls"

	"net"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/protocol"
)

// oversized is a frame header on a stream kind whose declared length is
// over the cap of its type.
type oversized struct {
	kind   protocol.StreamKind
	typ    protocol.Type
	length uint32
}

// oversizedHeaders lists, for every stream kind, a header one byte over
// its type's cap and one declaring 4 GiB.
func oversizedHeaders() []oversized {
	var out []oversized
	for _, c := range []struct {
		kind protocol.StreamKind
		typ  protocol.Type
	}{
		{protocol.KindControl, protocol.TypeJoin},
		{protocol.KindControl, 0x90}, // an extension type: capped at 64 KiB
		{protocol.KindText, protocol.TypeSendChat},
		{protocol.KindVoice, protocol.TypeVoice},
		{protocol.KindVideo, protocol.TypeVideoFragment},
		{protocol.KindFile, 0x70},
	} {
		out = append(out, oversized{c.kind, c.typ, protocol.MaxPayload(c.typ) + 1}, oversized{c.kind, c.typ, 1<<32 - 1})
	}
	return out
}

// sendOversized says hello and sends the header on its stream; it returns
// the time the header went out.
func sendOversized(t testing.TB, addr string, o oversized) (*muxSession, uint32, time.Time) {
	s := muxHelloOwned(t, addr)
	hdr := protocol.AppendHeader(nil, protocol.Header{Type: o.typ, Length: o.length})
	id := s.ctl
	var err error
	if o.kind == protocol.KindControl {
		err = s.send(s.ctl, hdr)
	} else {
		id, err = s.open(append([]byte{byte(o.kind)}, hdr...))
	}
	if err != nil {
		t.Fatalf("sending an oversized header: %v", err)
	}
	return s, id, time.Now()
}

// TestOversizedLengthOnEveryStream declares a payload over its cap on
// every stream kind. The relay refuses it as soon as it has read the
// header: with a payload dribbled at one byte a second, the Goodbye comes
// before the second byte; and it never allocates the declared size: 64
// rounds of 50 sessions at once declaring 4 GiB allocate a few hundred KiB
// per session (the TLS and yamux session itself), and the heap is the same
// afterwards.
func TestOversizedLengthOnEveryStream(t *testing.T) {
	ts := startServer(t, Config{})
	t.Run("then one byte a second", func(t *testing.T) {
		var wg sync.WaitGroup
		for _, o := range oversizedHeaders() {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, id, sent := sendOversized(t, ts.addr, o)
				stop := make(chan struct{})
				dribbled := make(chan struct{})
				go func() {
					defer close(dribbled)
					tick := time.NewTicker(time.Second)
					defer tick.Stop()
					for {
						select {
						case <-stop:
							return
						case <-tick.C:
							if s.send(id, []byte{'x'}) != nil {
								return
							}
						}
					}
				}()
				g := s.goodbye()
				took := time.Since(sent)
				close(stop)
				<-dribbled
				s.close()
				switch {
				case g == nil:
					t.Errorf("%v on the %v stream declaring %d bytes: no Goodbye", o.typ, o.kind, o.length)
				case g.Code != protocol.CodeFrameTooLarge:
					t.Errorf("%v on the %v stream declaring %d bytes: Goodbye %v (%s), want %v", o.typ, o.kind, o.length, g.Code, g.Message, protocol.CodeFrameTooLarge)
				case took >= time.Second:
					t.Errorf("%v on the %v stream declaring %d bytes: refused after %v, want before the next byte", o.typ, o.kind, o.length, took)
				default:
					t.Logf("%v on the %v stream declaring %d bytes: refused %v after the header: %s", o.typ, o.kind, o.length, took.Round(time.Microsecond), g.Message)
				}
			}()
		}
		wg.Wait()
	})
	t.Run("64 rounds of 50 sessions", func(t *testing.T) {
		const rounds, sessions = 64, 50
		headers := oversizedHeaders()
		base := heapInUse()
		alloc0 := totalAlloc()
		var peak uint64
		for r := range rounds {
			var wg sync.WaitGroup
			for i := range sessions {
				wg.Add(1)
				go func() {
					defer wg.Done()
					o := headers[(r*sessions+i)%len(headers)]
					o.length = 1<<32 - 1
					s, _, _ := sendOversized(t, ts.addr, o)
					if g := s.goodbye(); g == nil || g.Code != protocol.CodeFrameTooLarge {
						t.Errorf("round %d: %v on the %v stream: Goodbye %v, want %v", r, o.typ, o.kind, g, protocol.CodeFrameTooLarge)
					}
					s.close()
				}()
			}
			wg.Wait()
			if r%16 == 15 {
				peak = max(peak, heapInUse())
			}
		}
		waitFor(t, "the sessions to end", func() bool { st := ts.Stats(); return st.Sessions == 0 && st.Pending == 0 })
		after := heapInUse()
		perSession := (totalAlloc() - alloc0) / (rounds * sessions)
		t.Logf("%d sessions declared 4 GiB: %d KiB allocated per session (test clients included); heap %d KiB before, %d KiB at most between rounds, %d KiB after; %v",
			rounds*sessions, perSession>>10, base>>10, peak>>10, after>>10, ts.Stats().Closes)
		if perSession > 1<<20 {
			t.Errorf("%d KiB allocated per session: the relay allocates for what a header declares", perSession>>10)
		}
		if int64(after)-int64(base) > 2<<20 {
			t.Errorf("the heap grew from %d KiB to %d KiB", base>>10, after>>10)
		}
		if n := ts.Stats().Closes["frame too large"]; n < rounds*sessions {
			t.Errorf("%d closes for frame too large, want %d", n, rounds*sessions)
		}
	})
	stillServing(t, ts)
}

// TestMalformedInput sends malformed headers and payloads, and frames cut
// short by the end of their stream, on every stream kind. Each ends the
// session with its code and a Goodbye; nothing panics; no goroutine of the
// sessions is left.
func TestMalformedInput(t *testing.T) {
	ts := startServer(t, Config{})
	baseG := serverGoroutines()
	hdr := func(typ protocol.Type, flags uint8, n int) []byte {
		return protocol.AppendHeader(nil, protocol.Header{Type: typ, Flags: flags, Length: uint32(n)})
	}
	raw := func(typ protocol.Type, payload ...byte) []byte { return append(hdr(typ, 0, len(payload)), payload...) }
	chat := frame(&protocol.SendChat{ClientID: 1, Text: "hello"})
	voice := frame(&protocol.Voice{Seq: 1, Codec: protocol.CodecOpus, Data: []byte{1, 2, 3}})
	video := frame(&protocol.VideoFragment{FrameSeq: 1, Codec: protocol.CodecVP8, Count: 1, Data: []byte{1}})
	for _, tc := range []struct {
		name string
		kind protocol.StreamKind
		data []byte
		fin  bool // then the client ends the stream
		want protocol.ErrorCode
	}{
		{"type 0", protocol.KindControl, raw(0, 1, 2), false, protocol.CodeMalformed},
		{"join with a length past its end", protocol.KindControl, raw(protocol.TypeJoin, 50, 'x'), false, protocol.CodeMalformed},
		{"join with a reserved flag", protocol.KindControl, frame(&protocol.Join{Room: "lobby", Name: "x"})[:0], false, protocol.CodeNone},
		{"ping of 7 bytes", protocol.KindControl, raw(protocol.TypePing, 1, 2, 3, 4, 5, 6, 7), false, protocol.CodeMalformed},
		{"leave with a payload", protocol.KindControl, raw(protocol.TypeLeave, 1), false, protocol.CodeFrameTooLarge},
		{"a text type on control", protocol.KindControl, chat, false, protocol.CodeUnexpected},
		{"an error from the client", protocol.KindControl, frame(&protocol.Error{Code: protocol.CodeBadRoom}), false, protocol.CodeUnexpected},
		{"unknown critical", protocol.KindControl, hdr(0x99, protocol.FlagCritical, 0), false, protocol.CodeUnknownCritical},
		{"chat with trailing bytes", protocol.KindText, raw(protocol.TypeSendChat, append(chat[protocol.HeaderSize:], 0)...), false, protocol.CodeMalformed},
		{"chat cut short", protocol.KindText, raw(protocol.TypeSendChat, chat[protocol.HeaderSize:len(chat)-2]...), false, protocol.CodeMalformed},
		{"voice on text", protocol.KindText, voice, false, protocol.CodeUnexpected},
		{"voice of 10 bytes", protocol.KindVoice, raw(protocol.TypeVoice, make([]byte, 10)...), false, protocol.CodeMalformed},
		{"video index past count", protocol.KindVideo, func() []byte {
			b := append([]byte(nil), video...)
			b[protocol.HeaderSize+19+1] = 5 // index 5 of 1
			return b
		}(), false, protocol.CodeMalformed},
		{"an unknown critical type on file", protocol.KindFile, hdr(0x71, protocol.FlagCritical, 0), false, protocol.CodeUnknownCritical},
		{"stream kind 9", 9, nil, false, protocol.CodeBadStream},
		{"a second control stream", protocol.KindControl + 100, nil, false, protocol.CodeBadStream},
		{"header cut short, then FIN", protocol.KindControl, hdr(protocol.TypePing, 0, 8)[:3], true, protocol.CodeMalformed},
		{"payload cut short, then FIN", protocol.KindControl, raw(protocol.TypePing, 1, 2, 3, 4, 5, 6, 7, 8)[:10], true, protocol.CodeMalformed},
		{"chat cut short, then FIN", protocol.KindText, chat[:len(chat)-3], true, protocol.CodeMalformed},
		{"voice cut short, then FIN", protocol.KindVoice, voice[:len(voice)-1], true, protocol.CodeMalformed},
		{"video cut short, then FIN", protocol.KindVideo, video[:4], true, protocol.CodeMalformed},
		{"whole frames, then FIN", protocol.KindText, chat, true, protocol.CodeBadStream},
		{"kind byte, then FIN", protocol.KindFile, nil, true, protocol.CodeBadStream},
	} {
		if tc.want == protocol.CodeNone {
			continue // a placeholder row
		}
		t.Run(tc.name, func(t *testing.T) {
			s := muxHello(t, ts.addr)
			var err error
			id := s.ctl
			switch {
			case tc.kind == protocol.KindControl:
				err = s.send(s.ctl, tc.data)
			case tc.kind == protocol.KindControl+100:
				_, err = s.open([]byte{byte(protocol.KindControl)})
			default:
				id, err = s.open(append([]byte{byte(tc.kind)}, tc.data...))
			}
			if err == nil && tc.fin {
				err = s.fin(id)
			}
			if err != nil {
				t.Fatalf("sending: %v", err)
			}
			g := s.goodbye()
			if g == nil {
				t.Fatalf("the connection ended without a Goodbye, want code %v", tc.want)
			}
			if g.Code != tc.want {
				t.Fatalf("Goodbye %v (%s), want %v", g.Code, g.Message, tc.want)
			}
			t.Logf("Goodbye %v: %s", g.Code, g.Message)
		})
	}
	// A connection that ends in the middle of a frame is a client gone,
	// not a protocol error: no one is left to say Goodbye to.
	s := muxHello(t, ts.addr)
	if !s.pingThrough(1) { // the session is up, not still in its handshake
		t.Fatal("no answer to a ping")
	}
	s.send(s.ctl, frame(&protocol.Ping{Nonce: 2})[:9])
	s.close()
	waitFor(t, "the sessions to end", func() bool { st := ts.Stats(); return st.Sessions == 0 && st.Pending == 0 })
	if g := settle(t, "server goroutines", baseG, serverGoroutines); g > baseG {
		t.Errorf("%d server goroutines after the malformed sessions, %d before", g, baseG)
	}
	t.Logf("closes: %v; reasons %v; handshake failures %v", ts.Stats().Closes, ts.Stats().CloseReasons, ts.Stats().HandshakeFailures)
	if n := ts.Stats().Closes["connection lost"]; n != 1 {
		t.Errorf("closes for a connection lost in mid-frame = %d, want 1", n)
	}
	stillServing(t, ts)
}

// clientHello returns the bytes of a real TLS ClientHello for the relay.
func clientHello(t testing.TB) []byte {
	t.Helper()
	a, b := net.Pipe()
	defer b.Close()
	go func() {
		tc := tls.Client(a, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{protocol.ALPN}, ServerName: "parley"})
		tc.Handshake() // fails when b closes
		a.Close()
	}()
	buf := make([]byte, 4096)
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := b.Read(buf)
	if err != nil {
		t.Fatalf("capturing a ClientHello: %v", err)
	}
	return buf[:n]
}

// TestSlowloris opens 2,000 TCP connections that send nothing and 50 that
// send a real TLS ClientHello at one byte a second. Each is closed at the
// handshake deadline; a member chats with its usual round trip throughout,
// and a newcomer can join; afterwards the relay's file descriptors are back
// to what they were.
func TestSlowloris(t *testing.T) {
	const idle, dribbling = 2000, 50
	const deadline = 3 * time.Second
	ts := startServer(t, fast(Config{HandshakeTimeout: deadline}))
	member := dial(t, ts)
	member.join("lobby", "member")
	expect[*protocol.Synced](member)
	roundTrip := func() time.Duration {
		start := time.Now()
		member.say("", "ping")
		member.chats(1)
		return time.Since(start)
	}
	var before []time.Duration
	for range 20 {
		before = append(before, roundTrip())
	}
	fds0 := openFDs(t)

	hello := clientHello(t)
	type result struct {
		// From the dial's start and from its end: the relay's deadline
		// runs from its accept, which lies between the two (a goroutine
		// among two thousand may run long after its dial completed).
		sinceDial, sinceOpen time.Duration
		err                  error
	}
	results := make(chan result, idle+dribbling)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range idle + dribbling {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dialed := time.Now()
			c, err := net.Dial("tcp", ts.addr)
			if err != nil {
				results <- result{err: err}
				return
			}
			defer c.Close()
			opened := time.Now()
			closed := make(chan struct{})
			if i >= idle {
				// One byte of the ClientHello a second, until the relay
				// closes the connection.
				wg.Add(1)
				go func() {
					defer wg.Done()
					tick := time.NewTicker(time.Second)
					defer tick.Stop()
					for _, b := range hello {
						if _, err := c.Write([]byte{b}); err != nil {
							return
						}
						select {
						case <-tick.C:
						case <-closed:
							return
						}
					}
				}()
			}
			defer close(closed)
			c.SetReadDeadline(time.Now().Add(deadline + 10*time.Second))
			buf := make([]byte, 1)
			for {
				if _, err := c.Read(buf); err != nil {
					break
				}
			}
			results <- result{sinceDial: time.Since(dialed), sinceOpen: time.Since(opened)}
		}()
	}
	// Chat during the attack, and join a newcomer.
	var during []time.Duration
	for time.Since(start) < deadline-500*time.Millisecond {
		during = append(during, roundTrip())
	}
	fdsDuring := openFDs(t)
	newcomer := dial(t, ts)
	newcomer.join("lobby", "newcomer")
	newcomer.conn.Close()
	wg.Wait()
	close(results)
	var earliest, latest time.Duration
	earliest = time.Hour
	for r := range results {
		if r.err != nil {
			t.Fatalf("connecting: %v", r.err)
		}
		earliest, latest = min(earliest, r.sinceDial), max(latest, r.sinceOpen)
	}
	fdsAfter := settle(t, "file descriptors", fds0, func() int { return openFDs(t) })
	sort := func(d []time.Duration) []time.Duration { return sortedCopy(d) }
	b, d := sort(before), sort(during)
	t.Logf("%d silent and %d dribbling connections: closed between %v and %v after they opened (deadline %v); %v",
		idle, dribbling, earliest.Round(time.Millisecond), latest.Round(time.Millisecond), deadline, ts.Stats().HandshakeFailures)
	t.Logf("member's chat round trip p50/max: %v/%v before, %v/%v during (%d samples); file descriptors %d before, %d during, %d after",
		pct(b, 50), pct(b, 100), pct(d, 50), pct(d, 100), len(d), fds0, fdsDuring, fdsAfter)
	if earliest < deadline-100*time.Millisecond || latest > deadline+2*time.Second {
		t.Errorf("connections were closed between %v and %v after they opened, want at the %v deadline", earliest, latest, deadline)
	}
	if n := ts.Stats().HandshakeFailures["handshake timeout"]; n != idle+dribbling {
		t.Errorf("%d handshake timeouts counted, want %d", n, idle+dribbling)
	}
	if fdsDuring < fds0+idle {
		t.Errorf("%d file descriptors during the attack, %d before: the connections were not all open at once", fdsDuring, fds0)
	}
	if fdsAfter > fds0 {
		t.Errorf("%d file descriptors after the attack, %d before", fdsAfter, fds0)
	}
	if pct(d, 50) > 3*pct(b, 50) && pct(d, 50) > pct(b, 50)+5*time.Millisecond {
		t.Errorf("the member's median chat round trip went from %v to %v during the attack", pct(b, 50), pct(d, 50))
	}
}

func sortedCopy(d []time.Duration) []time.Duration {
	out := append([]time.Duration(nil), d...)
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// TestBeforeHello: before its Hello is accepted a client may open one
// stream and send small frames, and nothing that needs a session. A
// second stream, a large frame, a Join, a SendChat or media on the control
// stream each end the connection, and nothing reaches the room: its member
// sees no one join and no message, only its own marker.
func TestBeforeHello(t *testing.T) {
	ts := startServer(t, Config{})
	witness := dial(t, ts)
	witness.join("lobby", "witness-before")
	expect[*protocol.Synced](witness)
	for _, tc := range []struct {
		name   string
		attack func(m *rawMux) error
		reason string
	}{
		{"a second stream", func(m *rawMux) error {
			if _, err := m.open([]byte{byte(protocol.KindControl)}); err != nil {
				return err
			}
			_, err := m.open(append([]byte{byte(protocol.KindText)}, frame(&protocol.SendChat{ClientID: 1, Text: "sneaky"})...))
			return err
		}, "too many streams"},
		{"a large frame", func(m *rawMux) error {
			_, err := m.open(append([]byte{byte(protocol.KindControl)}, make([]byte, 4096)...))
			return err
		}, "frame too large"},
		{"a join", func(m *rawMux) error {
			_, err := m.open(append([]byte{byte(protocol.KindControl)}, frame(&protocol.Join{Room: "lobby", Name: "sneaky"})...))
			return err
		}, "unexpected"},
		{"a chat on the control stream", func(m *rawMux) error {
			_, err := m.open(append([]byte{byte(protocol.KindControl)}, frame(&protocol.SendChat{ClientID: 1, Text: "sneaky"})...))
			return err
		}, "unexpected"},
		{"voice on the control stream", func(m *rawMux) error {
			_, err := m.open(append([]byte{byte(protocol.KindControl)}, frame(voiceFrame(1))...))
			return err
		}, "unexpected"},
		{"a text stream first", func(m *rawMux) error {
			_, err := m.open(append([]byte{byte(protocol.KindText)}, frame(&protocol.SendChat{ClientID: 1, Text: "sneaky"})...))
			return err
		}, "unexpected"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := ts.Stats().HandshakeFailures[tc.reason]
			m := dialMux(t, ts.addr)
			if err := tc.attack(m); err != nil {
				t.Logf("write: %v", err)
			}
			if !m.waitGoodbye(10 * time.Second) {
				t.Fatal("the connection was not closed, and no Goodbye came")
			}
			m.close()
			waitFor(t, "the failure to be counted", func() bool { return ts.Stats().HandshakeFailures[tc.reason] == before+1 })
		})
	}
	if st := ts.Stats(); st.Sessions != 1 {
		t.Errorf("%d sessions, want only the witness's", st.Sessions)
	}
	witness.say("", "marker")
	if m := expect[*protocol.Chat](witness, protocol.TypeAck); m.Text != "marker" || m.Seq != 1 {
		t.Errorf("the witness's next message is %+v, want its own marker as the room's first", m)
	}
	t.Logf("handshake failures: %v", ts.Stats().HandshakeFailures)
}
