package endpoint

// Regression tests for defects found in review: each failed before its fix.

import (
	"context"
	"testing"
	"time"

	"github.com/baton-voice/baton/p2p/handoff"
	"github.com/baton-voice/baton/p2p/wire"
)

// C unreachable at step 7: Pull returns (rolled back) instead of hanging,
// and the desk keeps the call.
func TestPullReturnsWhenCUnreachable(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	bob, desk, id := deskCall(t, n)
	bob.crash() // C's signaling listener is gone; the desk's call lives on
	laptop := n.start("alice", "laptop", fastTimeouts)
	laptop.waitOnline(t, "alice/desk")
	done := make(chan HandoffInfo, 1)
	go func() {
		h, _ := laptop.Pull(context.Background(), PullRequest{From: "desk"})
		done <- h
	}()
	select {
	case h := <-done:
		if h.State != "rolled-back" {
			t.Errorf("pull with C unreachable ended %s (%s), want rolled-back", h.State, h.Error)
		}
	case <-time.After(wait):
		t.Fatal("Pull did not return after C turned out unreachable")
	}
	if info := desk.mustCall(t, id); info.State != "active" {
		t.Errorf("desk's call %s", info.State)
	}
}

type queryOnly struct{}

func (queryOnly) Decide(_ context.Context, r handoff.Request) (handoff.Decision, error) {
	if r.Kind == handoff.KindPull {
		return handoff.Decision{Allow: false, Reason: "no pulls"}, nil
	}
	return handoff.Decision{Allow: true, Reason: "query ok"}, nil
}

// A device allowed to query but not to pull gets no session (no keys, no
// grant), and its Release is refused: the desk keeps the call.
func TestReleaseNeedsAnOfferedSession(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	bob, desk, id := deskCall(t, n, func(c *Config) {
		if c.Device == "desk" {
			c.Policy = queryOnly{}
		}
	})
	evil := n.rawLogin(t, "alice", "tablet")
	qc := n.rawQuery(t, evil, desk)
	list, ok := recvAny(t, qc).(*wire.SessionList)
	if !ok || len(list.Sessions) != 0 {
		t.Fatalf("a device refused pulls got %+v", list)
	}
	for _, m := range []wire.Message{&wire.Release{CallID: id}, &wire.Resume{CallID: id}, &wire.StopAudio{CallID: id}} {
		if err := qc.Send(m, time.Second); err != nil {
			t.Fatal(err)
		}
		if _, ok := recvAny(t, qc).(*wire.Reject); !ok {
			t.Errorf("%s from a device without an offer was not refused", m.Type())
		}
	}
	if info := desk.mustCall(t, id); info.State != "active" {
		t.Fatalf("desk's call %s (%s)", info.State, info.EndReason)
	}
	stillUp(t, bob, id, "alice/desk")
}

// A call arriving at the puller during the pull does not take the slot
// the pull reserved: the pull completes and bob stays with the laptop.
func TestPullKeepsItsSlot(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	bob, _, id := deskCall(t, n)
	carol := n.start("carol", "phone", fastTimeouts)
	var laptop *party
	laptop = n.start("alice", "laptop", fastTimeouts, func(c *Config) {
		c.stepHook = func(step int) {
			if step != 6 {
				return
			}
			out, err := carol.Dial(context.Background(), "alice/laptop")
			if err != nil {
				t.Errorf("carol dial: %v", err)
				return
			}
			if got := carol.waitState(t, out.ID, "ended"); !contains(got.EndReason, "busy") {
				t.Errorf("carol's call during the pull ended %q, want busy", got.EndReason)
			}
		}
	})
	laptop.waitOnline(t, "alice/desk")
	carol.waitOnline(t, "alice/laptop")
	h, err := laptop.Pull(context.Background(), PullRequest{From: "desk"})
	if err != nil || h.State != "done" {
		t.Fatalf("pull: %v %+v", err, h)
	}
	stillUp(t, bob, id, "alice/laptop")
}

// B muted for a puller that then goes silent, while C moves its media: the
// move must not cancel B's guard timer; B resumes by itself.
func TestGuardSurvivesPeerMove(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	clk := newFakeClock() // the desk's guard: moved on, not waited for
	bob, desk, id := deskCall(t, n, func(c *Config) {
		if c.Device == "desk" {
			c.Clock = clk
		}
	})
	evil := n.rawLogin(t, "alice", "tablet")
	qc := n.rawQuery(t, evil, desk)
	recvAny(t, qc)
	if err := qc.Send(&wire.StopAudio{CallID: id}, time.Second); err != nil {
		t.Fatal(err)
	}
	if _, ok := recvAny(t, qc).(*wire.StopAck); !ok {
		t.Fatal("no stop ack")
	}
	desk.next(t, "handoff.muted")
	go func() { _, _ = bob.Rebind(context.Background(), bob.mediaAddr()) }()
	desk.next(t, "media.peer-moved")
	clk.Advance(desk.timeouts.Guard)
	desk.next(t, "handoff.resumed") // the guard fired
	stillUp(t, bob, id, "alice/desk")
}

// A same-user device that queries and then stays silent does not keep
// the endpoint's Close from returning.
func TestCloseWithAnIdlePuller(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	desk := n.start("alice", "desk")
	evil := n.rawLogin(t, "alice", "tablet")
	qc := n.rawQuery(t, evil, desk)
	recvAny(t, qc)
	done := make(chan struct{})
	go func() { _ = desk.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(wait):
		_ = qc.Close()
		<-done
		t.Fatal("Close blocked until the idle puller hung up")
	}
}
