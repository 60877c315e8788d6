//go:build !linux

package main

import (
	"net"
	"time"
)

// enableRxTimestamps: kernel receive timestamps are used on Linux only;
// elsewhere arrival times are taken when the test reads the datagram.
func enableRxTimestamps(*net.UDPConn) bool { return false }

func rxTimestamp([]byte) (time.Time, bool) { return time.Time{}, false }
