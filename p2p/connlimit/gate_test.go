package connlimit

import (
	"net"
	"net/netip"
	"sync"
	"testing"
)

var (
	src1 = netip.MustParseAddr("192.0.2.1")
	src2 = netip.MustParseAddr("192.0.2.2")
)

func TestGate(t *testing.T) {
	t.Parallel()
	g := NewGate(2, 3)
	steps := []struct {
		src    netip.Addr
		exempt bool
		ok     bool
		reason Reason
	}{
		{src1, false, true, ReasonUnknown},
		{src1, false, true, ReasonUnknown},
		{src1, false, false, ReasonPerSource},
		{src1, true, true, ReasonUnknown}, // exempt: no per-source cap
		{src2, true, false, ReasonTotal},  // the total holds for everyone
	}
	for i, s := range steps {
		reason, ok := g.Enter(s.src, s.exempt)
		if ok != s.ok || reason != s.reason {
			t.Fatalf("step %d: Enter = %v %s, want %v %s", i, ok, reason, s.ok, s.reason)
		}
	}
	if g.Pending() != 3 {
		t.Fatalf("Pending = %d, want 3", g.Pending())
	}
	g.Leave(src1)
	if _, ok := g.Enter(src2, false); !ok {
		t.Fatal("refused after a connection left")
	}
	g.Leave(src1)
	g.Leave(src1)
	g.Leave(src2)
	g.Leave(src2) // one more than entered: ignored
	if n := g.Pending(); n != 0 || len(g.bySource) != 0 {
		t.Fatalf("after all left: pending %d, bySource %v", n, g.bySource)
	}
}

func TestGateConcurrent(t *testing.T) {
	t.Parallel()
	g := NewGate(10, 1000)
	var wg sync.WaitGroup
	var mu sync.Mutex
	admitted := 0
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, ok := g.Enter(src1, false); ok {
				mu.Lock()
				admitted++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if admitted != 10 || g.Pending() != 10 {
		t.Fatalf("admitted %d, pending %d; want 10", admitted, g.Pending())
	}
}

func TestSource(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ addr, want string }{
		{"192.0.2.7:4000", "192.0.2.7"},
		{"[::ffff:192.0.2.7]:4000", "192.0.2.7"},
		{"[2001:db8:1:2:aaaa:bbbb:cccc:dddd]:4000", "2001:db8:1:2::"},
		{"[2001:db8:1:2::1]:1", "2001:db8:1:2::"},
		{"[fe80::1%eth0]:1", "fe80::"},
	} {
		ap := netip.MustParseAddrPort(tc.addr)
		if got := Source(net.TCPAddrFromAddrPort(ap)); got.String() != tc.want {
			t.Errorf("Source(%s) = %s, want %s", tc.addr, got, tc.want)
		}
	}
	if got := Source(&net.UnixAddr{Name: "@x", Net: "unix"}); got.IsValid() {
		t.Errorf("Source(unix) = %v, want the zero Addr", got)
	}
}

func TestReasonString(t *testing.T) {
	t.Parallel()
	for r, want := range map[Reason]string{ReasonUnknown: "unknown", ReasonPerSource: "per_source", ReasonTotal: "total", 9: "unknown"} {
		if r.String() != want {
			t.Errorf("%d.String() = %q, want %q", int(r), r.String(), want)
		}
	}
}
