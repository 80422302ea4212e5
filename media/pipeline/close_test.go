package pipeline

import (
	"context"
	"image"
	"testing"
	"time"

	"github.com/parleychat/parley/media"
	"github.com/parleychat/parley/media/video"
	"github.com/parleychat/parley/media/vpx"
	"github.com/parleychat/parley/protocol"
)

// discardConn is the sending side of a Call that only receives here.
type discardConn struct{}

func (discardConn) SendVoice(*protocol.Voice) error                 { return nil }
func (discardConn) SendVideoFragment(*protocol.VideoFragment) error { return nil }
func (discardConn) Signal(protocol.Message) error                   { return nil }
func (discardConn) Member(uint32) (protocol.Member, bool)           { return protocol.Member{}, false }
func (discardConn) SetState(uint8)                                  {}

// TestVideoWhileTheCallEnds: video keeps arriving from the connection's
// reader while the call ends — as when a session drops and the app
// leaves. The call stops its decoders without a race or a send on a
// closed queue (which panics), however the two interleave.
func TestVideoWhileTheCallEnds(t *testing.T) {
	enc, err := vpx.NewEncoder(vpx.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	var frags []*protocol.VideoFragment
	pic := video.NewI420(160, 90)
	start := time.Now()
	for i := range 30 {
		at := start.Add(time.Duration(i) * time.Second / 30)
		video.Render(pic, uint64(i), at)
		data, key, err := enc.Encode(pic, at, i == 0)
		if err != nil {
			t.Fatal(err)
		}
		f := &protocol.VideoFrame{Source: 7, FrameSeq: uint32(i), Captured: at.UnixMicro(), Codec: protocol.CodecVP8, Keyframe: key, Data: data}
		if err := f.Fragment(1200, func(fr *protocol.VideoFragment) error {
			c := *fr
			c.Data = append([]byte(nil), fr.Data...)
			frags = append(frags, &c)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	for round := range 20 {
		decoded := make(chan struct{}, 1)
		c := New(Config{
			NewVideoDecoder: func() (media.VideoDecoder, error) { return vpx.NewDecoder() },
			OnPicture: func(uint32, protocol.Track, *image.YCbCr, time.Time) {
				select {
				case decoded <- struct{}{}:
				default:
				}
			},
		})
		ctx, cancel := context.WithCancel(context.Background())
		ran := make(chan error, 1)
		go func() { ran <- c.Run(ctx, discardConn{}) }()
		stop, fed := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(fed)
			for seq := uint32(0); ; seq++ {
				for _, f := range frags {
					select {
					case <-stop:
						return
					default:
					}
					g := *f
					g.FrameSeq += seq * 30 // a new frame each lap, keyframe first
					c.Video(&g)
				}
			}
		}()
		select {
		case <-decoded:
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: nothing decoded", round)
		}
		cancel() // the call ends while video still comes in
		if err := <-ran; err != nil {
			t.Fatalf("round %d: Run = %v", round, err)
		}
		close(stop)
		<-fed
	}
}
