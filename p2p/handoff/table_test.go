package handoff

import (
	"errors"
	"slices"
	"testing"
)

// at returns a machine for r positioned in state s, so that every state can
// be probed directly.
func at(t *testing.T, r Role, s State) *Machine {
	t.Helper()
	if s.Role() != r {
		t.Fatalf("state %s is not a state of role %s", s, r)
	}
	m := NewMachine(r)
	m.state = s
	return m
}

func findRow(rows []Row, s State, e Event) (Row, bool) {
	for _, r := range rows {
		if r.From == s && r.Event == e {
			return r, true
		}
	}
	return Row{}, false
}

// TestEveryPair fires every event, including out-of-range ones, in every
// state of every role: listed pairs must reach their next state with their
// actions and step, all others must be refused with a *TransitionError that
// names the pair and leaves the machine where it was.
func TestEveryPair(t *testing.T) {
	t.Parallel()
	for _, r := range Roles() {
		t.Run(r.String(), func(t *testing.T) {
			t.Parallel()
			rows := Table(r)
			accepted := 0
			for _, s := range States(r) {
				for e := EventUnknown; e <= eventCount; e++ {
					m := at(t, r, s)
					tr, err := m.Fire(e)
					row, listed := findRow(rows, s, e)
					if listed {
						accepted++
						if err != nil {
							t.Errorf("%s + %s: unexpected error %v", s, e, err)
							continue
						}
						want := Transition{From: s, To: row.To, Event: e, Actions: row.Actions, Step: row.Step}
						if !equalTransition(tr, want) {
							t.Errorf("%s + %s: got %+v, want %+v", s, e, tr, want)
						}
						if m.State() != row.To {
							t.Errorf("%s + %s: machine in %s, want %s", s, e, m.State(), row.To)
						}
						continue
					}
					if err == nil {
						t.Errorf("%s + %s: accepted (-> %s), want ErrInvalidTransition", s, e, tr.To)
						continue
					}
					if !errors.Is(err, ErrInvalidTransition) {
						t.Errorf("%s + %s: error %v does not wrap ErrInvalidTransition", s, e, err)
					}
					var te *TransitionError
					if !errors.As(err, &te) {
						t.Errorf("%s + %s: error %T is not a *TransitionError", s, e, err)
					} else if *te != (TransitionError{Role: r, State: s, Event: e}) {
						t.Errorf("%s + %s: error fields %+v", s, e, *te)
					}
					if m.State() != s {
						t.Errorf("%s + %s: refused event moved the machine to %s", s, e, m.State())
					}
					if !equalTransition(tr, Transition{}) {
						t.Errorf("%s + %s: refused event returned transition %+v", s, e, tr)
					}
				}
			}
			if accepted != len(rows) {
				t.Errorf("%d pairs accepted, table has %d rows (duplicate or foreign rows?)", accepted, len(rows))
			}
		})
	}
}

func equalTransition(a, b Transition) bool {
	return a.From == b.From && a.To == b.To && a.Event == b.Event && a.Step == b.Step && slices.Equal(a.Actions, b.Actions)
}

func TestTablesWellFormed(t *testing.T) {
	t.Parallel()
	for _, r := range Roles() {
		t.Run(r.String(), func(t *testing.T) {
			t.Parallel()
			rows := Table(r)
			if len(rows) == 0 {
				t.Fatal("empty table")
			}
			if rows[0].From != Start(r) {
				t.Errorf("table starts in %s, want the start state %s", rows[0].From, Start(r))
			}
			seen := map[[2]uint8]bool{}
			for _, row := range rows {
				k := [2]uint8{uint8(row.From), uint8(row.Event)}
				if seen[k] {
					t.Errorf("duplicate row %s + %s", row.From, row.Event)
				}
				seen[k] = true
				if row.From.Role() != r || row.To.Role() != r {
					t.Errorf("%s + %s -> %s: state of another role", row.From, row.Event, row.To)
				}
				if Terminal(row.From) {
					t.Errorf("%s + %s: row leaves terminal state", row.From, row.Event)
				}
				if row.Event <= EventUnknown || row.Event >= eventCount {
					t.Errorf("%s: event %d out of range", row.From, row.Event)
				}
				for _, a := range row.Actions {
					if a <= ActionUnknown || a >= actionCount {
						t.Errorf("%s + %s: action %d out of range", row.From, row.Event, a)
					}
				}
				if row.Step > LastStep {
					t.Errorf("%s + %s: step %d beyond %d", row.From, row.Event, row.Step, LastStep)
				}
				if row.Note == "" {
					t.Errorf("%s + %s: no note", row.From, row.Event)
				}
			}
		})
	}
	if Table(RoleUnknown) != nil {
		t.Error("Table(RoleUnknown) is not nil")
	}
}

// TestTableIsACopy guards the "no package-level mutable state" rule: one
// caller scribbling on its table must not change anyone else's.
func TestTableIsACopy(t *testing.T) {
	t.Parallel()
	a := Table(RoleA)
	a[0].To = AFailed
	a[1].Actions[0] = ActEndCall
	b := Table(RoleA)
	if b[0].To != AWaitPresence || b[1].Actions[0] != ActSendSessionQuery {
		t.Fatal("Table returned shared rows")
	}
}

func graph(r Role) map[State][]State {
	g := map[State][]State{}
	for _, row := range Table(r) {
		g[row.From] = append(g[row.From], row.To)
	}
	return g
}

func reachable(g map[State][]State, from State) map[State]bool {
	seen := map[State]bool{from: true}
	queue := []State{from}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		for _, n := range g[s] {
			if !seen[n] {
				seen[n] = true
				queue = append(queue, n)
			}
		}
	}
	return seen
}

// TestReachability: every state is reachable from the start, and from
// every non-terminal state some terminal state is reachable, so no machine
// can be stuck for good.
func TestReachability(t *testing.T) {
	t.Parallel()
	for _, r := range Roles() {
		t.Run(r.String(), func(t *testing.T) {
			t.Parallel()
			g := graph(r)
			fromStart := reachable(g, Start(r))
			terminals := 0
			for _, s := range States(r) {
				if !fromStart[s] {
					t.Errorf("%s is unreachable from %s", s, Start(r))
				}
				if Terminal(s) {
					terminals++
					if len(g[s]) != 0 {
						t.Errorf("terminal %s has rows", s)
					}
					continue
				}
				ok := false
				for n := range reachable(g, s) {
					if Terminal(n) {
						ok = true
						break
					}
				}
				if !ok {
					t.Errorf("no terminal state reachable from %s", s)
				}
			}
			if terminals == 0 {
				t.Error("role has no terminal state")
			}
		})
	}
}

// TestTimersHaveRows: a state that runs a timer must handle its expiry,
// and Timeout is only accepted where a timer runs.
func TestTimersHaveRows(t *testing.T) {
	t.Parallel()
	for _, r := range Roles() {
		rows := Table(r)
		for _, s := range States(r) {
			_, has := findRow(rows, s, EvTimeout)
			if s.Timer() != TimerNone && !has {
				t.Errorf("%s runs timer %s but has no Timeout row", s, s.Timer())
			}
			if s.Timer() == TimerNone && has {
				t.Errorf("%s has a Timeout row but runs no timer", s)
			}
		}
	}
}

// TestQueryOnlyAfterPresence checks claim step 2: only the PresenceB row
// sends the session query, and with every PresenceB edge removed from A's
// graph nothing past waiting for presence is reachable.
func TestQueryOnlyAfterPresence(t *testing.T) {
	t.Parallel()
	rows := Table(RoleA)
	g := map[State][]State{}
	senders := 0
	for _, row := range rows {
		if slices.Contains(row.Actions, ActSendSessionQuery) {
			senders++
			if row.Event != EvPresenceB {
				t.Errorf("%s + %s sends the query without B's presence", row.From, row.Event)
			}
		}
		if row.Event != EvPresenceB {
			g[row.From] = append(g[row.From], row.To)
		}
	}
	if senders == 0 {
		t.Fatal("A never sends a session query")
	}
	// Without presence A can only wait for it or give up.
	for s := range reachable(g, Start(RoleA)) {
		if s != AIdle && s != AWaitPresence && s != AFailed {
			t.Errorf("%s reachable without PresenceB", s)
		}
	}
	for _, r := range []Role{RoleB, RoleC, RoleM} {
		for _, row := range Table(r) {
			if slices.Contains(row.Actions, ActSendSessionQuery) {
				t.Errorf("%s sends a session query in %s", r, row.From)
			}
		}
	}
}

// TestAFailureRules checks DESIGN.md §2's failure rule on A's table: once
// B may have muted, every way off the happy path tells B to resume; and
// wherever A's audio may be running, leaving for a failure stops it.
func TestAFailureRules(t *testing.T) {
	t.Parallel()
	bMayBeMuted := []State{ACheckingAudio, AReestablishing, AClosing, AAllocating, ARestarting, ANotifying, AWaitAudio}
	audioRunning := []State{AStarting, AStopping, ACheckingAudio, AReestablishing, ARestarting, ANotifying, AWaitAudio}
	failure := []State{AFailed, ARollingBack, ARolledBack, ACallEnded}
	for _, row := range Table(RoleA) {
		if !slices.Contains(failure, row.To) {
			continue
		}
		if slices.Contains(bMayBeMuted, row.From) && !slices.Contains(row.Actions, ActSendResume) {
			t.Errorf("%s + %s -> %s: B may be muted but is not told to resume", row.From, row.Event, row.To)
		}
		if slices.Contains(audioRunning, row.From) && !slices.Contains(row.Actions, ActStopAudioToC) {
			t.Errorf("%s + %s -> %s: A's audio to C keeps running", row.From, row.Event, row.To)
		}
		if row.Step != StepNone {
			t.Errorf("%s + %s -> %s: failure row claims step %d", row.From, row.Event, row.To, row.Step)
		}
	}
}

// TestCNeverDropped: a handoff never ends C's call. C ends it only when no
// peer has sent audio for its media timeout, changes peer only on a
// verified grant, and nothing anywhere sends C a termination.
func TestCNeverDropped(t *testing.T) {
	t.Parallel()
	for _, row := range Table(RoleC) {
		if row.To == CCallEnded && row.Event != EvMediaTimeout {
			t.Errorf("C ends the call on %s in %s", row.Event, row.From)
		}
		if slices.Contains(row.Actions, ActSwitchPeerToA) && row.Event != EvReestablish {
			t.Errorf("C switches to A on %s in %s", row.Event, row.From)
		}
		if row.Event == EvBadGrant && (row.To != row.From || !slices.Equal(row.Actions, []Action{ActRefuseReestablish})) {
			t.Errorf("C does more than refuse a bad grant in %s: -> %s %v", row.From, row.To, row.Actions)
		}
	}
	for _, r := range []Role{RoleA, RoleB} {
		for _, row := range Table(r) {
			if slices.Contains(row.Actions, ActEndCall) {
				t.Errorf("%s ends the call in %s + %s", r, row.From, row.Event)
			}
		}
	}
}

// TestOmittedPairsAreRefused: a pair left out on purpose (Omitted, listed
// in docs/handoff.md with why) is no row of its role's table, and the
// machine refuses it in that state.
func TestOmittedPairsAreRefused(t *testing.T) {
	t.Parallel()
	for _, o := range Omitted() {
		if o.From.Role() != o.Role || o.Why == "" {
			t.Errorf("%+v: state of another role, or no reason", o)
		}
		if _, listed := findRow(Table(o.Role), o.From, o.Event); listed {
			t.Errorf("%s + %s is omitted but is a row of %s's table", o.From, o.Event, o.Role)
		}
		if err := refusedIn(o.Role, o.From, o.Event); err == nil {
			t.Errorf("%s + %s: the machine did not refuse the omitted pair (or %s is unreachable)", o.From, o.Event, o.From)
		}
	}
}

// refusedIn drives a fresh machine of role r into from along the table's
// rows and fires ev there; it returns the machine's error.
func refusedIn(r Role, from State, ev Event) error {
	path := map[State][]Event{Start(r): nil}
	queue := []State{Start(r)}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		for _, row := range Table(r) {
			if _, seen := path[row.To]; row.From == s && !seen {
				path[row.To] = append(slices.Clone(path[s]), row.Event)
				queue = append(queue, row.To)
			}
		}
	}
	evs, ok := path[from]
	if !ok {
		return nil // unreachable: reported by the table tests
	}
	m := NewMachine(r)
	for _, e := range evs {
		if _, err := m.Fire(e); err != nil {
			return nil
		}
	}
	_, err := m.Fire(ev)
	return err
}
