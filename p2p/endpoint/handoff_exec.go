package endpoint

import (
	"github.com/baton-voice/baton/p2p/handoff"
)

// transition is one event fed to a handoff machine and what the table made
// of it: the row taken (From, Event -> To, Actions) or the refusal (Err).
// Tests see every one through Config.transitionHook and check it against
// handoff.Table.
type transition struct {
	Role    handoff.Role
	From    handoff.State
	Event   handoff.Event
	To      handoff.State
	Actions []handoff.Action
	Err     error
}

// observe reports a fired event to the test hook. A refusal means the code
// and the table disagree: it is logged as an error here, once for every
// caller, and the caller fails or rolls back the handoff.
func (e *Endpoint) observe(m *handoff.Machine, from handoff.State, ev handoff.Event, tr handoff.Transition, err error) {
	if err != nil {
		e.log.Error("handoff: the table refuses this transition", "role", m.Role(), "state", from, "event", ev, "err", err)
	}
	if e.cfg.transitionHook != nil {
		e.cfg.transitionHook(transition{Role: m.Role(), From: from, Event: ev, To: tr.To, Actions: tr.Actions, Err: err})
	}
}
