package ui

import (
	"image"
	"time"

	"gioui.org/op/paint"
	"gioui.org/widget"

	"github.com/parleychat/parley/protocol"
)

// member is a participant as the window keeps it.
type member struct {
	Participant
	talking bool
	// What the tiles write, made when the member joins.
	label, screenLabel, initials string
	cam                          videoView // what the camera tile shows
	scr                          videoView // what the screen tile shows
	row                          widget.Clickable
}

func (m *member) has(bit uint8) bool { return m.State&bit != 0 }

func (m *member) names() {
	m.label, m.screenLabel = m.Name, m.Name+"’s screen"
	if m.Self {
		m.label, m.screenLabel = m.Name+" (you)", "Your screen"
	}
	m.initials = initials(m.Name)
}

// videoView holds the picture a tile shows: the ImageOp is made once per
// new picture from a VideoFeed, and kept for the frames in between.
type videoView struct {
	img  paint.ImageOp
	size image.Point
	ok   bool // img holds a picture
}

// update takes the feed's newest picture, if any; it reports whether
// there is a picture to show.
func (v *videoView) update(f *VideoFeed) bool {
	if f == nil {
		v.ok = false
		return false
	}
	pic, fresh := f.Take()
	switch {
	case pic == nil:
		v.ok = false
		v.img = paint.ImageOp{}
	case fresh || !v.ok:
		v.img = paint.NewImageOp(pic)
		v.size = pic.Rect.Size()
		v.ok = true
	}
	return v.ok
}

// callState is the call window's state, owned by the frame loop.
type callState struct {
	room       string
	invite     string // the link to give others ("" until known)
	hosting    bool   // this process runs the room's relay
	status     Status
	statusSeen bool // a Status came since the call began

	members []*member // in the order they joined; the member itself too

	// The media this member asked for, shown by the controls at once
	// (its own ParticipantState confirms them).
	micMuted, camOff, sharing bool

	chat  chatState
	tiles tileState
	ctl   controls
	side  sidePanel

	inviteEd    widget.Editor
	copyBtn     widget.Clickable
	copyBtn2    widget.Clickable // the one over the grid while alone
	copyRect    image.Rectangle  // where Copy was drawn, in window pixels
	copiedUntil time.Time

	focusEditor bool // give the chat editor focus in the next frame
}

func (c *callState) init() {
	c.inviteEd = widget.Editor{SingleLine: true, ReadOnly: true}
	c.chat.init()
	c.side.open = true
	c.side.tab = tabChat
}

// reset forgets the call (the chat panel's widgets stay).
func (c *callState) reset() {
	c.room, c.invite, c.hosting = "", "", false
	c.inviteEd.SetText("")
	c.status, c.statusSeen = Status{}, false
	c.members = c.members[:0]
	c.micMuted, c.camOff, c.sharing = false, false, false
	c.chat.reset()
	c.tiles.reset()
	c.ctl.menu = menuNone
	// Each call opens with the chat showing (and its editor focused).
	c.side.open, c.side.tab, c.side.unread = true, tabChat, 0
	c.copiedUntil = time.Time{}
	c.focusEditor = false
}

func (c *callState) member(id uint32) *member {
	for _, m := range c.members {
		if m.ID == id {
			return m
		}
	}
	return nil
}

func (c *callState) self() *member {
	for _, m := range c.members {
		if m.Self {
			return m
		}
	}
	return nil
}

// join adds a participant, or updates one the window knows by ID or by
// name (names are unique in a room; IDs change across reconnects).
func (c *callState) join(a *App, p Participant) {
	for _, m := range c.members {
		if m.ID == p.ID || m.Name == p.Name || p.Self && m.Self {
			if m.Camera != p.Camera {
				m.cam = videoView{}
			}
			if m.Screen != p.Screen {
				m.scr = videoView{}
			}
			m.Participant = p
			m.names()
			if p.Self {
				c.syncSelf(m)
			}
			return
		}
	}
	m := &member{Participant: p}
	m.names()
	c.members = append(c.members, m)
	if p.Self {
		c.syncSelf(m)
	}
}

func (c *callState) leave(id uint32) {
	for i, m := range c.members {
		if m.ID == id {
			copy(c.members[i:], c.members[i+1:])
			c.members[len(c.members)-1] = nil
			c.members = c.members[:len(c.members)-1]
			return
		}
	}
}

func (c *callState) setState(id uint32, state uint8) {
	if m := c.member(id); m != nil {
		m.State = state
		if m.Self {
			c.syncSelf(m)
		}
	}
}

// syncSelf makes the controls show the member's own state.
func (c *callState) syncSelf(m *member) {
	c.micMuted = !m.has(protocol.StateAudio)
	c.camOff = !m.has(protocol.StateVideo)
	c.sharing = m.has(protocol.StateScreen)
}

// setSelfBit changes the member's own state bit at once, before the
// backend confirms it.
func (c *callState) setSelfBit(bit uint8, on bool) {
	if m := c.self(); m != nil {
		if on {
			m.State |= bit
		} else {
			m.State &^= bit
		}
	}
}

func (c *callState) setStatus(a *App, s Status) {
	changed := !c.statusSeen || s != c.status
	c.status, c.statusSeen = s, true
	if changed {
		a.tr.status(s)
	}
}
