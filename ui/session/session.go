// Package session is the desktop client's ui.Backend: it joins a room (or
// hosts one on a relay in this process), runs the media pipeline on the
// devices the user picks, and turns all that happens into ui.Events. It
// owns every network connection and device of the app, all on its own
// goroutines, so that the window's frame loop never waits for either.
package session

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"image"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleychat/parley/media"
	"github.com/parleychat/parley/media/audio"
	"github.com/parleychat/parley/media/opus"
	"github.com/parleychat/parley/media/pipeline"
	"github.com/parleychat/parley/media/speexdsp"
	"github.com/parleychat/parley/media/vpx"
	"github.com/parleychat/parley/protocol"
	"github.com/parleychat/parley/protocol/client"
	"github.com/parleychat/parley/relay"
	"github.com/parleychat/parley/ui"
)

// Config configures a Session. Zero values mean the defaults in the
// comments.
type Config struct {
	// KnownServers is the file of trusted server keys (default
	// protocol.DefaultKnownServersPath()).
	KnownServers string
	// HostDataDir keeps a hosted relay's key and history, so that its
	// invite links stay valid across restarts (default
	// relay.DefaultDataDir()/app-host).
	HostDataDir string
	// HostListen is where a hosted relay listens (default ":7700"; if that
	// port is taken, any free port).
	HostListen string
	// HostPublicAddr is the HOST:PORT put in a hosted room's invite link
	// (default: this machine's address on its network and the port it
	// listens on). Set it when others reach this machine by another name,
	// through a forwarded port.
	HostPublicAddr string
	// Logger receives debug logs (default: discarded).
	Logger *slog.Logger
	// Devices opens cameras, screens, microphones and speakers (default
	// the real ones; tests give others).
	Devices Opener
	// OnHosting, if set, is told the invite link of a room this session
	// hosts (parley prints it for the terminal).
	OnHosting func(invite string)
	// NoEchoCancel sends the microphone as it is. By default its frames
	// are cleaned of the echo of what the speaker plays, and of steady
	// noise (media/speexdsp), which is what laptop speakers without a
	// headset need; the test tone is sent as it is either way.
	NoEchoCancel bool
}

// Session is a ui.Backend. Create it with New and give it the window's
// invalidate function with SetInvalidate.
type Session struct {
	cfg Config
	log *slog.Logger
	out *eventQueue

	mu   sync.Mutex // guards call
	call *activeCall

	devMu   sync.Mutex // guards devices
	devices ui.Devices
	devAt   time.Time
}

// New returns a session that is in no call.
func New(cfg Config) *Session {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.KnownServers == "" {
		if p, err := protocol.DefaultKnownServersPath(); err == nil {
			cfg.KnownServers = p
		}
	}
	if cfg.HostDataDir == "" {
		cfg.HostDataDir = filepath.Join(relay.DefaultDataDir(), "app-host")
	}
	if cfg.HostListen == "" {
		cfg.HostListen = ":7700"
	}
	if cfg.Devices == nil {
		cfg.Devices = systemDevices{}
	}
	s := &Session{cfg: cfg, log: cfg.Logger, out: newEventQueue()}
	go s.refreshDevices()
	return s
}

// SetInvalidate gives the session the window's invalidate function, called
// after every event.
func (s *Session) SetInvalidate(f func()) { s.out.setInvalidate(f) }

// Events returns the events for the window.
func (s *Session) Events() <-chan ui.Event { return s.out.ch }

// Close ends any call and stops the session's goroutines.
func (s *Session) Close() {
	s.Leave()
	s.mu.Lock()
	c := s.call
	s.mu.Unlock()
	if c != nil {
		<-c.done
	}
	s.out.close()
}

// emit sends an event to the window.
func (s *Session) emit(ev ui.Event) { s.out.push(ev) }

// fail reports an error that ends the attempt to join.
func (s *Session) fail(kind ui.ErrorKind, msg string) {
	s.emit(ui.Error{Kind: kind, Message: msg, Fatal: true})
	s.emit(ui.Left{Err: errors.New(msg)})
}

// ----- joining and hosting -----

// Join connects to the room of an invite.
func (s *Session) Join(req ui.JoinRequest) {
	inv, err := protocol.ParseInvite(req.Invite)
	if err != nil {
		s.fail(ui.ErrBadInvite, "That is not a Parley invite link: "+strings.TrimPrefix(err.Error(), "protocol: ")+".")
		return
	}
	if err := protocol.ValidName(req.Name); err != nil {
		s.fail(ui.ErrOther, "That name cannot be used: "+strings.TrimPrefix(err.Error(), "parley: ")+".")
		return
	}
	s.start(inv, req)
}

// Host starts a relay in this process and joins one of its rooms. Making
// the relay (its key, its database) and listening run on the call's own
// goroutine, not the caller's: the window's frame loop calls this.
func (s *Session) Host(req ui.HostRequest) {
	room := req.Room
	if room == "" {
		room = "lobby"
	}
	if err := protocol.ValidRoom(room); err != nil {
		s.fail(ui.ErrOther, "That room name cannot be used: "+strings.TrimPrefix(err.Error(), "parley: ")+".")
		return
	}
	if err := protocol.ValidName(req.Name); err != nil {
		s.fail(ui.ErrOther, "That name cannot be used: "+strings.TrimPrefix(err.Error(), "parley: ")+".")
		return
	}
	if c := s.reserve(req.Name, req.Media); c != nil {
		go c.host(room, req)
	}
}

// host starts the relay of a hosted call and joins it over loopback.
func (c *activeCall) host(room string, req ui.HostRequest) {
	s := c.s
	cfg := relay.Config{DataDir: s.cfg.HostDataDir, Logger: s.log.With("part", "relay")}
	if req.Password != "" {
		hash, err := relay.HashPassword(req.Password)
		if err != nil {
			c.release()
			s.fail(ui.ErrOther, "Could not set the room's password: "+err.Error())
			return
		}
		cfg.Rooms = map[string]relay.RoomConfig{room: {PasswordHash: hash}}
	}
	srv, err := relay.New(cfg)
	if err != nil {
		c.release()
		s.fail(ui.ErrOther, "Could not start the server: "+err.Error())
		return
	}
	ln, err := net.Listen("tcp", s.cfg.HostListen)
	if err != nil {
		// The usual port is taken (another parleyd?): any port will do.
		host, _, _ := net.SplitHostPort(s.cfg.HostListen)
		ln, err = net.Listen("tcp", net.JoinHostPort(host, "0"))
	}
	if err != nil {
		srv.Close()
		c.release()
		s.fail(ui.ErrOther, "Could not listen for connections: "+err.Error())
		return
	}
	if c.ctx.Err() != nil { // left while the relay was starting
		ln.Close()
		srv.Close()
		c.release()
		s.emit(ui.Left{})
		return
	}
	go srv.Serve(ln)
	publicAddr := s.cfg.HostPublicAddr
	if publicAddr == "" {
		publicAddr = relay.PublicAddr(ln.Addr())
	}
	public := srv.Invite(publicAddr, room)
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	local, _ := protocol.ParseInvite(srv.Invite(net.JoinHostPort("127.0.0.1", port), room))
	c.srv, c.invite, c.addr = srv, public, local.Addr
	s.emit(ui.Hosting{Invite: public, Addr: ln.Addr().String()})
	if s.cfg.OnHosting != nil {
		s.cfg.OnHosting(public)
	}
	c.run(local, ui.JoinRequest{Invite: public, Name: req.Name, Password: req.Password, Media: req.Media})
}

// activeCall is one call: its client, its media, and the hosted relay.
type activeCall struct {
	s      *Session
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed when everything has stopped
	client *client.Client
	media  *pipeline.Call
	srv    *relay.Server // nil unless hosting
	invite string        // the link shown to the user
	addr   string        // the server's host:port
	// published is client, set once run has made it and media: for the
	// window's goroutine, which may act on the call before that.
	published atomic.Pointer[client.Client]
	choice    ui.MediaChoice
	echo      *speexdsp.Canceller // nil without echo cancellation; set before published

	mu      sync.Mutex // guards the fields below
	people  map[string]*person
	self    string
	nextID  uint32
	devices selection
}

// person is a participant as the window knows it: by name, so that its ID
// and feeds survive the member's reconnects.
type person struct {
	id      uint32
	camera  *ui.VideoFeed
	screen  *ui.VideoFeed
	talk    audio.TalkDetector
	talking bool
	heard   time.Time
}

// selection is what the user picked.
type selection struct {
	camera, mic, speaker string // device IDs; "" none
	cameraOn, screenOn   bool
	muted                bool
}

// start opens the devices and runs the call.
func (s *Session) start(inv protocol.Invite, req ui.JoinRequest) {
	if c := s.reserve(req.Name, req.Media); c != nil {
		c.invite, c.addr = req.Invite, inv.Addr
		go c.run(inv, req)
	}
}

// reserve makes the session's call, unless there is one already. The call
// is not connected yet: its goroutine does that.
func (s *Session) reserve(name string, media ui.MediaChoice) *activeCall {
	s.mu.Lock()
	if s.call != nil {
		s.mu.Unlock()
		s.emit(ui.Error{Kind: ui.ErrOther, Message: "Leave the current call first."})
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &activeCall{s: s, ctx: ctx, cancel: cancel, done: make(chan struct{}),
		choice: media, people: make(map[string]*person), self: name}
	s.call = c
	s.mu.Unlock()
	s.emit(ui.Status{State: ui.Connecting})
	return c
}

// release ends a call that never ran.
func (c *activeCall) release() {
	c.cancel()
	c.s.mu.Lock()
	c.s.call = nil
	c.s.mu.Unlock()
	close(c.done)
}

// Leave ends the call.
func (s *Session) Leave() {
	s.mu.Lock()
	c := s.call
	s.mu.Unlock()
	if c != nil {
		if cl := c.published.Load(); cl != nil {
			cl.Leave()
		}
		c.cancel()
	}
}

func (c *activeCall) run(inv protocol.Invite, req ui.JoinRequest) {
	s := c.s
	defer func() {
		if c.srv != nil {
			// The host leaves: the call is over for everyone (guests are
			// told so and stop, rather than reconnect for ever).
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			c.srv.End(ctx)
			cancel()
		}
		s.mu.Lock()
		s.call = nil
		s.mu.Unlock()
		close(c.done)
	}()
	cfg := c.pipelineConfig()
	if !s.cfg.NoEchoCancel {
		// The pipeline uses it on microphones only. It is closed as run
		// returns, after the pipeline's Run.
		if echo, err := speexdsp.NewCanceller(speexdsp.Config{}); err != nil {
			s.log.Warn("no echo cancellation", "err", err)
		} else {
			defer func() {
				s.log.Debug("echo canceller", "stats", fmt.Sprintf("%+v", echo.Stats()))
				echo.Close()
			}()
			cfg.EchoCanceller = echo
			c.echo = echo
		}
	}
	c.media = pipeline.New(cfg)
	c.client = client.New(client.Config{
		Invite:   inv,
		Name:     req.Name,
		Password: req.Password,
		Dial: protocol.DialConfig{
			KnownServers:    &protocol.KnownServers{Path: s.cfg.KnownServers},
			TrustOnFirstUse: req.TrustOnFirstUse,
			Software:        "parley",
			SessionCache:    tls.NewLRUClientSessionCache(4),
		},
		Media:  c.media,
		Logger: s.log.With("part", "client"),
	})
	c.published.Store(c.client)
	c.openDevices()
	var wg sync.WaitGroup
	wg.Go(func() { c.media.Run(c.ctx, c.client) })
	wg.Go(c.status)
	wg.Go(c.forwardEvents)
	err := c.client.Run(c.ctx)
	c.cancel()
	wg.Wait()
	switch {
	case err == nil, errors.Is(err, client.ErrLeft), errors.Is(err, context.Canceled):
		s.emit(ui.Status{State: ui.Disconnected})
		s.emit(ui.Left{})
	default:
		kind, msg := explain(err, inv)
		s.emit(ui.Status{State: ui.Disconnected})
		s.emit(ui.Error{Kind: kind, Message: msg, Fatal: true})
		s.emit(ui.Left{Err: err})
	}
}

// pipelineConfig wires the media pipeline to the window.
func (c *activeCall) pipelineConfig() pipeline.Config {
	return pipeline.Config{
		NewAudioEncoder: func() (media.AudioEncoder, error) { return opus.NewEncoder(opus.Config{}) },
		NewAudioDecoder: func() (media.AudioDecoder, error) { return opus.NewDecoder() },
		NewVideoEncoder: func(screen bool) (media.VideoEncoder, error) {
			return vpx.NewEncoder(vpx.Config{Screen: screen})
		},
		NewVideoDecoder: func() (media.VideoDecoder, error) { return vpx.NewDecoder() },
		OnPicture: func(source uint32, tr protocol.Track, img *image.YCbCr, _ time.Time) {
			if p := c.personByID(source); p != nil {
				feed := p.camera
				if tr == protocol.TrackScreen {
					feed = p.screen
				}
				feed.Put(img)
			}
		},
		OnPreview: func(tr protocol.Track, img *image.YCbCr) {
			if p := c.selfPerson(); p != nil {
				feed := p.camera
				if tr == protocol.TrackScreen {
					feed = p.screen
				}
				feed.Put(img)
			}
		},
		OnLevel: func(source uint32, level uint8) {
			if m, ok := c.client.Member(source); ok {
				c.level(m.Name, level)
			}
		},
		OnLocalLevel: func(level uint8) { c.level(c.self, level) },
		OnSourceEnded: func(what string, err error) {
			msg := fmt.Sprintf("Your %s stopped", what)
			if err != nil {
				msg += ": " + err.Error()
			}
			c.s.emit(ui.Error{Kind: ui.ErrNoDevice, Message: msg + "."})
		},
		Logger: c.s.log.With("part", "media"),
	}
}

// ----- participants -----

// personNamed returns the participant of a name, making it (and telling
// the window) the first time.
func (c *activeCall) personNamed(name string) (*person, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.people[name]; p != nil {
		return p, false
	}
	c.nextID++
	inv := c.s.out.invalidateNow
	p := &person{id: c.nextID, camera: ui.NewVideoFeed(inv), screen: ui.NewVideoFeed(inv)}
	c.people[name] = p
	return p, true
}

func (c *activeCall) personByID(member uint32) *person {
	m, ok := c.client.Member(member)
	if !ok {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.people[m.Name]
}

func (c *activeCall) selfPerson() *person {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.people[c.self]
}

// level feeds a participant's talking indicator.
func (c *activeCall) level(name string, level uint8) {
	c.mu.Lock()
	p := c.people[name]
	if p == nil {
		c.mu.Unlock()
		return
	}
	talking := p.talk.Frame(level)
	p.heard = time.Now()
	changed := talking != p.talking
	p.talking = talking
	id := p.id
	c.mu.Unlock()
	if changed {
		c.s.emit(ui.Talking{ID: id, Talking: talking})
	}
}

// forwardEvents turns the client's events into the window's.
func (c *activeCall) forwardEvents() {
	s := c.s
	for ev := range c.client.Events() {
		switch ev.Type {
		case client.EventConnected:
			p, isNew := c.personNamed(ev.From)
			if isNew {
				s.emit(ui.ParticipantJoined{Participant: ui.Participant{ID: p.id, Name: ev.From, Self: true,
					State: c.media.State(), Camera: p.camera, Screen: p.screen}})
			}
			s.emit(ui.Joined{Room: ev.Room, Name: ev.From, Server: c.addr, Invite: c.invite})
			s.emit(ui.Status{State: ui.Connected})
		case client.EventDisconnected:
			s.emit(ui.Status{State: ui.Reconnecting, Detail: plainCause(ev.Err)})
			s.emit(ui.ChatLine{Kind: ui.LineSystem, Time: ev.Time, Text: "Connection lost (" + plainCause(ev.Err) + "); reconnecting…"})
		case client.EventText, client.EventPrivate:
			kind := ui.LineText
			if ev.Type == client.EventPrivate {
				kind = ui.LinePrivate
			}
			s.emit(ui.ChatLine{Kind: kind, Time: ev.Time, From: ev.From, To: ev.To, Text: ev.Text, Mine: ev.Mine})
		case client.EventJoin:
			if ev.From == c.self {
				continue // this member, announced at connect
			}
			p, isNew := c.personNamed(ev.From)
			if isNew {
				s.emit(ui.ParticipantJoined{Participant: ui.Participant{ID: p.id, Name: ev.From, State: ev.State,
					Camera: p.camera, Screen: p.screen}})
				s.emit(ui.ChatLine{Kind: ui.LineSystem, Time: ev.Time, Text: ev.From + " joined"})
			}
		case client.EventLeave:
			c.mu.Lock()
			p := c.people[ev.From]
			delete(c.people, ev.From)
			c.mu.Unlock()
			if p != nil {
				s.emit(ui.ParticipantLeft{ID: p.id, Name: ev.From, Reason: ev.Text})
				s.emit(ui.ChatLine{Kind: ui.LineSystem, Time: ev.Time, Text: ev.From + " left" + leaveDetail(ev.Text)})
			}
		case client.EventState:
			c.mu.Lock()
			p := c.people[ev.From]
			c.mu.Unlock()
			if p != nil {
				if ev.State&protocol.StateVideo == 0 {
					p.camera.Clear()
				}
				if ev.State&protocol.StateScreen == 0 {
					p.screen.Clear()
				}
				s.emit(ui.ParticipantState{ID: p.id, State: ev.State})
			}
		case client.EventGap:
			s.emit(ui.ChatLine{Kind: ui.LineSystem, Time: ev.Time,
				Text: fmt.Sprintf("%d older messages were removed by the server before you could see them", ev.GapTo-ev.Seq+1)})
		case client.EventError:
			s.emit(ui.ChatLine{Kind: ui.LineError, Time: ev.Time, Text: plainCause(ev.Err), To: ev.To})
		}
	}
}

func leaveDetail(reason string) string {
	switch reason {
	case "", "left":
		return ""
	case "disconnected":
		return " (connection lost)"
	}
	return " (" + reason + ")"
}

// status sends the connection's numbers once a second, and this member's
// state when it changes.
func (c *activeCall) status() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var lastSent, lastRecv uint64
	lastAt := time.Now()
	var lastState uint8
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
		st := c.media.Stats()
		now := time.Now()
		secs := now.Sub(lastAt).Seconds()
		send := int(float64(st.BytesSent-lastSent) * 8 / secs)
		recv := int(float64(st.BytesReceived-lastRecv) * 8 / secs)
		lastSent, lastRecv, lastAt = st.BytesSent, st.BytesReceived, now
		pctx, cancel := context.WithTimeout(c.ctx, 900*time.Millisecond)
		rtt, err := c.client.Ping(pctx)
		cancel()
		if err != nil {
			continue // between connections: the Reconnecting status stands
		}
		c.s.emit(ui.Status{State: ui.Connected, RTT: rtt, SendBps: send, RecvBps: recv})
		if state := c.media.State(); state != lastState {
			lastState = state
			if p := c.selfPerson(); p != nil {
				c.s.emit(ui.ParticipantState{ID: p.id, State: state})
			}
		}
		c.quietTalkers(now)
	}
}

// quietTalkers ends the talking indicator of speakers who went silent
// without a quiet frame (they stopped sending).
func (c *activeCall) quietTalkers(now time.Time) {
	var quiet []uint32
	c.mu.Lock()
	for _, p := range c.people {
		if p.talking && now.Sub(p.heard) > time.Second {
			p.talking = false
			quiet = append(quiet, p.id)
		}
	}
	c.mu.Unlock()
	for _, id := range quiet {
		c.s.emit(ui.Talking{ID: id})
	}
}

// ----- chat -----

// Send posts a room message.
func (s *Session) Send(text string) {
	if cl := s.activeClient(); cl != nil {
		cl.Send(text)
	}
}

// SendPrivate posts a private message.
func (s *Session) SendPrivate(to, text string) {
	if cl := s.activeClient(); cl != nil {
		cl.SendPrivate(to, text)
	}
}

// active returns the current call once its goroutine has made its client
// and media (the window acts on a call only after it joined; until then
// there is nothing to act on), else nil.
func (s *Session) active() *activeCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.call == nil || s.call.published.Load() == nil {
		return nil
	}
	return s.call
}

// activeClient returns the client of the current call, nil before the
// call's goroutine has made it.
func (s *Session) activeClient() *client.Client {
	if c := s.active(); c != nil {
		return c.published.Load()
	}
	return nil
}

// ----- errors in plain words -----

// explain turns the error that ended a call into words for the window.
func explain(err error, inv protocol.Invite) (ui.ErrorKind, string) {
	switch {
	case errors.Is(err, protocol.ErrUnknownServer):
		return ui.ErrUnknownServer, "This link has no fingerprint and you have not connected to " + inv.Addr + " before, " +
			"so Parley cannot check that it is the right server. Ask for a full invite link, or choose to trust this server."
	case errors.Is(err, protocol.ErrIdentityChanged):
		return ui.ErrIdentityChanged, "The server at " + inv.Addr + " is not the one this invite link is for: its key has changed. " +
			"This can mean someone is intercepting the connection. Ask the host for a new invite link."
	}
	switch protocol.CodeOf(err) {
	case protocol.CodeBadPassword:
		return ui.ErrBadPassword, "Room " + inv.Room + " needs a password, and the one given is not right."
	case protocol.CodeNameTaken:
		return ui.ErrNameTaken, "Someone in room " + inv.Room + " already uses that name. Pick another one."
	case protocol.CodeBadName:
		return ui.ErrOther, "That name cannot be used (no spaces, at most 64 bytes)."
	case protocol.CodeRoomFull:
		return ui.ErrOther, "Room " + inv.Room + " is full."
	case protocol.CodeReplaced:
		return ui.ErrOther, "You joined the room from somewhere else, so this window left it."
	case protocol.CodeShutdown:
		return ui.ErrOther, "The server shut down."
	case protocol.CodeEnded:
		return ui.ErrOther, "The host ended the call."
	}
	var ne net.Error
	var oe *net.OpError
	if errors.As(err, &oe) || errors.As(err, &ne) || strings.Contains(err.Error(), "connecting to") {
		return ui.ErrUnreachable, "Cannot reach the server at " + inv.Addr + " (" + plainCause(err) + "). " +
			"Check the link, and that the server runs and its port is open."
	}
	return ui.ErrOther, "The call ended: " + plainCause(err) + "."
}

// plainCause is the innermost part of an error message, without package
// prefixes.
func plainCause(err error) string {
	if err == nil {
		return "unknown reason"
	}
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 && i+2 < len(msg) {
		msg = msg[i+2:]
	}
	return strings.TrimPrefix(msg, "parley: ")
}
