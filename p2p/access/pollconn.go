package access

import (
	"net"
	"sync"
	"syscall"
	"time"
)

// An idle endpoint's connection costs the server no goroutine: when a
// session has no message waiting, its connection is parked with the
// server's poller (epoll on Linux, poller_linux.go) and the goroutine that
// handled its last message exits. The poller starts a fresh goroutine when
// the connection has data, is closed, or its read deadline passes. A parked
// goroutine would keep a 4 KiB stack for each of thousands of idle
// endpoints (docs/benchmarks.md §8); a parked connection keeps about 300
// bytes of bookkeeping (this struct, its timer, the poller's map entry).
// Where there is no poller (other systems, or a
// connection that is not a socket) the session's goroutine parks in a read
// as before.

// pollConn is an accepted connection the poller can park. Its Close wakes
// a parked session, so that whoever closes the connection (a replacing
// login, a slow-reader cut, Close of the server) gets the session torn down
// exactly as a blocked reader would have seen the close.
type pollConn struct {
	net.Conn
	rc syscall.RawConn
	p  *poller

	mu      sync.Mutex
	token   uint64 // the poller's key for this connection; 0 until first parked
	added   bool   // registered with the poller (later parks re-arm it)
	parked  bool   // no goroutine reads: the poller or the timer will wake it
	closed  bool
	onReady func() // started on its own goroutine when a parked conn wakes
	timer   *time.Timer
}

// newPollConn wraps nc for parking with p; nc itself if p is nil or nc is
// not a socket the poller can watch.
func newPollConn(nc net.Conn, p *poller) net.Conn {
	if p == nil {
		return nc
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nc
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nc
	}
	return &pollConn{Conn: nc, rc: rc, p: p}
}

// park hands the connection to the poller: onReady runs on a new goroutine
// once the connection is readable, closed, or after wait (the read
// deadline the caller has armed; the woken reader finds it passed). It
// reports false if the connection could not be parked; the caller then
// reads (blocking) itself.
func (c *pollConn) park(wait time.Duration, onReady func()) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	if c.token == 0 {
		c.token = c.p.add(c)
	}
	c.onReady = onReady
	c.parked = true
	if c.timer == nil {
		c.timer = time.AfterFunc(wait, c.wake)
	} else {
		c.timer.Reset(wait)
	}
	var err error
	cerr := c.rc.Control(func(fd uintptr) {
		// Inside Control the descriptor cannot be closed (and its number
		// reused) under us.
		err = c.p.arm(int(fd), c.token, c.added)
	})
	if cerr == nil && err == nil {
		c.added = true
		return true
	}
	c.parked = false
	c.timer.Stop()
	return false
}

// wake starts the parked session's goroutine, once: an event, the timer and
// a close may all race to wake it.
func (c *pollConn) wake() {
	c.mu.Lock()
	if !c.parked {
		c.mu.Unlock()
		return
	}
	c.parked = false
	f := c.onReady
	c.onReady = nil
	if c.timer != nil {
		c.timer.Stop()
	}
	c.mu.Unlock()
	go f()
}

// Close closes the connection and wakes its session if parked: the kernel
// drops a closed descriptor from epoll without an event.
func (c *pollConn) Close() error {
	err := c.Conn.Close()
	c.mu.Lock()
	first := !c.closed
	c.closed = true
	token := c.token
	c.mu.Unlock()
	if first && token != 0 {
		c.p.remove(token)
	}
	c.wake()
	return err
}
