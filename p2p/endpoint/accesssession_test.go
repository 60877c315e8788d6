package endpoint

import (
	"context"
	"testing"

	"github.com/baton-voice/baton/p2p/access"
)

// TestSharedAccessSession: two devices log in through one gateway session
// (Config.AccessSession) instead of their own logins, with no password;
// a P2P phone with its own login calls one of them and sees it bridged
// (CallInfo.PeerGateway), the bridged device sees the phone as a plain
// peer, and the two bridged devices call each other.
func TestSharedAccessSession(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	ctx := context.Background()
	secret := access.NewGatewaySecret()
	if err := n.srv.Users().AddGateway(ctx, "gw1", secret, []string{"alice", "carol"}); err != nil {
		t.Fatal(err)
	}
	gs, err := access.NewGatewaySession(access.GatewayConfig{Addr: n.addr, Roots: n.srv.CA().Pool(), Gateway: "gw1", Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gs.Close() })
	viaGateway := func(c *Config) { c.AccessSession, c.Password = gs, "" }
	desk := n.start("alice", "desk", viaGateway, autoAnswer, withTone(440))
	carol := n.start("carol", "desk", viaGateway, autoAnswer)
	bob := n.start("bob", "laptop", withTone(660))

	if st := n.srv.Status(); st.GatewaySessions != 1 || st.OnlineEndpoints != 3 {
		t.Fatalf("access server: %d gateway sessions, %d online; want 1 and 3", st.GatewaySessions, st.OnlineEndpoints)
	}
	if !desk.Status().LoggedIn {
		t.Fatal("alice/desk not logged in")
	}
	out, in := establish(t, bob, desk)
	if out.PeerGateway != "gw1" {
		t.Errorf("bob's call with alice/desk: peer_gateway %q, want gw1", out.PeerGateway)
	}
	if in.PeerGateway != "" {
		t.Errorf("alice/desk's call with bob (a P2P phone): peer_gateway %q, want none", in.PeerGateway)
	}
	if err := bob.Hangup(ctx, out.ID); err != nil {
		t.Fatal(err)
	}
	desk.waitState(t, in.ID, "ended")

	// Two devices of the same gateway session reach each other directly.
	c2c, _ := establish(t, desk, carol)
	if c2c.PeerGateway != "gw1" {
		t.Errorf("alice/desk's call with carol/desk: peer_gateway %q, want gw1", c2c.PeerGateway)
	}
}
