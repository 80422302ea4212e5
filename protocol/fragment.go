package protocol

import "fmt"

// VideoFrame is one whole encoded video frame, before it is cut into
// VideoFragments or after they are joined again.
type VideoFrame struct {
	Source   uint32 // the sender's member ID (0 when sending)
	Track    Track
	FrameSeq uint32
	Captured int64 // µs since the Unix epoch, sender's clock
	Codec    Codec
	Keyframe bool
	Data     []byte
}

// FragmentData returns the data bytes per fragment that cutting a frame of
// n bytes uses when asked for at most maxData: maxData clamped to
// 1..MaxVideoData, raised if needed so that the frame fits in MaxFragments.
func FragmentData(n, maxData int) int {
	maxData = min(max(maxData, 1), MaxVideoData)
	if need := (n + MaxFragments - 1) / MaxFragments; need > maxData {
		maxData = need
	}
	return maxData
}

// Fragment cuts the frame into fragments of at most maxData data bytes (see
// FragmentData) and calls fn for each, in order. The fragment passed to fn
// is reused between calls and its Data aliases f.Data. A frame that is
// empty or longer than MaxVideoFrameBytes is refused.
func (f *VideoFrame) Fragment(maxData int, fn func(*VideoFragment) error) error {
	n := len(f.Data)
	if n == 0 || n > MaxVideoFrameBytes {
		return fmt.Errorf("protocol: video frame of %d bytes, want 1 to %d", n, MaxVideoFrameBytes)
	}
	per := FragmentData(n, maxData)
	count := (n + per - 1) / per
	frag := VideoFragment{Source: f.Source, FrameSeq: f.FrameSeq, Captured: f.Captured, Track: f.Track,
		Codec: f.Codec, Count: uint16(count)}
	if f.Keyframe {
		frag.Flags = VideoKeyframe
	}
	for i := range count {
		frag.Index = uint16(i)
		frag.Data = f.Data[i*per : min((i+1)*per, n)]
		if err := fn(&frag); err != nil {
			return err
		}
	}
	return nil
}

// Reassembler joins video fragments into frames, for every sender and
// track of a room at once. Fragments of one frame must arrive in order, as
// the relay forwards them; a frame whose fragments do not (because the
// relay dropped some to let a slow receiver catch up, or the sender went
// away) is given up and counted, and its successors are still joined. It is
// not safe for concurrent use.
type Reassembler struct {
	// MaxFrameBytes bounds a frame (default MaxVideoFrameBytes); larger
	// frames are given up and counted as TooLarge.
	MaxFrameBytes int

	frames map[reassemblyKey]*partialFrame
	stats  ReassemblyStats
}

// ReassemblyStats counts what a Reassembler did.
type ReassemblyStats struct {
	Frames   uint64 // complete frames returned
	Broken   uint64 // frames given up because fragments were missing or out of place
	TooLarge uint64 // frames given up for exceeding MaxFrameBytes
}

type reassemblyKey struct {
	source uint32
	track  Track
}

// partialFrame is the frame being joined for one sender and track.
type partialFrame struct {
	active   bool // a frame is in progress
	seq      uint32
	next     uint16 // index of the fragment expected next
	count    uint16
	captured int64
	codec    Codec
	keyframe bool
	buf      []byte
}

// maxReassemblyKeys bounds the senders and tracks a Reassembler tracks;
// fragments of further ones are dropped as Broken.
const maxReassemblyKeys = 4 * MaxMembers

// Add takes the next fragment and returns the frame it completes, if any.
// The frame's Data aliases the reassembler's buffer for that sender and
// track and is valid until the next Add of a fragment from them. f is not
// retained.
func (r *Reassembler) Add(f *VideoFragment) (VideoFrame, bool) {
	if r.frames == nil {
		r.frames = make(map[reassemblyKey]*partialFrame)
	}
	key := reassemblyKey{f.Source, f.Track}
	p := r.frames[key]
	if p == nil {
		if len(r.frames) >= maxReassemblyKeys {
			r.stats.Broken++
			return VideoFrame{}, false
		}
		p = new(partialFrame)
		r.frames[key] = p
	}
	if f.Index == 0 {
		if p.active {
			r.stats.Broken++ // the previous frame never finished
		}
		*p = partialFrame{active: true, seq: f.FrameSeq, count: f.Count, captured: f.Captured,
			codec: f.Codec, keyframe: f.Keyframe(), buf: p.buf[:0]}
	} else if !p.active || f.FrameSeq != p.seq || f.Index != p.next || f.Count != p.count {
		if p.active {
			r.stats.Broken++
			p.active = false
		}
		return VideoFrame{}, false // a fragment of a frame whose start is lost
	}
	limit := r.MaxFrameBytes
	if limit <= 0 {
		limit = MaxVideoFrameBytes
	}
	if len(p.buf)+len(f.Data) > limit {
		r.stats.TooLarge++
		p.active = false
		p.buf = nil
		return VideoFrame{}, false
	}
	p.buf = append(p.buf, f.Data...)
	p.next++
	if p.next < p.count {
		return VideoFrame{}, false
	}
	p.active = false
	r.stats.Frames++
	return VideoFrame{Source: key.source, Track: key.track, FrameSeq: p.seq, Captured: p.captured,
		Codec: p.codec, Keyframe: p.keyframe, Data: p.buf}, true
}

// Forget drops the state kept for a sender, for example when it leaves.
func (r *Reassembler) Forget(source uint32) {
	for k := range r.frames {
		if k.source == source {
			delete(r.frames, k)
		}
	}
}

// Stats returns the counters.
func (r *Reassembler) Stats() ReassemblyStats { return r.stats }
