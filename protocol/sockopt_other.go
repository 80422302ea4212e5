//go:build !linux

package protocol

import "net"

// setNotSentLowat is Linux-only; elsewhere data may queue in the kernel.
func setNotSentLowat(net.Conn, int) {}
