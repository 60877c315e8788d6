package access_test

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-voice/baton/p2p/access"
	"github.com/baton-voice/baton/p2p/endpoint"
	"github.com/baton-voice/baton/p2p/pki"
)

// BenchmarkHostMemoryPerEndpoint measures an endpoint.Host with n
// endpoints online (issue 11 §3: n = 10,000 with BATON_BENCH_DEVICES), the
// way a gateway runs its SIP devices: one signaling listener, one shared
// access session (a gateway credential delegated every user), one
// endpoint per device. The access server is TestMemoryServerHelper in a
// child process (§17's, users paired as buddies), so both sides are
// measured in one run:
//
//   - host: this process's live heap and goroutine stacks after GC, and its
//     RSS, minus the same with the host and session up but no endpoint,
//     per endpoint; goroutines per endpoint;
//   - access server: the child's heap and stacks per device, as §17;
//   - logins/s: n endpoint Starts (each a device-login on the one session),
//     16 in flight.
func BenchmarkHostMemoryPerEndpoint(b *testing.B) {
	n := 1000
	if v, err := strconv.Atoi(os.Getenv("BATON_BENCH_DEVICES")); err == nil && v > 0 {
		n = v
	}
	for b.Loop() {
		srv := startAccessChild(b, n)
		accessBase := srv.mem()
		ctx := context.Background()
		gs, err := access.NewGatewaySession(access.GatewayConfig{Addr: srv.addr, Roots: srv.roots, Gateway: "gw1", Secret: access.MemGatewaySecret})
		if err != nil {
			b.Fatal(err)
		}
		host, err := endpoint.NewHost(endpoint.HostConfig{AddrWatch: -1})
		if err != nil {
			b.Fatal(err)
		}
		if err := host.Start(ctx); err != nil {
			b.Fatal(err)
		}
		// The base: host and session up, no endpoint yet (each endpoint's
		// key pair, made by Add, is part of what it costs).
		hostBase := selfMem(b)
		// BATON_BENCH_STANDALONE=1 measures the way before the Host: each
		// endpoint with a listener of its own, for comparison.
		standalone := os.Getenv("BATON_BENCH_STANDALONE") != ""
		eps := make([]*endpoint.Endpoint, n)
		for i := range n {
			cfg := endpoint.Config{
				Roots: srv.roots, User: fmt.Sprintf("u%04d", i), Device: "dev",
				AccessSession: gs, SRTP: true, AddrWatch: -1,
			}
			var ep *endpoint.Endpoint
			var err error
			if standalone {
				cfg.SignalListen = "127.0.0.1:0"
				ep, err = endpoint.New(cfg)
			} else {
				ep, err = host.Add(cfg)
			}
			if err != nil {
				b.Fatal(err)
			}
			eps[i] = ep
		}

		start := time.Now()
		sem := make(chan struct{}, 16)
		var wg sync.WaitGroup
		var failed atomic.Value
		for _, ep := range eps {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				if err := ep.Start(ctx); err != nil {
					failed.Store(err)
				}
			})
		}
		wg.Wait()
		took := time.Since(start)
		if err := failed.Load(); err != nil {
			b.Fatal(err)
		}
		time.Sleep(2 * time.Second) // presence pushes drain
		hostLoaded := selfMem(b)
		if path := os.Getenv("BATON_HOST_PROFILE"); path != "" {
			// A heap profile of the loaded host (run with -memprofilerate 1).
			if f, err := os.Create(path); err == nil {
				_ = pprof.Lookup("heap").WriteTo(f, 0)
				_ = f.Close()
			}
		}
		accessLoaded := srv.mem()
		if accessLoaded.Online != n || (!standalone && len(host.Endpoints()) != n) {
			b.Fatalf("%d online at the access server, %d on the host; want %d", accessLoaded.Online, len(host.Endpoints()), n)
		}
		for _, ep := range eps[:3] {
			if standalone {
				break
			}
			if ep.SignalAddr() != host.SignalAddr() {
				b.Fatalf("%s signals at %s, not the host's %s", ep.Identity(), ep.SignalAddr(), host.SignalAddr())
			}
		}
		per := func(a, z uint64) float64 { return float64(int64(z)-int64(a)) / float64(n) }
		b.ReportMetric(float64(n)/took.Seconds(), "logins/s")
		b.ReportMetric(per(hostBase.HeapAlloc, hostLoaded.HeapAlloc), "host-heap-B/ep")
		b.ReportMetric(per(hostBase.StackInuse, hostLoaded.StackInuse), "host-stack-B/ep")
		b.ReportMetric(per(hostBase.RSS, hostLoaded.RSS), "host-rss-B/ep")
		b.ReportMetric(float64(hostLoaded.Goroutines-hostBase.Goroutines)/float64(n), "host-goroutines/ep")
		ah, as := per(accessBase.HeapAlloc, accessLoaded.HeapAlloc), per(accessBase.StackInuse, accessLoaded.StackInuse)
		b.ReportMetric(ah+as, "access-B/device")
		b.Logf("n=%d: host heap %d -> %d, stacks %d -> %d, RSS %d -> %d KiB, goroutines %d -> %d; access heap %d -> %d; %d logins in %v",
			n, hostBase.HeapAlloc, hostLoaded.HeapAlloc, hostBase.StackInuse, hostLoaded.StackInuse, hostBase.RSS>>10, hostLoaded.RSS>>10,
			hostBase.Goroutines, hostLoaded.Goroutines, accessBase.HeapAlloc, accessLoaded.HeapAlloc, n, took)
		b.StopTimer()
		if standalone {
			for _, ep := range eps {
				_ = ep.Close()
			}
		}
		_ = host.Close()
		_ = gs.Close()
		srv.quit()
		b.StartTimer()
	}
}

// hostMem is a process's memory after GC.
type hostMem struct {
	Online     int    `json:"online"`
	HeapAlloc  uint64 `json:"heap_alloc"`
	StackInuse uint64 `json:"stack_inuse"`
	Goroutines int    `json:"goroutines"`
	RSS        uint64 `json:"-"`
}

// selfMem measures this process as TestMemoryServerHelper measures itself,
// plus its RSS from /proc.
func selfMem(tb testing.TB) hostMem {
	tb.Helper()
	for range 6 {
		runtime.GC()
	}
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m := hostMem{HeapAlloc: ms.HeapAlloc, StackInuse: ms.StackInuse, Goroutines: runtime.NumGoroutine()}
	st, err := os.ReadFile("/proc/self/status")
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(st), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			m.RSS = kb << 10
		}
	}
	return m
}

// accessServer is TestMemoryServerHelper (bench_test.go) in a child
// process: n users paired as buddies, gateway gw1 delegated all of them.
type accessServer struct {
	tb    testing.TB
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Scanner
	addr  string
	roots *x509.CertPool
}

func startAccessChild(tb testing.TB, n int) *accessServer {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestMemoryServerHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), fmt.Sprintf("BATON_ACCESS_MEMORY_HELPER=%d", n), "BATON_ACCESS_MEMORY_GATEWAY=1")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	s := &accessServer{tb: tb, cmd: cmd, stdin: stdin, out: bufio.NewScanner(stdout)}
	var caPath string
	for s.out.Scan() {
		if _, err := fmt.Sscanf(s.out.Text(), "ready %s %s", &s.addr, &caPath); err == nil {
			break
		}
	}
	if s.addr == "" {
		tb.Fatal("access server child did not start")
	}
	roots, err := pki.LoadCAFile(caPath)
	if err != nil {
		tb.Fatal(err)
	}
	s.roots = roots
	return s
}

// mem asks the child for its memory after GC.
func (s *accessServer) mem() hostMem {
	_, _ = io.WriteString(s.stdin, "mem\n")
	for s.out.Scan() {
		if line := s.out.Text(); strings.HasPrefix(line, "{") {
			var m hostMem
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				s.tb.Fatal(err)
			}
			return m
		}
	}
	s.tb.Fatal("access server child exited")
	return hostMem{}
}

func (s *accessServer) quit() {
	_, _ = io.WriteString(s.stdin, "quit\n")
	_ = s.cmd.Wait()
}
