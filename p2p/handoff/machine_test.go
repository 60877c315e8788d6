package handoff

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestNewMachine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		role Role
		want State
	}{
		{"A starts logged out", RoleA, AIdle},
		{"B starts with the call", RoleB, BActive},
		{"C starts with its peer", RoleC, CActive},
		{"M starts in a call", RoleM, MInCall},
		{"unknown role", RoleUnknown, StateUnknown},
		{"out of range role", roleCount, StateUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := NewMachine(tt.role)
			if m.Role() != tt.role || m.State() != tt.want {
				t.Fatalf("got role %s state %s, want %s %s", m.Role(), m.State(), tt.role, tt.want)
			}
			if m.Done() {
				t.Fatal("new machine is done")
			}
		})
	}
}

func TestUnknownRoleRejectsEverything(t *testing.T) {
	t.Parallel()
	m := NewMachine(RoleUnknown)
	for e := EventUnknown; e <= eventCount; e++ {
		_, err := m.Fire(e)
		var te *TransitionError
		if !errors.As(err, &te) || te.Role != RoleUnknown || te.Event != e {
			t.Fatalf("event %s: got %v", e, err)
		}
	}
}

func TestTerminalRejectsEverything(t *testing.T) {
	t.Parallel()
	for _, r := range Roles() {
		for _, s := range States(r) {
			if !Terminal(s) {
				continue
			}
			for e := EventUnknown + 1; e < eventCount; e++ {
				m := at(t, r, s)
				if !m.Done() {
					t.Fatalf("%s: Done() is false", s)
				}
				_, err := m.Fire(e)
				if !errors.Is(err, ErrInvalidTransition) {
					t.Fatalf("%s + %s: got %v", s, e, err)
				}
				if !strings.Contains(err.Error(), "terminal") {
					t.Errorf("%s + %s: message %q does not say terminal", s, e, err)
				}
			}
		}
	}
}

func TestTransitionErrorMessage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  TransitionError
		want string
	}{
		{"missing row", TransitionError{RoleA, AIdle, EvSessionParams}, "handoff: A: no transition from AIdle on SessionParams"},
		{"terminal", TransitionError{RoleB, BReleased, EvQuery}, "handoff: B: BReleased is terminal, got Query"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.err.Error(); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestActionsAppendDoesNotWriteTable: appending to a transition's actions
// must copy rather than scribble on the machine's table.
func TestActionsAppendDoesNotWriteTable(t *testing.T) {
	t.Parallel()
	m := NewMachine(RoleB)
	tr, err := m.Fire(EvQuery)
	if err != nil {
		t.Fatal(err)
	}
	if cap(tr.Actions) != len(tr.Actions) {
		t.Fatalf("actions have spare capacity %d > %d", cap(tr.Actions), len(tr.Actions))
	}
	more := append(tr.Actions, ActEndCall)
	more[0] = ActEndCall
	tr2, err := m.Fire(EvQuery) // BOffered + Query: the same actions again
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(tr2.Actions, []Action{ActSendSessionParams}) {
		t.Fatalf("table actions now %v", tr2.Actions)
	}
}

// TestMachinesAreIndependent: two machines of one role share nothing.
func TestMachinesAreIndependent(t *testing.T) {
	t.Parallel()
	a1, a2 := NewMachine(RoleA), NewMachine(RoleA)
	if _, err := a1.Fire(EvLoginDone); err != nil {
		t.Fatal(err)
	}
	if a2.State() != AIdle {
		t.Fatalf("second machine moved to %s", a2.State())
	}
}

func TestStringsAndDescriptions(t *testing.T) {
	t.Parallel()
	names := map[string]bool{}
	check := func(kind, name, desc string) {
		t.Helper()
		if name == "" || strings.Contains(name, "(") {
			t.Errorf("%s has no name: %q", kind, name)
		}
		if desc == "" {
			t.Errorf("%s %s has no description", kind, name)
		}
		if names[kind+name] {
			t.Errorf("%s name %s used twice", kind, name)
		}
		names[kind+name] = true
	}
	for s := StateUnknown + 1; s < stateCount; s++ {
		check("state", s.String(), s.Description())
		if s.Role() == RoleUnknown {
			t.Errorf("state %s has no role", s)
		}
		if !strings.HasPrefix(s.String(), s.Role().String()) {
			t.Errorf("state %s does not carry its role's letter %s", s, s.Role())
		}
	}
	for e := EventUnknown + 1; e < eventCount; e++ {
		check("event", e.String(), e.Description())
	}
	for a := ActionUnknown + 1; a < actionCount; a++ {
		check("action", a.String(), a.Description())
	}
	for tm := TimerNone + 1; tm < timerCount; tm++ {
		check("timer", tm.String(), tm.Description())
	}
	for _, r := range Roles() {
		check("role", r.String(), r.Description())
	}
	for s := Step(1); s <= LastStep; s++ {
		check("step", s.String(), s.Description())
		if s.Title() == "" {
			t.Errorf("%s has no title", s)
		}
	}

	unknown := []struct{ got, want string }{
		{StateUnknown.String(), "Unknown"},
		{stateCount.String(), "State(" + strconv.Itoa(int(stateCount)) + ")"},
		{EventUnknown.String(), "Unknown"},
		{eventCount.String(), "Event(" + strconv.Itoa(int(eventCount)) + ")"},
		{ActionUnknown.String(), "Unknown"},
		{actionCount.String(), "Action(" + strconv.Itoa(int(actionCount)) + ")"},
		{RoleUnknown.String(), "Unknown"},
		{TimerNone.String(), "None"},
		{timerCount.String(), "Timer(" + strconv.Itoa(int(timerCount)) + ")"},
		{StepNone.String(), "none"},
		{Step(7).String(), "step 7"},
	}
	for _, u := range unknown {
		if u.got != u.want {
			t.Errorf("got %q, want %q", u.got, u.want)
		}
	}
	if StepNone.Description() != "" || Step(13).Description() != "" {
		t.Error("steps outside 1..12 have a description")
	}
}
