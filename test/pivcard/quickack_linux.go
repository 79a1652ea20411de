package pivcard

import (
	"net"
	"syscall"
)

// quickAck turns on TCP_QUICKACK, which the kernel turns off again by
// itself, so it is set after every read. vpcd 3.3 sends a message's length
// and payload in two send() calls; with Nagle on its side and a delayed
// ACK on ours, each message then waits about 40 ms for the ACK of the
// first part.
func quickAck(conn net.Conn) {
	tc, ok := conn.(*net.TCPConn)
	if !ok {
		return
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) {
		syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
	})
}
