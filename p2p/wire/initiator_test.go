package wire

import (
	"errors"
	"strings"
	"testing"
)

// SessionParams.Initiator (who placed the call, for RFC 4235's direction
// at a gateway): optional, "self" or "peer"; anything else is malformed;
// a list without it (an older endpoint) still decodes.
func TestSessionListInitiator(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		initiator string
		ok        bool
	}{
		{"", true}, {InitiatorSelf, true}, {InitiatorPeer, true}, {"me", false}, {"Self", false},
	} {
		t.Run("initiator="+tc.initiator, func(t *testing.T) {
			t.Parallel()
			m := sampleMessages()[TypeSessionList].(*SessionList)
			m.Sessions[0].Initiator = tc.initiator
			p, err := Encode(m)
			if err != nil {
				if tc.ok || !errors.Is(err, ErrMalformed) {
					t.Fatalf("Encode: %v", err)
				}
				return
			}
			if !tc.ok {
				t.Fatalf("initiator %q encoded", tc.initiator)
			}
			if tc.initiator == "" && strings.Contains(string(p), "initiator") {
				t.Errorf("an unknown initiator is on the wire: %s", p)
			}
			back, err := Decode(Frame{Type: TypeSessionList, Seq: 1, Payload: p})
			if err != nil {
				t.Fatal(err)
			}
			if got := back.(*SessionList).Sessions[0].Initiator; got != tc.initiator {
				t.Errorf("round trip: initiator %q, want %q", got, tc.initiator)
			}
		})
	}
}
