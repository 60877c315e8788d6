package gateway

import (
	"context"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// waitDialog reads NOTIFYs until one has call callID in state; it returns
// that dialog.
func (p *phone) waitDialog(callID, state string) Dialog {
	p.t.Helper()
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		for _, d := range p.nextNotify().doc.Dialogs {
			if d.CallID == callID && d.State.Value == state {
				return d
			}
		}
	}
	p.t.Fatalf("no NOTIFY with call %s %s", callID, state)
	return Dialog{}
}

// RFC 4235 §4.1.2 direction in the dialog-info the gateway publishes:
// "initiator" for a call alice's laptop placed, "recipient" for one bob
// placed to it (both learnt from the laptop's session list, wire
// SessionParams.Initiator), and "initiator" for a call alice's second desk
// phone placed through the gateway (the gateway's own device answers the
// query for the call it bridges). The terminated dialog keeps it.
func TestDialogInfoDirection(t *testing.T) {
	t.Parallel()
	n, laptop, p := newAliceNet(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*wait)
	defer cancel()
	if _, res := p.subscribe("alice", 600); res.StatusCode != 200 {
		t.Fatalf("SUBSCRIBE: %d", res.StatusCode)
	}
	if first := p.nextNotify(); len(first.doc.Dialogs) != 0 {
		t.Fatalf("first NOTIFY: %+v", first.doc)
	}

	// The laptop calls bob.
	out, err := laptop.Dial(ctx, "bob/laptop")
	if err != nil {
		t.Fatal(err)
	}
	if d := p.waitDialog(out.ID, "confirmed"); d.Direction != "initiator" {
		t.Errorf("the laptop's outgoing call: direction %q, want initiator", d.Direction)
	}
	if err := laptop.Hangup(ctx, out.ID); err != nil {
		t.Fatal(err)
	}
	if d := p.waitDialog(out.ID, "terminated"); d.Direction != "initiator" {
		t.Errorf("the laptop's ended call: direction %q, want initiator", d.Direction)
	}

	// bob calls the laptop.
	in, err := n.bob.Dial(ctx, "alice/laptop")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the laptop to ring", func() bool { c, err := laptop.Call(in.ID); return err == nil && c.State == "ringing" })
	if err := laptop.Answer(ctx, in.ID); err != nil {
		t.Fatal(err)
	}
	if d := p.waitDialog(in.ID, "confirmed"); d.Direction != "recipient" {
		t.Errorf("bob's call to the laptop: direction %q, want recipient", d.Direction)
	}
	if err := n.bob.Hangup(ctx, in.ID); err != nil {
		t.Fatal(err)
	}
	p.waitDialog(in.ID, "terminated")

	// alice's second desk phone calls bob through the gateway.
	p2 := newPhone(t, n.gw.Addr("udp"), "alice2", "desk2-secret")
	if res := p2.register(600); res.StatusCode != 200 {
		t.Fatalf("REGISTER alice2: %d", res.StatusCode)
	}
	eventually(t, "bob to see alice/desk2", func() bool { return online(n.bob, "alice/desk2") })
	l, stop := p2.rtpLeg(660)
	defer stop()
	dialogs := sipgo.NewDialogClientCache(p2.cli, sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "alice2", Host: "127.0.0.1", Port: p2.port()}})
	dc, err := dialogs.Invite(ctx, p2.gwURI("bob+laptop"), phoneSDP(t, l, "PCMU"), sip.NewHeader("Content-Type", "application/sdp"))
	if err != nil {
		t.Fatal(err)
	}
	if err := dc.WaitAnswer(ctx, sipgo.AnswerOptions{Username: "alice2", Password: "desk2-secret"}); err != nil {
		t.Fatal(err)
	}
	if err := dc.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	var bridged string
	eventually(t, "the gateway's bridged call", func() bool {
		c := n.gw.Calls()
		if len(c) == 1 && c[0].P2PCallID != "" {
			bridged = c[0].P2PCallID
		}
		return bridged != ""
	})
	d := p.waitDialog(bridged, "confirmed")
	if d.Direction != "initiator" || d.Local == nil || d.Local.Identity != n.gw.identityURI("alice/desk2") {
		t.Errorf("alice/desk2's call through the gateway: %+v, want direction initiator, local alice/desk2", d)
	}
	_ = dc.Bye(ctx)
}
