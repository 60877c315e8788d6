package endpoint

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestBenchPullTail is the shape of TestBenchBridgePull's P2P-only part
// (gateway/bench_bridge_pull_test.go) without the gateway: bob (C) has one
// call with alice, which her laptop and mobile take from each other N
// times back to back (each pull as soon as the puller's last call has
// ended, no settle). Every pull is timed from the request to done; the
// slow ones are printed with their steps, so the step that waited shows
// (docs/benchmarks.md §23, the ~1 s tail). Skipped unless
// BATON_BENCH_PULL_TAIL=1; N is BATON_BENCH_PULL_TAIL_N (default 300).
func TestBenchPullTail(t *testing.T) {
	if os.Getenv("BATON_BENCH_PULL_TAIL") == "" {
		t.Skip("benchmark: set BATON_BENCH_PULL_TAIL=1")
	}
	n := 300
	if v := os.Getenv("BATON_BENCH_PULL_TAIL_N"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			t.Fatalf("BATON_BENCH_PULL_TAIL_N=%q: want a positive number", v)
		}
	}
	// BATON_BENCH_PULL_TAIL_SEQ, when set, is bob's first RTP sequence
	// number: 65535-100 wraps his stream about 2 s into the pulls.
	var bobOpts []func(*Config)
	if v := os.Getenv("BATON_BENCH_PULL_TAIL_SEQ"); v != "" {
		seq, err := strconv.ParseUint(v, 10, 16)
		if err != nil {
			t.Fatalf("BATON_BENCH_PULL_TAIL_SEQ=%q: %v", v, err)
		}
		first := uint16(seq)
		bobOpts = append(bobOpts, func(c *Config) { c.firstSeq = &first })
	}
	net := newBenchNet(t)
	bob := net.start("bob", "laptop", append(bobOpts, withTone(440), autoAnswer)...)
	laptop := net.start("alice", "laptop", withTone(880))
	mobile := net.start("alice", "mobile", withTone(550))
	laptop.seesOnline(t, "bob/laptop")
	laptop.seesOnline(t, "alice/mobile")
	mobile.seesOnline(t, "alice/laptop")
	out, err := laptop.Dial(context.Background(), "bob")
	if err != nil {
		t.Fatal(err)
	}
	id := out.ID
	benchUntil(t, "the call to be active", func() bool {
		bi, err1 := bob.Call(id)
		li, err2 := laptop.Call(id)
		return err1 == nil && err2 == nil && bi.State == "active" && li.State == "active"
	})
	benchSteady(t, bob, id, 25)
	idle := func(p *benchParty) {
		benchUntil(t, "the device to let its call go", func() bool {
			for _, c := range p.Calls() {
				if c.State != "ended" {
					return false
				}
			}
			return true
		})
	}
	var took []float64
	slow := 0
	for i := range n {
		puller, holder := mobile, laptop
		if i%2 == 1 {
			puller, holder = laptop, mobile
		}
		idle(puller)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		start := time.Now()
		h, err := puller.Pull(ctx, PullRequest{From: holder.Identity().Device})
		d := time.Since(start)
		cancel()
		if err != nil || h.State != "done" {
			t.Fatalf("pull #%d by %s: %v\n%s", i, puller.Identity(), err, benchSteps(h))
		}
		took = append(took, float64(d.Microseconds())/1000)
		if d > 300*time.Millisecond {
			slow++
			var heard string
			if pi, err := puller.Call(id); err == nil && pi.Media != nil {
				heard = fmt.Sprintf("received %d, auth failed %d, wrong source %d", pi.Media.PacketsReceived, pi.Media.AuthFailed, pi.Media.WrongSource)
			}
			t.Logf("pull #%d by %s took %.1f ms; the puller: %s\n%s", i, puller.Identity(), took[len(took)-1], heard, benchSteps(h))
		}
	}
	s := slices.Clone(took)
	slices.Sort(s)
	q := func(f float64) float64 { return s[int(f*float64(len(s)-1))] }
	bi, _ := bob.Call(id)
	loadRaw, _ := os.ReadFile("/proc/loadavg")
	var sb strings.Builder
	fmt.Fprintf(&sb, "%d pulls, load %s: p50 %.1f ms, p99 %.1f ms, max %.1f ms; over 300 ms: %d", n, strings.TrimSpace(string(loadRaw)), q(0.5), q(0.99), q(1), slow)
	if m := bi.Media; m != nil {
		fmt.Fprintf(&sb, "; bob received %d, lost %d, late %d, concealed %d, longest gap %.0f ms", m.PacketsReceived, m.Lost, m.Late, m.Concealed, m.LongestGapMS)
	}
	t.Log(sb.String())
}
