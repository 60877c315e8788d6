package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/baton-voice/baton/sipbridge"
)

// Issue 8 §7, registrations: N desk phones (sipp, one -inf line each)
// register with digest (REGISTER, 401, REGISTER with credentials, 200)
// with the real `baton gateway` (UDP), whose N accounts are SIP-only users
// (`baton user import`, no argon2 hash each) delegated to one gateway
// credential; each registration logs its device in to the real `baton
// access` through the gateway's one shared session. Measured: the storm
// rate sipp achieves (0 failed), the time until all N are online in
// presence (the access server's baton_access_online_endpoints), and the
// memory per registered phone at the gateway and at the access server.
//
// TestBenchRegisterStorm runs 10,000 phones, only with
// BATON_BENCH_REGISTER=1 (make bench-register). Knobs:
// BATON_BENCH_REG_PHONES (default 10000), BATON_BENCH_REG_RATE (sipp -r,
// default 2000/s: more than the gateway takes, so -l paces it),
// BATON_BENCH_REG_LIMIT (sipp -l, registrations in flight, default 100).
// The test fails when a registration fails or a phone does not come
// online; the speed and memory are logged, never asserted.
func TestBenchRegisterStorm(t *testing.T) {
	if os.Getenv("BATON_BENCH_REGISTER") != "1" {
		t.Skip("benchmark: set BATON_BENCH_REGISTER=1 (make bench-register)")
	}
	o := stormOpts{
		phones: envInt(t, "BATON_BENCH_REG_PHONES", 10000),
		rate:   envInt(t, "BATON_BENCH_REG_RATE", 2000),
		limit:  envInt(t, "BATON_BENCH_REG_LIMIT", 100),
		memory: true,
	}
	res := registerStorm(t, o)
	t.Logf("RESULT %d phones: storm %.0f registrations/s (%d ok, %d failed), all online in presence %.2f s after the first REGISTER; "+
		"gateway %s; access %s; load %s",
		o.phones, res.rate, res.ok, res.failed, res.allOnline.Seconds(), res.gw.perPhone(o.phones), res.access.perPhone(o.phones), res.load)
}

// A small storm, part of `make test`: 200 phones register in a burst and
// every one of them is online at the gateway and in presence; the gateway
// counts 200 registrations and no failed authentication.
func TestE2ERegisterStormSmall(t *testing.T) {
	t.Parallel()
	res := registerStorm(t, stormOpts{phones: 200, rate: 400, limit: 20})
	t.Logf("200 phones: %.0f registrations/s, all online after %v", res.rate, res.allOnline)
}

type stormOpts struct {
	phones, rate, limit int
	// memory waits (up to 150 s) for a garbage collection of both
	// processes after the storm, so their live heaps can be compared.
	memory bool
}

type stormResult struct {
	ok, failed int
	rate       float64 // registrations/s, sipp's count over sipp's time
	allOnline  time.Duration
	gw, access memDelta
	load       string
}

// memSample is what one process uses at a moment.
type memSample struct {
	rss        int64 // VmRSS, bytes
	heapInuse  int64 // go_memstats_heap_inuse_bytes
	live       int64 // live heap after the last GC (gctrace), bytes; 0 = none seen
	goroutines int64
	fds        int
}

type memDelta struct{ before, after memSample }

func (d memDelta) perPhone(n int) string {
	per := func(a, b int64) float64 { return float64(b-a) / float64(n) }
	s := fmt.Sprintf("RSS +%.0f B/phone (%d -> %d MiB), heap in use +%.0f B/phone",
		per(d.before.rss, d.after.rss), d.before.rss>>20, d.after.rss>>20, per(d.before.heapInuse, d.after.heapInuse))
	if d.after.live > 0 {
		// Before the storm a process may not have collected at all: its
		// heap in use then stands for its live heap (an overestimate, so
		// the per-phone figure errs low by at most baseline/N).
		base := d.before.live
		if base == 0 {
			base = d.before.heapInuse
		}
		s += fmt.Sprintf(", live heap after GC +%.0f B/phone (%d -> %d MiB)", per(base, d.after.live), base>>20, d.after.live>>20)
	}
	s += fmt.Sprintf(", goroutines %d -> %d, fds %d -> %d", d.before.goroutines, d.after.goroutines, d.before.fds, d.after.fds)
	return s
}

func registerStorm(t *testing.T, o stormOpts) stormResult {
	t.Helper()
	sipp := needTool(t, "sipp")
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	env := []string{"GODEBUG=gctrace=1"}

	// Provisioning: one user with a password (the database needs one for
	// gateway add), the gateway credential for nobody, then the phones'
	// users as SIP-only users delegated to it, in one import.
	addUsers(t, dir, data, "admin")
	secret := filepath.Join(dir, "gw1.secret")
	mustBaton(t, dir, "gateway", "add", "gw1", "--secret-file", secret, "--data-dir", data)
	var users, phones, accounts strings.Builder
	users.WriteString("user,gateway\n")
	phones.WriteString("SEQUENTIAL\n")
	for i := range o.phones {
		u := fmt.Sprintf("u%05d", i)
		pw := u + "-sip"
		fmt.Fprintf(&users, "%s,gw1\n", u)
		fmt.Fprintf(&phones, "%s;[authentication username=%s password=%s];\n", u, u, pw)
		fmt.Fprintf(&accounts, "  - {sip_user: %s, ha1: %q, device: %s/desk}\n", u, sipbridge.HA1(u, "baton", pw), u)
	}
	t0 := time.Now()
	r := mustBaton(t, dir, "user", "import", writeFile(t, dir, "users.csv", users.String()), "--data-dir", data)
	t.Logf("user import of %d SIP-only users: %v (%s)", o.phones, time.Since(t0), strings.TrimSpace(r.stdout))
	if want := fmt.Sprintf("imported %d users (%d SIP-only), %d delegated", o.phones, o.phones, o.phones); !strings.Contains(r.stdout, want) {
		t.Fatalf("user import printed %q, want %q", r.stdout, want)
	}

	accessAdmin := freeAddr(t)
	apStarted := time.Now()
	ap := startIn(t, nil, env, "access", dir, "access", "--data-dir", data, "--listen", "127.0.0.1:0", "--admin", accessAdmin)
	am := ap.waitStdout(t, accessReady)
	cfg := writeFile(t, dir, "gateway.yaml", fmt.Sprintf(`access: %s
ca: %s
sip: {udp: 127.0.0.1:0, tcp: "", realm: baton}
credential: {gateway: gw1, secret_file: %s}
accounts:
%s`, am[1], am[2], secret, accounts.String()))
	t0 = time.Now()
	gwStarted := t0
	gw := startIn(t, nil, env, "gateway", dir, "gateway", "--config", cfg)
	gm := gw.waitStdout(t, gatewayReady)
	t.Logf("gateway with %d accounts ready in %v", o.phones, time.Since(t0))
	if gm[3] != strconv.Itoa(o.phones) {
		t.Fatalf("gateway loaded %s accounts, want %d", gm[3], o.phones)
	}
	gwAdmin := gm[4]

	var res stormResult
	res.gw.before = sample(t, gw, gwAdmin)
	res.access.before = sample(t, ap, accessAdmin)
	t.Logf("before: gateway %+v, access %+v", res.gw.before, res.access.before)

	// The storm, with the access server's online count polled meanwhile.
	sdir := t.TempDir()
	inf := writeFile(t, sdir, "phones.csv", phones.String())
	sf, err := filepath.Abs(filepath.Join("..", "..", "gateway", "testdata", "sipp", "register_storm.xml"))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	online := make(chan time.Duration, 1)
	stopPoll := make(chan struct{})
	go func() {
		for {
			if v, err := metric(accessAdmin, "baton_access_online_endpoints"); err == nil && int(v) >= o.phones {
				online <- time.Since(start)
				return
			}
			select {
			case <-stopPoll:
				online <- 0
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	g0, a0 := cpuTicks(gw.cmd.Process.Pid), cpuTicks(ap.cmd.Process.Pid)
	st := sippStep(t, sipp, sdir, gm[1], "storm", o.rate, o.phones,
		"-sf", sf, "-inf", inf, "-l", strconv.Itoa(o.limit), "-p", freeUDPPort(t), "-timeout", "900s")
	res.ok, res.failed, res.rate, res.load = st.ok, st.failed, st.cps, st.load
	t.Logf("storm: %d ok, %d failed, %.1f registrations/s (sipp -r %d -l %d), load %s", st.ok, st.failed, st.cps, o.rate, o.limit, st.load)
	if st.ok == 0 {
		errs, _ := os.ReadFile(filepath.Join(sdir, "storm.errors"))
		t.Fatalf("no registration succeeded; sipp's errors:\n%s\ngateway log:\n%s", tail(string(errs), 3000), tail(gw.stderr.String(), 3000))
	}
	var all time.Duration
	select {
	case all = <-online:
	case <-time.After(120 * time.Second):
		close(stopPoll)
		<-online
	}
	g, a := cpuTicks(gw.cmd.Process.Pid)-g0, cpuTicks(ap.cmd.Process.Pid)-a0
	t.Logf("CPU per registration: gateway %.3f ms, access %.3f ms (401 + REGISTER + device login)", perCall(g, o.phones), perCall(a, o.phones))
	if st.failed != 0 || st.ok != o.phones {
		t.Errorf("storm: %d of %d registrations ok, %d failed; want all ok", st.ok, o.phones, st.failed)
	}
	if all == 0 {
		v, _ := metric(accessAdmin, "baton_access_online_endpoints")
		t.Fatalf("only %v of %d phones online in presence 120 s after the storm", v, o.phones)
	}
	res.allOnline = all
	t.Logf("all %d phones online in presence %.2f s after the first REGISTER", o.phones, all.Seconds())

	// The gateway agrees: every account registered and online, every
	// REGISTER counted, no failed authentication.
	for name, want := range map[string]float64{
		"baton_gateway_registered_devices":  float64(o.phones),
		"baton_gateway_online_devices":      float64(o.phones),
		"baton_gateway_registers_total":     float64(o.phones),
		"baton_gateway_auth_failures_total": 0,
	} {
		if v, err := metric(gwAdmin, name); err != nil || v != want {
			t.Errorf("gateway %s = %v (%v), want %v", name, v, err, want)
		}
	}
	if log := ap.stderr.String(); strings.Count(log, `msg="gateway session"`) != 1 {
		t.Errorf("the access server saw %d gateway sessions, want 1", strings.Count(log, `msg="gateway session"`))
	}

	if o.memory {
		// A GC after the storm in each process, so that its live heap is
		// the registered phones' and not the storm's garbage. Status
		// requests make some garbage; failing that the runtime forces a GC
		// within 2 minutes (not always: an idle process may go longer).
		mark := time.Now()
		deadline := mark.Add(150 * time.Second)
		for !(gcSince(gw, gwStarted, mark) && gcSince(ap, apStarted, mark)) && time.Now().Before(deadline) {
			for _, a := range []string{gwAdmin, accessAdmin} {
				if resp, err := http.Get("http://" + a + "/v1/status"); err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					_ = resp.Body.Close()
				}
			}
			time.Sleep(time.Second)
		}
		t.Logf("GC after the storm: gateway %v, access %v (%v after the storm)", gcSince(gw, gwStarted, mark), gcSince(ap, apStarted, mark), time.Since(mark).Round(time.Second))
	}
	res.gw.after = sample(t, gw, gwAdmin)
	res.access.after = sample(t, ap, accessAdmin)
	t.Logf("after: gateway %+v, access %+v", res.gw.after, res.access.after)
	t.Logf("gateway: %s", res.gw.perPhone(o.phones))
	t.Logf("access:  %s", res.access.perPhone(o.phones))
	return res
}

// metric reads one unlabelled sample from a process's /metrics.
func metric(admin, name string) (float64, error) {
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(rest), 64)
		}
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("%s: no sample %s", admin, name)
}

// gcLine is one gctrace line: "gc 12 @3.456s 1%: ..., 10->11->5 MB, ...".
var gcLine = regexp.MustCompile(`(?m)^gc \d+ @([0-9.]+)s .*?(\d+)->(\d+)->(\d+) MB`)

// lastGC returns the process-relative time and the live heap (MiB, the
// third number) of the last GC the process traced.
func lastGC(p *proc) (at float64, liveMiB int64, ok bool) {
	m := gcLine.FindAllStringSubmatch(p.stderr.String(), -1)
	if len(m) == 0 {
		return 0, 0, false
	}
	l := m[len(m)-1]
	at, _ = strconv.ParseFloat(l[1], 64)
	liveMiB, _ = strconv.ParseInt(l[4], 10, 64)
	return at, liveMiB, true
}

// gcSince reports whether p traced a GC that started after mark. started
// is a moment before p was started: gctrace's @ counts from the process's
// start, so this errs on the side of "not yet".
func gcSince(p *proc, started, mark time.Time) bool {
	at, _, ok := lastGC(p)
	return ok && started.Add(time.Duration(at*float64(time.Second))).After(mark)
}

// sample reads p's memory: RSS and open files from /proc, heap in use and
// goroutines from its /metrics, the live heap of its last GC from gctrace.
func sample(t *testing.T, p *proc, admin string) memSample {
	t.Helper()
	var s memSample
	pid := p.cmd.Process.Pid
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
				s.rss = kb << 10
			}
		}
	}
	if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
		s.fds = len(ents)
	}
	v, err := metric(admin, "go_memstats_heap_inuse_bytes")
	if err != nil {
		t.Fatalf("heap of %s: %v", p.name, err)
	}
	s.heapInuse = int64(v)
	g, _ := metric(admin, "go_goroutines")
	s.goroutines = int64(g)
	if _, live, ok := lastGC(p); ok {
		s.live = live << 20
	}
	return s
}
