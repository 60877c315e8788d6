//go:build linux

package media

import (
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rxBatchLen is how many datagrams one recvmmsg(2) takes from a socket.
// A session's socket gets one packet per ptime from its peer, so a tick
// normally finds one; more after a stall of the process, or during a
// handoff when two devices send for a moment. A batch that comes back
// short of rxBatchLen has emptied the socket.
const rxBatchLen = 4

// rxOOBLen is room for one SCM_TIMESTAMPNS control message.
const rxOOBLen = 64

// rxBatch is the receive side's buffers, owned by the timeline goroutine
// and shared by the session's sockets (drained one after the other).
// Every pointer the kernel writes through points into it, so a drain
// allocates nothing.
type rxBatch struct {
	msgs  [rxBatchLen]unix.Mmsghdr
	iov   [rxBatchLen]unix.Iovec
	names [rxBatchLen]unix.RawSockaddrInet6
	oob   [rxBatchLen][rxOOBLen]byte
	bufs  [rxBatchLen][]byte
	// results of the last recvmmsg
	n     int
	errno syscall.Errno
}

func newRxBatch(datagramCap int) *rxBatch {
	b := &rxBatch{}
	for i := range b.bufs {
		b.bufs[i] = make([]byte, datagramCap)
		b.iov[i].Base = &b.bufs[i][0]
		b.iov[i].SetLen(datagramCap)
		h := &b.msgs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&b.names[i]))
		h.Iov = &b.iov[i]
		h.SetIovlen(1)
		h.Control = &b.oob[i][0]
	}
	return b
}

// rxSocket is one socket the timeline drains: the session's current one,
// and for a moment during Rebind the next one too.
type rxSocket struct {
	conn *net.UDPConn
	rc   syscall.RawConn
	// read is the RawConn callback, made once so that draining does not
	// allocate a closure per tick.
	read func(fd uintptr) bool
}

func newRxSocket(conn *net.UDPConn, b *rxBatch) (*rxSocket, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("media: socket: %w", err)
	}
	// Kernel arrival stamps (socket(7) SO_TIMESTAMPNS): a datagram read on
	// a later tick keeps the time it arrived, for the jitter buffer
	// (RFC 3550 A.8 jitter, playout anchoring) and consent freshness.
	// When no other socket of the system stamps yet, the kernel turns
	// stamping on in a deferred work item: the first datagrams may then be
	// stamped when read, at most a tick late, as the portable drain does.
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
	}); err != nil {
		return nil, fmt.Errorf("media: socket: %w", err)
	}
	if serr != nil {
		return nil, fmt.Errorf("media: socket: SO_TIMESTAMPNS: %w", serr)
	}
	x := &rxSocket{conn: conn, rc: rc}
	x.read = func(fd uintptr) bool {
		for i := range b.msgs {
			h := &b.msgs[i].Hdr
			h.Namelen = uint32(unsafe.Sizeof(b.names[i]))
			h.SetControllen(rxOOBLen)
			h.Flags = 0
			b.msgs[i].Len = 0
		}
		// Never blocks (MSG_DONTWAIT); returning true tells the runtime
		// not to wait for readiness either: an empty socket is done.
		r, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.msgs[0])), rxBatchLen,
			unix.MSG_DONTWAIT, 0, 0)
		b.n, b.errno = int(r), e
		if e != 0 {
			b.n = 0
		}
		return true
	}
	return x, nil
}

// drain reads every datagram waiting on x and hands each to handle with
// the time it arrived. It returns the read error that stopped it, nil when
// the socket is empty; net.ErrClosed once the socket is closed.
func (x *rxSocket) drain(b *rxBatch, now time.Time, handle func(p []byte, from netip.AddrPort, at time.Time, truncated bool)) error {
	for {
		if err := x.rc.Read(x.read); err != nil {
			return err
		}
		switch b.errno {
		case 0:
		case unix.EAGAIN, unix.EINTR:
			return nil
		default:
			return b.errno
		}
		for i := range b.n {
			m := &b.msgs[i]
			from, ok := sockaddrAddrPort(&b.names[i], m.Hdr.Namelen)
			if !ok {
				continue
			}
			n := int(m.Len)
			handle(b.bufs[i][:n], from, arrival(b.oob[i][:m.Hdr.Controllen], now),
				m.Hdr.Flags&unix.MSG_TRUNC != 0 || n == len(b.bufs[i]))
		}
		if b.n < rxBatchLen {
			return nil
		}
	}
}

func sockaddrAddrPort(sa *unix.RawSockaddrInet6, n uint32) (netip.AddrPort, bool) {
	switch sa.Family {
	case unix.AF_INET:
		if n < unix.SizeofSockaddrInet4 {
			return netip.AddrPort{}, false
		}
		v4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		p := (*[2]byte)(unsafe.Pointer(&v4.Port))
		return netip.AddrPortFrom(netip.AddrFrom4(v4.Addr), uint16(p[0])<<8|uint16(p[1])), true
	case unix.AF_INET6:
		if n < unix.SizeofSockaddrInet6 {
			return netip.AddrPort{}, false
		}
		p := (*[2]byte)(unsafe.Pointer(&sa.Port))
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(p[0])<<8|uint16(p[1])), true
	}
	return netip.AddrPort{}, false
}

// arrival is the kernel's receive stamp in oob, as a time on now's
// monotonic clock (the stamp is wall-clock time: the age is taken from it
// and subtracted from now, so the jitter buffer's arithmetic stays
// monotonic). now when there is no stamp or it lies in the future.
func arrival(oob []byte, now time.Time) time.Time {
	for len(oob) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < unix.SizeofCmsghdr || l > len(oob) {
			break
		}
		if h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_TIMESTAMPNS && l >= unix.CmsgLen(int(unsafe.Sizeof(unix.Timespec{}))) {
			ts := (*unix.Timespec)(unsafe.Pointer(&oob[unix.CmsgLen(0)]))
			age := now.Sub(time.Unix(int64(ts.Sec), int64(ts.Nsec)))
			if age <= 0 || age > time.Minute {
				return now
			}
			return now.Add(-age)
		}
		next := unix.CmsgSpace(l - unix.CmsgLen(0))
		if next > len(oob) {
			break
		}
		oob = oob[next:]
	}
	return now
}
