package gateway

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/baton-voice/baton/p2p/endpoint"
)

// ErrNoSuchDevice means a control API request named a device this gateway
// does not serve, or one that is not online (its phone is not registered).
var ErrNoSuchDevice = errors.New("gateway: no such device online")

// ErrOnThePhone means a control API request asked the gateway to do what
// only the SIP phone can do for its device (answer a ringing call, take a
// call with a pull): it is refused, so no call is ever answered or pulled
// with nobody on the line.
// It matches endpoint.ErrBadState (409 bad-state at the control API).
var ErrOnThePhone = fmt.Errorf("gateway: only the SIP phone can do that: %w", endpoint.ErrBadState)

// DeviceAPI returns the control API of one device ("alice/desk" or a
// trunk's "pstn/trunk1") while it is online: every read and hangup, push,
// handoffs and events as for a softphone; Dial rings the phone first
// (click to dial). The control API serves it under
// /v1/endpoints/{user}/{device}/ (`baton ctl --endpoint alice/desk ...`).
func (g *Gateway) DeviceAPI(id string) (endpoint.API, error) {
	for _, d := range g.devices {
		if d.identity() != id {
			continue
		}
		ep := d.endpoint()
		if ep == nil {
			return nil, fmt.Errorf("%w: %s is not online (no phone registered, or its login failed)", ErrNoSuchDevice, id)
		}
		return &deviceAPI{Endpoint: ep, g: g, d: d}, nil
	}
	return nil, fmt.Errorf("%w: %q is not a device of this gateway", ErrNoSuchDevice, id)
}

// DeviceIDs lists the devices online now, sorted.
func (g *Gateway) DeviceIDs() []string {
	var ids []string
	for _, d := range g.devices {
		if d.isOnline() {
			ids = append(ids, d.identity())
		}
	}
	sort.Strings(ids)
	return ids
}

// deviceAPI is a device's endpoint as the control API sees it.
type deviceAPI struct {
	*endpoint.Endpoint
	g *Gateway
	d *device
}

func (a *deviceAPI) Dial(ctx context.Context, target string) (endpoint.CallInfo, error) {
	return a.DialWith(ctx, target, endpoint.CallOptions{})
}

// DialWith is click to dial: the device's SIP phone rings (every contact,
// up to the ring timeout or the request's end); once it answers, the
// device calls target with the phone's leg as the call's audio, and the
// call is carried like one the phone dialled. A target that refuses or
// does not answer ends the phone's dialog with BYE.
func (a *deviceAPI) DialWith(ctx context.Context, target string, opts endpoint.CallOptions) (endpoint.CallInfo, error) {
	return a.g.callFromPhone(ctx, a.d, a.Endpoint, target, opts)
}

func (a *deviceAPI) Answer(context.Context, string) error {
	return fmt.Errorf("%w: answer %s's call on the phone (the gateway rings it)", ErrOnThePhone, a.d.identity())
}

func (a *deviceAPI) Pull(context.Context, endpoint.PullRequest) (endpoint.HandoffInfo, error) {
	return endpoint.HandoffInfo{}, fmt.Errorf("%w: take a call onto %s from the phone (dial %s, or INVITE with Replaces)",
		ErrOnThePhone, a.d.identity(), a.g.cfg.PickupCode)
}

// callFromPhone rings d's phone, then dials target for it.
func (g *Gateway) callFromPhone(ctx context.Context, d *device, ep *endpoint.Endpoint, target string, opts endpoint.CallOptions) (endpoint.CallInfo, error) {
	if d.trunk != nil {
		return endpoint.CallInfo{}, fmt.Errorf("%w: %s is a trunk: call out through it from a softphone (ctl call %s --number N)",
			endpoint.ErrInvalidTarget, d.identity(), d.identity())
	}
	if err := ep.CanCall(target); err != nil {
		return endpoint.CallInfo{}, err
	}
	contacts := g.bindings.Contacts(d.acct.SIPUser)
	if len(contacts) == 0 {
		return endpoint.CallInfo{}, fmt.Errorf("%w: no SIP phone registered for %s", endpoint.ErrOffline, d.identity())
	}
	b, err := newBridge(g, d, dirFromSIP)
	if err != nil {
		return endpoint.CallInfo{}, fmt.Errorf("gateway: call from %s: %w", d.identity(), err)
	}
	b.peer = target
	log := g.log.With("device", d.identity(), "target", target, "how", "click to dial")
	dc, _, err := g.ringPhone(ctx, d, b, contacts, pushRingTimeout, nil, log)
	if err != nil {
		_ = b.leg.Close()
		b.end(err.Error())
		return endpoint.CallInfo{}, err
	}
	b.useDialog(dc)
	opts.Source, opts.Sink = b.leg, b.leg
	call, err := ep.DialWith(ctx, target, opts)
	if err != nil {
		g.byeClient(dc)
		g.removeBridge(b)
		_ = b.leg.Close()
		b.end(err.Error())
		log.Info("click to dial: the P2P call failed; the phone is hung up", "err", err)
		return endpoint.CallInfo{}, err
	}
	b.mu.Lock()
	b.p2pID = call.ID
	b.peer = call.Peer
	b.answered = true
	b.state = "active"
	b.mu.Unlock()
	d.claim(call.ID, b)
	log.Info("click to dial: the phone answered; calling", "p2p_call_id", call.ID)
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		defer d.release(call.ID)
		defer g.removeBridge(b)
		g.carryDialog(b, dc, log.With("p2p_call_id", call.ID, "sip_call_id", b.sipCallID))
	}()
	return call, nil
}
