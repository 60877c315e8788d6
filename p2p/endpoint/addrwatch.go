package endpoint

import (
	"context"
	"net"
	"net/netip"
	"time"
)

// addrPresent reports whether ip is still an address of this machine: an
// interface carries it, or (loopback) an interface's loopback prefix holds
// it, as 127.0.0.0/8 does on Linux.
func addrPresent(ip netip.Addr) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return true // cannot tell: do not move a working call on a guess
	}
	for _, a := range addrs {
		pfx, err := netip.ParsePrefix(a.String())
		if err != nil {
			continue
		}
		if pfx.Addr().Unmap() == ip.Unmap() || (ip.IsLoopback() && pfx.Addr().IsLoopback() && pfx.Contains(ip)) {
			return true
		}
	}
	return false
}

// replacementAddr picks where media goes when ip disappeared: the first
// configured fallback that is present, else the first present interface
// address of the same family (not link-local), else none.
func (e *Endpoint) replacementAddr(lost netip.Addr, present func(netip.Addr) bool) (netip.Addr, bool) {
	for _, f := range e.cfg.FallbackIPs {
		if f != lost && present(f) {
			return f, true
		}
	}
	if len(e.cfg.FallbackIPs) > 0 {
		return netip.Addr{}, false
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return netip.Addr{}, false
	}
	for _, a := range addrs {
		pfx, err := netip.ParsePrefix(a.String())
		if err != nil {
			continue
		}
		ip := pfx.Addr().Unmap()
		if ip == lost || ip.Is4() != lost.Is4() || ip.IsLinkLocalUnicast() || ip.IsLoopback() != lost.IsLoopback() {
			continue
		}
		return ip, true
	}
	return netip.Addr{}, false
}

// watchAddress moves the media when its bound address disappears (Wi-Fi to
// cellular; DESIGN.md §2, mobility), checking every AddrWatch. An endpoint
// of a Host has none: the host's one watcher checks it (host.go).
func (e *Endpoint) watchAddress() {
	t := time.NewTicker(e.cfg.AddrWatch)
	defer t.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-t.C:
		}
		e.checkAddress(e.present)
	}
}

// checkAddress moves the media if its address is no longer present.
func (e *Endpoint) checkAddress(present func(netip.Addr) bool) {
	if e.ctx == nil || e.ctx.Err() != nil {
		return
	}
	ip := e.mediaAddr()
	if present(ip) {
		return
	}
	next, ok := e.replacementAddr(ip, present)
	if !ok {
		e.log.Warn("media address is gone and no other address is usable", "ip", ip)
		e.emit(Event{Type: "media.address-lost", Detail: ip.String() + " is gone; no replacement address"})
		return
	}
	e.log.Warn("media address is gone; moving media", "from", ip, "to", next)
	e.emit(Event{Type: "media.address-lost", Detail: ip.String() + " is gone; moving to " + next.String()})
	ctx, cancel := context.WithTimeout(e.ctx, 10*time.Second)
	_, err := e.Rebind(ctx, next)
	cancel()
	if err != nil {
		e.log.Warn("automatic rebind failed", "to", next, "err", err)
	}
}
