//go:build !linux

package media

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"time"
)

// rxBatch holds the receive buffer, owned by the timeline goroutine.
type rxBatch struct{ buf []byte }

func newRxBatch(datagramCap int) *rxBatch { return &rxBatch{buf: make([]byte, datagramCap)} }

// rxSocket is one socket the timeline drains.
type rxSocket struct{ conn *net.UDPConn }

func newRxSocket(conn *net.UDPConn, _ *rxBatch) (*rxSocket, error) { return &rxSocket{conn: conn}, nil }

// rxPoll bounds one read of a drain: without recvmmsg and MSG_DONTWAIT
// (Linux), a read with a deadline just ahead is what empties a socket
// without blocking the timeline.
const rxPoll = 50 * time.Microsecond

// drain reads every datagram waiting on x (portable fallback: one read per
// datagram, stamped with the time it was read).
func (x *rxSocket) drain(b *rxBatch, _ time.Time, handle func(p []byte, from netip.AddrPort, at time.Time, truncated bool)) error {
	for {
		if err := x.conn.SetReadDeadline(time.Now().Add(rxPoll)); err != nil {
			return err
		}
		n, from, err := x.conn.ReadFromUDPAddrPort(b.buf)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return nil
			}
			return err
		}
		handle(b.buf[:n], from, time.Now(), n == len(b.buf))
	}
}
