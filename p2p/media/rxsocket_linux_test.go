//go:build linux

package media

import (
	"net"
	"net/netip"
	"testing"
	"time"
)

// A datagram drained on a later tick keeps the time the kernel received
// it (SO_TIMESTAMPNS), not the time it was read, and a drain empties the
// socket, more than one batch included, without blocking.
func TestRxSocketDrainArrivalTimes(t *testing.T) {
	t.Parallel()
	conn, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(addr("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	peer, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(addr("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	b := newRxBatch(maxDatagram)
	x, err := newRxSocket(conn, b)
	if err != nil {
		t.Fatal(err)
	}
	type got struct {
		n         int
		from      netip.AddrPort
		at        time.Time
		truncated bool
	}
	var seen []got
	handle := func(p []byte, from netip.AddrPort, at time.Time, truncated bool) {
		seen = append(seen, got{len(p), from, at, truncated})
	}
	if err := x.drain(b, time.Now(), handle); err != nil || len(seen) != 0 {
		t.Fatalf("empty socket: err %v, %d datagrams", err, len(seen))
	}
	// The kernel turns receive stamping on for the system in a work item
	// after the first socket asks (net_enable_timestamp); a datagram that
	// arrives before is stamped when read. Give it a moment.
	time.Sleep(50 * time.Millisecond)
	to := conn.LocalAddr().(*net.UDPAddr)
	const count = 2*rxBatchLen + 1
	sent := time.Now()
	for i := range count {
		if _, err := peer.WriteToUDP(make([]byte, 10+i), to); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := peer.WriteToUDP(make([]byte, maxDatagram+100), to); err != nil {
		t.Fatal(err)
	}
	written := time.Now()
	const wait = 200 * time.Millisecond
	time.Sleep(wait)
	now := time.Now()
	if err := x.drain(b, now, handle); err != nil {
		t.Fatal(err)
	}
	if len(seen) != count+1 {
		t.Fatalf("drained %d datagrams, want %d", len(seen), count+1)
	}
	from := peer.LocalAddr().(*net.UDPAddr).AddrPort()
	for i, g := range seen[:count] {
		if g.n != 10+i || g.from != from || g.truncated {
			t.Errorf("datagram %d: %d octets from %v truncated %v, want %d from %v", i, g.n, g.from, g.truncated, 10+i, from)
		}
		// Stamped when it arrived (between the first write and the
		// last), not when the drain read it, wait later.
		if g.at.Before(sent.Add(-time.Millisecond)) || g.at.After(written.Add(time.Millisecond)) {
			t.Errorf("datagram %d: arrival %v after the first write, want within [0, %v]", i, g.at.Sub(sent), written.Sub(sent))
		}
	}
	if !seen[count].truncated {
		t.Error("a datagram larger than the buffer is not reported as truncated")
	}
	seen = seen[:0]
	if err := x.drain(b, time.Now(), handle); err != nil || len(seen) != 0 {
		t.Fatalf("drained socket: err %v, %d datagrams more", err, len(seen))
	}
	_ = conn.Close()
	if err := x.drain(b, time.Now(), handle); err == nil {
		t.Error("drain of a closed socket: no error")
	}
}

// Draining a datagram allocates nothing (the per-packet receive path).
func TestRxSocketDrainAllocs(t *testing.T) {
	conn, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(addr("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	b := newRxBatch(maxDatagram)
	x, err := newRxSocket(conn, b)
	if err != nil {
		t.Fatal(err)
	}
	to := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	pkt := make([]byte, 172)
	var n int
	handle := func(p []byte, _ netip.AddrPort, _ time.Time, _ bool) { n += len(p) }
	if a := testing.AllocsPerRun(200, func() {
		if _, err := conn.WriteToUDPAddrPort(pkt, to); err != nil {
			t.Fatal(err)
		}
		if err := x.drain(b, time.Now(), handle); err != nil {
			t.Fatal(err)
		}
	}); a != 0 {
		t.Errorf("drain: %v allocations per datagram", a)
	}
	if n == 0 {
		t.Fatal("nothing drained")
	}
}
