package ui

import (
	"image"
	"runtime"
	"testing"

	"github.com/parleychat/parley/protocol"
)

// callWithFeeds is a call of n people whose camera feeds the test keeps,
// to put new pictures in.
func callWithFeeds(tb testing.TB, n int) (*harness, []*VideoFeed) {
	hs := newHarness(tb, 960, 600, Options{})
	evs := callEvents(people(n))
	var feeds []*VideoFeed
	for _, ev := range evs {
		if p, ok := ev.(ParticipantJoined); ok && p.State&protocol.StateVideo != 0 {
			feeds = append(feeds, p.Camera)
		}
	}
	hs.post(evs...)
	hs.frames(3)
	return hs, feeds
}

// TestCallFrameAllocations: a frame of a nine-person call in which every
// camera that is on has a new picture allocates little and nothing that grows with the
// pictures: no picture buffer is made per frame (a 320×180 RGBA picture is
// 230 KB), and frame 200 costs what frame 20 did.
func TestCallFrameAllocations(t *testing.T) {
	hs, feeds := callWithFeeds(t, 9)
	pics := make([]*image.YCbCr, len(feeds))
	for i := range pics {
		pics[i] = solidPicture(320, 180, testPalettes[i%len(testPalettes)][0])
	}
	step := func() {
		for i, f := range feeds {
			f.Put(pics[i])
		}
		hs.frame()
	}
	for range 20 {
		step()
	}
	measure := func() (allocs, bytes float64) {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		const frames = 50
		for range frames {
			step()
		}
		runtime.ReadMemStats(&after)
		return float64(after.Mallocs-before.Mallocs) / frames, float64(after.TotalAlloc-before.TotalAlloc) / frames
	}
	a1, b1 := measure()
	for range 130 {
		step()
	}
	a2, b2 := measure()
	t.Logf("%d feeds: %.0f allocations and %.0f bytes per frame (frames 20-70), %.0f and %.0f (frames 200-250)", len(feeds), a1, b1, a2, b2)
	if b1 > 32<<10 || b2 > 32<<10 {
		t.Errorf("a frame allocates %.0f then %.0f bytes: more than a few small objects", b1, b2)
	}
	if a2 > a1*1.1+5 {
		t.Errorf("allocations per frame grew from %.0f to %.0f", a1, a2)
	}
}

// BenchmarkCallFrame lays out one frame of a nine-person call with a new
// picture in every feed (the frame loop's work, without the GPU).
func BenchmarkCallFrame(b *testing.B) {
	hs, feeds := callWithFeeds(b, 9)
	pic := solidPicture(320, 180, testPalettes[0][0])
	b.ReportAllocs()
	for b.Loop() {
		for _, f := range feeds {
			f.Put(pic)
		}
		hs.frame()
	}
}
