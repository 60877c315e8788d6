package endpoint

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/baton-voice/baton/p2p/handoff"
	"github.com/baton-voice/baton/p2p/media"
	"github.com/baton-voice/baton/p2p/wire"
)

// Rebind moves this endpoint's media to ip (mobility, DESIGN.md §2: claim
// steps 8-12 alone). The active call's media session is closed without any
// termination signal, reopened on a new port of ip with a new SSRC
// (RFC 3550 §8.2), its audio restarted, and the new address sent directly
// to the far party; the call goes on with no re-login. Later calls use ip
// too. With no call, only the address for later calls changes.
func (e *Endpoint) Rebind(ctx context.Context, ip netip.Addr) (HandoffInfo, error) {
	h := e.newHandoffRun("rebind", handoff.RoleM)
	err := e.rebind(ctx, h, ip)
	if err != nil {
		e.log.Warn("rebind did not complete", "ip", ip, "err", err)
	}
	h.finish(err)
	return h.snapshot(), err
}

// checkBindable tells early whether ip can carry media here, before the
// call's current media is touched.
func checkBindable(ip netip.Addr) error {
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
	if err != nil {
		return fmt.Errorf("endpoint: cannot use %s for media: %w", ip, err)
	}
	return c.Close()
}

// rebindState is role M's mediaMove: the call's own media session, moved
// to a new address (steps 8-11), each step on the call's goroutine.
type rebindState struct {
	ctx  context.Context
	c    *call
	ip   netip.Addr
	peer string
	ack  chan struct{}

	remote    netip.AddrPort // the far party's media address
	consented bool           // the far party's consent carries over
}

func (e *Endpoint) rebind(ctx context.Context, h *handoffRun, ip netip.Addr) error {
	if !ip.IsValid() || ip.IsUnspecified() || ip.IsMulticast() {
		return fmt.Errorf("%w: %q is not a unicast address", ErrInvalidTarget, ip)
	}
	if err := checkBindable(ip); err != nil {
		return err
	}
	e.mu.Lock()
	old := e.mediaIP
	e.mediaIP = ip
	var c *call
	for _, x := range e.calls {
		c = x
	}
	e.mu.Unlock()
	e.log.Info("media address changed", "from", old, "to", ip)
	e.emit(Event{Type: "media.rebind", Detail: fmt.Sprintf("media address %s -> %s", old, ip)})
	if c == nil {
		return nil
	}
	// The steps run on the call's goroutine; each is waited for even if
	// ctx ends, so none runs on while the handoff is recorded.
	m := &rebindState{ctx: context.WithoutCancel(ctx), c: c, ip: ip, ack: make(chan struct{}, 1)}
	err := c.exec(m.ctx, func() error {
		if c.state != CallActive || c.sess == nil {
			return fmt.Errorf("%w: call %s is %s", ErrBadState, c.id, c.state)
		}
		m.peer = c.peer.String()
		return nil
	})
	if err != nil {
		return err
	}
	h.set(func(i *HandoffInfo) { i.CallID, i.Peer = c.id, m.peer })
	x := e.newExec(h, mHandlers)
	x.m, x.mv, x.callID = m, m, c.id
	go func() {
		// The far party's acknowledgement (call.go hands it over).
		select {
		case <-m.ack:
			select {
			case x.in <- x.newAddressAcked:
			case <-x.quit:
			}
		case <-x.quit:
		}
	}()
	if err := x.run(handoff.EvAddressChanged, fmt.Sprintf("address changed %s -> %s", old, ip), e.cfg.Now()); err != nil {
		return errors.Join(x.cause, err)
	}
	if x.cause != nil {
		return x.cause
	}
	h.set(func(i *HandoffInfo) {
		i.FirstAudioMS = float64(x.firstAudio.Sub(h.start).Microseconds()) / 1000
		i.NewAddress = x.fresh.LocalAddr().String()
	})
	return nil
}

func (m *rebindState) closeOld() (string, error) {
	var detail string
	err := m.c.exec(m.ctx, func() error {
		c := m.c
		if c.state != CallActive || c.sess == nil {
			return fmt.Errorf("%w: call %s is %s", ErrBadState, c.id, c.state)
		}
		oldAddr := c.sess.LocalAddr()
		m.remote = c.remoteMedia()
		// The peer's consent at its address carries over to the new
		// session, which has not heard from it yet.
		m.consented = c.sess.Stats().RemoteConfirmed
		// The peer's stream goes on: the new session starts from its SRTP
		// roll-over counter (RFC 3711 §3.3.1).
		// A session that never authenticated the peer's packet (a rebind
		// right after the answer) has no index: the new one is then given
		// the SSRC the peer's signaling named at counter 0, and tries ROC
		// and ROC+1 until the peer's first packet authenticates. That
		// covers a peer that wrapped once since (TestRebindUnheardAcrossWrap);
		// twice takes 65,536 packets more (about 22 minutes at 20 ms).
		if roc, ok := c.sess.RemoteROC(); ok && !c.e.cfg.rebindUnheard {
			c.remoteROC = &roc
		} else if c.peerSSRC != 0 {
			// Never heard: the stream the peer's signaling named, from
			// counter 0, so the new session's one-more-wrap trial applies
			// to its first packet (media.Config.RemoteROC).
			c.remoteROC = &media.ROC{SSRC: c.peerSSRC}
		}
		c.closeMedia()
		detail = "media " + oldAddr.String() + " closed; no termination signal sent"
		return nil
	})
	return detail, err
}

func (m *rebindState) openNew() (*media.Session, error) {
	var sess *media.Session
	err := m.c.exec(m.ctx, func() error {
		c := m.c
		if err := c.openMedia(m.ctx, c.codec, netip.AddrPortFrom(m.ip, 0), c.recvKeys); err != nil {
			return err
		}
		sess = c.sess
		return nil
	})
	return sess, err
}

func (m *rebindState) startNew(sess *media.Session) {
	_ = m.c.exec(m.ctx, func() error {
		c := m.c
		if c.sess != sess {
			return nil // the call ended meanwhile
		}
		// Still muted if another device is taking this call: B's mute
		// survives the move.
		c.aimMedia(sess, m.remote, c.conn, m.consented)
		if c.ho != nil && c.ho.b != nil && c.ho.b.State() == handoff.BMuted && !c.ho.unmuted {
			sess.SetSending(false)
		}
		sess.Start()
		return nil
	})
}

func (m *rebindState) sendNewAddress(na *wire.NewAddress) error {
	return m.c.exec(m.ctx, func() error {
		m.c.addrAck = m.ack
		return m.c.conn.Send(na, sendTimeout)
	})
}

// endMovedCall: the new address never worked; the call ends here (the far
// party ends it by its own media timeout).
func (x *handoffExec) endMovedCall(handoff.Transition) (handoff.Event, string) {
	c, reason := x.m.c, "media lost"
	if x.cause != nil {
		reason += ": " + x.cause.Error()
	}
	_ = c.exec(x.m.ctx, func() error {
		c.end(reason, "failed")
		return nil
	})
	return handoff.EventUnknown, ""
}
