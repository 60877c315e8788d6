package endpoint

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// A push is a pull run by the target: the desk sends its call with bob to
// the laptop, which pulls it; bob's call goes on with the laptop.
func TestPushIsAPullByTheTarget(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	bob := n.start("bob", "mobile", withTone(440), autoAnswer)
	desk := n.start("alice", "desk", withTone(660))
	laptop := n.start("alice", "laptop", withTone(880))
	desk.waitOnline(t, "bob/mobile")
	desk.waitOnline(t, "alice/laptop")
	out, err := desk.Dial(context.Background(), "bob")
	if err != nil {
		t.Fatal(err)
	}
	desk.waitState(t, out.ID, "active")
	bob.waitState(t, out.ID, "active")

	// Not a device of alice's, not an active call, not online: refused
	// before anything is sent, the call stays.
	if _, err := desk.Push(context.Background(), out.ID, "bob/mobile"); !errors.Is(err, ErrForbidden) {
		t.Errorf("push to bob/mobile: %v, want ErrForbidden", err)
	}
	if _, err := desk.Push(context.Background(), "c-none", "laptop"); !errors.Is(err, ErrNoSuchCall) {
		t.Errorf("push of an unknown call: %v, want ErrNoSuchCall", err)
	}
	if _, err := desk.Push(context.Background(), out.ID, "tablet"); err == nil {
		t.Error("push to an unknown device succeeded")
	}

	ci, err := desk.Push(context.Background(), out.ID, "laptop")
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	if ci.State != "ended" || !strings.HasPrefix(ci.EndReason, "handed off to alice/laptop") {
		t.Fatalf("the desk's call after the push: %+v", ci)
	}
	if lc := laptop.waitState(t, out.ID, "active"); lc.Peer != "bob/mobile" || lc.Direction != "pulled" {
		t.Fatalf("laptop's call %+v", lc)
	}
	if bc := bob.waitState(t, out.ID, "active"); bc.Peer != "alice/laptop" {
		t.Errorf("bob's peer is %s, want alice/laptop", bc.Peer)
	}
	hs := laptop.Handoffs()
	if len(hs) != 1 || hs[0].State != "done" || len(hs[0].Steps) != 12 {
		t.Errorf("the laptop's handoffs after the push: %+v", hs)
	}

	// A device cannot push a call to itself.
	if _, err := laptop.Push(context.Background(), out.ID, "laptop"); err == nil {
		t.Error("push to itself succeeded")
	}
}

// A target whose OnPush refuses (a gateway's SIP device) answers with its
// reason; the call stays with the pusher.
func TestPushRefusedByTarget(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	bob := n.start("bob", "mobile", withTone(440), autoAnswer)
	desk := n.start("alice", "desk", withTone(660))
	n.start("alice", "sip", func(c *Config) {
		c.OnPush = func(from, callID string) error { return errors.New("no phone registered") }
	})
	desk.waitOnline(t, "bob/mobile")
	desk.waitOnline(t, "alice/sip")
	out, err := desk.Dial(context.Background(), "bob")
	if err != nil {
		t.Fatal(err)
	}
	desk.waitState(t, out.ID, "active")
	_, err = desk.Push(context.Background(), out.ID, "sip")
	if !errors.Is(err, ErrPushRefused) || !strings.Contains(err.Error(), "no phone registered") {
		t.Fatalf("push to a refusing device: %v", err)
	}
	if c := desk.waitState(t, out.ID, "active"); c.Peer != "bob/mobile" {
		t.Errorf("desk's call after a refused push: %+v", c)
	}
	bob.waitState(t, out.ID, "active")
}
