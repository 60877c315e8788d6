package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/baton-voice/baton/p2p/endpoint"
	"github.com/baton-voice/baton/p2p/handoff"
)

// transferTimeout bounds how long a blind transfer's target may ring.
const transferTimeout = 30 * time.Second

// onRefer handles REFER inside a bridged call: a blind transfer (RFC
// 3515, RFC 5589 §6) of the P2P party to Refer-To. The gateway answers 202,
// places a new P2P call from the phone's device to the target (a P2P user
// or device, or a number through the dial plan), and reports progress with
// NOTIFY message/sipfrag. When the target answers, the two P2P calls are
// relayed into each other at the gateway (media stays anchored here) and
// the phone may hang up; when it does not, the final NOTIFY says why and
// the call stays with the phone. A Refer-To with Replaces is an attended
// transfer (attended.go).
func (g *Gateway) onRefer(req *sip.Request, tx sip.ServerTransaction) {
	g.mu.Lock()
	b := g.bridges[req.CallID().Value()]
	g.mu.Unlock()
	if b == nil {
		respond(tx, req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist")
		return
	}
	hs := req.GetHeaders("Refer-To")
	if len(hs) != 1 {
		respond(tx, req, sip.StatusBadRequest, "Exactly One Refer-To Required")
		return
	}
	rt, err := ParseReferTo(hs[0].Value())
	if err != nil {
		g.log.Info("bad Refer-To", "sip_call_id", b.sipCallID, "err", err)
		respond(tx, req, sip.StatusBadRequest, "Bad Refer-To")
		return
	}
	if rt.Replaces != nil {
		g.onAttendedRefer(b, rt, req, tx)
		return
	}
	b.mu.Lock()
	p2pID, answered, xfer := b.p2pID, b.answered, b.transferred
	b.mu.Unlock()
	if !answered || p2pID == "" || xfer {
		respond(tx, req, sip.StatusForbidden, "No Call To Transfer")
		return
	}
	respond(tx, req, sip.StatusAccepted, "Accepted")
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		g.runTransfer(b, p2pID, rt.User)
	}()
}

// runTransfer places the transfer's new call and reports it to the phone.
func (g *Gateway) runTransfer(b *bridge, p2pID, user string) {
	log := g.log.With("sip_call_id", b.sipCallID, "p2p_call_id", p2pID, "device", b.dev.identity(), "refer_to", user)
	notify := func(status int, reason string, final bool) {
		g.notifyRefer(b, fmt.Sprintf("SIP/2.0 %d %s", status, reason), final)
	}
	notify(sip.StatusTrying, "Trying", false)
	ep := b.dev.endpoint()
	if ep == nil {
		notify(sip.StatusTemporarilyUnavailable, "Device Offline", true)
		return
	}
	target, err := dialTarget(user)
	number := ""
	if tr, n, ok := g.dialPlan(user); ok {
		target, number, err = tr, n, nil
	}
	if err != nil {
		log.Info("transfer target unknown", "err", err)
		notify(sip.StatusNotFound, "Not Found", true)
		return
	}
	// Toll fraud: a trunk's caller is never transferred out to a trunk.
	if g.isTrunkIdentity(b.peerIdentity()) && (number != "" || g.isTrunkIdentity(target)) {
		log.Info("transfer refused: trunk to trunk", "peer", b.peerIdentity(), "target", target)
		notify(sip.StatusForbidden, "Trunk To Trunk Transfer Not Allowed", true)
		return
	}
	// The transfer policy (handoff.KindTransfer, the phone's device asking
	// for its own call): the default allows it; an operator's policy may
	// refuse some targets.
	if code, reason := g.transferAllowed(b.dev, p2pID, target, log); code != 0 {
		notify(code, reason, true)
		return
	}
	rate := 8000
	if c := b.leg.currentCodec(); c != nil {
		rate = c.Descriptor().SampleRate
	}
	toTarget, toCaller := newPipe(rate), newPipe(rate)
	ctx, cancel := context.WithTimeout(g.ctx, transferTimeout)
	defer cancel()
	call2, err := ep.DialWith(ctx, target, endpoint.CallOptions{Source: toTarget, Sink: toCaller, Number: number})
	if err != nil {
		code, reason := dialStatus(err)
		log.Info("transfer: the target could not be called", "err", err, "status", code)
		notify(code, reason, true)
		return
	}
	// Wait for the target's answer (or refusal).
	for {
		ci, err := ep.Call(call2.ID)
		if err == nil && ci.State == "active" {
			break
		}
		if err != nil || ci.State == "ended" {
			code, reason := sipStatus(ci.Result, ci.EndReason)
			log.Info("transfer: the target did not take the call", "result", ci.Result, "reason", ci.EndReason, "status", code)
			notify(code, reason, true)
			return
		}
		select {
		case <-ctx.Done():
			_ = ep.Hangup(context.Background(), call2.ID)
			notify(sip.StatusRequestTimeout, "Transfer Target Did Not Answer", true)
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
	// The target answered: relay the P2P party to it, then let the phone go.
	b.leg.relay(toCaller, toTarget)
	b.mu.Lock()
	b.transferred = true
	b.mu.Unlock()
	log.Info("transfer: the P2P party is now relayed to the target", "target_call", call2.ID)
	notify(sip.StatusOK, "OK", true)

	g.keepJoined(ep, log, p2pID, call2.ID)
}

// keepJoined watches two P2P calls of ep relayed into each other (a
// transfer): they live and die together, so when one ends the other is
// hung up.
func (g *Gateway) keepJoined(ep *endpoint.Endpoint, log *slog.Logger, id1, id2 string) {
	for {
		c1, err1 := ep.Call(id1)
		c2, err2 := ep.Call(id2)
		if err1 != nil || c1.State == "ended" || err2 != nil || c2.State == "ended" {
			hctx, hcancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = ep.Hangup(hctx, id1)
			_ = ep.Hangup(hctx, id2)
			hcancel()
			log.Info("transferred call ended")
			return
		}
		select {
		case <-g.ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// transferAllowed asks the policy whether device d may transfer its P2P
// call callID to target (a P2P user or device, or a trunk's device). It
// returns 0, or the SIP status and reason for the final NOTIFY.
func (g *Gateway) transferAllowed(d *device, callID, target string, log *slog.Logger) (int, string) {
	dec, err := g.policy().Decide(g.ctx, handoff.Request{Kind: handoff.KindTransfer, Requester: d.identity(), Owner: d.identity(), CallID: callID, Peer: target})
	if err == nil && dec.Allow {
		return 0, ""
	}
	reason := dec.Reason
	if err != nil {
		reason = err.Error()
	}
	log.Info("transfer refused by policy", "target", target, "reason", reason)
	return sip.StatusForbidden, "Transfer Refused By Policy"
}

// notifyRefer sends the phone a NOTIFY of the refer subscription (RFC 3515
// §2.4.4) with a message/sipfrag status line.
func (g *Gateway) notifyRefer(b *bridge, frag string, final bool) {
	g.hlog.referProgress(b, frag, final) // the transfer in /v1/handoffs (handofflog.go)
	b.reinv.mu.Lock()
	sess, target := b.reinv.session()
	b.reinv.mu.Unlock()
	if sess == nil {
		return
	}
	req := sip.NewRequest(sip.NOTIFY, target)
	req.AppendHeader(sip.NewHeader("Event", "refer"))
	state := "active;expires=60"
	if final {
		state = "terminated;reason=noresource"
	}
	req.AppendHeader(sip.NewHeader("Subscription-State", state))
	req.AppendHeader(sip.NewHeader("Content-Type", "message/sipfrag;version=2.0"))
	req.SetBody([]byte(frag + "\r\n"))
	ctx, cancel := context.WithTimeout(g.ctx, 5*time.Second)
	defer cancel()
	if _, err := sess.Do(ctx, req); err != nil {
		g.log.Info("NOTIFY of a transfer failed", "sip_call_id", b.sipCallID, "err", err)
	}
}

// peerIdentity is the P2P party of the bridge.
func (b *bridge) peerIdentity() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.peer
}

// isTrunkIdentity reports whether id (user/device or user) is a trunk's.
func (g *Gateway) isTrunkIdentity(id string) bool {
	for _, t := range g.trunks {
		if id == t.dev.identity() || id == t.cfg.User {
			return true
		}
	}
	return false
}
