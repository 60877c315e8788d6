package endpoint

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/baton-voice/baton/p2p/pki"
	"github.com/baton-voice/baton/p2p/wire"
)

// errNoSocketpair means the platform has no in-process connection for
// the local shortcut; the dial takes the TLS path instead.
var errNoSocketpair = errors.New("endpoint: no in-process connection on this platform")

// localConn is one end of a signaling connection between two endpoints of
// the same Host that skips TCP and TLS (dialLocal): a connected unix
// socket pair, so it is buffered in both directions (both ends may write
// before either reads, which net.Pipe would deadlock on) and honours
// deadlines like the TLS path's connection. Its addresses are TCP
// addresses on the host's signaling IP, what a loopback TCP connection to
// the host's own listener would have had: consent (consent.go) and logs
// see what they see on the TLS path.
type localConn struct {
	net.Conn
	local, remote net.Addr
	// peer is the peer endpoint's leaf certificate, verified by this side
	// against its roots at its time (pki.VerifyCache), as the TLS path's
	// VerifyConnection does.
	peer *x509.Certificate
}

func (c *localConn) LocalAddr() net.Addr  { return c.local }
func (c *localConn) RemoteAddr() net.Addr { return c.remote }

// localTarget returns the endpoint of e's host that a dial of peer at
// addr reaches without leaving the process, or nil: e is on a Host with
// the shortcut on, addr is the host's own signaling address (what its
// endpoints advertise in presence), and the host serves peer.
func (e *Endpoint) localTarget(peer pki.Identity, addr netip.AddrPort) *Endpoint {
	h := e.host
	if h == nil || h.cfg.NoLocalShortcut {
		return nil
	}
	own := h.SignalAddr()
	if !own.IsValid() || addr.Addr().Unmap() != own.Addr().Unmap() || addr.Port() != own.Port() {
		return nil
	}
	return h.lookup(pki.ServerName(peer))
}

// dialLocal connects e to callee, an endpoint of the same Host, in
// process. The host vouches for nothing the TLS path would check: each
// side verifies the other's certificate chain with its own roots, clock
// and verify cache, exactly as VerifyConnection does in the handshake, so
// an expired, untrusted or not-yet-valid certificate fails the same way,
// and the dialer checks the callee proved peer (ErrIdentityMismatch). The
// callee side is served by callee's serveSignaling, the function the TLS
// path reaches after its handshake, with the same first-message deadline;
// it is not counted against the pre-authentication caps, since it is
// authenticated before it exists.
func (e *Endpoint) dialLocal(peer pki.Identity, addr netip.AddrPort, callee *Endpoint) (*wire.Conn, error) {
	h := e.host
	// In the order of the TLS 1.3 handshake: the callee's certificate,
	// the dialer's check of it, then the dialer's certificate and the
	// callee's check.
	theirs, err := callee.certificate()
	if err != nil {
		// Not logged in (yet, or any more), or its certificate expired:
		// on the TLS path the callee's handshake fails for want of one.
		callee.stats.rejected("handshake")
		return nil, fmt.Errorf("%w: %s at %s: in-process peer has no certificate: %w", ErrUnreachable, peer, addr, err)
	}
	// The dialer's check (pki ClientConfig's VerifyConnection).
	id, theirLeaf, err := e.verified.Verify(theirs.Certificate, e.cfg.Roots, e.cfg.Now())
	if err == nil && id != peer {
		err = fmt.Errorf("%w: expected %s, peer proved %s", pki.ErrIdentityMismatch, peer, id)
	}
	if err != nil {
		// Counted at the callee too, as the dialer's alert ends the
		// callee's handshake on the TLS path.
		callee.stats.rejected("handshake")
		return nil, fmt.Errorf("endpoint: dial %s at %s: %w", peer, addr, err)
	}
	mine, err := e.certificate()
	if err != nil {
		callee.stats.rejected("handshake")
		return nil, fmt.Errorf("%w: %s at %s: %w", ErrUnreachable, peer, addr, err)
	}
	// The callee's check (pki ServerConfig's VerifyConnection).
	caller, myLeaf, err := callee.verified.Verify(mine.Certificate, callee.cfg.Roots, callee.cfg.Now())
	if err != nil {
		callee.stats.rejected("handshake")
		callee.log.Info("signaling handshake refused", "remote", "in-process "+e.id.String(), "err", err)
		return nil, fmt.Errorf("%w: %s at %s: the peer refused our certificate: %w", ErrUnreachable, peer, addr, err)
	}
	a, b, err := socketpair()
	if err != nil {
		return nil, fmt.Errorf("%w: %s at %s: in-process connection: %w", ErrUnreachable, peer, addr, err)
	}
	own := net.TCPAddrFromAddrPort(h.SignalAddr())
	from := net.TCPAddrFromAddrPort(netip.AddrPortFrom(own.AddrPort().Addr(), 0))
	dialerEnd := &localConn{Conn: a, local: from, remote: own, peer: theirLeaf}
	calleeEnd := &localConn{Conn: b, local: own, remote: from, peer: myLeaf}
	if !h.enterLocal() {
		_, _ = a.Close(), b.Close()
		return nil, fmt.Errorf("%w: %s at %s: %w", ErrUnreachable, peer, addr, ErrClosed)
	}
	if !callee.enterConn() {
		h.wg.Done()
		_, _ = a.Close(), b.Close()
		return nil, fmt.Errorf("%w: %s at %s: the host there has no such endpoint (closing)", ErrUnreachable, peer, addr)
	}
	h.local.Add(1)
	h.log.Debug("signaling connected in process", "from", e.id.String(), "to", peer.String())
	deadline := time.Now().Add(callee.cfg.PreAuthTimeout)
	go func() {
		defer h.wg.Done()
		defer callee.wg.Done()
		h.serveLocal(callee, calleeEnd, caller, deadline, func() {},
			callee.log.With("remote", "in-process "+e.id.String()))
	}()
	return wire.NewConn(e.track(dialerEnd), signalMaxPayload), nil
}
