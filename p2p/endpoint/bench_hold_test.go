package endpoint

import (
	"context"
	"slices"
	"testing"
	"time"
)

// BenchmarkHoldResume: one active call between alice and bob with SRTP on
// loopback; each op is alice's Hold(true) then Hold(false), each returning
// when bob's media-update-ack is in (bob has applied it). It reports the
// median and p99 of one update (ms).
//
// BenchmarkSetCodec: the same call switched PCMU -> PCMA -> PCMU...; an op
// is one SetCodec, returning when alice has reopened her media with the new
// codec (bob reopened his right after his ack).
func BenchmarkHoldResume(b *testing.B) {
	benchMediaUpdate(b, func(alice *benchParty, id string, i int) error {
		return alice.Hold(context.Background(), id, i%2 == 0)
	})
}

func BenchmarkSetCodec(b *testing.B) {
	benchMediaUpdate(b, func(alice *benchParty, id string, i int) error {
		return alice.SetCodec(context.Background(), id, []string{"PCMA", "PCMU"}[i%2])
	})
}

func benchMediaUpdate(b *testing.B, op func(alice *benchParty, id string, i int) error) {
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
	var took []time.Duration
	i := 0
	for b.Loop() {
		start := time.Now()
		if err := op(alice, out.ID, i); err != nil {
			b.Fatalf("update %d: %v", i, err)
		}
		took = append(took, time.Since(start))
		i++
	}
	slices.Sort(took)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(took[len(took)/2]), "p50-ms")
	b.ReportMetric(ms(took[(len(took)*99)/100]), "p99-ms")
}
