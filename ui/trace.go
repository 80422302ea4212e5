package ui

import (
	"encoding/json"
	"io"
	"time"
)

// The trace: when Options.Trace is set, the window writes one JSON object
// per line each time what it shows changes, for end-to-end tests that
// look at the real window. Every object has "type"; the others are:
//
//	{"type":"screen","screen":"start|call"}
//	{"type":"tiles","tiles":[{"name":..,"self":bool,"screen":bool,"x":..,"y":..,"w":..,"h":..,
//	    "video":bool,"talking":bool,"muted":bool}]}
//	    x, y, w, h in window pixels; "screen" marks a shared screen's tile,
//	    "video" a tile that shows a picture (not initials)
//	{"type":"chat","from":..,"to":..,"text":..,"kind":"text|private|system|error","mine":bool,"time":RFC 3339}
//	    when a line is added to the chat panel
//	{"type":"status","state":"connecting|connected|reconnecting|disconnected","rtt_ms":..,
//	    "send_bps":..,"recv_bps":..,"detail":..}
//	{"type":"error","kind":"other|bad-password|identity-changed|unknown-server|unreachable|
//	    name-taken|bad-invite|no-device","message":..,"fatal":bool}
//	{"type":"focus","widget":"chat-editor|name|invite|password|room"}
//	{"type":"invite","invite":..}  the invite link the call window shows
//
// Writes go to the writer from the frame goroutine; a write error stops
// the trace.
type tracer struct {
	w   io.Writer
	enc *json.Encoder
}

func newTracer(w io.Writer) *tracer {
	t := &tracer{w: w}
	if w != nil {
		t.enc = json.NewEncoder(w)
		t.enc.SetEscapeHTML(false)
	}
	return t
}

func (t *tracer) emit(v any) {
	if t.enc == nil {
		return
	}
	if err := t.enc.Encode(v); err != nil {
		t.enc = nil
	}
}

type traceTile struct {
	Name    string `json:"name"`
	Self    bool   `json:"self"`
	Screen  bool   `json:"screen"`
	X       int    `json:"x"`
	Y       int    `json:"y"`
	W       int    `json:"w"`
	H       int    `json:"h"`
	Video   bool   `json:"video"`
	Talking bool   `json:"talking"`
	Muted   bool   `json:"muted"`
}

func (t *tracer) screen(s screen) {
	if t.enc == nil {
		return
	}
	t.emit(struct {
		Type   string `json:"type"`
		Screen string `json:"screen"`
	}{"screen", s.String()})
}

func (t *tracer) tiles(tiles []traceTile) {
	if t.enc == nil {
		return
	}
	if tiles == nil {
		tiles = []traceTile{}
	}
	t.emit(struct {
		Type  string      `json:"type"`
		Tiles []traceTile `json:"tiles"`
	}{"tiles", tiles})
}

func (t *tracer) chat(l ChatLine) {
	if t.enc == nil {
		return
	}
	t.emit(struct {
		Type string `json:"type"`
		From string `json:"from"`
		To   string `json:"to"`
		Text string `json:"text"`
		Kind string `json:"kind"`
		Mine bool   `json:"mine"`
		Time string `json:"time"`
	}{"chat", l.From, l.To, l.Text, l.Kind.String(), l.Mine, l.Time.Format(time.RFC3339)})
}

func (t *tracer) status(s Status) {
	if t.enc == nil {
		return
	}
	t.emit(struct {
		Type    string `json:"type"`
		State   string `json:"state"`
		RTTms   int64  `json:"rtt_ms"`
		SendBps int    `json:"send_bps"`
		RecvBps int    `json:"recv_bps"`
		Detail  string `json:"detail"`
	}{"status", s.State.String(), s.RTT.Milliseconds(), s.SendBps, s.RecvBps, s.Detail})
}

func (t *tracer) error(e Error) {
	if t.enc == nil {
		return
	}
	t.emit(struct {
		Type    string `json:"type"`
		Kind    string `json:"kind"`
		Message string `json:"message"`
		Fatal   bool   `json:"fatal"`
	}{"error", e.Kind.String(), e.Message, e.Fatal})
}

func (t *tracer) focus(widget string) {
	if t.enc == nil {
		return
	}
	t.emit(struct {
		Type   string `json:"type"`
		Widget string `json:"widget"`
	}{"focus", widget})
}

func (t *tracer) invite(s string) {
	if t.enc == nil {
		return
	}
	t.emit(struct {
		Type   string `json:"type"`
		Invite string `json:"invite"`
	}{"invite", s})
}

// String names the kind as the trace writes it.
func (k LineKind) String() string {
	switch k {
	case LineText:
		return "text"
	case LinePrivate:
		return "private"
	case LineSystem:
		return "system"
	case LineError:
		return "error"
	}
	return "unknown"
}

// String names the kind as the trace writes it.
func (k ErrorKind) String() string {
	switch k {
	case ErrBadPassword:
		return "bad-password"
	case ErrIdentityChanged:
		return "identity-changed"
	case ErrUnknownServer:
		return "unknown-server"
	case ErrUnreachable:
		return "unreachable"
	case ErrNameTaken:
		return "name-taken"
	case ErrBadInvite:
		return "bad-invite"
	case ErrNoDevice:
		return "no-device"
	}
	return "other"
}
