package endpoint

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/baton-voice/baton/p2p/pki"
	"github.com/baton-voice/baton/p2p/wire"
)

// ErrPushRefused means the device a call was pushed to refused to take it
// (another user, busy, or it cannot take calls that way); the call stays.
var ErrPushRefused = errors.New("endpoint: push refused")

// DefaultPushTimeout bounds how long Push waits for the target to pull
// the call (a gateway target rings its phone first).
const DefaultPushTimeout = 30 * time.Second

// pushReplyTimeout bounds the target's push-ack or refusal.
const pushReplyTimeout = 10 * time.Second

// Push sends call id to another device of this user (issue 9 §1): the
// target is asked to pull the call (wire push) and runs the ordinary pull,
// steps 1-12 with this endpoint as B, so policy, rollback and the far
// party's experience are those of a pull. Push returns the call once it has
// been handed off to the target, or an error with the call still here:
// target offline, refused, or its pull failed or did not come within
// DefaultPushTimeout (or ctx).
func (e *Endpoint) Push(ctx context.Context, id, to string) (CallInfo, error) {
	c, err := e.lookup(id)
	if err != nil {
		return CallInfo{}, err
	}
	if st := c.snapshot().State; st != CallActive.String() {
		return CallInfo{}, fmt.Errorf("%w: call %s is %s, only an active call can be pushed", ErrBadState, id, st)
	}
	peer, addr, err := e.ownDevice(to)
	if err != nil {
		return CallInfo{}, fmt.Errorf("endpoint: push %s to %s: %w", id, to, err)
	}
	conn, err := e.dial(ctx, peer, addr)
	if err != nil {
		return CallInfo{}, fmt.Errorf("endpoint: push %s to %s: %w", id, peer, err)
	}
	defer conn.Close()
	if err := conn.Send(&wire.Push{CallID: id}, sendTimeout); err != nil {
		return CallInfo{}, fmt.Errorf("%w: push %s to %s: %w", ErrUnreachable, id, peer, err)
	}
	e.log.Info("call pushed; waiting for the device to pull it", "call_id", id, "to", peer.String())
	e.emit(Event{Type: "handoff.push", CallID: id, Peer: peer.String(), Detail: "asked " + peer.String() + " to pull the call"})
	_ = conn.SetReadDeadline(time.Now().Add(pushReplyTimeout))
	m, err := conn.Recv()
	if err != nil {
		return CallInfo{}, fmt.Errorf("%w: push %s to %s: no answer: %w", ErrUnreachable, id, peer, err)
	}
	switch m := m.(type) {
	case *wire.PushAck:
	case *wire.Reject:
		return CallInfo{}, fmt.Errorf("%w: %s: %s (%s)", ErrPushRefused, peer, m.Reason, m.Code)
	case *wire.Error:
		return CallInfo{}, fmt.Errorf("%w: %s: %s (%s)", ErrPushRefused, peer, m.Message, m.Code)
	default:
		return CallInfo{}, fmt.Errorf("%w: push %s to %s: unexpected %s", ErrHandoffFailed, id, peer, m.Type())
	}
	ctx, cancel := context.WithTimeout(ctx, DefaultPushTimeout)
	defer cancel()
	want := "handed off to " + peer.String()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		ci := c.snapshot()
		if ci.State == CallEnded.String() {
			if strings.HasPrefix(ci.EndReason, want) {
				return ci, nil
			}
			return ci, fmt.Errorf("endpoint: push %s to %s: the call ended otherwise: %s", id, peer, ci.EndReason)
		}
		select {
		case <-ctx.Done():
			return ci, fmt.Errorf("endpoint: push %s to %s: %s did not take the call (%w); the call stays here", id, peer, peer, context.Cause(ctx))
		case <-tick.C:
		}
	}
}

// servePush answers a push from another device (B) of this user by
// pulling the call from it. A push from another user is refused; so is one
// while this endpoint cannot take another call. Config.OnPush, when set,
// decides instead (a gateway device rings its phone first).
func (e *Endpoint) servePush(wc *wire.Conn, peer pki.Identity, m *wire.Push) {
	defer wc.Close()
	log := e.log.With("from", peer.String(), "call_id", m.CallID)
	refuse := func(code wire.ErrorCode, reason string) {
		e.stats.rejected("push")
		log.Info("push refused", "reason", reason)
		e.emit(Event{Type: "handoff.refused", CallID: m.CallID, Peer: peer.String(), Detail: "push: " + reason})
		_ = wc.Send(&wire.Reject{CallID: m.CallID, Code: code, Reason: reason}, sendTimeout)
	}
	if peer.User != e.id.User {
		refuse(wire.CodeForbidden, "a call can be pushed only to a device of the same user")
		return
	}
	if e.cfg.OnPush != nil {
		if err := e.cfg.OnPush(peer.String(), m.CallID); err != nil {
			refuse(wire.CodeDeclined, err.Error())
			return
		}
		_ = wc.Send(&wire.PushAck{CallID: m.CallID}, sendTimeout)
		return
	}
	e.mu.Lock()
	full := len(e.calls)+e.reserved >= e.cfg.MaxCalls
	e.mu.Unlock()
	if full {
		refuse(wire.CodeBusy, e.id.String()+" is already in a call")
		return
	}
	if err := wc.Send(&wire.PushAck{CallID: m.CallID}, sendTimeout); err != nil {
		log.Info("push: the pusher went away", "err", err)
		return
	}
	log.Info("push taken: pulling the call")
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		ctx, cancel := context.WithTimeout(e.ctx, DefaultPushTimeout)
		defer cancel()
		if _, err := e.Pull(ctx, PullRequest{From: peer.String(), SessionID: m.CallID}); err != nil {
			log.Warn("push: the pull failed; the call stays with the pusher", "err", err)
		}
	}()
}
