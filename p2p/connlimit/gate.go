// Package connlimit caps connections that have not authenticated yet, per
// source and in total, so a flood of connections that never log in (or
// never finish a handshake) costs a socket for an instant each instead of a
// goroutine, TLS state and buffers (issue 11 §1: 1,000 such connections took
// the access server from 59 to 184 MB). The access server and the
// endpoint's signaling port share it.
package connlimit

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
)

// Reason says why Enter refused a connection.
type Reason int

const (
	ReasonUnknown   Reason = iota // zero value: not refused
	ReasonPerSource               // the source's cap is reached
	ReasonTotal                   // the total cap is reached
)

func (r Reason) String() string {
	switch r {
	case ReasonPerSource:
		return "per_source"
	case ReasonTotal:
		return "total"
	}
	return "unknown"
}

// Source is the key connections are counted by: the IPv4 address, or the
// IPv6 /64 the address lies in (one host usually holds a whole /64, so
// per-address keys would be free to multiply). An address that is not IP
// gives the zero Addr, one shared source.
func Source(a net.Addr) netip.Addr {
	var ip netip.Addr
	if t, ok := a.(*net.TCPAddr); ok {
		ip = t.AddrPort().Addr()
	} else if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		ip = ap.Addr()
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.Addr()
	}
	return ip
}

// Gate counts connections that have not authenticated, per source and in
// total. It is safe for concurrent use.
type Gate struct {
	perSource, total int

	mu       sync.Mutex
	bySource map[netip.Addr]int
	n        atomic.Int64 // read without mu by Pending
}

// NewGate returns a gate admitting at most perSource connections per source
// and total in all.
func NewGate(perSource, total int) *Gate {
	return &Gate{perSource: perSource, total: total, bySource: make(map[netip.Addr]int)}
}

// Enter admits one more connection from src, or returns why not (and
// counts nothing). exempt skips the per-source cap (a trusted range); the
// total cap holds for everyone. Every admitted connection must Leave once.
func (g *Gate) Enter(src netip.Addr, exempt bool) (Reason, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if int(g.n.Load()) >= g.total {
		return ReasonTotal, false
	}
	if !exempt && g.bySource[src] >= g.perSource {
		return ReasonPerSource, false
	}
	g.bySource[src]++
	g.n.Add(1)
	return ReasonUnknown, true
}

// Leave releases one connection from src: it authenticated or ended.
func (g *Gate) Leave(src netip.Addr) {
	g.mu.Lock()
	defer g.mu.Unlock()
	c, ok := g.bySource[src]
	if !ok {
		return // not admitted: a caller bug, but never a negative count
	}
	if c > 1 {
		g.bySource[src] = c - 1
	} else {
		delete(g.bySource, src)
	}
	g.n.Add(-1)
}

// Pending is the number of connections admitted and not yet left.
func (g *Gate) Pending() int64 { return g.n.Load() }
