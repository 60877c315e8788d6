package endpoint

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/baton-voice/baton/p2p/wire"
)

// rawInvite sends a well-formed SRTP invite from client's identity to p
// and returns the first answer that is an accept or a reject.
func rawInvite(t *testing.T, n *network, from string, p *party, callID string) wire.Message {
	t.Helper()
	user, dev, _ := cut(from)
	conn := n.rawDial(t, n.rawLogin(t, user, dev), p)
	inv := &wire.Invite{CallID: callID, From: from, To: p.Identity().String(), Codecs: []string{"PCMU"},
		Media: wire.Media{Addr: "127.0.0.1:9", SSRC: 1, SRTPKey: make([]byte, wire.SRTPKeyLen), PtimeMS: 20}}
	if err := conn.Send(inv, time.Second); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	for {
		m, err := conn.Recv()
		if err != nil {
			t.Fatalf("invite %s from %s: %v", callID, from, err)
		}
		switch m.(type) {
		case *wire.Accept, *wire.Reject:
			return m
		}
	}
}

// Issue 11 §1 item 2: a phone answers only buddies and its own user's
// other devices by default, the rule its own outgoing calls follow; a
// non-buddy gets a forbidden reject that says why, and no call is made.
func TestAcceptFromBuddiesOnly(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	laptop := n.start("alice", "laptop", autoAnswer)
	reg := prometheus.NewRegistry()
	if err := laptop.Register(reg); err != nil {
		t.Fatal(err)
	}

	m := rawInvite(t, n, "mallory/evil", laptop, "nb-1")
	rej, ok := m.(*wire.Reject)
	if !ok || rej.Code != wire.CodeForbidden || !contains(rej.Reason, "not a buddy") {
		t.Fatalf("a non-buddy's invite got %T %+v, want a forbidden reject saying not a buddy", m, m)
	}
	if calls := laptop.Calls(); len(calls) != 0 {
		t.Fatalf("a non-buddy's invite left calls: %+v", calls)
	}
	eventually(t, "the refusal to be counted", func() bool {
		v, _ := findMetric(t, reg, "baton_endpoint_signaling_rejected_total", map[string]string{"reason": "not-buddy"})
		return v == 1
	})
	// Outgoing, the same rule: no call to a non-buddy.
	if _, err := laptop.Dial(context.Background(), "mallory"); !isErr(err, ErrUnknownPeer) {
		t.Errorf("call to a non-buddy: %v, want ErrUnknownPeer", err)
	}

	// A buddy is answered...
	bob := n.start("bob", "mobile")
	out, _ := establish(t, bob, laptop)
	if err := bob.Hangup(context.Background(), out.ID); err != nil {
		t.Fatal(err)
	}
	laptop.waitState(t, out.ID, "ended")
	// ...and so is another device of the same user (calls and pulls
	// between own devices are the product's core).
	desk := n.start("alice", "desk")
	own, _ := establish(t, desk, laptop)
	if err := desk.Hangup(context.Background(), own.ID); err != nil {
		t.Fatal(err)
	}
}

// AcceptAnyone answers any user the access server authenticated.
func TestAcceptFromAnyone(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	laptop := n.start("alice", "laptop", autoAnswer, func(c *Config) { c.AcceptFrom = AcceptAnyone })
	if m := rawInvite(t, n, "mallory/evil", laptop, "any-1"); m.Type() != wire.TypeAccept {
		t.Fatalf("with accept-from anyone, a non-buddy's invite got %+v", m)
	}
	laptop.waitState(t, "any-1", "active")
}

func TestParseAcceptFrom(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want AcceptFrom
		ok   bool
	}{
		{"buddies", AcceptBuddies, true},
		{"anyone", AcceptAnyone, true},
		{" Anyone ", AcceptAnyone, true},
		{"", AcceptUnknown, false},
		{"everyone", AcceptUnknown, false},
	} {
		got, err := ParseAcceptFrom(tc.in)
		if got != tc.want || (err == nil) != tc.ok {
			t.Errorf("ParseAcceptFrom(%q) = %v, %v", tc.in, got, err)
		}
		if tc.ok && got.String() != tc.want.String() {
			t.Errorf("%v.String() = %q", got, got.String())
		}
		if !tc.ok && !isErr(err, ErrInvalidConfig) {
			t.Errorf("ParseAcceptFrom(%q) error %v, want ErrInvalidConfig", tc.in, err)
		}
	}
	n := newNetwork(t)
	cfg := n.config("alice", "laptop")
	cfg.AcceptFrom = AcceptFrom(42)
	if _, err := New(cfg); !isErr(err, ErrInvalidConfig) {
		t.Errorf("New with accept-from 42: %v", err)
	}
}
