// Package ui will hold Parley's Gio desktop client: a state struct fed by
// events from the media and protocol side, and its Layout. It is the subject
// of the desktop-client milestone; nothing in it is implemented yet.
package ui
