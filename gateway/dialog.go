package gateway

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/baton-voice/baton/p2p/endpoint"
	"github.com/baton-voice/baton/sipbridge/sdp"
)

// What sipgo v1.7.3 does and what is left to us (RFC 3261 §13.3.1.4,
// §17.2.1 as updated by RFC 6026 §7.1):
//   - an INVITE retransmitted with the same branch matches its server
//     transaction: before the final response the transaction resends the
//     last provisional; after a 2xx ("Accepted") it absorbs it;
//   - the 2xx to the dialog-creating INVITE is retransmitted until its ACK
//     by DialogServerSession.WriteResponse; the 2xx to a re-INVITE, sent
//     with tx.Respond, is not: reInvites.retransmit does it;
//   - a 2xx retransmitted by the phone to our INVITE is ACKed again by
//     DialogClientSession.WriteAck;
//   - an INVITE copy with a new branch (or one arriving after the
//     transaction is gone) reaches the handler as a new request: a
//     re-INVITE with the CSeq we already answered gets that 200 again
//     (reInvites), a dialog-creating INVITE of a live call is absorbed by
//     Gateway.duplicateInvite. Neither makes a second call.

// reInvites is the state of the INVITE transactions inside one bridge's
// SIP dialog (RFC 3261 §14): the SIP side's last re-INVITE with our
// answer, and whether an offer/answer exchange is in progress.
type reInvites struct {
	mu sync.Mutex
	// cseq, source and body are the SIP side's last re-INVITE we answered
	// 200: its CSeq, where it came from, our SDP answer.
	cseq   uint32
	source string
	body   []byte
	// acked is closed by the ACK of that 200 (RFC 3261 §13.3.1.4); nil
	// when no ACK is awaited.
	acked chan struct{}
	// ours is set while our own re-INVITE is outstanding (§14.1).
	ours bool
	// uas is the dialog a phone's INVITE created, learned from its ACK;
	// uac the one our INVITE created (runOutbound). One is set once the
	// dialog is confirmed.
	uas *sipgo.DialogServerSession
	uac *sipgo.DialogClientSession

	// Hold mapped both ways (hold.go in spirit, kept here with the
	// re-INVITEs it drives; guarded by mu): phoneHolds is what the
	// phone's last re-INVITE asked (a=sendonly or a=inactive), p2pHeld
	// what the P2P call was told; peerHolds is whether the P2P party
	// holds (its media-update), sipHeld what the phone was told.
	phoneHolds, p2pHeld bool
	peerHolds, sipHeld  bool
	// toP2P and toSIP serialize the work that brings the other side in
	// line, one update at a time per direction.
	toP2P, toSIP sync.Mutex
}

// Errors of Gateway.Hold.
var (
	// ErrNoSuchCall means no bridged call has that SIP Call-ID.
	ErrNoSuchCall = errors.New("gateway: no such call")
	// ErrNotConfirmed means the call's SIP dialog is not confirmed yet
	// (no ACK of its 200): there is nothing to re-INVITE.
	ErrNotConfirmed = errors.New("gateway: SIP dialog not confirmed yet")
	// ErrRequestPending means an offer/answer exchange is in progress on
	// the dialog (ours, or the phone's awaiting its ACK), or the phone
	// kept answering 491 (RFC 3261 §14.1).
	ErrRequestPending = errors.New("gateway: request pending on the SIP dialog")
	// ErrReInviteRefused means the phone answered our re-INVITE with a
	// final response other than 2xx and 491; the session is unchanged
	// (RFC 3261 §14.1).
	ErrReInviteRefused = errors.New("gateway: re-INVITE refused")
)

// inDialog is what both sipgo dialog sessions offer for requests inside
// the dialog.
type inDialog interface {
	Do(ctx context.Context, req *sip.Request) (*sip.Response, error)
	WriteRequest(req *sip.Request) error
}

// session is the confirmed dialog and its remote target (the phone's
// Contact), or nil.
func (ri *reInvites) session() (inDialog, sip.Uri) {
	switch {
	case ri.uas != nil:
		if c := ri.uas.InviteRequest.Contact(); c != nil {
			return flowDialog{ri.uas}, *c.Address.Clone()
		}
	case ri.uac != nil && ri.uac.InviteResponse != nil:
		if c := ri.uac.InviteResponse.Contact(); c != nil {
			return ri.uac, *c.Address.Clone()
		}
		return ri.uac, *ri.uac.InviteRequest.Recipient.Clone()
	}
	return nil, sip.Uri{}
}

// glareAttempts bounds our re-INVITE's retries after 491.
const glareAttempts = 3

// Hold puts the SIP side of a call on hold (hold true: a re-INVITE with
// a=sendonly, RFC 3264 §8.4) or resumes it (a=sendrecv), with the o=
// version incremented. On 491 (the phone's re-INVITE crossed ours) it
// waits as RFC 3261 §14.1 says, 2.1-4 s when the gateway owns the dialog's
// Call-ID (it sent the INVITE), 0-2 s when not, and tries again, up to
// glareAttempts times. While ours is outstanding, a re-INVITE from the
// phone gets 491.
//
// A P2P party's hold (its media-update, docs/protocol.md §17) calls it
// (onP2PHold); so can the gateway's own API users.
func (g *Gateway) Hold(ctx context.Context, sipCallID string, hold bool) error {
	g.mu.Lock()
	b := g.bridges[sipCallID]
	g.mu.Unlock()
	if b == nil {
		return fmt.Errorf("gateway: hold %s: %w", sipCallID, ErrNoSuchCall)
	}
	dir := sdp.SendRecv
	if hold {
		dir = sdp.SendOnly
	}
	for attempt := 1; ; attempt++ {
		err := g.reInvite(ctx, b, dir)
		if !errors.Is(err, errGlare) {
			return err
		}
		if attempt == glareAttempts {
			return fmt.Errorf("gateway: hold %s: %w (491 %d times)", sipCallID, ErrRequestPending, attempt)
		}
		wait := time.Duration(rand.Int64N(int64(2 * time.Second)))
		if b.dir == dirToSIP {
			wait = 2100*time.Millisecond + time.Duration(rand.Int64N(int64(1900*time.Millisecond)))
		}
		g.log.Info("re-INVITE glare: retrying", "sip_call_id", sipCallID, "after", wait, "attempt", attempt)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return fmt.Errorf("gateway: hold %s: %w", sipCallID, ctx.Err())
		case <-b.ended:
			return fmt.Errorf("gateway: hold %s: %w", sipCallID, ErrNoSuchCall)
		}
	}
}

// errGlare is a 491 to our re-INVITE (Hold retries).
var errGlare = fmt.Errorf("%w: 491", ErrRequestPending)

// reInvite sends one re-INVITE offering dir and, on 2xx, ACKs it and
// points the leg at the answer.
func (g *Gateway) reInvite(ctx context.Context, b *bridge, dir sdp.Direction) error {
	ri := &b.reinv
	ri.mu.Lock()
	if ri.ours || ri.acked != nil {
		ri.mu.Unlock()
		return fmt.Errorf("gateway: re-INVITE %s: %w", b.sipCallID, ErrRequestPending)
	}
	sess, target := ri.session()
	if sess == nil {
		ri.mu.Unlock()
		return fmt.Errorf("gateway: re-INVITE %s: %w", b.sipCallID, ErrNotConfirmed)
	}
	local := b.local()
	b.mu.Lock()
	if b.codec != "" {
		local.Codecs = []string{b.codec}
	}
	b.mu.Unlock()
	local.Direction = dir
	body, _, err := b.sdp.Offer(local)
	if err != nil {
		ri.mu.Unlock()
		return fmt.Errorf("gateway: re-INVITE %s: %w", b.sipCallID, err)
	}
	ri.ours = true
	ri.mu.Unlock()
	defer func() {
		ri.mu.Lock()
		ri.ours = false
		ri.mu.Unlock()
	}()

	req := sip.NewRequest(sip.INVITE, target)
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(body)
	res, err := sess.Do(ctx, req)
	if err != nil {
		return fmt.Errorf("gateway: re-INVITE %s: %w", b.sipCallID, err)
	}
	switch {
	case res.StatusCode == sip.StatusRequestPending:
		return errGlare
	case !res.IsSuccess():
		return fmt.Errorf("gateway: re-INVITE %s: %w: %d %s", b.sipCallID, ErrReInviteRefused, res.StatusCode, res.Reason)
	}
	// The ACK of a 2xx is the UAC core's (RFC 3261 §13.2.2.4): in the
	// dialog, with the INVITE's CSeq number.
	ackTarget := target
	if c := res.Contact(); c != nil {
		ackTarget = *c.Address.Clone()
	}
	if err := sess.WriteRequest(sip.NewRequest(sip.ACK, ackTarget)); err != nil {
		g.log.Info("ACK of our re-INVITE's 200 not sent", "sip_call_id", b.sipCallID, "err", err)
	}
	answer, err := sdp.ParseOffer(res.Body())
	if err != nil {
		return fmt.Errorf("gateway: re-INVITE %s: the answer: %w", b.sipCallID, err)
	}
	chosen, ok := firstCodec(answer)
	if !ok {
		return fmt.Errorf("gateway: re-INVITE %s: the answer: %w", b.sipCallID, sdp.ErrNoCommonCodec)
	}
	src, _ := netip.ParseAddrPort(res.Source())
	if err := b.useSDP(answer, chosen, src.Addr().Unmap()); err != nil {
		return fmt.Errorf("gateway: re-INVITE %s: %w", b.sipCallID, err)
	}
	g.log.Info("re-INVITE accepted", "sip_call_id", b.sipCallID, "offered", dir, "answered", answer.Direction, "version", b.sdp.Version())
	return nil
}

// ackTimeout is how long a 2xx waits for its ACK (64*T1, RFC 3261
// §13.3.1.4).
var ackTimeout = 64 * sip.T1

// onReInvite answers an INVITE inside one of our dialogs (hold, resume, a
// moved phone): the leg follows the new SDP; our answer keeps our codec.
// A copy of the last re-INVITE gets its 200 again; a re-INVITE while an
// exchange is in progress gets 491 (RFC 3261 §14.2).
func (g *Gateway) onReInvite(req *sip.Request, tx sip.ServerTransaction) {
	g.mu.Lock()
	b := g.bridges[req.CallID().Value()]
	g.mu.Unlock()
	if b == nil {
		respond(tx, req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist")
		return
	}
	log := g.log.With("sip_call_id", b.sipCallID)
	cseq := req.CSeq().SeqNo
	ri := &b.reinv
	ri.mu.Lock()
	defer ri.mu.Unlock()
	switch {
	case ri.body != nil && cseq == ri.cseq:
		// The same request again, with a new branch or after its
		// transaction ended: the 200 again, nothing re-negotiated.
		if req.Source() != ri.source {
			respond(tx, req, sip.StatusBadRequest, "CSeq already used")
			return
		}
		log.Debug("re-INVITE retransmitted; 200 resent", "cseq", cseq)
		_ = tx.Respond(g.reInviteOK(req, ri.body))
		return
	case ri.body != nil && cseq < ri.cseq:
		// RFC 3261 §12.2.2: a lower CSeq is out of order.
		respond(tx, req, sip.StatusInternalServerError, "CSeq out of order")
		return
	case ri.ours:
		// RFC 3261 §14.2: our own re-INVITE is in progress.
		log.Info("re-INVITE glare: ours is outstanding", "cseq", cseq)
		respond(tx, req, sip.StatusRequestPending, "Request Pending")
		return
	case ri.acked != nil:
		// The previous exchange is not over until its ACK (the UAC
		// cannot know which answer a new offer builds on: RFC 3261 §14.2,
		// RFC 5407 §3.1).
		log.Info("re-INVITE before the previous one's ACK", "cseq", cseq, "previous", ri.cseq)
		respond(tx, req, sip.StatusRequestPending, "Request Pending")
		return
	}
	offer, err := sdp.ParseOffer(req.Body())
	if err != nil {
		respond(tx, req, sip.StatusBadRequest, badSDP(err))
		return
	}
	local := b.local()
	b.mu.Lock()
	if b.codec != "" {
		local.Codecs = []string{b.codec}
	}
	b.mu.Unlock()
	body, chosen, err := b.sdp.Answer(offer, local)
	if err != nil {
		respond(tx, req, sip.StatusNotAcceptableHere, notAcceptable(err))
		return
	}
	c, _ := firstCodec(chosen)
	if err := b.useSDP(offer, c, sourceIP(req)); err != nil {
		respond(tx, req, sip.StatusNotAcceptableHere, notAcceptable(err))
		return
	}
	if ri.uas != nil {
		// Keep sipgo's idea of the remote CSeq, which BYE and ACK
		// matching use, in step.
		_ = ri.uas.ReadRequest(req, tx)
	}
	res := g.reInviteOK(req, body)
	if err := tx.Respond(res); err != nil {
		log.Info("re-INVITE answer not sent", "err", err)
		return
	}
	ri.cseq, ri.source, ri.body = cseq, req.Source(), body
	acked := make(chan struct{})
	ri.acked = acked
	log.Info("re-INVITE answered", "cseq", cseq, "direction", chosen.Direction, "version", b.sdp.Version())
	// The phone holds with a=sendonly or a=inactive (RFC 3264 §8.4) and
	// resumes with a=sendrecv or a=recvonly: the P2P party is told with a
	// media-update.
	if holds := offer.Direction == sdp.SendOnly || offer.Direction == sdp.Inactive; holds != ri.phoneHolds {
		ri.phoneHolds = holds
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			g.syncP2PHold(b)
		}()
	}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		g.retransmit(b, tx, res, acked)
	}()
}

func (g *Gateway) reInviteOK(req *sip.Request, body []byte) *sip.Response {
	res := sip.NewSDPResponseFromRequest(req, body)
	res.AppendHeader(g.contactFor(req))
	return res
}

// retransmit passes a re-INVITE's 2xx to the transport at T1, doubling to
// T2, until its ACK (RFC 3261 §13.3.1.4); without an ACK in 64*T1 the call
// ends (the UAS "SHOULD generate a BYE").
func (g *Gateway) retransmit(b *bridge, tx sip.ServerTransaction, res *sip.Response, acked chan struct{}) {
	interval := sip.T1
	timer := time.NewTimer(interval)
	defer timer.Stop()
	deadline := time.NewTimer(ackTimeout)
	defer deadline.Stop()
	for {
		select {
		case <-acked:
			return
		case <-tx.Acks():
			// An ACK sent with the INVITE's branch matched the
			// transaction instead of reaching onAck.
			b.reinv.ack(res.CSeq().SeqNo)
			return
		case <-b.ended:
			return
		case <-g.ctx.Done():
			return
		case <-deadline.C:
			g.log.Info("no ACK for our 200 to a re-INVITE; hanging up", "sip_call_id", b.sipCallID, "cseq", res.CSeq().SeqNo)
			b.hangup("no ACK for re-INVITE")
			return
		case <-timer.C:
			if err := tx.Respond(res); err != nil {
				// The transaction is gone (timer L): nothing more to send.
				return
			}
			interval = min(2*interval, sip.T2)
			timer.Reset(interval)
		}
	}
}

// ack records the ACK of the 200 to the re-INVITE with cseq; a duplicate
// or stray ACK changes nothing (RFC 3261 §17.2.1: absorbed). It reports
// whether it was the awaited one.
func (ri *reInvites) ack(cseq uint32) bool {
	ri.mu.Lock()
	defer ri.mu.Unlock()
	if ri.acked == nil || cseq != ri.cseq {
		return false
	}
	close(ri.acked)
	ri.acked = nil
	return true
}

// onAck takes the ACK of a 200 we sent: the dialog-creating INVITE's
// (sipgo's dialog, which its WriteResponse waits for) or a re-INVITE's.
// Duplicates are absorbed.
func (g *Gateway) onAck(req *sip.Request, tx sip.ServerTransaction) {
	g.mu.Lock()
	b := g.bridges[req.CallID().Value()]
	g.mu.Unlock()
	if b != nil && b.reinv.ack(req.CSeq().SeqNo) {
		return
	}
	ds, err := g.inbound.MatchDialogRequest(req)
	if err != nil {
		if b == nil {
			g.log.Debug("ack outside a dialog", "call_id", req.CallID().Value(), "err", err)
		}
		return
	}
	if err := ds.ReadAck(req, tx); err != nil {
		g.log.Debug("ack of no 200 of ours (duplicate?)", "call_id", req.CallID().Value(), "err", err)
		return
	}
	if b != nil && req.CSeq().SeqNo == ds.InviteRequest.CSeq().SeqNo {
		b.reinv.mu.Lock()
		b.reinv.uas = ds
		b.reinv.mu.Unlock()
	}
}

// duplicateInvite absorbs a dialog-creating INVITE that repeats the one of
// a live call (same Call-ID, no To tag) but did not match its transaction
// (a new branch, or after the transaction ended): once the dialog is
// confirmed, the same request from the same source gets our 200 again; any
// other gets 482 Loop Detected (RFC 3261 §8.2.2.2 merged requests). It
// reports whether it answered; a second call is never made.
func (g *Gateway) duplicateInvite(req *sip.Request, tx sip.ServerTransaction) bool {
	if to := req.To(); to == nil || to.Params.Has("tag") {
		return false
	}
	g.mu.Lock()
	b := g.bridges[req.CallID().Value()]
	g.mu.Unlock()
	if b == nil {
		return false
	}
	b.reinv.mu.Lock()
	ds := b.reinv.uas
	b.reinv.mu.Unlock()
	if ds != nil && sameInvite(ds.InviteRequest, req) && ds.LoadState() == sip.DialogStateConfirmed {
		// Confirmed (an atomic load after the 200 was stored): the 200
		// is final and no longer written.
		ok := ds.InviteResponse
		res := sip.NewResponseFromRequest(req, ok.StatusCode, ok.Reason, ok.Body())
		to := *ok.To()
		to.Params = to.Params.Clone()
		res.ReplaceHeader(&to)
		res.AppendHeader(g.contactFor(req))
		if h := ok.GetHeader("Content-Type"); h != nil {
			res.AppendHeader(sip.NewHeader("Content-Type", h.Value()))
		}
		g.log.Debug("dialog-creating INVITE repeated; 200 resent", "sip_call_id", b.sipCallID)
		_ = tx.Respond(res)
		return true
	}
	respond(tx, req, sip.StatusLoopDetected, "Loop Detected")
	return true
}

// sameInvite reports whether req repeats orig: same From tag, CSeq and
// source.
func sameInvite(orig, req *sip.Request) bool {
	ft, _ := orig.From().Params.Get("tag")
	rt, _ := req.From().Params.Get("tag")
	return ft == rt && orig.CSeq().SeqNo == req.CSeq().SeqNo && orig.Source() == req.Source()
}

// holdWorkTimeout bounds one side's catching up with the other's hold.
const holdWorkTimeout = 30 * time.Second

// syncP2PHold brings the P2P call's hold in line with what the phone
// asked, one media-update at a time, until they agree.
func (g *Gateway) syncP2PHold(b *bridge) {
	ri := &b.reinv
	ri.toP2P.Lock()
	defer ri.toP2P.Unlock()
	log := g.log.With("sip_call_id", b.sipCallID)
	for {
		ri.mu.Lock()
		want, have := ri.phoneHolds, ri.p2pHeld
		ri.mu.Unlock()
		if want == have {
			return
		}
		b.mu.Lock()
		id := b.p2pID
		b.mu.Unlock()
		ep := b.dev.endpoint()
		if ep == nil || id == "" {
			log.Info("phone's hold not passed on: no P2P call", "hold", want)
			return
		}
		ctx, cancel := context.WithTimeout(g.ctx, holdWorkTimeout)
		err := ep.Hold(ctx, id, want)
		for i := 0; i < 20 && errors.Is(err, endpoint.ErrBadState) && strings.Contains(err.Error(), "in progress"); i++ {
			// The P2P party's own update (glare) is being answered.
			time.Sleep(100 * time.Millisecond)
			err = ep.Hold(ctx, id, want)
		}
		cancel()
		if err != nil {
			log.Warn("phone's hold not passed on to the P2P party", "hold", want, "err", err)
			return
		}
		log.Info("phone's hold passed on to the P2P party", "hold", want, "p2p_call_id", id)
		ri.mu.Lock()
		ri.p2pHeld = want
		ri.mu.Unlock()
	}
}

// onP2PHold takes a call.held or call.resumed event of the device's P2P
// call: when the P2P party changed its hold (by=remote), the phone gets a
// re-INVITE (Gateway.Hold: a=sendonly, or a=sendrecv to resume).
func (g *Gateway) onP2PHold(b *bridge, ev endpoint.Event) {
	if !strings.Contains(ev.Detail, "by=remote") {
		return // the gateway's own update, made for the phone
	}
	holds := strings.Contains(ev.Detail, "held_by=remote") || strings.Contains(ev.Detail, "held_by=both")
	ri := &b.reinv
	ri.mu.Lock()
	changed := holds != ri.peerHolds
	ri.peerHolds = holds
	ri.mu.Unlock()
	if !changed {
		return
	}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		g.syncSIPHold(b)
	}()
}

// syncSIPHold brings the phone's hold in line with the P2P party's, one
// re-INVITE at a time, until they agree. A dialog not confirmed yet is
// waited for (its ACK is on its way).
func (g *Gateway) syncSIPHold(b *bridge) {
	ri := &b.reinv
	ri.toSIP.Lock()
	defer ri.toSIP.Unlock()
	log := g.log.With("sip_call_id", b.sipCallID)
	ctx, cancel := context.WithTimeout(g.ctx, holdWorkTimeout)
	defer cancel()
	for {
		ri.mu.Lock()
		want, have := ri.peerHolds, ri.sipHeld
		ri.mu.Unlock()
		if want == have {
			return
		}
		err := g.Hold(ctx, b.sipCallID, want)
		if errors.Is(err, ErrNotConfirmed) || (errors.Is(err, ErrRequestPending) && !errors.Is(err, errGlare)) {
			// The phone's exchange in progress ends with its ACK.
			select {
			case <-time.After(50 * time.Millisecond):
				continue
			case <-ctx.Done():
			case <-b.ended:
				return
			}
			err = ctx.Err()
		}
		if err != nil {
			log.Warn("P2P party's hold not passed on to the phone", "hold", want, "err", err)
			return
		}
		log.Info("P2P party's hold passed on to the phone", "hold", want)
		ri.mu.Lock()
		ri.sipHeld = want
		ri.mu.Unlock()
	}
}
