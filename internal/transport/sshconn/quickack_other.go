//go:build !linux

package sshconn

import "net"

// quickAck returns nc as it is: delayed acknowledgements are tuned on
// Linux only (see quickack_linux.go).
func quickAck(nc net.Conn) net.Conn { return nc }
