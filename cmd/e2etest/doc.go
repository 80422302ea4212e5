// Package e2etest runs parleyd and parley-cli as real processes on loopback
// and checks what users would see: delivery and order of messages across
// clients, history on join, private messages, reconnecting across a killed
// server, key pinning, room passwords, graceful shutdown, and that a client
// that stops reading cannot hold up the others.
//
// TestMain builds both binaries once (with -race when the tests run with
// -race). The package has no non-test code besides this comment.
package e2etest
