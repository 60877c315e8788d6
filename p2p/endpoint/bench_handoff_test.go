package endpoint

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/baton-voice/baton/codecs"
	"github.com/baton-voice/baton/p2p/access"
	"github.com/baton-voice/baton/p2p/media"
)

// The handoff benchmarks measure what the far party C (bob) hears while
// alice's call moves: between her devices (BenchmarkPull,
// BenchmarkPullImpaired) or between two addresses of one device
// (BenchmarkRebind). They run with the default handoff timers and report
// through b.ReportMetric; docs/benchmarks.md records the numbers and the
// targets. ns/op is the time spent inside Pull or Rebind; the settling
// time between handoffs is not timed.
//
// Correctness is checked on every handoff, not measured: a call that bob
// no longer has with a device of alice's (dropped) fails the benchmark at
// once; a device of alice's that has the call but hears nothing from bob
// afterwards (one-way) fails it at the end. Both are reported as metrics
// and in the log first, since a failed benchmark prints no metrics.
//
// The harness helpers of harness_test.go take *testing.T; these take
// testing.TB so a *testing.B can drive real endpoints too.

// benchSettle is the steady call between two handoffs, so each one starts
// from a call whose jitter buffer has settled (not timed). Each settle is
// longer by a random part of a packet time: with a fixed settle every
// handoff would start at the same phase of C's 20 ms packet clock, and the
// time to hear C (which waits for C's next packet) would be that one
// phase instead of its real spread.
const benchSettle = 200 * time.Millisecond

// benchPause sleeps benchSettle plus a random part of a packet time.
func benchPause(rng *rand.Rand) {
	time.Sleep(benchSettle + time.Duration(rng.Int64N(int64(20*time.Millisecond))))
}

// benchNet is an access server on loopback with the buddies alice and bob.
type benchNet struct {
	tb   testing.TB
	srv  *access.Server
	addr string
}

func benchLogger(tb testing.TB) *slog.Logger {
	tb.Helper()
	if os.Getenv("BATON_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("bench", tb.Name())
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func newBenchNet(tb testing.TB) *benchNet {
	tb.Helper()
	ctx := context.Background()
	srv, err := access.NewServer(ctx, access.Config{
		DataDir:     tb.TempDir(),
		ServerNames: []string{"127.0.0.1"},
		Logger:      benchLogger(tb),
	})
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(sctx, ln) }()
	tb.Cleanup(func() { cancel(); <-done; _ = srv.Close() })
	for _, u := range []string{"alice", "bob"} {
		if err := srv.Users().AddUser(ctx, u, u+"-secret"); err != nil {
			tb.Fatal(err)
		}
	}
	if err := srv.Users().AddBuddy(ctx, "alice", "bob"); err != nil {
		tb.Fatal(err)
	}
	return &benchNet{tb: tb, srv: srv, addr: ln.Addr().String()}
}

// benchParty is a started endpoint and its event subscription.
type benchParty struct {
	*Endpoint
	events <-chan Event
}

// start logs in user/device with the default handoff timers (Config.Timeouts
// left zero) unless an option sets them.
func (n *benchNet) start(user, device string, opts ...func(*Config)) *benchParty {
	n.tb.Helper()
	cfg := Config{
		Access:   n.addr,
		Roots:    n.srv.CA().Pool(),
		User:     user,
		Device:   device,
		Password: user + "-secret",
		SRTP:     true,
		Codecs:   codecs.DefaultRegistry(),
		Logger:   benchLogger(n.tb).With("ep", user+"/"+device),
	}
	for _, o := range opts {
		o(&cfg)
	}
	ep, err := New(cfg)
	if err != nil {
		n.tb.Fatal(err)
	}
	events, cancel := ep.Subscribe()
	if err := ep.Start(context.Background()); err != nil {
		cancel()
		n.tb.Fatalf("start %s/%s: %v", user, device, err)
	}
	n.tb.Cleanup(func() { cancel(); _ = ep.Close() })
	return &benchParty{Endpoint: ep, events: events}
}

// benchUntil polls cond until it holds; wait bounds it (never measured).
func benchUntil(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (p *benchParty) seesOnline(tb testing.TB, peer string) {
	tb.Helper()
	benchUntil(tb, p.Identity().String()+" to see "+peer+" online", func() bool {
		for _, b := range p.Buddies() {
			for _, d := range b.Devices {
				if b.User+"/"+d.Device == peer && d.Status == "online" {
					return true
				}
			}
		}
		return false
	})
}

// media returns the live media counters of call id.
func (p *benchParty) media(tb testing.TB, id string) MediaInfo {
	tb.Helper()
	info, err := p.Call(id)
	if err != nil {
		tb.Fatal(err)
	}
	if info.Media == nil {
		tb.Fatalf("%s: call %s (%s) has no media", p.Identity(), id, info.State)
	}
	return *info.Media
}

// ended drains p's events and returns the call.ended ones for id. A closed
// channel (the subscriber fell 1024 events behind) is reported as such.
func (p *benchParty) ended(tb testing.TB, id string) []Event {
	tb.Helper()
	var out []Event
	for {
		select {
		case ev, ok := <-p.events:
			if !ok {
				tb.Fatalf("%s: event subscription lost (not drained in time)", p.Identity())
			}
			if ev.Type == "call.ended" && ev.CallID == id {
				out = append(out, ev)
			}
		default:
			return out
		}
	}
}

func (p *benchParty) drainEvents() {
	for {
		select {
		case _, ok := <-p.events:
			if !ok {
				return
			}
		default:
			return
		}
	}
}

// benchSteady waits until bob (C) has played n more frames of call id: the
// call is up and its audio flows.
func benchSteady(tb testing.TB, bob *benchParty, id string, n uint64) {
	tb.Helper()
	before := bob.media(tb, id).Played
	benchUntil(tb, "bob to play audio", func() bool { return bob.media(tb, id).Played >= before+n })
}

// benchHears waits one settle and reports whether p received audio on call id
// meanwhile (it must hear bob), with p's counters for the log.
func benchHears(tb testing.TB, p *benchParty, id string, rng *rand.Rand) (bool, string) {
	tb.Helper()
	before := p.media(tb, id)
	benchPause(rng)
	info, err := p.Call(id)
	if err != nil || info.Media == nil {
		return false, fmt.Sprintf("%s: call %s gone: %v", p.Identity(), id, err)
	}
	m := *info.Media
	return m.PacketsReceived > before.PacketsReceived, fmt.Sprintf(
		"%s (%s, media %s <- %s): received %d (+%d), auth failed %d (+%d), wrong source %d (+%d), malformed %d, replay-protected/late %d",
		p.Identity(), info.State, info.LocalMedia, info.RemoteMedia, m.PacketsReceived, m.PacketsReceived-before.PacketsReceived,
		m.AuthFailed, m.AuthFailed-before.AuthFailed, m.WrongSource, m.WrongSource-before.WrongSource, m.Malformed, m.Late)
}

// benchStats collects one benchmark's handoffs and what bob heard.
type benchStats struct {
	outcomes   map[string]int // HandoffInfo.State (and "error" without one)
	firstAudio []float64      // FirstAudioMS of the completed handoffs
	steps      map[int][]float64
	// lost is bob's Lost delta per handoff (and the settle after it). It
	// is signed: RFC 3550 A.3's cumulative loss goes down when a packet
	// counted lost arrives late or reordered.
	lost      []int64
	concealed []int64  // bob's FramesConcealed delta per handoff
	gapGrowth []string // handoffs after which bob's longest gap grew
	late      uint64   // bob's Late packets over the handoffs
	// explain, when set, keeps the steps of every handoff that cost bob a
	// frame (on a clean network any such frame is a finding to explain).
	explain  bool
	costly   []string
	converge []float64
	dropped  int
	// oneWay counts handoffs after which alice's device that has the call
	// received nothing from bob during the settle: bob hears alice, alice
	// does not hear bob.
	oneWay     int
	baseGapMS  float64 // bob's longest gap before the first handoff
	lastGapMS  float64
	baseConc   float64 // bob's concealed frames per second in a steady call
	baseLostPS float64
	total      int
}

func newBenchStats() *benchStats {
	return &benchStats{outcomes: map[string]int{}, steps: map[int][]float64{}}
}

// baseline measures bob's steady-state concealment and loss over d before
// any handoff, so a reader can tell the handoff's cost from the network's.
func (s *benchStats) baseline(tb testing.TB, bob *benchParty, id string, d time.Duration) {
	tb.Helper()
	before := bob.media(tb, id)
	time.Sleep(d)
	after := bob.media(tb, id)
	s.baseConc = float64(after.Concealed-before.Concealed) / d.Seconds()
	s.baseLostPS = float64(after.Lost-before.Lost) / d.Seconds()
	s.baseGapMS = after.LongestGapMS
	s.lastGapMS = after.LongestGapMS
}

// record files handoff i with bob's counters before it and before the next.
func (s *benchStats) record(i int, h HandoffInfo, before, after MediaInfo) {
	s.total++
	state := h.State
	if state == "" {
		state = "error"
	}
	s.outcomes[state]++
	if state == "done" {
		s.firstAudio = append(s.firstAudio, h.FirstAudioMS)
		for _, st := range h.Steps {
			s.steps[st.Step] = append(s.steps[st.Step], st.SinceStartMS)
		}
	}
	s.lost = append(s.lost, int64(after.Lost)-int64(before.Lost))
	s.concealed = append(s.concealed, int64(after.Concealed)-int64(before.Concealed))
	s.late += after.Late - before.Late
	if s.explain && (after.Lost > before.Lost || after.Concealed > before.Concealed) {
		s.costly = append(s.costly, fmt.Sprintf("#%d cost bob lost %d, concealed %d, late %d, wrong source %d, source switches %d, jitter %.1f ms\n%s",
			i, s.lost[len(s.lost)-1], s.concealed[len(s.concealed)-1], after.Late-before.Late,
			after.WrongSource-before.WrongSource, after.SourceSwitches-before.SourceSwitches, after.JitterMS, benchSteps(h)))
	}
	if after.LongestGapMS > s.lastGapMS {
		s.gapGrowth = append(s.gapGrowth, fmt.Sprintf("#%d(%s): %.0f ms", i, state, after.LongestGapMS))
		s.lastGapMS = after.LongestGapMS
	}
}

// benchPct is the p-quantile (0..1) of xs by nearest rank below; NaN if empty.
func benchPct(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[int(p*float64(len(s)-1))]
}

func benchSum(xs []int64) int64 {
	var t int64
	for _, x := range xs {
		t += x
	}
	return t
}

func benchMax(xs []int64) int64 {
	var m int64
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}

// report writes the metrics (b.ReportMetric) and the same summary to the
// log, which is still printed when the benchmark fails.
func (s *benchStats) report(b *testing.B) {
	b.Helper()
	n := float64(max(s.total, 1))
	share := func(state string) float64 { return float64(s.outcomes[state]) / n }
	b.ReportMetric(benchPct(s.firstAudio, 0.50), "ms-to-hear-p50")
	b.ReportMetric(benchPct(s.firstAudio, 0.99), "ms-to-hear-p99")
	b.ReportMetric(benchPct(s.firstAudio, 1), "ms-to-hear-max")
	b.ReportMetric(s.lastGapMS, "gap-max-ms")
	b.ReportMetric(float64(benchSum(s.lost)), "lost-total")
	b.ReportMetric(float64(benchSum(s.concealed)), "concealed-total")
	b.ReportMetric(float64(benchSum(s.concealed))/n, "concealed/op")
	b.ReportMetric(float64(s.dropped), "dropped")
	b.ReportMetric(float64(s.oneWay), "one-way")
	b.ReportMetric(share("done"), "done-share")
	if s.outcomes["done"] != s.total {
		b.ReportMetric(share("rolled-back"), "rolled-back-share")
		b.ReportMetric(1-share("done")-share("rolled-back"), "other-share")
	}
	var lines []string
	lines = append(lines, fmt.Sprintf("%d handoffs: outcomes %v; dropped calls %d; one-way afterwards %d", s.total, s.outcomes, s.dropped, s.oneWay))
	lines = append(lines, fmt.Sprintf("first audio from C (done only): p50 %.2f ms, p99 %.2f ms, max %.2f ms, min %.2f ms",
		benchPct(s.firstAudio, 0.5), benchPct(s.firstAudio, 0.99), benchPct(s.firstAudio, 1), benchPct(s.firstAudio, 0)))
	lines = append(lines, fmt.Sprintf("bob: lost %d (max %d in one handoff), concealed %d (max %d in one handoff), late %d; steady-state before: %.1f concealed/s, %.1f lost/s",
		benchSum(s.lost), benchMax(s.lost), benchSum(s.concealed), benchMax(s.concealed), s.late, s.baseConc, s.baseLostPS))
	lines = append(lines, fmt.Sprintf("bob's longest gap: %.0f ms before the first handoff, %.0f ms at the end; grew at %v",
		s.baseGapMS, s.lastGapMS, s.gapGrowth))
	if len(s.converge) > 0 {
		lines = append(lines, fmt.Sprintf("bob back on the expected peer after a non-completed handoff: p50 %.0f ms, max %.0f ms",
			benchPct(s.converge, 0.5), benchPct(s.converge, 1)))
	}
	steps := make([]int, 0, len(s.steps))
	for k := range s.steps {
		if k > 1 { // step 1 is the login, long before the request
			steps = append(steps, k)
		}
	}
	slices.Sort(steps)
	var sb strings.Builder
	for _, k := range steps {
		fmt.Fprintf(&sb, " %d:%.1f/%.1f", k, benchPct(s.steps[k], 0.5), benchPct(s.steps[k], 0.99))
	}
	lines = append(lines, "step reached, ms since request (p50/p99):"+sb.String())
	if len(s.costly) > 0 {
		lines = append(lines, fmt.Sprintf("%d handoffs cost bob audio: their steps are on stderr", len(s.costly)))
		// b.Log keeps only 10 lines of a passing benchmark's output.
		fmt.Fprintf(os.Stderr, "%s: handoffs that cost bob audio:\n%s\n", b.Name(), strings.Join(s.costly, "\n"))
	}
	b.Log(strings.Join(lines, "\n"))
}

func benchSteps(h HandoffInfo) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "handoff %s %s state=%s first_audio=%.2fms err=%q", h.ID, h.Kind, h.State, h.FirstAudioMS, h.Error)
	for _, s := range h.Steps {
		fmt.Fprintf(&sb, "\n  step %2d %+9.2f ms  %s: %s", s.Step, s.SinceStartMS, s.Title, s.Detail)
	}
	return sb.String()
}

// pullBench is bob (C, auto-answer) in a call with alice, which two of
// alice's devices take from each other.
type pullBench struct {
	bob, desk, laptop *benchParty
	id                string
	// impair is each endpoint's Impairment (nil without one). The media
	// layer seeds every session of an endpoint with the same Seed, so a
	// puller's short sessions would all replay the first draws of one
	// pattern (in practice: no loss at all); the benchmark gives each
	// pull's sessions a seed of their own (see reseed).
	impair map[*benchParty]*media.Impairment
}

// newPullBench sets up the call: alice/desk calls bob; alice/laptop is
// online and sees the desk. impair, when not nil, gives every endpoint an
// Impairment built by impair(seed), with a distinct seed each.
func newPullBench(b *testing.B, impair func(seed uint64) *media.Impairment) *pullBench {
	b.Helper()
	n := newBenchNet(b)
	imps := map[string]*media.Impairment{}
	opts := func(name string, seed uint64, hz float64) []func(*Config) {
		o := []func(*Config){withTone(hz)}
		if impair != nil {
			imps[name] = impair(seed)
			o = append(o, func(c *Config) { c.Impairment = imps[name] })
		}
		return o
	}
	pb := &pullBench{
		bob:    n.start("bob", "mobile", append(opts("bob", 1, 440), autoAnswer)...),
		desk:   n.start("alice", "desk", opts("desk", 2, 660)...),
		laptop: n.start("alice", "laptop", opts("laptop", 3, 880)...),
	}
	pb.impair = map[*benchParty]*media.Impairment{pb.bob: imps["bob"], pb.desk: imps["desk"], pb.laptop: imps["laptop"]}
	pb.desk.seesOnline(b, "bob/mobile")
	pb.desk.seesOnline(b, "alice/laptop")
	pb.laptop.seesOnline(b, "alice/desk")
	out, err := pb.desk.Dial(context.Background(), "bob")
	if err != nil {
		b.Fatal(err)
	}
	pb.id = out.ID
	benchUntil(b, "the call to be active", func() bool {
		bi, err1 := pb.bob.Call(out.ID)
		di, err2 := pb.desk.Call(out.ID)
		return err1 == nil && err2 == nil && bi.State == "active" && di.State == "active"
	})
	benchSteady(b, pb.bob, pb.id, 25)
	return pb
}

// reseed gives the sessions puller opens in pull i their own loss and
// jitter pattern. The puller has no call at this point, and Pull opens its
// sessions on the calling goroutine, so nothing reads the Impairment
// concurrently.
func (pb *pullBench) reseed(puller *benchParty, i int) {
	if im := pb.impair[puller]; im != nil {
		im.Seed = uint64(1000*(i+1)) + uint64(len(puller.Identity().Device))
	}
}

// holds reports whether bob's call is active with p as its peer and p has
// the call active: the call is up, on p.
func (pb *pullBench) holds(p *benchParty) bool {
	bi, err := pb.bob.Call(pb.id)
	if err != nil || bi.State != "active" || bi.Peer != p.Identity().String() {
		return false
	}
	pi, err := p.Call(pb.id)
	return err == nil && pi.State == "active"
}

// runPulls makes b.N pulls in a row, each by the device that does not
// have the call; a pull that does not complete leaves the call where it
// was and the next pull tries again the same way. A dropped call (bob's
// call not back up on a device of alice's within wait, or bob saw it end)
// fails the benchmark after reporting.
func (pb *pullBench) runPulls(b *testing.B) {
	b.Helper()
	s := newBenchStats()
	s.explain = pb.impair[pb.bob] == nil
	s.baseline(b, pb.bob, pb.id, 2*time.Second)
	holder, puller := pb.desk, pb.laptop
	pb.bob.drainEvents()
	rng := rand.New(rand.NewPCG(1, 2))
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		pb.desk.drainEvents()
		pb.laptop.drainEvents()
		pb.reseed(puller, i)
		before := pb.bob.media(b, pb.id)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		b.StartTimer()
		h, err := puller.Pull(ctx, PullRequest{From: holder.Identity().Device})
		b.StopTimer()
		cancel()
		if h.State != "done" {
			b.Logf("pull #%d by %s did not complete: %v\n%s", i, puller.Identity(), err, benchSteps(h))
		}
		want := holder
		if h.State == "done" {
			want = puller
		}
		t0 := time.Now()
		up := pb.holds(want)
		if !up && h.State == "done" {
			b.Logf("pull #%d done but bob's call is not on %s yet\n%s", i, want.Identity(), benchSteps(h))
		}
		for !up && time.Since(t0) < wait {
			time.Sleep(5 * time.Millisecond)
			up = pb.holds(want)
		}
		if h.State != "done" {
			s.converge = append(s.converge, float64(time.Since(t0).Microseconds())/1000)
		}
		endedAtBob := pb.bob.ended(b, pb.id)
		if !up || len(endedAtBob) > 0 {
			s.dropped++
			bi, _ := pb.bob.Call(pb.id)
			s.record(i, h, before, before)
			s.report(b)
			b.Fatalf("pull #%d dropped the call: bob %+v, call.ended at bob %+v, expected on %s\n%s",
				i, bi, endedAtBob, want.Identity(), benchSteps(h))
		}
		if h.State == "done" {
			holder, puller = puller, holder
		}
		// bob's counters over the pull and the steady call after it, which
		// the next pull starts from; meanwhile alice's device must hear bob.
		ok, detail := benchHears(b, holder, pb.id, rng)
		if !ok {
			s.oneWay++
			bi, _ := pb.bob.Call(pb.id)
			b.Errorf("after pull #%d (%s) %s hears nothing from bob: %s; bob sends %s -> %s\n%s",
				i, h.State, holder.Identity(), detail, bi.LocalMedia, bi.RemoteMedia, benchSteps(h))
		}
		s.record(i, h, before, pb.bob.media(b, pb.id))
		i++
		b.StartTimer()
	}
	s.report(b)
	if s.outcomes["done"]+s.outcomes["rolled-back"] != s.total {
		b.Errorf("%d of %d pulls neither completed nor rolled back cleanly: %v", s.total-s.outcomes["done"]-s.outcomes["rolled-back"], s.total, s.outcomes)
	}
}

// BenchmarkPull: b.N pulls in a row between alice/desk and alice/laptop
// while bob (C) stays in the call (-benchtime 100x is the "100 pulls in a
// row" of the issue). Default timers, SRTP, G.711, loopback.
func BenchmarkPull(b *testing.B) {
	newPullBench(b, nil).runPulls(b)
}

// BenchmarkPullImpaired is BenchmarkPull with 5 % loss and up to 30 ms of
// jitter on every endpoint's outgoing RTP (each its own pattern). A pull
// may roll back; the call must never drop.
func BenchmarkPullImpaired(b *testing.B) {
	newPullBench(b, func(seed uint64) *media.Impairment {
		return &media.Impairment{Loss: 0.05, Jitter: 30 * time.Millisecond, Seed: seed}
	}).runPulls(b)
}

// rebindBench is alice/laptop in a call with bob (C), its media on the
// first of ips.
type rebindBench struct {
	bob, alice *benchParty
	id         string
	ips        [2]netip.Addr
}

func newRebindBench(b *testing.B) *rebindBench {
	b.Helper()
	n := newBenchNet(b)
	rb := &rebindBench{ips: [2]netip.Addr{netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.7")}}
	rb.bob = n.start("bob", "mobile", withTone(440), autoAnswer)
	rb.alice = n.start("alice", "laptop", withTone(660), func(c *Config) { c.MediaIP = rb.ips[0] })
	rb.alice.seesOnline(b, "bob/mobile")
	out, err := rb.alice.Dial(context.Background(), "bob")
	if err != nil {
		b.Fatal(err)
	}
	rb.id = out.ID
	benchUntil(b, "the call to be active", func() bool {
		bi, err1 := rb.bob.Call(out.ID)
		ai, err2 := rb.alice.Call(out.ID)
		return err1 == nil && err2 == nil && bi.State == "active" && ai.State == "active"
	})
	benchSteady(b, rb.bob, rb.id, 25)
	return rb
}

// BenchmarkRebind: during one call, alice's media moves between
// 127.0.0.2 and 127.0.0.7 b.N times (claim steps 8-12 as mobility).
func BenchmarkRebind(b *testing.B) {
	rb := newRebindBench(b)
	s := newBenchStats()
	s.explain = true
	s.baseline(b, rb.bob, rb.id, 2*time.Second)
	rb.bob.drainEvents()
	rng := rand.New(rand.NewPCG(1, 2))
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		rb.alice.drainEvents()
		before := rb.bob.media(b, rb.id)
		ip := rb.ips[(i+1)%2]
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		b.StartTimer()
		h, err := rb.alice.Rebind(ctx, ip)
		b.StopTimer()
		cancel()
		if err != nil || h.State != "done" {
			b.Logf("rebind #%d to %s did not complete: %v\n%s", i, ip, err, benchSteps(h))
		}
		ai, aerr := rb.alice.Call(rb.id)
		bi, berr := rb.bob.Call(rb.id)
		endedAtBob := rb.bob.ended(b, rb.id)
		if aerr != nil || berr != nil || ai.State != "active" || bi.State != "active" || len(endedAtBob) > 0 {
			s.dropped++
			s.record(i, h, before, before)
			s.report(b)
			b.Fatalf("rebind #%d dropped the call: alice %+v, bob %+v, call.ended at bob %+v\n%s", i, ai, bi, endedAtBob, benchSteps(h))
		}
		if h.State == "done" && (!strings.HasPrefix(ai.LocalMedia, ip.String()+":") || bi.RemoteMedia != ai.LocalMedia) {
			b.Errorf("rebind #%d: alice listens on %s, bob sends to %s, want %s", i, ai.LocalMedia, bi.RemoteMedia, ip)
		}
		ok, detail := benchHears(b, rb.alice, rb.id, rng)
		if !ok {
			s.oneWay++
			bm := rb.bob.media(b, rb.id)
			b.Errorf("after rebind #%d (%s) alice hears nothing from bob: %s; bob sends to %s, sent %d",
				i, h.State, detail, bi.RemoteMedia, bm.PacketsSent)
		}
		s.record(i, h, before, rb.bob.media(b, rb.id))
		i++
		b.StartTimer()
	}
	s.report(b)
	if s.outcomes["done"] != s.total {
		b.Errorf("%d of %d rebinds did not complete: %v", s.total-s.outcomes["done"], s.total, s.outcomes)
	}
}
