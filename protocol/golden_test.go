package protocol

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// goldenCase is one message whose whole frame is stored in
// testdata/golden/<name>.bin.
type goldenCase struct {
	name string
	m    Message
}

// testToken is a resume token with a recognisable pattern.
var testToken = []byte{
	0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7,
	0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf,
}

// goldenCases returns representative values of every message type that
// newMessage knows. Each call returns fresh values, so tests may not
// disturb one another.
func goldenCases() []goldenCase {
	tok := func() []byte { return bytes.Clone(testToken) }
	return []goldenCase{
		{"hello", &Hello{MinVersion: 1, MaxVersion: 3, Software: "parley-cli/1.0"}},
		{"welcome", &Welcome{Version: 1, Software: "parleyd/0.9 (linux)", MaxTextBytes: 16 << 10,
			TextBurst: 5, TextPerMinute: 60, HistoryOnJoin: 50}},
		{"join", &Join{Room: "lobby", Name: "zoë"}},
		{"join-resume", &Join{Room: "dev.team-2", Name: "bob_2", Password: "s3cret pässword",
			Resume: true, AfterSeq: 0x0102030405060708, HistoryID: 0x5ca1ab1e0ddba11, Token: tok()}},
		{"joined", &Joined{Room: "lobby", MemberID: 7, Name: "zoë", Token: tok(), HeadSeq: 1234567890123,
			HistoryID: 0x5ca1ab1e0ddba11, Members: []Member{{ID: 3, Name: "alice"}, {ID: 5, Name: "bob_2", State: 2}, {ID: 7, Name: "zoë"}}}},
		{"joined-alone", &Joined{Room: "x", MemberID: 1, Name: "solo", Token: tok(), Members: []Member{{ID: 1, Name: "solo"}}}},
		{"leave", &Leave{}},
		{"member-joined", &MemberJoined{Member{ID: 0xdeadbeef, Name: "Ærøskøbing", State: 1}}},
		{"member-left", &MemberLeft{ID: 42, Name: "carol", Reason: LeftSlow}},
		{"error", &Error{Code: CodeRateLimited, Ref: 0x1122334455667788, RetryAfter: 1500,
			Message: "slow down: 5 messages per 10 s"}},
		{"error-join", &Error{Code: CodeNameTaken, Message: "name „zoë“ is taken"}},
		{"goodbye", &Goodbye{Code: CodeShutdown, Message: "server restarting — back in 1 min"}},
		{"goodbye-empty", &Goodbye{Code: CodeLeaving}},
		{"ping", &Ping{Nonce: 0x0123456789abcdef}},
		{"pong", &Pong{Nonce: 0xfedcba9876543210}},
		{"send-chat", &SendChat{ClientID: 1, Text: "hello, world 👋"}},
		{"send-chat-private", &SendChat{ClientID: 0x8000000000000001, To: "zoë", Text: "psst… ça va?\nline two"}},
		{"ack", &Ack{ClientID: 17, Seq: 1001, Time: 1735689600123}},
		{"chat", &Chat{Seq: 1001, Time: 1735689600123, From: "alice", Text: "Grüße aus Köln 🌧"}},
		{"chat-private-echo", &Chat{Seq: 1002, Time: -86400000, From: "bob_2", To: "zoë", ClientID: 99,
			Text: "日本語のテキスト"}},
		{"gap", &Gap{From: 100, To: 250}},
		{"synced", &Synced{Seq: 1002}},
		{"state-update", &StateUpdate{Member: 7, State: StateAudio | StateVideo}},
		{"keyframe-request", &KeyframeRequest{Source: 5, Track: TrackScreen}},
		{"bitrate-hint", &BitrateHint{Track: TrackCamera, Bitrate: 1_500_000}},
		{"loss-report", &LossReport{Member: 3, FractionLost: 26}},
		{"voice", &Voice{Source: 3, Seq: 0xfffffffe, Captured: 1735689600123456, Codec: CodecOpus, Level: 42,
			Data: []byte{0x78, 0x9f, 0x3a, 0x00, 0x11, 0xfe}}},
		{"video-fragment", &VideoFragment{Source: 5, FrameSeq: 901, Captured: 1735689600223456, Track: TrackCamera,
			Codec: CodecVP8, Flags: VideoKeyframe, Index: 2, Count: 3, Data: []byte{0x9d, 0x01, 0x2a, 0x80, 0x02}}},
	}
}

// goldenMessage returns a fresh copy of the golden case called name.
func goldenMessage(t testing.TB, name string) Message {
	t.Helper()
	for _, c := range goldenCases() {
		if c.name == name {
			return c.m
		}
	}
	t.Fatalf("no golden case %q", name)
	return nil
}

func goldenPath(name string) string { return filepath.Join("testdata", "golden", name+".bin") }

// readGolden returns the stored frame of c.
func readGolden(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(goldenPath(name))
	if err != nil {
		t.Fatalf("%v (run go test -run TestGolden -update to create it)", err)
	}
	return b
}

func TestGolden(t *testing.T) {
	if *update {
		if err := os.MkdirAll(filepath.Join("testdata", "golden"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range goldenCases() {
		t.Run(c.name, func(t *testing.T) {
			got, err := Marshal(c.m)
			if err != nil {
				t.Fatalf("Marshal(%+v) error: %v", c.m, err)
			}
			if *update {
				if err := os.WriteFile(goldenPath(c.name), got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want := readGolden(t, c.name)
			if !bytes.Equal(got, want) {
				t.Errorf("Marshal(%+v) =\n%x, want\n%x", c.m, got, want)
			}
			m, n, err := DecodeFrame(want)
			if err != nil {
				t.Fatalf("DecodeFrame(%x) error: %v", want, err)
			}
			if n != len(want) {
				t.Errorf("DecodeFrame(%x) used %d bytes, want %d", want, n, len(want))
			}
			if !reflect.DeepEqual(m, c.m) {
				t.Errorf("DecodeFrame(%x) = %+v, want %+v", want, m, c.m)
			}
		})
	}
}

// TestGoldenCoversAllTypes makes sure a new message type gets a golden file.
func TestGoldenCoversAllTypes(t *testing.T) {
	covered := make(map[Type]bool)
	for _, c := range goldenCases() {
		covered[c.m.Type()] = true
	}
	for i := range 256 {
		typ := Type(i)
		m := newMessage(typ)
		if m == nil {
			continue
		}
		if m.Type() != typ {
			t.Errorf("newMessage(%v).Type() = %v, want %v", typ, m.Type(), typ)
		}
		if !typ.Known() {
			t.Errorf("%v.Known() = false, but newMessage knows it", typ)
		}
		if !covered[typ] {
			t.Errorf("no golden case for %v", typ)
		}
	}
	for typ := range typeInfos {
		if typ.Known() != (newMessage(typ) != nil) {
			t.Errorf("%v.Known() = %v, but newMessage(%v) = %v", typ, typ.Known(), typ, newMessage(typ))
		}
	}
}

func TestGoldenFilesHaveCases(t *testing.T) {
	names := make(map[string]bool)
	for _, c := range goldenCases() {
		names[c.name+".bin"] = true
	}
	files, err := os.ReadDir(filepath.Join("testdata", "golden"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !names[f.Name()] {
			t.Errorf("testdata/golden/%s has no golden case; delete it", f.Name())
		}
	}
}

func TestSize(t *testing.T) {
	for _, c := range goldenCases() {
		b, err := Marshal(c.m)
		if err != nil {
			t.Fatalf("Marshal(%+v) error: %v", c.m, err)
		}
		if c.m.Size() != len(b) {
			t.Errorf("(%+v).Size() = %d, want %d", c.m, c.m.Size(), len(b))
		}
		// AppendBinary appends after existing bytes.
		prefix := []byte("prefix")
		b2, err := c.m.AppendBinary(bytes.Clone(prefix))
		if err != nil || !bytes.Equal(b2, append(prefix, b...)) {
			t.Errorf("AppendBinary(%q) = %x, %v, want %x", prefix, b2, err, append(prefix, b...))
		}
	}
}

// dataHeaderSize returns the size of the fields before the data of a media
// type, whose data runs to the end of the payload, and 0 for other types.
func dataHeaderSize(t Type) int {
	switch t {
	case TypeVoice:
		return VoiceHeaderSize
	case TypeVideoFragment:
		return VideoHeaderSize
	}
	return 0
}

// TestTruncated cuts every golden encoding at every length.
func TestTruncated(t *testing.T) {
	for _, c := range goldenCases() {
		t.Run(c.name, func(t *testing.T) {
			b := readGolden(t, c.name)
			for k := range len(b) {
				m, n, err := DecodeFrame(b[:k])
				if err == nil {
					t.Errorf("DecodeFrame(%x) = %+v, %d, nil, want an error", b[:k], m, n)
				} else if CodeOf(err) != CodeMalformed {
					t.Errorf("DecodeFrame(%x) error %v has code %v, want %v", b[:k], err, CodeOf(err), CodeMalformed)
				}
			}
			payload := b[HeaderSize:]
			end := len(payload)
			if h := dataHeaderSize(c.m.Type()); h > 0 {
				// Media data is the rest of the payload: a shorter
				// payload is a shorter frame, down to one data byte.
				end = h + 1
				for k := end; k < len(payload); k++ {
					if _, err := Decode(c.m.Type(), payload[:k]); err != nil {
						t.Errorf("Decode(%v, %x) error %v, want a shorter frame", c.m.Type(), payload[:k], err)
					}
				}
			}
			for k := range end {
				m, err := Decode(c.m.Type(), payload[:k])
				if err == nil {
					t.Errorf("Decode(%v, %x) = %+v, nil, want an error", c.m.Type(), payload[:k], m)
				} else if CodeOf(err) != CodeMalformed {
					t.Errorf("Decode(%v, %x) error %v has code %v, want %v", c.m.Type(), payload[:k], err, CodeOf(err), CodeMalformed)
				}
			}
		})
	}
}

// TestTrailingBytes checks that a payload must be consumed exactly, while
// bytes after a whole frame belong to the next frame.
func TestTrailingBytes(t *testing.T) {
	for _, c := range goldenCases() {
		t.Run(c.name, func(t *testing.T) {
			b := readGolden(t, c.name)
			if dataHeaderSize(c.m.Type()) > 0 {
				t.Skip("media data is the rest of the payload: there are no trailing bytes")
			}
			payload := append(bytes.Clone(b[HeaderSize:]), 0)
			// Fixed-size payloads exceed their type's cap instead.
			if m, err := Decode(c.m.Type(), payload); CodeOf(err) != CodeMalformed && CodeOf(err) != CodeFrameTooLarge {
				t.Errorf("Decode(%v, %x) = %+v, %v, want code %v or %v", c.m.Type(), payload, m, err, CodeMalformed, CodeFrameTooLarge)
			}

			// The header declares the extra byte as part of the payload.
			long := AppendHeader(nil, Header{Type: c.m.Type(), Length: uint32(len(payload))})
			long = append(long, payload...)
			if m, _, err := DecodeFrame(long); err == nil {
				t.Errorf("DecodeFrame(%x) = %+v, nil, want an error", long, m)
			}

			// The extra byte follows the frame: not part of it.
			next := append(bytes.Clone(b), 0xff)
			m, n, err := DecodeFrame(next)
			if err != nil || n != len(b) || !reflect.DeepEqual(m, c.m) {
				t.Errorf("DecodeFrame(%x) = %+v, %d, %v, want %+v, %d, nil", next, m, n, err, c.m, len(b))
			}
		})
	}
}
