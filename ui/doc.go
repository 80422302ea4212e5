// Package ui is Parley's desktop client in Gio: a start screen (join with an
// invite link, or host a room) and a call window (a video grid, the chat,
// the roster, media controls, a status line). The window is a state struct
// fed by Events from a Backend — which owns the network, the devices and
// the media pipeline, off the frame loop — and its Layout.
package ui
