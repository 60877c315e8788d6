package endpoint

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/baton-voice/baton/p2p/handoff"
	"github.com/baton-voice/baton/p2p/pki"
	"github.com/baton-voice/baton/p2p/wire"
)

// A push (`baton ctl push ID --to DEVICE`, issue 9 §1) is a pull run by the
// target: the device that has the call (the owner, B) sends the target a
// push-offer over direct authenticated signaling; the target checks it
// with the handoff policy exactly as it would check a pull of its own, then
// pulls the call from the owner with the ordinary twelve steps
// (docs/handoff.md). The push adds no state to the handoff table and no
// failure path of its own: a pull that fails rolls back and the call stays
// with the owner.

// PushRequest asks to send call CallID to another device of this user.
type PushRequest struct {
	CallID string `json:"-"`  // the call to push (the control API takes it from the path)
	To     string `json:"to"` // device name, or user/device of the same user
}

// PushOffer is a push this endpoint received and accepted (same user,
// allowed by Config.Policy), as Config.OnPush sees it.
type PushOffer struct {
	CallID string // the owner's call to take
	From   string // the owner, user/device, as its certificate proved
	Peer   string // the far party (C), for display; may be empty
}

// pushAnswerTimeout bounds the owner's wait for the target's answer: the
// target may ring someone (a SIP phone) for up to its ring timeout, then
// pull, which its own timers bound.
func (e *Endpoint) pushAnswerTimeout() time.Duration {
	return e.cfg.RingTimeout + 30*time.Second
}

// Push sends one of this endpoint's active calls to another device of the
// same user, which takes it with a pull. It returns when the target has
// reported its pull (the HandoffInfo, kind "push", carries the target's
// steps), or refused. Errors before the offer reached the target (no such
// call, not a device of this user, target offline or unreachable) come
// with an info without ID: nothing was attempted. Afterwards the push is
// recorded (/v1/handoffs) whatever its outcome; a refusal matches
// ErrForbidden (policy), ErrBusy or ErrDeclined (nobody answered), a pull
// that did not take the call matches ErrHandoffFailed. In every failure
// the call stays here.
func (e *Endpoint) Push(ctx context.Context, req PushRequest) (HandoffInfo, error) {
	c, err := e.lookup(req.CallID)
	if err != nil {
		return HandoffInfo{}, err
	}
	ci := c.snapshot()
	if ci.State != CallActive.String() {
		return HandoffInfo{}, fmt.Errorf("%w: call %s is %s; only an active call can be pushed", ErrBadState, ci.ID, ci.State)
	}
	to, addr, err := e.ownDevice(req.To)
	if err != nil {
		return HandoffInfo{}, fmt.Errorf("endpoint: push %s to %s: %w", ci.ID, req.To, err)
	}
	return e.pushTo(ctx, ci, to, addr)
}

// pushTo offers call ci to device to at addr (tests call it directly to
// offer a call to a device of another user, which Push refuses itself).
func (e *Endpoint) pushTo(ctx context.Context, ci CallInfo, to pki.Identity, addr netip.AddrPort) (HandoffInfo, error) {
	conn, err := e.dial(ctx, to, addr)
	if err != nil {
		return HandoffInfo{}, fmt.Errorf("endpoint: push %s: %w", ci.ID, err)
	}
	defer conn.Close()
	// A caller that gives up ends the wait; the target's pull, if it has
	// started, goes on (it is the target's handoff, with its own rollback).
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	if err := conn.Send(&wire.PushOffer{CallID: ci.ID, From: e.id.String(), Peer: ci.Peer}, sendTimeout); err != nil {
		return HandoffInfo{}, fmt.Errorf("%w: push offer to %s: %w", ErrUnreachable, to, err)
	}

	h := e.newHandoffRun("push", handoff.RoleB)
	h.set(func(i *HandoffInfo) { i.From, i.To, i.CallID, i.Peer = e.id.String(), to.String(), ci.ID, ci.Peer })
	e.log.Info("push offered", "handoff", h.info.ID, "call_id", ci.ID, "to", to.String())
	e.emit(Event{Type: "push.offered", CallID: ci.ID, Peer: to.String(), Detail: "call with " + ci.Peer + " offered to " + to.String()})
	finish := func(state string, err error) (HandoffInfo, error) {
		now := e.cfg.Now()
		h.set(func(i *HandoffInfo) {
			i.State = state
			i.Finished = &now
			if err != nil {
				i.Error = err.Error()
			}
		})
		if err != nil {
			e.log.Warn("push did not complete; the call stays here", "handoff", h.info.ID, "to", to.String(), "state", state, "err", err)
		}
		info := h.snapshot()
		e.emit(Event{Type: "push." + state, CallID: ci.ID, Peer: to.String(), Detail: info.Error})
		return info, err
	}

	deadline := time.Now().Add(e.pushAnswerTimeout())
	for {
		m, err := recvWithin(conn, time.Until(deadline))
		if err != nil {
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			return finish("failed", fmt.Errorf("%w: no answer from %s to the push: %w", ErrHandoffFailed, to, err))
		}
		switch m := m.(type) {
		case *wire.Ringing:
			e.emit(Event{Type: "push.ringing", CallID: ci.ID, Peer: to.String(), Detail: to.String() + " is ringing"})
			continue
		case *wire.Reject:
			return finish("refused", fmt.Errorf("%w: %s refused the push: %s", pushRefusal(m.Code), to, m.Reason))
		case *wire.Error:
			return finish("failed", fmt.Errorf("%w: %s: %s %s", ErrHandoffFailed, to, m.Code, m.Message))
		case *wire.PushResult:
			if m.CallID != ci.ID {
				return finish("failed", fmt.Errorf("%w: %s reported on call %s, not %s", ErrHandoffFailed, to, m.CallID, ci.ID))
			}
			h.set(func(i *HandoffInfo) {
				i.TargetHandoff = m.HandoffID
				i.NewAddress = m.NewAddress
				i.FirstAudioMS = float64(m.FirstAudioUS) / 1000
				for _, s := range m.Steps {
					d := time.Duration(s.SinceStartUS) * time.Microsecond
					i.Steps = append(i.Steps, StepInfo{Step: s.Step, Title: s.Title, At: i.Started.Add(d),
						SinceStartMS: float64(s.SinceStartUS) / 1000, Detail: s.Detail})
				}
			})
			if m.State == wire.HandoffDone {
				return finish("done", nil)
			}
			return finish(m.State, fmt.Errorf("%w: %s's pull %s %s: %s", ErrHandoffFailed, to, m.HandoffID, m.State, m.Error))
		default:
			return finish("failed", fmt.Errorf("%w: unexpected %s from %s", ErrHandoffFailed, m.Type(), to))
		}
	}
}

// pushRefusal maps a target's reject code to the sentinel Push returns.
func pushRefusal(code wire.ErrorCode) error {
	switch code {
	case wire.CodeForbidden:
		return ErrForbidden
	case wire.CodeBusy:
		return ErrBusy
	case wire.CodeDeclined, wire.CodeTimeout:
		return ErrDeclined
	case wire.CodeOffline:
		return ErrOffline
	}
	return ErrHandoffFailed
}

// pushRejectCode maps why a target did not pull to its reject code.
func pushRejectCode(err error) wire.ErrorCode {
	switch {
	case errors.Is(err, ErrForbidden), errors.Is(err, ErrNotBuddy):
		return wire.CodeForbidden
	case errors.Is(err, ErrBusy), errors.Is(err, ErrBadState):
		return wire.CodeBusy
	case errors.Is(err, ErrDeclined):
		return wire.CodeDeclined
	case errors.Is(err, ErrOffline), errors.Is(err, ErrUnreachable):
		return wire.CodeOffline
	case errors.Is(err, context.DeadlineExceeded):
		return wire.CodeTimeout
	}
	return wire.CodeInternal
}

// servePush is the target's side: a push-offer from peer on wc. The
// policy decides as for a pull this endpoint would start (requester: this
// endpoint, owner: the pusher); then the call is pulled, by Config.OnPush
// when set (a gateway rings its SIP phone first), else at once: a P2P
// device of the same user auto-accepts a push, as a person pushing a call
// to their own phone expects.
func (e *Endpoint) servePush(wc *wire.Conn, peer pki.Identity, m *wire.PushOffer) {
	defer wc.Close()
	log := e.log.With("pusher", peer.String(), "call_id", m.CallID)
	reject := func(code wire.ErrorCode, reason string) {
		e.emit(Event{Type: "push.refused", CallID: m.CallID, Peer: peer.String(), Detail: reason})
		_ = wc.Send(&wire.Reject{CallID: m.CallID, Code: code, Reason: wire.TrimReason(reason)}, sendTimeout)
	}
	if m.From != peer.String() {
		e.stats.rejected("push")
		log.Info("push refused: from does not match the certificate", "from", m.From)
		reject(wire.CodeBadRequest, "from "+m.From+" is not the certificate's identity "+peer.String())
		return
	}
	d, err := e.cfg.Policy.Decide(e.ctx, handoff.Request{Kind: handoff.KindPull, Requester: e.id.String(), Owner: peer.String(), CallID: m.CallID, Peer: m.Peer})
	if err != nil || !d.Allow {
		reason := d.Reason
		if err != nil {
			reason = err.Error()
		}
		e.stats.rejected("policy")
		log.Info("push refused by policy", "reason", reason)
		reject(wire.CodeForbidden, "refused by policy")
		return
	}
	e.mu.Lock()
	full := len(e.calls)+e.reserved >= e.cfg.MaxCalls
	e.mu.Unlock()
	if full {
		log.Info("push refused: already in a call")
		reject(wire.CodeBusy, e.id.String()+" is already in a call")
		return
	}
	log.Info("push accepted; pulling the call")
	e.emit(Event{Type: "push.received", CallID: m.CallID, Peer: peer.String(), Detail: "pulling the call with " + m.Peer + " from " + peer.String()})
	ctx, cancel := context.WithTimeout(e.ctx, e.pushAnswerTimeout())
	defer cancel()
	var info HandoffInfo
	if e.cfg.OnPush != nil {
		ringing := func() { _ = wc.Send(&wire.Ringing{CallID: m.CallID}, sendTimeout) }
		info, err = e.cfg.OnPush(ctx, PushOffer{CallID: m.CallID, From: peer.String(), Peer: m.Peer}, ringing)
	} else {
		info, err = e.Pull(ctx, PullRequest{From: peer.String(), SessionID: m.CallID})
	}
	if info.ID == "" {
		if err == nil {
			err = errors.New("no pull was made")
		}
		log.Info("push not taken", "err", err)
		reject(pushRejectCode(err), err.Error())
		return
	}
	if err := wc.Send(pushResult(m.CallID, info), sendTimeout); err != nil {
		log.Info("push result not delivered", "err", err, "state", info.State)
	}
}

// pushResult reports a finished pull to the pusher.
func pushResult(callID string, info HandoffInfo) *wire.PushResult {
	r := &wire.PushResult{CallID: callID, HandoffID: info.ID, State: info.State,
		Error: wire.TrimReason(info.Error), NewAddress: info.NewAddress,
		FirstAudioUS: int64(info.FirstAudioMS * 1000)}
	switch r.State {
	case wire.HandoffDone, wire.HandoffFailed, wire.HandoffRolledBack, wire.HandoffCallEnded:
	default:
		r.State = wire.HandoffFailed
	}
	if _, err := netip.ParseAddrPort(r.NewAddress); err != nil {
		r.NewAddress = ""
	}
	for _, s := range info.Steps {
		if len(r.Steps) == wire.MaxPushSteps || s.Step < 1 || s.Step > 12 {
			continue
		}
		r.Steps = append(r.Steps, wire.PushStep{Step: s.Step, Title: wire.TrimText(s.Title, wire.MaxStepText),
			SinceStartUS: max(int64(s.SinceStartMS*1000), 0), Detail: wire.TrimText(s.Detail, wire.MaxStepText)})
	}
	return r
}
