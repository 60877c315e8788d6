package handoff

import (
	"slices"
	"testing"
)

type hop struct {
	event   Event
	to      State
	actions []Action
	step    Step
}

// walk fires each hop's event into a fresh machine of role r and checks
// the outcome against the hand-written expectation (not against Table, so
// an edit to the table that changes the story fails here).
func walk(t *testing.T, r Role, hops []hop) []Step {
	t.Helper()
	m := NewMachine(r)
	var steps []Step
	for i, h := range hops {
		from := m.State()
		tr, err := m.Fire(h.event)
		if err != nil {
			t.Fatalf("hop %d: %v", i, err)
		}
		if tr.From != from || tr.To != h.to || tr.Event != h.event || tr.Step != h.step || !slices.Equal(tr.Actions, h.actions) {
			t.Fatalf("hop %d (%s + %s): got -> %s %v %s, want -> %s %v %s",
				i, from, h.event, tr.To, tr.Actions, tr.Step, h.to, h.actions, h.step)
		}
		steps = append(steps, tr.Step)
	}
	return steps
}

func TestHappyPathPerRole(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		role      Role
		hops      []hop
		wantSteps []Step
		wantEnd   State
	}{
		{
			name: "A walks the twelve steps in order",
			role: RoleA,
			hops: []hop{
				{EvLoginDone, AWaitPresence, nil, 1},
				{EvPresenceB, AQuerying, []Action{ActSendSessionQuery}, 2},
				{EvSessionParams, AStarting, []Action{ActStartAudioToC}, 3},
				{EvAudioToCStarted, AStopping, []Action{ActSendStopAudio}, 4},
				{EvStopAcked, ACheckingAudio, nil, 5},
				{EvTimeout, AReestablishing, []Action{ActSendReestablish}, 6},
				{EvReestablishAccepted, AClosing, []Action{ActCloseMedia}, 7},
				{EvMediaClosed, AAllocating, []Action{ActAllocateAddress}, 8},
				{EvAddressAllocated, ARestarting, []Action{ActRestartAudio}, 9},
				{EvAudioRestarted, ANotifying, []Action{ActSendNewAddress}, 10},
				{EvNewAddressAcked, AWaitAudio, nil, 11},
				{EvAudioFromC, ADone, []Action{ActReleaseB}, 12},
			},
			wantSteps: []Step{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12},
			wantEnd:   ADone,
		},
		{
			name: "B answers, mutes, and is released silently",
			role: RoleB,
			hops: []hop{
				{EvQuery, BOffered, []Action{ActSendSessionParams}, 3},
				{EvStopAudio, BMuted, []Action{ActStopAudioToC, ActSendStopAck}, 5},
				{EvRelease, BReleased, []Action{ActReleaseCall}, 12},
			},
			wantSteps: []Step{3, 5, 12},
			wantEnd:   BReleased,
		},
		{
			name: "C overlaps, switches on the grant, and takes A's new address",
			role: RoleC,
			hops: []hop{
				{EvAudioFromA, COverlap, []Action{ActPlayA}, 4},
				{EvReestablish, CSwitched, []Action{ActSwitchPeerToA, ActAcceptReestablish}, 7},
				{EvNewAddress, CActive, []Action{ActUpdatePeerAddress, ActSendAddressAck}, 11},
			},
			wantSteps: []Step{4, 7, 11},
			wantEnd:   CActive,
		},
		{
			name: "M replays steps 8 to 12",
			role: RoleM,
			hops: []hop{
				{EvAddressChanged, MClosing, []Action{ActCloseMedia}, 0},
				{EvMediaClosed, MAllocating, []Action{ActAllocateAddress}, 8},
				{EvAddressAllocated, MRestarting, []Action{ActRestartAudio}, 9},
				{EvAudioRestarted, MNotifying, []Action{ActSendNewAddress}, 10},
				{EvNewAddressAcked, MWaitAudio, nil, 11},
				{EvAudioFromC, MInCall, nil, 12},
			},
			wantSteps: []Step{0, 8, 9, 10, 11, 12},
			wantEnd:   MInCall,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			steps := walk(t, tt.role, tt.hops)
			if !slices.Equal(steps, tt.wantSteps) {
				t.Fatalf("steps %v, want %v", steps, tt.wantSteps)
			}
			var claimed []Step
			for _, s := range steps {
				if s != StepNone {
					claimed = append(claimed, s)
				}
			}
			for i := 1; i < len(claimed); i++ {
				if claimed[i] <= claimed[i-1] {
					t.Fatalf("steps not strictly increasing: %v", claimed)
				}
			}
		})
	}
}

// TestHappyPathScript runs the script the diagram is drawn from through all
// three tables together: the parties must agree message by message, A's
// transitions must carry the step the diagram shows them under, and A
// must see steps 1..12 exactly once each, in order.
func TestHappyPathScript(t *testing.T) {
	t.Parallel()
	ms, fs, err := run(happyPath())
	if err != nil {
		t.Fatal(err)
	}
	var aSteps []Step
	i := 0
	for _, d := range happyPath() {
		if d.event == EventUnknown {
			continue
		}
		f := fs[i]
		i++
		if f.p == partyA {
			aSteps = append(aSteps, f.tr.Step)
			if f.tr.Step != d.step {
				t.Errorf("A %s: row step %d, diagram shows it under step %d", d.event, f.tr.Step, d.step)
			}
		}
	}
	if want := []Step{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}; !slices.Equal(aSteps, want) {
		t.Fatalf("A's steps %v, want %v", aSteps, want)
	}
	for p, want := range map[party]State{partyA: ADone, partyB: BReleased, partyC: CActive} {
		if got := stateOf(ms, p); got != want {
			t.Errorf("%s ends in %s, want %s", p, got, want)
		}
	}
}

// TestScenarios runs every failure path of DESIGN.md §2 (as rendered in
// docs/handoff.md) across the parties and checks where each one ends.
func TestScenarios(t *testing.T) {
	t.Parallel()
	names := map[string]bool{}
	for _, s := range scenarios() {
		if names[s.name] {
			t.Fatalf("scenario %q twice", s.name)
		}
		names[s.name] = true
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			ms, _, err := run(s.script())
			if err != nil {
				t.Fatal(err)
			}
			if len(s.end) == 0 {
				t.Fatal("scenario checks no end state")
			}
			for _, ps := range s.end {
				if got := stateOf(ms, ps.p); got != ps.s {
					t.Errorf("%s ends in %s, want %s", ps.p, got, ps.s)
				}
			}
			// C is never dropped by a handoff: only the scenario in which
			// both B and A are gone may end C's call.
			if c := stateOf(ms, partyC); c == CCallEnded && s.name != "B dies during the handoff, C refuses" {
				t.Errorf("C's call ended")
			}
		})
	}
	for _, want := range []string{
		"B unreachable or silent", "B has no active session", "B has several sessions",
		"Policy refuses", "C refuses step 7", "C does not answer step 7",
		"B dies during the handoff, C answers", "B dies during the handoff, C refuses",
		"A dies before step 7", "A dies after step 7", "Two devices pull the same call",
		"Forged or replayed grant", "Mobility",
	} {
		if !names[want] {
			t.Errorf("no scenario %q", want)
		}
	}
}

// TestTwoPullersExactlyOneWins drives one B machine with two pullers in
// both orders: whichever stop-audio comes first wins, the other is refused.
func TestTwoPullersExactlyOneWins(t *testing.T) {
	t.Parallel()
	for _, first := range []string{"A1", "A2"} {
		t.Run(first+" first", func(t *testing.T) {
			t.Parallel()
			b := NewMachine(RoleB)
			for range 2 { // both query
				if _, err := b.Fire(EvQuery); err != nil {
					t.Fatal(err)
				}
			}
			win, err := b.Fire(EvStopAudio)
			if err != nil || win.To != BMuted || !slices.Contains(win.Actions, ActSendStopAck) {
				t.Fatalf("first stop: %+v %v", win, err)
			}
			lose, err := b.Fire(EvStopAudio)
			if err != nil || lose.To != BMuted || !slices.Equal(lose.Actions, []Action{ActRefuseBusy}) {
				t.Fatalf("second stop: %+v %v", lose, err)
			}
			late, err := b.Fire(EvQuery)
			if err != nil || !slices.Equal(late.Actions, []Action{ActRefuseBusy}) {
				t.Fatalf("late query: %+v %v", late, err)
			}
		})
	}
}
