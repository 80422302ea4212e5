package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"image"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleychat/parley/media"
	"github.com/parleychat/parley/media/pipeline"
	"github.com/parleychat/parley/media/video"
	"github.com/parleychat/parley/media/vpx"
	"github.com/parleychat/parley/protocol"
	"github.com/parleychat/parley/protocol/client"
)

// Measurements of real media: the test pattern through VP8, the relay and
// back, as a client would run it.

// mediaMember runs a pipeline call on a client until ctx ends. With send,
// it sends the 640×360 test pattern at 30 fps; it decodes all video it
// receives and hands each picture to onPicture.
func mediaMember(ctx context.Context, invite, name string, send bool, onPicture func(*image.YCbCr, time.Time)) (*pipeline.Call, func(), error) {
	inv, err := protocol.ParseInvite(invite)
	if err != nil {
		return nil, nil, err
	}
	cfg := pipeline.Config{
		NewVideoEncoder: func(bool) (media.VideoEncoder, error) { return vpx.NewEncoder(vpx.Config{}) },
		NewVideoDecoder: func() (media.VideoDecoder, error) { return vpx.NewDecoder() },
		VideoBitrate:    800_000,
	}
	if onPicture != nil {
		cfg.OnPicture = func(_ uint32, _ protocol.Track, img *image.YCbCr, _ time.Time) { onPicture(img, time.Now()) }
	}
	if send {
		p, err := video.NewTestPattern(video.PatternConfig{Width: 640, Height: 360, FrameRate: 30})
		if err != nil {
			return nil, nil, err
		}
		cfg.Camera = p
	}
	call := pipeline.New(cfg)
	c := client.New(client.Config{Invite: inv, Name: name, Media: call})
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { c.Run(ctx) })
	wg.Go(func() {
		for range c.Events() {
		}
	})
	wg.Go(func() { call.Run(ctx, c) })
	return call, func() { cancel(); wg.Wait() }, nil
}

// glassToGlass measures the time from the test pattern's capture to the
// decoded picture at a receiver, through a relay in a child process, on
// loopback; it reads the capture time from the stamp in the picture.
func glassToGlass(ctx context.Context, d time.Duration) (*histogram, error) {
	srv, err := startChild(ctx, "parley")
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	h := newHistogram()
	var measuring atomic.Bool
	_, stopRecv, err := mediaMember(ctx, srv.hello.Invite, "watcher", false, func(img *image.YCbCr, at time.Time) {
		if captured, _, ok := video.ReadStamp(img); ok && measuring.Load() {
			h.add(at.Sub(captured))
		}
	})
	if err != nil {
		return nil, err
	}
	defer stopRecv()
	_, stopSend, err := mediaMember(ctx, srv.hello.Invite, "camera", true, nil)
	if err != nil {
		return nil, err
	}
	defer stopSend()
	sleep(ctx, 2*time.Second) // the first keyframe and the pacer's start
	measuring.Store(true)
	sleep(ctx, d)
	measuring.Store(false)
	return h, nil
}

// mediaClientMain is the hidden "media-client" command: one member that
// sends the test pattern and decodes what it receives, until its input
// ends, so that its CPU time can be measured on its own.
func mediaClientMain(args []string) error {
	fs := flag.NewFlagSet("media-client", flag.ContinueOnError)
	invite := fs.String("invite", "", "invite link")
	name := fs.String("name", "measured", "member name")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var decoded atomic.Uint64
	_, stop, err := mediaMember(context.Background(), *invite, *name, true, func(*image.YCbCr, time.Time) { decoded.Add(1) })
	if err != nil {
		return err
	}
	fmt.Println("ready")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		fmt.Println(decoded.Load())
	}
	stop()
	return nil
}

// clientCost measures the CPU of one client (a child process) that sends
// 640×360 VP8 at 30 fps while it receives and decodes four such streams.
func clientCost(ctx context.Context, d time.Duration) (cores float64, decodedPerSec float64, err error) {
	srv, err := startChild(ctx, "parley")
	if err != nil {
		return 0, 0, err
	}
	defer srv.stop()
	for i := range 4 {
		_, stop, err := mediaMember(ctx, srv.hello.Invite, fmt.Sprint("sender", i), true, nil)
		if err != nil {
			return 0, 0, err
		}
		defer stop()
	}
	self, err := os.Executable()
	if err != nil {
		return 0, 0, err
	}
	cmd := exec.CommandContext(ctx, self, "media-client", "--invite", srv.hello.Invite)
	in, _ := cmd.StdinPipe()
	outPipe, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	defer func() { in.Close(); cmd.Wait() }()
	out := bufio.NewScanner(outPipe)
	if !out.Scan() || out.Text() != "ready" {
		return 0, 0, fmt.Errorf("the measured client did not start")
	}
	count := func() uint64 {
		fmt.Fprintln(in)
		if !out.Scan() {
			return 0
		}
		var n uint64
		fmt.Sscan(out.Text(), &n)
		return n
	}
	sleep(ctx, 3*time.Second)
	p0, err := readProc(cmd.Process.Pid)
	if err != nil {
		return 0, 0, err
	}
	n0, t0 := count(), time.Now()
	sleep(ctx, d)
	p1, err := readProc(cmd.Process.Pid)
	if err != nil {
		return 0, 0, err
	}
	n1, secs := count(), time.Since(t0).Seconds()
	return (p1.CPU - p0.CPU).Seconds() / secs, float64(n1-n0) / secs, nil
}
