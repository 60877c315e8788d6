package endpoint

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/baton-voice/baton/p2p/audio"
	"github.com/baton-voice/baton/p2p/handoff"
	"github.com/baton-voice/baton/p2p/wire"
)

// transferSetup is alice/laptop in an active call with bob/mobile (both
// MaxCalls 1, as phones are).
func transferSetup(t *testing.T, n *network) (alice, bob *party, aliceCall, bobCall CallInfo) {
	t.Helper()
	bob = n.start("bob", "mobile", withTone(440), autoAnswer)
	alice = n.start("alice", "laptop", withTone(660))
	aliceCall, bobCall = establish(t, alice, bob)
	return alice, bob, aliceCall, bobCall
}

// A blind transfer between P2P devices: alice asks bob to call carol; bob
// calls carol in the slot the transfer lends, carol answers, alice's call
// ends, and carol hears bob.
func TestTransferToP2PDevice(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	alice, bob, ac, _ := transferSetup(t, n)
	carol := n.start("carol", "laptop", withTone(880), autoAnswer)
	bob.waitOnline(t, "carol/laptop")

	info, err := alice.Transfer(context.Background(), ac.ID, "carol")
	if err != nil {
		t.Fatalf("transfer: %v (%+v)", err, info)
	}
	if info.State != "done" || info.Peer != "bob/mobile" || info.Target != "carol" || info.NewCallID == "" {
		t.Fatalf("transfer info %+v", info)
	}
	alice.waitState(t, ac.ID, "ended")
	bob.waitState(t, ac.ID, "ended")
	if bc := bob.waitState(t, info.NewCallID, "active"); bc.Peer != "carol/laptop" {
		t.Fatalf("bob's new call %+v", bc)
	}
	cc := carol.waitState(t, info.NewCallID, "active")
	if cc.Peer != "bob/mobile" {
		t.Fatalf("carol's call %+v", cc)
	}
	eventually(t, "carol to hear bob", func() bool { return len(carol.sink.samples()) > 8000 })
	if f := audio.DominantFrequency(carol.sink.samples()[4000:8000], 8000, []float64{440, 660, 880}); f != 440 {
		t.Errorf("carol hears %v Hz, want bob's 440", f)
	}
	for _, p := range []*party{alice, bob} {
		ev := p.next(t, "transfer.done")
		t.Logf("%s: %s %s", p.Identity(), ev.Type, ev.Detail)
	}
}

// Failures leave the call as it was, with an error naming why.
func TestTransferFailures(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	alice, bob, ac, _ := transferSetup(t, n)
	ctx := context.Background()
	for _, c := range []struct {
		name, target string
		want         error
	}{
		{"target not bob's buddy", "mallory", ErrUnknownPeer},
		{"target offline", "carol", ErrOffline},
		{"target a party of the call", "bob/mobile", ErrInvalidTarget},
		{"target not a name", "Carol!", ErrInvalidTarget},
	} {
		info, err := alice.Transfer(ctx, ac.ID, c.target)
		if !errors.Is(err, c.want) || info.State == "done" {
			t.Errorf("%s: %+v, %v; want %v", c.name, info, err, c.want)
			continue
		}
		t.Logf("%s: %v", c.name, err)
		if ci, _ := alice.Call(ac.ID); ci.State != "active" {
			t.Fatalf("%s: alice's call is %s after a failed transfer", c.name, ci.State)
		}
	}
	if _, err := alice.Transfer(ctx, "c-0000000000000000", "carol"); !errors.Is(err, ErrNoSuchCall) {
		t.Errorf("unknown call: %v", err)
	}
	if len(bob.Calls()) != 1 {
		t.Errorf("bob has %d calls, want the one with alice", len(bob.Calls()))
	}
	if ci, _ := bob.Call(ac.ID); ci.State != "active" {
		t.Errorf("bob's call is %s", ci.State)
	}
}

// Only the far party of a call may transfer it: carol, a buddy of bob's
// but not in the call, asking bob to transfer it learns nothing.
func TestTransferOnlyByTheCallsPeer(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	_, bob, ac, _ := transferSetup(t, n)
	carol := n.start("carol", "laptop")
	carol.waitOnline(t, "bob/mobile")
	peer, addr, err := carol.resolve("bob/mobile")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := carol.dial(context.Background(), peer, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.Send(&wire.TransferRequest{CallID: ac.ID, From: "carol/laptop", Target: "carol"}, time.Second); err != nil {
		t.Fatal(err)
	}
	m := recvUntil(t, conn, wire.TypeReject).(*wire.Reject)
	if m.Code != wire.CodeUnknownCall {
		t.Errorf("reject %+v, want unknown-call", m)
	}
	if ci, _ := bob.Call(ac.ID); ci.State != "active" || len(bob.Calls()) != 1 {
		t.Errorf("bob's call %+v after a stranger's transfer request", ci)
	}
}

// The transferee's policy decides a transfer (handoff.KindTransfer, peer:
// the target): a refusal reaches the transferor with the reason, and the
// call stays.
func TestTransferRefusedByPolicy(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	var asked []handoff.Request
	var mu sync.Mutex
	bob := n.start("bob", "mobile", withTone(440), autoAnswer, func(c *Config) {
		c.Policy = policyFunc(func(r handoff.Request) handoff.Decision {
			mu.Lock()
			asked = append(asked, r)
			mu.Unlock()
			return handoff.Decision{Allow: r.Kind != handoff.KindTransfer || r.Peer != "carol", Reason: "no transfers to carol"}
		})
	})
	alice := n.start("alice", "laptop", withTone(660))
	ac, _ := establish(t, alice, bob)
	n.start("carol", "laptop", autoAnswer)
	bob.waitOnline(t, "carol/laptop")
	_, err := alice.Transfer(context.Background(), ac.ID, "carol")
	if !errors.Is(err, ErrForbidden) || !contains(err.Error(), "no transfers to carol") {
		t.Fatalf("transfer: %v, want ErrForbidden with the policy's reason", err)
	}
	mu.Lock()
	got := append([]handoff.Request(nil), asked...)
	mu.Unlock()
	want := handoff.Request{Kind: handoff.KindTransfer, Requester: "alice/laptop", Owner: "bob/mobile", CallID: ac.ID, Peer: "carol"}
	if len(got) != 1 || got[0] != want {
		t.Errorf("the policy was asked %+v, want %+v", got, want)
	}
	if ci, _ := alice.Call(ac.ID); ci.State != "active" || len(bob.Calls()) != 1 {
		t.Errorf("after the refusal alice's call is %s, bob has %d calls", ci.State, len(bob.Calls()))
	}
}

// policyFunc is a handoff.Policy from a function.
type policyFunc func(handoff.Request) handoff.Decision

func (f policyFunc) Decide(_ context.Context, r handoff.Request) (handoff.Decision, error) {
	return f(r), nil
}

// A transferor that gives up (its request times out while the target
// rings) stops the transfer: the transferee hangs up its call to the
// target and keeps the original call.
func TestTransferAbandonedByTransferor(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	alice, bob, ac, _ := transferSetup(t, n)
	carol := n.start("carol", "laptop") // rings, never answers
	bob.waitOnline(t, "carol/laptop")
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if _, err := alice.Transfer(ctx, ac.ID, "carol"); err == nil {
		t.Fatal("a transfer whose target never answered succeeded")
	}
	ring := carol.next(t, "call.ringing")
	carol.waitState(t, ring.CallID, "ended")
	bob.waitState(t, ring.CallID, "ended")
	time.Sleep(6 * time.Second) // past the transferee's 5 s wait for a bye
	if ci, _ := bob.Call(ac.ID); ci.State != "active" {
		t.Errorf("bob's call with alice is %s after an abandoned transfer", ci.State)
	}
	if ci, _ := alice.Call(ac.ID); ci.State != "active" {
		t.Errorf("alice's call is %s after an abandoned transfer", ci.State)
	}
}
