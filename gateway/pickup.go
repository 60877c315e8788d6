package gateway

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/baton-voice/baton/p2p/endpoint"
	"github.com/baton-voice/baton/p2p/wire"
)

// ErrNothingToPickUp means the pickup code was dialled while no other
// device of the phone's user has a call.
var ErrNothingToPickUp = errors.New("gateway: no call to pick up")

// pickupAudioWait bounds how long an answered pickup waits for the phone's
// first audio before it pulls the call anyway (a phone that sends nothing
// yet, or sends late, then leaves C a gap instead of holding up the pull).
// A LAN phone's first packets come 20-40 ms after its 200; C keeps hearing
// B while the gateway waits. It also keeps the pickup's INVITE inside its
// handoff record's 500 ms window (docs/control-api.md).
const pickupAudioWait = 200 * time.Millisecond

// isPickup reports whether a Request-URI user part is the pickup code.
func (g *Gateway) isPickup(user string) bool {
	return g.cfg.PickupCode != "" && user == g.cfg.PickupCode
}

// take is how an INVITE takes an existing call onto the phone instead of
// dialling: by pickup code or by Replaces (RFC 3891). find names the call
// and runs before the phone is answered, so that nothing to take is still
// a final response (404, 481); pull takes it, once the phone is answered
// (takeCall).
type take struct {
	find func(ctx context.Context) (from, callID string, err error)
	pull func(ctx context.Context, b *bridge, from, callID string) (endpoint.CallInfo, error)
}

// pickupTake takes the user's active call from another of the user's
// devices onto this phone (issue 9 §1, role A by pickup code): the device
// endpoint pulls it with the P2P handoff, as any softphone would, with the
// phone's SIP leg as the pulled call's audio.
func (g *Gateway) pickupTake(ep *endpoint.Endpoint) *take {
	return &take{
		find: func(ctx context.Context) (string, string, error) { return findPickup(ctx, ep) },
		pull: func(ctx context.Context, b *bridge, from, callID string) (endpoint.CallInfo, error) {
			return g.pullSession(ctx, ep, b, from, callID)
		},
	}
}

// findPickup is the call a pickup takes: the devices of the user are asked
// in name order (session queries, steps 2-3), and the first one with a
// session gives it up.
func findPickup(ctx context.Context, ep *endpoint.Endpoint) (from, callID string, err error) {
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
			return dev.Device, sessions[0].CallID, nil
		}
	}
	if len(asked) > 0 {
		return "", "", fmt.Errorf("%w (%v)", ErrNothingToPickUp, asked)
	}
	return "", "", ErrNothingToPickUp
}

// pullSession pulls one session from another device of the phone's user
// onto the phone (the device endpoint is A in the P2P handoff, the
// phone's SIP leg the call's audio): the pickup code's and Replaces' common
// end. A failed pull leaves the call where it was (the handoff rolls
// back).
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

// takeCall takes the call t names onto the phone, answering the phone
// first (docs/transfers.md, "Answered before the pull"): A streams the
// phone's audio to C from step 4 of the handoff, and a phone sends RTP
// only once it has its 200 OK, so a phone answered after the pull left C
// (a trunk: the PSTN caller) the pull's time plus the leg's prebuffer in
// silence (docs/benchmarks.md §23). So: find the call (nothing to take is
// still a final response), answer (answer sends the 200 with our SDP),
// wait for the phone's first prebuffer of audio (bounded by
// pickupAudioWait), then pull. An error of find comes before answer (the
// caller sends it as the final response); one of the pull after it (the
// caller ends the dialog with byeWithReason).
func (g *Gateway) takeCall(ctx context.Context, t *take, b *bridge, answer func()) (endpoint.CallInfo, error) {
	from, callID, err := t.find(ctx)
	if err != nil {
		return endpoint.CallInfo{}, err
	}
	answer()
	b.leg.waitAudio(ctx, pickupAudioWait)
	if err := ctx.Err(); err != nil {
		// The phone hung up (BYE) before the pull began: nothing to undo.
		return endpoint.CallInfo{}, fmt.Errorf("pickup from %s: not started: %w", from, err)
	}
	return t.pull(ctx, b, from, callID)
}

// waitAudio waits until the leg holds its prebuffer of the phone's audio
// (the phone's first packets after its 200), at most d or until ctx ends.
// A phone whose SDP says it sends nothing is not waited for. What arrives
// after, until the pull's stream first reads it at step 4, is dropped
// then (liveStart): the call's delay stays the prebuffer's.
func (l *leg) waitAudio(ctx context.Context, d time.Duration) {
	l.mu.Lock()
	l.liveStart = true
	l.mu.Unlock()
	if l.quiet.Load() {
		return
	}
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		l.mu.Lock()
		have := len(l.fifo)
		if l.octet {
			have = len(l.octets)
		}
		full := l.codec != nil && have >= l.prebufSamples
		l.mu.Unlock()
		if full {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-deadline.C:
			return
		case <-tick.C:
		}
	}
}

// byeWithReason ends a dialog the phone's INVITE made, after its 200,
// with a BYE that says why (RFC 3326 §2: Reason: SIP ;cause=code
// ;text="..."), over the phone's flow as byeServer does: an answered
// pickup or Replaces whose pull failed, where before the answer the phone
// would have got code as the final response.
func byeWithReason(ctx context.Context, ds *sipgo.DialogServerSession, code int, text string) error {
	inv := ds.InviteRequest
	c := inv.Contact()
	if c == nil {
		return fmt.Errorf("gateway: BYE: the INVITE has no Contact")
	}
	bye := sip.NewRequest(sip.BYE, *c.Address.Clone())
	overInviteFlow(inv, bye)
	bye.AppendHeader(reasonHeader(code, text))
	return ds.WriteBye(ctx, bye)
}

// reasonHeader is an RFC 3326 Reason header for a SIP status code:
// protocol SIP, cause the code, text a quoted-string (RFC 3261 §25.1:
// '"' and '\' escaped as quoted-pairs, control characters left out).
func reasonHeader(code int, text string) sip.Header {
	clean := strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, text)
	q := strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(clean)
	return sip.NewHeader("Reason", "SIP ;cause="+strconv.Itoa(code)+" ;text=\""+q+"\"")
}
