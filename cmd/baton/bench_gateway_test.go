package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
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
// Gateway side: sipp as a registered desk phone (carol/desk, digest on
// REGISTER and INVITE, bench_call.xml) -> gateway -> one of several
// auto-answering P2P softphones alice/p1..pN, round robin through an -inf
// file; a softphone takes one call at a time (endpoint MaxCalls 1), so N
// bounds the calls in progress. Kamailio side: sipp -sn uac -> kamailio
// (testdata/kamailio/bench_proxy.cfg, tm, t_relay) -> sipp -sn uas.
//
// Knobs: BATON_BENCH_RATES (comma list, default 5,10,20,40,80,120,160),
// BATON_BENCH_KAM_RATES (default 250,500,1000,1500,2000,3000),
// BATON_BENCH_CALLS (calls per step, default 200), BATON_BENCH_PHONES
// (default 4).
func TestBenchGatewayCPS(t *testing.T) {
	if os.Getenv("BATON_BENCH_GATEWAY") != "1" {
		t.Skip("benchmark: set BATON_BENCH_GATEWAY=1 (make bench-gateway)")
	}
	sipp := needTool(t, "sipp")
	kam := needTool(t, "kamailio")
	calls := envInt(t, "BATON_BENCH_CALLS", 200)
	phones := envInt(t, "BATON_BENCH_PHONES", 4)
	gwRates := envInts(t, "BATON_BENCH_RATES", []int{5, 10, 20, 40, 80, 120, 160})
	kamRates := envInts(t, "BATON_BENCH_KAM_RATES", []int{250, 500, 1000, 1500, 2000, 3000})

	// Kamailio first: it is the reference.
	kdir := t.TempDir()
	uasPort := freeUDPPort(t)
	uas := exec.Command(sipp, "-sn", "uas", "-i", "127.0.0.1", "-p", uasPort, "-nostdin")
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
	t.Cleanup(func() { _ = kcmd.Process.Signal(syscall.SIGTERM); _ = kcmd.Wait() })
	time.Sleep(time.Second)
	// Warm-up, not counted: the first calls after start can be lost while
	// kamailio's workers and the UAS come up.
	w := sippStep(t, sipp, kdir, "127.0.0.1:"+kamPort, "kamwarm", 10, 20, "-sn", "uac")
	t.Logf("kamailio  warm-up: %d ok, %d failed (not counted)", w.ok, w.failed)

	kamBest := 0
	for i, r := range kamRates {
		c0 := cpuTicks(treePids(kcmd.Process.Pid)...)
		st := sippStep(t, sipp, kdir, "127.0.0.1:"+kamPort, fmt.Sprintf("kam%d", r), r, calls*5,
			"-sn", "uac")
		cpu := cpuTicks(treePids(kcmd.Process.Pid)...) - c0
		t.Logf("kamailio  rate %5d cps, %5d calls: %5d ok, %3d failed, achieved %7.1f cps, kamailio CPU %.3f ms/call, load %s",
			r, calls*5, st.ok, st.failed, st.cps, perCall(cpu, st.ok), st.load)
		if st.failed == 0 && st.ok > 0 {
			kamBest = r
		} else if i == 0 && st.ok == 0 {
			t.Fatalf("kamailio: no call completed at %d cps; log %s", r, filepath.Join(kdir, "kamailio.log"))
		}
	}

	// The gateway.
	n := startBridgeNet(t)
	pids := []int{n.gw.cmd.Process.Pid}
	var phonePids []int
	var inf strings.Builder
	inf.WriteString("SEQUENTIAL\n")
	for i := 1; i <= phones; i++ {
		dev := fmt.Sprintf("p%d", i)
		p := startPhone(t, n.dir, n.srv, "alice", dev, n.pw["alice"], phoneOpts{tone: 440, autoAnswer: true})
		phonePids = append(phonePids, p.cmd.Process.Pid)
		fmt.Fprintf(&inf, "alice+%s;\n", dev)
	}
	sdir := t.TempDir()
	infFile := writeFile(t, sdir, "callees.csv", inf.String())
	sipPort := freeUDPPort(t)
	runSipp(t, sipp, sdir, n.sipUDP, "register.xml", "-key", "deskuser", "carol", "-au", "carol", "-ap", "carol-sip-secret", "-i", "127.0.0.1", "-p", sipPort)
	sf, err := filepath.Abs(filepath.Join("..", "..", "gateway", "testdata", "sipp", "bench_call.xml"))
	if err != nil {
		t.Fatal(err)
	}
	gwBest := 0
	for i, r := range gwRates {
		g0, p0, a0 := cpuTicks(pids...), cpuTicks(phonePids...), cpuTicks(n.srv.proc.cmd.Process.Pid)
		st := sippStep(t, sipp, sdir, n.sipUDP, fmt.Sprintf("gw%d", r), r, calls,
			"-sf", sf, "-inf", infFile, "-key", "deskuser", "carol", "-au", "carol", "-ap", "carol-sip-secret",
			"-p", sipPort, "-mi", "127.0.0.1", "-mp", freeUDPPort(t))
		g, p, a := cpuTicks(pids...)-g0, cpuTicks(phonePids...)-p0, cpuTicks(n.srv.proc.cmd.Process.Pid)-a0
		t.Logf("gateway   rate %5d cps, %5d calls: %5d ok, %3d failed, achieved %7.1f cps, CPU ms/call gateway %.2f phones %.2f access %.2f, load %s",
			r, calls, st.ok, st.failed, st.cps, perCall(g, st.ok), perCall(p, st.ok), perCall(a, st.ok), st.load)
		if st.failed == 0 && st.ok > 0 {
			gwBest = r
		} else if i == 0 && st.ok == 0 {
			t.Fatalf("gateway: no call completed at %d cps; sipp errors in %s", r, sdir)
		}
		gatewayIdle(t, n.dir, n.gwAdmin)
	}
	ratio := 0.0
	if kamBest > 0 {
		ratio = float64(gwBest) / float64(kamBest)
	}
	t.Logf("RESULT max rate with 0 failed calls: gateway %d cps (%d softphones), kamailio %d cps, ratio %.4f, target 1500 cps", gwBest, phones, kamBest, ratio)
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
	cmd := exec.Command(sipp, argv...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
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
	if st.failed > 0 {
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
