package gateway

import (
	"errors"
	"net/netip"
	"testing"
)

func TestTrunkRouting(t *testing.T) {
	t.Parallel()
	g := &Gateway{}
	pstn := &trunkState{cfg: Trunk{Name: "pstn", Allow: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")},
		Numbers: map[string]string{"+15551230": "alice/desk"}}}
	sbc := &trunkState{cfg: Trunk{Name: "sbc", Registrar: "198.51.100.7:5060", Route: "bob"}}
	g.trunks = []*trunkState{pstn, sbc}
	for _, ts := range g.trunks {
		ts.dev = &device{g: g, trunk: ts, acct: Account{User: "pstn", Device: ts.cfg.Name}}
	}
	for _, tc := range []struct {
		src  string
		want *trunkState
	}{
		{"192.0.2.10", pstn}, {"192.0.3.1", nil}, {"198.51.100.7", sbc}, {"198.51.100.8", nil},
	} {
		if got := g.trunkFor(netip.MustParseAddr(tc.src)); got != tc.want {
			t.Errorf("trunkFor(%s) = %v, want %v", tc.src, got, tc.want)
		}
	}
	if got := g.trunkFor(netip.Addr{}); got != nil {
		t.Errorf("trunkFor(invalid) = %v", got)
	}
	if to, err := pstn.target("+15551230"); err != nil || to != "alice/desk" {
		t.Errorf("pstn routes +15551230 to %q, %v", to, err)
	}
	if _, err := pstn.target("+15559999"); !errors.Is(err, ErrBadTarget) {
		t.Errorf("pstn routes an unknown number: %v, want ErrBadTarget", err)
	}
	if st := pstn.status(); st.Refused != 1 {
		t.Errorf("pstn counted %d refused numbers, want 1", st.Refused)
	}
	if to, err := sbc.target("+4930123"); err != nil || to != "bob" {
		t.Errorf("sbc default route: %q, %v", to, err)
	}
}

func TestTrunkConfigChecked(t *testing.T) {
	t.Parallel()
	base := func() Config {
		return Config{UDP: "127.0.0.1:0", MediaIP: netip.MustParseAddr("127.0.0.1"),
			Trunks: []Trunk{{Name: "pstn", User: "pstn", Device: "trunk1", Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.6/32")}}}}
	}
	c := base()
	if err := c.setDefaults(); err != nil {
		t.Fatalf("valid trunk refused: %v", err)
	}
	for name, mutate := range map[string]func(*Config){
		"twice":           func(c *Config) { c.Trunks = append(c.Trunks, c.Trunks[0]) },
		"bad identity":    func(c *Config) { c.Trunks[0].Device = "Trunk 1" },
		"no way in":       func(c *Config) { c.Trunks[0].Allow = nil },
		"registrar wrong": func(c *Config) { c.Trunks[0].Registrar = "provider" },
	} {
		c := base()
		mutate(&c)
		if err := c.setDefaults(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestDialPlan(t *testing.T) {
	t.Parallel()
	g := &Gateway{cfg: Config{DialPlan: []DialRule{
		{Prefix: "+", Trunk: "pstn"},
		{Prefix: "00", Strip: 2, Prepend: "+", Trunk: "pstn"},
		{Prefix: "9", Strip: 1, Trunk: "local"},
	}}}
	for _, name := range []string{"pstn", "local"} {
		ts := &trunkState{cfg: Trunk{Name: name}}
		ts.dev = &device{g: g, trunk: ts, acct: Account{User: name, Device: "trunk1"}}
		g.trunks = append(g.trunks, ts)
	}
	for _, tc := range []struct {
		dialled, target, number string
		ok                      bool
	}{
		{"+15551234", "pstn/trunk1", "+15551234", true},
		{"004930123", "pstn/trunk1", "+4930123", true},
		{"95551234", "local/trunk1", "5551234", true},
		{"bob", "", "", false},
		{"+", "", "", false},          // nothing left to dial
		{"+1555x", "", "", false},     // not a number
		{"bob+mobile", "", "", false}, // a device, not a number
	} {
		target, number, ok := g.dialPlan(tc.dialled)
		if ok != tc.ok || target != tc.target || number != tc.number {
			t.Errorf("dialPlan(%q) = %q, %q, %v; want %q, %q, %v", tc.dialled, target, number, ok, tc.target, tc.number, tc.ok)
		}
	}
	c := Config{UDP: "127.0.0.1:0", MediaIP: netip.MustParseAddr("127.0.0.1"), DialPlan: []DialRule{{Prefix: "+", Trunk: "nope"}}}
	if err := c.setDefaults(); err == nil {
		t.Error("a dial plan naming no configured trunk was accepted")
	}
}

// A trunk's caller never gets a line out through a trunk (toll fraud),
// whatever the number plan says.
func TestTrunkToTrunkRefused(t *testing.T) {
	t.Parallel()
	g := &Gateway{}
	in := &trunkState{cfg: Trunk{Name: "in", User: "pstn", Device: "in", Route: "pstn/out"}}
	out := &trunkState{cfg: Trunk{Name: "out", User: "pstn", Device: "out"}}
	for _, ts := range []*trunkState{in, out} {
		ts.dev = &device{g: g, trunk: ts, acct: Account{User: ts.cfg.User, Device: ts.cfg.Device}}
	}
	g.trunks = []*trunkState{in, out}
	if to, err := g.callTarget(in.dev, "+4930123"); !errors.Is(err, ErrBadTarget) {
		t.Errorf("trunk in routed to %q, %v; want ErrBadTarget", to, err)
	}
	in.cfg.Route = "pstn"
	if to, err := g.callTarget(in.dev, "+4930123"); !errors.Is(err, ErrBadTarget) {
		t.Errorf("trunk in routed to user %q, %v; want ErrBadTarget", to, err)
	}
	in.cfg.Route = "alice"
	if to, err := g.callTarget(in.dev, "+4930123"); err != nil || to != "alice" {
		t.Errorf("trunk in routed to %q, %v; want alice", to, err)
	}
}
