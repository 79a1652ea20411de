package radius

import (
	"net"
	"syscall"
)

// forceReadBuffer asks, as root, for a receive buffer beyond
// net.core.rmem_max (SO_RCVBUFFORCE); it does nothing otherwise.
func forceReadBuffer(conn net.PacketConn, size int) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) {
		syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, size)
	})
}
