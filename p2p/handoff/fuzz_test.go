package handoff

import (
	"errors"
	"testing"
)

// FuzzMachine feeds arbitrary event sequences to every role's machine. The
// first byte picks the role, each further byte an event (some out of
// range). Invariants: the machine never leaves its role's states, a refused
// event leaves it where it was, an accepted one follows exactly one table
// row, and once terminal it stays terminal.
func FuzzMachine(f *testing.F) {
	var happy []byte
	happy = append(happy, byte(RoleA))
	for _, d := range happyPath() {
		if d.to == partyA && d.event != EventUnknown {
			happy = append(happy, byte(d.event))
		}
	}
	f.Add(happy)
	f.Add([]byte{byte(RoleB), byte(EvQuery), byte(EvStopAudio), byte(EvStopAudio), byte(EvTimeout)})
	f.Add([]byte{byte(RoleC), byte(EvAudioFromA), byte(EvBadGrant), byte(EvAStreamLost), byte(EvMediaTimeout)})
	f.Add([]byte{byte(RoleM), byte(EvAddressChanged), 0, 255})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		r := Role(data[0] % byte(roleCount+1))
		m := NewMachine(r)
		rows := Table(r)
		for _, b := range data[1:] {
			e := Event(b % byte(eventCount+2))
			before := m.State()
			tr, err := m.Fire(e)
			if r == RoleUnknown || r == roleCount {
				if err == nil {
					t.Fatalf("unknown role accepted %s", e)
				}
				continue
			}
			if m.State().Role() != r {
				t.Fatalf("%s machine in %s", r, m.State())
			}
			row, listed := findRow(rows, before, e)
			if err != nil {
				if listed || !errors.Is(err, ErrInvalidTransition) || m.State() != before {
					t.Fatalf("%s + %s: %v (listed %v, now %s)", before, e, err, listed, m.State())
				}
				continue
			}
			if !listed || tr.To != row.To || m.State() != row.To || Terminal(before) {
				t.Fatalf("%s + %s accepted -> %s without a row", before, e, tr.To)
			}
		}
	})
}
