package protocol

import (
	"bytes"
	"errors"
	"io"
	"net"
	"reflect"
	"testing"
)

// pipeStream returns a stream of kind reading input from a net.Pipe. The
// writer goroutine ends when the test does.
func pipeStream(t *testing.T, kind StreamKind, input []byte) *Stream {
	t.Helper()
	a, b := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.Write(input) // fails once the reader closes its end
		b.Close()
	}()
	t.Cleanup(func() {
		a.Close()
		<-done
	})
	return newStream(a, kind)
}

// rawFrame returns a frame of any type with a payload of n bytes.
func rawFrame(typ Type, flags uint8, n int) []byte {
	return append(AppendHeader(nil, Header{Type: typ, Flags: flags, Length: uint32(n)}), make([]byte, n)...)
}

func concat(frames ...[]byte) []byte { return bytes.Join(frames, nil) }

func TestStreamUnknownTypes(t *testing.T) {
	ping := readGolden(t, "ping")
	errFrame := readGolden(t, "error")
	chat := readGolden(t, "chat")
	tests := []struct {
		name  string
		kind  StreamKind
		input []byte
		want  Message   // nil when an error is expected
		code  ErrorCode // the expected error's code
	}{
		{"unknown extension skipped", KindControl,
			concat(rawFrame(0x90, 0, 5), ping), &Ping{Nonce: 0x0123456789abcdef}, CodeNone},
		{"several unknown skipped", KindText,
			concat(rawFrame(0x90, 0, 0), rawFrame(0xff, 0xfe, 100), rawFrame(0x80, 0, MaxUnknownPayload), chat),
			goldenMessage(t, "chat"), CodeNone},
		{"unknown control type skipped", KindControl,
			concat(rawFrame(0x2f, 0, 3), rawFrame(0x13, 0, 64), ping), &Ping{Nonce: 0x0123456789abcdef}, CodeNone},
		{"unknown voice type skipped", KindVoice,
			concat(rawFrame(0x5f, 0, 160), errFrame), goldenMessage(t, "error"), CodeNone},
		{"unknown video type skipped", KindVideo,
			concat(rawFrame(0x61, 0, 1200), rawFrame(0x6f, 0, 1), errFrame), goldenMessage(t, "error"), CodeNone},
		{"reserved file type skipped", KindFile,
			concat(rawFrame(TypeFileChunk, 0, 1200), errFrame), goldenMessage(t, "error"), CodeNone},
		{"voice", KindVoice, readGolden(t, "voice"), goldenMessage(t, "voice"), CodeNone},
		{"video on voice", KindVoice, readGolden(t, "video-fragment"), nil, CodeUnexpected},
		{"unknown critical", KindText,
			concat(rawFrame(0x90, FlagCritical, 5), chat), nil, CodeUnknownCritical},
		{"reserved critical", KindVoice,
			concat(rawFrame(0x5e, FlagCritical|0x02, 5), errFrame), nil, CodeUnknownCritical},
		{"voice over its cap", KindVoice, rawFrame(TypeVoice, 0, 4097), nil, CodeFrameTooLarge},
		{"unknown over its cap", KindControl,
			concat(rawFrame(0x90, 0, MaxUnknownPayload+1), ping), nil, CodeFrameTooLarge},
		{"send-chat on control", KindControl, readGolden(t, "send-chat"), nil, CodeUnexpected},
		{"ping on text", KindText, ping, nil, CodeUnexpected},
		{"chat on voice", KindVoice, chat, nil, CodeUnexpected},
		{"voice on control", KindControl, rawFrame(TypeVoice, 0, 10), nil, CodeUnexpected},
		{"type 0", KindControl, rawFrame(0, 0, 0), nil, CodeMalformed},
		{"type 0 on text", KindText, concat(rawFrame(0, 0, 4), chat), nil, CodeMalformed},
		{"error on text", KindText, errFrame, goldenMessage(t, "error"), CodeNone},
		{"error on control", KindControl, errFrame, goldenMessage(t, "error"), CodeNone},
		{"known type flagged critical", KindControl,
			func() []byte { b := bytes.Clone(ping); b[1] = FlagCritical; return b }(), &Ping{Nonce: 0x0123456789abcdef}, CodeNone},
		{"malformed payload", KindText,
			append(AppendHeader(nil, Header{Type: TypeGap, Length: 16}), unhex(t, "0000000000000002 0000000000000001")...), nil, CodeMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := pipeStream(t, tt.kind, tt.input)
			m, err := s.ReadMessage()
			switch {
			case tt.want != nil:
				if err != nil || !reflect.DeepEqual(m, tt.want) {
					t.Errorf("ReadMessage() = %+v, %v, want %+v", m, err, tt.want)
				}
			case CodeOf(err) != tt.code:
				t.Errorf("ReadMessage() = %+v, %v, want code %v", m, err, tt.code)
			}
		})
	}
}

// TestStreamGapZero checks that an all-zero Gap payload (from 0 to 0) is
// valid.
func TestStreamGapZero(t *testing.T) {
	s := pipeStream(t, KindText, rawFrame(TypeGap, 0, 16))
	m, err := s.ReadMessage()
	if err != nil || !reflect.DeepEqual(m, &Gap{}) {
		t.Errorf("ReadMessage() = %+v, %v, want %+v", m, err, &Gap{})
	}
}

func TestStreamReadFrameEOF(t *testing.T) {
	s := pipeStream(t, KindControl, concat(rawFrame(0x90, 0, 3), readGolden(t, "pong"), rawFrame(0x91, 0, 2)))
	h, p, err := s.ReadFrame()
	if err != nil || h.Type != TypePong || len(p) != 8 {
		t.Fatalf("ReadFrame() = %+v, %x, %v, want a pong", h, p, err)
	}
	// The trailing unknown frame is skipped, then the stream ends.
	if h, p, err := s.ReadFrame(); err != io.EOF {
		t.Errorf("ReadFrame() = %+v, %x, %v, want %v", h, p, err, io.EOF)
	}

	s = pipeStream(t, KindControl, rawFrame(0x90, 0, 3)[:5])
	if h, p, err := s.ReadFrame(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("ReadFrame() = %+v, %x, %v, want %v", h, p, err, io.ErrUnexpectedEOF)
	}
}

func TestStreamSetReadLimit(t *testing.T) {
	s := pipeStream(t, KindControl, readGolden(t, "hello"))
	s.SetReadLimit(10)
	if m, err := s.ReadMessage(); CodeOf(err) != CodeFrameTooLarge {
		t.Errorf("SetReadLimit(10); ReadMessage() = %+v, %v, want code %v", m, err, CodeFrameTooLarge)
	}
}

// TestStreamRoundTrip writes every golden message with WriteMessage and
// reads it back on the stream of its kind.
func TestStreamRoundTrip(t *testing.T) {
	for _, c := range goldenCases() {
		t.Run(c.name, func(t *testing.T) {
			kind := c.m.Type().Kind()
			a, b := net.Pipe()
			defer a.Close()
			defer b.Close()
			w, r := newStream(a, kind), newStream(b, kind)
			errc := make(chan error, 1)
			go func() { errc <- w.WriteMessage(c.m) }()
			m, err := r.ReadMessage()
			if err != nil || !reflect.DeepEqual(m, c.m) {
				t.Errorf("ReadMessage() = %+v, %v, want %+v", m, err, c.m)
			}
			if err := <-errc; err != nil {
				t.Errorf("WriteMessage(%+v) = %v", c.m, err)
			}
		})
	}
}

func TestStreamWriteFrames(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	w, r := newStream(a, KindText), newStream(b, KindText)
	frames := concat(readGolden(t, "chat"), readGolden(t, "gap"), readGolden(t, "synced"))
	errc := make(chan error, 1)
	go func() { errc <- w.WriteFrames(frames) }()
	for _, name := range []string{"chat", "gap", "synced"} {
		want := goldenMessage(t, name)
		m, err := r.ReadMessage()
		if err != nil || !reflect.DeepEqual(m, want) {
			t.Errorf("ReadMessage() = %+v, %v, want %+v", m, err, want)
		}
	}
	if err := <-errc; err != nil {
		t.Errorf("WriteFrames() = %v", err)
	}
}

func TestStreamWriteOverCap(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	w := newStream(a, KindText)
	// Nothing is written, so the unread pipe does not block.
	if err := w.WriteMessage(&SendChat{ClientID: 1, Text: string(make([]byte, MaxTextBytes+1))}); CodeOf(err) != CodeBadRequest {
		t.Errorf("WriteMessage(text over cap) = %v, want code %v", err, CodeBadRequest)
	}
}
