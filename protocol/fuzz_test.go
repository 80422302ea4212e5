package protocol

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// addGoldenFrames seeds f with every golden frame, passed through add.
func addGoldenFrames(f *testing.F, add func(frame []byte)) {
	files, err := filepath.Glob(filepath.Join("testdata", "golden", "*.bin"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no golden files: %v", err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		add(b)
	}
}

// checkRoundTrip checks a message decoded from frame: encoding it gives
// frame back (but for the flags, which are not part of a message and which
// encoders set to zero), and decoding that gives the message back.
func checkRoundTrip(t *testing.T, m Message, frame []byte) {
	t.Helper()
	enc, err := Marshal(m)
	if err != nil {
		t.Fatalf("Marshal(%+v) error %v, but it was decoded from %x", m, err, frame)
	}
	want := bytes.Clone(frame)
	want[1] = 0
	if !bytes.Equal(enc, want) {
		t.Fatalf("Marshal(%+v) = %x, want %x (decoded from %x)", m, enc, want, frame)
	}
	if m.Size() != len(enc) {
		t.Fatalf("(%+v).Size() = %d, want %d", m, m.Size(), len(enc))
	}
	m2, n, err := DecodeFrame(enc)
	if err != nil || n != len(enc) || !reflect.DeepEqual(m2, m) {
		t.Fatalf("DecodeFrame(%x) = %+v, %d, %v, want %+v, %d, nil", enc, m2, n, err, m, len(enc))
	}
}

func FuzzDecodeFrame(f *testing.F) {
	addGoldenFrames(f, func(b []byte) {
		f.Add(b)
		f.Add(append(bytes.Clone(b), b...))
	})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, n, err := DecodeFrame(b)
		if err != nil {
			if m != nil {
				t.Fatalf("DecodeFrame(%x) = %+v, %v, want no message with the error", b, m, err)
			}
			return
		}
		h, _ := ParseHeader(b)
		if n != HeaderSize+int(h.Length) || n > len(b) {
			t.Fatalf("DecodeFrame(%x) used %d bytes, want %d", b, n, HeaderSize+int(h.Length))
		}
		if m.Type() != h.Type {
			t.Fatalf("DecodeFrame(%x) = %v, want type %v", b, m.Type(), h.Type)
		}
		checkRoundTrip(t, m, b[:n])
	})
}

func FuzzDecode(f *testing.F) {
	addGoldenFrames(f, func(b []byte) { f.Add(b[0], b[HeaderSize:]) })
	f.Fuzz(func(t *testing.T, typ byte, payload []byte) {
		m, err := Decode(Type(typ), payload)
		if err != nil {
			return
		}
		frame := AppendHeader(nil, Header{Type: Type(typ), Length: uint32(len(payload))})
		checkRoundTrip(t, m, append(frame, payload...))
	})
}

// chunkReader returns its input in chunks of random sizes, as a network
// connection may. The sizes come from a seeded generator, so a fuzz input
// always splits the same way.
type chunkReader struct {
	data []byte
	rng  *rand.Rand
	n    int // bytes returned so far
}

func newChunkReader(seed uint64, data []byte) *chunkReader {
	return &chunkReader{data: data, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// next returns the size of the next chunk: mostly small, sometimes large.
func (r *chunkReader) next() int {
	if r.rng.IntN(8) == 0 {
		return 1 + r.rng.IntN(4096)
	}
	return 1 + r.rng.IntN(16)
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.data[:min(len(r.data), r.next())])
	r.data = r.data[n:]
	r.n += n
	return n, nil
}

// FuzzFrameReader reads arbitrary bytes, split at random, with a
// FrameReader and checks every frame and the final error against a direct
// parse of the whole input.
func FuzzFrameReader(f *testing.F) {
	var all []byte
	addGoldenFrames(f, func(b []byte) {
		f.Add(uint64(len(b)), b)
		all = append(all, b...)
	})
	f.Add(uint64(1), all)
	f.Add(uint64(2)|500<<48, all) // with a limit of 250 bytes
	f.Add(uint64(3), concat(rawFrame(0x90, FlagCritical, 10), rawFrame(TypeVoice, 0, 100), AppendHeader(nil, Header{Type: 0x80, Length: 1 << 31})))
	f.Fuzz(func(t *testing.T, seed uint64, data []byte) {
		cr := newChunkReader(seed, data)
		fr := NewFrameReader(cr)
		// Half the inputs also get a limit of 0 to 32767 bytes.
		var limit uint32
		if seed&1 == 0 {
			limit = uint32(seed>>48) / 2
			fr.SetLimit(limit)
		}
		off := 0
		largest := 0 // the largest length within its cap declared so far
		for {
			h, p, err := fr.Next()
			// The reader's buffer never grows past the largest length a
			// header declared within its cap, whatever a header declared
			// over it.
			capFor := MaxPayload(h.Type)
			if limit != 0 {
				capFor = min(capFor, limit)
			}
			if h.Length <= capFor {
				largest = max(largest, int(h.Length))
			}
			if cap(fr.buf) > largest {
				t.Fatalf("the read buffer has %d bytes, the largest length declared within its cap %d", cap(fr.buf), largest)
			}
			rest := data[off:]
			if len(rest) == 0 {
				if err != io.EOF {
					t.Fatalf("Next() at the end = %+v, %v, want %v", h, err, io.EOF)
				}
				return
			}
			if len(rest) < HeaderSize {
				if !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("Next() with %d bytes left = %+v, %v, want %v", len(rest), h, err, io.ErrUnexpectedEOF)
				}
				return
			}
			want, _ := ParseHeader(rest)
			if h != want {
				t.Fatalf("Next() header = %+v, want %+v", h, want)
			}
			max := MaxPayload(want.Type)
			if limit != 0 {
				max = min(max, limit)
			}
			if want.Length > max {
				if CodeOf(err) != CodeFrameTooLarge || p != nil {
					t.Fatalf("Next() = %+v, %d bytes, %v, want code %v", h, len(p), err, CodeFrameTooLarge)
				}
				if cr.n != off+HeaderSize {
					t.Fatalf("Next() of a too large frame read %d bytes past its header, want 0", cr.n-off-HeaderSize)
				}
				return
			}
			end := HeaderSize + int(want.Length)
			if len(rest) < end {
				if !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("Next() of a %d-byte frame with %d bytes left = %v, want %v", end, len(rest), err, io.ErrUnexpectedEOF)
				}
				return
			}
			if err != nil || !bytes.Equal(p, rest[HeaderSize:end]) {
				t.Fatalf("Next() = %+v, %x, %v, want %x", h, p, err, rest[HeaderSize:end])
			}
			if uint32(len(p)) > MaxPayload(h.Type) {
				t.Fatalf("Next() returned %d bytes for %v, over its cap %d", len(p), h.Type, MaxPayload(h.Type))
			}
			if m, err := Decode(h.Type, p); err == nil {
				checkRoundTrip(t, m, rest[:end])
			}
			off += end
		}
	})
}

func FuzzParseInvite(f *testing.F) {
	for _, s := range []string{
		"parley://example.com:7700/lobby?fp=" + testFingerprint,
		"parley://example.com/dev-team",
		"parley://[::1]:7701/r.1_x",
		"parley://[fe80::1%25eth0]:7700/lobby",
		"parley://10.0.0.1",
		"parley://host:/",
		"parley://user@host:1/room?fp=&x=y#frag",
		" parley://HOST/room ",
		"parley://h%C3%A9/room",
		"http://example.com/lobby",
		"parley:opaque",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		inv, err := ParseInvite(s)
		if err != nil {
			return
		}
		if err := ValidRoom(inv.Room); err != nil {
			t.Fatalf("ParseInvite(%q) = %#v with an invalid room: %v", s, inv, err)
		}
		if inv.Fingerprint != "" && !ValidFingerprint(inv.Fingerprint) {
			t.Fatalf("ParseInvite(%q) = %#v with an invalid fingerprint", s, inv)
		}
		if _, _, err := net.SplitHostPort(inv.Addr); err != nil {
			t.Fatalf("ParseInvite(%q) = %#v with an invalid address: %v", s, inv, err)
		}
		link := inv.String()
		inv2, err := ParseInvite(link)
		if err != nil || inv2 != inv {
			t.Fatalf("ParseInvite(%q) = %#v, %v, want %#v (from ParseInvite(%q))", link, inv2, err, inv, s)
		}
		if link2 := inv2.String(); link2 != link {
			t.Fatalf("(%#v).String() = %q, want %q", inv2, link2, link)
		}
	})
}

// FuzzGuard feeds arbitrary bytes to the guard, whole and split at random,
// and checks that both give the same verdict and the same state.
func FuzzGuard(f *testing.F) {
	small := concat(
		yframe(yamuxTypeWindow, ySYN, 3, 0),
		yframe(yamuxTypeData, 0, 3, 40),
		yframe(yamuxTypePing, ySYN, 0, 2),
		yframe(yamuxTypeData, yFIN, 3, 0),
		yframe(yamuxTypeGoAway, 0, 0, 0),
	)
	f.Add(uint64(1), false, preHelloTraffic())
	f.Add(uint64(2), true, small)
	f.Add(uint64(3), false, concat(yframe(yamuxTypeWindow, ySYN, 1, 0), yframe(yamuxTypeWindow, ySYN, 3, 0)))
	f.Add(uint64(4), true, bytes.Repeat(yframe(yamuxTypePing, ySYN, 0, 1), 5))
	f.Add(uint64(5), false, yframe(yamuxTypeData, 0, 1, 100)[:yamuxHeaderSize])
	f.Fuzz(func(t *testing.T, seed uint64, helloDone bool, data []byte) {
		limits := GuardLimits{PreHelloFrame: 64, StreamOpens: 1e-6, StreamOpenBurst: 4, Pings: 1e-6, PingBurst: 3}
		whole := newGuard(nil, limits)
		whole.helloDone.Store(helloDone)
		v1 := whole.inspect(data)

		split := newGuard(nil, limits)
		split.helloDone.Store(helloDone)
		cr := newChunkReader(seed, data)
		var v2 *Error
		buf := make([]byte, 4096)
		for v2 == nil {
			n, err := cr.Read(buf)
			if err != nil {
				break
			}
			v2 = split.inspect(buf[:n])
		}
		if CodeOf(errOrNil(v1)) != CodeOf(errOrNil(v2)) {
			t.Fatalf("inspect(%x) = %v whole, %v split, want the same", data, v1, v2)
		}
		if v1 == nil && (whole.hdrN != split.hdrN || whole.body != split.body || whole.opens != split.opens) {
			t.Fatalf("inspect(%x) leaves state %d/%d/%d whole, %d/%d/%d split, want the same",
				data, whole.hdrN, whole.body, whole.opens, split.hdrN, split.body, split.opens)
		}
		if whole.hdrN >= yamuxHeaderSize {
			t.Fatalf("inspect(%x) leaves %d header bytes pending, want fewer than %d", data, whole.hdrN, yamuxHeaderSize)
		}
	})
}

// FuzzParseMedia checks the aliasing media parsers against Decode: they
// accept exactly the same payloads and produce the same messages.
func FuzzParseMedia(f *testing.F) {
	addGoldenFrames(f, func(b []byte) {
		if t := Type(b[0]); t == TypeVoice || t == TypeVideoFragment {
			f.Add(b[0], b[HeaderSize:])
		}
	})
	f.Fuzz(func(t *testing.T, typ byte, payload []byte) {
		var got Message
		var err error
		switch Type(typ) {
		case TypeVoice:
			var v Voice
			err = ParseVoice(payload, &v)
			got = &v
		case TypeVideoFragment:
			var v VideoFragment
			err = ParseVideoFragment(payload, &v)
			got = &v
		default:
			return
		}
		want, derr := Decode(Type(typ), payload)
		if (err == nil) != (derr == nil) {
			t.Fatalf("Parse(%v, %x) error %v, Decode error %v: they must agree", Type(typ), payload, err, derr)
		}
		if err == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("Parse(%v, %x) = %+v, Decode = %+v", Type(typ), payload, got, want)
		}
	})
}

// FuzzReassembler feeds arbitrary fragments to a Reassembler. Whatever the
// input, it must not panic, must never return a frame over its limit, and
// every frame it returns must be the concatenation of the data of the
// fragments 0..count-1 of that frame as they arrived.
func FuzzReassembler(f *testing.F) {
	var seed []byte
	for _, b := range fragmentsForFuzz(f) {
		seed = append(seed, b...)
	}
	f.Add(seed, uint16(2000))
	f.Add(readGolden(f, "video-fragment"), uint16(10))
	f.Fuzz(func(t *testing.T, stream []byte, limit uint16) {
		r := Reassembler{MaxFrameBytes: int(limit) + 1}
		type key struct {
			src uint32
			tr  Track
		}
		var expect = map[key][]byte{}
		var started = map[key]bool{}
		for len(stream) > 0 {
			m, n, err := DecodeFrame(stream)
			if err != nil {
				return
			}
			stream = stream[n:]
			frag, ok := m.(*VideoFragment)
			if !ok {
				continue
			}
			k := key{frag.Source, frag.Track}
			if frag.Index == 0 {
				expect[k], started[k] = nil, true
			}
			expect[k] = append(expect[k], frag.Data...)
			out, done := r.Add(frag)
			if !done {
				continue
			}
			if !started[k] || frag.Index != frag.Count-1 {
				t.Fatalf("a frame completed by fragment %d of %d", frag.Index, frag.Count)
			}
			if len(out.Data) > r.MaxFrameBytes {
				t.Fatalf("a frame of %d bytes, limit %d", len(out.Data), r.MaxFrameBytes)
			}
			if !bytes.Equal(out.Data, expect[k]) {
				t.Fatalf("frame data %x, want %x", out.Data, expect[k])
			}
			started[k] = false
		}
	})
}

// fragmentsForFuzz returns the wire fragments of two interleaved frames.
func fragmentsForFuzz(t testing.TB) [][]byte {
	a := fragments(t, &VideoFrame{Source: 1, FrameSeq: 1, Codec: CodecVP8, Keyframe: true, Data: bytes.Repeat([]byte{1}, 50)}, 20)
	b := fragments(t, &VideoFrame{Source: 2, FrameSeq: 9, Codec: CodecVP8, Data: bytes.Repeat([]byte{2}, 30)}, 20)
	return [][]byte{a[0], b[0], a[1], b[1], a[2]}
}

// FuzzKnownServers reads an arbitrary known-servers file: Lookup finds the
// first well-formed entry for an address, never a malformed one; Add never
// replaces an entry, and what it adds Lookup finds.
func FuzzKnownServers(f *testing.F) {
	f.Add("127.0.0.1:7700 "+testFingerprint+"\n", "127.0.0.1:7700")
	f.Add("# comment\nhost:1 a b\nhost:1 "+testFingerprint+"\n\x00\xff\n", "host:1")
	f.Add("HOST:1 x\n", "host:1")
	f.Fuzz(func(t *testing.T, content, addr string) {
		path := filepath.Join(t.TempDir(), "known_servers")
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		ks := &KnownServers{Path: path}
		fp, ok, err := ks.Lookup(addr)
		if err != nil {
			return // a line longer than the scanner takes
		}
		if ok {
			found := false
			for _, line := range strings.Split(content, "\n") {
				if f := strings.Fields(line); len(f) == 2 && f[0] == strings.ToLower(addr) && f[1] == fp {
					found = true
					break
				}
			}
			if !found {
				t.Fatalf("Lookup(%q) = %q, which is no entry of %q", addr, fp, content)
			}
		}
		if strings.ContainsAny(addr, " \t\n\r\v\f") || addr == "" {
			return // not an address Add is given
		}
		err = ks.Add(addr, testFingerprint)
		fp2, ok2, err2 := ks.Lookup(addr)
		switch {
		case err2 != nil:
			t.Fatalf("Lookup after Add: %v", err2)
		case ok && fp != testFingerprint:
			var ie *IdentityError
			if !errors.As(err, &ie) || fp2 != fp {
				t.Fatalf("Add over %q = %v, then Lookup = %q; want an identity error and the old entry", fp, err, fp2)
			}
		case err != nil || !ok2 || fp2 != testFingerprint:
			t.Fatalf("Add(%q) = %v, then Lookup = %q, %v", addr, err, fp2, ok2)
		}
	})
}
