package ui

import (
	"hash/fnv"
	"image/color"
	"runtime"

	"gioui.org/font"
	"gioui.org/font/gofont"
	"gioui.org/text"
	"gioui.org/unit"
	"gioui.org/widget"
	"gioui.org/widget/material"
	"golang.org/x/exp/shiny/materialdesign/icons"
)

// The call theme: dark surfaces, light text, one accent, red for what
// stops or is off, green for who talks, yellow for a connection in trouble.
var (
	colBg        = rgb(0x111318) // window background
	colSurface   = rgb(0x1a1c22) // bars and panels
	colSurface2  = rgb(0x23262d) // tiles, input fields
	colSurface3  = rgb(0x2e323a) // buttons, hovered rows
	colSurface4  = rgb(0x3a3f49) // hovered buttons
	colBorder    = rgb(0x353a43)
	colText      = rgb(0xeceef2)
	colTextDim   = rgb(0xa4aab4)
	colTextFaint = rgb(0x79808b)
	colAccent    = rgb(0x4c8dff)
	colAccentHi  = rgb(0x6ba1ff)
	colDanger    = rgb(0xe5484d)
	colDangerHi  = rgb(0xf0646a)
	colTalking   = rgb(0x3ecf8e)
	colWarn      = rgb(0xf2c14e)
	colWarnText  = rgb(0x2a2206)
	colPrivate   = rgb(0xb794ff)
	colErrorText = rgb(0xff8080)
	colLetterbox = rgb(0x0b0c0f)
	colErrorBg   = rgb(0x3b1d21)
	colNoticeBg  = rgb(0x2b2a22)
	colScrim     = argb(0x99000000)
	colStrip     = argb(0x99000000) // the name strip over a video
)

// avatarColors are the colours of the initials circles, picked by name.
var avatarColors = [...]color.NRGBA{
	rgb(0xc2506a), rgb(0xd0743a), rgb(0xb8912a), rgb(0x4f9a5e),
	rgb(0x2a9393), rgb(0x3a82c4), rgb(0x5f63c9), rgb(0x8d5bd6),
	rgb(0xb44f93), rgb(0x6b7d8c),
}

// avatarColor derives a stable colour from a name.
func avatarColor(name string) color.NRGBA {
	h := fnv.New32a()
	h.Write([]byte(name))
	return avatarColors[h.Sum32()%uint32(len(avatarColors))]
}

func rgb(c uint32) color.NRGBA {
	return color.NRGBA{R: uint8(c >> 16), G: uint8(c >> 8), B: uint8(c), A: 0xff}
}

func argb(c uint32) color.NRGBA {
	return color.NRGBA{A: uint8(c >> 24), R: uint8(c >> 16), G: uint8(c >> 8), B: uint8(c)}
}

// withAlpha returns c with its alpha scaled by a/255.
func withAlpha(c color.NRGBA, a uint8) color.NRGBA {
	c.A = uint8(uint32(c.A) * uint32(a) / 255)
	return c
}

// newTheme returns the material theme of the window: the Go fonts only,
// so that the window looks the same everywhere (and in the goldens).
func newTheme() *material.Theme {
	th := material.NewTheme()
	th.Shaper = text.NewShaper(text.NoSystemFonts(), text.WithCollection(gofont.Collection()))
	th.Palette = material.Palette{
		Bg:         colBg,
		Fg:         colText,
		ContrastBg: colAccent,
		ContrastFg: rgb(0xffffff),
	}
	th.TextSize = 14
	return th
}

// Text sizes.
const (
	sizeTitle   unit.Sp = 26
	sizeHeading unit.Sp = 17
	sizeBody    unit.Sp = 14
	sizeSmall   unit.Sp = 12
	sizeTiny    unit.Sp = 11
)

var (
	fontBold   = font.Font{Weight: font.Bold}
	fontMedium = font.Font{Weight: font.Medium}
	fontMono   = font.Font{Typeface: "Go Mono"}
)

// icons the window uses.
type iconSet struct {
	mic, micOff, cam, camOff, screen, stopScreen, leave, copy, chat, people,
	close, chevronUp, check, warning, errorIcon, send, speaker, arrowDown,
	lock, link *widget.Icon
}

func loadIcons() *iconSet {
	m := func(data []byte) *widget.Icon {
		ic, err := widget.NewIcon(data)
		if err != nil {
			panic(err) // the icon data is compiled in
		}
		return ic
	}
	return &iconSet{
		mic:        m(icons.AVMic),
		micOff:     m(icons.AVMicOff),
		cam:        m(icons.AVVideocam),
		camOff:     m(icons.AVVideocamOff),
		screen:     m(icons.CommunicationScreenShare),
		stopScreen: m(icons.CommunicationStopScreenShare),
		leave:      m(icons.CommunicationCallEnd),
		copy:       m(icons.ContentContentCopy),
		chat:       m(icons.CommunicationChat),
		people:     m(icons.SocialPeople),
		close:      m(icons.NavigationClose),
		chevronUp:  m(icons.NavigationExpandLess),
		check:      m(icons.NavigationCheck),
		warning:    m(icons.AlertWarning),
		errorIcon:  m(icons.AlertErrorOutline),
		send:       m(icons.ContentSend),
		speaker:    m(icons.AVVolumeUp),
		arrowDown:  m(icons.NavigationArrowDownward),
		lock:       m(icons.ActionLockOutline),
		link:       m(icons.ContentLink),
	}
}

// shortcutMod is how the shortcut modifier is written in labels.
var shortcutMod = func() string {
	if runtime.GOOS == "darwin" {
		return "Cmd"
	}
	return "Ctrl"
}()
