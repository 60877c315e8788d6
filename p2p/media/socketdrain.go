package media

import (
	"net"
	"net/netip"
	"time"
)

// SocketDrain reads what is waiting on a UDP socket without blocking: on
// Linux with recvmmsg(2) and MSG_DONTWAIT, a batch per system call, each
// datagram stamped with the time the kernel received it (SO_TIMESTAMPNS).
// It is what a Session's timeline reads its own sockets with, for a source
// that the timeline polls (audio.Poller) so that its socket needs no
// goroutine woken per packet. It is not safe for concurrent use.
type SocketDrain struct {
	x *rxSocket
	b *rxBatch
}

// NewSocketDrain prepares conn for draining with buffers of bufSize
// octets per datagram; a datagram that fills one is reported truncated.
func NewSocketDrain(conn *net.UDPConn, bufSize int) (*SocketDrain, error) {
	b := newRxBatch(bufSize)
	x, err := newRxSocket(conn, b)
	if err != nil {
		return nil, err
	}
	return &SocketDrain{x: x, b: b}, nil
}

// Drain calls handle for every datagram waiting on the socket, in arrival
// order, with its source and arrival time; p is reused after handle
// returns. It returns nil once the socket is empty, net.ErrClosed after
// the socket was closed, or another read error.
func (d *SocketDrain) Drain(handle func(p []byte, from netip.AddrPort, at time.Time, truncated bool)) error {
	return d.x.drain(d.b, time.Now(), handle)
}
