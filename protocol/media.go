package protocol

import (
	"encoding/binary"
	"fmt"
)

// Codec names the encoding of a voice or video frame. The relay forwards
// frames of any codec; a receiver drops frames of a codec it cannot decode.
type Codec uint8

// Codecs.
const (
	CodecUnknown Codec = 0
	CodecOpus    Codec = 1 // voice: Opus, 48 kHz, one frame per message
	CodecVP8     Codec = 2 // video: VP8, one encoded frame cut into fragments
)

func (c Codec) String() string {
	switch c {
	case CodecOpus:
		return "opus"
	case CodecVP8:
		return "vp8"
	}
	return fmt.Sprintf("codec(%d)", uint8(c))
}

// Track tells a member's video sources apart: a member may send its camera
// and its screen at once.
type Track uint8

// Tracks. Other values are reserved; the relay drops frames with them.
const (
	TrackCamera Track = 0
	TrackScreen Track = 1
	// MaxTrack is the highest track the relay forwards.
	MaxTrack = TrackScreen
)

func (t Track) String() string {
	switch t {
	case TrackCamera:
		return "camera"
	case TrackScreen:
		return "screen"
	}
	return fmt.Sprintf("track(%d)", uint8(t))
}

// Member state bits, carried in Member.State and StateUpdate. A bit is set
// while the member sends that medium: 0 is a member who only chats.
const (
	StateAudio  uint8 = 0x01 // microphone on (not muted)
	StateVideo  uint8 = 0x02 // camera on
	StateScreen uint8 = 0x04 // sharing the screen
)

// VideoKeyframe is the VideoFragment flag set on every fragment of a
// keyframe (a frame that decodes without earlier frames).
const VideoKeyframe uint8 = 0x01

// Media header sizes and caps, part of the wire spec.
const (
	// VoiceHeaderSize is the size of a Voice payload before its data.
	VoiceHeaderSize = 4 + 4 + 8 + 1 + 1 + 1
	// MaxVoiceData is the largest codec frame one Voice carries.
	MaxVoiceData = 4<<10 - VoiceHeaderSize
	// VideoHeaderSize is the size of a VideoFragment payload before its data.
	VideoHeaderSize = 4 + 4 + 8 + 1 + 1 + 1 + 2 + 2
	// MaxVideoData is the largest piece of a frame one VideoFragment carries.
	MaxVideoData = 64<<10 - VideoHeaderSize
	// MaxFragments is the most fragments one video frame may be cut into.
	MaxFragments = 1024
	// DefaultFragmentData is the fragment size senders use by default:
	// small enough that a voice frame written behind one waits little
	// (4 KiB take 13 ms on a 2.5 Mbit/s link), large enough that the
	// per-fragment overhead stays near 1 %.
	DefaultFragmentData = 4<<10 - VideoHeaderSize - HeaderSize
	// MaxVideoFrameBytes is the largest encoded video frame a receiver
	// must reassemble.
	MaxVideoFrameBytes = 4 << 20
)

// ----- voice stream -----

// Voice is one encoded audio frame (TypeVoice), 20 ms of Opus in practice.
// Clients send it with Source 0; the server sets Source to the sender's
// member ID before forwarding it to the other members of the room.
type Voice struct {
	Source   uint32 // the speaker's member ID, set by the server
	Seq      uint32 // the sender's frame counter: +1 per frame, wrapping
	Captured int64  // capture time of the first sample: µs since the Unix epoch, sender's clock
	Codec    Codec
	Flags    uint8 // reserved: senders set 0, receivers ignore
	// Level is the frame's audio level as in RFC 6464: 0 is the loudest
	// (0 dBov), 127 silence (-127 dBov or below).
	Level uint8
	// Data is the codec frame, 1 to MaxVoiceData bytes. After Decode it
	// is a copy; after ParseVoice it aliases the parsed buffer.
	Data []byte
}

func (*Voice) Type() Type                              { return TypeVoice }
func (m *Voice) AppendBinary(b []byte) ([]byte, error) { return appendFrame(b, m) }
func (m *Voice) Size() int                             { return HeaderSize + m.payloadSize() }
func (m *Voice) validate() error {
	if len(m.Data) == 0 {
		return fmt.Errorf("protocol: encoding voice: %w", errorf(CodeBadRequest, "no data"))
	}
	return errLen(TypeVoice, "data", len(m.Data), MaxVoiceData)
}
func (m *Voice) payloadSize() int { return VoiceHeaderSize + len(m.Data) }
func (m *Voice) appendPayload(b []byte) []byte {
	b = appendU64(appendU32(appendU32(b, m.Source), m.Seq), uint64(m.Captured))
	return append(append(b, byte(m.Codec), m.Flags, m.Level), m.Data...)
}
func (m *Voice) decode(d *decoder) {
	m.Source = d.u32("source")
	m.Seq = d.u32("seq")
	m.Captured = int64(d.u64("capture_us"))
	m.Codec = Codec(d.u8("codec"))
	m.Flags = d.u8("flags")
	m.Level = d.u8("level")
	m.Data = cloneBytes(d.rest("data", 1, MaxVoiceData))
}

// ParseVoice decodes a Voice payload into v without copying: v.Data
// aliases p. It is the relay's and the media receiver's path, which must
// not allocate per frame.
func ParseVoice(p []byte, v *Voice) error {
	if len(p) < VoiceHeaderSize+1 || len(p) > VoiceHeaderSize+MaxVoiceData {
		return errorf(CodeMalformed, "voice: payload of %d bytes, want %d to %d", len(p), VoiceHeaderSize+1, VoiceHeaderSize+MaxVoiceData)
	}
	v.Source = binary.BigEndian.Uint32(p[0:4])
	v.Seq = binary.BigEndian.Uint32(p[4:8])
	v.Captured = int64(binary.BigEndian.Uint64(p[8:16]))
	v.Codec, v.Flags, v.Level = Codec(p[16]), p[17], p[18]
	v.Data = p[VoiceHeaderSize:]
	return nil
}

// ----- video stream -----

// VideoFragment is one piece of an encoded video frame (TypeVideoFragment).
// A sender cuts every frame into Count fragments (see AppendVideoFrame)
// and sends them in order; the relay forwards them in order, and the
// receiver joins them again (Reassembler). Clients send Source 0; the
// server sets it.
type VideoFragment struct {
	Source   uint32 // the sender's member ID, set by the server
	FrameSeq uint32 // the sender's frame counter for this track: +1 per frame, wrapping
	Captured int64  // capture time of the picture: µs since the Unix epoch, sender's clock
	Track    Track
	Codec    Codec
	Flags    uint8  // VideoKeyframe; other bits reserved (senders set 0, receivers ignore)
	Index    uint16 // this fragment's place in the frame, from 0
	Count    uint16 // fragments in the frame, 1 to MaxFragments
	// Data is this fragment's part of the frame, 1 to MaxVideoData bytes.
	// After Decode it is a copy; after ParseVideoFragment it aliases the
	// parsed buffer.
	Data []byte
}

// Keyframe reports whether the fragment belongs to a keyframe.
func (m *VideoFragment) Keyframe() bool { return m.Flags&VideoKeyframe != 0 }

func (*VideoFragment) Type() Type                              { return TypeVideoFragment }
func (m *VideoFragment) AppendBinary(b []byte) ([]byte, error) { return appendFrame(b, m) }
func (m *VideoFragment) Size() int                             { return HeaderSize + m.payloadSize() }
func (m *VideoFragment) validate() error {
	if err := m.checkPlace(); err != nil {
		return fmt.Errorf("protocol: encoding video fragment: %w", errorf(CodeBadRequest, "%s", err.Message))
	}
	if len(m.Data) == 0 {
		return fmt.Errorf("protocol: encoding video fragment: %w", errorf(CodeBadRequest, "no data"))
	}
	return errLen(TypeVideoFragment, "data", len(m.Data), MaxVideoData)
}

// checkPlace checks Index and Count.
func (m *VideoFragment) checkPlace() *Error {
	if m.Count == 0 || m.Count > MaxFragments || m.Index >= m.Count {
		return errorf(CodeMalformed, "video fragment: index %d of %d (count 1 to %d)", m.Index, m.Count, MaxFragments)
	}
	return nil
}

func (m *VideoFragment) payloadSize() int { return VideoHeaderSize + len(m.Data) }
func (m *VideoFragment) appendPayload(b []byte) []byte {
	b = appendU64(appendU32(appendU32(b, m.Source), m.FrameSeq), uint64(m.Captured))
	b = appendU16(appendU16(append(b, byte(m.Track), byte(m.Codec), m.Flags), m.Index), m.Count)
	return append(b, m.Data...)
}
func (m *VideoFragment) decode(d *decoder) {
	m.Source = d.u32("source")
	m.FrameSeq = d.u32("frame_seq")
	m.Captured = int64(d.u64("capture_us"))
	m.Track = Track(d.u8("track"))
	m.Codec = Codec(d.u8("codec"))
	m.Flags = d.u8("flags")
	m.Index = d.u16("index")
	m.Count = d.u16("count")
	m.Data = cloneBytes(d.rest("data", 1, MaxVideoData))
	if d.err == nil {
		if err := m.checkPlace(); err != nil {
			d.err = err
		}
	}
}

// ParseVideoFragment decodes a VideoFragment payload into f without
// copying: f.Data aliases p.
func ParseVideoFragment(p []byte, f *VideoFragment) error {
	if len(p) < VideoHeaderSize+1 || len(p) > VideoHeaderSize+MaxVideoData {
		return errorf(CodeMalformed, "video fragment: payload of %d bytes, want %d to %d", len(p), VideoHeaderSize+1, VideoHeaderSize+MaxVideoData)
	}
	f.Source = binary.BigEndian.Uint32(p[0:4])
	f.FrameSeq = binary.BigEndian.Uint32(p[4:8])
	f.Captured = int64(binary.BigEndian.Uint64(p[8:16]))
	f.Track, f.Codec, f.Flags = Track(p[16]), Codec(p[17]), p[18]
	f.Index = binary.BigEndian.Uint16(p[19:21])
	f.Count = binary.BigEndian.Uint16(p[21:23])
	f.Data = p[VideoHeaderSize:]
	if err := f.checkPlace(); err != nil {
		return err
	}
	return nil
}

// ----- control stream: media signalling -----

// StateUpdate announces a member's media state (TypeStateUpdate): which of
// StateAudio, StateVideo and StateScreen it sends. A client sends its own
// state with Member 0; the server records it (it appears in later rosters)
// and forwards it to the other members with Member set to the member's ID.
type StateUpdate struct {
	Member uint32
	State  uint8
}

func (*StateUpdate) Type() Type                              { return TypeStateUpdate }
func (m *StateUpdate) AppendBinary(b []byte) ([]byte, error) { return appendFrame(b, m) }
func (m *StateUpdate) Size() int                             { return HeaderSize + 5 }
func (m *StateUpdate) validate() error                       { return nil }
func (m *StateUpdate) payloadSize() int                      { return 5 }
func (m *StateUpdate) appendPayload(b []byte) []byte         { return append(appendU32(b, m.Member), m.State) }
func (m *StateUpdate) decode(d *decoder) {
	m.Member = d.u32("member")
	m.State = d.u8("state")
}

// KeyframeRequest asks for a keyframe (TypeKeyframeRequest). From a client
// it names the member (Source) and track whose video it cannot decode, for
// example after losing fragments; the server passes it on, at most once per
// second per sender and track. From the server, Source is 0 and the
// receiving client should make its next frame of that track a keyframe.
// The server also asks on its own: when a member joins a room with video,
// and when it dropped a receiver's video to catch up.
type KeyframeRequest struct {
	Source uint32
	Track  Track
}

func (*KeyframeRequest) Type() Type                              { return TypeKeyframeRequest }
func (m *KeyframeRequest) AppendBinary(b []byte) ([]byte, error) { return appendFrame(b, m) }
func (m *KeyframeRequest) Size() int                             { return HeaderSize + 5 }
func (m *KeyframeRequest) validate() error                       { return nil }
func (m *KeyframeRequest) payloadSize() int                      { return 5 }
func (m *KeyframeRequest) appendPayload(b []byte) []byte {
	return append(appendU32(b, m.Source), byte(m.Track))
}
func (m *KeyframeRequest) decode(d *decoder) {
	m.Source = d.u32("source")
	m.Track = Track(d.u8("track"))
}

// BitrateHint carries a bitrate limit for a video track (TypeBitrateHint),
// in bits per second; 0 means no limit. From a client it says "send me at
// most this much of Source's track" (for example a small window, or a
// decoder that cannot keep up). From the server, Source is 0 and it tells
// the receiving client the most its track should use so that its
// receivers can take it: the server combines the clients' hints with its
// own estimate of each receiver's link. It is the TCP counterpart of RTCP's
// REMB.
type BitrateHint struct {
	Source  uint32
	Track   Track
	Bitrate uint32
}

func (*BitrateHint) Type() Type                              { return TypeBitrateHint }
func (m *BitrateHint) AppendBinary(b []byte) ([]byte, error) { return appendFrame(b, m) }
func (m *BitrateHint) Size() int                             { return HeaderSize + 9 }
func (m *BitrateHint) validate() error                       { return nil }
func (m *BitrateHint) payloadSize() int                      { return 9 }
func (m *BitrateHint) appendPayload(b []byte) []byte {
	return appendU32(append(appendU32(b, m.Source), byte(m.Track)), m.Bitrate)
}
func (m *BitrateHint) decode(d *decoder) {
	m.Source = d.u32("source")
	m.Track = Track(d.u8("track"))
	m.Bitrate = d.u32("bitrate")
}

// LossReport tells a speaker how much of its voice a listener lost
// (TypeLossReport), so that it can add forward error correction. A client
// sends it with Member set to the speaker; the server forwards it to the
// speaker with Member set to the listener. FractionLost is the fraction of
// frames lost since the previous report, in 1/256 as in RTCP.
type LossReport struct {
	Member       uint32
	FractionLost uint8
}

func (*LossReport) Type() Type                              { return TypeLossReport }
func (m *LossReport) AppendBinary(b []byte) ([]byte, error) { return appendFrame(b, m) }
func (m *LossReport) Size() int                             { return HeaderSize + 5 }
func (m *LossReport) validate() error                       { return nil }
func (m *LossReport) payloadSize() int                      { return 5 }
func (m *LossReport) appendPayload(b []byte) []byte {
	return append(appendU32(b, m.Member), m.FractionLost)
}
func (m *LossReport) decode(d *decoder) {
	m.Member = d.u32("member")
	m.FractionLost = d.u8("fraction_lost")
}
