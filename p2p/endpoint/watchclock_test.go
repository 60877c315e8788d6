package endpoint

import (
	"testing"
	"time"

	"github.com/baton-voice/baton/p2p/handoff"
	"github.com/baton-voice/baton/p2p/wire"
)

// advanceUntil moves clk on by step, pausing a little each time so that
// media flows between steps, until p emits an event of type typ; it
// returns how far the clock was moved. Events of other types are skipped.
func advanceUntil(t *testing.T, clk *fakeClock, step time.Duration, p *party, typ string) time.Duration {
	t.Helper()
	var moved time.Duration
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		for _, ev := range drain(p.events) {
			if ev.Type == typ {
				return moved
			}
		}
		clk.Advance(step)
		moved += step
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%s: no %s event after moving the clock on by %s", p.Identity(), typ, moved)
	return 0
}

// noEvent fails if p emits an event of type typ within d of wall time.
func noEvent(t *testing.T, p *party, typ string, d time.Duration) {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case ev := <-p.events:
			if ev.Type == typ {
				t.Fatalf("%s: %s after %s of wall time while its clock stood still: %+v", p.Identity(), typ, d, ev)
			}
		case <-timer.C:
			return
		}
	}
}

// grantAbuse has a hand-driven device of alice's ask the desk for its
// session and stop its audio, and, with reestablish, present the grant to
// bob, without ever sending audio: the abuse of issue 11 §1.3.
func grantAbuse(t *testing.T, n *network, bob, desk *party, id string, reestablish bool) {
	t.Helper()
	evil := n.rawLogin(t, "alice", "tablet")
	qc := n.rawQuery(t, evil, desk)
	list, ok := recvAny(t, qc).(*wire.SessionList)
	if !ok || len(list.Sessions) != 1 {
		t.Fatalf("session list %+v", list)
	}
	if err := qc.Send(&wire.StopAudio{CallID: id}, time.Second); err != nil {
		t.Fatal(err)
	}
	if m, ok := recvAny(t, qc).(*wire.StopAck); !ok {
		t.Fatalf("stop-audio answered %+v", m)
	}
	if !reestablish {
		return
	}
	c := n.rawDial(t, evil, bob)
	re := &wire.Reestablish{CallID: id, SignalAddr: "127.0.0.1:9", Grant: list.Sessions[0].Grant,
		Media: wire.Media{Addr: "127.0.0.1:9", SSRC: 77, PtimeMS: 20}}
	if err := c.Send(re, time.Second); err != nil {
		t.Fatal(err)
	}
	if m, ok := recvAny(t, c).(*wire.ReestablishAck); !ok {
		t.Fatalf("reestablish with a valid grant answered %+v", m)
	}
}

// TestMuteWatchOnClock: B's half-packet watch (checkMute: C still sends
// to B after muteConsent, so nobody took C over: send again) runs on B's
// Clock, and so does the media's LastPacket it compares: with B's clock
// standing still B stays muted however long C keeps sending, and it sends
// again once the clock has moved on by muteConsent, well before its guard.
func TestMuteWatchOnClock(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	clk := newFakeClock()
	bob, desk, id := deskCall(t, n, func(c *Config) {
		if c.Device == "desk" {
			c.Clock = clk
		}
	})
	eventually(t, "the desk to hear bob", func() bool { return desk.mustCall(t, id).Media.PacketsReceived > 10 })
	grantAbuse(t, n, bob, desk, id, false)
	desk.next(t, "handoff.muted")
	noEvent(t, desk, "handoff.unmuted", 500*time.Millisecond)
	grace := muteConsent(desk.timeouts, desk.cfg.Ptime)
	moved := advanceUntil(t, clk, 10*time.Millisecond, desk, "handoff.unmuted")
	t.Logf("the desk sent again after its clock moved on by %s (grace %s)", moved, grace)
	if moved < grace || moved >= desk.timeouts.Guard {
		t.Errorf("the desk sent again after %s of its clock, want at least muteConsent %s and less than the guard %s", moved, grace, desk.timeouts.Guard)
	}
	if d := desk.mustCall(t, id); d.State != "active" {
		t.Errorf("desk's call %s", d.State)
	}
}

// TestSwitchWatchOnClock: C's half-packet watch (checkSwitched: no audio
// from anyone switchSilence after taking A as its peer: back to B) runs
// on C's Clock: with bob's clock standing still he stays with the device
// that never streams, and goes back to the desk once his clock has moved
// on by switchSilence (CSwitched + AStreamLost), before his NewAddress
// timer.
func TestSwitchWatchOnClock(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	clk := newFakeClock()
	bob, desk, id := deskCall(t, n, func(c *Config) {
		if c.User == "bob" {
			c.Clock = clk
		}
	})
	eventually(t, "bob to hear the desk", func() bool { return bob.mustCall(t, id).Media.PacketsReceived > 10 })
	grantAbuse(t, n, bob, desk, id, true)
	bob.next(t, "handoff.reestablished")
	noEvent(t, bob, "handoff.reverted", 500*time.Millisecond)
	window := switchSilence(bob.timeouts, bob.cfg.Ptime)
	moved := advanceUntil(t, clk, 10*time.Millisecond, bob, "handoff.reverted")
	t.Logf("bob went back to the desk after his clock moved on by %s (window %s)", moved, window)
	if moved < window || moved >= bob.timeouts.NewAddress {
		t.Errorf("bob went back after %s of his clock, want at least switchSilence %s and less than NewAddress %s", moved, window, bob.timeouts.NewAddress)
	}
	if !tookRow(n, handoff.RoleC, handoff.CSwitched, handoff.EvAStreamLost) {
		t.Error("bob did not take CSwitched + AStreamLost")
	}
	stillUp(t, bob, id, "alice/desk")
}
