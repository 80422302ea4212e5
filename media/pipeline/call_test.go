package pipeline

import (
	"context"
	"image"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/parleychat/parley/media"
	"github.com/parleychat/parley/media/audio"
	"github.com/parleychat/parley/media/opus"
	"github.com/parleychat/parley/media/record"
	"github.com/parleychat/parley/media/video"
	"github.com/parleychat/parley/media/vpx"
	"github.com/parleychat/parley/protocol"
	"github.com/parleychat/parley/protocol/client"
	"github.com/parleychat/parley/relay"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// startRelay runs an in-memory relay on loopback for the test.
func startRelay(t *testing.T) (*relay.Server, string) {
	t.Helper()
	srv, err := relay.New(relay.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return srv, srv.Invite(ln.Addr().String(), "lobby")
}

// member is a client in the room with a call running on it.
type member struct {
	c    *client.Client
	call *Call
	stop func()
}

// join connects name with a call made from cfg and runs both until the
// test ends (or stop).
func join(t *testing.T, invite, name string, cfg Config) *member {
	t.Helper()
	inv, err := protocol.ParseInvite(invite)
	if err != nil {
		t.Fatal(err)
	}
	call := New(cfg)
	c := client.New(client.Config{Invite: inv, Name: name, Media: call})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { c.Run(ctx) })
	wg.Go(func() {
		for range c.Events() {
		}
	})
	callErr := make(chan error, 1)
	wg.Go(func() { callErr <- call.Run(ctx, c) })
	m := &member{c: c, call: call}
	var once sync.Once
	m.stop = func() {
		once.Do(func() {
			cancel()
			wg.Wait()
			if err := <-callErr; err != nil {
				t.Errorf("%s: call: %v", name, err)
			}
		})
	}
	t.Cleanup(m.stop)
	return m
}

// sender is a Config that sends the test pattern and a tone.
func sender(t *testing.T) Config {
	pattern, err := video.NewTestPattern(video.PatternConfig{})
	if err != nil {
		t.Fatal(err)
	}
	tone, err := audio.NewTone(audio.ToneConfig{Frequency: 440})
	if err != nil {
		t.Fatal(err)
	}
	return Config{
		Camera: pattern, Audio: tone,
		NewVideoEncoder: func(screen bool) (media.VideoEncoder, error) { return vpx.NewEncoder(vpx.Config{Screen: screen}) },
		NewAudioEncoder: func() (media.AudioEncoder, error) { return opus.NewEncoder(opus.Config{}) },
	}
}

// pictures collects what a receiver decodes.
type pictures struct {
	mu     sync.Mutex
	stamps []uint64
	sizes  []image.Point
	levels int
	more   chan struct{}
}

func newPictures() *pictures { return &pictures{more: make(chan struct{}, 1)} }

func (p *pictures) onPicture(source uint32, tr protocol.Track, img *image.YCbCr, captured time.Time) {
	_, frame, ok := video.ReadStamp(img)
	p.mu.Lock()
	if ok {
		p.stamps = append(p.stamps, frame)
	}
	p.sizes = append(p.sizes, img.Rect.Size())
	p.mu.Unlock()
	select {
	case p.more <- struct{}{}:
	default:
	}
}

func (p *pictures) onLevel(uint32, uint8) {
	p.mu.Lock()
	p.levels++
	p.mu.Unlock()
}

// waitFor waits until cond holds on what was decoded.
func (p *pictures) waitFor(t *testing.T, what string, cond func(stamps []uint64, sizes []image.Point) bool) {
	t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		ok := cond(p.stamps, p.sizes)
		p.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-p.more:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestCallSendsAndReceives runs two members through a relay: one sends
// the test pattern and a tone, the other decodes and records them.
func TestCallSendsAndReceives(t *testing.T) {
	srv, invite := startRelay(t)
	dir := t.TempDir()
	rec, err := NewRecorder(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := newPictures()
	bob := join(t, invite, "bob", Config{
		NewVideoDecoder: func() (media.VideoDecoder, error) { return vpx.NewDecoder() },
		NewAudioDecoder: func() (media.AudioDecoder, error) { return opus.NewDecoder() },
		OnPicture:       got.onPicture,
		OnLevel:         got.onLevel,
		Recorder:        rec,
	})
	alice := join(t, invite, "alice", sender(t))
	got.waitFor(t, "60 decoded pictures", func(stamps []uint64, _ []image.Point) bool { return len(stamps) >= 60 })
	relayDrops := srv.MemberStats("lobby")["bob"]
	alice.stop()
	bob.stop()

	st, bst := alice.call.Stats(), bob.call.Stats()
	t.Logf("alice sent %d video (%d keyframes) and %d voice frames; bob got %d frames, decoded %d, %d voice",
		st.VideoSent[0], st.KeyframesSent[0], st.VoiceSent, bst.VideoFramesReceived, bst.Decoded, bst.VoiceReceived)
	got.mu.Lock()
	for i := 1; i < len(got.stamps); i++ {
		if got.stamps[i] <= got.stamps[i-1] {
			t.Fatalf("decoded picture %d is frame %d, after frame %d", i, got.stamps[i], got.stamps[i-1])
		}
	}
	if got.levels == 0 {
		t.Errorf("no audio levels reported")
	}
	got.mu.Unlock()
	// A frame breaks only where the relay dropped the rest of it, which
	// it does when bob's writer falls behind (a busy machine).
	if bst.DecodeErrs != 0 || (bst.VideoBroken != 0 && relayDrops.VideoCongested == 0) {
		t.Errorf("bob had %d decode errors and %d broken frames on a clean link (the relay dropped %d fragments for him)",
			bst.DecodeErrs, bst.VideoBroken, relayDrops.VideoCongested)
	}

	// The recordings are whole: every frame bob received is in the IVF,
	// every voice frame in the Ogg file.
	f, err := os.Open(filepath.Join(dir, "alice.ivf"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ivf, err := record.NewIVFReader(f)
	if err != nil {
		t.Fatal(err)
	}
	frames := 0
	for {
		if _, _, err := ivf.ReadFrame(); err != nil {
			break
		}
		frames++
	}
	if uint64(frames) != bst.VideoFramesReceived {
		t.Errorf("alice.ivf holds %d frames, bob received %d", frames, bst.VideoFramesReceived)
	}
	if h := ivf.Header(); h.Width != 640 || h.Height != 360 {
		t.Errorf("alice.ivf is %dx%d, want 640x360", h.Width, h.Height)
	}
}

// TestBitrateHintLowersResolution: a receiver asks for at most 200 kbit/s
// of the sender's camera; the sender's pipeline follows the relay's hint,
// encodes at that rate and a smaller size, and the receiver decodes the
// smaller pictures.
func TestBitrateHintLowersResolution(t *testing.T) {
	_, invite := startRelay(t)
	got := newPictures()
	bob := join(t, invite, "bob", Config{
		NewVideoDecoder: func() (media.VideoDecoder, error) { return vpx.NewDecoder() },
		OnPicture:       got.onPicture,
	})
	alice := join(t, invite, "alice", sender(t))
	got.waitFor(t, "a first picture", func(s []uint64, _ []image.Point) bool { return len(s) > 0 })
	var aliceID uint32
	for _, m := range bob.c.Roster() {
		if m.Name == "alice" {
			aliceID = m.ID
		}
	}
	if err := bob.c.Signal(&protocol.BitrateHint{Source: aliceID, Track: protocol.TrackCamera, Bitrate: 200_000}); err != nil {
		t.Fatal(err)
	}
	got.waitFor(t, "smaller pictures", func(_ []uint64, sizes []image.Point) bool {
		return len(sizes) > 0 && sizes[len(sizes)-1].X < 640
	})
	st := alice.call.Stats()
	t.Logf("alice now encodes %dx%d at %d bit/s", st.Width[0], st.Height[0], st.VideoBitrate[0])
	if st.VideoBitrate[0] != 200_000 {
		t.Errorf("alice's video bitrate = %d, want the 200000 bob asked for", st.VideoBitrate[0])
	}
	if st.Width[0] >= 640 || st.Width[0] < 160 {
		t.Errorf("alice encodes %d pixels wide at 200 kbit/s, want a smaller picture", st.Width[0])
	}
}

func TestLadder(t *testing.T) {
	tests := []struct {
		bps        int
		wantW, wan int
	}{
		{2_000_000, 640, 360},
		{500_000, 640, 360},
		{300_000, 480, 270},
		{150_000, 320, 180},
		{60_000, 212, 120},
		{10_000, 160, 90},
	}
	for _, tt := range tests {
		if w, h := ladder(640, 360, tt.bps, 30); w != tt.wantW || h != tt.wan {
			t.Errorf("ladder(640, 360, %d, 30) = %dx%d, want %dx%d", tt.bps, w, h, tt.wantW, tt.wan)
		}
	}
}

func TestFECFollowsLossReports(t *testing.T) {
	s := &audioSender{}
	if p := s.fecPercent(); p != 0 {
		t.Errorf("fecPercent with no reports = %d, want 0", p)
	}
	s.reportLoss(1, 13) // 5 %
	s.reportLoss(2, 52) // 20 %
	if p := s.fecPercent(); p != 21 {
		t.Errorf("fecPercent = %d, want 21 (the worst listener, rounded up)", p)
	}
	s.mu.Lock()
	r := s.losses[2]
	r.at = time.Now().Add(-lossMemory - time.Second)
	s.losses[2] = r
	s.mu.Unlock()
	if p := s.fecPercent(); p != 6 {
		t.Errorf("fecPercent after the worst report aged out = %d, want 6", p)
	}
}

// eventually polls cond (state another goroutine publishes) for up to 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSwitchSources: muting, turning the camera off and on again with a
// new source, as a user does in a call. The others see the state change,
// and the video comes back, starting with a keyframe.
func TestSwitchSources(t *testing.T) {
	_, invite := startRelay(t)
	got := newPictures()
	bob := join(t, invite, "bob", Config{
		NewVideoDecoder: func() (media.VideoDecoder, error) { return vpx.NewDecoder() },
		OnPicture:       got.onPicture,
	})
	alice := join(t, invite, "alice", sender(t))
	got.waitFor(t, "pictures", func(s []uint64, _ []image.Point) bool { return len(s) > 5 })
	aliceState := func() uint8 {
		for _, m := range bob.c.Roster() {
			if m.Name == "alice" {
				return m.State
			}
		}
		return 0
	}
	eventually(t, "alice's state audio+video", func() bool { return aliceState() == protocol.StateAudio|protocol.StateVideo })

	alice.call.SetMuted(true)
	alice.call.SetVideo(protocol.TrackCamera, nil)
	eventually(t, "alice's state without audio and video", func() bool { return aliceState() == 0 })
	voice := alice.call.Stats().VoiceSent
	keys := alice.call.Stats().KeyframesSent[0]

	pattern, err := video.NewTestPattern(video.PatternConfig{Width: 320, Height: 180})
	if err != nil {
		t.Fatal(err)
	}
	got.mu.Lock()
	before := len(got.sizes)
	got.mu.Unlock()
	alice.call.SetVideo(protocol.TrackCamera, pattern)
	got.waitFor(t, "320x180 pictures", func(_ []uint64, sizes []image.Point) bool {
		return len(sizes) > before && sizes[len(sizes)-1] == image.Pt(320, 180)
	})
	eventually(t, "alice's state video", func() bool { return aliceState() == protocol.StateVideo })
	st := alice.call.Stats()
	if st.KeyframesSent[0] <= keys {
		t.Errorf("the new camera did not start with a keyframe (%d keyframes before, %d after)", keys, st.KeyframesSent[0])
	}
	if st.VoiceSent != voice {
		t.Errorf("alice sent %d voice frames while muted", st.VoiceSent-voice)
	}
	alice.call.SetMuted(false)
	eventually(t, "voice again", func() bool { return alice.call.Stats().VoiceSent > voice })
}
