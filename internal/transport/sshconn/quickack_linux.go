package sshconn

import (
	"net"
	"syscall"
)

// quickAck returns nc so that the kernel acknowledges what arrives at
// once. sshd does not disable Nagle's algorithm on a session without a
// terminal, so a second small message it sends before the first is
// acknowledged waits for that acknowledgement, which Linux delays by up
// to 40 ms when the client has nothing to send: after login sshd sends
// its host keys (hostkeys-00@openssh.com, no reply wanted), and the
// confirmation of the session channel then waited 40 ms, a third of a
// command's whole time. Quick-ack mode is not sticky, so it is asked for
// again before every read (one setsockopt, no round trip).
func quickAck(nc net.Conn) net.Conn {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return nc
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nc
	}
	return &quickAckConn{TCPConn: tc, rc: rc}
}

type quickAckConn struct {
	*net.TCPConn
	rc syscall.RawConn
}

func (c *quickAckConn) Read(b []byte) (int, error) {
	_ = c.rc.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
	})
	return c.TCPConn.Read(b)
}
