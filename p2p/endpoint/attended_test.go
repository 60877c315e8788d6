package endpoint

import (
	"context"
	"errors"
	"testing"

	"github.com/baton-voice/baton/p2p/audio"
	"github.com/baton-voice/baton/p2p/handoff"
	"github.com/baton-voice/baton/p2p/wire"
)

// attendedSetup is alice/laptop (two call slots, 660 Hz) in an active call
// with bob/mobile (440 Hz) and one with carol/laptop (880 Hz), both
// phones of one slot.
func attendedSetup(t *testing.T, n *network, carolOpts ...func(*Config)) (alice, bob, carol *party, toBob, toCarol CallInfo) {
	t.Helper()
	bob = n.start("bob", "mobile", withTone(440), autoAnswer)
	carol = n.start("carol", "laptop", append([]func(*Config){withTone(880), autoAnswer}, carolOpts...)...)
	alice = n.start("alice", "laptop", withTone(660), func(c *Config) { c.MaxCalls = 2 })
	toBob, _ = establish(t, alice, bob)
	toCarol, _ = establish(t, alice, carol)
	bob.waitOnline(t, "carol/laptop")
	return alice, bob, carol, toBob, toCarol
}

// An attended transfer between P2P devices: alice joins bob and carol.
// Bob calls carol with invite-replaces, carol answers at once and ends her
// call with alice; alice's call with bob ends; bob and carol hear each
// other.
func TestTransferAttended(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	alice, bob, carol, toBob, toCarol := attendedSetup(t, n)
	info, err := alice.TransferAttended(context.Background(), toBob.ID, toCarol.ID)
	if err != nil {
		t.Fatalf("attended transfer: %v (%+v)", err, info)
	}
	if info.State != "done" || info.Peer != "bob/mobile" || info.Target != "carol/laptop" || info.Replaces != toCarol.ID || info.NewCallID == "" {
		t.Fatalf("transfer info %+v", info)
	}
	for _, id := range []string{toBob.ID, toCarol.ID} {
		alice.waitState(t, id, "ended")
	}
	old := carol.waitState(t, toCarol.ID, "ended")
	if !contains(old.EndReason, "replaced by call "+info.NewCallID) {
		t.Errorf("carol's call with alice ended %q, want replaced", old.EndReason)
	}
	bob.waitState(t, toBob.ID, "ended")
	if bc := bob.waitState(t, info.NewCallID, "active"); bc.Peer != "carol/laptop" {
		t.Fatalf("bob's new call %+v", bc)
	}
	if cc := carol.waitState(t, info.NewCallID, "active"); cc.Peer != "bob/mobile" {
		t.Fatalf("carol's new call %+v", cc)
	}
	// Each sink holds alice's 660 Hz, then the other's tone.
	for _, c := range []struct {
		p    *party
		want float64
	}{{carol, 440}, {bob, 880}} {
		start := len(c.p.sink.samples())
		eventually(t, c.p.Identity().String()+" to hear the other", func() bool { return len(c.p.sink.samples()) > start+8000 })
		s := c.p.sink.samples()
		if f := audio.DominantFrequency(s[len(s)-4000:], 8000, []float64{440, 660, 880}); f != c.want {
			t.Errorf("%s hears %v Hz, want %v", c.p.Identity(), f, c.want)
		}
	}
	carol.next(t, "transfer.replaced")
}

// Failures of an attended transfer leave both calls as they were.
func TestTransferAttendedFailures(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	refuse := func(c *Config) {
		c.Policy = policyFunc(func(r handoff.Request) handoff.Decision {
			return handoff.Decision{Allow: r.Kind != handoff.KindTransfer, Reason: "carol takes no transfers"}
		})
	}
	alice, bob, carol, toBob, toCarol := attendedSetup(t, n, refuse)
	ctx := context.Background()
	kept := func(what string) {
		t.Helper()
		for _, c := range []struct {
			p  *party
			id string
		}{{alice, toBob.ID}, {alice, toCarol.ID}, {bob, toBob.ID}, {carol, toCarol.ID}} {
			if ci, err := c.p.Call(c.id); err != nil || ci.State != "active" {
				t.Fatalf("%s: %s's call %s is %+v, %v; want active", what, c.p.Identity(), c.id, ci, err)
			}
		}
		live := 0
		for _, ci := range bob.Calls() {
			if ci.State != "ended" {
				live++
			}
		}
		if live != 1 {
			t.Fatalf("%s: bob has %d live calls, want the one with alice", what, live)
		}
	}
	// The target's policy refuses: bob's call fails forbidden, with the reason.
	_, err := alice.TransferAttended(ctx, toBob.ID, toCarol.ID)
	if !errors.Is(err, ErrForbidden) || !contains(err.Error(), "carol takes no transfers") {
		t.Fatalf("refused by carol's policy: %v, want ErrForbidden with the reason", err)
	}
	t.Logf("refused: %v", err)
	kept("policy")
	for _, c := range []struct {
		name     string
		id1, id2 string
		want     error
	}{
		{"the same call twice", toBob.ID, toBob.ID, ErrInvalidTarget},
		{"no such call to replace", toBob.ID, "c-0000000000000000", ErrNoSuchCall},
		{"no such call to transfer", "c-0000000000000000", toCarol.ID, ErrNoSuchCall},
	} {
		if _, err := alice.TransferAttended(ctx, c.id1, c.id2); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	kept("bad arguments")
}

// The target checks the Replaces: one bob signed himself, or one naming
// a call carol does not have with its signer, is refused, and carol's
// call with alice stays.
func TestInviteReplacesForged(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	alice, bob, carol, _, toCarol := attendedSetup(t, n)
	_ = alice
	sign := func(r wire.Replaces, by *Endpoint) *wire.Replaces {
		g, err := by.signGrant(r.CallID, bob.Identity(), carol.Identity()) // a nonce and a key's signature
		if err != nil {
			t.Fatal(err)
		}
		r.NotAfterUnix, r.Nonce = g.NotAfterUnix, g.Nonce
		sig, err := by.signReplaces(&r)
		if err != nil {
			t.Fatal(err)
		}
		r.Signature = sig
		return &r
	}
	base := wire.Replaces{CallID: toCarol.ID, From: "alice/laptop", To: "bob/mobile", Target: "carol/laptop"}
	other := base
	other.CallID = "c-00000000000000ab"
	for _, c := range []struct {
		name string
		r    *wire.Replaces
		code wire.ErrorCode
	}{
		{"signed by bob", sign(base, bob.Endpoint), wire.CodeForbidden},
		{"a call carol does not have", sign(other, alice.Endpoint), wire.CodeUnknownCall},
	} {
		ci, err := bob.DialWith(context.Background(), "carol/laptop", CallOptions{Replaces: c.r, transfer: true})
		if err != nil {
			t.Fatalf("%s: dial: %v", c.name, err)
		}
		ended := bob.waitState(t, ci.ID, "ended")
		if ended.Result != string(c.code) {
			t.Errorf("%s: bob's call ended %q (%s), want %s", c.name, ended.Result, ended.EndReason, c.code)
		}
		t.Logf("%s: %s: %s", c.name, ended.Result, ended.EndReason)
		if cc, _ := carol.Call(toCarol.ID); cc.State != "active" {
			t.Fatalf("%s: carol's call with alice is %s", c.name, cc.State)
		}
	}
	// The genuine one (alice's signature) replaces the call; used again, it
	// names a call that is gone.
	good := sign(base, alice.Endpoint)
	ci, err := bob.DialWith(context.Background(), "carol/laptop", CallOptions{Replaces: good, transfer: true})
	if err != nil {
		t.Fatal(err)
	}
	bob.waitState(t, ci.ID, "active")
	carol.waitState(t, toCarol.ID, "ended")
	if err := bob.Hangup(context.Background(), ci.ID); err != nil {
		t.Fatal(err)
	}
	again, err := bob.DialWith(context.Background(), "carol/laptop", CallOptions{Replaces: good, transfer: true})
	if err != nil {
		t.Fatal(err)
	}
	if ended := bob.waitState(t, again.ID, "ended"); ended.Result != string(wire.CodeUnknownCall) {
		t.Errorf("replayed: bob's call ended %q (%s), want unknown-call", ended.Result, ended.EndReason)
	}
}

// The target gone (carol's device crashed: no bye, its listener closed,
// still listed online): bob cannot reach her, alice gets the error, and
// her call with bob stays as it was.
func TestTransferAttendedTargetGone(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	alice, bob, carol, toBob, toCarol := attendedSetup(t, n)
	carol.crash()
	info, err := alice.TransferAttended(context.Background(), toBob.ID, toCarol.ID)
	if err == nil || info.State == "done" || !(errors.Is(err, ErrOffline) || errors.Is(err, ErrUnreachable)) {
		t.Fatalf("attended transfer to a crashed target: %+v, %v; want ErrOffline or ErrUnreachable", info, err)
	}
	t.Logf("target gone: %v", err)
	if ci, err := alice.Call(toBob.ID); err != nil || ci.State != "active" {
		t.Fatalf("alice's call with bob after the failure: %+v, %v", ci, err)
	}
	if ci, err := bob.Call(toBob.ID); err != nil || ci.State != "active" {
		t.Fatalf("bob's call with alice after the failure: %+v, %v", ci, err)
	}
}
