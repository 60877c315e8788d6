package endpoint

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

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
	ack := make(chan struct{}, 1)
	var fresh *media.Session
	var peer string
	// The closure runs on the call's owner goroutine; it is waited for even
	// if ctx ends, so it never runs on while the handoff is recorded.
	err := c.exec(context.WithoutCancel(ctx), func() error {
		if c.state != CallActive || c.sess == nil {
			return fmt.Errorf("%w: call %s is %s", ErrBadState, c.id, c.state)
		}
		peer = c.peer.String()
		h.set(func(i *HandoffInfo) { i.CallID, i.Peer = c.id, peer })
		if _, err := h.fire(handoff.EvAddressChanged, fmt.Sprintf("address changed %s -> %s", old, ip)); err != nil {
			return err
		}
		// Step 8: close the media session; nothing is sent to the peer.
		oldAddr, remote := c.sess.LocalAddr(), c.remoteMedia()
		// The peer's consent at its address carries over to the new
		// session, which has not heard from it yet.
		consented := c.sess.Stats().RemoteConfirmed
		// The peer's stream goes on: the new session starts from its SRTP
		// roll-over counter (RFC 3711 §3.3.1).
		if roc, ok := c.sess.RemoteROC(); ok {
			c.remoteROC = &roc
		}
		c.closeMedia()
		if _, err := h.fire(handoff.EvMediaClosed, "media "+oldAddr.String()+" closed; no termination signal sent"); err != nil {
			return err
		}
		// Step 9: a new address and port.
		if err := c.openMedia(ctx, c.codec, netip.AddrPortFrom(ip, 0), c.recvKeys); err != nil {
			err = h.failWith(handoff.EvMediaFailed, err.Error(), err)
			c.end("media lost: "+err.Error(), "failed")
			return err
		}
		if _, err := h.fire(handoff.EvAddressAllocated, "media now on "+c.sess.LocalAddr().String()); err != nil {
			return err
		}
		// Step 10: restart the audio there (still muted if another device
		// is taking this call: B's mute survives the move).
		c.aimMedia(c.sess, remote, c.conn, consented)
		if c.ho != nil && c.ho.b != nil && c.ho.b.State() == handoff.BMuted && !c.ho.unmuted {
			c.sess.SetSending(false)
		}
		c.sess.Start()
		if _, err := h.fire(handoff.EvAudioRestarted, fmt.Sprintf("audio restarted from %s (ssrc %08x)", c.sess.LocalAddr(), c.sess.SSRC())); err != nil {
			return err
		}
		// Step 11: the new address, directly to the far party.
		c.addrAck = ack
		na := &wire.NewAddress{CallID: c.id, Media: wire.Media{Addr: c.sess.LocalAddr().String(), SSRC: c.sess.SSRC(), PtimeMS: int(e.cfg.Ptime / time.Millisecond)}}
		if err := c.conn.Send(na, sendTimeout); err != nil {
			return fmt.Errorf("%w: new address not delivered: %w", ErrUnreachable, err)
		}
		fresh = c.sess
		return nil
	})
	if err != nil {
		return err
	}
	var step11 time.Time
	select {
	case <-ack:
		step11 = e.cfg.Now()
		if _, err := h.fireAt(handoff.EvNewAddressAcked, peer+" sends to "+fresh.LocalAddr().String(), step11); err != nil {
			return err
		}
	case <-time.After(e.timeouts.AddressAck):
		return h.failWith(handoff.EvTimeout, "no acknowledgement of the new address; the call goes on",
			fmt.Errorf("%w: %s did not acknowledge the new address (the call goes on)", ErrUnreachable, peer))
	}
	// Step 12: the far party's audio on the new address.
	first, err := waitFirstPacket(context.WithoutCancel(ctx), fresh, e.timeouts.NewAudio)
	if err != nil {
		return h.failWith(handoff.EvTimeout, err.Error()+"; the call goes on",
			fmt.Errorf("%w: no audio on the new address yet (the peer may be silent; the call goes on): %w", ErrHandoffFailed, err))
	}
	at := first // it may land before the acknowledgement was read
	if at.Before(step11) {
		at = step11
	}
	if _, err := h.fireAt(handoff.EvAudioFromC, "audio from "+peer+" on "+fresh.LocalAddr().String(), at); err != nil {
		return err
	}
	h.set(func(i *HandoffInfo) {
		i.FirstAudioMS = float64(first.Sub(h.start).Microseconds()) / 1000
		i.NewAddress = fresh.LocalAddr().String()
	})
	return nil
}
