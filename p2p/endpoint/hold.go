package endpoint

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/baton-voice/baton/codecs"
	"github.com/baton-voice/baton/p2p/media"
	"github.com/baton-voice/baton/p2p/wire"
)

// In-call media updates (docs/protocol.md §17, issue 8 §2): hold, resume
// and a codec change of an active call, with the media-update message pair
// on the call's signaling connection.
//
// Each party keeps whether it holds the call (localHold) and the direction
// its peer last stated (peerDir). Its own direction follows from the two
// as RFC 3264 §8.4 says: sendrecv; sendonly when it holds; recvonly when
// the peer holds; inactive when both do. An update states the sender's
// direction; its ack states the answerer's, computed the same way.
//
// Baton plays no music on hold: while either party holds, neither sends
// audio (the session's sending is off, its SRTP state and RTP timestamps
// go on, RFC 3550 §5.1), and a party that does not receive plays silence.
//
// Glare (both parties send an update at once): the party whose identity
// ("user/device") sorts first wins. It refuses the other's update with
// code glare and keeps waiting for its own ack; the other accepts the
// winner's update and, when its own comes back refused with glare, sends
// it again with a new version, built on the state it has now. Identities
// and not caller/callee decide because a pull (docs/handoff.md) replaces
// one party with another device, which does not know who placed the call;
// both parties always know both identities.

// Event types of media updates.
const (
	// EventHeld: the call is now on hold (Detail says by whom: "by=local"
	// or "by=remote", and the direction).
	EventHeld = "call.held"
	// EventResumed: the call is off hold, two-way audio again.
	EventResumed = "call.resumed"
	// EventCodecChanged: both parties switched codec (Detail names it).
	EventCodecChanged = "call.codec-changed"
)

// mediaUpdateTimeout bounds how long an update waits for its ack.
const mediaUpdateTimeout = 5 * time.Second

// mediaUpdates is a call's media update state, owned by its run goroutine.
type mediaUpdates struct {
	localHold   bool
	peerDir     wire.MediaDirection // "" until the peer states one: sendrecv
	version     int64               // our last update's version
	peerVersion int64               // the peer's last update we accepted
	// peerConn is the connection peerVersion was counted on: after a pull
	// the call signals with another device, whose versions start again.
	peerConn *wire.Conn
	// pending is our update awaiting its ack; nil when none.
	pending *pendingUpdate
	timer   *time.Timer // pending's ack timeout
}

// pendingUpdate is one update we sent, and what it asks for.
type pendingUpdate struct {
	msg   wire.MediaUpdate
	hold  bool         // the localHold it asks for
	codec codecs.Codec // the codec it asks for; nil: unchanged
	// reason is the update's reason for a codec change ("" = codec-change).
	reason string
	done   chan error // the API caller waiting, buffered; nil for none
	// lostGlare: the peer's crossing update won; ours comes back refused
	// with glare and is sent again.
	lostGlare bool
}

func (c *call) media() *mediaUpdates {
	if c.mup == nil {
		c.mup = &mediaUpdates{}
	}
	return c.mup
}

// direction is a party's direction given whether it holds and whether the
// peer does (RFC 3264 §8.4).
func direction(local, peer bool) wire.MediaDirection {
	switch {
	case local && peer:
		return wire.MediaInactive
	case local:
		return wire.MediaSendOnly
	case peer:
		return wire.MediaRecvOnly
	}
	return wire.MediaSendRecv
}

// localDirection is the call's direction now (run goroutine).
func (c *call) localDirection() wire.MediaDirection {
	if c.mup == nil {
		return wire.MediaSendRecv
	}
	return direction(c.mup.localHold, c.mup.peerDir.Holds())
}

// held reports whether either party holds the call.
func (c *call) held() bool { return c.localDirection() != wire.MediaSendRecv }

// mupTimer is the pending update's ack timeout, for run's select.
func (c *call) mupTimer() <-chan time.Time {
	if c.mup == nil || c.mup.timer == nil {
		return nil
	}
	return c.mup.timer.C
}

// MediaUpdater is implemented by endpoints that change a call's media in
// the call (*Endpoint): the control API's hold and resume routes use it.
type MediaUpdater interface {
	// Hold puts call id on hold (true) or resumes it (false) and returns
	// once the peer has acknowledged it.
	Hold(ctx context.Context, id string, hold bool) error
	// SetCodec switches call id to codec (one both parties offered at
	// setup) and returns once both use it.
	SetCodec(ctx context.Context, id, codec string) error
}

var _ MediaUpdater = (*Endpoint)(nil)

// Hold puts active call id on hold (hold true: this party's direction
// becomes sendonly, or inactive when the peer holds too) or takes it off
// hold, with a media-update to the peer (docs/protocol.md §17). It returns
// once the peer has acknowledged; both parties then stop (or restart)
// sending audio, and publish call.held (call.resumed). Holding a call that
// this party holds already changes nothing and returns nil.
func (e *Endpoint) Hold(ctx context.Context, id string, hold bool) error {
	return e.updateMedia(ctx, id, func(c *call) (*pendingUpdate, error) {
		if c.media().localHold == hold {
			return nil, nil
		}
		return &pendingUpdate{hold: hold}, nil
	})
}

// SetCodec switches active call id to codec, which must be one both
// parties offered at call setup, with a media-update; both parties reopen
// their media on the same ports with the new codec (SRTP keys unchanged,
// new SSRCs). It returns once the peer has acknowledged and this side
// uses the codec.
func (e *Endpoint) SetCodec(ctx context.Context, id, codec string) error {
	return e.SwitchCodec(ctx, id, codec, "codec-change")
}

// SwitchCodec is SetCodec with the reason the update gives the peer
// (and the call's CodecChange records): "codec-fallback" when a codec
// plugin died (docs/plugins.md).
func (e *Endpoint) SwitchCodec(ctx context.Context, id, codec, reason string) error {
	return e.updateMedia(ctx, id, func(c *call) (*pendingUpdate, error) {
		cd, err := c.offeredCodec(codec)
		if err != nil {
			return nil, err
		}
		if cd.Descriptor().Name == c.codec.Descriptor().Name {
			return nil, nil
		}
		return &pendingUpdate{hold: c.media().localHold, codec: cd, reason: reason}, nil
	})
}

// updateMedia sends the update build returns (nil: nothing to change) on
// the call's owner goroutine and waits for its ack.
func (e *Endpoint) updateMedia(ctx context.Context, id string, build func(*call) (*pendingUpdate, error)) error {
	c, err := e.lookup(id)
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	err = c.exec(ctx, func() error {
		if err := c.canUpdate(); err != nil {
			return err
		}
		p, err := build(c)
		if err != nil || p == nil {
			if err == nil {
				done <- nil
			}
			return err
		}
		p.done = done
		return c.sendUpdate(p)
	})
	if err != nil {
		return err
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-c.done:
		return fmt.Errorf("%w: call %s ended during the media update", ErrBadState, id)
	}
}

// canUpdate says whether an update may start now (run goroutine).
func (c *call) canUpdate() error {
	if c.state != CallActive || c.sess == nil {
		return fmt.Errorf("%w: cannot update the media of a %s call", ErrBadState, c.state)
	}
	if c.sigLost || c.conn == nil {
		return fmt.Errorf("%w: call %s has lost its signaling connection; media updates travel on it", ErrUnreachable, c.id)
	}
	if c.mup != nil && c.mup.pending != nil {
		return fmt.Errorf("%w: a media update of call %s is in progress", ErrBadState, c.id)
	}
	if c.ho != nil && c.ho.b != nil && !c.ho.b.Done() {
		return fmt.Errorf("%w: call %s is being handed off", ErrBadState, c.id)
	}
	return nil
}

// offeredCodec returns the codec named name when both parties offered it
// at call setup: it is in this endpoint's registry, and, for a call this
// endpoint answered, in the caller's invite (the caller offered its whole
// registry and checks the callee's choice against it).
func (c *call) offeredCodec(name string) (codecs.Codec, error) {
	cd, ok := c.e.cfg.Codecs.Lookup(name)
	if !ok {
		return nil, fmt.Errorf("%w: %q is not a codec of %s (have %v)", ErrNoCodec, name, c.e.id, c.e.cfg.Codecs.Names())
	}
	if c.invite != nil && !slices.ContainsFunc(c.invite.Codecs, func(s string) bool { return s == cd.Descriptor().Name }) {
		return nil, fmt.Errorf("%w: %q was not offered by %s (offered %v)", ErrNoCodec, name, c.peer, c.invite.Codecs)
	}
	return cd, nil
}

// sendUpdate sends p as our next update (run goroutine).
func (c *call) sendUpdate(p *pendingUpdate) error {
	mu := c.media()
	mu.version++
	p.msg = wire.MediaUpdate{CallID: c.id, Version: mu.version, Direction: direction(p.hold, mu.peerDir.Holds())}
	switch {
	case p.codec != nil:
		p.msg.Codec, p.msg.Reason = p.codec.Descriptor().Name, p.reason
		if p.reason == "" {
			p.msg.Reason = "codec-change"
		}
	case p.hold:
		p.msg.Reason = "hold"
	default:
		p.msg.Reason = "resume"
	}
	if err := c.conn.Send(&p.msg, sendTimeout); err != nil {
		return fmt.Errorf("%w: send media-update to %s: %w", ErrUnreachable, c.peer, err)
	}
	mu.pending = p
	if mu.timer == nil {
		mu.timer = time.NewTimer(mediaUpdateTimeout)
	} else {
		mu.timer.Reset(mediaUpdateTimeout)
	}
	c.log.Info("media update sent", "version", p.msg.Version, "direction", p.msg.Direction, "codec", p.msg.Codec)
	return nil
}

// finishUpdate ends our pending update with err (nil: done).
func (c *call) finishUpdate(err error) {
	mu := c.mup
	p := mu.pending
	mu.pending = nil
	if mu.timer != nil {
		mu.timer.Stop()
	}
	if p.done != nil {
		p.done <- err
	}
}

// onMediaUpdateTimeout: the peer never answered our update; nothing
// changed here (run goroutine).
func (c *call) onMediaUpdateTimeout() {
	if c.mup == nil || c.mup.pending == nil {
		return
	}
	c.log.Warn("media update not acknowledged", "version", c.mup.pending.msg.Version)
	c.finishUpdate(fmt.Errorf("%w: %s did not acknowledge the media update within %s", ErrUnreachable, c.peer, mediaUpdateTimeout))
}

// winsGlare reports whether this party's update wins over a crossing one.
func (c *call) winsGlare() bool { return c.e.id.String() < c.peer.String() }

// onMediaUpdate answers the peer's update (run goroutine).
func (c *call) onMediaUpdate(m *wire.MediaUpdate) {
	mu := c.media()
	refuse := func(code wire.ErrorCode, reason string) {
		c.log.Info("media update refused", "version", m.Version, "code", code, "reason", reason)
		_ = c.conn.Send(&wire.MediaUpdateAck{CallID: c.id, Version: m.Version, Code: code, Reason: reason,
			Direction: c.localDirection(), Codec: c.codec.Descriptor().Name}, sendTimeout)
	}
	if mu.peerConn != c.conn {
		mu.peerConn, mu.peerVersion = c.conn, 0
	}
	if m.Version <= mu.peerVersion {
		// A repeat (or older): answered with the state as it is.
		_ = c.conn.Send(&wire.MediaUpdateAck{CallID: c.id, Version: m.Version, Direction: c.localDirection(), Codec: c.codec.Descriptor().Name}, sendTimeout)
		return
	}
	if p := mu.pending; p != nil {
		if c.winsGlare() {
			refuse(wire.CodeGlare, fmt.Sprintf("crossed media update %d of %s, which wins", p.msg.Version, c.e.id))
			return
		}
		p.lostGlare = true
	}
	var codec codecs.Codec
	if m.Codec != "" && m.Codec != c.codec.Descriptor().Name {
		cd, err := c.offeredCodec(m.Codec)
		if err != nil {
			refuse(wire.CodeUnsupported, err.Error())
			return
		}
		codec = cd
	}
	prev := c.localDirection()
	mu.peerVersion = m.Version
	mu.peerDir = m.Direction
	// The answer states the new state; the codec switch follows it, so
	// the peer learns the answer before our media restarts.
	name := c.codec.Descriptor().Name
	if codec != nil {
		name = codec.Descriptor().Name
	}
	ack := &wire.MediaUpdateAck{CallID: c.id, Version: m.Version, Direction: c.localDirection(), Codec: name}
	if err := c.conn.Send(ack, sendTimeout); err != nil {
		c.log.Info("media update ack not delivered", "err", err)
	}
	c.log.Info("media update accepted", "version", m.Version, "peer_direction", m.Direction, "direction", ack.Direction, "codec", name)
	if codec != nil {
		if err := c.switchCodec(codec, m.Reason); err != nil {
			c.log.Warn("codec switch failed; hanging up", "err", err)
			_ = c.conn.Send(&wire.Bye{CallID: c.id, Reason: err.Error()}, sendTimeout)
			c.end(err.Error(), "failed")
			return
		}
	}
	c.applyDirection(prev, "remote")
}

// onMediaUpdateAck takes the answer to our pending update (run goroutine).
func (c *call) onMediaUpdateAck(m *wire.MediaUpdateAck) bool {
	mu := c.mup
	if mu == nil || mu.pending == nil || m.Version != mu.pending.msg.Version {
		return false
	}
	p := mu.pending
	if m.Code != "" {
		if m.Code == wire.CodeGlare && p.lostGlare {
			// The peer's update won; ours goes again on the new state.
			c.log.Info("media update lost glare; sending it again", "version", p.msg.Version)
			mu.pending = nil
			p.lostGlare = false
			if err := c.sendUpdate(p); err != nil {
				mu.pending = p
				c.finishUpdate(err)
			}
			return true
		}
		c.finishUpdate(fmt.Errorf("%w: %s refused the media update: %s %s", ErrMediaRefused, c.peer, m.Code, m.Reason))
		return true
	}
	prev := c.localDirection()
	mu.localHold = p.hold
	mu.peerDir = m.Direction
	var err error
	if p.codec != nil {
		if m.Codec != p.codec.Descriptor().Name {
			err = fmt.Errorf("%w: %s answered codec %q, asked %q", ErrMediaRefused, c.peer, m.Codec, p.codec.Descriptor().Name)
		} else if err = c.switchCodec(p.codec, p.msg.Reason); err != nil {
			c.finishUpdate(err)
			c.log.Warn("codec switch failed; hanging up", "err", err)
			_ = c.conn.Send(&wire.Bye{CallID: c.id, Reason: err.Error()}, sendTimeout)
			c.end(err.Error(), "failed")
			return true
		}
	}
	c.applyDirection(prev, "local")
	c.finishUpdate(err)
	return true
}

// applyDirection sets the session to the call's direction and publishes
// call.held / call.resumed when it changed from prev (run goroutine).
func (c *call) applyDirection(prev wire.MediaDirection, by string) {
	dir := c.localDirection()
	if c.sess != nil {
		c.sess.SetSending(dir == wire.MediaSendRecv) // no music on hold
		c.sess.SetPlaying(dir.Receives())
	}
	c.mu.Lock()
	c.info.MediaDirection = string(dir)
	c.info.HeldBy = heldBy(c.mup.localHold, c.mup.peerDir.Holds())
	c.mu.Unlock()
	if dir == prev {
		return
	}
	typ := EventHeld
	if dir == wire.MediaSendRecv {
		typ = EventResumed
	}
	c.log.Info("media direction changed", "by", by, "direction", dir, "previous", prev)
	c.e.emit(Event{Type: typ, CallID: c.id, Peer: c.peer.String(), State: c.state.String(),
		Detail: fmt.Sprintf("by=%s direction=%s held_by=%s", by, dir, heldBy(c.mup.localHold, c.mup.peerDir.Holds()))})
}

func heldBy(local, peer bool) string {
	switch {
	case local && peer:
		return "both"
	case local:
		return "local"
	case peer:
		return "remote"
	}
	return ""
}

// failPending ends a pending update when the call ends (finish).
func (c *call) failPending() {
	if c.mup != nil && c.mup.pending != nil {
		c.finishUpdate(fmt.Errorf("%w: call %s ended during the media update", ErrBadState, c.id))
	}
}

// switchCodec reopens the call's media with codec on the same local port,
// keeping the SRTP keys, the remote and the audio source and sink (run
// goroutine). The new session sends with a new SSRC (so the SRTP keystream
// is new, RFC 3711 §9.1) and expects the peer's new stream from roll-over
// counter 0.
func (c *call) switchCodec(codec codecs.Codec, reason string) error {
	remote := c.remoteMedia()
	old := c.codec.Descriptor().Name
	lastOld := c.sess.Stats().LastPacket
	// The same socket, so that the port the peer sends to stays ours.
	conn := c.detachMedia()
	c.remoteROC = nil
	if err := c.openMediaOn(c.e.ctx, codec, conn, c.recvKeys); err != nil {
		return fmt.Errorf("endpoint: switch codec to %s: %w", codec.Descriptor().Name, err)
	}
	c.codec = codec
	c.aimMedia(c.sess, remote, c.conn, false)
	c.sess.Start()
	c.mu.Lock()
	c.info.CodecChange = &CodecChange{From: old, To: codec.Descriptor().Name, At: c.e.cfg.Now(), Reason: reason, lastOld: lastOld}
	c.mu.Unlock()
	c.log.Info("codec switched", "from", old, "to", codec.Descriptor().Name, "reason", reason)
	c.e.emit(Event{Type: EventCodecChanged, CallID: c.id, Peer: c.peer.String(), State: c.state.String(),
		Detail: fmt.Sprintf("codec=%s previous=%s reason=%s", codec.Descriptor().Name, old, reason)})
	return nil
}

// holdRefusesPull says why a held call is not offered to a puller: the
// handoff's steps 4-6 and 12 are decided by audio flowing both ways, which
// hold stops (docs/protocol.md §17).
func (c *call) holdRefusesPull() error {
	if c.held() {
		return fmt.Errorf("%w: call %s is on hold (%s); resume it before pulling it", ErrBadState, c.id, c.localDirection())
	}
	return nil
}

// codecChangeGap fills info's CodecChange.ReceiveGapMS once the peer's
// first packet in the new codec has arrived (snapshot readers).
func codecChangeGap(info *CallInfo, st media.Stats) {
	cc := info.CodecChange
	if cc == nil || cc.lastOld.IsZero() || st.FirstPacket.IsZero() {
		return
	}
	c := *cc
	c.ReceiveGapMS = float64(st.FirstPacket.Sub(cc.lastOld).Microseconds()) / 1000
	info.CodecChange = &c
}
