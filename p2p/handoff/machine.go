package handoff

// Transition is what one accepted event did: the machine moved From -> To
// on Event and the owner must now carry out Actions, in order. Actions is
// shared with the machine's table: read it, do not modify it.
//
// Timers follow the states (State.Timer): when To != From the owner stops
// From's timer and starts To's; a self-loop leaves the running timer alone.
type Transition struct {
	From    State
	To      State
	Event   Event
	Actions []Action
	Step    Step
}

// Machine is one role's state machine for one handoff (for B: one call,
// so it can arbitrate between pullers). It is a plain value owned by the
// goroutine that owns the call; it is not safe for concurrent use.
type Machine struct {
	role  Role
	state State
	rows  []Row
}

// NewMachine returns a machine for role r in its start state (see Start).
// A machine for an unknown role rejects every event.
func NewMachine(r Role) *Machine {
	return &Machine{role: r, state: Start(r), rows: Table(r)}
}

// Role returns the machine's role.
func (m *Machine) Role() Role { return m.role }

// State returns the current state.
func (m *Machine) State() State { return m.state }

// Done reports whether the machine reached a terminal state.
func (m *Machine) Done() bool { return Terminal(m.state) }

// Fire applies ev. If the table has a row for (State(), ev) the machine
// moves and returns the transition; otherwise it stays where it is and
// returns a *TransitionError wrapping ErrInvalidTransition. A terminal
// state has no rows, so it rejects every event.
func (m *Machine) Fire(ev Event) (Transition, error) {
	for i := range m.rows {
		r := &m.rows[i]
		if r.From != m.state || r.Event != ev {
			continue
		}
		m.state = r.To
		return Transition{
			From:  r.From,
			To:    r.To,
			Event: ev,
			// Capped so that an append by the caller copies instead of
			// writing into the table.
			Actions: r.Actions[:len(r.Actions):len(r.Actions)],
			Step:    r.Step,
		}, nil
	}
	return Transition{}, &TransitionError{Role: m.role, State: m.state, Event: ev}
}
