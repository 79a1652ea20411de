//go:build !linux

package pivcard

import "net"

// quickAck does nothing where TCP_QUICKACK does not exist; vpcd runs on
// Linux.
func quickAck(net.Conn) {}
