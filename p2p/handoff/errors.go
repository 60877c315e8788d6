package handoff

import (
	"errors"
	"fmt"
)

// ErrInvalidTransition is returned (wrapped in a *TransitionError) when a
// machine gets an event its table has no row for in its current state,
// including any event in a terminal state. The machine does not move.
var ErrInvalidTransition = errors.New("handoff: invalid transition")

// ErrInvalidTimeouts is returned by Timeouts.Validate for a timeout that is
// not positive or a guard that does not outlast A's handoff window.
var ErrInvalidTimeouts = errors.New("handoff: invalid timeouts")

// TransitionError describes a rejected event. It unwraps to
// ErrInvalidTransition.
type TransitionError struct {
	Role  Role
	State State
	Event Event
}

func (e *TransitionError) Error() string {
	if Terminal(e.State) {
		return fmt.Sprintf("handoff: %s: %s is terminal, got %s", e.Role, e.State, e.Event)
	}
	return fmt.Sprintf("handoff: %s: no transition from %s on %s", e.Role, e.State, e.Event)
}

// Unwrap returns ErrInvalidTransition, for errors.Is.
func (e *TransitionError) Unwrap() error { return ErrInvalidTransition }
