package gateway

import (
	"testing"

	"github.com/baton-voice/baton/sipbridge"
)

// TestDevicesShareOneSignalingPort: two registered SIP phones are two P2P
// devices on the gateway's one endpoint.Host: presence has both at the
// host's one signaling address, not one port each.
func TestDevicesShareOneSignalingPort(t *testing.T) {
	t.Parallel()
	n := newTestNet(t, true, func(c *Config) {
		c.Accounts = append(c.Accounts, Account{SIPUser: "bobdesk", HA1: sipbridge.HA1("bobdesk", "baton.test", "bob-desk-secret"),
			User: "bob", Device: "desk", Password: "bob-p2p-secret"})
	})
	gw := n.gw.Addr("udp")
	for _, p := range []struct{ user, pw string }{{"alice", "desk-secret"}, {"bobdesk", "bob-desk-secret"}} {
		if res := newPhone(t, gw, p.user, p.pw).register(600); res.StatusCode != 200 {
			t.Fatalf("REGISTER %s: %d", p.user, res.StatusCode)
		}
	}
	eventually(t, "bob/laptop to see both desks online", func() bool { return online(n.bob, "alice/desk") && online(n.bob, "bob/desk") })
	want := n.gw.host.SignalAddr().String()
	seen := map[string]string{}
	for _, b := range n.bob.Buddies() {
		for _, d := range b.Devices {
			seen[b.User+"/"+d.Device] = d.SignalAddr
		}
	}
	for _, id := range []string{"alice/desk", "bob/desk"} {
		if seen[id] != want {
			t.Errorf("%s signals at %q, want the gateway host's %s", id, seen[id], want)
		}
	}
	if got := len(n.gw.host.Endpoints()); got != 2 {
		t.Errorf("gateway host has %d endpoints, want 2", got)
	}
}
