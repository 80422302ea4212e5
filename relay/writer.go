package relay

import (
	"errors"
	"os"
	"time"

	"github.com/hashicorp/yamux"
	"github.com/parleychat/parley/protocol"
	"github.com/parleychat/parley/relay/history"
)

// Writer batching limits: one write carries at most this many log entries
// or bytes, so that control messages queued meanwhile wait at most one
// batch.
const (
	maxBatchEntries = 64
	maxBatchBytes   = 64 << 10
	dbPage          = 256
)

// writer is the state of a session's writer goroutine.
type writer struct {
	s       *session
	ctl     []byte // control frames taken from the queue
	txt     []byte // text replies taken from the queue
	out     []byte // text log frames being batched
	entries []*history.Entry
	epoch   uint64

	voice   []*mediaFrame // voice frames taken from the queue
	voiceB  []byte        // voice frames being batched
	pacer   *pacer        // made when the client first wants video (nil until then)
	written uint64        // bytes written to the client, all streams
	// wakeIn is when the writer must run again without being woken: the
	// earliest of the pacer's next slot, the next Ping, a throttled
	// keyframe request, the next bitrate hint. 0: not before a wake.
	wakeIn     time.Duration
	pingNonce  uint64
	videoOutAt int64 // mono() of the last video written to the client
	voiceOutAt int64 // mono() of the last voice written to the client
	media      senderState
	cur        *mediaFrame // the video fragment being written, in chunks
	curOff     int         // how much of cur is written
}

// writeLoop is the session's only writer. Each round it writes, in
// priority order: control (with the relay's own pings, keyframe requests
// and bitrate hints), voice, text replies and the text log, then one video
// fragment if the pacer allows, and starts over, so that nothing urgent
// waits behind more than one fragment.
func (s *session) writeLoop() {
	w := &writer{s: s}
	s.progress.Store(time.Now().UnixNano())
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-s.kick:
		case <-timer.C:
		case <-s.closing:
			return
		case <-s.sc.Done():
			return
		}
		for {
			select {
			case <-s.closing:
				return
			default:
			}
			w.wakeIn = 0
			progress, err := w.round()
			if err != nil {
				s.writeFailed(err)
				return
			}
			if !progress {
				break
			}
		}
		timer.Stop()
		if w.wakeIn > 0 {
			timer.Reset(w.wakeIn)
		}
	}
}

// wakeAfter makes the writer run again within d.
func (w *writer) wakeAfter(d time.Duration) {
	d = max(d, 100*time.Microsecond)
	if w.wakeIn == 0 || d < w.wakeIn {
		w.wakeIn = d
	}
}

// writeFailed closes the session after a failed write.
func (s *session) writeFailed(err error) {
	var ne interface{ Timeout() bool }
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, yamux.ErrConnectionWriteTimeout) ||
		errors.Is(err, yamux.ErrTimeout) || (errors.As(err, &ne) && ne.Timeout()) {
		s.closeWith(CloseWriteTimeout, "a write timed out")
		return
	}
	// A plain end of the connection is for the control reader to judge:
	// it may be about to read the client's Goodbye.
	s.closeOnStreamError(err)
}

// round writes what is most urgent and reports whether it wrote anything.
func (w *writer) round() (bool, error) {
	s := w.s
	now := mono()
	w.takePong()
	s.mu.Lock()
	w.ctl, s.ctlOut = s.ctlOut, w.ctl[:0]
	text := s.streams[protocol.KindText]
	if text != nil {
		w.txt, s.textOut = s.textOut, w.txt[:0]
	}
	r, m := s.room, s.member
	if s.epoch != w.epoch {
		w.epoch = s.epoch
		s.cursor.Store(s.startCursor)
		s.synced.Store(false)
	}
	voiceSt, videoSt := s.streams[protocol.KindVoice], s.streams[protocol.KindVideo]
	voiceDue := w.voiceMayGo(now)
	if voiceDue {
		w.voice = s.voiceQ.takeAll(w.voice[:0])
	}
	videoQueued := s.videoQ.len() > 0
	s.mu.Unlock()

	w.ctl = w.relayControl(w.ctl, r, m, now, videoQueued)
	wrote := len(w.ctl) > 0
	if len(w.ctl) > 0 {
		if err := w.write(s.ctl, w.ctl); err != nil {
			return false, err
		}
	}
	if len(w.voice) > 0 {
		wroteVoice, err := w.writeVoice(voiceSt, now)
		if err != nil {
			return false, err
		}
		wrote = wrote || wroteVoice
	}
	if text != nil {
		if len(w.txt) > 0 {
			if err := w.write(text, w.txt); err != nil {
				return false, err
			}
			wrote = true
		}
		if m != nil {
			wroteLog, err := w.tailLog(text, r, m)
			if err != nil {
				return false, err
			}
			wrote = wrote || wroteLog
		}
	}
	if (videoQueued || w.cur != nil) && videoSt != nil {
		wroteVideo, err := w.writeVideo(videoSt)
		if err != nil {
			return false, err
		}
		wrote = wrote || wroteVideo
	}
	// A large batch (a roster, a history replay) is rare: do not keep its
	// buffers for the rest of the session. (ctl and txt go back to the
	// session's queues at the next round.)
	w.ctl, w.txt = shrink(w.ctl), shrink(w.txt)
	return wrote, nil
}

// shrink drops a buffer grown beyond what a session needs to keep.
func shrink(b []byte) []byte {
	if cap(b) > maxWrite {
		return nil
	}
	return b
}

// maxWrite is the most the writer hands yamux at once. yamux keeps a copy
// buffer the size of the largest write it was ever given, for the life of
// the session, and so does the layer under it: writes of at most 2 KiB keep
// an idle session's memory small after a large Joined roster or a history
// replay (a Parley frame may span several writes).
const maxWrite = 2 << 10

func (w *writer) write(st *protocol.Stream, b []byte) error {
	st.SetWriteDeadline(time.Now().Add(w.s.srv.cfg.WriteTimeout))
	for rest := b; len(rest) > 0; {
		n := min(len(rest), maxWrite)
		if err := st.WriteFrames(rest[:n]); err != nil {
			return err
		}
		rest = rest[n:]
	}
	w.s.progress.Store(time.Now().UnixNano())
	w.written += uint64(len(b))
	if w.pacer != nil {
		w.pacer.spend(len(b), mono())
	}
	return nil
}

// tailLog sends the next batch of the room's log after the cursor: gap
// markers, the messages this member may see, and Synced once caught up.
func (w *writer) tailLog(text *protocol.Stream, r *room, m *member) (bool, error) {
	s := w.s
	cursor := s.cursor.Load()
	head, low := r.position()
	w.out = w.out[:0]
	var err error
	if cursor < head {
		if cursor+1 < low {
			// Retention removed messages this member never got.
			w.out, _ = (&protocol.Gap{From: cursor + 1, To: low - 1}).AppendBinary(w.out)
			cursor = low - 1
		}
		if w.entries == nil {
			w.entries = make([]*history.Entry, 0, maxBatchEntries) // only once the member has text to read
		}
		entries, ok := r.entriesAfter(cursor, maxBatchEntries, w.entries)
		if !ok {
			if entries, err = s.srv.store.Range(r.name, cursor, dbPage); err != nil {
				return false, &protocol.Error{Code: protocol.CodeInternal, Message: "reading history: " + err.Error()}
			}
			if len(entries) == 0 || entries[0].Seq > cursor+1 {
				// Removed by retention between the check above and the
				// read: the missing run is a gap too.
				end := head
				if len(entries) > 0 {
					end = entries[0].Seq - 1
				}
				w.out, _ = (&protocol.Gap{From: cursor + 1, To: end}).AppendBinary(w.out)
				cursor = end
			}
		}
		for _, e := range entries {
			if e.Seq > head || len(w.out) >= maxBatchBytes {
				break
			}
			cursor = e.Seq
			if !m.visible(e) {
				continue
			}
			msg := protocol.Chat{Seq: e.Seq, Time: e.Time, From: e.From, To: e.To, Text: e.Text}
			if e.From == m.name && e.Seq > m.dmSince {
				msg.ClientID = e.ClientID // only in the sender's own copy
			}
			if w.out, err = msg.AppendBinary(w.out); err != nil {
				return false, err
			}
		}
		clear(w.entries[:cap(w.entries)]) // do not pin entries in the reused buffer
	}
	caughtUp := cursor >= head
	if caughtUp && !s.synced.Load() {
		w.out, _ = (&protocol.Synced{Seq: head}).AppendBinary(w.out)
	}
	if len(w.out) > 0 {
		if err := w.write(text, w.out); err != nil {
			return false, err
		}
	}
	progress := cursor != s.cursor.Load() || len(w.out) > 0
	s.cursor.Store(cursor)
	if caughtUp {
		s.synced.Store(true)
	}
	w.out = shrink(w.out) // a batch this big is rare: do not keep its buffer
	return progress, nil
}
