package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// ErrBadReferTo means a REFER's Refer-To URI does not parse, or carries a
// Replaces header that breaks RFC 3891 §6.1.
var ErrBadReferTo = errors.New("gateway: bad Refer-To")

// ReferTo is a REFER's Refer-To URI as the gateway uses it (RFC 3515
// §2.1): the user part names the target; Replaces, when the URI carries a
// "?Replaces=" header (RFC 3891 §7, RFC 5589 §7), names the dialog an
// attended transfer joins the referred party to.
type ReferTo struct {
	User     string
	Replaces *Replaces
}

// ParseReferTo parses a Refer-To value: a name-addr (<sip:...>) or a bare
// SIP URI, with at most one Replaces URI header whose value is
// percent-encoded (RFC 3261 §19.1.1: "?Replaces=id%40host%3Bto-tag%3D..").
// Other URI headers are ignored.
func ParseReferTo(v string) (ReferTo, error) {
	raw := strings.TrimSpace(v)
	if i, j := strings.IndexByte(raw, '<'), strings.LastIndexByte(raw, '>'); i >= 0 && j > i {
		raw = raw[i+1 : j]
	}
	var out ReferTo
	base, hdrs, hasHdrs := strings.Cut(raw, "?")
	if hasHdrs {
		for _, h := range strings.Split(hdrs, "&") {
			name, val, _ := strings.Cut(h, "=")
			if !strings.EqualFold(strings.TrimSpace(name), "replaces") {
				continue
			}
			if out.Replaces != nil {
				return ReferTo{}, fmt.Errorf("%w: more than one Replaces", ErrBadReferTo)
			}
			dec, err := url.PathUnescape(val)
			if err != nil {
				return ReferTo{}, fmt.Errorf("%w: Replaces %q: %v", ErrBadReferTo, val, err)
			}
			r, err := ParseReplaces(dec)
			if err != nil {
				return ReferTo{}, fmt.Errorf("%w: %w", ErrBadReferTo, err)
			}
			out.Replaces = &r
		}
	}
	var u sip.Uri
	if err := sip.ParseUri(base, &u); err != nil {
		return ReferTo{}, fmt.Errorf("%w: %q: %v", ErrBadReferTo, base, err)
	}
	if u.User == "" {
		return ReferTo{}, fmt.Errorf("%w: %q names no user", ErrBadReferTo, base)
	}
	out.User = u.User
	return out, nil
}

// dialogTags are the SIP dialog's tags as the gateway sees them: local its
// own, remote the phone's (or trunk's). Empty before the dialog is
// confirmed.
func (b *bridge) dialogTags() (local, remote string) {
	b.reinv.mu.Lock()
	defer b.reinv.mu.Unlock()
	tag := func(p sip.HeaderParams) string {
		v, _ := p.Get("tag")
		return v
	}
	switch {
	case b.reinv.uas != nil && b.reinv.uas.InviteResponse != nil:
		return tag(b.reinv.uas.InviteResponse.To().Params), tag(b.reinv.uas.InviteRequest.From().Params)
	case b.reinv.uac != nil && b.reinv.uac.InviteResponse != nil:
		return tag(b.reinv.uac.InviteRequest.From().Params), tag(b.reinv.uac.InviteResponse.To().Params)
	}
	return "", ""
}

// matches reports whether r names this bridge's SIP dialog. RFC 3891 §3:
// to-tag is compared with the local tag of the UA that receives the
// Replaces (here the gateway: it is the transfer target, too), from-tag
// with the remote one. Some phones put the two tags of their REFER's
// Replaces the other way round (their own dialog seen from their side);
// both forms name exactly one dialog, so both are accepted.
func (b *bridge) matches(r Replaces) bool {
	if b.sipCallID != r.CallID {
		return false
	}
	local, remote := b.dialogTags()
	if local == "" || remote == "" {
		return false
	}
	return (r.ToTag == local && r.FromTag == remote) || (r.ToTag == remote && r.FromTag == local)
}

// onAttendedRefer handles a REFER whose Refer-To carries Replaces: an
// attended transfer (RFC 5589 §7). The phone has this call (b1, with P2P
// party X) and the one Replaces names (b2, with P2P party Y), both through
// the gateway. The gateway is both the transferee and the transfer target,
// so instead of an INVITE with Replaces it joins X and Y itself: each P2P
// call is relayed into the other (as a blind transfer relays the referred
// party to the new call), the refer subscription's NOTIFY says 200, and
// the replaced dialog gets BYE from the gateway (RFC 3891 §3: the target
// ends the dialog it replaced); the phone ends the REFER's own dialog. A
// Replaces that names no dialog of the same SIP account, or one not
// connected to a P2P call, ends in NOTIFY 481 and both calls stay with
// the phone. Another account's dialog is 481 too: answering otherwise
// would tell a phone which dialogs other accounts have.
func (g *Gateway) onAttendedRefer(b1 *bridge, rt ReferTo, req *sip.Request, tx sip.ServerTransaction) {
	r := *rt.Replaces
	if r.CallID == b1.sipCallID {
		respond(tx, req, sip.StatusBadRequest, "Replaces Names The REFER's Own Dialog")
		return
	}
	b1.mu.Lock()
	p2pID, answered, xfer := b1.p2pID, b1.answered, b1.transferred
	b1.mu.Unlock()
	if !answered || p2pID == "" || xfer {
		respond(tx, req, sip.StatusForbidden, "No Call To Transfer")
		return
	}
	respond(tx, req, sip.StatusAccepted, "Accepted")
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		g.runAttended(b1, r)
	}()
}

// runAttended joins the two calls of an attended transfer and reports it
// to the phone (onAttendedRefer).
func (g *Gateway) runAttended(b1 *bridge, r Replaces) {
	log := g.log.With("sip_call_id", b1.sipCallID, "device", b1.dev.identity(), "replaces", r.CallID)
	notify := func(status int, reason string, final bool) {
		g.notifyRefer(b1, fmt.Sprintf("SIP/2.0 %d %s", status, reason), final)
	}
	notify(sip.StatusTrying, "Trying", false)
	g.mu.Lock()
	b2 := g.bridges[r.CallID]
	g.mu.Unlock()
	switch {
	case b2 == nil || !b2.matches(r):
		log.Info("attended transfer: no dialog matches Replaces")
		notify(sip.StatusCallTransactionDoesNotExists, "No Dialog Matches Replaces", true)
		return
	case b2.dev != b1.dev:
		// Same answer as for no dialog: see onAttendedRefer.
		log.Info("attended transfer refused: Replaces names another account's dialog", "other", b2.dev.identity())
		notify(sip.StatusCallTransactionDoesNotExists, "No Dialog Matches Replaces", true)
		return
	}
	ep := b1.dev.endpoint()
	if ep == nil {
		notify(sip.StatusTemporarilyUnavailable, "Device Offline", true)
		return
	}
	// Claim both calls at once: neither may be transferred twice (two
	// REFERs crossing, or a blind one on the other dialog).
	g.mu.Lock()
	b1.mu.Lock()
	b2.mu.Lock()
	id1, id2 := b1.p2pID, b2.p2pID
	ok := b1.answered && b2.answered && id1 != "" && id2 != "" && !b1.transferred && !b2.transferred
	if ok {
		b1.transferred, b2.transferred = true, true
	}
	b2.mu.Unlock()
	b1.mu.Unlock()
	g.mu.Unlock()
	if !ok {
		log.Info("attended transfer: the other dialog has no P2P call to join")
		notify(sip.StatusCallTransactionDoesNotExists, "No Dialog Matches Replaces", true)
		return
	}
	// Toll fraud, as for a blind REFER: two trunk calls are never joined.
	if g.isTrunkIdentity(b1.peerIdentity()) && g.isTrunkIdentity(b2.peerIdentity()) {
		b1.untransfer()
		b2.untransfer()
		log.Info("attended transfer refused: trunk to trunk", "x", b1.peerIdentity(), "y", b2.peerIdentity())
		notify(sip.StatusForbidden, "Trunk To Trunk Transfer Not Allowed", true)
		return
	}
	// The transfer policy, as for a blind REFER: the target is Y.
	if code, reason := g.transferAllowed(b1.dev, id1, b2.peerIdentity(), log); code != 0 {
		b1.untransfer()
		b2.untransfer()
		notify(code, reason, true)
		return
	}
	for _, id := range []string{id1, id2} {
		if ci, err := ep.Call(id); err != nil || ci.State != "active" {
			b1.untransfer()
			b2.untransfer()
			log.Info("attended transfer: a P2P call is not active", "p2p_call_id", id, "err", err)
			notify(sip.StatusCallTransactionDoesNotExists, "Call Ended", true)
			return
		}
	}
	rate := 8000
	if c := b1.leg.currentCodec(); c != nil {
		rate = c.Descriptor().SampleRate
	}
	// X's audio goes to Y and Y's to X; the phone hears neither any more.
	xToY, yToX := newPipe(rate), newPipe(rate)
	b1.leg.relay(yToX, xToY)
	b2.leg.relay(xToY, yToX)
	log = log.With("p2p_call_x", id1, "p2p_call_y", id2, "x", b1.peerIdentity(), "y", b2.peerIdentity())
	log.Info("attended transfer: the two P2P parties are joined")
	notify(sip.StatusOK, "OK", true)
	g.byeBridge(b2)
	g.keepJoined(ep, log, id1, id2)
}

// untransfer gives a call back to its phone after a transfer that did not
// happen.
func (b *bridge) untransfer() {
	b.mu.Lock()
	b.transferred = false
	b.mu.Unlock()
}

// byeBridge sends BYE in the bridge's SIP dialog (whichever side created
// it). Its in-dialog loop then ends the bridge; a transferred bridge
// leaves its P2P call alone (bridge.hangup).
func (g *Gateway) byeBridge(b *bridge) {
	b.reinv.mu.Lock()
	uas, uac := b.reinv.uas, b.reinv.uac
	b.reinv.mu.Unlock()
	ctx, cancel := context.WithTimeout(g.ctx, 5*time.Second)
	defer cancel()
	var err error
	switch {
	case uas != nil:
		err = uas.Bye(ctx)
	case uac != nil:
		err = uac.Bye(ctx)
	}
	if err != nil {
		g.log.Info("BYE of a transferred call failed", "sip_call_id", b.sipCallID, "err", err)
	}
}
