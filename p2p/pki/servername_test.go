package pki

import (
	"strings"
	"testing"
	"time"
)

// validSNI is RFC 6066 §3's HostName as a TLS stack checks it: ASCII
// letters, digits and hyphens in dot-separated labels of 1-63 characters,
// at most 253 in all, no trailing dot.
func validSNI(name string) bool {
	if len(name) == 0 || len(name) > 253 || strings.HasSuffix(name, ".") {
		return false
	}
	for _, label := range strings.Split(name, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
				return false
			}
		}
	}
	return true
}

func TestServerNameIsValidSNI(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", 64)
	cases := []struct {
		name string
		id   Identity
	}{
		{"plain", Identity{User: "alice", Device: "desk"}},
		{"dots and underscores", Identity{User: "a..b_", Device: "x.y."}},
		{"longest names", Identity{User: long, Device: long}},
		{"digits", Identity{User: "0", Device: "9-9"}},
	}
	seen := map[string]Identity{}
	for _, tc := range cases {
		if err := tc.id.Validate(); err != nil {
			t.Fatalf("%s: test identity invalid: %v", tc.name, err)
		}
		sn := ServerName(tc.id)
		if !validSNI(sn) {
			t.Errorf("%s: ServerName(%s) = %q is not a valid SNI host name", tc.name, tc.id, sn)
		}
		if !IsServerName(sn) {
			t.Errorf("%s: IsServerName(%q) = false", tc.name, sn)
		}
		if ServerName(tc.id) != sn {
			t.Errorf("%s: ServerName not deterministic", tc.name)
		}
		if strings.Contains(sn, tc.id.User) && len(tc.id.User) > 3 {
			t.Errorf("%s: %q shows the user name in clear", tc.name, sn)
		}
		if prev, dup := seen[sn]; dup {
			t.Errorf("%s and %s share the server name %q", prev, tc.id, sn)
		}
		seen[sn] = tc.id
	}
	// The two halves are not interchangeable: alice/bob is not bob/alice.
	if ServerName(Identity{"alice", "bob"}) == ServerName(Identity{"bob", "alice"}) {
		t.Error("alice/bob and bob/alice share a server name")
	}
	for _, bad := range []string{"", "alice/desk", ServerName(alice) + ".", strings.ToUpper(ServerName(alice)),
		"0123456789abcdef0123456789abcde" + serverNameSuffix, "g123456789abcdef0123456789abcdef" + serverNameSuffix} {
		if IsServerName(bad) {
			t.Errorf("IsServerName(%q) = true", bad)
		}
	}
}

// TestEndpointClientSendsServerName: the dialer's ClientHello carries the
// server name of the identity it expects, and the peer certificate is still
// what decides (a wrong peer fails as before).
func TestEndpointClientSendsServerName(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	a := issue(t, ca, alice, testNow, time.Hour)
	b := issue(t, ca, bob, testNow, time.Hour)
	clock := fixedClock(testNow)
	srvCfg := EndpointServerConfig(certOf(b), ca.Pool(), clock)
	srv, cli := handshake(t, srvCfg, EndpointClientConfig(certOf(a), ca.Pool(), bob, clock))
	if srv.err != nil || cli.err != nil {
		t.Fatalf("handshake: server %v, client %v", srv.err, cli.err)
	}
	if got, want := srv.state.ServerName, ServerName(bob); got != want {
		t.Errorf("server saw server name %q, want %q", got, want)
	}
}

// FuzzServerName: any valid identity gets a server name that is a valid
// SNI host name of the form IsServerName accepts; any string IsServerName
// accepts has exactly that form (a host's router trusts it no further).
func FuzzServerName(f *testing.F) {
	f.Add("alice", "desk", "")
	f.Add("a..b_", "x.y.", ServerName(alice))
	f.Add(strings.Repeat("z", 64), "0", "example.com")
	f.Add("", "", strings.ToUpper(ServerName(bob)))
	f.Fuzz(func(t *testing.T, user, device, name string) {
		id := Identity{User: user, Device: device}
		if id.Validate() == nil {
			sn := ServerName(id)
			if !validSNI(sn) || !IsServerName(sn) {
				t.Fatalf("ServerName(%s) = %q: not a valid server name", id, sn)
			}
		}
		if IsServerName(name) {
			if !validSNI(name) || len(name) != 32+len(serverNameSuffix) || !strings.HasSuffix(name, serverNameSuffix) {
				t.Fatalf("IsServerName accepted %q", name)
			}
		}
	})
}
