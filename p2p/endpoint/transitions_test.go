package endpoint

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/baton-voice/baton/p2p/handoff"
)

// transitionLog records every event the endpoints of one test network feed
// to their handoff machines (Config.transitionHook). When the test ends it
// checks each against handoff.Table: a transition the endpoint made is a
// row of its role's table, with that row's actions, and no event was
// refused (a refusal means the code fired an event the table does not
// have in that state). Every test that starts parties through newNetwork
// is checked: pulls, pushes, rebinds and the failure tests.
type transitionLog struct {
	mu  sync.Mutex
	all []transition
}

func (l *transitionLog) record(tr transition) {
	l.mu.Lock()
	l.all = append(l.all, tr)
	l.mu.Unlock()
	packageRows.add(tr)
}

func (l *transitionLog) snapshot() []transition {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.all)
}

// findRow returns the row of role's table for (from, ev).
func findRow(role handoff.Role, from handoff.State, ev handoff.Event) (handoff.Row, bool) {
	for _, r := range handoff.Table(role) {
		if r.From == from && r.Event == ev {
			return r, true
		}
	}
	return handoff.Row{}, false
}

// checkTransitions is the assertion: every recorded transition is a row.
// It reports through errorf (t.Errorf).
func checkTransitions(errorf func(format string, args ...any), trs []transition) {
	for _, tr := range trs {
		if tr.Err != nil {
			errorf("handoff: %s fired %s in %s and the table refused it: %v", tr.Role, tr.Event, tr.From, tr.Err)
			continue
		}
		row, ok := findRow(tr.Role, tr.From, tr.Event)
		switch {
		case !ok:
			errorf("handoff: %s made %s + %s -> %s, which is no row of its table", tr.Role, tr.From, tr.Event, tr.To)
		case row.To != tr.To || !slices.Equal(row.Actions, tr.Actions):
			errorf("handoff: %s made %s + %s -> %s %v, but the row says -> %s %v", tr.Role, tr.From, tr.Event, tr.To, tr.Actions, row.To, row.Actions)
		}
	}
}

// TestTransitionCheckFails shows the check can fail: a transition that is
// no row, one with other actions, and a refused event are each reported;
// a real row is not.
func TestTransitionCheckFails(t *testing.T) {
	t.Parallel()
	count := func(trs ...transition) int {
		n := 0
		checkTransitions(func(string, ...any) { n++ }, trs)
		return n
	}
	good := handoff.Table(handoff.RoleA)[0]
	if n := count(transition{Role: handoff.RoleA, From: good.From, Event: good.Event, To: good.To, Actions: good.Actions}); n != 0 {
		t.Errorf("a table row was reported %d times", n)
	}
	for _, tr := range []transition{
		{Role: handoff.RoleA, From: handoff.AIdle, Event: handoff.EvAudioFromC, To: handoff.ADone},
		{Role: handoff.RoleB, From: handoff.BActive, Event: handoff.EvQuery, To: handoff.BOffered, Actions: []handoff.Action{handoff.ActRefuseBusy}},
		{Role: handoff.RoleC, From: handoff.CActive, Event: handoff.EvTimeout, Err: fmt.Errorf("refused")},
	} {
		if n := count(tr); n != 1 {
			t.Errorf("%+v: %d reports, want 1", tr, n)
		}
	}
}

// TestEndpointTransitionsAreTableRows runs a pull, a rebind, a rolled-back
// pull and a refused query, and checks that the endpoints made exactly the
// rows the tables describe (the check also runs at the end of every other
// test through newNetwork). It also checks that the check saw something.
func TestEndpointTransitionsAreTableRows(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	bob, _, id := deskCall(t, n)
	laptop := n.start("alice", "laptop", fastTimeouts)
	laptop.waitOnline(t, "alice/desk")
	if h, err := laptop.Pull(context.Background(), PullRequest{From: "desk"}); err != nil || h.State != "done" {
		t.Fatalf("pull: %v %+v", err, h)
	}
	stillUp(t, bob, id, "alice/laptop")
	if h, err := laptop.Rebind(context.Background(), laptop.mediaAddr()); err != nil || h.State != "done" {
		t.Fatalf("rebind: %v %+v", err, h)
	}
	seen := map[handoff.Role]int{}
	for _, tr := range n.transitions.snapshot() {
		seen[tr.Role]++
	}
	if seen[handoff.RoleA] < 12 || seen[handoff.RoleB] < 3 || seen[handoff.RoleC] < 3 || seen[handoff.RoleM] < 6 {
		t.Errorf("too few transitions recorded: %v", seen)
	}
	checkTransitions(t.Errorf, n.transitions.snapshot())
}

// packageRows counts, over the whole package run, how often each row of
// each table was taken; TestMain fails a full run of the package (no -run,
// -skip, -list or -short) in which some row was reached by no test, so
// the tables and the tests cannot drift apart: a row needs a test through
// the real endpoint, or it goes (handoff.Omitted says why a pair is not a
// row).
var packageRows = &rowCounter{n: map[string]int{}}

type rowCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func rowKey(r handoff.Role, from handoff.State, ev handoff.Event) string {
	return fmt.Sprintf("%s: %s + %s", r, from, ev)
}

func (c *rowCounter) add(tr transition) {
	if tr.Err != nil {
		return
	}
	c.mu.Lock()
	c.n[rowKey(tr.Role, tr.From, tr.Event)]++
	c.mu.Unlock()
}

func (c *rowCounter) unreached() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, r := range handoff.Roles() {
		for _, row := range handoff.Table(r) {
			if k := rowKey(r, row.From, row.Event); c.n[k] == 0 {
				out = append(out, k)
			}
		}
	}
	sort.Strings(out)
	return out
}

func TestMain(m *testing.M) {
	code := m.Run()
	un := packageRows.unreached()
	if testing.Verbose() && len(packageRows.n) > 0 {
		fmt.Fprintf(os.Stdout, "handoff rows reached by the endpoint tests: %d; not reached (%d): %s\n",
			len(packageRows.n), len(un), strings.Join(un, "; "))
	}
	if code == 0 && fullRun() && len(un) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: %d handoff table rows were reached by no test of p2p/endpoint: %s\n"+
			"(reach each through the real endpoint, or delete the row and say why in handoff.Omitted)\n",
			len(un), strings.Join(un, "; "))
		code = 1
	}
	os.Exit(code)
}

// fullRun reports whether every test of the package ran: no -run, -skip
// or -list filter, and not -short.
func fullRun() bool {
	for _, name := range []string{"test.run", "test.skip", "test.list"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() != "" {
			return false
		}
	}
	return !testing.Short()
}

// TestHandlersCoverTables: every action of every role's table has exactly
// one handler in the endpoint, and no handler serves an action its role's
// table never asks for.
func TestHandlersCoverTables(t *testing.T) {
	t.Parallel()
	hs := HandoffHandlers()
	for _, r := range handoff.Roles() {
		want := map[handoff.Action]bool{}
		for _, row := range handoff.Table(r) {
			for _, a := range row.Actions {
				want[a] = true
			}
		}
		for a := range want {
			if h, ok := hs[r][a]; !ok || h.Func == "" || !strings.HasPrefix(h.File, "p2p/endpoint/") {
				t.Errorf("role %s: action %s has no handler (%+v)", r, a, h)
			}
		}
		for a, h := range hs[r] {
			if !want[a] {
				t.Errorf("role %s: handler %s for %s, which its table never asks for", r, h.Func, a)
			}
		}
	}
}

// TestRowCounterReportsUnreached shows the coverage check can fail: a
// counter that saw one row of A's table reports every other row of every
// table, and not that one.
func TestRowCounterReportsUnreached(t *testing.T) {
	t.Parallel()
	c := &rowCounter{n: map[string]int{}}
	r := handoff.Table(handoff.RoleA)[0]
	c.add(transition{Role: handoff.RoleA, From: r.From, Event: r.Event, To: r.To, Actions: r.Actions})
	c.add(transition{Role: handoff.RoleB, From: handoff.BActive, Event: handoff.EvQuery, Err: fmt.Errorf("refused")})
	total := 0
	for _, role := range handoff.Roles() {
		total += len(handoff.Table(role))
	}
	un := c.unreached()
	if len(un) != total-1 || slices.Contains(un, rowKey(handoff.RoleA, r.From, r.Event)) {
		t.Errorf("%d unreached of %d rows after one was reached: %v", len(un), total, un)
	}
}
