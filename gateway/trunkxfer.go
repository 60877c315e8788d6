package gateway

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/baton-voice/baton/p2p/endpoint"
)

// A trunk's caller transferred by its P2P party (`baton ctl transfer ID
// --to TARGET`, or `--attended ID2`, from the softphone talking with the
// trunk's device): the gateway is the transferee for the trunk party. The
// same mechanism serves an attended transfer whose transferee (X) or
// target (Y) is a SIP phone: the phone's leg moves to the new P2P call. A
// provider's trunk is not asked anything (trunks rarely take REFER, and
// the caller must not notice): the trunk's device places the P2P call to
// the target (with the transferor's Replaces for an attended transfer),
// whose audio is the trunk call's own SIP leg, and once it is answered the
// leg's audio switches from the transferor's call to it. The SIP dialog
// with the trunk goes on untouched: no re-INVITE, UPDATE or BYE, the same
// SSRC, sequence numbers and timestamps (the leg's packetizer) on the RTP.
// The transferor then ends its call (transfer-result done); the bridge
// follows the new P2P call from then on, so that a BYE from the trunk ends
// it, and its end BYEs the trunk.

// errTrunkToTrunk refuses a trunk's caller transferred to a trunk: toll
// fraud (a PSTN caller dialling out through the gateway).
var errTrunkToTrunk = fmt.Errorf("%w: a trunk's caller is never transferred to a trunk (toll fraud)", endpoint.ErrForbidden)

// moving holds the bridges whose trunk call is being transferred: one
// transfer at a time per call.
var moving sync.Map // *bridge -> struct{}

// claimMove checks that b, device d's bridge of P2P call callID, is an
// answered call that no transfer holds, and holds it: release gives it
// back.
func (g *Gateway) claimMove(d *device, callID string) (b *bridge, release func(), err error) {
	d.mu.Lock()
	b = d.calls[callID]
	d.mu.Unlock()
	if b == nil {
		return nil, nil, fmt.Errorf("%w: call %s has no SIP dialog at %s", endpoint.ErrNoSuchCall, callID, d.identity())
	}
	b.mu.Lock()
	ok := b.answered && b.p2pID == callID && !b.transferred
	b.mu.Unlock()
	if !ok {
		return nil, nil, fmt.Errorf("%w: call %s is not an answered call of %s", endpoint.ErrBadState, callID, d.identity())
	}
	if _, busy := moving.LoadOrStore(b, struct{}{}); busy {
		return nil, nil, fmt.Errorf("%w: call %s is being transferred already", endpoint.ErrBusy, callID)
	}
	return b, func() { moving.Delete(b) }, nil
}

// transferAnchored is onTransfer when the gateway is the transferee
// itself: for a trunk's caller (blind or attended), and for a SIP phone's
// call in an attended transfer (the phone is asked nothing either: its
// dialog goes on, with Y's audio).
func (g *Gateway) transferAnchored(ctx context.Context, d *device, offer endpoint.TransferOffer) (string, error) {
	log := g.log.With("device", d.identity(), "p2p_call_id", offer.CallID, "transferor", offer.From, "target", offer.Target, "attended", offer.Replaces != nil)
	if d.trunk != nil && g.isTrunkTarget(offer.Target) {
		log.Info("trunk call transfer refused: the target is a trunk")
		return "", errTrunkToTrunk
	}
	b, release, err := g.claimMove(d, offer.CallID)
	if err != nil {
		return "", err
	}
	defer release()
	ep := d.endpoint()
	if ep == nil {
		return "", fmt.Errorf("%w: %s is offline", endpoint.ErrOffline, d.identity())
	}
	// The new call's audio is the SIP leg, switched on only once it is
	// answered: until then the SIP party keeps talking with the
	// transferor.
	view := &legView{l: b.leg}
	call2, err := ep.DialWith(ctx, offer.Target, endpoint.CallOptions{Source: view, Sink: view, Replaces: offer.Replaces})
	if err != nil {
		log.Info("anchored transfer: the target could not be called; the call stays", "err", err)
		return "", fmt.Errorf("call %s: %w", offer.Target, err)
	}
	log = log.With("new_call_id", call2.ID)
	for {
		ci, err := ep.Call(call2.ID)
		switch {
		case err != nil:
			return call2.ID, fmt.Errorf("call %s: %w", offer.Target, err)
		case ci.State == "ended":
			log.Info("anchored transfer: the target did not take the call; the call stays", "result", ci.Result, "reason", ci.EndReason)
			return call2.ID, fmt.Errorf("call %s %s: %s: %w", offer.Target, ci.Result, ci.EndReason, resultSentinel(ci.Result))
		}
		if ci.State == "active" {
			break
		}
		select {
		case <-ctx.Done():
			hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			_ = ep.Hangup(hctx, call2.ID)
			cancel()
			log.Info("anchored transfer abandoned; the call stays", "err", ctx.Err())
			return call2.ID, fmt.Errorf("call %s: no answer: %w", offer.Target, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
	if err := g.switchLeg(ep, d, b, view, offer.CallID, call2.ID, call2.Peer); err != nil {
		hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_ = ep.Hangup(hctx, call2.ID)
		cancel()
		log.Info("anchored transfer: the transferor's call cannot give up the leg; the call stays", "err", err)
		return call2.ID, err
	}
	log.Info("call transferred: the SIP leg now carries the call to the target, nothing sent toward SIP")
	return call2.ID, nil
}

// onReplaces is the device endpoint's Config.OnReplaces: an attended
// transfer's invite-replaces for one of this device's calls (its SIP
// party is the target). The new call gets the old call's SIP leg, switched
// to it once it is active (before the endpoint ends the old call); the SIP
// phone or trunk is told nothing and talks to the caller from then on.
func (d *device) onReplaces(_ context.Context, offer endpoint.ReplacesOffer) (endpoint.ReplacesAnswer, error) {
	g := d.g
	if d.trunk != nil && g.isTrunkTarget(offer.From) {
		return endpoint.ReplacesAnswer{}, errTrunkToTrunk
	}
	b, release, err := g.claimMove(d, offer.OldCallID)
	if err != nil {
		return endpoint.ReplacesAnswer{}, err
	}
	view := &legView{l: b.leg}
	return endpoint.ReplacesAnswer{
		Options: endpoint.CallOptions{Source: view, Sink: view},
		OnActive: func() {
			defer release()
			ep := d.endpoint()
			if ep == nil {
				return
			}
			if err := g.switchLeg(ep, d, b, view, offer.OldCallID, offer.NewCallID, offer.From); err != nil {
				g.log.Info("invite-replaces: the replaced call cannot give up its SIP leg", "device", d.identity(), "p2p_call_id", offer.OldCallID, "err", err)
			}
		},
		OnFail: release,
	}, nil
}

// switchLeg moves bridge b's SIP leg from P2P call oldID to newID (with
// newPeer), once newID is active: oldID lets go of the leg (silence in,
// its audio discarded, its end no longer closes the leg), view (newID's
// audio) turns on at the same packet boundary (leg.sendMu), and the bridge
// follows newID from then on (its events, its hangup).
func (g *Gateway) switchLeg(ep *endpoint.Endpoint, d *device, b *bridge, view *legView, oldID, newID, newPeer string) error {
	kctx, kcancel := context.WithTimeout(g.ctx, 5*time.Second)
	err := ep.KeepSink(kctx, oldID)
	kcancel()
	if err != nil {
		return fmt.Errorf("%w: call %s: %w", endpoint.ErrBadState, oldID, err)
	}
	rate := 8000
	if c := b.leg.currentCodec(); c != nil {
		rate = c.Descriptor().SampleRate
	}
	b.leg.relay(newPipe(rate), newPipe(rate))
	view.on.Store(true)
	b.mu.Lock()
	b.p2pID, b.peer = newID, newPeer
	b.mu.Unlock()
	d.release(newID) // drop its early events (dialing, ringing, active): the SIP side knows them
	d.claim(newID, b)
	d.release(oldID)
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		g.afterTrunkTransfer(ep, d, b, oldID, newID)
	}()
	return nil
}

// afterTrunkTransfer cleans up after a SIP leg moved to call newID:
// the transferor's call oldID, once it ended (its events reach no bridge
// now), and newID's claim once the bridge is over.
func (g *Gateway) afterTrunkTransfer(ep *endpoint.Endpoint, d *device, b *bridge, oldID, newID string) {
	deadline := time.After(time.Minute)
	for ended := false; !ended; {
		ci, err := ep.Call(oldID)
		ended = err != nil || ci.State == "ended"
		select {
		case <-g.ctx.Done():
			return
		case <-deadline:
			ended = true
		case <-time.After(100 * time.Millisecond):
		}
	}
	d.release(oldID)
	select {
	case <-b.ended:
	case <-g.ctx.Done():
	}
	d.release(newID)
}

// isTrunkTarget reports whether a transfer target (user or user/device)
// is a trunk's.
func (g *Gateway) isTrunkTarget(target string) bool {
	if g.isTrunkIdentity(target) {
		return true
	}
	user, _, _ := strings.Cut(target, "/")
	return g.isTrunkIdentity(user)
}

// resultSentinel maps how a P2P call ended (CallInfo.Result) to the
// endpoint sentinel a transferor's error carries.
func resultSentinel(result string) error {
	switch result {
	case "busy":
		return endpoint.ErrBusy
	case "offline":
		return endpoint.ErrOffline
	case "not-found":
		return endpoint.ErrUnknownPeer
	case "forbidden", "identity-mismatch", "unknown-call":
		return endpoint.ErrForbidden
	case "timeout":
		return context.DeadlineExceeded
	}
	return endpoint.ErrDeclined
}

// legView is a trunk call's SIP leg as the audio of the P2P call it is
// transferred to: silent and deaf until on, then the leg's own audio
// whatever relay the leg has (the relay detaches the transferor's call).
// It offers no payload pass-through: the new call's frames are decoded
// and encoded (G.711 is cheap), so the switch is one place.
type legView struct {
	l  *leg
	on atomic.Bool
}

// ReadFrame implements audio.Source.
func (v *legView) ReadFrame(pcm []int16) error {
	if !v.on.Load() {
		clear(pcm)
		return nil
	}
	v.l.mu.Lock()
	defer v.l.mu.Unlock()
	return v.l.readFrameLocked(pcm)
}

// WriteFrame implements audio.Sink.
func (v *legView) WriteFrame(pcm []int16) error {
	if !v.on.Load() {
		return nil
	}
	return v.l.writeFrameDirect(pcm)
}

// Close implements io.Closer: the endpoint closes a call's sink when the
// call ends. The new call, once it has the leg, owns it (the transferor's
// call gave it up: Endpoint.KeepSink); before, the leg is not its to close.
func (v *legView) Close() error {
	if v.on.Load() {
		return v.l.Close()
	}
	return nil
}
