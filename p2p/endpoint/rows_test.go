package endpoint

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/baton-voice/baton/p2p/handoff"
	"github.com/baton-voice/baton/p2p/media"
	"github.com/baton-voice/baton/p2p/wire"
	"github.com/prometheus/client_golang/prometheus"
)

// The tests of this file each reach a row of the handoff tables that the
// happy path and the other failure tests do not, through real endpoints
// on loopback, the waits on the endpoint's fake Clock (TestMain fails a
// run that leaves a row unreached).

// stall holds p's call id on its goroutine until the returned release is
// called (or the test ends): p is alive, its sockets open and its media
// flowing, but it handles no signaling: a slow peer whose answers come
// late.
func stall(t *testing.T, p *party, id string) (release func()) {
	t.Helper()
	c, err := p.lookup(id)
	if err != nil {
		t.Fatalf("stall %s: %v", p.Identity(), err)
	}
	held, free := make(chan struct{}), make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(free) }) }
	t.Cleanup(release) // before the endpoints close (cleanups run last first)
	go func() {
		_ = c.exec(context.Background(), func() error {
			close(held)
			<-free
			return nil
		})
	}()
	select {
	case <-held:
	case <-time.After(wait):
		t.Fatalf("the call %s of %s was not stalled within %s", id, p.Identity(), wait)
	}
	return release
}

// tookRow reports whether some endpoint of n made role's row (from, ev).
func tookRow(n *network, role handoff.Role, from handoff.State, ev handoff.Event) bool {
	for _, tr := range n.transitions.snapshot() {
		if tr.Role == role && tr.From == from && tr.Event == ev && tr.Err == nil {
			return true
		}
	}
	return false
}

type handoffResult struct {
	h   HandoffInfo
	err error
}

func pullAsync(p *party, req PullRequest) <-chan handoffResult {
	done := make(chan handoffResult, 1)
	go func() {
		h, err := p.Pull(context.Background(), req)
		done <- handoffResult{h, err}
	}()
	return done
}

func rebindAsync(p *party) <-chan handoffResult {
	done := make(chan handoffResult, 1)
	go func() {
		h, err := p.Rebind(context.Background(), p.mediaAddr())
		done <- handoffResult{h, err}
	}()
	return done
}

func waitResult(t *testing.T, done <-chan handoffResult) handoffResult {
	t.Helper()
	select {
	case r := <-done:
		return r
	case <-time.After(wait):
		t.Fatalf("the handoff did not end within %s", wait)
	}
	return handoffResult{}
}

// clockTimeouts are fastTimeouts with the timers a test fires by hand
// made distinct, so that fakeClock.waitTimer knows which one started.
func clockTimeouts(clk *fakeClock, set func(*handoff.Timeouts)) func(*Config) {
	return func(c *Config) {
		fastTimeouts(c)
		c.Clock = clk
		c.Timeouts.Guard, c.Timeouts.Offer = time.Hour, 2*time.Hour
		set(&c.Timeouts)
	}
}

// silentFarParty: bob's audio never leaves him (muted, or lost on the
// way); he still hears and signals.
func silentFarParty(c *Config) {
	if c.User == "bob" {
		c.Impairment = &media.Impairment{Loss: 1}
	}
}

// TestPullStopAckLateCarriesOn reaches AStopping + Timeout: B (the desk)
// is alive but slow, its acknowledgement of stop-audio does not come
// within StopAck, and A carries on (DESIGN.md §2: C decides): the pull
// completes, and the desk, when it gets to the stop-audio and the release,
// lets the call go.
func TestPullStopAckLateCarriesOn(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	bob, desk, id := deskCall(t, n)
	clk := newFakeClock()
	const stopAck = 7 * time.Second
	var release func()
	laptop := n.start("alice", "laptop", clockTimeouts(clk, func(tm *handoff.Timeouts) { tm.StopAck = stopAck }), func(c *Config) {
		c.stepHook = func(step int) {
			if step == 4 { // A's audio is out; its stop-audio goes next
				release = stall(t, desk, id)
			}
		}
	})
	laptop.waitOnline(t, "alice/desk")
	done := pullAsync(laptop, PullRequest{From: "desk"})
	clk.waitTimer(t, stopAck)
	clk.Advance(stopAck)
	// Step 6 is measured from step 5, which is StopAck ago: it is due.
	clk.waitTimer(t, 0)
	clk.Advance(0)
	r := waitResult(t, done)
	if r.err != nil || r.h.State != "done" {
		t.Fatalf("pull with a slow B: %v %+v", r.err, r.h)
	}
	if !tookRow(n, handoff.RoleA, handoff.AStopping, handoff.EvTimeout) {
		t.Error("A did not take AStopping + Timeout")
	}
	release()
	desk.waitState(t, id, "ended")
	stillUp(t, bob, id, "alice/laptop")
}

// TestPullFarAudioLateKeepsCall reaches AWaitAudio + Timeout: C
// acknowledged A's new address, so it is with A for good, but its audio
// does not arrive (bob's is lost on the way). The call stays on A and B is
// released: no rollback to a B that C no longer sends to.
func TestPullFarAudioLateKeepsCall(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	bob, desk, id := deskCall(t, n, silentFarParty)
	clk := newFakeClock()
	const noAudio, newAudio = 60 * time.Millisecond, 7 * time.Second
	laptop := n.start("alice", "laptop", clockTimeouts(clk, func(tm *handoff.Timeouts) { tm.NoAudio, tm.NewAudio = noAudio, newAudio }))
	laptop.waitOnline(t, "alice/desk")
	done := pullAsync(laptop, PullRequest{From: "desk"})
	clk.waitTimer(t, noAudio)
	clk.Advance(noAudio)
	clk.waitTimer(t, newAudio)
	select {
	case r := <-done:
		t.Fatalf("the pull ended before C's audio was due: %v %+v", r.err, r.h)
	case <-time.After(100 * time.Millisecond):
	}
	clk.Advance(newAudio)
	r := waitResult(t, done)
	if r.err != nil || r.h.State != "done" {
		t.Fatalf("pull with C's audio lost: %v %+v", r.err, r.h)
	}
	if !tookRow(n, handoff.RoleA, handoff.AWaitAudio, handoff.EvTimeout) {
		t.Error("A did not take AWaitAudio + Timeout")
	}
	if r.h.FirstAudioMS != 0 {
		t.Errorf("first audio at %v ms from a C whose audio is all lost", r.h.FirstAudioMS)
	}
	if lc := laptop.waitState(t, id, "active"); lc.Peer != "bob/mobile" {
		t.Fatalf("laptop's call %+v", lc)
	}
	desk.waitState(t, id, "ended")
	stillUp(t, bob, id, "alice/laptop")
}

// pullStalledAfterStep7 runs the laptop's pull of the desk's call, with
// the laptop's timers on a fake clock: bob is stalled from step 8 on (he
// took the laptop at step 7, then handles nothing until release), so the
// laptop's new address goes unacknowledged and its AddressAck runs out. It returns
// the laptop, the pull's result and bob's release.
func pullStalledAfterStep7(t *testing.T, n *network, bob *party, id string) (*party, handoffResult, func()) {
	t.Helper()
	clk := newFakeClock()
	const noAudio, addressAck = 60 * time.Millisecond, 7 * time.Second
	var release func()
	laptop := n.start("alice", "laptop", clockTimeouts(clk, func(tm *handoff.Timeouts) { tm.NoAudio, tm.AddressAck = noAudio, addressAck }), func(c *Config) {
		c.stepHook = func(step int) {
			if step == 8 { // C accepted; A's new address goes out next
				release = stall(t, bob, id)
			}
		}
	})
	laptop.waitOnline(t, "alice/desk")
	done := pullAsync(laptop, PullRequest{From: "desk"})
	clk.waitTimer(t, noAudio)
	clk.Advance(noAudio)
	clk.waitTimer(t, addressAck)
	clk.Advance(addressAck)
	return laptop, waitResult(t, done), release
}

// TestPullNewAddressUnackedRollsBack reaches ANotifying + Timeout: C took
// A as its peer (step 7) but then handles nothing (it died: its
// acknowledgement of A's new address never comes). A rolls back: it stops
// its audio and B resumes; the call stays with B.
func TestPullNewAddressUnackedRollsBack(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	bob, desk, id := deskCall(t, n)
	laptop, r, release := pullStalledAfterStep7(t, n, bob, id)
	if !isErr(r.err, ErrHandoffFailed) || r.h.State != "rolled-back" {
		t.Fatalf("pull whose C never acknowledged the new address: %v %+v", r.err, r.h)
	}
	if !tookRow(n, handoff.RoleA, handoff.ANotifying, handoff.EvTimeout) {
		t.Error("A did not take ANotifying + Timeout")
	}
	desk.next(t, "handoff.resumed")
	if dc := desk.waitState(t, id, "active"); dc.Peer != "bob/mobile" {
		t.Fatalf("desk's call %+v", dc)
	}
	if len(laptop.Calls()) != 0 {
		t.Errorf("the laptop kept a call: %+v", laptop.Calls())
	}
	// C is dead: it never gets to A's message (a C that answers late,
	// after A rolled back, is TestPullLateAddressAckAfterRollback).
	crashed := make(chan struct{})
	go func() { defer close(crashed); bob.crash() }()
	release()
	<-crashed
}

// TestPullNoNewAddressRollsBack reaches AAllocating + MediaFailed: the
// new address cannot be bound at step 9 (it went away after step 8). A
// rolls back: B resumes, and C, which took A as its peer at step 7 and
// gets no new address, goes back to B on A's withdraw (CSwitched +
// Withdraw).
func TestPullNoNewAddressRollsBack(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	bob, desk, id := deskCall(t, n)
	laptop := n.start("alice", "laptop", fastTimeouts, func(c *Config) {
		c.allocFault = func(r handoff.Role) error {
			return fmt.Errorf("listen udp: %w", syscall.EADDRNOTAVAIL)
		}
	})
	laptop.waitOnline(t, "alice/desk")
	h, err := laptop.Pull(context.Background(), PullRequest{From: "desk"})
	if !isErr(err, ErrHandoffFailed) || h.State != "rolled-back" || !contains(h.Error, "cannot assign requested address") {
		t.Fatalf("pull with no new address: %v %+v", err, h)
	}
	if !tookRow(n, handoff.RoleA, handoff.AAllocating, handoff.EvMediaFailed) {
		t.Error("A did not take AAllocating + MediaFailed")
	}
	eventually(t, "C to go back to B on A's withdraw", func() bool {
		return tookRow(n, handoff.RoleC, handoff.CSwitched, handoff.EvWithdraw)
	})
	desk.next(t, "handoff.resumed")
	if len(laptop.Calls()) != 0 {
		t.Errorf("the laptop kept a call: %+v", laptop.Calls())
	}
	stillUp(t, bob, id, "alice/desk")
}

// TestRebindNoNewAddressEndsCall reaches MAllocating + MediaFailed: the
// address to move to was bindable when Rebind checked it, but binding
// fails at step 9. The old media is closed already, so the call ends here
// (the far party ends it by its own media timeout).
func TestRebindNoNewAddressEndsCall(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	_, desk, id := deskCall(t, n, func(c *Config) {
		if c.Device == "desk" {
			c.allocFault = func(r handoff.Role) error {
				return fmt.Errorf("listen udp: %w", syscall.EADDRNOTAVAIL)
			}
		}
	})
	h, err := desk.Rebind(context.Background(), desk.mediaAddr())
	if !isErr(err, ErrHandoffFailed) || h.State != "call-ended" {
		t.Fatalf("rebind with no new address: %v %+v", err, h)
	}
	if !tookRow(n, handoff.RoleM, handoff.MAllocating, handoff.EvMediaFailed) {
		t.Error("M did not take MAllocating + MediaFailed")
	}
	desk.waitState(t, id, "ended")
}

// TestRebindAckLateCallGoesOn reaches MNotifying + Timeout: the far party
// is slow and its acknowledgement of the new address does not come within
// AddressAck. The move is reported unconfirmed, the call goes on, and when
// the far party gets to the new address it follows it.
func TestRebindAckLateCallGoesOn(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	clk := newFakeClock()
	const addressAck = 7 * time.Second
	var (
		bob     *party
		id      string
		release func()
	)
	bob, desk, id := deskCall(t, n, func(c *Config) {
		if c.Device == "desk" {
			clockTimeouts(clk, func(tm *handoff.Timeouts) { tm.AddressAck = addressAck })(c)
			c.stepHook = func(step int) {
				if step == 8 { // the old media closed; the new address goes out next
					release = stall(t, bob, id)
				}
			}
		}
	})
	done := rebindAsync(desk)
	clk.waitTimer(t, addressAck)
	clk.Advance(addressAck)
	r := waitResult(t, done)
	if !isErr(r.err, ErrUnreachable) || r.h.State != "failed" {
		t.Fatalf("rebind whose far party acknowledged late: %v %+v", r.err, r.h)
	}
	if !tookRow(n, handoff.RoleM, handoff.MNotifying, handoff.EvTimeout) {
		t.Error("M did not take MNotifying + Timeout")
	}
	release()
	moved := r.h.NewAddress
	if moved == "" {
		moved = desk.mustCall(t, id).LocalMedia
	}
	eventually(t, "bob to send to the desk's new address "+moved, func() bool {
		return bob.mustCall(t, id).RemoteMedia == moved
	})
	if dc := desk.waitState(t, id, "active"); dc.Peer != "bob/mobile" {
		t.Fatalf("desk's call %+v", dc)
	}
	stillUp(t, bob, id, "alice/desk")
}

// TestRebindFarAudioLateCallGoesOn reaches MWaitAudio + Timeout: the far
// party acknowledged the new address but its audio does not arrive (muted,
// or lost on the way). The move is reported, and the call goes on: a move
// never drops a call.
func TestRebindFarAudioLateCallGoesOn(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	clk := newFakeClock()
	const newAudio = 7 * time.Second
	bob, desk, id := deskCall(t, n, silentFarParty, func(c *Config) {
		if c.Device == "desk" {
			clockTimeouts(clk, func(tm *handoff.Timeouts) { tm.NewAudio = newAudio })(c)
		}
	})
	done := rebindAsync(desk)
	clk.waitTimer(t, newAudio)
	select {
	case r := <-done:
		t.Fatalf("the rebind ended before the far party's audio was due: %v %+v", r.err, r.h)
	case <-time.After(100 * time.Millisecond):
	}
	clk.Advance(newAudio)
	r := waitResult(t, done)
	if !isErr(r.err, ErrHandoffFailed) || !contains(r.h.Error, "the call goes on") {
		t.Fatalf("rebind with the far party's audio lost: %v %+v", r.err, r.h)
	}
	if !tookRow(n, handoff.RoleM, handoff.MWaitAudio, handoff.EvTimeout) {
		t.Error("M did not take MWaitAudio + Timeout")
	}
	if dc := desk.waitState(t, id, "active"); dc.Peer != "bob/mobile" {
		t.Fatalf("desk's call %+v", dc)
	}
	stillUp(t, bob, id, "alice/desk")
}

// TestPullLateAddressAckAfterRollback reaches CActive + Withdraw: C
// answers A's new address (step 11) after A's AddressAck ran out and A
// rolled back (ANotifying + Timeout): B resumed, and C, which handles the
// late message as CSwitched + NewAddress, would send to A's closed new
// address from then on (0 packets at the desk in the second after, before
// the withdraw). A's withdraw, behind the new address on the same
// connection, takes C back to B: the desk hears bob again.
func TestPullLateAddressAckAfterRollback(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	bob, desk, id := deskCall(t, n)
	_, r, release := pullStalledAfterStep7(t, n, bob, id)
	if r.h.State != "rolled-back" {
		t.Fatalf("pull: %v %+v", r.err, r.h)
	}
	desk.next(t, "handoff.resumed")
	release() // bob handles the new address now, late
	before := desk.mustCall(t, id).Media.PacketsReceived
	eventually(t, "the desk to hear bob again after the rollback", func() bool {
		return desk.mustCall(t, id).Media.PacketsReceived > before+25
	})
	for _, row := range []struct {
		from handoff.State
		ev   handoff.Event
	}{{handoff.CSwitched, handoff.EvNewAddress}, {handoff.CActive, handoff.EvWithdraw}} {
		if !tookRow(n, handoff.RoleC, row.from, row.ev) {
			t.Errorf("C did not take %s + %s", row.from, row.ev)
		}
	}
	if bc := bob.mustCall(t, id); bc.Peer != "alice/desk" || bc.RemoteMedia != desk.mustCall(t, id).LocalMedia {
		t.Errorf("bob's call after the withdraw: peer %s, sending to %s (desk at %s)", bc.Peer, bc.RemoteMedia, desk.mustCall(t, id).LocalMedia)
	}
}

// TestSecondStopAudioRefused reaches BMuted + StopAudio and AStopping +
// Busy in a fixed order (TestTwoPullersOneWins races the two pullers, and
// only some orders reach them): the laptop and the tablet both have the
// desk's session parameters; the tablet's stop-audio comes first and
// wins, the laptop's is refused busy, so the laptop fails with nothing
// changed, and the tablet takes the call.
func TestSecondStopAudioRefused(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	bob, _, id := deskCall(t, n)
	tablet := n.start("alice", "tablet", fastTimeouts)
	tabletDone := make(chan handoffResult, 1)
	laptop := n.start("alice", "laptop", fastTimeouts, func(c *Config) {
		c.stepHook = func(step int) {
			if step != 4 { // the laptop has the parameters; its stop-audio goes next
				return
			}
			go func() {
				h, err := tablet.Pull(context.Background(), PullRequest{From: "desk"})
				tabletDone <- handoffResult{h, err}
			}()
			eventually(t, "the desk to mute for the tablet", func() bool {
				return tookRow(n, handoff.RoleB, handoff.BOffered, handoff.EvStopAudio)
			})
		}
	})
	laptop.waitOnline(t, "alice/desk")
	tablet.waitOnline(t, "alice/desk")
	h, err := laptop.Pull(context.Background(), PullRequest{From: "desk"})
	if !isErr(err, ErrHandoffFailed) || h.State != "failed" {
		t.Fatalf("the second puller: %v %+v", err, h)
	}
	r := waitResult(t, tabletDone)
	if r.err != nil || r.h.State != "done" {
		t.Fatalf("the first puller: %v %+v", r.err, r.h)
	}
	for _, row := range []struct {
		role handoff.Role
		from handoff.State
		ev   handoff.Event
	}{
		{handoff.RoleB, handoff.BMuted, handoff.EvStopAudio},
		{handoff.RoleA, handoff.AStopping, handoff.EvBusy},
	} {
		if !tookRow(n, row.role, row.from, row.ev) {
			t.Errorf("%s did not take %s + %s", row.role, row.from, row.ev)
		}
	}
	if len(laptop.Calls()) != 0 {
		t.Errorf("the laptop kept a call: %+v", laptop.Calls())
	}
	stillUp(t, bob, id, "alice/tablet")
}

// TestWithdrawFromPeerNotSwitchedToRefused: a withdraw is taken only from
// the device C switched to in its latest handoff. The desk, bob's peer
// from the start, sends one on its own connection: bob answers it is out
// of place, takes no row, and the call stays with the desk.
func TestWithdrawFromPeerNotSwitchedToRefused(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	bob, desk, id := deskCall(t, n)
	desk.mu.Lock()
	c := desk.calls[id]
	desk.mu.Unlock()
	if c == nil {
		t.Fatal("the desk has no call " + id)
	}
	reg := prometheus.NewRegistry()
	if err := bob.Register(reg); err != nil {
		t.Fatal(err)
	}
	if err := c.exec(context.Background(), func() error {
		return c.conn.Send(&wire.Withdraw{CallID: id, Reason: "forged"}, sendTimeout)
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "bob to refuse the withdraw", func() bool {
		v, _ := findMetric(t, reg, "baton_endpoint_signaling_rejected_total", map[string]string{"reason": "unexpected"})
		return v >= 1
	})
	if tookRow(n, handoff.RoleC, handoff.CActive, handoff.EvWithdraw) {
		t.Error("bob took CActive + Withdraw from a peer it never switched to")
	}
	stillUp(t, bob, id, "alice/desk")
}
