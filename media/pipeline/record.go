package pipeline

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleychat/parley/media/record"
	"github.com/parleychat/parley/protocol"
)

// Recorder writes what each other member sends, as received and without
// decoding, to files named after the member: NAME.ivf (VP8 in IVF, the
// camera track), NAME-screen.ivf (the screen track) and NAME.ogg (Opus in
// Ogg). ffmpeg and other players read them. A member who leaves and comes
// back goes on in the same files.
//
// Video starts at a keyframe; its timestamps are the capture times,
// relative to the first frame, in thirtieths of a second (a frame that
// would share a tick with the one before goes to the next tick). Voice keeps time across losses: a frame
// that did not arrive (the relay dropped it for a slow link, or the
// speaker was away) is written as an empty Opus frame, which players turn
// into concealment or silence, so the file stays in step with the call.
type Recorder struct {
	dir string

	mu       sync.Mutex // guards files and closed
	files    map[string]*recording
	closed   bool
	unnamed  atomic.Uint64 // frames from members not yet in the roster
	firstErr error
	names    []string // files created, in order
}

// recording is one member's files.
type recording struct {
	video [protocol.MaxTrack + 1]*ivfTrack
	ogg   *record.OggWriter
	oggF  *os.File
	// The last voice frame written: its capture time and TOC byte.
	lastVoice int64
	lastTOC   byte
	voice     int
}

type ivfTrack struct {
	f     *os.File
	w     *record.IVFWriter
	start int64 // capture time of the first frame, µs
	last  uint64
}

// recordFrameRate is the time base of recorded video, in ticks per second:
// the highest frame rate senders use.
const recordFrameRate = 30

// maxGapFill bounds the silence written for one gap in a speaker's voice.
const maxGapFill = 10 * time.Second

// NewRecorder makes dir if needed and returns a recorder writing there.
func NewRecorder(dir string) (*Recorder, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return &Recorder{dir: dir, files: make(map[string]*recording)}, nil
}

// lookup returns the recording of the member with an ID, or nil when the
// member is not in the roster yet. r.mu must be held.
func (r *Recorder) lookupLocked(conn Conn, id uint32) *recording {
	if conn == nil || r.closed {
		return nil
	}
	m, ok := conn.Member(id)
	if !ok {
		r.unnamed.Add(1)
		return nil
	}
	rec := r.files[m.Name]
	if rec == nil {
		rec = &recording{}
		r.files[m.Name] = rec
	}
	return rec
}

func (r *Recorder) fail(err error) {
	if err != nil && r.firstErr == nil {
		r.firstErr = err
	}
}

// voice records one voice frame.
func (r *Recorder) voice(conn Conn, v *protocol.Voice) {
	if v.Codec != protocol.CodecOpus || len(v.Data) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	rec := r.lookupLocked(conn, v.Source)
	if rec == nil {
		return
	}
	if rec.ogg == nil {
		m, _ := conn.Member(v.Source)
		f, err := os.Create(filepath.Join(r.dir, m.Name+".ogg"))
		if err != nil {
			r.fail(err)
			return
		}
		w, err := record.NewOggWriter(f, record.OggConfig{})
		if err != nil {
			f.Close()
			r.fail(err)
			return
		}
		rec.ogg, rec.oggF = w, f
		r.names = append(r.names, f.Name())
	} else if gap := time.Duration(v.Captured-rec.lastVoice) * time.Microsecond; gap > 30*time.Millisecond {
		// Frames missing since the last one: keep time with empty frames
		// (a TOC byte alone, code 0: one frame of no data).
		empty := []byte{rec.lastTOC &^ 0x03}
		n := int(min(gap, maxGapFill)/(20*time.Millisecond)) - 1
		for range n {
			r.fail(rec.ogg.WritePacket(empty))
		}
	}
	if v.Captured <= rec.lastVoice && rec.voice > 0 {
		return // a duplicate or a step back: keep the file monotonic
	}
	r.fail(rec.ogg.WritePacket(v.Data))
	rec.lastVoice, rec.lastTOC = v.Captured, v.Data[0]
	rec.voice++
}

// video records one whole video frame.
func (r *Recorder) video(conn Conn, f *protocol.VideoFrame) {
	if f.Codec != protocol.CodecVP8 || f.Track > protocol.MaxTrack {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	rec := r.lookupLocked(conn, f.Source)
	if rec == nil {
		return
	}
	t := rec.video[f.Track]
	if t == nil {
		w, h, ok := vp8Size(f.Data)
		if !f.Keyframe || !ok {
			return // a recording starts at a keyframe
		}
		m, _ := conn.Member(f.Source)
		name := m.Name + ".ivf"
		if f.Track == protocol.TrackScreen {
			name = m.Name + "-screen.ivf"
		}
		file, err := os.Create(filepath.Join(r.dir, name))
		if err != nil {
			r.fail(err)
			return
		}
		// A time base of one frame at 30 fps, as libvpx's own files have:
		// ffmpeg takes the time base for the frame rate when frames come
		// irregularly, and with milliseconds would make a 1000 fps video
		// of every frame repeated when converting to MP4 or raw video.
		iw, err := record.NewIVFWriter(file, record.IVFHeader{Width: uint16(w), Height: uint16(h), TimebaseNum: 1, TimebaseDen: recordFrameRate})
		if err != nil {
			file.Close()
			r.fail(err)
			return
		}
		t = &ivfTrack{f: file, w: iw, start: f.Captured}
		r.names = append(r.names, file.Name())
		rec.video[f.Track] = t
	}
	pts := t.w.Timestamp(time.Duration(f.Captured-t.start) * time.Microsecond)
	if t.w.Header().Frames > 0 && pts <= t.last {
		pts = t.last + 1
	}
	r.fail(t.w.WriteFrame(f.Data, pts))
	t.last = pts
}

// vp8Size reads the picture size from a VP8 keyframe's header (RFC 6386
// §9.1): a 3-byte frame tag, the start code 9d 01 2a, then 14-bit width
// and height.
func vp8Size(b []byte) (w, h int, ok bool) {
	if len(b) < 10 || b[0]&1 != 0 || b[3] != 0x9d || b[4] != 0x01 || b[5] != 0x2a {
		return 0, 0, false
	}
	w = int(b[6]) | int(b[7]&0x3f)<<8
	h = int(b[8]) | int(b[9]&0x3f)<<8
	return w, h, w > 0 && h > 0
}

// Close finishes and closes every file. It reports the first error any
// write met.
func (r *Recorder) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return r.firstErr
	}
	r.closed = true
	var errs []error
	for name, rec := range r.files {
		for _, t := range rec.video {
			if t != nil {
				errs = append(errs, t.w.Close(), t.f.Close())
			}
		}
		if rec.ogg != nil {
			errs = append(errs, rec.ogg.Close(), rec.oggF.Close())
		}
		delete(r.files, name)
	}
	if err := errors.Join(errs...); err != nil && r.firstErr == nil {
		r.firstErr = fmt.Errorf("pipeline: closing recordings: %w", err)
	}
	return r.firstErr
}

// Files returns the names of the files created so far.
func (r *Recorder) Files() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.names...)
}
