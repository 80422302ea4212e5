package protocol

import (
	"errors"
	"fmt"
)

// Message is one typed message: the closed set of payload types this package
// defines (*Hello, *Welcome, *Join, ... *Synced, *Voice, *VideoFragment).
// Decoded messages own their memory; nothing aliases the buffer passed to
// Decode. (ParseVoice and ParseVideoFragment are the aliasing fast paths.)
type Message interface {
	// Type is the message's frame type.
	Type() Type
	// AppendBinary appends the whole frame (header and payload) to b. It
	// fails only when a field is over its cap.
	AppendBinary(b []byte) ([]byte, error)
	// Size is the length of the frame AppendBinary appends.
	Size() int

	validate() error
	payloadSize() int
	appendPayload(b []byte) []byte
	decode(d *decoder)
}

// appendFrame implements AppendBinary for every message type.
func appendFrame(b []byte, m Message) ([]byte, error) {
	if err := m.validate(); err != nil {
		return b, err
	}
	n := m.payloadSize()
	b = AppendHeader(b, Header{Type: m.Type(), Length: uint32(n)})
	return m.appendPayload(b), nil
}

// Marshal returns the frame encoding of m.
func Marshal(m Message) ([]byte, error) { return m.AppendBinary(make([]byte, 0, m.Size())) }

// newMessage returns an empty message of a known type, or nil.
func newMessage(t Type) Message {
	switch t {
	case TypeHello:
		return new(Hello)
	case TypeWelcome:
		return new(Welcome)
	case TypeJoin:
		return new(Join)
	case TypeJoined:
		return new(Joined)
	case TypeLeave:
		return new(Leave)
	case TypeMemberJoined:
		return new(MemberJoined)
	case TypeMemberLeft:
		return new(MemberLeft)
	case TypeError:
		return new(Error)
	case TypeGoodbye:
		return new(Goodbye)
	case TypePing:
		return new(Ping)
	case TypePong:
		return new(Pong)
	case TypeSendChat:
		return new(SendChat)
	case TypeAck:
		return new(Ack)
	case TypeChat:
		return new(Chat)
	case TypeGap:
		return new(Gap)
	case TypeSynced:
		return new(Synced)
	case TypeStateUpdate:
		return new(StateUpdate)
	case TypeKeyframeRequest:
		return new(KeyframeRequest)
	case TypeBitrateHint:
		return new(BitrateHint)
	case TypeLossReport:
		return new(LossReport)
	case TypeVoice:
		return new(Voice)
	case TypeVideoFragment:
		return new(VideoFragment)
	}
	return nil
}

// ErrUnknownType is returned (wrapped) by Decode for a type this version
// does not implement. Stream readers skip such frames unless they are
// flagged critical.
var ErrUnknownType = errors.New("protocol: unknown message type")

// Decode decodes the payload of a frame of type t. The payload must hold
// exactly one message; it is not retained.
func Decode(t Type, payload []byte) (Message, error) {
	m := newMessage(t)
	if m == nil {
		return nil, fmt.Errorf("%w %s", ErrUnknownType, t)
	}
	if uint32(len(payload)) > MaxPayload(t) {
		return nil, errorf(CodeFrameTooLarge, "%s payload is %d bytes, limit %d", t, len(payload), MaxPayload(t))
	}
	d := decoder{t: t, b: payload}
	m.decode(&d)
	if err := d.done(); err != nil {
		return nil, err
	}
	return m, nil
}

// DecodeFrame decodes one whole frame from the start of b and returns the
// message and the number of bytes used.
func DecodeFrame(b []byte) (Message, int, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return nil, 0, err
	}
	if h.Length > MaxPayload(h.Type) {
		return nil, 0, errorf(CodeFrameTooLarge, "%s declares %d bytes, limit %d", h.Type, h.Length, MaxPayload(h.Type))
	}
	end := HeaderSize + int(h.Length)
	if len(b) < end {
		return nil, 0, errorf(CodeMalformed, "%s frame needs %d bytes, have %d", h.Type, end, len(b))
	}
	m, err := Decode(h.Type, b[HeaderSize:end])
	return m, end, err
}

// ----- control stream -----

// Version is the protocol version this package speaks.
const Version uint16 = 1

// Hello opens a session (TypeHello).
type Hello struct {
	MinVersion, MaxVersion uint16
	Software               string // e.g. "parley-cli/1.0"
}

func (*Hello) Type() Type                              { return TypeHello }
func (m *Hello) AppendBinary(b []byte) ([]byte, error) { return appendFrame(b, m) }
func (m *Hello) Size() int                             { return HeaderSize + m.payloadSize() }
func (m *Hello) validate() error {
	return errLen(TypeHello, "software", len(m.Software), MaxSoftwareBytes)
}
func (m *Hello) payloadSize() int { return 2 + 2 + 1 + len(m.Software) }
func (m *Hello) appendPayload(b []byte) []byte {
	return appendStr8(appendU16(appendU16(b, m.MinVersion), m.MaxVersion), m.Software)
}
func (m *Hello) decode(d *decoder) {
	m.MinVersion = d.u16("min_version")
	m.MaxVersion = d.u16("max_version")
	m.Software = d.str8("software", MaxSoftwareBytes)
}

// Welcome answers Hello (TypeWelcome) with the chosen version and the
// server's text limits, so clients can pace themselves.
type Welcome struct {
	Version       uint16
	Software      string
	MaxTextBytes  uint32 // longest accepted chat text in bytes
	TextBurst     uint16 // chat messages a member may send at once
	TextPerMinute uint16 // sustained chat messages per minute
	HistoryOnJoin uint16 // recent messages delivered on a fresh join
}

func (*Welcome) Type() Type                              { return TypeWelcome }
func (m *Welcome) AppendBinary(b []byte) ([]byte, error) { return appendFrame(b, m) }
func (m *Welcome) Size() int                             { return HeaderSize + m.payloadSize() }
func (m *Welcome) validate() error {
	return errLen(TypeWelcome, "software", len(m.Software), MaxSoftwareBytes)
}
func (m *Welcome) payloadSize() int { return 2 + 1 + len(m.Software) + 4 + 2 + 2 + 2 }
func (m *Welcome) appendPayload(b []byte) []byte {
	b = appendStr8(appendU16(b, m.Version), m.Software)
	b = appendU32(b, m.MaxTextBytes)
	return appendU16(appendU16(appendU16(b, m.TextBurst), m.TextPerMinute), m.HistoryOnJoin)
}
func (m *Welcome) decode(d *decoder) {
	m.Version = d.u16("version")
	m.Software = d.str8("software", MaxSoftwareBytes)
	m.MaxTextBytes = d.u32("max_text_bytes")
	m.TextBurst = d.u16("text_burst")
	m.TextPerMinute = d.u16("text_per_minute")
	m.HistoryOnJoin = d.u16("history_on_join")
}

// JoinResume is the Join flag asking for every message after AfterSeq.
const JoinResume uint8 = 0x01

// Join enters a room (TypeJoin).
type Join struct {
	Room     string
	Name     string
	Password string // empty for rooms without a password
	// Resume asks for every retained message after AfterSeq (with Gap
	// markers where retention removed some) instead of the recent history.
	Resume   bool
	AfterSeq uint64
	// HistoryID is the HistoryID of the Joined that AfterSeq counts in, or
	// 0. A server whose history has another ID ignores AfterSeq and sends
	// the recent history, as on a fresh join.
	HistoryID uint64
	// Token is empty or the token from an earlier Joined for this room and
	// name. A valid token takes the name over from a stale session and
	// lets private messages be replayed.
	Token []byte
}

func (*Join) Type() Type                              { return TypeJoin }
func (m *Join) AppendBinary(b []byte) ([]byte, error) { return appendFrame(b, m) }
func (m *Join) Size() int                             { return HeaderSize + m.payloadSize() }
func (m *Join) validate() error {
	if err := errLen(TypeJoin, "room", len(m.Room), MaxRoomBytes); err != nil {
		return err
	}
	if err := errLen(TypeJoin, "name", len(m.Name), MaxNameBytes); err != nil {
		return err
	}
	if err := errLen(TypeJoin, "password", len(m.Password), MaxPasswordBytes); err != nil {
		return err
	}
	return errLen(TypeJoin, "token", len(m.Token), TokenSize)
}
func (m *Join) payloadSize() int {
	return 1 + len(m.Room) + 1 + len(m.Name) + 1 + len(m.Password) + 1 + 8 + 8 + 1 + len(m.Token)
}
func (m *Join) appendPayload(b []byte) []byte {
	b = appendStr8(appendStr8(appendStr8(b, m.Room), m.Name), m.Password)
	var flags uint8
	if m.Resume {
		flags |= JoinResume
	}
	return appendBytes8(appendU64(appendU64(append(b, flags), m.AfterSeq), m.HistoryID), m.Token)
}
func (m *Join) decode(d *decoder) {
	m.Room = d.str8("room", MaxRoomBytes)
	m.Name = d.str8("name", MaxNameBytes)
	m.Password = d.str8("password", MaxPasswordBytes)
	flags := d.u8("flags")
	m.Resume = flags&JoinResume != 0
	if flags&^JoinResume != 0 {
		d.fail("unknown flags 0x%02x", flags)
	}
	m.AfterSeq = d.u64("after_seq")
	m.HistoryID = d.u64("history_id")
	m.Token = d.bytes8("token", TokenSize)
}

// Member is one entry of a room's roster.
type Member struct {
	ID    uint32 // unique in the room while the member is present
	Name  string
	State uint8 // reserved for mute and camera flags; 0 for now
}

func (m *Member) validate(t Type) error { return errLen(t, "name", len(m.Name), MaxNameBytes) }
func (m *Member) size() int             { return 4 + 1 + len(m.Name) + 1 }
func (m *Member) appendTo(b []byte) []byte {
	return append(appendStr8(appendU32(b, m.ID), m.Name), m.State)
}
func (m *Member) decode(d *decoder) {
	m.ID = d.u32("id")
	m.Name = d.str8("name", MaxNameBytes)
	m.State = d.u8("state")
}

// Joined confirms a Join (TypeJoined).
type Joined struct {
	Room     string
	MemberID uint32
	Name     string
	Token    []byte // TokenSize bytes; present it in a later Join to resume
	HeadSeq  uint64 // the room's newest sequence number at the time of joining
	// HistoryID identifies the server's history, in which HeadSeq and
	// every Chat's Seq count; it changes only when the history is reset.
	HistoryID uint64
	Members   []Member
}

func (*Joined) Type() Type                              { return TypeJoined }
func (m *Joined) AppendBinary(b []byte) ([]byte, error) { return appendFrame(b, m) }
func (m *Joined) Size() int                             { return HeaderSize + m.payloadSize() }
func (m *Joined) validate() error {
	if err := errLen(TypeJoined, "room", len(m.Room), MaxRoomBytes); err != nil {
		return err
	}
	if err := errLen(TypeJoined, "name", len(m.Name), MaxNameBytes); err != nil {
		return err
	}
	if err := errLen(TypeJoined, "token", len(m.Token), TokenSize); err != nil {
		return err
	}
	if err := errLen(TypeJoined, "members", len(m.Members), MaxMembers); err != nil {
		return err
	}
	for i := range m.Members {
		if err := m.Members[i].validate(TypeJoined); err != nil {
			return err
		}
	}
	return nil
}
func (m *Joined) payloadSize() int {
	n := 1 + len(m.Room) + 4 + 1 + len(m.Name) + 1 + len(m.Token) + 8 + 8 + 2
	for i := range m.Members {
		n += m.Members[i].size()
	}
	return n
}
func (m *Joined) appendPayload(b []byte) []byte {
	b = appendStr8(appendU32(appendStr8(b, m.Room), m.MemberID), m.Name)
	b = appendU16(appendU64(appendU64(appendBytes8(b, m.Token), m.HeadSeq), m.HistoryID), uint16(len(m.Members)))
	for i := range m.Members {
		b = m.Members[i].appendTo(b)
	}
	return b
}
func (m *Joined) decode(d *decoder) {
	m.Room = d.str8("room", MaxRoomBytes)
	m.MemberID = d.u32("member_id")
	m.Name = d.str8("name", MaxNameBytes)
	m.Token = d.bytes8("token", TokenSize)
	m.HeadSeq = d.u64("head_seq")
	m.HistoryID = d.u64("history_id")
	n := int(d.u16("count"))
	if n > MaxMembers {
		d.fail("count %d over limit %d", n, MaxMembers)
		return
	}
	// Each member takes at least 6 bytes: check before allocating.
	if d.err == nil && n*6 > len(d.b) {
		d.fail("count %d needs at least %d bytes, %d left", n, n*6, len(d.b))
		return
	}
	if n > 0 {
		m.Members = make([]Member, n)
		for i := range m.Members {
			m.Members[i].decode(d)
		}
	}
}

// Leave leaves the room (TypeLeave).
type Leave struct{}

func (*Leave) Type() Type                              { return TypeLeave }
func (m *Leave) AppendBinary(b []byte) ([]byte, error) { return appendFrame(b, m) }
func (m *Leave) Size() int                             { return HeaderSize }
func (m *Leave) validate() error                       { return nil }
func (m *Leave) payloadSize() int                      { return 0 }
func (m *Leave) appendPayload(b []byte) []byte         { return b }
func (m *Leave) decode(d *decoder)                     {}

// MemberJoined announces a new member of the room (TypeMemberJoined).
type MemberJoined struct{ Member }

func (*MemberJoined) Type() Type                              { return TypeMemberJoined }
func (m *MemberJoined) AppendBinary(b []byte) ([]byte, error) { return appendFrame(b, m) }
func (m *MemberJoined) Size() int                             { return HeaderSize + m.payloadSize() }
func (m *MemberJoined) validate() error                       { return m.Member.validate(TypeMemberJoined) }
func (m *MemberJoined) payloadSize() int                      { return m.Member.size() }
func (m *MemberJoined) appendPayload(b []byte) []byte         { return m.Member.appendTo(b) }
func (m *MemberJoined) decode(d *decoder)                     { m.Member.decode(d) }

// LeaveReason says why a member left.
type LeaveReason uint8

// Leave reasons.
const (
	LeftUnknown      LeaveReason = 0
	LeftNormally     LeaveReason = 1 // sent Leave or closed the session
	LeftDisconnected LeaveReason = 2 // the connection failed
	LeftReplaced     LeaveReason = 3 // a new session took over the name
	LeftSlow         LeaveReason = 4 // cut as a slow consumer
	LeftShutdown     LeaveReason = 5 // the server shut down
)

var leaveReasonNames = [...]string{"unknown", "left", "disconnected", "replaced", "too slow", "server shutdown"}

func (r LeaveReason) String() string {
	if int(r) < len(leaveReasonNames) {
		return leaveReasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// MemberLeft announces that a member left the room (TypeMemberLeft).
type MemberLeft struct {
	ID     uint32
	Name   string
	Reason LeaveReason
}

func (*MemberLeft) Type() Type                              { return TypeMemberLeft }
func (m *MemberLeft) AppendBinary(b []byte) ([]byte, error) { return appendFrame(b, m) }
func (m *MemberLeft) Size() int                             { return HeaderSize + m.payloadSize() }
func (m *MemberLeft) validate() error {
	return errLen(TypeMemberLeft, "name", len(m.Name), MaxNameBytes)
}
func (m *MemberLeft) payloadSize() int { return 4 + 1 + len(m.Name) + 1 }
func (m *MemberLeft) appendPayload(b []byte) []byte {
	return append(appendStr8(appendU32(b, m.ID), m.Name), byte(m.Reason))
}
func (m *MemberLeft) decode(d *decoder) {
	m.ID = d.u32("id")
	m.Name = d.str8("name", MaxNameBytes)
	m.Reason = LeaveReason(d.u8("reason"))
}

// Error (TypeError) is defined in errors.go as a Go error type as well.

func (*Error) Type() Type                              { return TypeError }
func (m *Error) AppendBinary(b []byte) ([]byte, error) { return appendFrame(b, m) }
func (m *Error) Size() int                             { return HeaderSize + m.payloadSize() }
func (m *Error) validate() error                       { return errLen(TypeError, "message", len(m.Message), MaxErrorBytes) }
func (m *Error) payloadSize() int                      { return 2 + 8 + 4 + 2 + len(m.Message) }
func (m *Error) appendPayload(b []byte) []byte {
	return appendStr16(appendU32(appendU64(appendU16(b, uint16(m.Code)), m.Ref), m.RetryAfter), m.Message)
}
func (m *Error) decode(d *decoder) {
	m.Code = ErrorCode(d.u16("code"))
	m.Ref = d.u64("ref")
	m.RetryAfter = d.u32("retry_after_ms")
	m.Message = d.str16("message", MaxErrorBytes)
}

// Goodbye says why the sender closes the session (TypeGoodbye).
type Goodbye struct {
	Code    ErrorCode
	Message string
}

func (*Goodbye) Type() Type                              { return TypeGoodbye }
func (m *Goodbye) AppendBinary(b []byte) ([]byte, error) { return appendFrame(b, m) }
func (m *Goodbye) Size() int                             { return HeaderSize + m.payloadSize() }
func (m *Goodbye) validate() error {
	return errLen(TypeGoodbye, "message", len(m.Message), MaxErrorBytes)
}
func (m *Goodbye) payloadSize() int { return 2 + 2 + len(m.Message) }
func (m *Goodbye) appendPayload(b []byte) []byte {
	return appendStr16(appendU16(b, uint16(m.Code)), m.Message)
}
func (m *Goodbye) decode(d *decoder) {
	m.Code = ErrorCode(d.u16("code"))
	m.Message = d.str16("message", MaxErrorBytes)
}

// Err returns the goodbye as an error carrying its code.
func (m *Goodbye) Err() error { return &Error{Code: m.Code, Message: m.Message} }

// Ping asks the peer for a Pong with the same nonce (TypePing).
type Ping struct{ Nonce uint64 }

func (*Ping) Type() Type                              { return TypePing }
func (m *Ping) AppendBinary(b []byte) ([]byte, error) { return appendFrame(b, m) }
func (m *Ping) Size() int                             { return HeaderSize + 8 }
func (m *Ping) validate() error                       { return nil }
func (m *Ping) payloadSize() int                      { return 8 }
func (m *Ping) appendPayload(b []byte) []byte         { return appendU64(b, m.Nonce) }
func (m *Ping) decode(d *decoder)                     { m.Nonce = d.u64("nonce") }

// Pong answers a Ping (TypePong).
type Pong struct{ Nonce uint64 }

func (*Pong) Type() Type                              { return TypePong }
func (m *Pong) AppendBinary(b []byte) ([]byte, error) { return appendFrame(b, m) }
func (m *Pong) Size() int                             { return HeaderSize + 8 }
func (m *Pong) validate() error                       { return nil }
func (m *Pong) payloadSize() int                      { return 8 }
func (m *Pong) appendPayload(b []byte) []byte         { return appendU64(b, m.Nonce) }
func (m *Pong) decode(d *decoder)                     { m.Nonce = d.u64("nonce") }

// ----- text stream -----

// SendChat posts a chat message (TypeSendChat).
type SendChat struct {
	ClientID uint64 // non-zero; the same ID resent never makes a second message
	To       string // empty for the room, else the name of one member
	Text     string
}

func (*SendChat) Type() Type                              { return TypeSendChat }
func (m *SendChat) AppendBinary(b []byte) ([]byte, error) { return appendFrame(b, m) }
func (m *SendChat) Size() int                             { return HeaderSize + m.payloadSize() }
func (m *SendChat) validate() error {
	if err := errLen(TypeSendChat, "to", len(m.To), MaxNameBytes); err != nil {
		return err
	}
	return errLen(TypeSendChat, "text", len(m.Text), MaxTextBytes)
}
func (m *SendChat) payloadSize() int { return 8 + 1 + len(m.To) + 4 + len(m.Text) }
func (m *SendChat) appendPayload(b []byte) []byte {
	return appendStr32(appendStr8(appendU64(b, m.ClientID), m.To), m.Text)
}
func (m *SendChat) decode(d *decoder) {
	m.ClientID = d.u64("client_id")
	m.To = d.str8("to", MaxNameBytes)
	m.Text = d.str32("text", MaxTextBytes)
}

// Ack confirms that a SendChat is stored durably (TypeAck).
type Ack struct {
	ClientID uint64
	Seq      uint64
	Time     int64 // Unix milliseconds, the server's clock
}

func (*Ack) Type() Type                              { return TypeAck }
func (m *Ack) AppendBinary(b []byte) ([]byte, error) { return appendFrame(b, m) }
func (m *Ack) Size() int                             { return HeaderSize + 24 }
func (m *Ack) validate() error                       { return nil }
func (m *Ack) payloadSize() int                      { return 24 }
func (m *Ack) appendPayload(b []byte) []byte {
	return appendU64(appendU64(appendU64(b, m.ClientID), m.Seq), uint64(m.Time))
}
func (m *Ack) decode(d *decoder) {
	m.ClientID = d.u64("client_id")
	m.Seq = d.u64("seq")
	m.Time = int64(d.u64("time_ms"))
}

// Chat delivers a stored chat message (TypeChat).
type Chat struct {
	Seq      uint64
	Time     int64 // Unix milliseconds, when the server stored it
	From     string
	To       string // empty for room messages; the recipient of a private one
	ClientID uint64 // set only in the copy sent to the message's sender
	Text     string
}

func (*Chat) Type() Type                              { return TypeChat }
func (m *Chat) AppendBinary(b []byte) ([]byte, error) { return appendFrame(b, m) }
func (m *Chat) Size() int                             { return HeaderSize + m.payloadSize() }
func (m *Chat) validate() error {
	if err := errLen(TypeChat, "from", len(m.From), MaxNameBytes); err != nil {
		return err
	}
	if err := errLen(TypeChat, "to", len(m.To), MaxNameBytes); err != nil {
		return err
	}
	return errLen(TypeChat, "text", len(m.Text), MaxTextBytes)
}
func (m *Chat) payloadSize() int {
	return 8 + 8 + 1 + len(m.From) + 1 + len(m.To) + 8 + 4 + len(m.Text)
}
func (m *Chat) appendPayload(b []byte) []byte {
	b = appendStr8(appendU64(appendU64(b, m.Seq), uint64(m.Time)), m.From)
	return appendStr32(appendU64(appendStr8(b, m.To), m.ClientID), m.Text)
}
func (m *Chat) decode(d *decoder) {
	m.Seq = d.u64("seq")
	m.Time = int64(d.u64("time_ms"))
	m.From = d.str8("from", MaxNameBytes)
	m.To = d.str8("to", MaxNameBytes)
	m.ClientID = d.u64("client_id")
	m.Text = d.str32("text", MaxTextBytes)
}

// Gap marks sequence numbers removed by retention (TypeGap).
type Gap struct{ From, To uint64 }

func (*Gap) Type() Type                              { return TypeGap }
func (m *Gap) AppendBinary(b []byte) ([]byte, error) { return appendFrame(b, m) }
func (m *Gap) Size() int                             { return HeaderSize + 16 }
func (m *Gap) validate() error {
	if m.From > m.To {
		return fmt.Errorf("protocol: encoding gap: from %d after to %d", m.From, m.To)
	}
	return nil
}
func (m *Gap) payloadSize() int              { return 16 }
func (m *Gap) appendPayload(b []byte) []byte { return appendU64(appendU64(b, m.From), m.To) }
func (m *Gap) decode(d *decoder) {
	m.From = d.u64("from_seq")
	m.To = d.u64("to_seq")
	if d.err == nil && m.From > m.To {
		d.fail("from_seq %d after to_seq %d", m.From, m.To)
	}
}

// Synced ends the history replay after a join (TypeSynced).
type Synced struct{ Seq uint64 }

func (*Synced) Type() Type                              { return TypeSynced }
func (m *Synced) AppendBinary(b []byte) ([]byte, error) { return appendFrame(b, m) }
func (m *Synced) Size() int                             { return HeaderSize + 8 }
func (m *Synced) validate() error                       { return nil }
func (m *Synced) payloadSize() int                      { return 8 }
func (m *Synced) appendPayload(b []byte) []byte         { return appendU64(b, m.Seq) }
func (m *Synced) decode(d *decoder)                     { m.Seq = d.u64("seq") }
