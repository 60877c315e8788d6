package endpoint

import (
	"context"
	"slices"
	"testing"
	"time"
)

// BenchmarkTransfer: bob's call is blind-transferred back and forth
// between alice/laptop and alice/phone, b.N times: each transfer is a
// transfer-request to bob, bob's invite to the other device (which
// auto-answers), the transfer-result and the transferor's bye. It reports
// the time until Transfer returns done (ns/op), its median and p99 (ms); a
// transfer that leaves bob without an active call fails the benchmark.
func BenchmarkTransfer(b *testing.B) {
	n := newBenchNet(b)
	bob := n.start("bob", "mobile", withTone(440), autoAnswer)
	devs := [2]*benchParty{n.start("alice", "laptop", withTone(660), autoAnswer), n.start("alice", "phone", withTone(880), autoAnswer)}
	devs[0].seesOnline(b, "bob/mobile")
	bob.seesOnline(b, "alice/laptop")
	bob.seesOnline(b, "alice/phone")
	out, err := devs[0].Dial(context.Background(), "bob")
	if err != nil {
		b.Fatal(err)
	}
	id := out.ID
	benchUntil(b, "the call to be active on both sides", func() bool {
		bi, err1 := bob.Call(id)
		ai, err2 := devs[0].Call(id)
		return err1 == nil && bi.State == "active" && err2 == nil && ai.State == "active"
	})
	var took []time.Duration
	i := 0
	for b.Loop() {
		from, to := devs[i%2], devs[(i+1)%2]
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		start := time.Now()
		info, err := from.Transfer(ctx, id, to.Identity().String())
		d := time.Since(start)
		cancel()
		b.StopTimer()
		if err != nil || info.State != "done" || info.NewCallID == "" {
			b.Fatalf("transfer #%d from %s: %v (%+v)", i, from.Identity(), err, info)
		}
		took = append(took, d)
		old := id
		id = info.NewCallID
		benchUntil(b, "bob's old call to end and the new one to be active on both sides", func() bool {
			oi, err1 := bob.Call(old)
			ni, err2 := bob.Call(id)
			ti, err3 := to.Call(id)
			return err1 == nil && oi.State == "ended" && err2 == nil && ni.State == "active" && ni.Peer == to.Identity().String() &&
				err3 == nil && ti.State == "active"
		})
		i++
		b.StartTimer()
	}
	slices.Sort(took)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(took[len(took)/2]), "p50-ms")
	b.ReportMetric(ms(took[(len(took)*99)/100]), "p99-ms")
}

// BenchmarkTransferAttended: alice/laptop (two call slots) calls bob and
// alice/phone, then joins them with TransferAttended, b.N times: each is a
// transfer-request with a signed Replaces to bob, bob's invite-replaces to
// alice/phone (verified, answered at once, the replaced call ended), the
// transfer-result and the laptop's bye. It reports the time until
// TransferAttended returns done (ns/op), its median and p99 (ms); setting
// up the two calls and hanging up the joined one are not timed. A
// transfer that does not leave bob talking with alice/phone fails it.
func BenchmarkTransferAttended(b *testing.B) {
	n := newBenchNet(b)
	bob := n.start("bob", "mobile", withTone(440), autoAnswer)
	phone := n.start("alice", "phone", withTone(880), autoAnswer)
	laptop := n.start("alice", "laptop", withTone(660), func(c *Config) { c.MaxCalls = 2 })
	laptop.seesOnline(b, "bob/mobile")
	laptop.seesOnline(b, "alice/phone")
	bob.seesOnline(b, "alice/phone")
	active := func(p *benchParty, id string) bool {
		ci, err := p.Call(id)
		return err == nil && ci.State == "active"
	}
	ctx := context.Background()
	var took []time.Duration
	i := 0
	for b.Loop() {
		b.StopTimer()
		toBob, err := laptop.Dial(ctx, "bob/mobile")
		if err != nil {
			b.Fatal(err)
		}
		toPhone, err := laptop.Dial(ctx, "alice/phone")
		if err != nil {
			b.Fatal(err)
		}
		benchUntil(b, "both calls active on both sides", func() bool {
			return active(laptop, toBob.ID) && active(bob, toBob.ID) && active(laptop, toPhone.ID) && active(phone, toPhone.ID)
		})
		b.StartTimer()
		tctx, cancel := context.WithTimeout(ctx, time.Minute)
		start := time.Now()
		info, err := laptop.TransferAttended(tctx, toBob.ID, toPhone.ID)
		d := time.Since(start)
		cancel()
		b.StopTimer()
		if err != nil || info.State != "done" || info.NewCallID == "" {
			b.Fatalf("attended transfer #%d: %v (%+v)", i, err, info)
		}
		took = append(took, d)
		benchUntil(b, "bob talking with alice/phone, the laptop's calls ended", func() bool {
			oi, err := bob.Call(toBob.ID)
			return err == nil && oi.State == "ended" && active(bob, info.NewCallID) && active(phone, info.NewCallID) &&
				!active(laptop, toBob.ID) && !active(laptop, toPhone.ID)
		})
		hctx, hcancel := context.WithTimeout(ctx, 10*time.Second)
		if err := bob.Hangup(hctx, info.NewCallID); err != nil {
			b.Fatal(err)
		}
		hcancel()
		benchUntil(b, "the joined call to end at alice/phone", func() bool { return !active(phone, info.NewCallID) })
		i++
		b.StartTimer()
	}
	slices.Sort(took)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(took[len(took)/2]), "p50-ms")
	b.ReportMetric(ms(took[(len(took)*99)/100]), "p99-ms")
}
