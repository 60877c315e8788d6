package endpoint

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/baton-voice/baton/p2p/wire"
)

// packetsFlow reports whether p's call id receives packets: the count
// grows over a few packet times.
func packetsFlow(t *testing.T, p *party, id string) (before, after uint64) {
	t.Helper()
	count := func() uint64 {
		ci, err := p.Call(id)
		if err != nil || ci.Media == nil {
			t.Fatalf("call %s at %s: %v %+v", id, p.Identity(), err, ci)
		}
		return ci.Media.PacketsReceived
	}
	before = count()
	time.Sleep(300 * time.Millisecond)
	return before, count()
}

func TestHoldResume(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	bob := n.start("bob", "mobile", withTone(440), autoAnswer)
	alice := n.start("alice", "desk", withTone(660))
	ac, bc := establish(t, alice, bob)
	ctx := context.Background()
	eventually(t, "audio both ways", func() bool {
		a, _ := alice.Call(ac.ID)
		b, _ := bob.Call(bc.ID)
		return a.Media != nil && b.Media != nil && a.Media.PacketsReceived > 5 && b.Media.PacketsReceived > 5
	})

	if err := alice.Hold(ctx, ac.ID, true); err != nil {
		t.Fatalf("hold: %v", err)
	}
	if ev := alice.next(t, EventHeld); ev.CallID != ac.ID || !contains(ev.Detail, "by=local direction=sendonly") {
		t.Errorf("alice's held event %+v", ev)
	}
	if ev := bob.next(t, EventHeld); ev.CallID != bc.ID || !contains(ev.Detail, "by=remote direction=recvonly") {
		t.Errorf("bob's held event %+v", ev)
	}
	a, _ := alice.Call(ac.ID)
	b, _ := bob.Call(bc.ID)
	if a.MediaDirection != "sendonly" || a.HeldBy != "local" || b.MediaDirection != "recvonly" || b.HeldBy != "remote" {
		t.Errorf("while held: alice %s/%s, bob %s/%s", a.MediaDirection, a.HeldBy, b.MediaDirection, b.HeldBy)
	}
	time.Sleep(100 * time.Millisecond) // packets in flight when the hold took effect
	if x, y := packetsFlow(t, bob, bc.ID); x != y {
		t.Errorf("bob received %d packets while held", y-x)
	}
	if x, y := packetsFlow(t, alice, ac.ID); x != y {
		t.Errorf("alice received %d packets while holding", y-x)
	}
	// Holding again changes nothing.
	if err := alice.Hold(ctx, ac.ID, true); err != nil {
		t.Fatalf("second hold: %v", err)
	}

	if err := alice.Hold(ctx, ac.ID, false); err != nil {
		t.Fatalf("resume: %v", err)
	}
	if ev := bob.next(t, EventResumed); ev.CallID != bc.ID || !contains(ev.Detail, "by=remote direction=sendrecv") {
		t.Errorf("bob's resumed event %+v", ev)
	}
	alice.next(t, EventResumed)
	eventually(t, "audio both ways again", func() bool {
		x, y := packetsFlow(t, bob, bc.ID)
		u, v := packetsFlow(t, alice, ac.ID)
		return y > x+5 && v > u+5
	})
	a, _ = alice.Call(ac.ID)
	b, _ = bob.Call(bc.ID)
	if !a.SRTP || a.Media.AuthFailed != 0 || b.Media.AuthFailed != 0 {
		t.Errorf("after resume: srtp %v, auth failures alice %d bob %d", a.SRTP, a.Media.AuthFailed, b.Media.AuthFailed)
	}
	if a.MediaDirection != "sendrecv" || a.HeldBy != "" || b.MediaDirection != "sendrecv" {
		t.Errorf("after resume: alice %s/%q bob %s", a.MediaDirection, a.HeldBy, b.MediaDirection)
	}

	// The callee holds too; then both hold: inactive.
	if err := bob.Hold(ctx, bc.ID, true); err != nil {
		t.Fatalf("bob holds: %v", err)
	}
	if err := alice.Hold(ctx, ac.ID, true); err != nil {
		t.Fatalf("alice holds as well: %v", err)
	}
	a, _ = alice.Call(ac.ID)
	// The answerer applies an update right after its ack: a moment later.
	eventually(t, "bob inactive", func() bool { b, _ = bob.Call(bc.ID); return b.MediaDirection == "inactive" })
	if a.MediaDirection != "inactive" || b.MediaDirection != "inactive" || a.HeldBy != "both" {
		t.Errorf("both holding: alice %s/%s, bob %s", a.MediaDirection, a.HeldBy, b.MediaDirection)
	}
	if err := bob.Hold(ctx, bc.ID, false); err != nil {
		t.Fatalf("bob resumes: %v", err)
	}
	if b, _ = bob.Call(bc.ID); b.MediaDirection != "recvonly" || b.HeldBy != "remote" {
		t.Errorf("bob resumed, alice holds: bob %s/%s", b.MediaDirection, b.HeldBy)
	}
}

func TestSetCodec(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	bob := n.start("bob", "mobile", withTone(440), autoAnswer, withCodecs("PCMU", "PCMA"))
	alice := n.start("alice", "desk", withTone(660), withCodecs("PCMU", "PCMA"))
	ac, bc := establish(t, alice, bob)
	ctx := context.Background()
	if ac.Codec != "PCMU" {
		t.Fatalf("codec %s at setup", ac.Codec)
	}
	eventually(t, "audio both ways in PCMU", func() bool {
		a, _ := alice.Call(ac.ID)
		b, _ := bob.Call(bc.ID)
		return a.Media != nil && b.Media != nil && a.Media.PacketsReceived > 5 && b.Media.PacketsReceived > 5
	})
	// The callee asks: both switch.
	if err := bob.SetCodec(ctx, bc.ID, "PCMA"); err != nil {
		t.Fatalf("SetCodec: %v", err)
	}
	if ev := alice.next(t, EventCodecChanged); !contains(ev.Detail, "codec=PCMA previous=PCMU") {
		t.Errorf("alice's event %+v", ev)
	}
	a := alice.waitState(t, ac.ID, "active")
	b := bob.waitState(t, bc.ID, "active")
	if a.Codec != "PCMA" || b.Codec != "PCMA" {
		t.Fatalf("codec alice %s bob %s, want PCMA", a.Codec, b.Codec)
	}
	eventually(t, "audio in PCMA both ways", func() bool {
		x, y := packetsFlow(t, bob, bc.ID)
		u, v := packetsFlow(t, alice, ac.ID)
		return y > x+5 && v > u+5
	})
	if a, _ = alice.Call(ac.ID); a.Media.AuthFailed != 0 || !a.SRTP {
		t.Errorf("after the switch: srtp %v, auth failures %d", a.SRTP, a.Media.AuthFailed)
	}
	for _, p := range []struct {
		who  string
		info CallInfo
	}{{"alice", a}, {"bob", b}} {
		p.info, _ = map[string]*party{"alice": alice, "bob": bob}[p.who].Call(p.info.ID)
		cc := p.info.CodecChange
		if cc == nil || cc.From != "PCMU" || cc.To != "PCMA" || cc.Reason != "codec-change" || cc.ReceiveGapMS <= 0 {
			t.Errorf("%s's codec change %+v, want PCMU -> PCMA, codec-change, a receive gap", p.who, cc)
			continue
		}
		t.Logf("%s: no audio from the peer for %.1f ms around the switch", p.who, cc.ReceiveGapMS)
	}

	tests := []struct {
		name   string
		p      *party
		id     string
		codec  string
		target error
		says   string
	}{
		{"not a codec here", alice, ac.ID, "opus", ErrNoCodec, `"opus" is not a codec of alice/desk`},
		{"unknown call", alice, "c-nope", "PCMU", ErrNoSuchCall, "c-nope"},
	}
	for _, tt := range tests {
		err := tt.p.SetCodec(ctx, tt.id, tt.codec)
		if !isErr(err, tt.target) || !contains(err.Error(), tt.says) {
			t.Errorf("%s: SetCodec = %v, want %v saying %q", tt.name, err, tt.target, tt.says)
		}
	}
	// Back to PCMU, asked by the caller; the same codec again is no change.
	if err := alice.SetCodec(ctx, ac.ID, "PCMU"); err != nil {
		t.Fatal(err)
	}
	if err := alice.SetCodec(ctx, ac.ID, "PCMU"); err != nil {
		t.Fatal(err)
	}
	// The answerer switches right after its ack, so a moment after.
	eventually(t, "bob back on PCMU", func() bool { b, _ = bob.Call(bc.ID); return b.Codec == "PCMU" })
}

// TestMediaUpdateGlare drives one side by hand so that both updates
// cross for certain: the party whose identity sorts first wins.
func TestMediaUpdateGlare(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		real, raw [2]string // user, device
		realWins  bool
	}{
		{"real party loses", [2]string{"bob", "mobile"}, [2]string{"alice", "desk"}, false},
		{"real party wins", [2]string{"alice", "desk"}, [2]string{"bob", "mobile"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			n := newNetwork(t)
			real := n.start(tt.real[0], tt.real[1], autoAnswer)
			raw := n.rawLogin(t, tt.raw[0], tt.raw[1])
			conn := n.rawDial(t, raw, real)
			id := "c-glare"
			inv := &wire.Invite{CallID: id, From: tt.raw[0] + "/" + tt.raw[1], To: tt.real[0] + "/" + tt.real[1], Codecs: []string{"PCMU"},
				Media: wire.Media{Addr: "127.0.0.1:9", SSRC: 1, SRTPKey: make([]byte, wire.SRTPKeyLen), PtimeMS: 20}}
			if err := conn.Send(inv, wait); err != nil {
				t.Fatal(err)
			}
			recvUntil(t, conn, wire.TypeAccept)
			real.waitState(t, id, "active")

			held := make(chan error, 1)
			go func() { held <- real.Hold(context.Background(), id, true) }()
			ours := recvUntil(t, conn, wire.TypeMediaUpdate).(*wire.MediaUpdate)
			if ours.Version != 1 || ours.Direction != wire.MediaSendOnly {
				t.Fatalf("real party's update %+v", ours)
			}
			// The raw party holds at the same moment.
			if err := conn.Send(&wire.MediaUpdate{CallID: id, Version: 1, Direction: wire.MediaSendOnly}, wait); err != nil {
				t.Fatal(err)
			}
			ack := recvUntil(t, conn, wire.TypeMediaUpdateAck).(*wire.MediaUpdateAck)
			if tt.realWins {
				if ack.Code != wire.CodeGlare || ack.Version != 1 {
					t.Fatalf("winner's answer to the crossing update %+v, want glare", ack)
				}
				// The loser accepts the winner's update.
				if err := conn.Send(&wire.MediaUpdateAck{CallID: id, Version: 1, Direction: wire.MediaRecvOnly, Codec: "PCMU"}, wait); err != nil {
					t.Fatal(err)
				}
				if err := <-held; err != nil {
					t.Fatalf("winner's Hold: %v", err)
				}
				if ci, _ := real.Call(id); ci.MediaDirection != "sendonly" {
					t.Errorf("winner's direction %s", ci.MediaDirection)
				}
				return
			}
			if ack.Code != "" || ack.Direction != wire.MediaRecvOnly {
				t.Fatalf("loser's answer to the winning update %+v, want accepted, recvonly", ack)
			}
			if err := conn.Send(&wire.MediaUpdateAck{CallID: id, Version: 1, Code: wire.CodeGlare, Reason: "crossed"}, wait); err != nil {
				t.Fatal(err)
			}
			again := recvUntil(t, conn, wire.TypeMediaUpdate).(*wire.MediaUpdate)
			if again.Version != 2 || again.Direction != wire.MediaInactive {
				t.Fatalf("loser's update sent again %+v, want version 2 inactive", again)
			}
			if err := conn.Send(&wire.MediaUpdateAck{CallID: id, Version: 2, Direction: wire.MediaInactive, Codec: "PCMU"}, wait); err != nil {
				t.Fatal(err)
			}
			if err := <-held; err != nil {
				t.Fatalf("loser's Hold: %v", err)
			}
			if ci, _ := real.Call(id); ci.MediaDirection != "inactive" || ci.HeldBy != "both" {
				t.Errorf("loser's direction %s/%s", ci.MediaDirection, ci.HeldBy)
			}
		})
	}
}

// TestMediaUpdateRefused: an update for a codec that was not offered is
// refused with unsupported-codec and nothing changes; a repeated version
// is answered with the state as it is.
func TestMediaUpdateRefused(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	bob := n.start("bob", "mobile", autoAnswer)
	raw := n.rawLogin(t, "alice", "desk")
	conn := n.rawDial(t, raw, bob)
	id := "c-refused"
	inv := &wire.Invite{CallID: id, From: "alice/desk", To: "bob/mobile", Codecs: []string{"PCMU"},
		Media: wire.Media{Addr: "127.0.0.1:9", SSRC: 1, SRTPKey: make([]byte, wire.SRTPKeyLen), PtimeMS: 20}}
	if err := conn.Send(inv, wait); err != nil {
		t.Fatal(err)
	}
	recvUntil(t, conn, wire.TypeAccept)
	bob.waitState(t, id, "active")
	for i, codec := range []string{"PCMA", "G729"} { // PCMA: bob has it, the invite did not offer it
		if err := conn.Send(&wire.MediaUpdate{CallID: id, Version: int64(i + 1), Direction: wire.MediaSendRecv, Codec: codec}, wait); err != nil {
			t.Fatal(err)
		}
		ack := recvUntil(t, conn, wire.TypeMediaUpdateAck).(*wire.MediaUpdateAck)
		if ack.Code != wire.CodeUnsupported || ack.Codec != "PCMU" || !strings.Contains(ack.Reason, codec) {
			t.Errorf("%s: ack %+v, want unsupported-codec naming it", codec, ack)
		}
	}
	if err := conn.Send(&wire.MediaUpdate{CallID: id, Version: 3, Direction: wire.MediaSendOnly}, wait); err != nil {
		t.Fatal(err)
	}
	if ack := recvUntil(t, conn, wire.TypeMediaUpdateAck).(*wire.MediaUpdateAck); ack.Code != "" || ack.Direction != wire.MediaRecvOnly {
		t.Fatalf("hold ack %+v", ack)
	}
	// The same version again: answered, nothing new.
	if err := conn.Send(&wire.MediaUpdate{CallID: id, Version: 3, Direction: wire.MediaSendRecv}, wait); err != nil {
		t.Fatal(err)
	}
	if ack := recvUntil(t, conn, wire.TypeMediaUpdateAck).(*wire.MediaUpdateAck); ack.Direction != wire.MediaRecvOnly {
		t.Fatalf("repeat ack %+v, want the state unchanged (recvonly)", ack)
	}
	if ci, _ := bob.Call(id); ci.Codec != "PCMU" || ci.MediaDirection != "recvonly" {
		t.Errorf("bob's call %s/%s", ci.Codec, ci.MediaDirection)
	}
}

// TestHoldRefusals: hold needs an active call, and a held call is not
// offered to a pull (docs/protocol.md §17).
func TestHoldRefusals(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	bob := n.start("bob", "mobile", withTone(440))
	desk := n.start("alice", "desk", withTone(660))
	desk.waitOnline(t, "bob/mobile")
	ctx := context.Background()
	out, err := desk.Dial(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	desk.waitState(t, out.ID, "ringing")
	if err := desk.Hold(ctx, out.ID, true); !isErr(err, ErrBadState) || !contains(err.Error(), "ringing") {
		t.Errorf("hold of a ringing call = %v, want bad state", err)
	}
	if err := desk.Hold(ctx, "c-nope", true); !isErr(err, ErrNoSuchCall) {
		t.Errorf("hold of no call = %v", err)
	}
	if err := bob.Answer(ctx, out.ID); err != nil {
		t.Fatal(err)
	}
	desk.waitState(t, out.ID, "active")
	if err := desk.Hold(ctx, out.ID, true); err != nil {
		t.Fatal(err)
	}
	laptop := n.start("alice", "laptop")
	laptop.waitOnline(t, "alice/desk")
	h, err := laptop.Pull(ctx, PullRequest{From: "desk"})
	if err == nil || h.State == "done" {
		t.Fatalf("pull of a held call: %v (%+v), want refused", err, h)
	}
	t.Logf("pull of a held call: %v", err)
	if ci := desk.waitState(t, out.ID, "active"); ci.HeldBy != "local" {
		t.Errorf("desk's call after the refused pull: %+v", ci)
	}
}

// TestHoldAfterPull: media updates follow the call through a handoff.
// The desk holds and resumes (its versions 1 and 2), the laptop pulls the
// call, and the laptop's own first update (version 1, a new device) holds
// bob; bob's hold reaches the laptop, not the desk.
func TestHoldAfterPull(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	bob := n.start("bob", "mobile", withTone(440), autoAnswer)
	desk := n.start("alice", "desk", withTone(660))
	dc, bc := establish(t, desk, bob)
	ctx := context.Background()
	for _, hold := range []bool{true, false} {
		if err := desk.Hold(ctx, dc.ID, hold); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "bob off hold", func() bool { b, _ := bob.Call(bc.ID); return b.MediaDirection == "sendrecv" })
	laptop := n.start("alice", "laptop", withTone(880))
	laptop.waitOnline(t, "alice/desk")
	h, err := laptop.Pull(ctx, PullRequest{From: "desk"})
	if err != nil || h.State != "done" {
		t.Fatalf("pull: %v (%+v)", err, h)
	}
	lc := laptop.waitState(t, dc.ID, "active")
	if err := laptop.Hold(ctx, lc.ID, true); err != nil {
		t.Fatalf("laptop's hold after the pull: %v", err)
	}
	eventually(t, "bob held by the laptop", func() bool {
		b, _ := bob.Call(bc.ID)
		return b.MediaDirection == "recvonly" && b.HeldBy == "remote"
	})
	if err := bob.Hold(ctx, bc.ID, true); err != nil {
		t.Fatalf("bob's hold to the laptop: %v", err)
	}
	if l, _ := laptop.Call(lc.ID); l.MediaDirection != "inactive" || l.HeldBy != "both" {
		t.Errorf("laptop's call %s/%s, want inactive, held by both", l.MediaDirection, l.HeldBy)
	}
}
