package protocol

import "fmt"

// StreamKind says what a yamux stream carries. It is the first byte a client
// writes on every stream it opens; frames follow. Only the client opens
// streams, and it opens at most one stream of each kind; the server writes
// its messages of a kind on the stream of that kind.
type StreamKind uint8

// Stream kinds. Their order is also the relay's sending priority, except that
// text goes after voice: control, voice, text, video, file.
const (
	KindUnknown StreamKind = 0
	KindControl StreamKind = 1 // hello, join, roster, errors, pings; the first stream
	KindText    StreamKind = 2 // chat messages, acks, history, gaps
	KindVoice   StreamKind = 3 // Opus frames, one per message
	KindVideo   StreamKind = 4 // VP8 frames cut into fragments
	KindFile    StreamKind = 5 // reserved: file transfer
)

var kindNames = [...]string{"unknown", "control", "text", "voice", "video", "file"}

func (k StreamKind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Valid reports whether k is a stream kind defined by this version.
func (k StreamKind) Valid() bool { return k >= KindControl && k <= KindFile }

// Type identifies a message. The type space is divided by stream kind:
//
//	0x01–0x2F control   0x30–0x4F text   0x50–0x5F voice
//	0x60–0x6F video     0x70–0x7F file   0x80–0xFF extensions (any stream)
//
// A type in the range of another stream kind is a protocol error (whether
// or not the receiver knows it), except that TypeError may answer a request
// on the stream the request came on.
//
// Payload layouts below use: u8/u16/u32/u64 big-endian unsigned integers,
// i64 big-endian two's complement, str8 = u8 length + UTF-8 bytes,
// str16 = u16 length + UTF-8 bytes, str32 = u32 length + UTF-8 bytes,
// bytes8 = u8 length + bytes. A payload must be consumed exactly: trailing
// bytes are a protocol error.
type Type uint8

const (
	// TypeHello (client → server, control, first message of a session):
	//	u16 min_version | u16 max_version | str8 software
	TypeHello Type = 0x01

	// TypeWelcome (server → client, control) answers Hello:
	//	u16 version | str8 software | u32 max_text_bytes | u16 text_burst |
	//	u16 text_per_minute | u16 history_on_join
	TypeWelcome Type = 0x02

	// TypeJoin (client → server, control) enters a room:
	//	str8 room | str8 name | str8 password | u8 flags | u64 after_seq |
	//	u64 history_id | bytes8 token
	// flags bit 0 (JoinResume): deliver every message after after_seq instead
	// of the recent history, if history_id (from the Joined after_seq counts
	// in; 0 if unknown) matches the server's. token is empty or the 16-byte token of a
	// previous Joined for the same room and name.
	TypeJoin Type = 0x03

	// TypeJoined (server → client, control) confirms a Join:
	//	str8 room | u32 member_id | str8 name | bytes8 token | u64 head_seq |
	//	u64 history_id | u16 count | count × (u32 id | str8 name | u8 state)
	// The member list is the roster at the moment of joining and includes
	// the joining member.
	TypeJoined Type = 0x04

	// TypeLeave (client → server, control) leaves the room; empty payload.
	TypeLeave Type = 0x05

	// TypeMemberJoined (server → client, control): u32 id | str8 name | u8 state
	TypeMemberJoined Type = 0x06

	// TypeMemberLeft (server → client, control): u32 id | str8 name | u8 reason
	TypeMemberLeft Type = 0x07

	// TypeStateUpdate (either direction, control): a member's media state
	// (StateAudio, StateVideo, StateScreen): u32 member | u8 state
	// Clients send member 0; the server fills in the sender's ID.
	TypeStateUpdate Type = 0x08

	// TypeError (server → client, control or the stream of the request it
	// answers) reports a failed request; the session stays open:
	//	u16 code | u64 ref | u32 retry_after_ms | str16 message
	// ref is the client_id of the SendChat it answers, or 0.
	TypeError Type = 0x0A

	// TypeGoodbye (either direction, control) says why the sender is about
	// to close the session: u16 code | str16 message
	TypeGoodbye Type = 0x0B

	// TypePing (either direction, control): u64 nonce. The receiver answers
	// with TypePong carrying the same nonce.
	TypePing Type = 0x0C

	// TypePong (either direction, control): u64 nonce
	TypePong Type = 0x0D

	// TypeKeyframeRequest (either direction, control) asks for a keyframe:
	//	u32 source | u8 track
	// From a client, source is the member whose video it needs a keyframe
	// of; from the server, source is 0 and the client should send one.
	TypeKeyframeRequest Type = 0x10

	// TypeBitrateHint (either direction, control) limits a video track's
	// bitrate in bits per second (0: no limit):
	//	u32 source | u8 track | u32 bitrate
	// From a client: "send me at most this of source's track"; from the
	// server (source 0): "encode your track at most at this rate".
	TypeBitrateHint Type = 0x11

	// TypeLossReport (either direction, control): a listener lost part of
	// a speaker's voice: u32 member | u8 fraction_lost (in 1/256)
	// A client names the speaker; the server forwards it to the speaker
	// naming the listener.
	TypeLossReport Type = 0x12

	// TypeSendChat (client → server, text) posts a message to the room, or
	// privately to one member when to is not empty:
	//	u64 client_id | str8 to | str32 text
	// client_id is chosen by the client, non-zero and unique per sender
	// name; resending the same client_id never creates a second message.
	TypeSendChat Type = 0x30

	// TypeAck (server → client, text): the message with client_id is stored
	// durably with sequence number seq:
	//	u64 client_id | u64 seq | i64 time_ms
	TypeAck Type = 0x31

	// TypeChat (server → client, text) delivers a stored message:
	//	u64 seq | i64 time_ms | str8 from | str8 to | u64 client_id | str32 text
	// to is empty for room messages; client_id is 0 except in the copy sent
	// back to the message's own sender.
	TypeChat Type = 0x32

	// TypeGap (server → client, text): the messages with sequence numbers
	// from_seq..to_seq (inclusive) were removed by retention before this
	// client could receive them: u64 from_seq | u64 to_seq
	TypeGap Type = 0x33

	// TypeSynced (server → client, text): the history replay after a join
	// is complete up to seq; what follows is live: u64 seq
	TypeSynced Type = 0x34

	// TypeVoice (either direction, voice) is one encoded audio frame:
	//	u32 source | u32 seq | i64 capture_us | u8 codec | u8 flags | u8 level | data
	// data is the rest of the payload (1 to MaxVoiceData bytes). Clients
	// send source 0; the server sets it to the sender's member ID.
	TypeVoice Type = 0x50

	// TypeVideoFragment (either direction, video) is one piece of an
	// encoded video frame:
	//	u32 source | u32 frame_seq | i64 capture_us | u8 track | u8 codec |
	//	u8 flags | u16 index | u16 count | data
	// flags bit 0 marks a keyframe; index < count ≤ MaxFragments; data is
	// the rest of the payload (1 to MaxVideoData bytes). Clients send
	// source 0; the server sets it.
	TypeVideoFragment Type = 0x60

	// TypeFileChunk (file) is reserved for file transfer.
	TypeFileChunk Type = 0x70
)

// Caps on individual fields, part of the wire spec.
const (
	MaxRoomBytes     = 64        // room names
	MaxNameBytes     = 64        // member names
	MaxPasswordBytes = 255       // room passwords
	MaxTextBytes     = 128 << 10 // hard cap on a chat text; servers set a lower policy limit
	MaxErrorBytes    = 1024      // Error and Goodbye messages
	MaxSoftwareBytes = 64        // software names in Hello and Welcome
	MaxMembers       = 1024      // members listed in one Joined
	TokenSize        = 16        // resume tokens
	maxMemberBytes   = 4 + 1 + 64 + 1
	maxChatOverhead  = 8 + 8 + 1 + 64 + 1 + 64 + 8 + 4
)

type typeInfo struct {
	name        string
	kind        StreamKind
	maxPayload  uint32
	implemented bool
}

var typeInfos = map[Type]typeInfo{
	TypeHello:           {"hello", KindControl, 2 + 2 + 1 + MaxSoftwareBytes, true},
	TypeWelcome:         {"welcome", KindControl, 2 + 1 + MaxSoftwareBytes + 4 + 2 + 2 + 2, true},
	TypeJoin:            {"join", KindControl, 1 + MaxRoomBytes + 1 + MaxNameBytes + 1 + MaxPasswordBytes + 1 + 8 + 8 + 1 + TokenSize, true},
	TypeJoined:          {"joined", KindControl, 1 + MaxRoomBytes + 4 + 1 + MaxNameBytes + 1 + TokenSize + 8 + 8 + 2 + MaxMembers*maxMemberBytes, true},
	TypeLeave:           {"leave", KindControl, 0, true},
	TypeMemberJoined:    {"member-joined", KindControl, maxMemberBytes, true},
	TypeMemberLeft:      {"member-left", KindControl, maxMemberBytes, true},
	TypeStateUpdate:     {"state-update", KindControl, 4 + 1, true},
	TypeError:           {"error", KindControl, 2 + 8 + 4 + 2 + MaxErrorBytes, true},
	TypeGoodbye:         {"goodbye", KindControl, 2 + 2 + MaxErrorBytes, true},
	TypePing:            {"ping", KindControl, 8, true},
	TypePong:            {"pong", KindControl, 8, true},
	TypeKeyframeRequest: {"keyframe-request", KindControl, 4 + 1, true},
	TypeBitrateHint:     {"bitrate-hint", KindControl, 4 + 1 + 4, true},
	TypeLossReport:      {"loss-report", KindControl, 4 + 1, true},
	TypeSendChat:        {"send-chat", KindText, 8 + 1 + MaxNameBytes + 4 + MaxTextBytes, true},
	TypeAck:             {"ack", KindText, 8 + 8 + 8, true},
	TypeChat:            {"chat", KindText, maxChatOverhead + MaxTextBytes, true},
	TypeGap:             {"gap", KindText, 16, true},
	TypeSynced:          {"synced", KindText, 8, true},
	TypeVoice:           {"voice", KindVoice, VoiceHeaderSize + MaxVoiceData, true},
	TypeVideoFragment:   {"video-fragment", KindVideo, VideoHeaderSize + MaxVideoData, true},
	TypeFileChunk:       {"file-chunk", KindFile, 64 << 10, false},
}

func (t Type) String() string {
	if info, ok := typeInfos[t]; ok {
		return info.name
	}
	return fmt.Sprintf("type(0x%02x)", uint8(t))
}

// Kind returns the stream kind whose type range holds t, or KindUnknown for
// the extension range 0x80–0xFF and for 0x00.
func (t Type) Kind() StreamKind {
	switch {
	case t == 0 || t >= 0x80:
		return KindUnknown
	case t < 0x30:
		return KindControl
	case t < 0x50:
		return KindText
	case t < 0x60:
		return KindVoice
	case t < 0x70:
		return KindVideo
	default:
		return KindFile
	}
}

// Known reports whether this version of the package can decode t.
func (t Type) Known() bool { return typeInfos[t].implemented }

// AllowedOn reports whether a frame of type t may appear on a stream of kind
// k: its own kind's range, the extension range, or TypeError on any stream.
func (t Type) AllowedOn(k StreamKind) bool {
	if t == 0 {
		return false
	}
	tk := t.Kind()
	return tk == k || tk == KindUnknown || t == TypeError
}
