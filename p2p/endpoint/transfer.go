package endpoint

import (
	"context"
	"errors"
	"fmt"
	"time"

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
	Error     string `json:"error,omitempty"`
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
	c, err := e.lookup(callID)
	if err != nil {
		return TransferInfo{}, err
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
	if err := conn.Send(&wire.TransferRequest{CallID: ci.ID, From: e.id.String(), Target: target}, sendTimeout); err != nil {
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
	offer := TransferOffer{CallID: m.CallID, From: peer.String(), Target: m.Target}
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
	ci, err := e.DialWith(ctx, offer.Target, CallOptions{transfer: true})
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
