package endpoint

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/baton-voice/baton/p2p/audio"
	"github.com/baton-voice/baton/p2p/pki"
	"github.com/baton-voice/baton/p2p/wire"
)

// pushSetup is alice/laptop in a call with bob, and alice/mobile online.
func pushSetup(t *testing.T, n *network, mobileOpts ...func(*Config)) (laptop, mobile, bob *party, callID string) {
	t.Helper()
	bob = n.start("bob", "mobile", withTone(440), autoAnswer)
	laptop = n.start("alice", "laptop", withTone(660))
	lc, _ := establish(t, laptop, bob)
	eventually(t, "bob to hear the laptop", func() bool { return len(bob.sink.samples()) > 8000 })
	mobile = n.start("alice", "phone", append([]func(*Config){withTone(880)}, mobileOpts...)...)
	laptop.waitOnline(t, "alice/phone")
	return laptop, mobile, bob, lc.ID
}

// The device that has the call pushes it to another device of its user:
// the target pulls it with the twelve steps, bob's call goes on with the
// target, and bob hears the laptop, then the phone.
func TestPushToOwnDevice(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	laptop, phone, bob, id := pushSetup(t, n)

	h, err := laptop.Push(context.Background(), PushRequest{CallID: id, To: "phone"})
	if err != nil {
		t.Fatalf("push: %v (%+v)", err, h)
	}
	if h.ID == "" || h.Kind != "push" || h.State != "done" || h.From != "alice/laptop" || h.To != "alice/phone" || h.CallID != id || h.Peer != "bob/mobile" {
		t.Fatalf("push info %+v", h)
	}
	if len(h.Steps) != 12 {
		t.Fatalf("push reports %d steps of the target's pull, want 12: %+v", len(h.Steps), h.Steps)
	}
	for i, s := range h.Steps {
		t.Logf("step %2d %+8.2f ms  %s: %s", s.Step, s.SinceStartMS, s.Title, s.Detail)
		if s.Step != i+1 {
			t.Fatalf("step %d is %d", i+1, s.Step)
		}
	}
	// The target's own record of its pull is the one the push names.
	pull, err := phone.Handoff(h.TargetHandoff)
	if err != nil || pull.Kind != "pull" || pull.State != "done" || pull.From != "alice/laptop" {
		t.Fatalf("the phone's pull %q: %+v, %v", h.TargetHandoff, pull, err)
	}
	if rec, err := laptop.Handoff(h.ID); err != nil || rec.State != "done" || rec.Kind != "push" {
		t.Fatalf("the laptop's record of its push: %+v, %v", rec, err)
	}

	if pc := phone.waitState(t, id, "active"); pc.Peer != "bob/mobile" || pc.Direction != "pulled" {
		t.Fatalf("phone's call %+v", pc)
	}
	if lc := laptop.waitState(t, id, "ended"); lc.EndReason != "handed off to alice/phone" {
		t.Errorf("laptop's end reason %q", lc.EndReason)
	}
	if bc := bob.waitState(t, id, "active"); bc.Peer != "alice/phone" {
		t.Errorf("bob's peer %s, want alice/phone", bc.Peer)
	}
	before := len(bob.sink.samples())
	eventually(t, "bob to hear the phone", func() bool { return len(bob.sink.samples()) > before+8000 })
	segs := audio.Segments(bob.sink.samples(), 8000, 0, []float64{440, 660, 880})
	t.Logf("longest silence at bob across the push: %s", audio.LongestSilence(segs))
	var order []float64
	for _, sg := range segs {
		if !sg.Silent() && sg.Duration() >= 60*time.Millisecond && (len(order) == 0 || order[len(order)-1] != sg.Hz) {
			order = append(order, sg.Hz)
		}
	}
	if len(order) != 2 || order[0] != 660 || order[1] != 880 {
		t.Errorf("bob heard %v, want the laptop's 660 Hz then the phone's 880 Hz", order)
	}
	for {
		select {
		case ev := <-bob.events:
			if ev.Type == "call.ended" {
				t.Fatalf("bob saw %+v", ev)
			}
			continue
		default:
		}
		break
	}
}

// Push refuses targets that are not devices of this user, and a target
// refuses a push from another user through its policy: the call stays.
func TestPushToAnotherUserRefused(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	laptop, _, bob, id := pushSetup(t, n)
	carol := n.start("carol", "phone")
	laptop.waitOnline(t, "carol/phone")

	// The owner's own check: carol/phone is not alice's.
	h, err := laptop.Push(context.Background(), PushRequest{CallID: id, To: "carol/phone"})
	if !errors.Is(err, ErrForbidden) || h.ID != "" {
		t.Fatalf("push to carol/phone = %+v, %v; want ErrForbidden and no attempt", h, err)
	}
	// The target's check (handoff.Policy, as for a pull): an offer from a
	// device of another user is refused.
	h, err = laptop.pushTo(context.Background(), laptop.mustCall(t, id), carol.Identity(), carol.SignalAddr())
	if !errors.Is(err, ErrForbidden) || h.State != "refused" || h.ID == "" {
		t.Fatalf("push offered to carol = %+v, %v; want refused, ErrForbidden", h, err)
	}
	t.Logf("refused: %v", err)
	if ev := carol.next(t, "push.refused"); ev.Peer != "alice/laptop" {
		t.Errorf("carol's refusal event %+v", ev)
	}
	if got := laptop.mustCall(t, id); got.State != "active" || got.Peer != "bob/mobile" {
		t.Errorf("the laptop's call after the refused push: %+v", got)
	}
	if calls := carol.Calls(); len(calls) != 0 {
		t.Errorf("carol has calls %+v", calls)
	}
	if got := bob.mustCall(t, id); got.State != "active" || got.Peer != "alice/laptop" {
		t.Errorf("bob's call after the refused push: %+v", got)
	}
}

// A target that is offline, unknown, busy or declines: a clear error, and
// the call stays with the owner.
func TestPushFailures(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	declined := make(chan struct{}, 1)
	laptop, phone, bob, id := pushSetup(t, n, func(c *Config) {
		c.OnPush = func(_ context.Context, offer PushOffer, ringing func()) (HandoffInfo, error) {
			ringing()
			select {
			case declined <- struct{}{}:
				return HandoffInfo{}, fmt.Errorf("%w: nobody answered", ErrDeclined)
			default:
				return HandoffInfo{}, errors.New("unexpected second push")
			}
		}
	})
	tablet := n.start("alice", "tablet")
	laptop.waitOnline(t, "alice/tablet")
	_ = tablet.Close()
	eventually(t, "the laptop to see the tablet offline", func() bool {
		for _, b := range laptop.Buddies() {
			for _, d := range b.Devices {
				if b.User == "alice" && d.Device == "tablet" {
					return d.Status == "offline"
				}
			}
		}
		return false
	})

	tests := []struct {
		name   string
		req    PushRequest
		want   error
		record bool // the offer reached the target: the push is recorded
	}{
		{"offline target", PushRequest{CallID: id, To: "tablet"}, ErrOffline, false},
		{"unknown device", PushRequest{CallID: id, To: "toaster"}, ErrUnknownPeer, false},
		{"this endpoint", PushRequest{CallID: id, To: "laptop"}, ErrInvalidTarget, false},
		{"no such call", PushRequest{CallID: "c-nope", To: "phone"}, ErrNoSuchCall, false},
		{"target declines", PushRequest{CallID: id, To: "phone"}, ErrDeclined, true},
	}
	for _, tt := range tests {
		h, err := laptop.Push(context.Background(), tt.req)
		t.Logf("%s: %v", tt.name, err)
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.want)
		}
		if (h.ID != "") != tt.record {
			t.Errorf("%s: info %+v, recorded = %v", tt.name, h, tt.record)
		}
		if got := laptop.mustCall(t, id); got.State != "active" {
			t.Fatalf("%s: the laptop's call is %s", tt.name, got.State)
		}
	}
	if ev := laptop.next(t, "push.ringing"); ev.Peer != "alice/phone" {
		t.Errorf("ringing event %+v", ev)
	}
	// A target already in a call is busy.
	carol := n.start("carol", "desk", autoAnswer)
	establish(t, phone, carol)
	_, err := laptop.pushTo(context.Background(), laptop.mustCall(t, id), pki.Identity{User: "alice", Device: "phone"}, phone.SignalAddr())
	if !errors.Is(err, ErrBusy) {
		t.Errorf("push to a busy phone: %v, want ErrBusy", err)
	}
	if got := bob.mustCall(t, id); got.State != "active" || got.Peer != "alice/laptop" {
		t.Errorf("bob's call after the failed pushes: %+v", got)
	}
}

// A push offer whose from is not the connection's identity is refused.
func TestPushOfferFromMismatch(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	phone := n.start("alice", "phone")
	raw := n.rawLogin(t, "alice", "laptop")
	conn := n.rawDial(t, raw, phone)
	if err := conn.Send(&wire.PushOffer{CallID: "c-1", From: "alice/desk"}, time.Second); err != nil {
		t.Fatal(err)
	}
	m := recvUntil(t, conn, wire.TypeReject).(*wire.Reject)
	if m.Code != wire.CodeBadRequest || !contains(m.Reason, "certificate") {
		t.Errorf("reject %+v", m)
	}
}
