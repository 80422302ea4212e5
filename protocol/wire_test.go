package protocol

import (
	"bytes"
	"encoding/hex"
	"reflect"
	"strings"
	"testing"
)

// unhex decodes hex digits, ignoring white space, so that expected
// encodings can be laid out field by field.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatalf("unhex(%q): %v", s, err)
	}
	return b
}

// TestLayout pins the wire layout documented on the Type constants with
// bytes written out independently of the encoder.
func TestLayout(t *testing.T) {
	tests := []struct {
		name string
		m    Message
		hex  string // header, then one field per line
	}{
		{"ping", &Ping{Nonce: 0x0102030405060708}, `
			0c 00 00000008     # type, flags, length
			0102030405060708   # nonce`},
		{"leave", &Leave{}, `
			05 00 00000000`},
		{"hello", &Hello{MinVersion: 1, MaxVersion: 2, Software: "px"}, `
			01 00 00000007
			0001               # min_version
			0002               # max_version
			02 7078            # software "px"`},
		{"send-chat", &SendChat{ClientID: 0x2a, To: "zoë", Text: "hi"}, `
			30 00 00000013
			000000000000002a   # client_id
			04 7a6fc3ab        # to "zoë"
			00000002 6869      # text "hi"`},
		{"join", &Join{Room: "r", Name: "n", Password: "", Resume: true, AfterSeq: 9, HistoryID: 0x0102030405060708,
			Token: []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}}, `
			03 00 00000027
			01 72              # room "r"
			01 6e              # name "n"
			00                 # password ""
			01                 # flags: JoinResume
			0000000000000009   # after_seq
			0102030405060708   # history_id
			10 000102030405060708090a0b0c0d0e0f # token`},
		{"joined", &Joined{Room: "r", MemberID: 2, Name: "b", Token: []byte{0xee}, HeadSeq: 0x100, HistoryID: 0xfedcba9876543211,
			Members: []Member{{ID: 1, Name: "a", State: 0}, {ID: 2, Name: "b", State: 3}}}, `
			04 00 0000002a
			01 72              # room "r"
			00000002           # member_id
			01 62              # name "b"
			01 ee              # token
			0000000000000100   # head_seq
			fedcba9876543211   # history_id
			0002               # count
			00000001 01 61 00  # id, name "a", state
			00000002 01 62 03  # id, name "b", state`},
		{"member-left", &MemberLeft{ID: 0x01020304, Name: "al", Reason: LeftReplaced}, `
			07 00 00000008
			01020304 02 616c 03`},
		{"error", &Error{Code: CodeRateLimited, Ref: 5, RetryAfter: 250, Message: "x"}, `
			0a 00 00000011
			006c               # code 108
			0000000000000005   # ref
			000000fa           # retry_after_ms
			0001 78            # message "x"`},
		{"goodbye", &Goodbye{Code: CodeSlowConsumer, Message: "bye"}, `
			0b 00 00000007
			000a 0003 627965`},
		{"ack", &Ack{ClientID: 1, Seq: 2, Time: -1}, `
			31 00 00000018
			0000000000000001 0000000000000002 ffffffffffffffff`},
		{"chat", &Chat{Seq: 3, Time: 4, From: "a", To: "", ClientID: 0, Text: "é"}, `
			32 00 00000021
			0000000000000003   # seq
			0000000000000004   # time_ms
			01 61              # from "a"
			00                 # to ""
			0000000000000000   # client_id
			00000002 c3a9      # text "é"`},
		{"gap", &Gap{From: 1, To: 0xffffffffffffffff}, `
			33 00 00000010
			0000000000000001 ffffffffffffffff`},
		{"synced", &Synced{Seq: 0xabcdef}, `
			34 00 00000008
			0000000000abcdef`},
		{"state-update", &StateUpdate{Member: 2, State: StateAudio | StateScreen}, `
			08 00 00000005
			00000002 05        # member, state`},
		{"keyframe-request", &KeyframeRequest{Source: 0x0a0b0c0d, Track: TrackScreen}, `
			10 00 00000005
			0a0b0c0d 01        # source, track`},
		{"bitrate-hint", &BitrateHint{Source: 4, Track: TrackCamera, Bitrate: 250000}, `
			11 00 00000009
			00000004 00        # source, track
			0003d090           # bitrate`},
		{"loss-report", &LossReport{Member: 9, FractionLost: 0x80}, `
			12 00 00000005
			00000009 80`},
		{"voice", &Voice{Source: 1, Seq: 2, Captured: 3, Codec: CodecOpus, Flags: 0, Level: 127, Data: []byte{0xaa, 0xbb}}, `
			50 00 00000015
			00000001           # source
			00000002           # seq
			0000000000000003   # capture_us
			01 00 7f           # codec opus, flags, level
			aabb               # data: the rest`},
		{"video-fragment", &VideoFragment{Source: 1, FrameSeq: 2, Captured: -1, Track: TrackScreen, Codec: CodecVP8,
			Flags: VideoKeyframe, Index: 1, Count: 4, Data: []byte{0xcc}}, `
			60 00 00000018
			00000001           # source
			00000002           # frame_seq
			ffffffffffffffff   # capture_us
			01 02 01           # track screen, codec vp8, flags keyframe
			0001 0004          # index, count
			cc                 # data: the rest`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var lines []string
			for _, l := range strings.Split(tt.hex, "\n") {
				l, _, _ = strings.Cut(l, "#")
				lines = append(lines, l)
			}
			want := unhex(t, strings.Join(lines, " "))
			got, err := Marshal(tt.m)
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("Marshal(%+v) = %x, %v, want %x", tt.m, got, err, want)
			}
			m, n, err := DecodeFrame(want)
			if err != nil || n != len(want) || !reflect.DeepEqual(m, tt.m) {
				t.Errorf("DecodeFrame(%x) = %+v, %d, %v, want %+v, %d, nil", want, m, n, err, tt.m, len(want))
			}
		})
	}
}

func TestHeader(t *testing.T) {
	h := Header{Type: TypeChat, Flags: FlagCritical | 0x80, Length: 0x01020304}
	b := AppendHeader([]byte{0xff}, h)
	if want := []byte{0xff, 0x32, 0x81, 1, 2, 3, 4}; !bytes.Equal(b, want) {
		t.Errorf("AppendHeader(%+v) = %x, want %x", h, b, want)
	}
	got, err := ParseHeader(b[1:])
	if err != nil || got != h {
		t.Errorf("ParseHeader(%x) = %+v, %v, want %+v", b[1:], got, err, h)
	}
	for k := range HeaderSize {
		if got, err := ParseHeader(b[1 : 1+k]); CodeOf(err) != CodeMalformed {
			t.Errorf("ParseHeader(%x) = %+v, %v, want code %v", b[1:1+k], got, err, CodeMalformed)
		}
	}
}

// TestFlagsIgnored checks that receivers ignore the flag bits of a known
// type: decoding does not depend on them.
func TestFlagsIgnored(t *testing.T) {
	b := readGolden(t, "ping")
	for _, flags := range []byte{FlagCritical, 0xfe, 0xff} {
		b[1] = flags
		m, _, err := DecodeFrame(b)
		if err != nil || !reflect.DeepEqual(m, &Ping{Nonce: 0x0123456789abcdef}) {
			t.Errorf("DecodeFrame(%x) = %+v, %v, want the golden ping", b, m, err)
		}
	}
}

// maxCases returns a message of every known type with every field at its
// cap, so that its payload is as long as the type's cap allows.
func maxCases() []Message {
	s := func(n int) string { return strings.Repeat("é", n/2) + strings.Repeat("x", n%2) }
	members := make([]Member, MaxMembers)
	for i := range members {
		members[i] = Member{ID: uint32(i), Name: s(MaxNameBytes), State: 0xff}
	}
	u64 := ^uint64(0)
	return []Message{
		&Hello{MinVersion: 0xffff, MaxVersion: 0xffff, Software: s(MaxSoftwareBytes)},
		&Welcome{Version: 0xffff, Software: s(MaxSoftwareBytes), MaxTextBytes: MaxTextBytes,
			TextBurst: 0xffff, TextPerMinute: 0xffff, HistoryOnJoin: 0xffff},
		&Join{Room: strings.Repeat("r", MaxRoomBytes), Name: s(MaxNameBytes), Password: s(MaxPasswordBytes),
			Resume: true, AfterSeq: u64, Token: bytes.Repeat([]byte{0xff}, TokenSize)},
		&Joined{Room: strings.Repeat("r", MaxRoomBytes), MemberID: 0xffffffff, Name: s(MaxNameBytes),
			Token: bytes.Repeat([]byte{0xff}, TokenSize), HeadSeq: u64, Members: members},
		&Leave{},
		&MemberJoined{Member{ID: 0xffffffff, Name: s(MaxNameBytes), State: 0xff}},
		&MemberLeft{ID: 0xffffffff, Name: s(MaxNameBytes), Reason: 0xff},
		&Error{Code: 0xffff, Ref: u64, RetryAfter: 0xffffffff, Message: s(MaxErrorBytes)},
		&Goodbye{Code: 0xffff, Message: s(MaxErrorBytes)},
		&Ping{Nonce: u64},
		&Pong{Nonce: u64},
		&SendChat{ClientID: u64, To: s(MaxNameBytes), Text: s(MaxTextBytes)},
		&Ack{ClientID: u64, Seq: u64, Time: -1 << 63},
		&Chat{Seq: u64, Time: 1<<63 - 1, From: s(MaxNameBytes), To: s(MaxNameBytes), ClientID: u64, Text: s(MaxTextBytes)},
		&Gap{From: u64, To: u64},
		&Synced{Seq: u64},
		&StateUpdate{Member: 0xffffffff, State: 0xff},
		&KeyframeRequest{Source: 0xffffffff, Track: 0xff},
		&BitrateHint{Source: 0xffffffff, Track: 0xff, Bitrate: 0xffffffff},
		&LossReport{Member: 0xffffffff, FractionLost: 0xff},
		&Voice{Source: 0xffffffff, Seq: 0xffffffff, Captured: -1, Codec: 0xff, Flags: 0xff, Level: 0xff,
			Data: bytes.Repeat([]byte{0xff}, MaxVoiceData)},
		&VideoFragment{Source: 0xffffffff, FrameSeq: 0xffffffff, Captured: -1, Track: 0xff, Codec: 0xff, Flags: 0xff,
			Index: MaxFragments - 1, Count: MaxFragments, Data: bytes.Repeat([]byte{0xff}, MaxVideoData)},
	}
}

// TestMaxPayload checks the per-type caps against the field caps: a message
// with every field at its cap fills its type's cap exactly and decodes.
func TestMaxPayload(t *testing.T) {
	seen := make(map[Type]bool)
	for _, m := range maxCases() {
		seen[m.Type()] = true
		b, err := Marshal(m)
		if err != nil {
			t.Errorf("Marshal(%v at its caps) error: %v", m.Type(), err)
			continue
		}
		if got, want := len(b)-HeaderSize, int(MaxPayload(m.Type())); got != want {
			t.Errorf("Marshal(%v at its caps) payload = %d bytes, want MaxPayload(%v) = %d", m.Type(), got, m.Type(), want)
		}
		got, _, err := DecodeFrame(b)
		if err != nil || !reflect.DeepEqual(got, m) {
			t.Errorf("DecodeFrame(Marshal(%v at its caps)) = %v, want the same message", m.Type(), err)
		}
	}
	for i := range 256 {
		if m := newMessage(Type(i)); m != nil && !seen[Type(i)] {
			t.Errorf("no case at its caps for %v", Type(i))
		}
	}
	if got := MaxPayload(0x90); got != MaxUnknownPayload {
		t.Errorf("MaxPayload(0x90) = %d, want %d", got, MaxUnknownPayload)
	}
}

// TestEncodeOverCap checks that encoders refuse a field over its cap, with
// CodeBadRequest, and leave the buffer as it was.
func TestEncodeOverCap(t *testing.T) {
	long := func(n int) string { return strings.Repeat("x", n+1) }
	tests := []Message{
		&Hello{Software: long(MaxSoftwareBytes)},
		&Welcome{Software: long(MaxSoftwareBytes)},
		&Join{Room: long(MaxRoomBytes)},
		&Join{Name: long(MaxNameBytes)},
		&Join{Password: long(MaxPasswordBytes)},
		&Join{Token: make([]byte, TokenSize+1)},
		&Joined{Room: long(MaxRoomBytes)},
		&Joined{Name: long(MaxNameBytes)},
		&Joined{Token: make([]byte, TokenSize+1)},
		&Joined{Members: make([]Member, MaxMembers+1)},
		&Joined{Members: []Member{{Name: "ok"}, {Name: long(MaxNameBytes)}}},
		&MemberJoined{Member{Name: long(MaxNameBytes)}},
		&MemberLeft{Name: long(MaxNameBytes)},
		&Error{Message: long(MaxErrorBytes)},
		&Goodbye{Message: long(MaxErrorBytes)},
		&SendChat{To: long(MaxNameBytes)},
		&SendChat{Text: long(MaxTextBytes)},
		&Chat{From: long(MaxNameBytes)},
		&Chat{To: long(MaxNameBytes)},
		&Chat{Text: long(MaxTextBytes)},
		&Voice{},
		&Voice{Data: make([]byte, MaxVoiceData+1)},
		&VideoFragment{Count: 1},
		&VideoFragment{Count: 1, Data: make([]byte, MaxVideoData+1)},
		&VideoFragment{Index: 1, Count: 1, Data: []byte{1}},
		&VideoFragment{Count: 0, Data: []byte{1}},
		&VideoFragment{Count: MaxFragments + 1, Data: []byte{1}},
	}
	for _, m := range tests {
		prefix := []byte{1, 2, 3}
		b, err := m.AppendBinary(prefix)
		if CodeOf(err) != CodeBadRequest {
			t.Errorf("AppendBinary(%v over a cap) error = %v, want code %v", m.Type(), err, CodeBadRequest)
		}
		if !bytes.Equal(b, prefix) {
			t.Errorf("AppendBinary(%v over a cap) = %x, want %x unchanged", m.Type(), b, prefix)
		}
	}
	if b, err := Marshal(&Gap{From: 2, To: 1}); err == nil {
		t.Errorf("Marshal(Gap{2, 1}) = %x, nil, want an error", b)
	}
}

// TestDecodeInvalid covers payloads that are long enough but wrong.
func TestDecodeInvalid(t *testing.T) {
	tests := []struct {
		name string
		t    Type
		hex  string
	}{
		{"software over cap", TypeHello, "0001 0001 41 78"},
		{"join unknown flag", TypeJoin, "01 72 01 6e 00 02 0000000000000000 00"},
		{"join token over cap", TypeJoin, "01 72 01 6e 00 00 0000000000000000 11 00"},
		{"joined count over cap", TypeJoined, "01 72 00000001 01 6e 00 0000000000000000 0401"},
		{"joined count over payload", TypeJoined, "01 72 00000001 01 6e 00 0000000000000000 0002 00000001 01 61 00"},
		{"error message over cap", TypeError, "0064 0000000000000000 00000000 0401 78"},
		{"gap backwards", TypeGap, "0000000000000002 0000000000000001"},
		{"str32 length huge", TypeSendChat, "0000000000000001 00 ffffffff 78"},
		{"voice without data", TypeVoice, "00000000 00000001 0000000000000000 01 00 7f"},
		{"video without data", TypeVideoFragment, "00000000 00000001 0000000000000000 00 02 00 0000 0001"},
		{"video index past count", TypeVideoFragment, "00000000 00000001 0000000000000000 00 02 00 0002 0002 ff"},
		{"video count zero", TypeVideoFragment, "00000000 00000001 0000000000000000 00 02 00 0000 0000 ff"},
		{"video count over cap", TypeVideoFragment, "00000000 00000001 0000000000000000 00 02 00 0000 0401 ff"},
		{"state-update short", TypeStateUpdate, "00000001"},
		{"bitrate-hint short", TypeBitrateHint, "00000001 00 000001"},
	}
	for _, tt := range tests {
		p := unhex(t, tt.hex)
		if m, err := Decode(tt.t, p); CodeOf(err) != CodeMalformed {
			t.Errorf("%s: Decode(%v, %x) = %+v, %v, want code %v", tt.name, tt.t, p, m, err, CodeMalformed)
		}
	}

	// A payload over the type's cap is refused before decoding.
	p := make([]byte, MaxPayload(TypePing)+1)
	if m, err := Decode(TypePing, p); CodeOf(err) != CodeFrameTooLarge {
		t.Errorf("Decode(ping, %d bytes) = %+v, %v, want code %v", len(p), m, err, CodeFrameTooLarge)
	}
	b := AppendHeader(nil, Header{Type: TypePing, Length: 9})
	if m, _, err := DecodeFrame(b); CodeOf(err) != CodeFrameTooLarge {
		t.Errorf("DecodeFrame(%x) = %+v, %v, want code %v", b, m, err, CodeFrameTooLarge)
	}
	for _, typ := range []Type{0, TypeFileChunk, 0x90} {
		if m, err := Decode(typ, nil); err == nil {
			t.Errorf("Decode(%v, nil) = %+v, nil, want ErrUnknownType", typ, m)
		}
	}
}

// TestDecodeDoesNotAlias checks that decoded messages own their memory.
func TestDecodeDoesNotAlias(t *testing.T) {
	b := readGolden(t, "join-resume")
	m, _, err := DecodeFrame(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 0
	}
	if want := goldenMessage(t, "join-resume"); !reflect.DeepEqual(m, want) {
		t.Errorf("DecodeFrame result changed with its input: %+v, want %+v", m, want)
	}
}
