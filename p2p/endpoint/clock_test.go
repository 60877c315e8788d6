package endpoint

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/baton-voice/baton/p2p/handoff"
	"github.com/baton-voice/baton/p2p/wire"
)

// fakeClock is a Clock whose timers fire only when the test moves it on
// (Advance), so a test of a ten-second timer takes no ten seconds.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	timers  []*fakeTimer
	created chan time.Duration // every NewTimer's duration, for waitTimer
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Now(), created: make(chan time.Duration, 1024)}
}

type fakeTimer struct {
	c    *fakeClock
	at   time.Time
	ch   chan time.Time
	done bool // fired or stopped
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(d time.Duration) Timer {
	c.mu.Lock()
	t := &fakeTimer{c: c, at: c.now.Add(d), ch: make(chan time.Time, 1)}
	c.timers = append(c.timers, t)
	c.mu.Unlock()
	select {
	case c.created <- d:
	default:
	}
	return t
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time { return c.NewTimer(d).C() }

// Advance moves the clock on by d and fires every timer now due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	live := c.timers[:0]
	for _, t := range c.timers {
		if t.done {
			continue
		}
		if t.at.After(c.now) {
			live = append(live, t)
			continue
		}
		t.done = true
		t.ch <- c.now
	}
	c.timers = live
}

// waitTimer waits until a timer of duration d has been started.
func (c *fakeClock) waitTimer(t *testing.T, d time.Duration) {
	t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case got := <-c.created:
			if got == d {
				return
			}
		case <-deadline:
			t.Fatalf("no %s timer was started within %s", d, wait)
		}
	}
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.done
	t.done = true
	return was
}

func TestFakeClock(t *testing.T) {
	t.Parallel()
	c := newFakeClock()
	a, b := c.NewTimer(time.Second), c.NewTimer(time.Hour)
	c.Advance(999 * time.Millisecond)
	select {
	case <-a.C():
		t.Fatal("fired early")
	default:
	}
	c.Advance(time.Millisecond)
	<-a.C()
	if !b.Stop() || b.Stop() {
		t.Error("Stop of a live timer, then of a stopped one")
	}
	c.Advance(2 * time.Hour)
	select {
	case <-b.C():
		t.Fatal("a stopped timer fired")
	default:
	}
}

// TestStepSixIsAClockTimer: claim step 6 is the NoAudio timer of A's
// ACheckingAudio state, on the endpoint's clock. With NoAudio an hour
// long the pull waits at step 6 until the clock is moved on by an hour,
// then completes at once: no wall-clock hour passes.
func TestStepSixIsAClockTimer(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	bob, _, id := deskCall(t, n)
	clk := newFakeClock()
	const hour = time.Hour
	laptop := n.start("alice", "laptop", fastTimeouts, func(c *Config) {
		c.Clock = clk
		c.Timeouts.NoAudio = hour
		c.Timeouts.Guard, c.Timeouts.Offer = 3*hour, 4*hour
	})
	laptop.waitOnline(t, "alice/desk")
	type result struct {
		h   HandoffInfo
		err error
	}
	done := make(chan result, 1)
	go func() {
		h, err := laptop.Pull(context.Background(), PullRequest{From: "desk"})
		done <- result{h, err}
	}()
	clk.waitTimer(t, hour)
	select {
	case r := <-done:
		t.Fatalf("the pull went past step 6 before its timer fired: %v %+v", r.err, r.h)
	case <-time.After(100 * time.Millisecond):
	}
	start := time.Now()
	clk.Advance(hour)
	r := <-done
	if r.err != nil || r.h.State != "done" {
		t.Fatalf("pull: %v %+v", r.err, r.h)
	}
	t.Logf("pull completed %s after the clock moved on by %s", time.Since(start), hour)
	var six StepInfo
	for _, s := range r.h.Steps {
		if s.Step == 6 {
			six = s
		}
	}
	if six.Step != 6 || !contains(six.Detail, "within 1h0m0s of step 5") {
		t.Errorf("step 6: %+v", six)
	}
	stillUp(t, bob, id, "alice/laptop")
}

// TestOfferExpiresOnTheClock: B's offer timer (BOffered + Timeout, a row
// no other endpoint test reaches) runs on B's clock. A device that asked
// for the session and never came back is forgotten once the clock moves
// on by the offer time: its stop-audio is refused, and B keeps sending.
func TestOfferExpiresOnTheClock(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	clk := newFakeClock()
	bob, desk, id := deskCall(t, n, func(c *Config) {
		if c.Device == "desk" {
			c.Clock = clk
		}
	})
	tablet := n.rawLogin(t, "alice", "tablet")
	qc := n.rawQuery(t, tablet, desk)
	if _, ok := recvAny(t, qc).(*wire.SessionList); !ok {
		t.Fatal("no session list")
	}
	clk.waitTimer(t, desk.timeouts.Offer)
	clk.Advance(desk.timeouts.Offer)
	eventually(t, "the desk's offer to expire", func() bool {
		for _, tr := range n.transitions.snapshot() {
			if tr.Role == handoff.RoleB && tr.From == handoff.BOffered && tr.Event == handoff.EvTimeout && tr.To == handoff.BActive {
				return true
			}
		}
		return false
	})
	if err := qc.Send(&wire.StopAudio{CallID: id}, time.Second); err != nil {
		t.Fatal(err)
	}
	if rej, ok := recvAny(t, qc).(*wire.Reject); !ok {
		t.Fatalf("stop-audio after the offer expired: %T %+v", rej, rej)
	}
	stillUp(t, bob, id, "alice/desk")
}

// TestBRowsWithRawPullers drives B's table with two devices of alice's
// speaking the protocol by hand, B's guard on a fake clock, and checks
// that B took each row: a resume before any stop, the refusal of a second
// puller while muted, the guard, the winner's late resume, and a release
// that comes without a stop-audio.
func TestBRowsWithRawPullers(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	clk := newFakeClock()
	_, desk, id := deskCall(t, n, func(c *Config) {
		if c.Device == "desk" {
			c.Clock = clk
		}
	})
	tablet, phone := n.rawLogin(t, "alice", "tablet"), n.rawLogin(t, "alice", "phone")
	sessions := func(c *wire.Conn) int {
		t.Helper()
		l, ok := recvAny(t, c).(*wire.SessionList)
		if !ok {
			t.Fatal("no session list")
		}
		return len(l.Sessions)
	}
	send := func(c *wire.Conn, m wire.Message) {
		t.Helper()
		if err := c.Send(m, time.Second); err != nil {
			t.Fatal(err)
		}
	}
	expect := func(c *wire.Conn, want wire.Type) {
		t.Helper()
		if m := recvAny(t, c); m.Type() != want {
			t.Fatalf("got %s %+v, want %s", m.Type(), m, want)
		}
	}

	q1 := n.rawQuery(t, tablet, desk)
	if sessions(q1) != 1 {
		t.Fatal("the desk offered no session")
	}
	send(q1, &wire.Resume{CallID: id}) // gave up before stopping B
	expect(q1, wire.TypeResumeAck)

	q2 := n.rawQuery(t, tablet, desk)
	if sessions(q2) != 1 {
		t.Fatal("the desk offered no session the second time")
	}
	send(q2, &wire.StopAudio{CallID: id})
	expect(q2, wire.TypeStopAck)
	desk.next(t, "handoff.muted")

	q3 := n.rawQuery(t, phone, desk) // muted for the tablet: busy
	if got := sessions(q3); got != 0 {
		t.Fatalf("a second puller was offered %d sessions while B is muted", got)
	}

	clk.Advance(desk.timeouts.Guard)
	desk.next(t, "handoff.resumed")
	send(q2, &wire.Resume{CallID: id}) // the tablet's rollback crossed the guard
	expect(q2, wire.TypeResumeAck)

	q4 := n.rawQuery(t, phone, desk)
	if sessions(q4) != 1 {
		t.Fatal("the desk offered no session after the guard")
	}
	send(q4, &wire.Release{CallID: id}) // its stop-audio was lost
	desk.waitState(t, id, "ended")

	want := []struct {
		from handoff.State
		ev   handoff.Event
	}{
		{handoff.BOffered, handoff.EvResume},
		{handoff.BMuted, handoff.EvQuery},
		{handoff.BMuted, handoff.EvTimeout},
		{handoff.BActive, handoff.EvResume},
		{handoff.BOffered, handoff.EvRelease},
	}
	trs := n.transitions.snapshot()
	for _, w := range want {
		found := false
		for _, tr := range trs {
			found = found || (tr.Role == handoff.RoleB && tr.From == w.from && tr.Event == w.ev && tr.Err == nil)
		}
		if !found {
			t.Errorf("B never took %s + %s", w.from, w.ev)
		}
	}
}
