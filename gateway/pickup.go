package gateway

import (
	"context"
	"errors"
	"fmt"

	"github.com/baton-voice/baton/p2p/endpoint"
	"github.com/baton-voice/baton/p2p/wire"
)

// ErrNothingToPickUp means the pickup code was dialled while no other
// device of the phone's user has a call.
var ErrNothingToPickUp = errors.New("gateway: no call to pick up")

// isPickup reports whether a Request-URI user part is the pickup code.
func (g *Gateway) isPickup(user string) bool {
	return g.cfg.PickupCode != "" && user == g.cfg.PickupCode
}

// pickup takes the user's active call from another of the user's devices
// onto this phone (issue 9 §1, role A by pickup code): the device
// endpoint pulls it with the P2P handoff, as any softphone would, with
// the phone's SIP leg as the pulled call's audio. The devices are asked in
// name order; the first one with a session gives it up. A failed pull
// leaves the call where it was (the handoff rolls back).
func (g *Gateway) pickup(ctx context.Context, ep *endpoint.Endpoint, b *bridge) (endpoint.CallInfo, error) {
	var asked []string
	for _, bud := range ep.Buddies() {
		if !bud.Self {
			continue
		}
		for _, dev := range bud.Devices {
			if dev.Status == string(wire.StatusOffline) {
				continue
			}
			sessions, err := ep.Sessions(ctx, dev.Device)
			if err != nil {
				asked = append(asked, fmt.Sprintf("%s: %v", dev.Device, err))
				continue
			}
			if len(sessions) == 0 {
				continue
			}
			return g.pullSession(ctx, ep, b, dev.Device, sessions[0].CallID)
		}
	}
	if len(asked) > 0 {
		return endpoint.CallInfo{}, fmt.Errorf("%w (%v)", ErrNothingToPickUp, asked)
	}
	return endpoint.CallInfo{}, ErrNothingToPickUp
}

// pullSession pulls one session from another device of the phone's user
// onto the phone (the device endpoint is A in the P2P handoff, the
// phone's SIP leg the call's audio): the pickup code's and Replaces' common
// end.
func (g *Gateway) pullSession(ctx context.Context, ep *endpoint.Endpoint, b *bridge, from, callID string) (endpoint.CallInfo, error) {
	h, err := ep.Pull(ctx, endpoint.PullRequest{From: from, SessionID: callID,
		Options: endpoint.CallOptions{Source: b.leg, Sink: b.leg}})
	if err != nil {
		return endpoint.CallInfo{}, fmt.Errorf("pickup from %s: %w", from, err)
	}
	ci, err := ep.Call(h.CallID)
	if err != nil {
		return endpoint.CallInfo{}, fmt.Errorf("pickup from %s: the pulled call: %w", from, err)
	}
	return ci, nil
}
