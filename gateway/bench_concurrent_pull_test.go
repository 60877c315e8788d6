package gateway

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"

	"github.com/baton-voice/baton/p2p/endpoint"
)

// TestBenchConcurrentPulls is issue 9 §6's "200 concurrent pulls through
// one gateway with 0 dropped calls" (docs/benchmarks.md §25): users
// u000..u199 each have a SIP desk phone at the gateway and a P2P
// softphone (laptop); the provider (trunk "pstn", the gateway's C for
// every call) calls each user's laptop, all calls up at once. Then, for
// BATON_BENCH_CONCURRENT_ROUNDS rounds (default 2), every desk phone
// takes its user's call with the pickup code at the same moment (the
// gateway is A, 200 times at once), and then every laptop pulls its call
// back at the same moment (the gateway is B). A call is dropped when the
// trunk got a BYE for it (or any other request), when its RTP stopped, or
// when no device of its user has it active with the trunk at the end. A
// failed pull is counted with its error. Skipped unless
// BATON_BENCH_CONCURRENT_PULLS is set to the number of calls (200 in the
// issue): make bench-concurrent-pulls.
func TestBenchConcurrentPulls(t *testing.T) {
	v := os.Getenv("BATON_BENCH_CONCURRENT_PULLS")
	if v == "" {
		t.Skip("benchmark: set BATON_BENCH_CONCURRENT_PULLS=200 (make bench-concurrent-pulls)")
	}
	calls, err := strconv.Atoi(v)
	if err != nil || calls < 1 || calls > 999 {
		t.Fatalf("BATON_BENCH_CONCURRENT_PULLS=%q: want a number of calls, 1-999", v)
	}
	rounds := 2
	if v := os.Getenv("BATON_BENCH_CONCURRENT_ROUNDS"); v != "" {
		if rounds, err = strconv.Atoi(v); err != nil || rounds < 1 {
			t.Fatalf("BATON_BENCH_CONCURRENT_ROUNDS=%q: want a positive number", v)
		}
	}
	ctx := context.Background()
	setup := time.Now()
	tn := newTrunkNet(t, calls)
	laptops := make([]*endpoint.Endpoint, calls)
	desks := make([]*deskPhone, calls)
	for i, u := range tn.users {
		laptops[i] = tn.softphone(t, u, "laptop", 880)
		desks[i] = newDeskPhone(t, tn.gw, u, 660)
	}
	tn.waitTrunkOnline(t)
	for i, u := range tn.users {
		eventually(t, u+"'s desk online", func() bool { return online(laptops[i], u+"/desk") })
	}
	tr := newTrunkUA(t, tn.gw.Addr("udp"))
	media := make([]*trunkMedia, calls)
	dialogs := make([]*sipgo.DialogClientSession, calls)
	callErrs := parallel(calls, func(i int) error {
		media[i] = newTrunkMedia(t)
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		var err error
		dialogs[i], err = tr.call(cctx, trunkNumber(i), media[i])
		return err
	})
	if n := countErrs(callErrs); n > 0 {
		t.Fatalf("%d of %d trunk calls failed to set up: %s", n, calls, summarize(callErrs))
	}
	for i := range laptops {
		eventually(t, tn.users[i]+"'s laptop call to be active", func() bool { return activeWith(laptops[i], "pstn/trunk1") })
	}
	t.Logf("%d calls up through one gateway in %v (setup of users, phones and calls); load %s", calls, time.Since(setup).Round(time.Millisecond), loadAvg())
	time.Sleep(time.Second)
	before := tr.seen()

	type phase struct {
		name string
		took []time.Duration
		errs []error
	}
	var phases []*phase
	run := func(name string, move func(i int) error) {
		p := &phase{name: name, took: make([]time.Duration, calls)}
		start := time.Now()
		p.errs = parallel(calls, func(i int) error {
			s := time.Now()
			err := move(i)
			p.took[i] = time.Since(s)
			return err
		})
		t.Logf("%s: %d at once, all done in %v, %d failed%s; load %s", name, calls, time.Since(start).Round(time.Millisecond),
			countErrs(p.errs), summarize(p.errs), loadAvg())
		phases = append(phases, p)
		time.Sleep(time.Second) // the calls run a while between the rounds
	}
	// onDesk[i]: call i is on the desk phone (its *8 succeeded); a call
	// whose move failed stays where it was and is not moved back.
	onDesk := make([]bool, calls)
	for r := range rounds {
		run(fmt.Sprintf("round %d: desk phones take their calls with *8 (gateway is A)", r+1), func(i int) error {
			mctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			if onDesk[i] {
				return nil // still there from a failed pull back
			}
			if err := waitIdle(mctx, laptops[i], true); err != nil {
				return err
			}
			_, err := desks[i].pickup(mctx)
			onDesk[i] = err == nil
			return err
		})
		run(fmt.Sprintf("round %d: softphones pull from the desk phones (gateway is B)", r+1), func(i int) error {
			mctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			if !onDesk[i] {
				return nil // its *8 failed: the laptop kept it
			}
			if err := waitIdle(mctx, laptops[i], false); err != nil {
				return err
			}
			info, err := laptops[i].Pull(mctx, endpoint.PullRequest{From: "desk"})
			if err == nil && info.State != "done" {
				err = fmt.Errorf("pull ended %s", info.State)
			}
			onDesk[i] = err != nil
			return err
		})
	}

	// Dropped calls: the trunk's view (its RTP still flowing, no request
	// from the gateway) and the users' (a laptop has the call with the
	// trunk: every round ends on the laptops).
	after := tr.seen()
	var dropped []string
	for i, m := range media {
		if last := m.lastArrival(); time.Since(last) > time.Second {
			dropped = append(dropped, fmt.Sprintf("%s: the trunk's RTP stopped %v ago", tn.users[i], time.Since(last).Round(time.Millisecond)))
		} else if !onDesk[i] && !activeWith(laptops[i], "pstn/trunk1") {
			dropped = append(dropped, fmt.Sprintf("%s: the laptop has no active call with the trunk", tn.users[i]))
		}
	}
	for m, c := range after {
		if d := c - before[m]; d > 0 {
			t.Errorf("the gateway sent the trunk %d %s during the pulls; want no SIP message at all", d, m)
		}
	}
	failed := 0
	for _, p := range phases {
		failed += countErrs(p.errs)
		var ok []time.Duration
		for i, d := range p.took {
			if p.errs[i] == nil {
				ok = append(ok, d)
			}
		}
		t.Logf("| %s | %d | %d | %.1f ms | %.1f ms | %.1f ms |", p.name, len(ok), countErrs(p.errs), quantileMS(ok, 0.5), quantileMS(ok, 0.99), quantileMS(ok, 1))
	}
	lost, packets := 0, 0
	for _, m := range media {
		p, l, _ := m.total()
		packets += p
		lost += l
	}
	t.Logf("%d calls, %d rounds: %d dropped, %d of %d pulls failed; the trunk received %d packets, %d lost; SIP requests to the trunk %v (before the pulls %v); load %s",
		calls, rounds, len(dropped), failed, 2*rounds*calls, packets, lost, after, before, loadAvg())
	for _, d := range dropped {
		t.Errorf("dropped: %s", d)
	}
	if failed > 0 {
		t.Errorf("%d pulls failed", failed)
	}
	for i, dc := range dialogs {
		bctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := dc.Bye(bctx); err != nil && !strings.Contains(strings.Join(dropped, "\n"), tn.users[i]+":") {
			t.Errorf("%s: the trunk's BYE: %v", tn.users[i], err)
		}
		cancel()
	}
}

// parallel runs f(0..n-1) at once and returns their errors.
func parallel(n int, f func(i int) error) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f(i)
		}()
	}
	wg.Wait()
	return errs
}

func countErrs(errs []error) int {
	n := 0
	for _, err := range errs {
		if err != nil {
			n++
		}
	}
	return n
}

// summarize groups errors by message, most frequent first.
func summarize(errs []error) string {
	count := map[string]int{}
	for _, err := range errs {
		if err != nil {
			count[err.Error()]++
		}
	}
	if len(count) == 0 {
		return ""
	}
	type kv struct {
		msg string
		n   int
	}
	var list []kv
	for m, n := range count {
		list = append(list, kv{m, n})
	}
	sort.Slice(list, func(i, j int) bool { return list[i].n > list[j].n })
	var b strings.Builder
	for _, e := range list {
		fmt.Fprintf(&b, "; %d× %s", e.n, e.msg)
	}
	return b.String()
}

// activeWith says whether ep has an active call with peer.
func activeWith(ep *endpoint.Endpoint, peer string) bool {
	for _, c := range ep.Calls() {
		if c.State == "active" && c.Peer == peer {
			return true
		}
	}
	return false
}

// waitIdle waits until ep has no call that is not ended (active false),
// or has its call active (active true: the call to take from it is up).
func waitIdle(ctx context.Context, ep *endpoint.Endpoint, active bool) error {
	for {
		busy, up := false, false
		for _, c := range ep.Calls() {
			if c.State != "ended" {
				busy = true
			}
			up = up || c.State == "active"
		}
		if (!active && !busy) || (active && up) {
			return nil
		}
		select {
		case <-ctx.Done():
			if active {
				return errors.New("the laptop has no active call to take")
			}
			return errors.New("the laptop never let its last call go")
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// lastArrival is when the trunk last received a packet of this call.
func (m *trunkMedia) lastArrival() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.got) == 0 {
		return time.Time{}
	}
	return m.got[len(m.got)-1].at
}
