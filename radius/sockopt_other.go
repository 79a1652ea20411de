//go:build !linux

package radius

import "net"

func forceReadBuffer(net.PacketConn, int) {}
