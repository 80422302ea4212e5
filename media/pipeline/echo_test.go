package pipeline

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/media"
	"github.com/parleychat/parley/media/audio"
	"github.com/parleychat/parley/media/opus"
)

// The room of these tests is in memory: whatever the speaker plays, the
// microphone hears echoDelay frames later, sample for sample, on top of
// the near end's voice (a quiet 1 kHz tone). The microphone's frames come
// from the speaker's by count, so that an echo model that pairs the
// streams by count too cancels the echo exactly.
const echoDelay = 3

// room joins a fake speaker and a fake microphone.
type room struct {
	heard chan []int16 // what the speaker played, for the microphone

	mu         sync.Mutex  // guards the fields below
	near       *audio.Tone // makes nearFrames
	nearFrames [][]int16
	written    [][]int16 // every frame the speaker played
	// echoLoud counts the microphone frames in which the echo is louder
	// than -40 dBov.
	echoLoud int
	more     chan struct{} // a microphone frame was read
}

func newRoom(t *testing.T) *room {
	near, err := audio.NewTone(audio.ToneConfig{Frequency: 1000, Amplitude: 1.0 / 32})
	if err != nil {
		t.Fatal(err)
	}
	return &room{heard: make(chan []int16, 4096), near: near, more: make(chan struct{}, 1)}
}

// nearFrame returns the near end's n-th frame: a 1 kHz tone at -33 dBov.
func (r *room) nearFrame(n int) []int16 {
	r.mu.Lock()
	defer r.mu.Unlock()
	for len(r.nearFrames) <= n {
		pcm := make([]int16, media.FrameSamples)
		r.near.Generate(pcm)
		r.nearFrames = append(r.nearFrames, pcm)
	}
	return r.nearFrames[n]
}

// roomSpeaker is the room's speaker: a device paced at 20 ms a frame.
type roomSpeaker struct {
	r      *room
	tick   *time.Ticker
	closed chan struct{}
	once   sync.Once
}

func (r *room) newSpeaker() *roomSpeaker {
	return &roomSpeaker{r: r, tick: time.NewTicker(media.FrameDuration), closed: make(chan struct{})}
}

func (s *roomSpeaker) WriteFrame(pcm []int16) error {
	select {
	case <-s.tick.C:
	case <-s.closed:
		return errors.New("speaker closed")
	}
	frame := slices.Clone(pcm)
	s.r.mu.Lock()
	s.r.written = append(s.r.written, frame)
	s.r.mu.Unlock()
	s.r.heard <- frame
	return nil
}

func (s *roomSpeaker) Close() error {
	s.once.Do(func() { s.tick.Stop(); close(s.closed) })
	return nil
}

// roomMic is the room's microphone: it hears the speaker's frame
// n-echoDelay and the near end's frame n. It says it is a microphone.
type roomMic struct {
	r      *room
	n      int
	closed chan struct{}
	once   sync.Once
}

func (r *room) newMicrophone() *roomMic {
	return &roomMic{r: r, closed: make(chan struct{})}
}

func (m *roomMic) IsMicrophone() bool { return true }

func (m *roomMic) ReadFrame(pcm []int16) (time.Time, error) {
	echo := make([]int16, media.FrameSamples)
	if m.n >= echoDelay {
		select {
		case echo = <-m.r.heard:
		case <-m.closed:
			return time.Time{}, errors.New("microphone closed")
		}
	}
	near := m.r.nearFrame(m.n)
	for i := range pcm {
		pcm[i] = echo[i] + near[i]
	}
	m.n++
	m.r.mu.Lock()
	if audio.LevelDBov(echo) > -40 {
		m.r.echoLoud++
	}
	m.r.mu.Unlock()
	select {
	case m.r.more <- struct{}{}:
	default:
	}
	return time.Now(), nil
}

func (m *roomMic) Close() error {
	m.once.Do(func() { close(m.closed) })
	return nil
}

// waitEcho waits until the microphone has heard n frames of loud echo.
func (r *room) waitEcho(t *testing.T, n int) {
	t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		loud := r.echoLoud
		r.mu.Unlock()
		if loud >= n {
			return
		}
		select {
		case <-r.more:
		case <-deadline.C:
			t.Fatalf("the microphone heard %d frames of loud echo, want %d", loud, n)
		}
	}
}

// echoModel is an EchoCanceller that knows the room: it subtracts from
// the n-th microphone frame the (n-echoDelay)-th frame it was given to
// play. The pipeline must hand it the very frames the speaker plays, each
// before the speaker has it, and every microphone frame before the
// encoder. After a Reset (a new microphone or speaker) it only counts.
type echoModel struct {
	mu       sync.Mutex
	played   [][]int16
	captures int
	resets   int
}

func (e *echoModel) Playback(pcm []int16) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.played = append(e.played, slices.Clone(pcm))
}

func (e *echoModel) Capture(pcm []int16) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if k := e.captures - echoDelay; k >= 0 && e.resets == 0 {
		if k >= len(e.played) {
			panic("the microphone heard a frame before it was given to Playback")
		}
		for i, v := range e.played[k] {
			pcm[i] -= v
		}
	}
	e.captures++
}

func (e *echoModel) Reset() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.resets++
}

func (e *echoModel) counts() (captures, resets int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.captures, e.resets
}

// pcmEncoder is an AudioEncoder that keeps what it is given.
type pcmEncoder struct {
	mu     sync.Mutex
	frames [][]int16
}

func (e *pcmEncoder) Encode(pcm []int16, out []byte) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.frames = append(e.frames, slices.Clone(pcm))
	out[0] = 0xf8 // an Opus TOC byte: nobody decodes it here
	return 1, nil
}
func (e *pcmEncoder) SetBitrate(int) error    { return nil }
func (e *pcmEncoder) SetPacketLoss(int) error { return nil }
func (e *pcmEncoder) Close() error            { return nil }

func (e *pcmEncoder) encoded() [][]int16 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.frames)
}

// TestEchoCanceller: alice sends a tone; bob plays it on a speaker in a
// room whose microphone hears it back. With an echo canceller, bob's
// pipeline gives it every frame the speaker plays and every microphone
// frame before the level and the encoder, so that bob sends the near end
// alone; without one, alice's tone goes back to her. A tone source is not
// given to the canceller; a new microphone or speaker resets it.
func TestEchoCanceller(t *testing.T) {
	for _, cancel := range []bool{true, false} {
		name := "without"
		if cancel {
			name = "with"
		}
		t.Run(name, func(t *testing.T) {
			_, invite := startRelay(t)
			alice := sender(t)
			alice.Camera.Close()
			alice.Camera, alice.NewVideoEncoder = nil, nil
			join(t, invite, "alice", alice)

			r := newRoom(t)
			enc := &pcmEncoder{}
			var levels []uint8
			var levelMu sync.Mutex
			ec := &echoModel{}
			cfg := Config{
				Audio:           r.newMicrophone(),
				NewAudioEncoder: func() (media.AudioEncoder, error) { return enc, nil },
				NewAudioDecoder: func() (media.AudioDecoder, error) { return opus.NewDecoder() },
				Speaker:         r.newSpeaker(),
				OnLocalLevel: func(l uint8) {
					levelMu.Lock()
					levels = append(levels, l)
					levelMu.Unlock()
				},
			}
			if cancel {
				cfg.EchoCanceller = ec
			}
			bob := join(t, invite, "bob", cfg)
			r.waitEcho(t, 50)

			// What bob sent: the near end alone with the canceller.
			sent := enc.encoded()
			loud := 0 // frames that sent alice's tone back
			for n, pcm := range sent {
				want := r.nearFrame(n)
				if !slices.Equal(pcm, want) {
					loud++
					if cancel {
						t.Fatalf("frame %d sent at %.1f dBov, want the near end alone (%.1f dBov)", n, audio.LevelDBov(pcm), audio.LevelDBov(want))
					}
				}
			}
			if !cancel && loud < 50 {
				t.Errorf("without a canceller %d frames sent the echo back, want at least the 50 that had it", loud)
			}
			levelMu.Lock()
			if cancel {
				for n, l := range levels[:len(sent)] {
					if want := audio.Level(r.nearFrame(n)); l != want {
						t.Fatalf("local level %d = %d, want the near end's %d", n, l, want)
					}
				}
			}
			levelMu.Unlock()
			if !cancel {
				return
			}

			// Every frame the speaker played went to Playback first, in
			// order, silence included.
			r.mu.Lock()
			written := slices.Clone(r.written)
			r.mu.Unlock()
			ec.mu.Lock()
			played := slices.Clone(ec.played)
			ec.mu.Unlock()
			if len(played) < len(written) || len(played) > len(written)+1 {
				t.Fatalf("%d frames played, %d given to Playback", len(written), len(played))
			}
			for i := range written {
				if !slices.Equal(written[i], played[i]) {
					t.Fatalf("frame %d played is not frame %d given to Playback", i, i)
				}
			}
			silent := 0
			for _, f := range written {
				if audio.LevelDBov(f) == -audio.SilentLevel {
					silent++
				}
			}
			t.Logf("bob's speaker played %d frames (%d silent) and sent %d, all the near end alone", len(written), silent, len(sent))
			if silent == 0 {
				t.Error("no silent frame was played before alice's voice came")
			}

			// A tone instead of the microphone is not given to the
			// canceller; a microphone again resets it, and so does a
			// new speaker.
			tone, err := audio.NewTone(audio.ToneConfig{Frequency: 300})
			if err != nil {
				t.Fatal(err)
			}
			bob.call.SetAudio(tone)
			waitSent(t, enc, len(enc.encoded())+10) // the microphone's last frame is out
			captures, resets := ec.counts()
			waitSent(t, enc, len(enc.encoded())+25)
			if c, _ := ec.counts(); c != captures {
				t.Errorf("%d frames of the tone went through the canceller", c-captures)
			}
			if resets != 0 {
				t.Errorf("Reset called %d times for a tone, want 0", resets)
			}
			bob.call.SetAudio(r.newMicrophone())
			bob.call.SetSpeaker(r.newSpeaker())
			if _, resets := ec.counts(); resets != 2 {
				t.Errorf("Reset called %d times for a new microphone and speaker, want 2", resets)
			}
			waitSent(t, enc, len(enc.encoded())+25)
			if c, _ := ec.counts(); c <= captures {
				t.Error("the new microphone's frames did not go through the canceller")
			}
		})
	}
}

// waitSent waits until the encoder has been given n frames.
func waitSent(t *testing.T, enc *pcmEncoder, n int) {
	t.Helper()
	eventually(t, "frames sent", func() bool { return len(enc.encoded()) >= n })
}
