package protocol

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"runtime"
	"testing"
)

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestFrameReader(t *testing.T) {
	var stream []byte
	cases := goldenCases()
	for _, c := range cases {
		stream = append(stream, readGolden(t, c.name)...)
	}
	fr := NewFrameReader(bytes.NewReader(stream))
	for _, c := range cases {
		h, p, err := fr.Next()
		if err != nil {
			t.Fatalf("Next() error %v, want %v", err, c.name)
		}
		m, err := Decode(h.Type, p)
		if err != nil || !reflect.DeepEqual(m, c.m) {
			t.Errorf("Decode(Next()) = %+v, %v, want %+v", m, err, c.m)
		}
		if int(h.Length) != len(p) {
			t.Errorf("Next() = %+v with %d bytes of payload, want %d", h, len(p), h.Length)
		}
	}
	if h, p, err := fr.Next(); err != io.EOF {
		t.Errorf("Next() at the end = %+v, %x, %v, want %v", h, p, err, io.EOF)
	}
}

// TestFrameReaderTooLarge checks every type's cap: a declared length over it
// fails with CodeFrameTooLarge without reading past the header.
func TestFrameReaderTooLarge(t *testing.T) {
	for i := range 256 {
		typ := Type(i)
		hdr := AppendHeader(nil, Header{Type: typ, Length: MaxPayload(typ) + 1})
		// The body is there, so that reading it would succeed.
		cr := &countingReader{r: io.MultiReader(bytes.NewReader(hdr), zeros{})}
		h, p, err := NewFrameReader(cr).Next()
		if CodeOf(err) != CodeFrameTooLarge {
			t.Errorf("Next(%x) = %+v, %d bytes, %v, want code %v", hdr, h, len(p), err, CodeFrameTooLarge)
		}
		if cr.n != HeaderSize {
			t.Errorf("Next(%x) read %d bytes, want %d", hdr, cr.n, HeaderSize)
		}

		// Exactly the cap is accepted.
		hdr = AppendHeader(nil, Header{Type: typ, Length: MaxPayload(typ)})
		cr = &countingReader{r: io.MultiReader(bytes.NewReader(hdr), zeros{})}
		h, p, err = NewFrameReader(cr).Next()
		if err != nil || len(p) != int(MaxPayload(typ)) || h.Type != typ {
			t.Errorf("Next(%x) = %+v, %d bytes, %v, want %d bytes", hdr, h, len(p), err, MaxPayload(typ))
		}
		if want := HeaderSize + int(MaxPayload(typ)); cr.n != want {
			t.Errorf("Next(%x) read %d bytes, want %d", hdr, cr.n, want)
		}
	}
}

// zeros is an endless reader of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestFrameReaderNoAllocTooLarge checks that a huge declared length is
// refused without allocating a buffer of that size.
func TestFrameReaderNoAllocTooLarge(t *testing.T) {
	hdr := AppendHeader(nil, Header{Type: 0x90, Length: 1 << 31})
	r := bytes.NewReader(hdr)
	fr := NewFrameReader(r)
	var err error
	next := func() {
		r.Reset(hdr)
		_, _, err = fr.Next()
	}
	// The error itself allocates a little; the point is that nothing of
	// the declared size is.
	if allocs := testing.AllocsPerRun(100, next); allocs > 8 {
		t.Errorf("Next(%x) allocates %v times, want at most 8", hdr, allocs)
	}
	if CodeOf(err) != CodeFrameTooLarge {
		t.Errorf("Next(%x) = %v, want code %v", hdr, err, CodeFrameTooLarge)
	}
	const runs = 100
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		next()
	}
	runtime.ReadMemStats(&after)
	if perRun := (after.TotalAlloc - before.TotalAlloc) / runs; perRun > 1024 {
		t.Errorf("Next(%x) allocates %d bytes per call, want at most 1024", hdr, perRun)
	}
	if cap(fr.buf) != 0 {
		t.Errorf("after Next(%x) the buffer has capacity %d, want 0", hdr, cap(fr.buf))
	}
}

// TestFrameReaderSteadyStateNoAlloc checks that reading frames of a size
// seen before does not allocate.
func TestFrameReaderSteadyStateNoAlloc(t *testing.T) {
	frame := readGolden(t, "send-chat")
	r := bytes.NewReader(frame)
	fr := NewFrameReader(r)
	var err error
	allocs := testing.AllocsPerRun(100, func() {
		r.Reset(frame)
		_, _, err = fr.Next()
	})
	if err != nil || allocs != 0 {
		t.Errorf("Next(%x) allocates %v times, error %v, want 0, nil", frame, allocs, err)
	}
}

func TestFrameReaderSetLimit(t *testing.T) {
	hello := readGolden(t, "hello") // 19-byte payload
	ping := readGolden(t, "ping")   // 8-byte payload
	tests := []struct {
		limit uint32
		frame []byte
		code  ErrorCode
	}{
		{0, hello, CodeNone},
		{19, hello, CodeNone},
		{18, hello, CodeFrameTooLarge},
		{8, ping, CodeNone},
		{7, ping, CodeFrameTooLarge},
		{1000, hello, CodeNone},
	}
	for _, tt := range tests {
		cr := &countingReader{r: bytes.NewReader(tt.frame)}
		fr := NewFrameReader(cr)
		fr.SetLimit(tt.limit)
		_, _, err := fr.Next()
		if CodeOf(err) != tt.code || (tt.code == CodeNone && err != nil) {
			t.Errorf("SetLimit(%d); Next(%x) = %v, want code %v", tt.limit, tt.frame, err, tt.code)
		}
		if tt.code != CodeNone && cr.n != HeaderSize {
			t.Errorf("SetLimit(%d); Next(%x) read %d bytes, want %d", tt.limit, tt.frame, cr.n, HeaderSize)
		}
	}

	// A limit above a type's cap does not raise the cap.
	big := AppendHeader(nil, Header{Type: TypePing, Length: 9})
	fr := NewFrameReader(io.MultiReader(bytes.NewReader(big), zeros{}))
	fr.SetLimit(1 << 20)
	if _, _, err := fr.Next(); CodeOf(err) != CodeFrameTooLarge {
		t.Errorf("SetLimit(1<<20); Next(%x) = %v, want code %v", big, err, CodeFrameTooLarge)
	}

	// SetLimit(0) removes the limit.
	fr = NewFrameReader(bytes.NewReader(append(bytes.Clone(hello), hello...)))
	fr.SetLimit(18)
	if _, _, err := fr.Next(); CodeOf(err) != CodeFrameTooLarge {
		t.Fatalf("SetLimit(18); Next(%x) = %v, want code %v", hello, err, CodeFrameTooLarge)
	}
	fr = NewFrameReader(bytes.NewReader(hello))
	fr.SetLimit(18)
	fr.SetLimit(0)
	if _, _, err := fr.Next(); err != nil {
		t.Errorf("SetLimit(0); Next(%x) = %v, want nil", hello, err)
	}
}

func TestFrameReaderEOF(t *testing.T) {
	frame := readGolden(t, "chat")
	for k := range len(frame) + 1 {
		input := append(bytes.Clone(frame), frame[:k]...)
		fr := NewFrameReader(bytes.NewReader(input))
		if _, _, err := fr.Next(); err != nil {
			t.Fatalf("Next(%x) = %v, want nil", input, err)
		}
		_, _, err := fr.Next()
		switch {
		case k == 0 || k == len(frame):
			// Between frames, or a whole second frame.
			if k == 0 && err != io.EOF {
				t.Errorf("Next() at the end of the stream = %v, want %v", err, io.EOF)
			}
			if k == len(frame) && err != nil {
				t.Errorf("Next() of a whole frame = %v, want nil", err)
			}
		default:
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("Next() with %d of %d bytes = %v, want %v", k, len(frame), err, io.ErrUnexpectedEOF)
			}
		}
	}
}

func TestFrameReaderRelease(t *testing.T) {
	frame := readGolden(t, "chat")
	fr := NewFrameReader(bytes.NewReader(append(bytes.Clone(frame), frame...)))
	if _, _, err := fr.Next(); err != nil {
		t.Fatal(err)
	}
	fr.Release()
	if fr.buf != nil {
		t.Errorf("after Release the buffer has capacity %d, want nil", cap(fr.buf))
	}
	h, p, err := fr.Next()
	if err != nil || !bytes.Equal(p, frame[HeaderSize:]) || h.Type != TypeChat {
		t.Errorf("Next() after Release = %+v, %x, %v, want %x", h, p, err, frame[HeaderSize:])
	}
}

// TestFrameReaderZeroLength checks that an empty payload reads as such.
func TestFrameReaderZeroLength(t *testing.T) {
	leave := readGolden(t, "leave")
	fr := NewFrameReader(bytes.NewReader(leave))
	h, p, err := fr.Next()
	if err != nil || h.Type != TypeLeave || len(p) != 0 {
		t.Errorf("Next(%x) = %+v, %x, %v, want leave with no payload", leave, h, p, err)
	}
}
