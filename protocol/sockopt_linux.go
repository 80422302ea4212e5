package protocol

import (
	"net"

	"golang.org/x/sys/unix"
)

// setNotSentLowat sets TCP_NOTSENT_LOWAT, so that a write blocks while more
// than n bytes wait unsent in the kernel. Data then queues in the
// application, where the relay's scheduler can still reorder it, instead of
// in a send buffer that Linux lets grow to megabytes.
func setNotSentLowat(c net.Conn, n int) {
	tc, ok := c.(*net.TCPConn)
	if !ok || n <= 0 {
		return
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return
	}
	_ = raw.Control(func(fd uintptr) {
		_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NOTSENT_LOWAT, n)
	})
}
