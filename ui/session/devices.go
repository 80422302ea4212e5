package session

import (
	"errors"
	"strings"
	"time"

	"github.com/parleychat/parley/media"
	"github.com/parleychat/parley/media/audio"
	"github.com/parleychat/parley/media/audiodev"
	"github.com/parleychat/parley/media/device"
	"github.com/parleychat/parley/media/video"
	"github.com/parleychat/parley/protocol"
	"github.com/parleychat/parley/ui"
)

// Opener opens the devices a call uses. The IDs are those it lists.
type Opener interface {
	// Camera opens a camera ("" the first one) or the test pattern
	// (TestPattern).
	Camera(id string) (media.VideoSource, error)
	// Screen opens screen capture.
	Screen() (media.VideoSource, error)
	// Microphone opens a microphone ("" the default one) or the test
	// tone (TestTone).
	Microphone(id string) (media.AudioSource, error)
	// Speaker opens a speaker ("" the default one).
	Speaker(id string) (media.AudioSink, error)
	// List lists the devices there are, the test sources last.
	List() (cameras, microphones, speakers []ui.Device)
}

// The test sources' IDs.
const (
	TestPattern = "testpattern"
	TestTone    = "tone"
)

// systemDevices opens the machine's devices.
type systemDevices struct{}

func (systemDevices) Camera(id string) (media.VideoSource, error) {
	if id == TestPattern {
		return video.NewTestPattern(video.PatternConfig{})
	}
	return device.OpenCamera(device.CameraConfig{Device: id})
}

func (systemDevices) Screen() (media.VideoSource, error) {
	return device.OpenScreen(device.ScreenConfig{FrameRate: 15})
}

func (systemDevices) Microphone(id string) (media.AudioSource, error) {
	if id == TestTone {
		return audio.NewTone(audio.ToneConfig{})
	}
	return audiodev.OpenCapture(audiodev.Config{Device: id})
}

func (systemDevices) Speaker(id string) (media.AudioSink, error) {
	return audiodev.OpenPlayback(audiodev.Config{Device: id})
}

func (systemDevices) List() (cams, mics, speakers []ui.Device) {
	if list, err := device.Cameras(); err == nil {
		for _, c := range list {
			cams = append(cams, ui.Device{ID: c.Path, Name: c.Name})
		}
	}
	cams = append(cams, ui.Device{ID: TestPattern, Name: "Test pattern"})
	if list, err := audiodev.Devices(); err == nil {
		for _, d := range list {
			if d.Inputs > 0 {
				mics = append(mics, ui.Device{ID: d.Name, Name: d.Name})
			}
			if d.Outputs > 0 {
				speakers = append(speakers, ui.Device{ID: d.Name, Name: d.Name})
			}
		}
	}
	mics = append(mics, ui.Device{ID: TestTone, Name: "Test tone (440 Hz)"})
	return cams, mics, speakers
}

// deviceRefresh is how old the device lists may get before Devices looks
// again.
const deviceRefresh = 5 * time.Second

// Devices returns the device lists (as last looked up: looking takes time,
// so it happens in the background) and what is in use.
func (s *Session) Devices() ui.Devices {
	s.devMu.Lock()
	d := s.devices
	stale := time.Since(s.devAt) > deviceRefresh
	if stale {
		s.devAt = time.Now() // one refresh at a time
	}
	s.devMu.Unlock()
	if stale {
		go s.refreshDevices()
	}
	if c := s.active(); c != nil {
		c.mu.Lock()
		d.Camera, d.Microphone, d.Speaker = c.devices.camera, c.devices.mic, c.devices.speaker
		if !c.devices.cameraOn {
			d.Camera = ""
		}
		c.mu.Unlock()
	}
	return d
}

func (s *Session) refreshDevices() {
	cams, mics, speakers := s.cfg.Devices.List()
	s.devMu.Lock()
	s.devices = ui.Devices{Cameras: cams, Microphones: mics, Speakers: speakers}
	s.devAt = time.Now()
	s.devMu.Unlock()
}

// openDevices opens what the media choice names, each list in order, and
// the default speaker; what is missing is reported, not fatal.
func (c *activeCall) openDevices() {
	s := c.s
	videoChoice := c.choice.Video
	if len(videoChoice) == 0 {
		videoChoice = []string{"camera"}
	}
	audioChoice := c.choice.Audio
	if len(audioChoice) == 0 {
		audioChoice = []string{"mic"}
	}
	// The first failure is the one worth telling: a later entry of the
	// list is a fallback (the test pattern for a missing camera).
	var videoErr error
	videoOpened, videoFallback := false, false
	for _, v := range videoChoice {
		if v == "none" {
			break
		}
		id := choiceID(v, "camera")
		src, err := s.cfg.Devices.Camera(id)
		if err != nil {
			if videoErr == nil {
				videoErr = err
			}
			continue
		}
		c.media.SetVideo(protocol.TrackCamera, src)
		c.setSelection(func(sel *selection) { sel.camera, sel.cameraOn = id, true })
		videoOpened, videoFallback = true, id == TestPattern
		break
	}
	switch {
	case videoErr != nil && videoOpened && videoFallback:
		s.emit(ui.Error{Kind: ui.ErrNoDevice, Message: deviceProblem(videoErr, "camera") + ": the others see a test pattern."})
	case videoErr != nil && !videoOpened:
		s.emit(ui.Error{Kind: ui.ErrNoDevice, Message: deviceProblem(videoErr, "camera") + ": the others see your initials."})
	}
	var audioErr error
	audioOpened, audioFallback := false, false
	for _, a := range audioChoice {
		if a == "none" {
			break
		}
		id := choiceID(a, "mic")
		src, err := s.cfg.Devices.Microphone(id)
		if err != nil {
			if audioErr == nil {
				audioErr = err
			}
			continue
		}
		c.media.SetAudio(src)
		c.setSelection(func(sel *selection) { sel.mic = id })
		audioOpened, audioFallback = true, id == TestTone
		break
	}
	switch {
	case audioErr != nil && audioOpened && audioFallback:
		s.emit(ui.Error{Kind: ui.ErrNoDevice, Message: deviceProblem(audioErr, "microphone") + ": the others hear a test tone."})
	case audioErr != nil && !audioOpened:
		s.emit(ui.Error{Kind: ui.ErrNoDevice, Message: deviceProblem(audioErr, "microphone") + ": the others cannot hear you."})
	}
	if sink, err := s.cfg.Devices.Speaker(""); err != nil {
		s.emit(ui.Error{Kind: ui.ErrNoDevice, Message: deviceProblem(err, "speaker") + ": you cannot hear the others."})
	} else {
		c.media.SetSpeaker(sink)
	}
}

// choiceID turns an entry of a media choice into a device ID: "camera" is
// the first camera (""), "camera:/dev/video2" that one; the test sources
// are their own IDs.
func choiceID(entry, generic string) string {
	if entry == generic {
		return ""
	}
	if id, ok := strings.CutPrefix(entry, generic+":"); ok {
		return id
	}
	return entry
}

func (c *activeCall) setSelection(f func(*selection)) {
	c.mu.Lock()
	f(&c.devices)
	c.mu.Unlock()
}

// selfState tells the window this member's state after a change.
func (c *activeCall) selfState() {
	if p := c.selfPerson(); p != nil {
		c.s.emit(ui.ParticipantState{ID: p.id, State: c.media.State()})
	}
}

// SetMicMuted mutes or unmutes the microphone.
func (s *Session) SetMicMuted(muted bool) {
	if c := s.active(); c != nil {
		c.media.SetMuted(muted)
		c.setSelection(func(sel *selection) { sel.muted = muted })
		c.selfState()
	}
}

// SetCamera turns the camera on (the one last picked) or off.
func (s *Session) SetCamera(on bool) {
	c := s.active()
	if c == nil {
		return
	}
	if !on {
		c.media.SetVideo(protocol.TrackCamera, nil)
		c.setSelection(func(sel *selection) { sel.cameraOn = false })
		if p := c.selfPerson(); p != nil {
			p.camera.Clear()
		}
		c.selfState()
		return
	}
	c.mu.Lock()
	id := c.devices.camera
	c.mu.Unlock()
	go c.openCamera(id)
}

func (c *activeCall) openCamera(id string) {
	src, err := c.s.cfg.Devices.Camera(id)
	if err != nil {
		c.s.emit(ui.Error{Kind: ui.ErrNoDevice, Message: deviceProblem(err, "camera") + "."})
		return
	}
	c.media.SetVideo(protocol.TrackCamera, src)
	c.setSelection(func(sel *selection) { sel.camera, sel.cameraOn = id, true })
	c.selfState()
}

// ShareScreen starts or stops sharing the screen.
func (s *Session) ShareScreen(on bool) {
	c := s.active()
	if c == nil {
		return
	}
	if !on {
		c.media.SetVideo(protocol.TrackScreen, nil)
		c.setSelection(func(sel *selection) { sel.screenOn = false })
		if p := c.selfPerson(); p != nil {
			p.screen.Clear()
		}
		c.selfState()
		return
	}
	go func() {
		src, err := s.cfg.Devices.Screen()
		if err != nil {
			s.emit(ui.Error{Kind: ui.ErrNoDevice, Message: deviceProblem(err, "screen") + "."})
			return
		}
		c.media.SetVideo(protocol.TrackScreen, src)
		c.setSelection(func(sel *selection) { sel.screenOn = true })
		c.selfState()
	}()
}

// SelectDevice switches to another device.
func (s *Session) SelectDevice(kind ui.DeviceKind, id string) {
	c := s.active()
	if c == nil {
		return
	}
	go func() {
		switch kind {
		case ui.Camera:
			c.openCamera(id)
		case ui.Microphone:
			src, err := s.cfg.Devices.Microphone(id)
			if err != nil {
				s.emit(ui.Error{Kind: ui.ErrNoDevice, Message: deviceProblem(err, "microphone") + "."})
				return
			}
			c.media.SetAudio(src)
			c.setSelection(func(sel *selection) { sel.mic = id })
			c.selfState()
		case ui.Speaker:
			sink, err := s.cfg.Devices.Speaker(id)
			if err != nil {
				s.emit(ui.Error{Kind: ui.ErrNoDevice, Message: deviceProblem(err, "speaker") + "."})
				return
			}
			c.media.SetSpeaker(sink)
			c.setSelection(func(sel *selection) { sel.speaker = id })
		}
	}()
}

// deviceProblem says in a few plain words why a device did not open: "No
// camera was found", or "The microphone could not be opened (busy)".
func deviceProblem(err error, what string) string {
	switch {
	case errors.Is(err, device.ErrNoCamera), errors.Is(err, audiodev.ErrNoMicrophone), errors.Is(err, audiodev.ErrNoSpeaker):
		return "No " + what + " was found"
	case errors.Is(err, device.ErrNoDisplay):
		return "The screen cannot be shared without an X11 display"
	case what == "screen":
		return "The screen could not be shared (" + plainCause(err) + ")"
	}
	return "The " + what + " could not be opened (" + plainCause(err) + ")"
}
