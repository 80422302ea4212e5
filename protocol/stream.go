package protocol

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/yamux"
)

// Stream is one yamux stream of one kind, carrying frames. One goroutine may
// read while others write; writes are serialised so frames never interleave.
type Stream struct {
	conn net.Conn
	kind StreamKind
	fr   *FrameReader
	// alive, set on the server's streams, reports whether the session
	// still lives: a stream that ends while it does was closed or reset
	// by the client, which is a protocol error (see ended).
	alive func() bool

	wmu  sync.Mutex // guards wbuf and serialises writes
	wbuf []byte
}

func newStream(c net.Conn, kind StreamKind) *Stream {
	return &Stream{conn: c, kind: kind, fr: NewFrameReader(c)}
}

// Kind returns the stream's kind.
func (s *Stream) Kind() StreamKind { return s.kind }

// ReadFrame reads the next frame whose type may appear on this stream. It
// skips frames of unknown types unless they are flagged critical. The
// payload aliases the stream's read buffer and is valid until the next read.
func (s *Stream) ReadFrame() (Header, []byte, error) {
	for {
		h, p, err := s.fr.Next()
		if err != nil {
			return h, nil, s.ended(err)
		}
		if h.Type == 0 {
			return h, nil, errorf(CodeMalformed, "frame type 0 on %s stream", s.kind)
		}
		if !h.Type.AllowedOn(s.kind) {
			return h, nil, errorf(CodeUnexpected, "%s frame on %s stream", h.Type, s.kind)
		}
		if h.Type.Known() {
			return h, p, nil
		}
		if h.Flags&FlagCritical != 0 {
			return h, nil, errorf(CodeUnknownCritical, "unknown critical frame %s", h.Type)
		}
		// Unknown and not critical: skipped, as the spec says.
	}
}

// ended turns the end of a server stream while its session lives into
// the protocol error it is: a client must not close or reset a stream
// (docs/protocol.md §3). A stream that ends inside a frame is malformed.
// When the whole session has ended, err is returned as it is.
func (s *Stream) ended(err error) error {
	if s.alive == nil || !s.alive() {
		return err
	}
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errorf(CodeMalformed, "the client ended its %s stream inside a frame", s.kind)
	case errors.Is(err, io.EOF):
		return errorf(CodeBadStream, "the client closed its %s stream", s.kind)
	case errors.Is(err, yamux.ErrConnectionReset):
		return errorf(CodeBadStream, "the client reset its %s stream", s.kind)
	}
	return err
}

// ReadMessage reads and decodes the next message (see ReadFrame).
func (s *Stream) ReadMessage() (Message, error) {
	h, p, err := s.ReadFrame()
	if err != nil {
		return nil, err
	}
	return Decode(h.Type, p)
}

// WriteMessage encodes m and writes it as one frame.
func (s *Stream) WriteMessage(m Message) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	b, err := m.AppendBinary(s.wbuf[:0])
	if err != nil {
		return err
	}
	s.wbuf = b
	_, err = s.conn.Write(b)
	if cap(s.wbuf) > 64<<10 {
		s.wbuf = nil // do not pin a large buffer on an idle stream
	}
	return err
}

// WriteFrames writes already encoded frames in one write. Callers batch
// several frames to save per-write costs in yamux and TLS.
func (s *Stream) WriteFrames(frames []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_, err := s.conn.Write(frames)
	return err
}

// SetReadLimit caps every payload read from this stream at n bytes in
// addition to the per-type caps (0 removes it).
func (s *Stream) SetReadLimit(n uint32) { s.fr.SetLimit(n) }

// ReleaseBuffers drops the read buffer so an idle stream holds no memory.
// It must not be called while another goroutine reads the stream.
func (s *Stream) ReleaseBuffers() { s.fr.Release() }

// ShrinkBuffers lets go of the multiplexer's receive buffer if it holds no
// unread data. yamux keeps a stream's buffer at the largest size a burst
// made it (up to twice the 256 KiB window) for as long as the stream
// lives; a server calls this now and then so that a burst's memory does
// not stay with an idle stream. It is safe while another goroutine reads
// the stream, and costs one allocation when data next arrives.
func (s *Stream) ShrinkBuffers() {
	if ys, ok := s.conn.(*yamux.Stream); ok {
		ys.Shrink()
	}
}

// SetWriteDeadline sets the deadline for writes on this stream.
func (s *Stream) SetWriteDeadline(t time.Time) error { return s.conn.SetWriteDeadline(t) }

// SetReadDeadline sets the deadline for reads on this stream.
func (s *Stream) SetReadDeadline(t time.Time) error { return s.conn.SetReadDeadline(t) }

// Close closes the stream.
func (s *Stream) Close() error { return s.conn.Close() }
