package ui

import (
	"image"
	"strings"
	"unicode"

	"gioui.org/io/key"
	"gioui.org/layout"
	"gioui.org/op"
	"gioui.org/unit"
	"gioui.org/widget"
	"gioui.org/widget/material"
)

// startState is the start screen: join with an invite link, or host.
type startState struct {
	name, invite, password, room widget.Editor
	hostPassword                 widget.Editor

	join, host, cancel, dismiss widget.Clickable
	tofu                        widget.Bool
	recentBtns                  []widget.Clickable
	recent                      []recent // what recentBtns show
	recentText                  []string

	list widget.List

	// busy: a join or host is under way; the fields wait.
	busy     bool
	busyText string
	// The invite and name of the join under way (or last tried).
	pendingInvite, pendingName string
	// tofuFor is the invite the backend could not check the server of
	// (ErrUnknownServer): the trust-on-first-use box shows for it only.
	tofuFor string

	nameErr, inviteErr string
	focusedName        string         // the editor last traced as focused
	focusFirst         bool           // focus the first empty field in the next frame
	contentH           int            // the page's height in the last frame
	focus              *widget.Editor // to focus in the next frame
}

const maxNameLen = 32

func (s *startState) init(a *App) {
	for _, e := range []*widget.Editor{&s.name, &s.invite, &s.password, &s.room, &s.hostPassword} {
		e.SingleLine = true
		e.Submit = true
	}
	s.password.Mask = '•'
	s.hostPassword.Mask = '•'
	s.list.Axis = layout.Vertical
	name := a.opts.Join.Name
	if name == "" {
		name = a.opts.Host.Name
	}
	if name == "" {
		name = a.prefs.Name
	}
	s.name.SetText(name)
	s.invite.SetText(a.opts.Join.Invite)
	s.password.SetText(a.opts.Join.Password)
	room := a.opts.Host.Room
	if room == "" {
		room = a.prefs.Room
	}
	s.room.SetText(room)
	s.hostPassword.SetText(a.opts.Host.Password)
	s.tofu.Value = a.opts.Join.TrustOnFirstUse
	s.focusFirst = true
	s.refreshRecent(a)
}

func (s *startState) refreshRecent(a *App) {
	s.recent = append(s.recent[:0], a.prefs.Recent...)
	if len(s.recent) > 3 {
		s.recent = s.recent[:3]
	}
	s.recentText = s.recentText[:0]
	for _, r := range s.recent {
		s.recentText = append(s.recentText, describeInvite(r))
	}
	if len(s.recentBtns) < len(s.recent) {
		s.recentBtns = make([]widget.Clickable, len(s.recent))
	}
}

// validName says what is wrong with a name, or "".
func validName(n string) string {
	switch {
	case n == "":
		return "Enter the name others will see."
	case strings.IndexFunc(n, unicode.IsSpace) >= 0:
		return "A name can’t contain spaces — try " + strings.Join(strings.Fields(n), "_") + "."
	case len([]rune(n)) > maxNameLen:
		return "Keep the name under 32 characters."
	}
	return ""
}

// validInvite says what is wrong with an invite link, or "".
func validInvite(s string) string {
	switch {
	case s == "":
		return "Paste the invite link you were sent."
	case !strings.HasPrefix(s, "parley://"):
		return "An invite link starts with parley:// — copy the whole link."
	case len(s) <= len("parley://"):
		return "The link is cut short — copy the whole link."
	}
	return ""
}

func (a *App) tryJoin() {
	s := &a.start
	name := strings.TrimSpace(s.name.Text())
	inv := strings.TrimSpace(s.invite.Text())
	s.nameErr, s.inviteErr = validName(name), validInvite(inv)
	if s.nameErr != "" || s.inviteErr != "" {
		return
	}
	a.beginJoin(JoinRequest{
		Invite:          inv,
		Name:            name,
		Password:        s.password.Text(),
		TrustOnFirstUse: s.tofu.Value && s.tofuFor == inv,
		Media:           a.opts.Media,
	})
}

func (a *App) tryHost() {
	s := &a.start
	name := strings.TrimSpace(s.name.Text())
	s.nameErr, s.inviteErr = validName(name), ""
	if s.nameErr != "" {
		return
	}
	a.beginHost(HostRequest{Room: strings.TrimSpace(s.room.Text()), Name: name, Password: s.hostPassword.Text(), Media: a.opts.Media})
}

// handleStart processes the start screen's input.
func (a *App) handleStart(gtx layout.Context) {
	s := &a.start
	for _, f := range []struct {
		ed     *widget.Editor
		submit func()
		clear  *string
	}{
		{&s.name, nil, &s.nameErr},
		{&s.invite, a.tryJoin, &s.inviteErr},
		{&s.password, a.tryJoin, nil},
		{&s.room, a.tryHost, nil},
		{&s.hostPassword, a.tryHost, nil},
	} {
		for {
			ev, ok := f.ed.Update(gtx)
			if !ok {
				break
			}
			switch ev.(type) {
			case widget.SubmitEvent:
				if s.busy {
					break
				}
				if f.submit != nil {
					f.submit()
				} else if strings.TrimSpace(s.invite.Text()) != "" {
					a.tryJoin()
				} else {
					gtx.Execute(key.FocusCmd{Tag: &s.invite})
				}
			case widget.ChangeEvent:
				if f.clear != nil {
					*f.clear = ""
				}
			}
		}
	}
	if s.join.Clicked(gtx) && !s.busy {
		a.tryJoin()
	}
	if s.host.Clicked(gtx) && !s.busy {
		a.tryHost()
	}
	if s.cancel.Clicked(gtx) && s.busy {
		a.b.Leave()
		a.endCall()
	}
	if s.dismiss.Clicked(gtx) {
		a.banner = nil
	}
	for i := range s.recent {
		if s.recentBtns[i].Clicked(gtx) && !s.busy {
			s.invite.SetText(s.recent[i].Invite)
			s.inviteErr = ""
		}
	}
}

func (a *App) layoutStart(gtx layout.Context) {
	s := &a.start
	a.handleStart(gtx)
	size := gtx.Constraints.Max
	wide := size.X >= gtx.Dp(780)
	cardW := min(size.X-gtx.Dp(32), gtx.Dp(440))
	if wide {
		cardW = gtx.Dp(760)
	}
	ls := material.List(a.th, &s.list)
	ls.AnchorStrategy = material.Overlay
	ls.Indicator.Color = colSurface4
	items := []layout.Widget{
		func(gtx layout.Context) layout.Dimensions { return a.layoutBrand(gtx) },
	}
	if len(a.notices) > 0 {
		items = append(items, func(gtx layout.Context) layout.Dimensions {
			return a.layoutNotices(gtx, gtx.Constraints.Max.X)
		})
	}
	if a.banner != nil {
		items = append(items, a.layoutBanner)
	}
	items = append(items, func(gtx layout.Context) layout.Dimensions {
		return a.layoutStartCard(gtx, wide)
	})
	gtx.Constraints = layout.Exact(size)
	// Centre the page (a little above the middle) when it fits; the
	// height is the last frame's, and a change asks for another frame.
	minTop := gtx.Dp(18)
	top := max(minTop, (size.Y-s.contentH)*2/5)
	total := 0
	ls.Layout(gtx, len(items), func(gtx layout.Context, i int) layout.Dimensions {
		t := unit.Dp(0)
		bottom := unit.Dp(14)
		if i == len(items)-1 {
			bottom = 24
		}
		d := layout.Inset{Top: t, Bottom: bottom}.Layout(gtx, func(gtx layout.Context) layout.Dimensions {
			if i == 0 {
				defer opOffset(gtx, image.Pt(0, top)).Pop()
			}
			d := layout.Center.Layout(gtx, func(gtx layout.Context) layout.Dimensions {
				gtx.Constraints.Min.X = cardW
				gtx.Constraints.Max.X = cardW
				return items[i](gtx)
			})
			if i == 0 {
				d.Size.Y += top
			}
			return d
		})
		if i == 0 {
			total += d.Size.Y - top
		} else {
			total += d.Size.Y
		}
		return d
	})
	if total != s.contentH && s.list.Position.First == 0 && s.list.Position.Count == len(items) {
		s.contentH = total
		gtx.Execute(op.InvalidateCmd{})
	}

	if s.focus != nil {
		gtx.Execute(key.FocusCmd{Tag: s.focus})
		s.focus, s.focusFirst = nil, false
	}
	if s.focusFirst {
		s.focusFirst = false
		switch {
		case s.busy:
		case strings.TrimSpace(s.name.Text()) == "":
			gtx.Execute(key.FocusCmd{Tag: &s.name})
		default:
			gtx.Execute(key.FocusCmd{Tag: &s.invite})
		}
	}
	focused := ""
	for _, f := range []struct {
		ed   *widget.Editor
		name string
	}{{&s.name, "name"}, {&s.invite, "invite"}, {&s.password, "password"}, {&s.room, "room"}, {&s.hostPassword, "host password"}} {
		if gtx.Focused(f.ed) {
			focused = f.name
		}
	}
	if focused != s.focusedName {
		s.focusedName = focused
		if focused != "" {
			a.tr.focus(focused)
		}
	}
}

// layoutBrand is the logo line above the card: the mark, the name and
// what Parley is (below the name when narrow).
func (a *App) layoutBrand(gtx layout.Context) layout.Dimensions {
	title := func(gtx layout.Context) layout.Dimensions {
		return layout.Flex{Alignment: layout.Middle}.Layout(gtx,
			layout.Rigid(func(gtx layout.Context) layout.Dimensions {
				return a.layoutLogo(gtx, 30)
			}),
			layout.Rigid(layout.Spacer{Width: 10}.Layout),
			layout.Rigid(bold(a.label(sizeTitle, colText, "Parley")).Layout),
		)
	}
	tagline := a.label(sizeBody, colTextDim, "Video, voice and chat on a server you run.")
	if gtx.Constraints.Max.X >= gtx.Dp(600) {
		return layout.Flex{Alignment: layout.Middle}.Layout(gtx,
			layout.Rigid(title),
			layout.Rigid(layout.Spacer{Width: 16}.Layout),
			layout.Rigid(func(gtx layout.Context) layout.Dimensions {
				d := tagline.Layout(gtx)
				d.Baseline = 0
				return layout.Dimensions{Size: d.Size}
			}),
		)
	}
	return layout.Flex{Axis: layout.Vertical}.Layout(gtx,
		layout.Rigid(title),
		layout.Rigid(layout.Spacer{Height: 6}.Layout),
		layout.Rigid(tagline.Layout),
	)
}

// layoutLogo draws the mark: two overlapping speech circles.
func (a *App) layoutLogo(gtx layout.Context, size unit.Dp) layout.Dimensions {
	s := gtx.Dp(size)
	r := s * 36 / 100
	fillCircle(gtx.Ops, image.Pt(r, s-r), r, colAccent)
	fillCircle(gtx.Ops, image.Pt(s-r, r), r, withAlpha(colTalking, 0xe0))
	return layout.Dimensions{Size: image.Pt(s, s)}
}

// errorTitle and errorAdvice explain an error on the start screen.
func errorTitle(k ErrorKind) string {
	switch k {
	case ErrBadPassword:
		return "Wrong password"
	case ErrIdentityChanged:
		return "The server’s identity has changed"
	case ErrUnknownServer:
		return "Parley doesn’t know this server yet"
	case ErrUnreachable:
		return "Can’t reach the server"
	case ErrNameTaken:
		return "That name is taken"
	case ErrBadInvite:
		return "That isn’t a Parley invite link"
	case ErrNoDevice:
		return "A device is missing"
	}
	return "Something went wrong"
}

func errorAdvice(k ErrorKind) string {
	switch k {
	case ErrBadPassword:
		return "This room needs a password. Check it with whoever invited you and try again."
	case ErrIdentityChanged:
		return "This can happen when the server was reinstalled — or when someone is intercepting your connection. Don’t join: ask the host for a fresh invite link through a channel you trust."
	case ErrUnknownServer:
		return "The link doesn’t say which key the server must have. If you trust where the link came from, tick “Trust this server on first use” and join again; Parley will check the server’s key from then on."
	case ErrUnreachable:
		return "Check the address and your network, and that the host is running Parley. Then try again."
	case ErrNameTaken:
		return "Someone in the room already uses that name. Pick another one."
	case ErrBadInvite:
		return "Invite links look like parley://host:7700/room?fp=… — ask for the link again."
	}
	return ""
}

// layoutBanner explains the last error on the start screen.
func (a *App) layoutBanner(gtx layout.Context) layout.Dimensions {
	e := a.banner
	w := gtx.Constraints.Max.X
	pad := gtx.Dp(16)
	iconSz := unit.Dp(22)
	textX := pad + gtx.Dp(iconSz) + gtx.Dp(12)
	closeSz := gtx.Dp(28)
	tgtx := gtx
	tgtx.Constraints.Min = image.Point{}
	tgtx.Constraints.Max.X = w - textX - pad - closeSz
	danger := e.Kind == ErrIdentityChanged
	call, d := measure(tgtx, func(gtx layout.Context) layout.Dimensions {
		ch := []layout.FlexChild{
			layout.Rigid(bold(a.label(sizeHeading, colText, errorTitle(e.Kind))).Layout),
		}
		if e.Message != "" {
			ch = append(ch, layout.Rigid(layout.Spacer{Height: 4}.Layout),
				layout.Rigid(a.label(sizeBody, colText, e.Message).Layout))
		}
		if adv := errorAdvice(e.Kind); adv != "" {
			ch = append(ch, layout.Rigid(layout.Spacer{Height: 6}.Layout),
				layout.Rigid(a.label(sizeBody, colTextDim, adv).Layout))
		}
		return layout.Flex{Axis: layout.Vertical}.Layout(gtx, ch...)
	})
	h := d.Size.Y + 2*pad
	r := image.Rect(0, 0, w, h)
	rad := gtx.Dp(10)
	fillRRect(gtx.Ops, r, rad, colErrorBg)
	strokeRRect(gtx.Ops, r, rad, gtx.Dp(1), withAlpha(colDanger, 0xb0))
	ic := a.ic.errorIcon
	if danger {
		ic = a.ic.warning
	}
	iconAt(gtx, ic, image.Pt(pad+gtx.Dp(iconSz)/2, pad+gtx.Dp(iconSz)/2), iconSz, colDangerHi)
	place(gtx.Ops, call, image.Pt(textX, pad))
	// The close button, top right.
	cp := image.Pt(w-pad/2-closeSz, pad/2)
	a.closeButton(gtx, &a.start.dismiss, cp, 28)
	return layout.Dimensions{Size: r.Max}
}

// closeButton draws a small × of size sz at p.
func (a *App) closeButton(gtx layout.Context, clk *widget.Clickable, p image.Point, sz unit.Dp) {
	defer opOffset(gtx, p).Pop()
	px := gtx.Dp(sz)
	clk.Layout(gtx, func(gtx layout.Context) layout.Dimensions {
		r := image.Rect(0, 0, px, px)
		if clk.Hovered() {
			fillRRect(gtx.Ops, r, px/2, withAlpha(colText, 0x22))
		}
		iconAt(gtx, a.ic.close, image.Pt(px/2, px/2), sz*6/10, colTextDim)
		hoverCursor(gtx.Ops, r)
		return layout.Dimensions{Size: r.Max}
	})
}

// layoutStartCard is the form: the name, then joining and hosting (side
// by side when wide).
func (a *App) layoutStartCard(gtx layout.Context, wide bool) layout.Dimensions {
	s := &a.start
	w := gtx.Constraints.Max.X
	pad := gtx.Dp(24)
	if !wide {
		pad = gtx.Dp(20)
	}
	inner := w - 2*pad
	cgtx := gtx
	cgtx.Constraints = layout.Constraints{Min: image.Pt(inner, 0), Max: image.Pt(inner, 1<<20)}
	call, d := measure(cgtx, func(gtx layout.Context) layout.Dimensions {
		nameField := func(gtx layout.Context) layout.Dimensions {
			gtx.Constraints.Max.X = min(gtx.Constraints.Max.X, gtx.Dp(340))
			gtx.Constraints.Min.X = gtx.Constraints.Max.X
			return a.formField(gtx, "Your name", &s.name, "How others see you, e.g. ada", s.nameErr)
		}
		if wide {
			colW := (inner - gtx.Dp(57)) / 2
			return layout.Flex{Axis: layout.Vertical}.Layout(gtx,
				layout.Rigid(a.layoutNameRow),
				layout.Rigid(layout.Spacer{Height: 20}.Layout),
				layout.Rigid(func(gtx layout.Context) layout.Dimensions {
					fillRect(gtx.Ops, image.Rect(0, 0, inner, gtx.Dp(1)), colBorder)
					return layout.Dimensions{Size: image.Pt(inner, gtx.Dp(1))}
				}),
				layout.Rigid(layout.Spacer{Height: 20}.Layout),
				layout.Rigid(func(gtx layout.Context) layout.Dimensions {
					jc, jd := measure(withWidth(gtx, colW), a.layoutJoinForm)
					hc, hd := measure(withWidth(gtx, colW), a.layoutHostForm)
					h := max(jd.Size.Y, hd.Size.Y)
					place(gtx.Ops, jc, image.Point{})
					x := colW + gtx.Dp(28)
					fillRect(gtx.Ops, image.Rect(x, 0, x+gtx.Dp(1), h), colBorder)
					place(gtx.Ops, hc, image.Pt(x+gtx.Dp(28), 0))
					return layout.Dimensions{Size: image.Pt(inner, h)}
				}),
			)
		}
		return layout.Flex{Axis: layout.Vertical}.Layout(gtx,
			layout.Rigid(nameField),
			layout.Rigid(layout.Spacer{Height: 22}.Layout),
			layout.Rigid(a.layoutJoinForm),
			layout.Rigid(layout.Spacer{Height: 22}.Layout),
			layout.Rigid(func(gtx layout.Context) layout.Dimensions {
				fillRect(gtx.Ops, image.Rect(0, 0, inner, gtx.Dp(1)), colBorder)
				return layout.Dimensions{Size: image.Pt(inner, gtx.Dp(1))}
			}),
			layout.Rigid(layout.Spacer{Height: 22}.Layout),
			layout.Rigid(a.layoutHostForm),
		)
	})
	h := d.Size.Y + 2*pad
	r := image.Rect(0, 0, w, h)
	fillRRect(gtx.Ops, r, gtx.Dp(14), colSurface)
	strokeRRect(gtx.Ops, r, gtx.Dp(14), gtx.Dp(1), withAlpha(colBorder, 0xa0))
	place(gtx.Ops, call, image.Pt(pad, pad))
	return layout.Dimensions{Size: r.Max}
}

// layoutNameRow is the name field with its title on its left, for the
// wide card.
func (a *App) layoutNameRow(gtx layout.Context) layout.Dimensions {
	s := &a.start
	tc, td := measure(gtx, bold(a.label(sizeHeading, colText, "Your name")).Layout)
	x := td.Size.X + gtx.Dp(16)
	fgtx := gtx
	fgtx.Constraints.Min = image.Point{}
	fgtx.Constraints.Max.X = min(gtx.Dp(300), gtx.Constraints.Max.X-x)
	if s.busy {
		fgtx = fgtx.Disabled()
	}
	fc, fd := measure(fgtx, func(gtx layout.Context) layout.Dimensions {
		return a.field(gtx, &s.name, "How others see you, e.g. ada", s.nameErr != "")
	})
	place(gtx.Ops, tc, image.Pt(0, (fd.Size.Y-td.Size.Y)/2))
	place(gtx.Ops, fc, image.Pt(x, 0))
	h := fd.Size.Y
	if s.nameErr != "" {
		ex := x + fd.Size.X + gtx.Dp(12)
		egtx := gtx
		egtx.Constraints.Max.X = max(gtx.Constraints.Max.X-ex, 0)
		ec, ed := measure(egtx, a.label(sizeSmall, colErrorText, s.nameErr).Layout)
		place(gtx.Ops, ec, image.Pt(ex, (h-ed.Size.Y)/2))
	}
	return layout.Dimensions{Size: image.Pt(gtx.Constraints.Max.X, h)}
}

func withWidth(gtx layout.Context, w int) layout.Context {
	gtx.Constraints.Min.X, gtx.Constraints.Max.X = w, w
	return gtx
}

// formField is a titled input with its inline error.
func (a *App) formField(gtx layout.Context, title string, ed *widget.Editor, hint, errMsg string) layout.Dimensions {
	ch := []layout.FlexChild{
		layout.Rigid(medium(a.label(sizeSmall, colTextDim, title)).Layout),
		layout.Rigid(layout.Spacer{Height: 6}.Layout),
		layout.Rigid(func(gtx layout.Context) layout.Dimensions {
			if a.start.busy {
				gtx = gtx.Disabled()
			}
			return a.field(gtx, ed, hint, errMsg != "")
		}),
	}
	if errMsg != "" {
		ch = append(ch, layout.Rigid(layout.Spacer{Height: 5}.Layout),
			layout.Rigid(a.label(sizeSmall, colErrorText, errMsg).Layout))
	}
	return layout.Flex{Axis: layout.Vertical}.Layout(gtx, ch...)
}

func (a *App) sectionTitle(title, sub string) layout.Widget {
	return func(gtx layout.Context) layout.Dimensions {
		return layout.Flex{Axis: layout.Vertical}.Layout(gtx,
			layout.Rigid(bold(a.label(sizeHeading, colText, title)).Layout),
			layout.Rigid(layout.Spacer{Height: 3}.Layout),
			layout.Rigid(a.label(sizeSmall, colTextDim, sub).Layout),
		)
	}
}

func (a *App) layoutJoinForm(gtx layout.Context) layout.Dimensions {
	s := &a.start
	inv := strings.TrimSpace(s.invite.Text())
	ch := []layout.FlexChild{
		layout.Rigid(a.sectionTitle("Join a room", "With the invite link the host sent you.")),
		layout.Rigid(layout.Spacer{Height: 12}.Layout),
		layout.Rigid(func(gtx layout.Context) layout.Dimensions {
			return a.formField(gtx, "Invite link", &s.invite, "parley://host:7700/room?fp=…", s.inviteErr)
		}),
	}
	if len(s.recent) > 0 {
		ch = append(ch, layout.Rigid(layout.Spacer{Height: 6}.Layout),
			layout.Rigid(a.layoutRecent))
	}
	ch = append(ch,
		layout.Rigid(layout.Spacer{Height: 14}.Layout),
		layout.Rigid(func(gtx layout.Context) layout.Dimensions {
			return a.formField(gtx, "Room password (if it has one)", &s.password, "", "")
		}),
	)
	if s.tofuFor != "" && inv == s.tofuFor {
		ch = append(ch, layout.Rigid(layout.Spacer{Height: 8}.Layout),
			layout.Rigid(func(gtx layout.Context) layout.Dimensions {
				cb := material.CheckBox(a.th, &s.tofu, "Trust this server on first use")
				cb.Color = colText
				cb.IconColor = colAccent
				cb.TextSize = sizeBody
				if s.busy {
					gtx = gtx.Disabled()
				}
				return cb.Layout(gtx)
			}))
	}
	ch = append(ch, layout.Rigid(layout.Spacer{Height: 14}.Layout),
		layout.Rigid(func(gtx layout.Context) layout.Dimensions {
			if s.busy && s.pendingInvite != "" {
				return a.layoutBusy(gtx)
			}
			gtx.Constraints.Min.X = gtx.Constraints.Max.X
			return a.layoutButton(gtx, button{clk: &s.join, text: "Join", bg: colAccent, fg: rgb(0xffffff),
				hover: colAccentHi, height: 42, disabled: s.busy})
		}))
	return layout.Flex{Axis: layout.Vertical}.Layout(gtx, ch...)
}

func (a *App) layoutHostForm(gtx layout.Context) layout.Dimensions {
	s := &a.start
	return layout.Flex{Axis: layout.Vertical}.Layout(gtx,
		layout.Rigid(a.sectionTitle("Host a room", "On this computer. You get a link to share.")),
		layout.Rigid(layout.Spacer{Height: 12}.Layout),
		layout.Rigid(func(gtx layout.Context) layout.Dimensions {
			return a.formField(gtx, "Room name (optional)", &s.room, "lobby", "")
		}),
		layout.Rigid(layout.Spacer{Height: 14}.Layout),
		layout.Rigid(func(gtx layout.Context) layout.Dimensions {
			return a.formField(gtx, "Password to join (optional)", &s.hostPassword, "", "")
		}),
		layout.Rigid(layout.Spacer{Height: 18}.Layout),
		layout.Rigid(func(gtx layout.Context) layout.Dimensions {
			if s.busy && s.pendingInvite == "" {
				return a.layoutBusy(gtx)
			}
			gtx.Constraints.Min.X = gtx.Constraints.Max.X
			return a.layoutButton(gtx, button{clk: &s.host, text: "Host a room", bg: colSurface3, fg: colText,
				hover: colSurface4, height: 42, disabled: s.busy})
		}),
		layout.Rigid(layout.Spacer{Height: 14}.Layout),
		layout.Rigid(a.label(sizeSmall, colTextFaint, "The room runs on this computer while the window is open. "+
			"Others join with the invite link, so they must be able to reach this computer over the network.").Layout),
	)
}

// layoutRecent offers the recent invite links as chips, as many as fit
// on one line.
func (a *App) layoutRecent(gtx layout.Context) layout.Dimensions {
	s := &a.start
	w := gtx.Constraints.Max.X
	h := gtx.Dp(26)
	lc, ld := measure(gtx, a.line(sizeTiny, colTextFaint, "Recent").Layout)
	place(gtx.Ops, lc, image.Pt(0, (h-ld.Size.Y)/2))
	x := ld.Size.X + gtx.Dp(8)
	for i := range s.recent {
		clk := &s.recentBtns[i]
		cgtx := gtx
		if s.busy {
			cgtx = cgtx.Disabled()
		}
		cgtx.Constraints = layout.Constraints{Max: image.Pt(w-x, h)}
		padX := gtx.Dp(10)
		room := max(w-x-2*padX-gtx.Dp(20), 0)
		tgtx := cgtx
		tgtx.Constraints.Max.X = 1 << 20
		tc, td := measure(tgtx, a.line(sizeSmall, colAccentHi, s.recentText[i]).Layout)
		if td.Size.X > room {
			if i > 0 || room < gtx.Dp(60) {
				break // no room: only the first chip may be cut
			}
			tgtx.Constraints.Max.X = room
			tc, td = measure(tgtx, a.line(sizeSmall, colAccentHi, s.recentText[i]).Layout)
		}
		cw := td.Size.X + 2*padX + gtx.Dp(20)
		st := opOffset(gtx, image.Pt(x, 0))
		clk.Layout(cgtx, func(gtx layout.Context) layout.Dimensions {
			r := image.Rect(0, 0, cw, h)
			bg := colSurface2
			if clk.Hovered() {
				bg = colSurface3
			}
			fillRRect(gtx.Ops, r, h/2, bg)
			iconAt(gtx, a.ic.link, image.Pt(padX+gtx.Dp(7), h/2), 14, colTextFaint)
			place(gtx.Ops, tc, image.Pt(padX+gtx.Dp(20), (h-td.Size.Y)/2))
			hoverCursor(gtx.Ops, r)
			return layout.Dimensions{Size: r.Max}
		})
		st.Pop()
		x += cw + gtx.Dp(6)
	}
	return layout.Dimensions{Size: image.Pt(w, h)}
}

// layoutBusy replaces a form's button while joining or hosting.
func (a *App) layoutBusy(gtx layout.Context) layout.Dimensions {
	s := &a.start
	w := gtx.Constraints.Max.X
	h := gtx.Dp(42)
	gtx.Constraints.Min = image.Point{}
	bcall, bd := measure(gtx, func(gtx layout.Context) layout.Dimensions {
		return a.layoutButton(gtx, button{clk: &s.cancel, text: "Cancel", bg: colSurface3, fg: colText, hover: colSurface4, height: 42})
	})
	r := image.Rect(0, 0, w-bd.Size.X-gtx.Dp(10), h)
	fillRRect(gtx.Ops, r, gtx.Dp(8), withAlpha(colAccent, 0x40))
	ld := material.Loader(a.th)
	ld.Color = colAccentHi
	sp := gtx.Dp(18)
	lgtx := gtx
	lgtx.Constraints = layout.Exact(image.Pt(sp, sp))
	st := opOffset(gtx, image.Pt(gtx.Dp(14), (h-sp)/2))
	ld.Layout(lgtx)
	st.Pop()
	tc, td := measure(gtx, medium(a.line(sizeBody, colText, s.busyText)).Layout)
	place(gtx.Ops, tc, image.Pt(gtx.Dp(14)+sp+gtx.Dp(10), (h-td.Size.Y)/2))
	place(gtx.Ops, bcall, image.Pt(w-bd.Size.X, 0))
	return layout.Dimensions{Size: image.Pt(w, h)}
}
