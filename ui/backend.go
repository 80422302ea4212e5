package ui

import (
	"image"
	"sync"
	"time"
)

// Backend is what the window drives: the connection, the media and, when
// hosting, the relay. Its methods return at once; the work happens on the
// backend's goroutines, and what comes of it arrives as Events. The window
// never calls the network or a device from its frame loop.
type Backend interface {
	// Join connects to the room of an invite link.
	Join(req JoinRequest)
	// Host starts a relay in this process and joins one of its rooms; a
	// Hosting event gives the invite link to share.
	Host(req HostRequest)
	// Leave ends the call (and stops a hosted relay). A Left event follows.
	Leave()

	// Send posts a message to the room; SendPrivate to one member.
	Send(text string)
	SendPrivate(to, text string)

	// SetMicMuted, SetCamera and ShareScreen turn this member's media on
	// and off; the others see it in its state.
	SetMicMuted(muted bool)
	SetCamera(on bool)
	ShareScreen(on bool)
	// SelectDevice switches a device by its ID in Devices.
	SelectDevice(kind DeviceKind, id string)
	// Devices lists the devices there are and the ones in use.
	Devices() Devices

	// Events delivers what happens, in order. The window reads it on its
	// own goroutine and redraws; the backend calls the invalidate function
	// it was given after sending.
	Events() <-chan Event
}

// JoinRequest says where and as whom to join.
type JoinRequest struct {
	Invite          string
	Name            string
	Password        string
	TrustOnFirstUse bool
	Media           MediaChoice
}

// HostRequest says what to host.
type HostRequest struct {
	Room string // "" means "lobby"
	Name string
	// Password, if set, is what others must give to join the room (the
	// host joins with it too). It is not part of the invite link.
	Password string
	Media    MediaChoice
}

// MediaChoice says what to send at the start of a call. Each is a list of
// sources tried in order: "camera" (or "camera:/dev/videoN"),
// "testpattern", "none" for video; "mic" (or "mic:DEVICE"), "tone", "none"
// for audio. An empty list means the default:
// camera, mic.
type MediaChoice struct {
	Video []string
	Audio []string
}

// DeviceKind names a kind of device.
type DeviceKind int

// Device kinds.
const (
	Camera DeviceKind = iota
	Microphone
	Speaker
)

// Device is one device the user can pick.
type Device struct {
	ID   string // what SelectDevice takes
	Name string // what the user sees
}

// Devices are the devices of each kind and the one in use ("" ID: none).
type Devices struct {
	Cameras, Microphones, Speakers []Device
	Camera, Microphone, Speaker    string
}

// Event is something the window shows. It is one of the types below.
type Event interface{ isEvent() }

// ConnState is the state of the connection.
type ConnState int

// Connection states.
const (
	Connecting   ConnState = iota // first connection under way
	Connected                     // in the room
	Reconnecting                  // the connection dropped; trying again
	Disconnected                  // not in a call
)

func (s ConnState) String() string {
	switch s {
	case Connecting:
		return "connecting"
	case Connected:
		return "connected"
	case Reconnecting:
		return "reconnecting"
	}
	return "disconnected"
}

// Joined: this member is in the room (again, after a reconnect).
type Joined struct {
	Room, Name string
	Server     string // "host:port"
	Invite     string // the link to give others
}

// Hosting: this process runs the room's relay; Invite is the link to share.
type Hosting struct {
	Invite string
	Addr   string // where it listens
}

// Left: the call is over; the window goes back to the start screen. Err is
// why, if it ended by itself (then also shown as an Error).
type Left struct{ Err error }

// Status is the connection's state and numbers, sent when they change and
// about once a second during a call.
type Status struct {
	State   ConnState
	RTT     time.Duration // 0: not measured yet
	SendBps int           // bits per second sent, media included
	RecvBps int           // bits per second received
	Detail  string        // e.g. why it is reconnecting
}

// ErrorKind sorts errors the window explains.
type ErrorKind int

// Error kinds.
const (
	ErrOther           ErrorKind = iota
	ErrBadPassword               // the room needs a (different) password
	ErrIdentityChanged           // the server's key is not the one in the invite or on record
	ErrUnknownServer             // no key to check the server against (offer trust on first use)
	ErrUnreachable               // the server cannot be reached
	ErrNameTaken                 // someone in the room has that name
	ErrBadInvite                 // the link is not a Parley invite
	ErrNoDevice                  // a camera, microphone or speaker is missing (not fatal)
)

// Error is something that went wrong, in plain words. Fatal errors end
// the call (a Left follows); the others leave it running.
type Error struct {
	Kind    ErrorKind
	Message string // one or two sentences a user understands
	Fatal   bool
}

// Participant is a member of the room, this member included (Self).
type Participant struct {
	ID    uint32 // the member's ID in the current session
	Name  string
	Self  bool
	State uint8 // protocol.State* bits: audio, video, screen
	// Feeds are the member's video, by track (protocol.TrackCamera,
	// TrackScreen): the decoded pictures for others, the local preview for
	// this member. They stay the same for as long as the member is in the
	// room.
	Camera, Screen *VideoFeed
}

// ParticipantJoined: a member is in the room (at the start of a call, every
// member present).
type ParticipantJoined struct{ Participant }

// ParticipantLeft: a member left.
type ParticipantLeft struct {
	ID     uint32
	Name   string
	Reason string
}

// ParticipantState: a member's media state changed.
type ParticipantState struct {
	ID    uint32
	State uint8
}

// Talking: a member started or stopped talking (from its audio level).
type Talking struct {
	ID      uint32
	Talking bool
}

// LineKind sorts chat lines.
type LineKind int

// Chat line kinds.
const (
	LineText    LineKind = iota // a room message
	LinePrivate                 // a private message to or from this member
	LineSystem                  // joins, leaves, reconnects
	LineError                   // a message that could not be sent, and the like
)

// ChatLine is one line of the chat panel.
type ChatLine struct {
	Kind LineKind
	Time time.Time
	From string // sender, for text and private lines
	To   string // recipient of a private line
	Text string
	Mine bool // sent by this member
}

func (Joined) isEvent()            {}
func (Hosting) isEvent()           {}
func (Left) isEvent()              {}
func (Status) isEvent()            {}
func (Error) isEvent()             {}
func (ParticipantJoined) isEvent() {}
func (ParticipantLeft) isEvent()   {}
func (ParticipantState) isEvent()  {}
func (Talking) isEvent()           {}
func (ChatLine) isEvent()          {}

// VideoFeed hands the newest picture of one video track from the goroutine
// that makes it (a decoder, a camera) to the window, converted to RGBA
// there and not in the frame loop. It keeps three pictures and reuses them:
// one being written, the newest one ready, and the one the window shows
// (which stays untouched until the window takes another), so showing video
// allocates nothing per frame.
type VideoFeed struct {
	mu      sync.Mutex
	ready   *image.RGBA // newest complete picture, not yet taken
	front   *image.RGBA // the picture the window holds
	spare   []*image.RGBA
	frames  uint64 // pictures put
	changed func() // called after each Put (the window's invalidate)
}

// NewVideoFeed returns a feed; changed, if not nil, is called after each
// new picture.
func NewVideoFeed(changed func()) *VideoFeed { return &VideoFeed{changed: changed} }

// Put converts img into the feed's next picture. It is called from one
// goroutine at a time.
func (f *VideoFeed) Put(img *image.YCbCr) {
	r := img.Rect
	f.mu.Lock()
	var dst *image.RGBA
	if n := len(f.spare); n > 0 {
		dst, f.spare = f.spare[n-1], f.spare[:n-1]
	}
	f.mu.Unlock()
	if dst == nil || dst.Rect.Dx() != r.Dx() || dst.Rect.Dy() != r.Dy() {
		dst = image.NewRGBA(image.Rect(0, 0, r.Dx(), r.Dy()))
	}
	yCbCrToRGBA(dst, img)
	f.mu.Lock()
	if f.ready != nil {
		f.spare = append(f.spare, f.ready)
	}
	f.ready = dst
	f.frames++
	f.mu.Unlock()
	if f.changed != nil {
		f.changed()
	}
}

// Take returns the newest picture and whether it is new since the last
// Take; nil when there is none yet. The picture is the window's until its
// next Take.
func (f *VideoFeed) Take() (*image.RGBA, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ready == nil {
		return f.front, false
	}
	if f.front != nil {
		f.spare = append(f.spare, f.front)
	}
	f.front, f.ready = f.ready, nil
	return f.front, true
}

// Clear drops the pictures (the camera went off).
func (f *VideoFeed) Clear() {
	f.mu.Lock()
	f.ready, f.front, f.spare = nil, nil, nil
	f.mu.Unlock()
	if f.changed != nil {
		f.changed()
	}
}

// Frames returns how many pictures were put.
func (f *VideoFeed) Frames() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.frames
}

// yCbCrToRGBA converts a 4:2:0 picture (BT.601, full range, as VP8 and the
// image package use) into dst, which has its size.
func yCbCrToRGBA(dst *image.RGBA, src *image.YCbCr) {
	w, h := src.Rect.Dx(), src.Rect.Dy()
	// x0 is 1 when the picture starts in the middle of a chroma pair.
	x0 := src.Rect.Min.X & 1
	for y := range h {
		yRow := src.Y[src.YOffset(src.Rect.Min.X, src.Rect.Min.Y+y):]
		cOff := src.COffset(src.Rect.Min.X, src.Rect.Min.Y+y)
		cb, cr := src.Cb[cOff:], src.Cr[cOff:]
		out := dst.Pix[y*dst.Stride : y*dst.Stride+4*w]
		for x := range w {
			yy := int32(yRow[x]) * 0x10101
			b := int32(cb[(x+x0)/2]) - 128
			r := int32(cr[(x+x0)/2]) - 128
			R := (yy + 91881*r) >> 16
			G := (yy - 22554*b - 46802*r) >> 16
			B := (yy + 116130*b) >> 16
			out[4*x] = clamp8(R)
			out[4*x+1] = clamp8(G)
			out[4*x+2] = clamp8(B)
			out[4*x+3] = 0xff
		}
	}
}

func clamp8(v int32) uint8 {
	if uint32(v) > 255 {
		if v < 0 {
			return 0
		}
		return 255
	}
	return uint8(v)
}
