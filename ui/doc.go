// Package ui is Parley's desktop client in Gio: a start screen (join with an
// invite link, or host a room) and a call window (a video grid, the chat,
// the roster, media controls, a status line). The window is a state struct
// fed by Events from a Backend — which owns the network, the devices and
// the media pipeline, off the frame loop — and its Layout.
//
// A program runs it as Gio programs do, the window loop on a goroutine and
// app.Main on the main thread:
//
//	var b ui.Backend = ... // e.g. a session that needs the window's invalidate
//	a := ui.NewApp(b, ui.Options{
//		PrefsPath:      filepath.Join(configDir, "parley", "app.json"),
//		BindInvalidate: setInvalidate, // the backend's way to wake the window
//	})
//	go func() {
//		err := a.Run(new(app.Window))
//		// shut the backend down, then
//		os.Exit(...)
//	}()
//	app.Main()
//
// Keyboard shortcuts in the call window, wherever the focus is: Ctrl+D
// mutes and unmutes the microphone, Ctrl+E turns the camera on and off,
// Ctrl+Shift+E shares the screen, Ctrl+Shift+Q leaves; Escape closes a
// device menu. In the chat editor Enter sends, Shift+Enter starts a new
// line, "/msg NAME TEXT" sends privately and "//TEXT" sends a line that
// begins with "/". (Cmd instead of Ctrl on macOS.)
//
// With Options.Trace the window describes what it shows as JSON lines,
// for end-to-end tests (see the tracer type).
package ui
