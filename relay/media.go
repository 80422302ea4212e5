package relay

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleychat/parley/protocol"
)

// mediaFrame is one voice frame or video fragment on its way from a sender
// to the other members of a room: the whole wire frame, with the sender's
// member ID already written into it. One copy is shared by every
// receiver's queue; it goes back to its pool when the last receiver has
// written or dropped it.
type mediaFrame struct {
	buf      []byte // header and payload, ready to write
	kind     protocol.StreamKind
	key      srcTrack
	index    uint16 // fragment index (video)
	keyframe bool   // a fragment of a keyframe (video)
	arrived  int64  // when the relay read it, in ns of the monotonic clock (mono)
	from     *session
	refs     atomic.Int32
	pool     *sync.Pool
}

// srcTrack names one video (or voice, with track 0) source of a room.
type srcTrack struct {
	source uint32
	track  protocol.Track
}

// startsKeyframe reports whether f is the first fragment of a keyframe,
// where a receiver that lost video can start again.
func (f *mediaFrame) startsKeyframe() bool { return f.keyframe && f.index == 0 }

// release drops one reference and recycles the frame after the last.
func (f *mediaFrame) release() {
	if f.refs.Add(-1) == 0 {
		f.from = nil
		f.pool.Put(f)
	}
}

// Frame pools by size, so that forwarding does not allocate: voice frames,
// video fragments of the default size, and the largest fragments.
var (
	smallFrames = framePool(512)
	midFrames   = framePool(protocol.HeaderSize + 4<<10)
	largeFrames = framePool(protocol.HeaderSize + protocol.VideoHeaderSize + protocol.MaxVideoData)
)

func framePool(size int) *sync.Pool {
	p := new(sync.Pool)
	p.New = func() any { return &mediaFrame{buf: make([]byte, 0, size), pool: p} }
	return p
}

// newMediaFrame copies a media payload read from the sender into a pooled
// frame, with its header and the sender's ID as source. The caller holds
// the one reference it returns with.
func newMediaFrame(t protocol.Type, payload []byte, source uint32) *mediaFrame {
	n := protocol.HeaderSize + len(payload)
	pool := largeFrames
	switch {
	case n <= 512:
		pool = smallFrames
	case n <= protocol.HeaderSize+4<<10:
		pool = midFrames
	}
	f := pool.Get().(*mediaFrame)
	f.buf = protocol.AppendHeader(f.buf[:0], protocol.Header{Type: t, Length: uint32(len(payload))})
	f.buf = append(f.buf, payload...)
	binary.BigEndian.PutUint32(f.buf[protocol.HeaderSize:], source)
	f.refs.Store(1)
	f.arrived = mono()
	return f
}

// epoch anchors mono.
var epoch = time.Now()

// mono returns nanoseconds of the monotonic clock: cheaper to keep and
// compare than a time.Time.
func mono() int64 { return int64(time.Since(epoch)) }

// frameQueue is a FIFO of media frames. It is guarded by its session's mu.
type frameQueue struct {
	frames []*mediaFrame // frames[head:] are queued
	head   int
	bytes  int
}

func (q *frameQueue) len() int { return len(q.frames) - q.head }

func (q *frameQueue) push(f *mediaFrame) {
	if q.head > 0 && q.head == len(q.frames) {
		q.frames, q.head = q.frames[:0], 0
	}
	q.frames = append(q.frames, f)
	q.bytes += len(f.buf)
}

func (q *frameQueue) peek() *mediaFrame { return q.frames[q.head] }

func (q *frameQueue) pop() *mediaFrame {
	f := q.frames[q.head]
	q.frames[q.head] = nil
	q.head++
	q.bytes -= len(f.buf)
	if q.head == len(q.frames) {
		q.frames, q.head = q.frames[:0], 0
	} else if q.head > 256 && q.head > len(q.frames)/2 {
		n := copy(q.frames, q.frames[q.head:])
		clear(q.frames[n:])
		q.frames, q.head = q.frames[:n], 0
	}
	return f
}

// takeAll moves every queued frame into dst and empties the queue.
func (q *frameQueue) takeAll(dst []*mediaFrame) []*mediaFrame {
	dst = append(dst, q.frames[q.head:]...)
	clear(q.frames)
	q.frames, q.head, q.bytes = q.frames[:0], 0, 0
	return dst
}

// clearAll releases every queued frame.
func (q *frameQueue) clearAll() {
	for _, f := range q.frames[q.head:] {
		f.release()
	}
	clear(q.frames)
	q.frames, q.head, q.bytes = q.frames[:0], 0, 0
}

// MediaStats counts one session's media, by what happened to it. Drops
// are counted where they happen: at ingress for what a sender sent, in the
// receiver's queues for what it was to receive.
type MediaStats struct {
	VoiceIn, VideoIn uint64 // frames / fragments received from this client and forwarded
	// Dropped at ingress: the sender was not in a room, over its bitrate
	// cap, or sent a track the relay does not forward.
	InNotInRoom, InOverCap, InBadTrack uint64

	VoiceOut, VideoOut uint64 // frames / fragments written to this client
	// VoiceLate: voice dropped because it waited longer than
	// VoiceQueueDelay (the oldest go first).
	VoiceLate uint64
	// VideoCongested: fragments dropped when this client's video queue
	// overflowed; VideoWaitKey: fragments dropped until the next keyframe
	// after that.
	VideoCongested, VideoWaitKey uint64
	// KeyframeRequests: requests sent to this client (as a sender).
	KeyframeRequests uint64

	// The pacer's view of the link to this client: the rate it paces
	// media at (0: not pacing), the latest round trip of its Pings, and
	// how much of that was queueing.
	PaceBps     uint64
	RTT, Queued time.Duration
}

// mediaCounters is MediaStats with atomic fields; senders' goroutines and
// the writer update them concurrently.
type mediaCounters struct {
	voiceIn, videoIn                    atomic.Uint64
	inNotInRoom, inOverCap, inBadTrack  atomic.Uint64
	voiceOut, videoOut                  atomic.Uint64
	voiceLate, videoCongested, videoKey atomic.Uint64
	keyframeRequests                    atomic.Uint64
	paceBps                             atomic.Uint64
	rtt, queued                         atomic.Int64
}

func (c *mediaCounters) snapshot() MediaStats {
	return MediaStats{
		VoiceIn: c.voiceIn.Load(), VideoIn: c.videoIn.Load(),
		InNotInRoom: c.inNotInRoom.Load(), InOverCap: c.inOverCap.Load(), InBadTrack: c.inBadTrack.Load(),
		VoiceOut: c.voiceOut.Load(), VideoOut: c.videoOut.Load(),
		VoiceLate: c.voiceLate.Load(), VideoCongested: c.videoCongested.Load(), VideoWaitKey: c.videoKey.Load(),
		KeyframeRequests: c.keyframeRequests.Load(),
		PaceBps:          c.paceBps.Load(),
		RTT:              time.Duration(c.rtt.Load()),
		Queued:           time.Duration(c.queued.Load()),
	}
}

// add accumulates the counters of s into t (not the pacer's view: sums of
// rates and round trips mean nothing).
func (t *MediaStats) add(s MediaStats) {
	t.VoiceIn += s.VoiceIn
	t.VideoIn += s.VideoIn
	t.InNotInRoom += s.InNotInRoom
	t.InOverCap += s.InOverCap
	t.InBadTrack += s.InBadTrack
	t.VoiceOut += s.VoiceOut
	t.VideoOut += s.VideoOut
	t.VoiceLate += s.VoiceLate
	t.VideoCongested += s.VideoCongested
	t.VideoWaitKey += s.VideoWaitKey
	t.KeyframeRequests += s.KeyframeRequests
}
