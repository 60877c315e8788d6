package endpoint

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/baton-voice/baton/p2p/audio"
	"github.com/baton-voice/baton/p2p/handoff"
	"github.com/baton-voice/baton/p2p/pki"
	"github.com/baton-voice/baton/p2p/wire"
)

// A blind transfer started by a P2P device (`baton ctl transfer ID --to
// TARGET`, issue 9 §2) is the P2P equivalent of REFER (RFC 3515): the
// transferor, which has call ID with the transferee, opens a direct
// authenticated signaling connection to the transferee and sends
// transfer-request (wire type 340). The transferee checks that the call is
// its call with the transferor, asks its handoff policy, calls the target,
// and answers transfer-result (341) once that call is active or has
// failed. On success the transferor ends the original call with an
// ordinary bye; on failure nothing changes and the transferor gets the
// reason. The request travels on a connection of its own, like a
// push-offer, rather than on the call's signaling connection: that one is
// owned by the call's goroutine, and a transfer is a request that may wait
// a whole ring timeout for its answer.

// TransferOffer is a transfer this endpoint was asked to make, as
// Config.OnTransfer sees it: call CallID's peer (From) asks it to call
// Target and take From's place.
type TransferOffer struct {
	CallID string // the call with the transferor
	From   string // the transferor, user/device, as its certificate proved
	Target string // "user" or "user/device"
	// Replaces, for an attended transfer, is the transferor's signed
	// permission to replace its call with Target (a device): the call to
	// Target must be placed with CallOptions.Replaces set to it.
	Replaces *wire.Replaces
}

// TransferInfo is how a transfer went, as the transferor sees it.
type TransferInfo struct {
	CallID string `json:"call_id"`
	Peer   string `json:"peer"` // the transferee
	Target string `json:"target"`
	// State is "done" (the transferee's call to the target is active and
	// the original call has ended) or "failed" (the call stays).
	State     string `json:"state"`
	NewCallID string `json:"new_call_id,omitempty"` // the transferee's call to the target
	// Replaces, for an attended transfer, is this device's call with the
	// target that the new call replaced (ended too when it is done).
	Replaces string `json:"replaces,omitempty"`
	Error    string `json:"error,omitempty"`
}

// transferTimeout bounds the whole transfer: the target may ring for up to
// a ring timeout, and a gateway may first wait for its SIP phone.
func (e *Endpoint) transferTimeout() time.Duration {
	return e.cfg.RingTimeout + 30*time.Second
}

// Transfer asks the far party of active call callID to call target and,
// once target answers, ends the call here (a blind transfer). It returns
// when the transferee has reported. Errors: ErrNoSuchCall, ErrBadState
// (the call is not active), ErrInvalidTarget; ErrUnreachable or ErrOffline
// when the transferee cannot be reached; ErrForbidden when the
// transferee's policy refuses, and otherwise the failure of the call to
// target (ErrUnknownPeer, ErrOffline, ErrBusy, ErrDeclined...), in a
// message that names the target. In every error the call stays as it was.
func (e *Endpoint) Transfer(ctx context.Context, callID, target string) (TransferInfo, error) {
	return e.transfer(ctx, callID, target, nil)
}

// TransferAttended joins the far parties of this device's active calls
// callID (with X, the transferee) and callID2 (with Y, the target): an
// attended transfer (RFC 5589 §7). It signs a Replaces naming callID2 for
// X, and sends X a transfer-request with it; X calls Y with
// invite-replaces, Y checks the Replaces against its call with this
// device, answers at once and ends callID2. When X reports done, callID
// ends here too. Errors are Transfer's; in every error both calls stay.
func (e *Endpoint) TransferAttended(ctx context.Context, callID, callID2 string) (TransferInfo, error) {
	c2, err := e.lookup(callID2)
	if err != nil {
		return TransferInfo{CallID: callID, State: wire.TransferFailed, Replaces: callID2}, fmt.Errorf("the call to replace: %w", err)
	}
	ci2 := c2.snapshot()
	info := TransferInfo{CallID: callID, Target: ci2.Peer, State: wire.TransferFailed, Replaces: ci2.ID}
	if callID == callID2 {
		return info, fmt.Errorf("%w: %s twice: an attended transfer joins two different calls", ErrInvalidTarget, callID)
	}
	if ci2.State != CallActive.String() {
		return info, fmt.Errorf("%w: call %s is %s; only an active call can be joined", ErrBadState, ci2.ID, ci2.State)
	}
	c, err := e.lookup(callID)
	if err != nil {
		return info, err
	}
	if c.peer == c2.peer {
		return info, fmt.Errorf("%w: calls %s and %s are both with %s", ErrInvalidTarget, callID, callID2, c.peer)
	}
	r := wire.Replaces{
		CallID:       ci2.ID,
		From:         e.id.String(),
		To:           c.peer.String(),
		Target:       c2.peer.String(),
		NotAfterUnix: e.cfg.Now().Add(e.transferTimeout()).Unix(),
		Nonce:        make([]byte, wire.ReplacesNonceLen),
	}
	if _, err := rand.Read(r.Nonce); err != nil {
		return info, fmt.Errorf("endpoint: replaces nonce: %w", err)
	}
	if r.Signature, err = e.signReplaces(&r); err != nil {
		return info, err
	}
	info, err = e.transfer(ctx, callID, c2.peer.String(), &r)
	info.Replaces = ci2.ID
	if err != nil {
		return info, err
	}
	// The target ends the replaced call itself (bye "replaced"); one that
	// does not is hung up here, so that no call is left half-joined.
	select {
	case <-c2.done:
	case <-time.After(5 * time.Second):
		hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		if err := e.Hangup(hctx, ci2.ID); err != nil && !errors.Is(err, ErrNoSuchCall) && !errors.Is(err, ErrBadState) {
			e.log.Info("attended transfer done; hanging up the replaced call failed", "call_id", ci2.ID, "err", err)
		}
		cancel()
	}
	return info, nil
}

// transfer is Transfer, attended when replaces is set.
func (e *Endpoint) transfer(ctx context.Context, callID, target string, replaces *wire.Replaces) (TransferInfo, error) {
	c, err := e.lookup(callID)
	if err != nil {
		return TransferInfo{CallID: callID, Target: target, State: wire.TransferFailed}, err
	}
	ci := c.snapshot()
	info := TransferInfo{CallID: ci.ID, Peer: ci.Peer, Target: target, State: wire.TransferFailed}
	if ci.State != CallActive.String() {
		return info, fmt.Errorf("%w: call %s is %s; only an active call can be transferred", ErrBadState, ci.ID, ci.State)
	}
	if !wire.ValidTarget(target) {
		return info, fmt.Errorf("%w: %q: want user or user/device", ErrInvalidTarget, target)
	}
	if target == ci.Peer || target == e.id.String() {
		return info, fmt.Errorf("%w: %q is a party of the call already", ErrInvalidTarget, target)
	}
	peer, addr, err := e.resolve(ci.Peer)
	if err != nil {
		return info, fmt.Errorf("endpoint: transfer %s: the transferee %s: %w", ci.ID, ci.Peer, err)
	}
	fail := func(err error) (TransferInfo, error) {
		info.Error = err.Error()
		e.log.Info("transfer failed; the call stays", "call_id", ci.ID, "target", target, "err", err)
		e.emit(Event{Type: "transfer.failed", CallID: ci.ID, Peer: ci.Peer, Detail: info.Error})
		return info, err
	}
	conn, err := e.dial(ctx, peer, addr)
	if err != nil {
		return fail(fmt.Errorf("endpoint: transfer %s: %w", ci.ID, err))
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	if err := conn.Send(&wire.TransferRequest{CallID: ci.ID, From: e.id.String(), Target: target, Replaces: replaces}, sendTimeout); err != nil {
		return fail(fmt.Errorf("%w: transfer request to %s: %w", ErrUnreachable, peer, err))
	}
	e.log.Info("transfer requested", "call_id", ci.ID, "transferee", peer.String(), "target", target)
	e.emit(Event{Type: "transfer.requested", CallID: ci.ID, Peer: ci.Peer, Detail: ci.Peer + " asked to call " + target})
	_ = conn.SetReadDeadline(time.Now().Add(e.transferTimeout()))
	m, err := conn.Recv()
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return fail(fmt.Errorf("%w: no answer from %s to the transfer: %w", ErrUnreachable, peer, err))
	}
	switch m := m.(type) {
	case *wire.Reject:
		return fail(fmt.Errorf("%w: %s refused to transfer the call to %s: %s", transferError(m.Code), peer, target, m.Reason))
	case *wire.Error:
		return fail(fmt.Errorf("endpoint: transfer to %s: %s answered %s: %s", target, peer, m.Code, m.Message))
	case *wire.TransferResult:
		if m.CallID != ci.ID {
			return fail(fmt.Errorf("endpoint: transfer: %s reported on call %s, not %s", peer, m.CallID, ci.ID))
		}
		info.NewCallID = m.NewCallID
		if m.State != wire.TransferDone {
			return fail(fmt.Errorf("%w: %s could not reach %s: %s", transferError(m.Code), peer, target, m.Reason))
		}
	default:
		return fail(fmt.Errorf("endpoint: transfer: unexpected %s from %s", m.Type(), peer))
	}
	// The transferee talks to the target now: leave (RFC 5589 §6: the
	// transferor ends its dialog once the transfer succeeded).
	hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := e.Hangup(hctx, ci.ID); err != nil && !errors.Is(err, ErrNoSuchCall) {
		e.log.Info("transfer done; hanging up the original call failed", "call_id", ci.ID, "err", err)
	}
	info.State = wire.TransferDone
	e.log.Info("transfer done", "call_id", ci.ID, "transferee", peer.String(), "target", target, "new_call_id", info.NewCallID)
	e.emit(Event{Type: "transfer.done", CallID: ci.ID, Peer: ci.Peer, Detail: ci.Peer + " is now talking to " + target})
	return info, nil
}

// transferError maps a transferee's code to the sentinel Transfer returns.
func transferError(code wire.ErrorCode) error {
	switch code {
	case wire.CodeForbidden:
		return ErrForbidden
	case wire.CodeBusy:
		return ErrBusy
	case wire.CodeDeclined, wire.CodeTimeout:
		return ErrDeclined
	case wire.CodeOffline:
		return ErrOffline
	case wire.CodeNotFound:
		return ErrUnknownPeer
	case wire.CodeUnknownCall:
		return ErrNoSuchCall
	case wire.CodeUnsupported:
		return ErrNoCodec
	}
	return ErrUnreachable
}

// transferCode maps why a transferee's call to the target failed to the
// code of its transfer-result.
func transferCode(err error) wire.ErrorCode {
	switch {
	case errors.Is(err, ErrUnknownPeer), errors.Is(err, ErrInvalidTarget):
		return wire.CodeNotFound
	case errors.Is(err, ErrOffline), errors.Is(err, ErrUnreachable):
		return wire.CodeOffline
	case errors.Is(err, ErrBusy):
		return wire.CodeBusy
	case errors.Is(err, ErrDeclined):
		return wire.CodeDeclined
	case errors.Is(err, ErrForbidden), errors.Is(err, ErrNotBuddy):
		return wire.CodeForbidden
	case errors.Is(err, ErrNoCodec):
		return wire.CodeUnsupported
	case errors.Is(err, context.DeadlineExceeded):
		return wire.CodeTimeout
	}
	return wire.CodeInternal
}

// serveTransfer is the transferee's side: a transfer-request from peer on
// wc.
func (e *Endpoint) serveTransfer(wc *wire.Conn, peer pki.Identity, m *wire.TransferRequest) {
	defer wc.Close()
	log := e.log.With("transferor", peer.String(), "call_id", m.CallID, "target", m.Target)
	reject := func(code wire.ErrorCode, reason string) {
		log.Info("transfer refused", "code", code, "reason", reason)
		e.emit(Event{Type: "transfer.refused", CallID: m.CallID, Peer: peer.String(), Detail: reason})
		_ = wc.Send(&wire.Reject{CallID: m.CallID, Code: code, Reason: wire.TrimReason(reason)}, sendTimeout)
	}
	if m.From != peer.String() {
		e.stats.rejected("transfer")
		reject(wire.CodeBadRequest, "from "+m.From+" is not the certificate's identity "+peer.String())
		return
	}
	// Only the far party of a call may transfer it, and it learns nothing
	// of calls that are not its own.
	c, err := e.lookup(m.CallID)
	if err != nil || c.peer != peer {
		e.stats.rejected("transfer")
		reject(wire.CodeUnknownCall, "no call "+m.CallID+" with "+peer.String())
		return
	}
	if ci := c.snapshot(); ci.State != CallActive.String() {
		reject(wire.CodeBusy, "call "+m.CallID+" is "+ci.State)
		return
	}
	if m.Target == e.id.String() {
		reject(wire.CodeBadRequest, "the target is the transferee itself")
		return
	}
	if m.Replaces != nil && m.Replaces.To != e.id.String() {
		reject(wire.CodeBadRequest, "the replaces is for "+m.Replaces.To+", not "+e.id.String())
		return
	}
	// The policy decides (handoff.KindTransfer): the default allows it (the
	// transferor is a party of the call); an operator's may refuse some
	// targets (a trunk: toll fraud). The transferor is told the reason:
	// it learns nothing about other sessions from it.
	d, err := e.cfg.Policy.Decide(e.ctx, handoff.Request{Kind: handoff.KindTransfer, Requester: peer.String(), Owner: e.id.String(), CallID: m.CallID, Peer: m.Target})
	if err != nil || !d.Allow {
		reason := d.Reason
		if err != nil {
			reason = err.Error()
		}
		e.stats.rejected("policy")
		reject(wire.CodeForbidden, "refused by policy: "+reason)
		return
	}
	offer := TransferOffer{CallID: m.CallID, From: peer.String(), Target: m.Target, Replaces: m.Replaces}
	log.Info("transfer requested; calling the target")
	e.emit(Event{Type: "transfer.received", CallID: m.CallID, Peer: peer.String(), Detail: "calling " + m.Target + " for " + peer.String()})
	ctx, cancel := context.WithTimeout(e.ctx, e.transferTimeout())
	defer cancel()
	// The transferor sends nothing more: its connection closing means it
	// gave up (its request timed out), and then the transfer stops, so
	// that it does not happen after the transferor was told it failed. A
	// P2P transferee hangs up its call to the target; a SIP phone that
	// was REFERred is not called back (REFER has no cancel).
	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		if _, err := wc.Recv(); err != nil {
			cancel()
		}
	}()
	defer func() { _ = wc.Close(); <-recvDone }()
	var newID string
	if e.cfg.OnTransfer != nil {
		newID, err = e.cfg.OnTransfer(ctx, offer)
	} else {
		newID, err = e.callTransferTarget(ctx, offer)
	}
	res := &wire.TransferResult{CallID: m.CallID, State: wire.TransferDone, NewCallID: newID}
	if err != nil {
		res.State, res.Code, res.Reason = wire.TransferFailed, transferCode(err), wire.TrimReason(err.Error())
		log.Info("transfer failed; the call stays", "err", err)
		e.emit(Event{Type: "transfer.failed", CallID: m.CallID, Peer: peer.String(), Detail: err.Error()})
	} else {
		log.Info("transfer done", "new_call_id", newID)
		e.emit(Event{Type: "transfer.done", CallID: m.CallID, Peer: peer.String(), Detail: "talking to " + m.Target})
	}
	if err := wc.Send(res, sendTimeout); err != nil {
		log.Info("transfer result not delivered", "err", err)
	}
	if res.State != wire.TransferDone || e.cfg.OnTransfer != nil {
		return
	}
	// The transferor hangs up on a done result; one that does not (it
	// died, or never got the result) does not keep two calls here.
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
		log.Info("the transferor did not end the original call; ending it")
		hctx, hcancel := context.WithTimeout(e.ctx, 5*time.Second)
		_ = e.Hangup(hctx, m.CallID)
		hcancel()
	case <-e.ctx.Done():
	}
}

// callTransferTarget places the transferee's call to the target, in the
// call slot the transfer lends (the original call ends when it succeeds),
// and waits until the target answers or the call fails.
func (e *Endpoint) callTransferTarget(ctx context.Context, offer TransferOffer) (string, error) {
	ci, err := e.DialWith(ctx, offer.Target, CallOptions{transfer: true, Replaces: offer.Replaces})
	if err != nil {
		return "", fmt.Errorf("call %s: %w", offer.Target, err)
	}
	for {
		now, err := e.Call(ci.ID)
		switch {
		case err != nil:
			return ci.ID, fmt.Errorf("call %s: %w", offer.Target, err)
		case now.State == CallActive.String():
			return ci.ID, nil
		case now.State == CallEnded.String():
			return ci.ID, fmt.Errorf("call %s %s: %s: %w", offer.Target, now.Result, now.EndReason, resultError(now.Result))
		}
		select {
		case <-ctx.Done():
			hctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
			_ = e.Hangup(hctx, ci.ID)
			cancel()
			return ci.ID, fmt.Errorf("call %s: no answer: %w", offer.Target, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// resultError maps how a call ended (CallInfo.Result) to a sentinel.
func resultError(result string) error {
	switch wire.ErrorCode(result) {
	case wire.CodeBusy:
		return ErrBusy
	case wire.CodeOffline:
		return ErrOffline
	case wire.CodeNotFound:
		return ErrUnknownPeer
	case wire.CodeForbidden, wire.CodeIdentityMismatch:
		return ErrForbidden
	case wire.CodeUnsupported:
		return ErrNoCodec
	case wire.CodeTimeout:
		return context.DeadlineExceeded
	}
	if result == "declined" || result == string(wire.CodeDeclined) {
		return ErrDeclined
	}
	return ErrUnreachable
}

// ErrReplaces means an attended transfer's Replaces does not let its
// caller replace the call it names (not signed by the call's peer, for
// another call or device, expired, or used before).
var ErrReplaces = errors.New("endpoint: replaces refused")

// ReplacesOffer is an attended transfer's invite as Config.OnReplaces
// sees it, once verified: caller From asks to replace call OldCallID with
// Transferor by its call NewCallID.
type ReplacesOffer struct {
	OldCallID  string // this endpoint's call with the transferor
	NewCallID  string // the call that replaces it
	From       string // the caller (the transferee), as its certificate proved
	Transferor string // the peer of OldCallID, who signed the Replaces
}

// ReplacesAnswer is how Config.OnReplaces takes an invite-replaces.
type ReplacesAnswer struct {
	// Options are what the new call is answered with.
	Options CallOptions
	// OnActive, when set, runs once the new call is active, before the
	// old call is ended.
	OnActive func()
	// OnFail, when set, runs when the new call does not become active
	// (the old call stays); exactly one of OnActive and OnFail runs.
	OnFail func()
}

// replacement is an incoming call that replaces call old once answered
// (handleInviteWith, completeReplacement).
type replacement struct {
	old     string
	started bool // handleInviteWith started the call (else it refused it)
	ReplacesAnswer
}

// serveInviteReplaces is an attended transfer's target: the transferee
// (peer) calls to replace this endpoint's call m.Replaces.CallID with the
// transferor (RFC 3891 in P2P). The Replaces must name one of this
// endpoint's active calls, with its signer as the call's peer, verify with
// the key of the certificate that peer proved when that call was set up,
// name peer as the device allowed, not be expired or replayed, and the
// policy (handoff.KindTransfer) must allow it. Then the call is answered
// at once and the old call ends; on any refusal the caller gets reject and
// the old call stays.
func (e *Endpoint) serveInviteReplaces(wc *wire.Conn, peer pki.Identity, m *wire.InviteReplaces, log *slog.Logger) {
	r := m.Replaces
	log = log.With("call_id", m.Invite.CallID, "replaces", r.CallID, "transferor", r.From)
	reject := func(code wire.ErrorCode, reason, stat string) {
		e.stats.rejected(stat)
		log.Info("invite-replaces refused; the call it names stays", "code", code, "reason", reason)
		e.emit(Event{Type: "transfer.refused", CallID: r.CallID, Peer: peer.String(), Detail: reason})
		_ = wc.Send(&wire.Reject{CallID: m.Invite.CallID, Code: code, Reason: wire.TrimReason(reason)}, sendTimeout)
		_ = wc.Close()
	}
	if m.Invite.From != peer.String() {
		reject(wire.CodeIdentityMismatch, fmt.Sprintf("invite-replaces from %q but certificate is %s", m.Invite.From, peer), "identity")
		return
	}
	// Which calls exist is told only to their own peer: a caller naming a
	// call that is not the signer's gets the answer an unknown one gets.
	old, err := e.lookup(r.CallID)
	if err != nil || old.peer.String() != r.From {
		reject(wire.CodeUnknownCall, "no call "+r.CallID+" with "+r.From+" to replace", "replaces")
		return
	}
	ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
	defer cancel()
	err = old.exec(ctx, func() error { return old.verifyReplaces(peer, &r) })
	if err != nil {
		code := wire.CodeForbidden
		if errors.Is(err, ErrBadState) {
			code = wire.CodeUnknownCall
		}
		reject(code, err.Error(), "replaces")
		return
	}
	d, err := e.cfg.Policy.Decide(e.ctx, handoff.Request{Kind: handoff.KindTransfer, Requester: r.From, Owner: e.id.String(), CallID: r.CallID, Peer: peer.String()})
	if err != nil || !d.Allow {
		reason := d.Reason
		if err != nil {
			reason = err.Error()
		}
		reject(wire.CodeForbidden, "refused by policy: "+reason, "policy")
		return
	}
	rep := &replacement{old: r.CallID}
	if e.cfg.OnReplaces != nil {
		rep.ReplacesAnswer, err = e.cfg.OnReplaces(ctx, ReplacesOffer{OldCallID: r.CallID, NewCallID: m.Invite.CallID, From: peer.String(), Transferor: r.From})
		if err != nil {
			reject(transferCode(err), err.Error(), "replaces")
			return
		}
	}
	log.Info("invite-replaces verified; answering")
	e.handleInviteWith(wc, peer, &m.Invite, log, rep)
	if !rep.started && rep.OnFail != nil {
		rep.OnFail() // refused as an invite (buddies, codec, busy...)
	}
}

// verifyReplaces checks, on the call's goroutine, that r lets caller
// replace this call: active, signed by its peer with the certificate it
// proved, for this call and this endpoint, naming caller, not expired,
// not seen before.
func (c *call) verifyReplaces(caller pki.Identity, r *wire.Replaces) error {
	if c.state != CallActive {
		return fmt.Errorf("%w: call %s is %s, not active", ErrBadState, c.id, c.state)
	}
	nonce := "replaces:" + hex.EncodeToString(r.Nonce)
	if _, seen := c.handoff().nonces[nonce]; seen {
		return fmt.Errorf("%w: replaces already used (replay)", ErrReplaces)
	}
	switch {
	case r.CallID != c.id || r.From != c.peer.String():
		return fmt.Errorf("%w: replaces is for call %s with %s", ErrReplaces, r.CallID, r.From)
	case r.Target != c.e.id.String():
		return fmt.Errorf("%w: replaces names %s as the target, this is %s", ErrReplaces, r.Target, c.e.id)
	case r.To != caller.String():
		return fmt.Errorf("%w: replaces is for %s, presented by %s", ErrReplaces, r.To, caller)
	case time.Unix(r.NotAfterUnix, 0).Before(c.e.cfg.Now()):
		return fmt.Errorf("%w: replaces expired", ErrReplaces)
	case c.peerCert == nil:
		return fmt.Errorf("%w: no certificate of %s to verify with", ErrReplaces, c.peer)
	case !verifySignature(c.peerCert.PublicKey, r.SigningBytes(), r.Signature):
		return fmt.Errorf("%w: replaces signature does not verify with %s's key", ErrReplaces, c.peer)
	}
	c.handoff().nonces[nonce] = struct{}{}
	return nil
}

// completeReplacement answers the replacing call c and, once it is
// active, ends the call it replaces (RFC 3891 §3: the target ends the
// dialog it replaced). A replacing call that does not become active
// leaves the old call as it was.
func (e *Endpoint) completeReplacement(c *call, rep *replacement) {
	active := false
	defer func() {
		if !active && rep.OnFail != nil {
			rep.OnFail()
		}
	}()
	ctx, cancel := context.WithTimeout(e.ctx, 10*time.Second)
	defer cancel()
	if err := e.AnswerWith(ctx, c.id, rep.Options); err != nil {
		c.log.Info("invite-replaces: answer failed; the old call stays", "replaces", rep.old, "err", err)
		return
	}
	for {
		ci := c.snapshot()
		switch ci.State {
		case CallActive.String():
			active = true
			if rep.OnActive != nil {
				rep.OnActive()
			}
			old, err := e.lookup(rep.old)
			if err != nil {
				return
			}
			c.log.Info("invite-replaces: active; ending the replaced call", "replaces", rep.old)
			e.emit(Event{Type: "transfer.replaced", CallID: rep.old, Peer: old.peer.String(), Detail: "replaced by call " + c.id + " with " + c.peer.String()})
			if err := old.command(ctx, cmdHangup, "replaced by call "+c.id+" with "+c.peer.String()); err != nil {
				c.log.Info("invite-replaces: ending the replaced call failed", "replaces", rep.old, "err", err)
			}
			return
		case CallEnded.String():
			c.log.Info("invite-replaces: the new call ended before it was active; the old call stays", "replaces", rep.old)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-c.done:
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// signReplaces signs r with this endpoint's key.
func (e *Endpoint) signReplaces(r *wire.Replaces) ([]byte, error) {
	digest := sha256.Sum256(r.SigningBytes())
	sig, err := ecdsa.SignASN1(rand.Reader, e.key, digest[:])
	if err != nil {
		return nil, fmt.Errorf("endpoint: sign replaces: %w", err)
	}
	return sig, nil
}

// KeepSink makes active or ringing call id leave its sink open when it
// ends: the sink's owner keeps it for another call (a gateway moving a
// trunk's SIP leg to the call a transfer placed). Errors: ErrNoSuchCall,
// ErrBadState (the call has ended).
func (e *Endpoint) KeepSink(ctx context.Context, id string) error {
	c, err := e.lookup(id)
	if err != nil {
		return err
	}
	return c.exec(ctx, func() error {
		if c.sink != nil {
			if _, ok := c.sink.(io.Closer); ok {
				c.sink = keptSink{c.sink}
			}
		}
		return nil
	})
}

// keptSink hides a sink's Close (KeepSink).
type keptSink struct{ audio.Sink }
