package handoff

import "testing"

// BenchmarkHappyPathA is one whole handoff on A's side: a new machine and
// its twelve steps.
func BenchmarkHappyPathA(b *testing.B) {
	events := []Event{
		EvLoginDone, EvPresenceB, EvSessionParams, EvAudioToCStarted, EvStopAcked, EvTimeout,
		EvReestablishAccepted, EvMediaClosed, EvAddressAllocated, EvAudioRestarted, EvNewAddressAcked, EvAudioFromC,
	}
	b.ReportAllocs()
	for b.Loop() {
		m := NewMachine(RoleA)
		for _, e := range events {
			if _, err := m.Fire(e); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkFire is one accepted event on a live machine (B refusing a
// second puller: a self-loop, so it can repeat).
func BenchmarkFire(b *testing.B) {
	m := NewMachine(RoleB)
	for _, e := range []Event{EvQuery, EvStopAudio} {
		if _, err := m.Fire(e); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Fire(EvStopAudio); err != nil {
			b.Fatal(err)
		}
	}
}
