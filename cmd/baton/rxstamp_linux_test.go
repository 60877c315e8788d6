//go:build linux

package main

import (
	"encoding/binary"
	"net"
	"syscall"
	"time"
)

// enableRxTimestamps asks the kernel to stamp each datagram c receives
// with its arrival time (SO_TIMESTAMPNS), so that what a test measures
// between packets is the network's timing, not its own goroutine's
// scheduling on a loaded machine.
func enableRxTimestamps(c *net.UDPConn) bool {
	raw, err := c.SyscallConn()
	if err != nil {
		return false
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1)
	}); err != nil || serr != nil {
		return false
	}
	return true
}

// rxTimestamp is the kernel's arrival time in a datagram's control
// messages (SCM_TIMESTAMPNS: a struct timespec).
func rxTimestamp(oob []byte) (time.Time, bool) {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return time.Time{}, false
	}
	for _, m := range msgs {
		if m.Header.Level == syscall.SOL_SOCKET && m.Header.Type == syscall.SCM_TIMESTAMPNS && len(m.Data) >= 16 {
			sec := int64(binary.NativeEndian.Uint64(m.Data[0:8]))
			nsec := int64(binary.NativeEndian.Uint64(m.Data[8:16]))
			return time.Unix(sec, nsec), true
		}
	}
	return time.Time{}, false
}
