package endpoint

import (
	"context"
	"slices"
	"testing"
	"time"
)

// BenchmarkPush: one call between alice and bob (C) moves back and forth
// between alice/laptop and alice/phone with Push, b.N times: each push is
// an offer plus the target's twelve-step pull. It reports the time to a
// done push (ns/op) and its median and p99 (ms); a push that drops the call
// fails the benchmark.
func BenchmarkPush(b *testing.B) {
	n := newBenchNet(b)
	bob := n.start("bob", "mobile", withTone(440), autoAnswer)
	devs := [2]*benchParty{n.start("alice", "laptop", withTone(660)), n.start("alice", "phone", withTone(880))}
	devs[0].seesOnline(b, "bob/mobile")
	devs[0].seesOnline(b, "alice/phone")
	devs[1].seesOnline(b, "alice/laptop")
	out, err := devs[0].Dial(context.Background(), "bob")
	if err != nil {
		b.Fatal(err)
	}
	id := out.ID
	benchUntil(b, "the call to be active", func() bool {
		bi, err := bob.Call(id)
		return err == nil && bi.State == "active"
	})
	benchSteady(b, bob, id, 25)
	var took []time.Duration
	i := 0
	for b.Loop() {
		from, to := devs[i%2], devs[(i+1)%2]
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		start := time.Now()
		h, err := from.Push(ctx, PushRequest{CallID: id, To: to.Identity().String()})
		d := time.Since(start)
		cancel()
		b.StopTimer()
		if err != nil || h.State != "done" {
			b.Fatalf("push #%d from %s: %v (%+v)", i, from.Identity(), err, h)
		}
		took = append(took, d)
		benchUntil(b, "the pushed call to be active at the target", func() bool {
			ci, err := to.Call(id)
			return err == nil && ci.State == "active"
		})
		if bi, err := bob.Call(id); err != nil || bi.State != "active" || bi.Peer != to.Identity().String() {
			b.Fatalf("push #%d: bob's call %+v, %v", i, bi, err)
		}
		benchSteady(b, bob, id, 5)
		i++
		b.StartTimer()
	}
	slices.Sort(took)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(took[len(took)/2]), "p50-ms")
	b.ReportMetric(ms(took[(len(took)*99)/100]), "p99-ms")
}
