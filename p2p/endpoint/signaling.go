package endpoint

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/baton-voice/baton/p2p/connlimit"
	"github.com/baton-voice/baton/p2p/pki"
	"github.com/baton-voice/baton/p2p/wire"
)

// Defaults of the signaling port's pre-authentication caps (Config).
const (
	DefaultMaxPreAuthPerSource = 32
	DefaultMaxPreAuth          = 1024
	DefaultPreAuthTimeout      = 5 * time.Second
)

const (
	// sendTimeout bounds one signaling write.
	sendTimeout = 5 * time.Second
	// signalMaxPayload bounds one signaling frame; calls need far less than
	// the access server's profile answers.
	signalMaxPayload = 16 << 10
)

// acceptLoop accepts direct signaling connections until the listener closes.
func (e *Endpoint) acceptLoop(ln net.Listener) {
	acceptSignaling(e.ctx, ln, e.log, e.preAuth, e.cfg.PreAuthTimeout, e.stats, &e.wg, func(nc net.Conn, src netip.Addr, deadline time.Time) {
		e.serveConn(nc.(*tls.Conn), src, deadline)
	})
}

// acceptSignaling is the accept loop of a standalone endpoint's and of a
// Host's signaling listener: until ln closes (or ctx ends after an accept
// error), each connection enters the pre-authentication caps at accept,
// before any TLS work, and is served on its own goroutine (counted in wg)
// with the deadline its handshake and first message must meet.
func acceptSignaling(ctx context.Context, ln net.Listener, log *slog.Logger, preAuth *connlimit.Gate, timeout time.Duration,
	stats *counters, wg *sync.WaitGroup, serve func(nc net.Conn, src netip.Addr, deadline time.Time)) {
	for {
		nc, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			log.Warn("accept signaling", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		deadline := time.Now().Add(timeout)
		src := connlimit.Source(nc.RemoteAddr())
		if reason, ok := preAuth.Enter(src, false); !ok {
			// Closed before any TLS work, so connections that never finish
			// the handshake cannot pile up (issue 11 §1).
			_ = nc.Close()
			stats.rejected("pre-auth-cap")
			// Debug only: a flood would flood the log; the metric counts.
			log.Debug("signaling connection refused: too many not authenticated",
				"remote", nc.RemoteAddr().String(), "cap", reason.String(), "pending", preAuth.Pending())
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			serve(nc, src, deadline)
		}()
	}
}

// serveConn authenticates an incoming connection and dispatches its first
// message. A connection that fails any check is closed; no call is touched.
// The handshake and the first message must both be done by deadline; until
// then the connection counts against the pre-authentication caps.
func (e *Endpoint) serveConn(tc *tls.Conn, src netip.Addr, deadline time.Time) {
	pending := true
	authenticated := func() {
		if pending {
			pending = false
			e.preAuth.Leave(src)
		}
	}
	defer authenticated()
	log := e.log.With("remote", tc.RemoteAddr().String())
	_ = tc.SetDeadline(deadline)
	if err := tc.HandshakeContext(e.ctx); err != nil {
		e.stats.rejected("handshake")
		log.Info("signaling handshake refused", "err", err)
		_ = tc.Close()
		return
	}
	peer, err := pki.PeerIdentity(tc.ConnectionState())
	if err != nil {
		e.stats.rejected("identity")
		log.Info("signaling peer without identity", "err", err)
		_ = tc.Close()
		return
	}
	e.serveSignaling(tc, peer, deadline, authenticated, log)
}

// serveSignaling serves a connection whose peer is authenticated as peer
// (after the TLS handshake, or an in-process connection from an endpoint
// of the same Host, localconn.go): its first message must arrive by
// deadline, then authenticated is called (the connection leaves the
// pre-authentication caps) and the message is dispatched.
func (e *Endpoint) serveSignaling(nc net.Conn, peer pki.Identity, deadline time.Time, authenticated func(), log *slog.Logger) {
	log = log.With("peer", peer.String())
	_ = nc.SetDeadline(deadline)
	wc := wire.NewConn(e.track(nc), signalMaxPayload)
	m, err := wc.Recv()
	if errors.Is(err, os.ErrDeadlineExceeded) {
		e.stats.rejected("pre-auth-timeout")
		log.Info("signaling: no first message in time", "timeout", e.cfg.PreAuthTimeout)
		_ = wc.SendError(wire.CodeTimeout, fmt.Sprintf("no first message within %v of connecting", e.cfg.PreAuthTimeout), "", sendTimeout)
		_ = wc.Close()
		return
	}
	if err != nil {
		e.stats.rejected("malformed")
		log.Info("signaling: bad first message", "err", err)
		if !errors.Is(err, io.EOF) {
			_ = wc.SendError(wire.CodeBadRequest, err.Error(), "", sendTimeout)
		}
		_ = wc.Close()
		return
	}
	_ = nc.SetDeadline(time.Time{})
	authenticated()
	switch m := m.(type) {
	case *wire.SessionQuery:
		e.serveHandoff(wc, peer, m)
		return
	case *wire.Reestablish:
		e.serveReestablish(wc, peer, m)
		return
	case *wire.PushOffer:
		e.servePush(wc, peer, m)
		return
	case *wire.TransferRequest:
		e.serveTransfer(wc, peer, m)
		return
	case *wire.InviteReplaces:
		e.serveInviteReplaces(wc, peer, m, log)
		return
	}
	inv, ok := m.(*wire.Invite)
	if !ok {
		e.stats.rejected("unexpected")
		log.Info("signaling: first message is not an invite", "type", m.Type())
		_ = wc.SendError(wire.CodeBadRequest, fmt.Sprintf("first message must be invite, invite-replaces, session-query, reestablish, push-offer or transfer-request, got %s", m.Type()), "", sendTimeout)
		_ = wc.Close()
		return
	}
	e.handleInvite(wc, peer, inv, log)
}

// dial opens a mutually authenticated signaling connection to the device
// peer at addr. The handshake fails unless the peer proves exactly that
// identity.
//
// A peer that is an endpoint of the same Host, at the host's own address,
// is connected in process instead (localconn.go): same checks, no TCP or
// TLS.
func (e *Endpoint) dial(ctx context.Context, peer pki.Identity, addr netip.AddrPort) (*wire.Conn, error) {
	if callee := e.localTarget(peer, addr); callee != nil {
		conn, err := e.dialLocal(peer, addr, callee)
		if !errors.Is(err, errNoSocketpair) {
			return conn, err
		}
	}
	cfg := e.verified.ClientConfig(e.certificate, e.cfg.Roots, peer, e.cfg.Now)
	// Resume with a ticket from an earlier call to the same identity at
	// the same address: the chain and identity checks still run
	// (VerifyConnection), see pki.IdentitySessionCache.
	cfg.ClientSessionCache = pki.IdentitySessionCache(e.tlsSessions, peer, addr)
	d := tls.Dialer{
		NetDialer: &net.Dialer{Timeout: e.cfg.DialTimeout},
		Config:    cfg,
	}
	ctx, cancel := context.WithTimeout(ctx, e.cfg.DialTimeout)
	defer cancel()
	nc, err := d.DialContext(ctx, "tcp", addr.String())
	if err != nil {
		if errors.Is(err, pki.ErrIdentityMismatch) || errors.Is(err, pki.ErrUntrusted) {
			return nil, fmt.Errorf("endpoint: dial %s at %s: %w", peer, addr, err)
		}
		if strings.Contains(err.Error(), "unrecognized name") {
			// A Host answered that it serves no endpoint by that name
			// (host.go): stale presence, or the device just went away.
			return nil, fmt.Errorf("%w: %s at %s: the host there has no such endpoint (%w)", ErrUnreachable, peer, addr, err)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
			// Closed before the handshake: over the peer's (or its
			// host's) caps on connections not yet authenticated, or it
			// is going away (signaling.go acceptLoop, host.go).
			return nil, fmt.Errorf("%w: %s at %s: the peer closed the connection before the TLS handshake (too many connections not yet authenticated there, or it is shutting down): %w", ErrUnreachable, peer, addr, err)
		}
		return nil, fmt.Errorf("%w: %s at %s: %w", ErrUnreachable, peer, addr, err)
	}
	return wire.NewConn(e.track(nc), signalMaxPayload), nil
}
