package ui

import (
	"image"
	"image/color"
	"time"

	"github.com/parleychat/parley/protocol"
)

// testPicture makes a synthetic camera picture: a gradient between two
// colours with a lighter head-and-shoulders shape, as 4:2:0 YCbCr.
func testPicture(w, h int, from, to color.RGBA) *image.YCbCr {
	img := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
	lerp := func(a, b uint8, t float64) uint8 { return uint8(float64(a) + (float64(b)-float64(a))*t) }
	hx, hy, hr := float64(w)/2, float64(h)*0.42, float64(h)*0.17
	for y := range h {
		for x := range w {
			t := (float64(x)/float64(w) + float64(y)/float64(h)) / 2
			r, g, b := lerp(from.R, to.R, t), lerp(from.G, to.G, t), lerp(from.B, to.B, t)
			dx, dy := float64(x)-hx, float64(y)-hy
			head := dx*dx+dy*dy < hr*hr
			// Shoulders: an ellipse under the head.
			sx, sy := (float64(x)-hx)/(float64(h)*0.36), (float64(y)-float64(h)*1.0)/(float64(h)*0.36)
			body := sx*sx+sy*sy < 1
			if head || body {
				r, g, b = lerp(r, 235, 0.55), lerp(g, 200, 0.55), lerp(b, 170, 0.55)
			}
			yy, cb, cr := color.RGBToYCbCr(r, g, b)
			img.Y[img.YOffset(x, y)] = yy
			if x%2 == 0 && y%2 == 0 {
				o := img.COffset(x, y)
				img.Cb[o], img.Cr[o] = cb, cr
			}
		}
	}
	return img
}

// solidPicture is a picture of one colour.
func solidPicture(w, h int, c color.RGBA) *image.YCbCr {
	img := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
	yy, cb, cr := color.RGBToYCbCr(c.R, c.G, c.B)
	for i := range img.Y {
		img.Y[i] = yy
	}
	for i := range img.Cb {
		img.Cb[i], img.Cr[i] = cb, cr
	}
	return img
}

var testPalettes = [][2]color.RGBA{
	{{40, 70, 120, 255}, {90, 140, 170, 255}},
	{{110, 60, 50, 255}, {180, 120, 70, 255}},
	{{40, 90, 60, 255}, {120, 160, 100, 255}},
	{{80, 50, 110, 255}, {150, 110, 170, 255}},
	{{60, 60, 70, 255}, {140, 140, 150, 255}},
}

var testNames = []string{"ada", "bob", "chiara", "dmitri", "eve", "farah_k", "gus", "hana", "ivan", "jules", "kofi", "lena"}

// person describes a participant of a test call.
type person struct {
	name    string
	video   bool // a picture in the camera feed
	muted   bool
	camOff  bool
	talking bool
	screen  bool
}

// callEvents are the events of joining a room "team" as people[0].
func callEvents(people []person) []Event {
	evs := []Event{
		Joined{Room: "team", Name: people[0].name, Server: "192.0.2.10:7700",
			Invite: "parley://192.0.2.10:7700/team?fp=V8l9QGqNh23mdcTY6UWkv5GfD9xDY7Ea84LL6uQQ9ww"},
		Status{State: Connected, RTT: 23 * time.Millisecond, SendBps: 1_450_000, RecvBps: 3_210_000},
	}
	for i, p := range people {
		var st uint8
		if !p.muted {
			st |= protocol.StateAudio
		}
		if !p.camOff {
			st |= protocol.StateVideo
		}
		cam := NewVideoFeed(nil)
		if p.video && !p.camOff {
			pal := testPalettes[i%len(testPalettes)]
			cam.Put(testPicture(320, 180, pal[0], pal[1]))
		}
		var scr *VideoFeed
		if p.screen {
			st |= protocol.StateScreen
			scr = NewVideoFeed(nil)
			scr.Put(screenPicture(640, 400))
		}
		evs = append(evs, ParticipantJoined{Participant{
			ID: uint32(i + 1), Name: p.name, Self: i == 0, State: st, Camera: cam, Screen: scr,
		}})
		if p.talking {
			evs = append(evs, Talking{ID: uint32(i + 1), Talking: true})
		}
	}
	return evs
}

// screenPicture looks like a shared desktop: a light window on a dark
// background with some lines of "text".
func screenPicture(w, h int) *image.YCbCr {
	img := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
	for y := range h {
		for x := range w {
			r, g, b := uint8(34), uint8(48), uint8(70)
			if x > w/10 && x < w*9/10 && y > h/8 && y < h*7/8 {
				r, g, b = 245, 245, 240
				if y > h/8 && y < h/8+18 {
					r, g, b = 200, 205, 215
				} else if (y/14)%2 == 0 && x > w/10+20 && x < w*7/10 && y > h/4 {
					r, g, b = 90, 100, 120
				}
			}
			yy, cb, cr := color.RGBToYCbCr(r, g, b)
			img.Y[img.YOffset(x, y)] = yy
			if x%2 == 0 && y%2 == 0 {
				o := img.COffset(x, y)
				img.Cb[o], img.Cr[o] = cb, cr
			}
		}
	}
	return img
}

// people returns n participants: ada (this member, with video), then a
// mix with and without video; bob talks, chiara is muted.
func people(n int) []person {
	ps := make([]person, n)
	for i := range ps {
		ps[i] = person{name: testNames[i%len(testNames)], video: i%3 != 2, camOff: i%3 == 2}
	}
	if n > 1 {
		ps[1].talking = true
	}
	if n > 2 {
		ps[2].muted = true
	}
	return ps
}

// chatLines is a dozen lines of every kind.
func chatLines() []Event {
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	return []Event{
		ChatLine{Kind: LineSystem, Time: at(-12), Text: "bob joined"},
		ChatLine{Kind: LineText, Time: at(-11), From: "bob", Text: "morning! can everyone hear me?"},
		ChatLine{Kind: LineText, Time: at(-11), From: "ada", Text: "loud and clear", Mine: true},
		ChatLine{Kind: LineSystem, Time: at(-10), Text: "chiara joined"},
		ChatLine{Kind: LineText, Time: at(-9), From: "chiara", Text: "sorry, I'm a few minutes late — the train was stuck outside the station for ages"},
		ChatLine{Kind: LineText, Time: at(-9), From: "chiara", Text: "did I miss the demo?"},
		ChatLine{Kind: LinePrivate, Time: at(-8), From: "bob", To: "ada", Text: "can you share the slides after?"},
		ChatLine{Kind: LinePrivate, Time: at(-8), From: "ada", To: "bob", Text: "sure, sending them at noon", Mine: true},
		ChatLine{Kind: LineSystem, Time: at(-6), Text: "Reconnected after 4 s — 2 messages caught up"},
		ChatLine{Kind: LineText, Time: at(-5), From: "dmitri", Text: "here's the build: https://ci.example.org/run/4521"},
		ChatLine{Kind: LineError, Time: at(-4), Text: "Couldn't send “see you at 10”: the message is too long"},
		ChatLine{Kind: LineSystem, Time: at(-2), Text: "eve left (connection lost)"},
		ChatLine{Kind: LineText, Time: at(-1), From: "ada", Text: "let's start", Mine: true},
	}
}
