package endpoint

import (
	"context"
	"crypto/rand"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/baton-voice/baton/p2p/handoff"
	"github.com/baton-voice/baton/p2p/wire"
)

// fastTimeouts keeps failure-path tests short; the relations Validate
// checks still hold.
func fastTimeouts(c *Config) {
	// Short where a test waits for them to expire (Query: a silent B;
	// NewAddress: C's revert), generous where a handoff must succeed on a
	// loaded machine.
	c.Timeouts = handoff.Timeouts{
		Presence: time.Second, Query: 500 * time.Millisecond, StopAck: time.Second,
		NoAudio: 60 * time.Millisecond, Answer: 2 * time.Second, AddressAck: time.Second,
		NewAudio: 2 * time.Second, ResumeAck: 2 * time.Second,
		Offer: 8 * time.Second, Guard: 6 * time.Second, NewAddress: time.Second,
	}
	c.DialTimeout = time.Second
}

// deskCall sets up bob (auto-answer, 440 Hz) in a call with alice/desk
// (660 Hz) and returns the call id.
func deskCall(t *testing.T, n *network, opts ...func(*Config)) (bob, desk *party, id string) {
	t.Helper()
	bob = n.start("bob", "mobile", append([]func(*Config){withTone(440), autoAnswer, fastTimeouts}, opts...)...)
	desk = n.start("alice", "desk", append([]func(*Config){withTone(660), fastTimeouts}, opts...)...)
	desk.waitOnline(t, "bob/mobile")
	out, err := desk.Dial(context.Background(), "bob")
	if err != nil {
		t.Fatal(err)
	}
	desk.waitState(t, out.ID, "active")
	bob.waitState(t, out.ID, "active")
	return bob, desk, out.ID
}

// stillUp checks that the call between bob and wantPeer is active and
// bob keeps receiving audio.
func stillUp(t *testing.T, bob *party, id, wantPeer string) {
	t.Helper()
	eventually(t, "bob's call to be with "+wantPeer, func() bool {
		info, err := bob.Call(id)
		return err == nil && info.State == "active" && info.Peer == wantPeer
	})
	before := bob.mustCall(t, id).Media.PacketsReceived
	eventually(t, "bob to keep receiving audio", func() bool {
		return bob.mustCall(t, id).Media.PacketsReceived > before+10
	})
}

func TestPullNothingToPull(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	n.start("alice", "desk", fastTimeouts)
	laptop := n.start("alice", "laptop", fastTimeouts)
	laptop.waitOnline(t, "alice/desk")
	h, err := laptop.Pull(context.Background(), PullRequest{From: "desk"})
	if !isErr(err, ErrNothingToPull) || h.State != "failed" || h.ID == "" {
		t.Fatalf("pull from an idle device: %v %+v", err, h)
	}
	if len(laptop.Calls()) != 0 {
		t.Errorf("laptop has calls after a failed pull")
	}
}

func TestPullOfflineAndUnknownDevice(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	laptop := n.start("alice", "laptop", fastTimeouts)
	for _, tc := range []struct {
		from string
		want error
	}{
		{"desk", ErrUnknownPeer},           // never logged in: no presence
		{"bob/mobile", ErrForbidden},       // another user's device
		{"laptop", ErrInvalidTarget},       // this endpoint
		{"Desk!", ErrInvalidTarget},        // not a device name
		{"alice/laptop", ErrInvalidTarget}, // this endpoint, spelled out
	} {
		if _, err := laptop.Pull(context.Background(), PullRequest{From: tc.from}); !isErr(err, tc.want) {
			t.Errorf("pull from %q: %v, want %v", tc.from, err, tc.want)
		}
	}
}

func TestPullPolicyRefuses(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	deny := func(c *Config) { c.Policy = denyAll{} }
	bob, desk, id := deskCall(t, n, func(c *Config) {
		if c.Device == "desk" {
			deny(c)
		}
	})
	laptop := n.start("alice", "laptop", fastTimeouts)
	laptop.waitOnline(t, "alice/desk")
	h, err := laptop.Pull(context.Background(), PullRequest{From: "desk"})
	if !isErr(err, ErrForbidden) || h.State != "failed" {
		t.Fatalf("pull against a refusing policy: %v %+v", err, h)
	}
	if info := desk.mustCall(t, id); info.State != "active" {
		t.Errorf("desk's call %s", info.State)
	}
	stillUp(t, bob, id, "alice/desk")

	// Another user's device asking directly gets a refusal and learns
	// nothing: no session list at all.
	mallory := n.rawLogin(t, "mallory", "evil")
	conn := n.rawQuery(t, mallory, desk)
	m := recvAny(t, conn)
	if rej, ok := m.(*wire.Reject); !ok || rej.Code != wire.CodeForbidden {
		t.Fatalf("another user's query got %T %+v", m, m)
	}
}

type denyAll struct{}

func (denyAll) Decide(context.Context, handoff.Request) (handoff.Decision, error) {
	return handoff.Decision{Allow: false, Reason: "test policy refuses everything"}, nil
}

func recvAny(t *testing.T, c *wire.Conn) wire.Message {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(wait))
	m, err := c.Recv()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestPullBSilent(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	laptop := n.start("alice", "laptop", fastTimeouts)
	// A "desk" that accepts TCP and never speaks: presence says online.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		for _, c := range held {
			_ = c.Close()
		}
		mu.Unlock()
	}()
	laptop.onPresence(wire.Device{User: "alice", Device: "desk", Status: wire.StatusOnline, SignalAddr: ln.Addr().String()})
	h, err := laptop.Pull(context.Background(), PullRequest{From: "desk"})
	if !isErr(err, ErrUnreachable) || h.State != "failed" {
		t.Fatalf("pull from a silent device: %v %+v", err, h)
	}
}

func TestPullSeveralSessions(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	two := func(c *Config) { c.MaxCalls = 2 }
	bob, desk, id1 := deskCall(t, n, two)
	carol := n.start("carol", "desk", withTone(550), autoAnswer, fastTimeouts)
	desk.waitOnline(t, "carol/desk")
	c2, err := desk.Dial(context.Background(), "carol")
	if err != nil {
		t.Fatal(err)
	}
	desk.waitState(t, c2.ID, "active")
	laptop := n.start("alice", "laptop", fastTimeouts)
	laptop.waitOnline(t, "alice/desk")

	sessions, err := laptop.Sessions(context.Background(), "desk")
	if err != nil || len(sessions) != 2 {
		t.Fatalf("sessions: %v %+v", err, sessions)
	}
	// The offers made by the listing expire on their own (Offer timer);
	// pulling without saying which is refused with the list.
	h, err := laptop.Pull(context.Background(), PullRequest{From: "desk"})
	if !isErr(err, ErrSeveralSessions) || !contains(err.Error(), id1) || !contains(err.Error(), c2.ID) {
		t.Fatalf("pull without an id: %v %+v", err, h)
	}
	h, err = laptop.Pull(context.Background(), PullRequest{From: "desk", SessionID: c2.ID})
	if err != nil || h.State != "done" || h.CallID != c2.ID {
		t.Fatalf("pull by id: %v %+v", err, h)
	}
	stillUp(t, carol, c2.ID, "alice/laptop")
	stillUp(t, bob, id1, "alice/desk")
}

func TestPullCRefusesRollsBack(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	// The desk signs grants that are already expired: bob refuses step
	// 7; the laptop rolls back and the desk resumes.
	late := func(c *Config) {
		if c.Device == "desk" {
			c.GrantLifetime = -time.Hour
		}
	}
	bob, desk, id := deskCall(t, n, late)
	laptop := n.start("alice", "laptop", fastTimeouts)
	laptop.waitOnline(t, "alice/desk")
	h, err := laptop.Pull(context.Background(), PullRequest{From: "desk"})
	if !isErr(err, ErrHandoffFailed) || h.State != "rolled-back" || !contains(h.Error, "expired") {
		t.Fatalf("pull refused by C: %v %+v", err, h)
	}
	if info := desk.mustCall(t, id); info.State != "active" {
		t.Fatalf("desk's call %s after rollback", info.State)
	}
	// The desk sends again, bob hears it, the laptop has nothing.
	before := desk.mustCall(t, id).Media.PacketsSent
	eventually(t, "the desk to resume sending", func() bool { return desk.mustCall(t, id).Media.PacketsSent > before+10 })
	stillUp(t, bob, id, "alice/desk")
	if len(laptop.Calls()) != 0 {
		t.Errorf("laptop kept a call after rollback")
	}
}

func TestGrantChecksAtC(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	bob, desk, id := deskCall(t, n)
	// A device of alice's, driven by hand, asks the desk for the session
	// like a real puller, and gets a real grant for itself.
	evil := n.rawLogin(t, "alice", "tablet")
	qc := n.rawQuery(t, evil, desk)
	list, ok := recvAny(t, qc).(*wire.SessionList)
	if !ok || len(list.Sessions) != 1 {
		t.Fatalf("session list %+v", list)
	}
	good := list.Sessions[0].Grant
	media := wire.Media{Addr: "127.0.0.1:9", SSRC: 77, PtimeMS: 20}
	reestablish := func(g wire.Grant) *wire.Reject {
		t.Helper()
		c := n.rawDial(t, evil, bob)
		if err := c.Send(&wire.Reestablish{CallID: id, SignalAddr: "127.0.0.1:9", Media: media, Grant: g}, time.Second); err != nil {
			t.Fatal(err)
		}
		switch m := recvAny(t, c).(type) {
		case *wire.Reject:
			return m
		case *wire.ReestablishAck:
			return nil
		default:
			t.Fatalf("reestablish answered %T", m)
		}
		return nil
	}
	forged := good
	forged.Signature = append([]byte(nil), good.Signature...)
	forged.Signature[len(forged.Signature)/2] ^= 0xff
	otherNonce := good
	otherNonce.Nonce = make([]byte, wire.GrantNonceLen)
	_, _ = rand.Read(otherNonce.Nonce) // changes the signed bytes
	forOther := good
	forOther.To = "alice/phone"
	otherCall := good
	otherCall.CallID = "c-other"
	for name, g := range map[string]wire.Grant{
		"forged signature":      forged,
		"altered after signing": otherNonce,
		"for another device":    forOther,
		"for another call":      otherCall,
	} {
		if rej := reestablish(g); rej == nil || rej.Code != wire.CodeForbidden {
			t.Errorf("%s: accepted (%+v)", name, rej)
		}
	}
	if info := bob.mustCall(t, id); info.Peer != "alice/desk" {
		t.Fatalf("bad grants moved bob's call to %s", info.Peer)
	}
	// The real grant works once; bob takes the tablet as its peer...
	if rej := reestablish(good); rej != nil {
		t.Fatalf("valid grant refused: %+v", rej)
	}
	// ...a replay is refused...
	if rej := reestablish(good); rej == nil || !contains(rej.Reason, "replay") {
		t.Errorf("replayed grant: %+v", rej)
	}
	// ...and since the tablet never completes (no new address), bob goes
	// back to the desk on its own timer: the call is never dropped.
	stillUp(t, bob, id, "alice/desk")
}

// The desk's guard timer runs on a fake clock: the test moves it on
// instead of waiting the guard's six seconds.
func TestPullADiesBResumes(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	clk := newFakeClock()
	bob, desk, id := deskCall(t, n, func(c *Config) {
		if c.Device == "desk" {
			c.Clock = clk
		}
	})
	var laptop *party
	crashed := make(chan struct{})
	laptop = n.start("alice", "laptop", fastTimeouts, func(c *Config) {
		c.stepHook = func(step int) {
			if step == 5 {
				laptop.crash()
				close(crashed)
			}
		}
	})
	laptop.waitOnline(t, "alice/desk")
	h, err := laptop.Pull(context.Background(), PullRequest{From: "desk"})
	t.Logf("the crashed puller's handoff: %v %+v", err, h)
	<-crashed
	// The desk was muted at step 5; its guard timer resumes it.
	desk.next(t, "handoff.muted")
	select {
	case ev := <-desk.events:
		if ev.Type == "handoff.resumed" {
			t.Fatalf("the desk resumed before its guard fired: %+v", ev)
		}
	default:
	}
	clk.Advance(desk.timeouts.Guard)
	desk.next(t, "handoff.resumed")
	t.Logf("bob: %+v", bob.mustCall(t, id))
	stillUp(t, bob, id, "alice/desk")
}

func TestPullBDiesACompletes(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	bob, desk, id := deskCall(t, n)
	laptop := n.start("alice", "laptop", fastTimeouts)
	laptop.waitOnline(t, "alice/desk")
	// The desk dies as soon as it has stopped its audio (step 5), its
	// acknowledgement possibly lost with it: A completes as C answers.
	dead := make(chan struct{})
	go func() {
		defer close(dead)
		for ev := range desk.events {
			if ev.Type == "handoff.muted" {
				desk.crash()
				return
			}
		}
	}()
	h, err := laptop.Pull(context.Background(), PullRequest{From: "desk"})
	<-dead
	if err != nil || h.State != "done" {
		t.Fatalf("pull while B dies: %v %+v", err, h)
	}
	stillUp(t, bob, id, "alice/laptop")
}

func TestTwoPullersOneWins(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	bob, _, id := deskCall(t, n)
	laptop := n.start("alice", "laptop", fastTimeouts)
	tablet := n.start("alice", "tablet", fastTimeouts)
	laptop.waitOnline(t, "alice/desk")
	tablet.waitOnline(t, "alice/desk")
	var wg sync.WaitGroup
	results := make([]HandoffInfo, 2)
	for i, p := range []*party{laptop, tablet} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], _ = p.Pull(context.Background(), PullRequest{From: "desk"})
		}()
	}
	wg.Wait()
	done := 0
	winner := ""
	for i, r := range results {
		if r.State == "done" {
			done++
			winner = []string{"alice/laptop", "alice/tablet"}[i]
		}
	}
	if done != 1 {
		t.Fatalf("%d pullers won: %+v", done, results)
	}
	stillUp(t, bob, id, winner)
}

func drain(ch <-chan Event) []Event {
	var out []Event
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				return out
			}
			out = append(out, ev)
		default:
			return out
		}
	}
}

var _ = netip.Addr{}

// TestPullBDiesCRefusesCallEnded is the one loss the design cannot avoid
// (docs/handoff.md, "B dies during the handoff, C refuses"): B dies after
// muting and C refuses A's grant. A rolls back, B cannot confirm the
// resume, and A's handoff ends in ACallEnded; nothing is left on A.
func TestPullBDiesCRefusesCallEnded(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	late := func(c *Config) {
		if c.Device == "desk" {
			c.GrantLifetime = -time.Hour // bob refuses step 7
		}
	}
	_, desk, _ := deskCall(t, n, late)
	laptop := n.start("alice", "laptop", fastTimeouts)
	laptop.waitOnline(t, "alice/desk")
	dead := make(chan struct{})
	go func() {
		defer close(dead)
		for ev := range desk.events {
			if ev.Type == "handoff.muted" {
				desk.crash()
				return
			}
		}
	}()
	h, err := laptop.Pull(context.Background(), PullRequest{From: "desk"})
	<-dead
	if !isErr(err, ErrHandoffFailed) || h.State != "call-ended" || !contains(h.Error, "rollback not confirmed") {
		t.Fatalf("pull with B dead and C refusing: %v %+v", err, h)
	}
	if len(laptop.Calls()) != 0 {
		t.Errorf("laptop kept a call")
	}
	var rolledBack bool
	for _, tr := range n.transitions.snapshot() {
		if tr.Role == handoff.RoleA && tr.From == handoff.ARollingBack && tr.To == handoff.ACallEnded {
			rolledBack = true
		}
	}
	if !rolledBack {
		t.Error("A did not end through ARollingBack + Timeout")
	}
}

// TestPullWithoutTheCallsCodec: A cannot decode the call's codec, so it
// fails at step 4 (AStarting + MediaFailed) before B is asked to stop:
// the call stays on B, untouched.
func TestPullWithoutTheCallsCodec(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	bob, desk, id := deskCall(t, n, withCodecs("PCMU"))
	laptop := n.start("alice", "laptop", fastTimeouts, withCodecs("PCMA"))
	laptop.waitOnline(t, "alice/desk")
	h, err := laptop.Pull(context.Background(), PullRequest{From: "desk"})
	if !isErr(err, ErrNoCodec) || h.State != "failed" {
		t.Fatalf("pull of a PCMU call by a PCMA-only device: %v %+v", err, h)
	}
	for _, s := range h.Steps {
		if s.Step > 3 {
			t.Errorf("the failed pull recorded step %d", s.Step)
		}
	}
	if info := desk.mustCall(t, id); info.State != "active" {
		t.Errorf("desk's call %s", info.State)
	}
	stillUp(t, bob, id, "alice/desk")
}

// A slow A between steps 8 and 11 (200 concurrent pulls through one
// gateway on two cores: C handled A's new address 110-140 ms after step
// 8): A's provisional stream reached C before step 7, so C waits for A's
// new address as long as A waits for C's acknowledgement (AddressAck)
// instead of going back to B after NoAudio + 2 packet times, and the pull
// completes (docs/benchmarks.md §25). Before, C reverted to B at 100 ms,
// ignored A's new address, and A rolled back.
func TestPullSlowAAfterStep8Completes(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	bob, _, id := deskCall(t, n)
	pause := 300 * time.Millisecond
	laptop := n.start("alice", "laptop", withTone(880), func(c *Config) {
		c.stepHook = func(step int) {
			if step == 8 {
				time.Sleep(pause) // A's steps 9-11 run late
			}
		}
	})
	laptop.waitOnline(t, "alice/desk")
	h, err := laptop.Pull(context.Background(), PullRequest{From: "desk"})
	if err != nil || h.State != "done" {
		t.Fatalf("a pull whose A paused %v after step 8: %s %v, want done", pause, h.State, err)
	}
	if lc := laptop.waitState(t, id, "active"); lc.Peer != "bob/mobile" {
		t.Fatalf("laptop's call %+v", lc)
	}
	stillUp(t, bob, id, "alice/laptop")
}

// denyDevice refuses one requester any call (KindPull: the per-call
// decision of a session query) and allows the rest (same user only).
type denyDevice struct{ requester string }

func (d denyDevice) Decide(ctx context.Context, r handoff.Request) (handoff.Decision, error) {
	if r.Requester == d.requester && r.Kind == handoff.KindPull {
		return handoff.Decision{Allow: false, Reason: "test policy refuses " + d.requester}, nil
	}
	return handoff.SameUser{}.Decide(ctx, r)
}

// TestQueryDeniedWhileOfferedAndMuted reaches B's rows BOffered +
// QueryDenied and BMuted + QueryDenied: while one device (alice/laptop)
// has the call offered, and then muted by its stop-audio, another device
// the policy refuses (alice/tablet) asks; it learns nothing of the call,
// and the laptop's handoff state is not disturbed (its stop-audio is
// still acknowledged, and the call stays up).
func TestQueryDeniedWhileOfferedAndMuted(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	bob, desk, id := deskCall(t, n, func(c *Config) {
		if c.Device == "desk" {
			c.Policy = denyDevice{requester: "alice/tablet"}
		}
	})
	laptop := n.rawLogin(t, "alice", "laptop")
	tablet := n.rawLogin(t, "alice", "tablet")
	denied := func(when string) {
		t.Helper()
		qc := n.rawQuery(t, tablet, desk)
		switch m := recvAny(t, qc).(type) {
		case *wire.SessionList:
			for _, s := range m.Sessions {
				if s.CallID == id {
					t.Fatalf("%s: the refused device was offered call %s", when, id)
				}
			}
		case *wire.Reject:
		default:
			t.Fatalf("%s: the refused device's query got %T %+v", when, m, m)
		}
		_ = qc.Close()
	}
	lc := n.rawQuery(t, laptop, desk)
	if list, ok := recvAny(t, lc).(*wire.SessionList); !ok || len(list.Sessions) != 1 {
		t.Fatalf("laptop's session list %+v", list)
	}
	denied("offered") // B: BOffered + QueryDenied
	if err := lc.Send(&wire.StopAudio{CallID: id}, time.Second); err != nil {
		t.Fatal(err)
	}
	if m, ok := recvAny(t, lc).(*wire.StopAck); !ok {
		t.Fatalf("stop-audio answered %+v", m)
	}
	denied("muted") // B: BMuted + QueryDenied
	_ = lc.Close()
	if d := desk.mustCall(t, id); d.State != "active" {
		t.Errorf("desk's call %s", d.State)
	}
	stillUp(t, bob, id, "alice/desk")
	seen := map[string]bool{}
	for _, tr := range n.transitions.snapshot() {
		if tr.Role == handoff.RoleB && tr.Event == handoff.EvQueryDenied && tr.Err == nil {
			seen[tr.From.String()] = true
		}
	}
	for _, st := range []handoff.State{handoff.BOffered, handoff.BMuted} {
		if !seen[st.String()] {
			t.Errorf("B made no %s + QueryDenied transition (saw %v)", st, seen)
		}
	}
}
