package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Issue 8 §7, calls per second: short calls set up and torn down through
// the real `baton gateway`, next to Kamailio as a stateful proxy, in the
// same run on the same machine. Not part of `make test`: it runs only with
// BATON_BENCH_GATEWAY=1 (make bench-gateway). Each step is one sipp run at
// a fixed rate (-r RATE -m CALLS); the numbers are logged, and the highest
// rate with no failed call is reported for each side. The test fails only
// when a side cannot complete a single step at its lowest rate, i.e. when
// the setup itself is broken.
//
// Kamailio: sipp -sn uac -> kamailio (testdata/kamailio/bench_proxy.cfg,
// tm, t_relay) -> sipp as a UAS (bench_uas.xml: -sn uas without the 180).
//
// Gateway, two shapes (BATON_BENCH_SHAPES, default "sip,softphone"):
//   - sip, the shape: sipp UAC -> gateway -> sipp UAS. sipp
//     registers as alice's desk phone (alice/desk) and calls "carol"
//     (bench_call.xml, digest on REGISTER and INVITE); carol's desk
//     phone is `sipp -sn uas`, registered as carol/desk. The gateway
//     bridges the two dialogs through its two devices' P2P endpoints: a
//     full P2P call between alice/desk and carol/desk (TLS signaling,
//     SRTP keys, media sessions), as TestE2EDeskPhoneCallsDeskPhone.
//     Both accounts have max_calls BATON_BENCH_MAX_CALLS (default 512),
//     so nothing but the gateway bounds the calls in progress.
//   - softphone: the same desk phone calls one of several auto-answering
//     P2P softphones alice/p1..pN (`baton phone`), round robin through an
//     -inf file; a softphone takes one call at a time (MaxCalls 1), so N
//     bounds the calls in progress.
//
// Knobs: BATON_BENCH_RATES (comma list, default 5,10,20,40,80,120,160),
// BATON_BENCH_KAM_RATES (default 250,500,1000,1500,2000,3000; "0" skips
// kamailio), BATON_BENCH_CALLS (calls per step, default 200),
// BATON_BENCH_PHONES (default 4), BATON_BENCH_LOCAL_SHORTCUT ("0": the
// gateway's devices call each other over TLS to its own listener, not in
// process; docs/host.md), BATON_BENCH_PROFILE (a directory: the
// gateway runs with --pprof and each gateway step's CPU profile is saved
// there as SHAPE-RATE.pprof, for `go tool pprof -top`), BATON_BENCH_BIN
// (a prebuilt baton binary to run instead of building this tree's: an
// older commit's, built from `git archive`, measured by the same harness).
func TestBenchGatewayCPS(t *testing.T) {
	if os.Getenv("BATON_BENCH_GATEWAY") != "1" {
		t.Skip("benchmark: set BATON_BENCH_GATEWAY=1 (make bench-gateway)")
	}
	if bin := os.Getenv("BATON_BENCH_BIN"); bin != "" {
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("BATON_BENCH_BIN: %v", err)
		}
		e2e.once.Do(func() { e2e.bin = bin })
	}
	sipp := needTool(t, "sipp")
	b := cpsBench{
		sipp:     sipp,
		calls:    envInt(t, "BATON_BENCH_CALLS", 200),
		rates:    envInts(t, "BATON_BENCH_RATES", []int{5, 10, 20, 40, 80, 120, 160}),
		profiles: os.Getenv("BATON_BENCH_PROFILE"),
	}
	kamRates := []int{250, 500, 1000, 1500, 2000, 3000}
	if os.Getenv("BATON_BENCH_KAM_RATES") != "0" {
		kamRates = envInts(t, "BATON_BENCH_KAM_RATES", kamRates)
	} else {
		kamRates = nil
	}
	if b.profiles != "" {
		if err := os.MkdirAll(b.profiles, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	shapes := strings.Split(os.Getenv("BATON_BENCH_SHAPES"), ",")
	if os.Getenv("BATON_BENCH_SHAPES") == "" {
		shapes = []string{"sip", "softphone"}
	}

	kamBest := 0
	if len(kamRates) > 0 {
		kamBest = benchKamailio(t, sipp, b.calls, kamRates)
	}
	for _, shape := range shapes {
		var best int
		var what string
		switch strings.TrimSpace(shape) {
		case "sip":
			best = b.sipToSIP(t, envInt(t, "BATON_BENCH_MAX_CALLS", 512))
			what = "sipp UAC -> gateway -> sipp UAS"
		case "none": // kamailio only
			continue
		case "softphone":
			phones := envInt(t, "BATON_BENCH_PHONES", 4)
			best = b.softphones(t, phones, envInt(t, "BATON_BENCH_MAX_CALLS", 512))
			what = fmt.Sprintf("sipp UAC -> gateway -> %d softphones", phones)
		default:
			t.Fatalf("BATON_BENCH_SHAPES: unknown shape %q (want sip or softphone)", shape)
		}
		ratio := 0.0
		if kamBest > 0 {
			ratio = float64(best) / float64(kamBest)
		}
		t.Logf("RESULT max rate with 0 failed calls: gateway %d cps (%s), kamailio %d cps, ratio %.4f, target 1500 cps", best, what, kamBest, ratio)
	}
}

// cpsBench is one run's settings for the gateway's steps.
type cpsBench struct {
	sipp     string
	calls    int
	rates    []int
	profiles string // directory for CPU profiles, "" = none
}

// benchKamailio runs the reference steps and returns the highest rate with
// no failed call.
func benchKamailio(t *testing.T, sipp string, calls int, rates []int) int {
	kam := needTool(t, "kamailio")
	kdir := t.TempDir()
	uasPort := freeUDPPort(t)
	// bench_uas.xml: the built-in uas without its 180, which kamailio's
	// workers can reorder behind the 200 (sipp's uac then fails the call).
	uasSF, err := filepath.Abs(filepath.Join("..", "..", "gateway", "testdata", "sipp", "bench_uas.xml"))
	if err != nil {
		t.Fatal(err)
	}
	uas := exec.Command(sipp, "-sf", uasSF, "-i", "127.0.0.1", "-p", uasPort, "-nostdin")
	uas.Dir = kdir
	if err := uas.Start(); err != nil {
		t.Fatalf("sipp uas: %v", err)
	}
	t.Cleanup(func() { _ = uas.Process.Kill(); _ = uas.Wait() })
	kamPort := freeUDPPort(t)
	cfg, err := filepath.Abs(filepath.Join("..", "..", "gateway", "testdata", "kamailio", "bench_proxy.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	kcmd := exec.Command(kam, "-f", cfg, "-DD", "-E", "-n", "2", "-m", "512", "-M", "16", "-l", "udp:127.0.0.1:"+kamPort,
		"-A", `UAS="sip:127.0.0.1:`+uasPort+`"`, "-w", kdir, "-P", filepath.Join(kdir, "kam.pid"))
	klog, err := os.Create(filepath.Join(kdir, "kamailio.log"))
	if err != nil {
		t.Fatal(err)
	}
	kcmd.Stdout, kcmd.Stderr = klog, klog
	if err := kcmd.Start(); err != nil {
		t.Fatal(err)
	}
	// SIGTERM: kamailio's main process then stops its forked workers (a
	// SIGKILL would leave them running).
	stop := func() { _ = kcmd.Process.Signal(syscall.SIGTERM); _ = kcmd.Wait() }
	defer stop()
	time.Sleep(time.Second)
	// Warm-up, not counted: the first calls after start can be lost while
	// kamailio's workers and the UAS come up.
	w := sippStep(t, sipp, kdir, "127.0.0.1:"+kamPort, "kamwarm", 10, 20, "-sn", "uac")
	t.Logf("kamailio  warm-up: %d ok, %d failed (not counted)", w.ok, w.failed)

	best := 0
	for i, r := range rates {
		c0 := cpuTicks(treePids(kcmd.Process.Pid)...)
		st := sippStep(t, sipp, kdir, "127.0.0.1:"+kamPort, fmt.Sprintf("kam%d", r), r, calls*5,
			"-sn", "uac")
		cpu := cpuTicks(treePids(kcmd.Process.Pid)...) - c0
		t.Logf("kamailio  rate %5d cps, %5d calls: %5d ok, %3d failed, achieved %7.1f cps, kamailio CPU %.3f ms/call, load %s",
			r, calls*5, st.ok, st.failed, st.cps, perCall(cpu, st.ok), st.load)
		if st.failed == 0 && st.ok > 0 {
			best = r
		} else if i == 0 && st.ok == 0 {
			t.Fatalf("kamailio: no call completed at %d cps; log %s", r, filepath.Join(kdir, "kamailio.log"))
		}
	}
	return best
}

// startCPSGateway starts an access server and a gateway for the benchmark
// (users alice and carol, buddies; accounts alice/desk and carol/desk with
// maxCalls), with --pprof when profiles are asked for.
func (b *cpsBench) startCPSGateway(t *testing.T, maxCalls int) (*bridgeNet, string) {
	t.Helper()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	srv := startAccess(t, "access", dir, data, "127.0.0.1:0")
	pw := addUsers(t, dir, data, "alice", "carol")
	mustBaton(t, dir, "buddy", "add", "alice", "carol", "--data-dir", data)
	var accounts strings.Builder
	for _, user := range []string{"carol", "alice"} {
		sipPw := writeFile(t, dir, user+"-sip.pw", user+"-sip-secret\n")
		ha1 := strings.TrimSpace(mustBaton(t, dir, "gateway", "ha1", "--user", user, "--realm", "baton", "--password-file", sipPw).stdout)
		fmt.Fprintf(&accounts, "  - sip_user: %s\n    ha1: %s\n    device: %s/desk\n    password_file: %s\n    max_calls: %d\n", user, ha1, user, pw[user], maxCalls)
	}
	cfg := writeFile(t, dir, "gateway.yaml", fmt.Sprintf(`access: %s
ca: %s
sip:
  udp: 127.0.0.1:0
  tcp: ""
  realm: baton
accounts:
%s`, srv.addr, srv.ca, accounts.String()))
	args := []string{"gateway", "--config", cfg}
	if lv := os.Getenv("BATON_BENCH_LOG_LEVEL"); lv != "" {
		args = append(args, "--log-level", lv) // e.g. debug, to see why calls fail
	}
	if os.Getenv("BATON_BENCH_LOCAL_SHORTCUT") == "0" {
		args = append(args, "--no-local-shortcut") // the TLS path between the gateway's devices
	}
	pprofAddr := ""
	if b.profiles != "" {
		pprofAddr = freeAddr(t)
		args = append(args, "--pprof", pprofAddr)
	}
	gw := start(t, "gateway", dir, args...)
	m := gw.waitStdout(t, gatewayReady)
	return &bridgeNet{dir: dir, srv: srv, gw: gw, sipUDP: m[1], gwAdmin: m[4], pw: pw}, pprofAddr
}

// sipToSIP is the shape: sipp UAC (alice's desk phone) -> gateway
// -> sipp UAS (carol's desk phone), the gateway's two devices calling each
// other over P2P in between.
func (b *cpsBench) sipToSIP(t *testing.T, maxCalls int) int {
	n, pprofAddr := b.startCPSGateway(t, maxCalls)
	sdir := t.TempDir()
	carolPort := freeUDPPort(t)
	runSipp(t, b.sipp, sdir, n.sipUDP, "register.xml", "-key", "deskuser", "carol", "-au", "carol", "-ap", "carol-sip-secret", "-i", "127.0.0.1", "-p", carolPort)
	uas := exec.Command(b.sipp, "-sn", "uas", "-i", "127.0.0.1", "-p", carolPort, "-nostdin")
	uas.Dir = sdir
	if err := uas.Start(); err != nil {
		t.Fatalf("sipp uas: %v", err)
	}
	defer func() { _ = uas.Process.Kill(); _ = uas.Wait() }()
	alicePort := freeUDPPort(t)
	runSipp(t, b.sipp, sdir, n.sipUDP, "register.xml", "-key", "deskuser", "alice", "-au", "alice", "-ap", "alice-sip-secret", "-i", "127.0.0.1", "-p", alicePort)
	eventually(t, pollTimeout, "both desk phones online", func() (bool, string) {
		st := mustCtl(t, n.dir, n.gwAdmin, "status").stdout
		return strings.Count(st, "true") >= 2 && strings.Contains(st, "alice/desk") && strings.Contains(st, "carol/desk"), st
	})
	inf := writeFile(t, sdir, "callees.csv", "SEQUENTIAL\ncarol;\n")
	return b.gatewaySteps(t, "sip", n, pprofAddr, nil, sdir, inf, alicePort, "alice")
}

// softphones is the second shape: the desk phone calls P2P softphones.
func (b *cpsBench) softphones(t *testing.T, phones, maxCalls int) int {
	// The desk phone's device takes maxCalls calls at once, so only the
	// softphones (one call each) bound the calls in progress.
	n, pprofAddr := b.startCPSGateway(t, maxCalls)
	var phonePids []int
	var inf strings.Builder
	inf.WriteString("SEQUENTIAL\n")
	for i := 1; i <= phones; i++ {
		dev := fmt.Sprintf("p%d", i)
		p := startPhone(t, n.dir, n.srv, "carol", dev, n.pw["carol"], phoneOpts{tone: 440, autoAnswer: true})
		phonePids = append(phonePids, p.cmd.Process.Pid)
		fmt.Fprintf(&inf, "carol+%s;\n", dev)
	}
	sdir := t.TempDir()
	infFile := writeFile(t, sdir, "callees.csv", inf.String())
	sipPort := freeUDPPort(t)
	runSipp(t, b.sipp, sdir, n.sipUDP, "register.xml", "-key", "deskuser", "alice", "-au", "alice", "-ap", "alice-sip-secret", "-i", "127.0.0.1", "-p", sipPort)
	return b.gatewaySteps(t, "softphone", n, pprofAddr, phonePids, sdir, infFile, sipPort, "alice")
}

// gatewaySteps runs the rate steps of one shape: the desk phone sipUser on
// sipPort calls the -inf file's callees through the gateway. It returns
// the highest rate with no failed call.
func (b *cpsBench) gatewaySteps(t *testing.T, shape string, n *bridgeNet, pprofAddr string, phonePids []int, sdir, inf, sipPort, sipUser string) int {
	sf, err := filepath.Abs(filepath.Join("..", "..", "gateway", "testdata", "sipp", "bench_call.xml"))
	if err != nil {
		t.Fatal(err)
	}
	gw := []int{n.gw.cmd.Process.Pid}
	best := 0
	for i, r := range b.rates {
		var prof chan error
		if pprofAddr != "" {
			prof = make(chan error, 1)
			secs := b.calls/r + 1
			path := filepath.Join(b.profiles, fmt.Sprintf("%s-%d.pprof", shape, r))
			go func() { prof <- fetchPprof(pprofAddr, "profile", secs, path) }()
		}
		g0, p0, a0 := cpuTicks(gw...), cpuTicks(phonePids...), cpuTicks(n.srv.proc.cmd.Process.Pid)
		m0 := gatewayMemStats(t, n.gwAdmin)
		st := sippStep(t, b.sipp, sdir, n.sipUDP, fmt.Sprintf("%s%d", shape, r), r, b.calls,
			"-sf", sf, "-inf", inf, "-key", "deskuser", sipUser, "-au", sipUser, "-ap", sipUser+"-sip-secret",
			"-p", sipPort, "-mi", "127.0.0.1", "-mp", freeUDPPort(t))
		g, p, a := cpuTicks(gw...)-g0, cpuTicks(phonePids...)-p0, cpuTicks(n.srv.proc.cmd.Process.Pid)-a0
		m := gatewayMemStats(t, n.gwAdmin).sub(m0)
		phones := ""
		if len(phonePids) > 0 {
			phones = fmt.Sprintf(" phones %.2f", perCall(p, st.ok))
		}
		t.Logf("gateway %-9s rate %5d cps, %5d calls: %5d ok, %3d failed, achieved %7.1f cps, CPU ms/call gateway %.2f%s access %.2f, gateway alloc/call %.1f KB %.0f objects %.2f GC, auth replays %.0f limited %.0f, load %s",
			shape, r, b.calls, st.ok, st.failed, st.cps, perCall(g, st.ok), phones, perCall(a, st.ok),
			m.bytes/1024/float64(max(st.ok, 1)), m.mallocs/float64(max(st.ok, 1)), m.gcs/float64(max(st.ok, 1)), m.replays, m.limited, st.load)
		if prof != nil {
			if err := <-prof; err != nil {
				t.Logf("gateway %s rate %d: no CPU profile: %v", shape, r, err)
			}
			// Allocations since the gateway started (go tool pprof
			// -sample_index=alloc_space), after this step.
			if err := fetchPprof(pprofAddr, "allocs", 0, filepath.Join(b.profiles, fmt.Sprintf("%s-%d.allocs.pprof", shape, r))); err != nil {
				t.Logf("gateway %s rate %d: no allocation profile: %v", shape, r, err)
			}
		}
		if st.failed > 0 {
			logGatewayFailures(t, shape, r, n.gw.stderr.String())
		}
		if st.failed == 0 && st.ok > 0 {
			best = r
		} else if i == 0 && st.ok == 0 {
			t.Fatalf("gateway %s: no call completed at %d cps; sipp errors in %s", shape, r, sdir)
		}
		gatewayIdle(t, n.dir, n.gwAdmin)
	}
	return best
}

var digits = regexp.MustCompile(`[0-9]+`)

// logGatewayFailures logs why the gateway failed calls: its log lines
// about failed dials and refused signaling, counted by message and error.
func logGatewayFailures(t *testing.T, shape string, rate int, stderr string) {
	t.Helper()
	counts := map[string]int{}
	for _, line := range strings.Split(stderr, "\n") {
		if !strings.Contains(line, "level=") || strings.Contains(line, "level=DEBUG") && !strings.Contains(line, "refused") {
			continue
		}
		msg, rest := "", line
		if i := strings.Index(line, "msg="); i >= 0 {
			msg, rest = line[i+4:], line[i+4:]
			if strings.HasPrefix(msg, `"`) {
				if j := strings.Index(msg[1:], `"`); j >= 0 {
					msg = msg[1 : j+1]
				}
			} else if j := strings.IndexByte(msg, ' '); j >= 0 {
				msg = msg[:j]
			}
		}
		if msg == "call ended" || msg == "device online" || msg == "registration" {
			continue
		}
		errText := ""
		if i := strings.Index(rest, "err="); i >= 0 {
			errText = rest[i+4:]
			if len(errText) > 160 {
				errText = errText[:160]
			}
		}
		counts[msg+" | "+digits.ReplaceAllString(errText, "N")]++
	}
	for k, v := range counts {
		t.Logf("gateway %s rate %d log (cumulative): %5d x %s", shape, rate, v, k)
	}
}

// fetchPprof saves the gateway's profile name (secs seconds of it for
// "profile", the CPU profile) to path.
func fetchPprof(addr, name string, secs int, path string) error {
	c := http.Client{Timeout: time.Duration(secs+30) * time.Second}
	u := fmt.Sprintf("http://%s/debug/pprof/%s", addr, name)
	if secs > 0 {
		u += fmt.Sprintf("?seconds=%d", secs)
	}
	res, err := c.Get(u)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("pprof: %s", res.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, res.Body); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// memStats are the Go runtime's cumulative allocation counters of a
// process, from its /metrics (the Go collector): bytes and objects
// allocated and GC cycles. Unlike CPU time they do not depend on the load
// of the machine, so a step's difference divided by its calls is a per-call
// cost that compares across runs.
type memStats struct {
	bytes, mallocs, gcs float64
	// limited and replays are the gateway's digest counters: requests
	// refused by the per-source limiter, and credentials replayed (late
	// retransmissions); a step with limited > 0 fails calls for that
	// reason alone (docs/benchmarks.md §16b).
	limited, replays float64
}

func (m memStats) sub(o memStats) memStats {
	return memStats{m.bytes - o.bytes, m.mallocs - o.mallocs, m.gcs - o.gcs, m.limited - o.limited, m.replays - o.replays}
}

// gatewayMemStats reads memStats from the admin API's /metrics.
func gatewayMemStats(t *testing.T, admin string) memStats {
	t.Helper()
	c := http.Client{Timeout: 10 * time.Second}
	res, err := c.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatalf("gateway metrics: %v", err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("gateway metrics: %v", err)
	}
	var m memStats
	found := 0
	for line := range strings.SplitSeq(string(body), "\n") {
		name, val, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		var dst *float64
		counted := true
		switch name {
		case "baton_gateway_auth_limited_total":
			dst, counted = &m.limited, false
		case "baton_gateway_auth_replays_total":
			dst, counted = &m.replays, false
		case "go_memstats_alloc_bytes_total":
			dst = &m.bytes
		case "go_memstats_mallocs_total":
			dst = &m.mallocs
		case "go_gc_duration_seconds_count":
			dst = &m.gcs
		default:
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			t.Fatalf("gateway metrics: %s %q: %v", name, val, err)
		}
		*dst = v
		if counted {
			found++
		}
	}
	if found != 3 {
		t.Fatalf("gateway metrics: %d of go_memstats_alloc_bytes_total, go_memstats_mallocs_total, go_gc_duration_seconds_count found", found)
	}
	return m
}

// gatewayIdle waits until the gateway lists no call that has not ended
// (an empty list included), so that one step does not spill into the next.
func gatewayIdle(t *testing.T, dir, admin string) {
	t.Helper()
	eventually(t, pollTimeout, "no call left in progress at the gateway", func() (bool, string) {
		r := ctl(t, dir, admin, "calls")
		if strings.TrimSpace(r.stdout) == "" {
			return true, ""
		}
		for _, row := range table(t, r.stdout) {
			if row["STATE"] != "ended" {
				return false, r.stdout
			}
		}
		return true, ""
	})
}

type sippStat struct {
	ok, failed int
	hung       bool // killed by the watchdog: cps counts its wait too
	cps        float64
	load       string
}

// sippStep runs one sipp UAC at rate cps for calls calls and reads its
// final statistics line (-trace_stat).
func sippStep(t *testing.T, sipp, dir, target, name string, rate, calls int, args ...string) sippStat {
	t.Helper()
	stf := filepath.Join(dir, name+".csv")
	errFile := filepath.Join(dir, name+".errors")
	argv := append([]string{target, "-i", "127.0.0.1", "-r", strconv.Itoa(rate), "-m", strconv.Itoa(calls),
		"-timeout", "60s", "-nostdin", "-trace_stat", "-stf", stf, "-fd", "1", "-trace_err", "-error_file", errFile}, args...)
	// sipp's -timeout does not always end a run whose calls are stuck
	// (seen with kamailio at 1,000 cps): kill it after the calls' time
	// plus a minute, and count what its statistics file holds by then.
	limit := time.Duration(calls/rate+60) * time.Second
	cmd := exec.Command(sipp, argv...)
	cmd.Dir = dir
	cmd.WaitDelay = 5 * time.Second
	var killed atomic.Bool
	watchdog := time.AfterFunc(limit, func() {
		killed.Store(true)
		t.Logf("sipp %s: still running after %v; killed", name, limit)
		_ = cmd.Process.Kill()
	})
	out, err := cmd.CombinedOutput()
	watchdog.Stop()
	load := loadAvg()
	st := sippStat{load: load}
	data, rerr := os.ReadFile(stf)
	if rerr != nil {
		t.Fatalf("sipp %s: %v (no statistics: %v)\n%s", name, err, rerr, tail(string(out), 2000))
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) < 2 {
		t.Fatalf("sipp %s: statistics file has no data line\n%s", name, data)
	}
	head := strings.Split(lines[0], ";")
	last := strings.Split(lines[len(lines)-1], ";")
	col := func(h string) string {
		for i, v := range head {
			if v == h && i < len(last) {
				return last[i]
			}
		}
		t.Fatalf("sipp %s: no column %s in %s", name, h, lines[0])
		return ""
	}
	st.ok, _ = strconv.Atoi(col("SuccessfulCall(C)"))
	st.failed, _ = strconv.Atoi(col("FailedCall(C)"))
	if killed.Load() {
		// Calls that never completed (a lost message sipp did not
		// recover from) count as failed.
		if lost := calls - st.ok - st.failed; lost > 0 {
			t.Logf("sipp %s: %d calls never completed; counted as failed", name, lost)
			st.failed += lost
		}
		st.hung = true
	}
	if st.failed > 0 {
		// Which kind of failure (sipp's Failed* columns that are not 0).
		var kinds []string
		for i, h := range head {
			if strings.HasPrefix(h, "Failed") && strings.HasSuffix(h, "(C)") && h != "FailedCall(C)" && i < len(last) && last[i] != "0" {
				kinds = append(kinds, strings.TrimSuffix(strings.TrimPrefix(h, "Failed"), "(C)")+" "+last[i])
			}
		}
		t.Logf("sipp %s: failed calls by kind: %s", name, strings.Join(kinds, ", "))
		if errs, err := os.ReadFile(errFile); err == nil {
			t.Logf("sipp %s: first failures:\n%s", name, tail(firstLines(string(errs), 6), 1500))
		}
	}
	// StartTime and CurrentTime end in the epoch with microseconds (the
	// ElapsedTime column has whole seconds only).
	if el := sippEpoch(col("CurrentTime")) - sippEpoch(col("StartTime")); el > 0 {
		st.cps = float64(st.ok) / el
	}
	return st
}

// sippEpoch reads the epoch seconds at the end of a sipp time column
// ("2026-12-07\t07:01:21.427436\t1796626881.427436").
func sippEpoch(s string) float64 {
	f := strings.Fields(s)
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[len(f)-1], 64)
	return v
}

// cpuTicks is the user+system CPU time of pids, in clock ticks (1/100 s
// on Linux), from /proc/PID/stat.
func cpuTicks(pids ...int) int {
	sum := 0
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 12 {
			u, _ := strconv.Atoi(f[11])
			k, _ := strconv.Atoi(f[12])
			sum += u + k
		}
	}
	return sum
}

// treePids is pid and its children (kamailio forks its workers).
func treePids(pid int) []int {
	out := []int{pid}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		c, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c))
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, c)
		}
	}
	return out
}

func perCall(ticks, calls int) float64 {
	if calls == 0 {
		return 0
	}
	return float64(ticks) * 10 / float64(calls)
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

func envInts(t *testing.T, name string, def []int) []int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	var out []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			t.Fatalf("%s=%q: want positive integers separated by commas", name, v)
		}
		out = append(out, n)
	}
	return out
}
