package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/baton-voice/baton/p2p/endpoint"
	"github.com/baton-voice/baton/sipbridge/sdp"
)

// pushRingTimeout bounds how long a pushed call rings the desk phone.
const pushRingTimeout = 30 * time.Second

// onPush takes a call another device of the user pushes to this SIP
// device (`baton ctl push ID --to desk`, issue 9 §1): the endpoint has
// accepted the offer (policy, a free slot); the phone rings, and once it
// answers the device pulls the call with the phone's SIP leg as audio, as
// the pickup code does (role A). No answer, a rejection or a failed pull
// leave the call with the pusher.
func (d *device) onPush(ctx context.Context, offer endpoint.PushOffer, ringing func()) (endpoint.HandoffInfo, error) {
	return d.g.pushToPhone(ctx, d, offer, ringing)
}

// pushToPhone rings d's registered contacts (every one; the first 2xx
// wins, the others get CANCEL, as for a P2P call to the phone), then pulls
// the pushed call onto the answering phone.
func (g *Gateway) pushToPhone(ctx context.Context, d *device, offer endpoint.PushOffer, ringing func()) (endpoint.HandoffInfo, error) {
	ep := d.waitOnline(3 * time.Second)
	if ep == nil {
		return endpoint.HandoffInfo{}, fmt.Errorf("%w: %s is not logged in", endpoint.ErrOffline, d.identity())
	}
	log := g.log.With("device", d.identity(), "pushed_call", offer.CallID, "from", offer.From)
	contacts := g.bindings.Contacts(d.acct.SIPUser)
	if len(contacts) == 0 {
		return endpoint.HandoffInfo{}, fmt.Errorf("%w: no SIP phone registered for %s", endpoint.ErrOffline, d.identity())
	}
	b, err := newBridge(g, d, dirToSIP)
	if err != nil {
		return endpoint.HandoffInfo{}, fmt.Errorf("gateway: push to %s: %w", d.identity(), err)
	}
	b.peer = offer.Peer
	fail := func(err error) (endpoint.HandoffInfo, error) {
		_ = b.leg.Close()
		b.end(err.Error())
		log.Info("push to the SIP phone not taken; the call stays with the pusher", "err", err)
		return endpoint.HandoffInfo{}, err
	}
	dc, chosen, err := g.ringPhone(ctx, d, b, contacts, pushRingTimeout, ringing, log)
	if err != nil {
		return fail(err)
	}
	b.useDialog(dc)

	// The phone is up: take the call from the pusher with the twelve
	// steps, the phone's leg as the call's audio.
	info, err := ep.Pull(ctx, endpoint.PullRequest{From: offer.From, SessionID: offer.CallID,
		Options: endpoint.CallOptions{Source: b.leg, Sink: b.leg}})
	if err != nil {
		// The call stays with the pusher (the pull rolled back): the phone
		// that answered for nothing gets BYE.
		g.byeClient(dc)
		g.removeBridge(b)
		_ = b.leg.Close()
		b.end("push: pull failed")
		log.Info("push: pull failed; the SIP phone is hung up, the call stays with the pusher", "err", err)
		return info, err
	}
	b.mu.Lock()
	b.p2pID = info.CallID
	b.answered = true
	b.state = "active"
	b.codec = chosen.Name
	b.mu.Unlock()
	d.claim(info.CallID, b)
	log.Info("push: the SIP phone has the call", "p2p_call_id", info.CallID, "handoff", info.ID)
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		defer d.release(info.CallID)
		defer g.removeBridge(b)
		g.runPushed(b, dc)
	}()
	return info, nil
}

// runPushed carries a pushed call on the phone's dialog until one side
// ends it (carryDialog).
func (g *Gateway) runPushed(b *bridge, dc *sipgo.DialogClientSession) {
	g.carryDialog(b, dc, g.log.With("p2p_call_id", b.p2pID, "device", b.dev.identity(), "sip_call_id", b.sipCallID))
}

// ringPhone rings d's registered contacts for bridge b (every one; the
// first 2xx wins, the others get CANCEL, as for a P2P call to the phone)
// for up to ringFor, ACKs the winner and points b's leg at its answer.
// ringing, when set, is called once on the first 180 or 183. On error
// nothing of the dialogs is left (b's leg is the caller's to close).
func (g *Gateway) ringPhone(ctx context.Context, d *device, b *bridge, contacts []string, ringFor time.Duration, ringing func(), log *slog.Logger) (*sipgo.DialogClientSession, sdp.Codec, error) {
	if ringing == nil {
		ringing = func() {}
	}
	body, _, err := b.sdp.Offer(b.local())
	if err != nil {
		return nil, sdp.Codec{}, fmt.Errorf("gateway: SDP offer: %w", err)
	}

	ringCtx, stopRinging := context.WithTimeout(ctx, ringFor)
	defer stopRinging()
	results := make(chan *fork, len(contacts))
	var forks []*fork
	var ringOnce sync.Once
	var callIDs []string
	defer func() {
		g.mu.Lock()
		for _, id := range callIDs {
			if g.bridges[id] == b && id != b.sipCallID {
				delete(g.bridges, id)
			}
		}
		g.mu.Unlock()
	}()
	for _, c := range contacts {
		var uri sip.Uri
		if err := sip.ParseUri(c, &uri); err != nil {
			continue
		}
		req := sip.NewRequest(sip.INVITE, uri)
		req.SetBody(body)
		req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		from := &sip.FromHeader{DisplayName: b.peer, Address: sip.Uri{Scheme: "sip", User: sipUser(b.peer), Host: g.contact.Address.Host, Port: g.contact.Address.Port}, Params: sip.NewParams()}
		from.Params.Add("tag", sip.GenerateTagN(16))
		req.AppendHeader(from)
		req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: d.acct.SIPUser, Host: g.contact.Address.Host, Port: g.contact.Address.Port}, Params: sip.NewParams()})
		req.AppendHeader(sip.NewHeader("P-Asserted-Identity", fmt.Sprintf("\"%s\" <sip:%s@%s>", b.peer, sipUser(b.peer), g.contact.Address.Host)))
		reused := g.routeToPhone(d.acct.SIPUser, c, req) // flow.go
		dc, err := g.outbound.WriteInvite(g.ctx, req)
		if err != nil {
			log.Info("INVITE to a contact failed", "contact", c, "err", err)
			continue
		}
		pinFlow(dc, reused)
		fctx, fcancel := context.WithCancel(ringCtx)
		defer fcancel()
		f := &fork{dc: dc, cancel: fcancel}
		forks = append(forks, f)
		id := req.CallID().Value()
		callIDs = append(callIDs, id)
		g.mu.Lock()
		g.bridges[id] = b
		g.mu.Unlock()
		go func() {
			err := dc.WaitAnswer(fctx, sipgo.AnswerOptions{OnResponse: func(res *sip.Response) error {
				if res.StatusCode == sip.StatusRinging || res.StatusCode == sip.StatusSessionInProgress {
					ringOnce.Do(ringing)
				}
				return nil
			}})
			f.err = err
			var de *sipgo.ErrDialogResponse
			if errors.As(err, &de) {
				f.code = de.Res.StatusCode
			}
			results <- f
		}()
	}
	if len(forks) == 0 {
		return nil, sdp.Codec{}, fmt.Errorf("%w: no SIP phone of %s reachable", endpoint.ErrOffline, d.identity())
	}
	log.Info("ringing the SIP phones", "contacts", len(forks))
	b.setState("ringing")
	var winner *fork
	best := 0
	for pending := len(forks); pending > 0 && winner == nil; pending-- {
		f := <-results
		if f.err == nil {
			winner = f
			continue
		}
		if f.code > 0 && (best == 0 || f.code == sip.StatusBusyHere) {
			best = f.code
		}
	}
	if winner == nil {
		switch {
		case best == sip.StatusBusyHere || best == 600:
			return nil, sdp.Codec{}, fmt.Errorf("%w: the SIP phone answered %d", endpoint.ErrBusy, best)
		case best > 0:
			return nil, sdp.Codec{}, fmt.Errorf("%w: the SIP phone answered %d", endpoint.ErrDeclined, best)
		case ctx.Err() != nil:
			return nil, sdp.Codec{}, fmt.Errorf("%w: the SIP phone was not answered before the request ended: %w", endpoint.ErrDeclined, ctx.Err())
		}
		return nil, sdp.Codec{}, fmt.Errorf("%w: the SIP phone did not answer within %s", endpoint.ErrDeclined, ringFor)
	}
	for _, f := range forks {
		if f != winner {
			f.cancel()
		}
	}
	dc := winner.dc
	b.sipCallID = dc.InviteRequest.CallID().Value()
	ackCtx, cancel := context.WithTimeout(g.ctx, 5*time.Second)
	err = dc.Ack(ackCtx)
	cancel()
	if err != nil {
		log.Warn("ACK failed", "err", err)
	}
	answer, err := sdp.ParseOffer(dc.InviteResponse.Body())
	var chosen sdp.Codec
	if err == nil {
		var ok bool
		if chosen, ok = firstCodec(answer); !ok {
			err = sdp.ErrNoCommonCodec
		}
	}
	if err == nil {
		src, _ := netip.ParseAddrPort(dc.InviteResponse.Source())
		err = b.useSDP(answer, chosen, src.Addr().Unmap())
	}
	if err != nil {
		g.byeClient(dc)
		g.removeBridge(b)
		return nil, sdp.Codec{}, fmt.Errorf("%w: the SIP phone's answer: %w", endpoint.ErrDeclined, err)
	}
	return dc, chosen, nil
}

// useDialog makes dc the bridge's dialog for in-dialog requests the gateway
// sends or answers as its UAC (re-INVITE, the NOTIFYs of a REFER the phone
// sends in it: dialog.go, refer.go), as for a call the gateway placed.
func (b *bridge) useDialog(dc *sipgo.DialogClientSession) {
	b.reinv.mu.Lock()
	b.reinv.uac = dc
	b.reinv.mu.Unlock()
}
