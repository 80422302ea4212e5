package relay

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/protocol"
)

// mediaClient is a test client that receives voice and video: it keeps a
// copy of every voice frame and of every whole video frame, with the time
// it arrived.
type mediaClient struct {
	*client
	mu     sync.Mutex // guards the fields below
	voice  []gotVoice
	frames []gotFrame
	asm    protocol.Reassembler
	more   chan struct{} // closed and replaced on every arrival

	ts   *testServer // for the relay's counters in failure messages
	room string      // the room joined
}

// join joins a room, remembering which.
func (mc *mediaClient) join(room, name string) *protocol.Joined {
	mc.t.Helper()
	mc.room = room
	return mc.client.join(room, name)
}

type gotVoice struct {
	protocol.Voice
	at time.Time
}

type gotFrame struct {
	protocol.VideoFrame
	at time.Time
}

// dialMedia connects a media client; cfg may set DialContext.
func dialMedia(t testing.TB, ts *testServer, cfg protocol.DialConfig) *mediaClient {
	t.Helper()
	mc := &mediaClient{more: make(chan struct{}), ts: ts}
	cfg.OnVoice = func(v *protocol.Voice) {
		c := *v
		c.Data = bytes.Clone(v.Data)
		mc.mu.Lock()
		mc.voice = append(mc.voice, gotVoice{c, time.Now()})
		mc.signalLocked()
		mc.mu.Unlock()
	}
	cfg.OnVideo = func(f *protocol.VideoFragment) {
		mc.mu.Lock()
		if fr, ok := mc.asm.Add(f); ok {
			fr.Data = bytes.Clone(fr.Data)
			mc.frames = append(mc.frames, gotFrame{fr, time.Now()})
			mc.signalLocked()
		}
		mc.mu.Unlock()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := protocol.Dial(ctx, ts.invite("lobby"), &cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	mc.client = &client{t: t, conn: c}
	return mc
}

func (mc *mediaClient) signalLocked() {
	close(mc.more)
	mc.more = make(chan struct{})
}

// waitMedia waits until cond holds for what arrived so far.
func (mc *mediaClient) waitMedia(what string, cond func(voice []gotVoice, frames []gotFrame) bool) {
	mc.t.Helper()
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	for {
		mc.mu.Lock()
		ok, more := cond(mc.voice, mc.frames), mc.more
		mc.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-more:
		case <-timer.C:
			mc.mu.Lock()
			nv, nf := len(mc.voice), len(mc.frames)
			mc.mu.Unlock()
			var counters string
			if mc.ts != nil {
				counters = fmt.Sprintf("; the relay's counters for it: %+v", mc.ts.MemberStats(mc.room)[mc.name])
			}
			mc.t.Fatalf("%s: timed out waiting for %s: got %d voice and %d video frames%s", mc.name, what, nv, nf, counters)
		}
	}
}

func (mc *mediaClient) received() ([]gotVoice, []gotFrame) {
	mc.mu.Lock()
	defer mc.mu.Unlock()
	return append([]gotVoice(nil), mc.voice...), append([]gotFrame(nil), mc.frames...)
}

func voiceFrame(seq uint32) *protocol.Voice {
	return &protocol.Voice{Source: 999, Seq: seq, Captured: time.Now().UnixMicro(), Codec: protocol.CodecOpus,
		Level: 30, Data: bytes.Repeat([]byte{byte(seq)}, 80)}
}

// TestVoiceForwarded: voice reaches every other member who opened a voice
// stream, with the sender's ID set by the server, and nobody else.
func TestVoiceForwarded(t *testing.T) {
	ts := startServer(t, Config{})
	alice, bob := dialMedia(t, ts, protocol.DialConfig{}), dialMedia(t, ts, protocol.DialConfig{})
	carol := dial(t, ts) // text only: no voice stream
	ja := alice.join("lobby", "alice")
	bob.join("lobby", "bob")
	carol.join("lobby", "carol")
	const n = 50
	for i := range uint32(n) {
		if err := alice.conn.Send(voiceFrame(i)); err != nil {
			t.Fatal(err)
		}
	}
	bob.waitMedia("50 voice frames", func(v []gotVoice, _ []gotFrame) bool { return len(v) >= n })
	voice, _ := bob.received()
	for i, v := range voice {
		if v.Source != ja.MemberID || v.Seq != uint32(i) || !bytes.Equal(v.Data, voiceFrame(uint32(i)).Data) || v.Level != 30 {
			t.Fatalf("bob's voice frame %d = source %d seq %d level %d, want source %d (alice, set by the server) seq %d",
				i, v.Source, v.Seq, v.Level, ja.MemberID, i)
		}
	}
	if av, _ := alice.received(); len(av) != 0 {
		t.Errorf("alice got %d of her own voice frames back", len(av))
	}
	// The writer counts a frame after its write returns, which may be
	// after bob has read it.
	waitFor(t, "the relay's voice counters", func() bool {
		st := ts.MemberStats("lobby")
		return st["alice"].VoiceIn >= n && st["bob"].VoiceOut >= n
	})
	st := ts.MemberStats("lobby")
	if st["alice"].VoiceIn != n || st["bob"].VoiceOut != n || st["carol"].VoiceOut != 0 {
		t.Errorf("stats alice in %d, bob out %d, carol out %d; want %d, %d, 0",
			st["alice"].VoiceIn, st["bob"].VoiceOut, st["carol"].VoiceOut, n, n)
	}

	// Voice from a session that is in no room goes nowhere, counted.
	dave := dialMedia(t, ts, protocol.DialConfig{})
	if err := dave.conn.Send(voiceFrame(1)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "dave's voice is dropped at ingress", func() bool { return ts.Stats().Media.InNotInRoom == 1 })
}

// TestVideoForwarded: frames cut into fragments come out whole and in
// order at the receiver.
func TestVideoForwarded(t *testing.T) {
	ts := startServer(t, Config{})
	alice, bob := dialMedia(t, ts, protocol.DialConfig{FragmentData: 1000}), dialMedia(t, ts, protocol.DialConfig{})
	ja := alice.join("lobby", "alice")
	bob.join("lobby", "bob")
	var sent []*protocol.VideoFrame
	for i := range 30 {
		data := make([]byte, 100+i*997)
		for j := range data {
			data[j] = byte(i * j)
		}
		f := &protocol.VideoFrame{Track: protocol.Track(i % 2), FrameSeq: uint32(i / 2), Captured: int64(i), Codec: protocol.CodecVP8,
			Keyframe: i < 2, Data: data}
		sent = append(sent, f)
		if err := alice.conn.SendVideoFrame(f); err != nil {
			t.Fatal(err)
		}
	}
	bob.waitMedia("30 video frames", func(_ []gotVoice, f []gotFrame) bool { return len(f) >= 30 })
	_, frames := bob.received()
	for i, f := range frames {
		want := *sent[i]
		want.Source = ja.MemberID
		if f.Source != want.Source || f.Track != want.Track || f.FrameSeq != want.FrameSeq || f.Keyframe != want.Keyframe ||
			!bytes.Equal(f.Data, want.Data) {
			t.Fatalf("bob's frame %d = source %d track %v seq %d key %v (%d bytes), want source %d track %v seq %d key %v (%d bytes)",
				i, f.Source, f.Track, f.FrameSeq, f.Keyframe, len(f.Data), want.Source, want.Track, want.FrameSeq, want.Keyframe, len(want.Data))
		}
	}
}

// expectControl reads alice's control messages until one of type T.
func expectControl[T protocol.Message](c *client) T {
	c.t.Helper()
	for {
		if m, ok := c.recv().(T); ok {
			return m
		}
	}
}

// TestKeyframeRequests: a newcomer and a receiver's request each get the
// sender asked for a keyframe, never twice within KeyframeInterval, and a
// request inside the interval is sent when it ends rather than lost.
func TestKeyframeRequests(t *testing.T) {
	const interval = 300 * time.Millisecond
	ts := startServer(t, Config{KeyframeInterval: interval})
	alice, bob := dialMedia(t, ts, protocol.DialConfig{}), dialMedia(t, ts, protocol.DialConfig{})
	ja := alice.join("lobby", "alice")
	frame := &protocol.VideoFrame{Codec: protocol.CodecVP8, Keyframe: true, Data: []byte("key")}
	if err := alice.conn.SendVideoFrame(frame); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "alice's video is seen", func() bool { return ts.MemberStats("lobby")["alice"].VideoIn == 1 })

	bob.join("lobby", "bob") // a newcomer needs a keyframe
	kr := expectControl[*protocol.KeyframeRequest](alice.client)
	first := time.Now()
	if kr.Track != protocol.TrackCamera || kr.Source != 0 {
		t.Fatalf("alice got %+v, want a request for her camera track", kr)
	}
	// bob asks twice at once: alice hears once more, after the interval.
	for range 2 {
		if err := bob.conn.Send(&protocol.KeyframeRequest{Source: ja.MemberID, Track: protocol.TrackCamera}); err != nil {
			t.Fatal(err)
		}
	}
	expectControl[*protocol.KeyframeRequest](alice.client)
	if d := time.Since(first); d < interval-10*time.Millisecond {
		t.Errorf("the second keyframe request came %v after the first, want at least %v", d, interval)
	}
	// Requests for a member that does not exist, or a reserved track, go
	// nowhere: once bob's Ping has come back, his control stream is read
	// past them, and nothing is pending for alice.
	bob.conn.Send(&protocol.KeyframeRequest{Source: 12345})
	bob.conn.Send(&protocol.KeyframeRequest{Source: ja.MemberID, Track: 7})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := bob.conn.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	var aliceSess *session
	for _, m := range ts.lookupRoom("lobby").memberList() {
		if m.name == "alice" {
			aliceSess = m.sess
		}
	}
	if w := aliceSess.keyWanted.Load(); w != 0 {
		t.Errorf("alice has keyframe requests pending (%b) after requests for nobody", w)
	}
	if got := ts.MemberStats("lobby")["alice"].KeyframeRequests; got != 2 {
		t.Errorf("alice was asked %d times, want 2", got)
	}
}

// TestStateAndLossReports: member state reaches the others and later
// rosters; loss reports reach the speaker naming the listener.
func TestStateAndLossReports(t *testing.T) {
	ts := startServer(t, Config{})
	alice, bob := dialMedia(t, ts, protocol.DialConfig{}), dialMedia(t, ts, protocol.DialConfig{})
	ja := alice.join("lobby", "alice")
	jb := bob.join("lobby", "bob")
	expectControl[*protocol.MemberJoined](alice.client)
	if err := alice.conn.Send(&protocol.StateUpdate{Member: 42, State: protocol.StateAudio | protocol.StateVideo}); err != nil {
		t.Fatal(err)
	}
	su := expectControl[*protocol.StateUpdate](bob.client)
	if su.Member != ja.MemberID || su.State != protocol.StateAudio|protocol.StateVideo {
		t.Fatalf("bob got %+v, want alice (%d) with audio and video", su, ja.MemberID)
	}
	carol := dial(t, ts)
	jc := carol.join("lobby", "carol")
	if jc.Members[0].Name != "alice" || jc.Members[0].State != protocol.StateAudio|protocol.StateVideo {
		t.Errorf("carol's roster starts with %+v, want alice with audio and video", jc.Members[0])
	}

	if err := bob.conn.Send(&protocol.LossReport{Member: ja.MemberID, FractionLost: 26}); err != nil {
		t.Fatal(err)
	}
	lr := expectControl[*protocol.LossReport](alice.client)
	if lr.Member != jb.MemberID || lr.FractionLost != 26 {
		t.Fatalf("alice got %+v, want bob (%d) lost 26/256", lr, jb.MemberID)
	}
}

// TestBitrateHintFromReceiver: a receiver's limit on a sender's track
// reaches the sender.
func TestBitrateHintFromReceiver(t *testing.T) {
	ts := startServer(t, Config{})
	alice, bob := dialMedia(t, ts, protocol.DialConfig{}), dialMedia(t, ts, protocol.DialConfig{})
	ja := alice.join("lobby", "alice")
	bob.join("lobby", "bob")
	if err := bob.conn.Send(&protocol.BitrateHint{Source: ja.MemberID, Track: protocol.TrackCamera, Bitrate: 300_000}); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // alice sends video for as long as the test waits
		defer close(done)
		tick := time.NewTicker(33 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			alice.conn.SendVideoFrame(&protocol.VideoFrame{FrameSeq: uint32(i), Codec: protocol.CodecVP8, Keyframe: i == 0, Data: make([]byte, 1500)})
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	defer func() { close(stop); <-done }()
	for {
		h := expectControl[*protocol.BitrateHint](alice.client)
		if h.Track != protocol.TrackCamera {
			t.Fatalf("alice got a hint for track %v", h.Track)
		}
		if h.Bitrate == 300_000 {
			return
		}
		if h.Bitrate < 300_000 {
			t.Fatalf("alice was told %d bit/s, want 300000 (bob's hint)", h.Bitrate)
		}
	}
}

// TestIngressCap: voice over the sender's cap is dropped at ingress and
// counted; what is under the cap is forwarded.
func TestIngressCap(t *testing.T) {
	ts := startServer(t, Config{VoiceBitrateCap: 16_000}) // 2000 bytes per second, 2000 of burst
	alice, bob := dialMedia(t, ts, protocol.DialConfig{}), dialMedia(t, ts, protocol.DialConfig{})
	alice.join("lobby", "alice")
	bob.join("lobby", "bob")
	for i := range uint32(100) {
		v := voiceFrame(i)
		v.Data = make([]byte, 181) // 200-byte payloads
		if err := alice.conn.Send(v); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "all 100 frames are judged", func() bool {
		st := ts.MemberStats("lobby")["alice"]
		return st.VoiceIn+st.InOverCap == 100
	})
	st := ts.MemberStats("lobby")["alice"]
	// The burst takes 10; sending 100 takes a few ms, refilling little.
	if st.VoiceIn < 10 || st.VoiceIn > 20 || st.InOverCap < 80 {
		t.Errorf("forwarded %d and dropped %d of 100 frames over a 2000-byte burst, want about 10 and 90", st.VoiceIn, st.InOverCap)
	}
	bob.waitMedia(fmt.Sprint(st.VoiceIn, " frames"), func(v []gotVoice, _ []gotFrame) bool { return uint64(len(v)) == st.VoiceIn })
}

// TestFrozenMediaReceiver is derp's TestSendFreeze for media: a receiver
// that stops reading neither delays nor costs the others a single frame,
// and it is not disconnected for media lag alone; its drops are counted.
func TestFrozenMediaReceiver(t *testing.T) {
	ts := startServer(t, Config{})
	var fc *frozenConn
	frozen := dialMedia(t, ts, protocol.DialConfig{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			fc = &frozenConn{Conn: c}
			return fc, err
		},
	})
	alice, bob := dialMedia(t, ts, protocol.DialConfig{}), dialMedia(t, ts, protocol.DialConfig{})
	frozen.join("lobby", "frozen")
	alice.join("lobby", "alice")
	bob.join("lobby", "bob")
	fc.freeze()
	defer fc.thaw()

	// Two seconds of voice at 50 frames/s and 600 kbit/s of video.
	const frames = 100
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	video := 0
	for i := range uint32(frames) {
		<-tick.C
		if err := alice.conn.Send(voiceFrame(i)); err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 {
			video++
			f := &protocol.VideoFrame{FrameSeq: i, Codec: protocol.CodecVP8, Keyframe: i%60 == 0, Data: make([]byte, 7500)}
			if err := alice.conn.SendVideoFrame(f); err != nil {
				t.Fatal(err)
			}
		}
	}
	bob.waitMedia("every frame", func(v []gotVoice, f []gotFrame) bool { return len(v) == frames && len(f) == video })
	voice, _ := bob.received()
	var worst time.Duration
	for _, v := range voice {
		worst = max(worst, v.at.Sub(time.UnixMicro(v.Captured)))
	}
	if worst > 500*time.Millisecond {
		t.Errorf("bob's voice was up to %v late with a frozen member in the room", worst)
	}
	// Its video is dropped; each voice frame is written, while the pacer
	// still lets it, or dropped as late: none waits without end.
	waitFor(t, "the frozen member's drops are counted", func() bool {
		st := ts.MemberStats("lobby")["frozen"]
		return st.VoiceOut+st.VoiceLate == frames && st.VideoCongested+st.VideoWaitKey > 0
	})
	t.Logf("frozen member: %+v", ts.MemberStats("lobby")["frozen"])
	if _, ok := ts.MemberStats("lobby")["frozen"]; !ok {
		t.Errorf("the frozen member was disconnected for media lag")
	}
}
