package presence_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/baton-voice/baton/p2p/presence"
	"github.com/baton-voice/baton/p2p/wire"
)

func TestStatus(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		s         presence.Status
		str       string
		wire      wire.Status
		reachable bool
	}{
		{"unknown", presence.StatusUnknown, "unknown", "", false},
		{"offline", presence.StatusOffline, "offline", wire.StatusOffline, false},
		{"online", presence.StatusOnline, "online", wire.StatusOnline, true},
		{"away", presence.StatusAway, "away", wire.StatusAway, true},
		{"out of range", presence.Status(99), "unknown", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tc.s.String(); got != tc.str {
				t.Errorf("String() = %q, want %q", got, tc.str)
			}
			if got := tc.s.Wire(); got != tc.wire {
				t.Errorf("Wire() = %q, want %q", got, tc.wire)
			}
			if got := tc.s.Reachable(); got != tc.reachable {
				t.Errorf("Reachable() = %v, want %v", got, tc.reachable)
			}
			if tc.wire != "" {
				if back := presence.StatusFromWire(tc.wire); back != tc.s {
					t.Errorf("StatusFromWire(%q) = %v, want %v", tc.wire, back, tc.s)
				}
			}
		})
	}
	if got := presence.StatusFromWire("busy"); got != presence.StatusUnknown {
		t.Errorf("StatusFromWire(busy) = %v, want unknown", got)
	}
}

func TestEntryWire(t *testing.T) {
	t.Parallel()
	addr := netip.MustParseAddrPort("127.0.0.1:5000")
	since := time.Unix(1700000000, 0)
	for _, tc := range []struct {
		name string
		e    presence.Entry
		want wire.Device
	}{
		{"online publishes address", presence.Entry{User: "bob", Device: "desk", Status: presence.StatusOnline, SignalAddr: addr, Since: since},
			wire.Device{User: "bob", Device: "desk", Status: wire.StatusOnline, SignalAddr: "127.0.0.1:5000", SinceUnix: 1700000000}},
		{"away publishes address", presence.Entry{User: "bob", Device: "desk", Status: presence.StatusAway, SignalAddr: addr},
			wire.Device{User: "bob", Device: "desk", Status: wire.StatusAway, SignalAddr: "127.0.0.1:5000"}},
		{"offline hides address", presence.Entry{User: "bob", Device: "desk", Status: presence.StatusOffline, SignalAddr: addr, Since: since},
			wire.Device{User: "bob", Device: "desk", Status: wire.StatusOffline, SinceUnix: 1700000000}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tc.e.Wire(); got != tc.want {
				t.Fatalf("Wire() = %+v, want %+v", got, tc.want)
			}
			d := tc.e.Wire()
			if err := (&wire.Presence{Device: d}).Validate(); err != nil {
				t.Fatalf("Wire() result does not validate: %v", err)
			}
		})
	}
}
