package endpoint

import (
	"context"
	"time"

	"github.com/baton-voice/baton/p2p/pki"
	"github.com/baton-voice/baton/p2p/wire"
)

// IncomingCall is a call arriving at the endpoint, as Config.OnIncoming
// sees it: the invite checked (identity, buddy rule, codec, a call slot),
// Ringing sent to the caller.
type IncomingCall struct {
	// ID is the call's ID (Answer, AnswerWith, Decline, Call take it).
	ID string
	// Peer is the caller, as its certificate proves it.
	Peer pki.Identity
	// PeerGateway names the gateway bridging the caller (a SIP device),
	// "" for a P2P phone (CallInfo.PeerGateway).
	PeerGateway string
	// Number is the telephone number the caller asks a trunk device to
	// dial onward, when it does (CallOptions.Number).
	Number string
	// Codec is the codec negotiated for the call.
	Codec string
	// Time is when the call started ringing here.
	Time time.Time
}

// IncomingAction is what a Decision does with an incoming call.
type IncomingAction int

// Incoming actions.
const (
	// IncomingDefault (the zero value) does what the endpoint is
	// configured to: answer at once with AutoAnswer, else ring.
	IncomingDefault IncomingAction = iota
	// IncomingRing leaves the call ringing (even with AutoAnswer) until
	// Answer, AnswerWith or Decline, or the caller's ring timeout.
	IncomingRing
	// IncomingAnswer answers at once, with Decision.Options' audio.
	IncomingAnswer
	// IncomingDecline refuses the call with Decision.Code and Reason.
	IncomingDecline
)

func (a IncomingAction) String() string {
	switch a {
	case IncomingDefault:
		return "default"
	case IncomingRing:
		return "ring"
	case IncomingAnswer:
		return "answer"
	case IncomingDecline:
		return "decline"
	}
	return "unknown"
}

// Decision is what Config.OnIncoming makes of an incoming call.
type Decision struct {
	Action IncomingAction
	// Options are the answered call's audio (IncomingAnswer); zero = the
	// endpoint's factories.
	Options CallOptions
	// Code and Reason are what the caller is told (IncomingDecline);
	// zero = wire.CodeDeclined, "declined".
	Code   wire.ErrorCode
	Reason string
}

// decideIncoming asks Config.OnIncoming about c, a ringing incoming call
// not started yet: every event of the call comes after the handler
// returns, so a handler that attaches state to c.id misses none.
func (e *Endpoint) decideIncoming(c *call) Decision {
	if e.cfg.OnIncoming == nil {
		return Decision{}
	}
	return e.cfg.OnIncoming(IncomingCall{
		ID:          c.id,
		Peer:        c.peer,
		PeerGateway: c.info.PeerGateway,
		Number:      c.info.Number,
		Codec:       c.info.Codec,
		Time:        e.cfg.Now(),
	})
}

// actOnIncoming carries out d for c once c runs, off the accepting
// goroutine (the call's own goroutine does the work).
func (e *Endpoint) actOnIncoming(c *call, d Decision) {
	action := d.Action
	if action == IncomingDefault {
		action = IncomingRing
		if e.cfg.AutoAnswer {
			action = IncomingAnswer
		}
	}
	switch action {
	case IncomingAnswer:
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			if err := e.AnswerWith(e.ctx, c.id, d.Options); err != nil {
				c.log.Info("answer refused", "err", err)
			}
		}()
	case IncomingDecline:
		code, reason := d.Code, d.Reason
		if code == "" {
			code = wire.CodeDeclined
		}
		if reason == "" {
			reason = "declined"
		}
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			ctx, cancel := context.WithTimeout(e.ctx, sendTimeout)
			defer cancel()
			if err := e.Decline(ctx, c.id, code, reason); err != nil {
				c.log.Info("decline refused", "err", err)
			}
		}()
	}
}
