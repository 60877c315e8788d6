package endpoint

import (
	"context"
	"slices"
	"testing"
	"time"
)

// BenchmarkDTMF: one active call between alice and bob with SRTP on
// loopback; alice sends one digit (SendDTMF) and the op ends when bob's
// call.dtmf event for it arrives: the time from a key press to the far
// party knowing it. It reports the median and p99 (ms).
func BenchmarkDTMF(b *testing.B) {
	n := newBenchNet(b)
	bob := n.start("bob", "mobile", withTone(440), autoAnswer)
	alice := n.start("alice", "laptop", withTone(660))
	alice.seesOnline(b, "bob/mobile")
	out, err := alice.Dial(context.Background(), "bob")
	if err != nil {
		b.Fatal(err)
	}
	benchUntil(b, "the call to be active", func() bool {
		bi, err := bob.Call(out.ID)
		return err == nil && bi.State == "active"
	})
	const digits = "0123456789*#ABCD"
	var took []time.Duration
	i := 0
	for b.Loop() {
		want := string(digits[i%len(digits)])
		start := time.Now()
		if err := alice.SendDTMF(context.Background(), out.ID, DTMFRequest{Digits: want}); err != nil {
			b.Fatal(err)
		}
		timeout := time.After(wait)
	recv:
		for {
			select {
			case ev, ok := <-bob.events:
				if !ok {
					b.Fatal("bob's event stream closed")
				}
				if ev.Type == EventDTMF {
					if ev.Digit != want {
						b.Fatalf("digit %d: bob got %q, want %q", i, ev.Digit, want)
					}
					break recv
				}
			case <-timeout:
				b.Fatalf("digit %d: no call.dtmf at bob within %s", i, wait)
			}
		}
		took = append(took, time.Since(start))
		i++
	}
	slices.Sort(took)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(took[len(took)/2]), "p50-ms")
	b.ReportMetric(ms(took[(len(took)*99)/100]), "p99-ms")
}
