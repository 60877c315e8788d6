package endpoint

import (
	"context"
	"strings"
	"testing"

	"github.com/baton-voice/baton/p2p/wire"
)

// digits collects n call.dtmf events of call id at p, in arrival order.
func (p *party) digits(t *testing.T, id string, n int) (string, []Event) {
	t.Helper()
	var b strings.Builder
	var evs []Event
	for len(evs) < n {
		ev := p.next(t, EventDTMF)
		if ev.CallID != id {
			t.Fatalf("%s: dtmf event for call %s, want %s", p.Identity(), ev.CallID, id)
		}
		b.WriteString(ev.Digit)
		evs = append(evs, ev)
	}
	return b.String(), evs
}

func TestDTMFBothWays(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	bob := n.start("bob", "mobile", withTone(440), autoAnswer)
	alice := n.start("alice", "desk", withTone(660))
	ac, bc := establish(t, alice, bob)
	ctx := context.Background()

	if err := alice.SendDTMF(ctx, ac.ID, DTMFRequest{Digits: "123#"}); err != nil {
		t.Fatal(err)
	}
	if err := alice.SendDTMF(ctx, ac.ID, DTMFRequest{Digits: "*0ABCD", DurationMS: 250}); err != nil {
		t.Fatal(err)
	}
	got, evs := bob.digits(t, bc.ID, 10)
	if got != "123#*0ABCD" {
		t.Fatalf("bob got digits %q, want %q", got, "123#*0ABCD")
	}
	for i, ev := range evs {
		want := wire.DefaultDTMFDurationMS
		if i >= 4 {
			want = 250
		}
		if ev.DurationMS != want || ev.Peer != "alice/desk" {
			t.Errorf("event %d: %+v, want duration %d from alice/desk", i, ev, want)
		}
	}
	// And back: the callee presses keys too.
	if err := bob.SendDTMF(ctx, bc.ID, DTMFRequest{Digits: "987"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := alice.digits(t, ac.ID, 3); got != "987" {
		t.Fatalf("alice got digits %q, want 987", got)
	}
}

func TestSendDTMFRefused(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	n.start("bob", "mobile", withTone(440))
	alice := n.start("alice", "desk", withTone(660))
	alice.waitOnline(t, "bob/mobile")
	ctx := context.Background()
	out, err := alice.Dial(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	alice.waitState(t, out.ID, "ringing")
	tests := []struct {
		name   string
		id     string
		req    DTMFRequest
		target error
		says   string
	}{
		{"bad character", out.ID, DTMFRequest{Digits: "12x"}, ErrInvalidDTMF, "character 'x' at position 3"},
		{"lower case", out.ID, DTMFRequest{Digits: "a"}, ErrInvalidDTMF, "character 'a' at position 1"},
		{"empty", out.ID, DTMFRequest{}, ErrInvalidDTMF, "no digits"},
		{"too long", out.ID, DTMFRequest{Digits: strings.Repeat("1", wire.MaxDTMFDigits+1)}, ErrInvalidDTMF, "limit 32"},
		{"duration", out.ID, DTMFRequest{Digits: "1", DurationMS: 10}, ErrInvalidDTMF, "duration_ms 10"},
		{"unknown call", "c-nope", DTMFRequest{Digits: "1"}, ErrNoSuchCall, "c-nope"},
		{"not answered yet", out.ID, DTMFRequest{Digits: "1"}, ErrBadState, "ringing"},
	}
	for _, tt := range tests {
		err := alice.SendDTMF(ctx, tt.id, tt.req)
		if !isErr(err, tt.target) || !contains(err.Error(), tt.says) {
			t.Errorf("%s: SendDTMF = %v, want %v saying %q", tt.name, err, tt.target, tt.says)
		}
	}
}

// TestDTMFOutOfPlace: a peer that sends dtmf before the call is answered
// gets error bad-request, and the call goes on.
func TestDTMFOutOfPlace(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	bob := n.start("bob", "mobile")
	raw := n.rawLogin(t, "alice", "desk")
	conn := n.rawDial(t, raw, bob)
	inv := &wire.Invite{CallID: "c-raw-dtmf", From: "alice/desk", To: "bob/mobile", Codecs: []string{"PCMU"},
		Media: wire.Media{Addr: "127.0.0.1:9", SSRC: 1, SRTPKey: make([]byte, wire.SRTPKeyLen), PtimeMS: 20}}
	if err := conn.Send(inv, wait); err != nil {
		t.Fatal(err)
	}
	recvUntil(t, conn, wire.TypeRinging)
	if err := conn.Send(&wire.DTMF{CallID: inv.CallID, Digits: "5"}, wait); err != nil {
		t.Fatal(err)
	}
	e := recvUntil(t, conn, wire.TypeError).(*wire.Error)
	if e.Code != wire.CodeBadRequest || !contains(e.Message, "unexpected dtmf in state ringing") {
		t.Fatalf("error %+v", e)
	}
	if ci := bob.waitState(t, inv.CallID, "ringing"); ci.State != "ringing" {
		t.Fatalf("call %+v", ci)
	}
}

// TestDTMFAfterPull: DTMF follows the call through a handoff. After the
// laptop pulls the call from the desk, bob's digits reach the laptop (not
// the desk), and the laptop's reach bob.
func TestDTMFAfterPull(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	bob := n.start("bob", "mobile", withTone(440), autoAnswer)
	desk := n.start("alice", "desk", withTone(660))
	dc, bc := establish(t, desk, bob)
	ctx := context.Background()
	if err := bob.SendDTMF(ctx, bc.ID, DTMFRequest{Digits: "1"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := desk.digits(t, dc.ID, 1); got != "1" {
		t.Fatalf("desk got %q before the pull", got)
	}

	laptop := n.start("alice", "laptop", withTone(880))
	laptop.waitOnline(t, "alice/desk")
	h, err := laptop.Pull(ctx, PullRequest{From: "desk"})
	if err != nil || h.State != "done" {
		t.Fatalf("pull: %v (%+v)", err, h)
	}
	lc := laptop.waitState(t, dc.ID, "active")
	bob.waitState(t, bc.ID, "active")
	if err := bob.SendDTMF(ctx, bc.ID, DTMFRequest{Digits: "42#"}); err != nil {
		t.Fatal(err)
	}
	got, evs := laptop.digits(t, lc.ID, 3)
	if got != "42#" || evs[0].Peer != "bob/mobile" {
		t.Fatalf("laptop got %q (%+v), want 42# from bob/mobile", got, evs)
	}
	if err := laptop.SendDTMF(ctx, lc.ID, DTMFRequest{Digits: "7*"}); err != nil {
		t.Fatal(err)
	}
	got, evs = bob.digits(t, bc.ID, 2)
	if got != "7*" || evs[0].Peer != "alice/laptop" {
		t.Fatalf("bob got %q (%+v), want 7* from alice/laptop", got, evs)
	}
	// The desk let go (the laptop's release reaches it a moment after the
	// pull returned): it has no call to send DTMF on.
	desk.waitState(t, dc.ID, "ended")
	if err := desk.SendDTMF(ctx, dc.ID, DTMFRequest{Digits: "9"}); !isErr(err, ErrNoSuchCall) && !isErr(err, ErrBadState) {
		t.Fatalf("desk SendDTMF after the pull = %v, want no such call", err)
	}
	select {
	case ev := <-desk.events:
		if ev.Type == EventDTMF {
			t.Fatalf("desk got a digit after the pull: %+v", ev)
		}
	default:
	}
}
