package endpoint

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/baton-voice/baton/p2p/wire"
)

// dialFrom opens a plain TCP connection to addr from source IP local.
func dialFrom(t *testing.T, addr, local string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: wait}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, local, err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	return nc
}

// closedBy reports whether the peer closed nc within d (EOF or reset)
// rather than leaving it open.
func closedBy(nc net.Conn, d time.Duration) bool {
	_ = nc.SetReadDeadline(time.Now().Add(d))
	_, err := nc.Read(make([]byte, 1))
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

// TestSignalingPreAuthCaps: signaling connections that have not finished
// the mutual TLS handshake and their first message are capped per source
// and in total, the excess closed at accept; an authenticated call's
// connection does not count, and calls work again once the flood goes
// (issue 11 §1).
func TestSignalingPreAuthCaps(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	alice := n.start("alice", "laptop", autoAnswer, func(c *Config) {
		c.MaxPreAuthPerSource, c.MaxPreAuth = 4, 6
		c.PreAuthTimeout = time.Minute // what is held stays held
	})
	reg := prometheus.NewRegistry()
	if err := alice.Register(reg); err != nil {
		t.Fatal(err)
	}
	refused := func() float64 {
		v, _ := findMetric(t, reg, "baton_endpoint_signaling_rejected_total", map[string]string{"reason": "pre-auth-cap"})
		return v
	}
	// An authenticated call from bob (his endpoint dials from 127.0.0.1).
	bob := n.start("bob", "mobile")
	out, in := establish(t, bob, alice)
	addr := alice.SignalAddr().String()

	var held []net.Conn
	for range 4 { // all four admitted beside bob's call: it does not count
		held = append(held, dialFrom(t, addr, "127.0.0.1"))
	}
	eventually(t, "4 pending", func() bool { return alice.preAuth.Pending() == 4 })
	if !closedBy(dialFrom(t, addr, "127.0.0.1"), wait) {
		t.Fatal("5th unauthenticated connection from one source was not closed")
	}
	for range 2 {
		held = append(held, dialFrom(t, addr, "127.0.0.2"))
	}
	eventually(t, "6 pending", func() bool { return alice.preAuth.Pending() == 6 })
	if !closedBy(dialFrom(t, addr, "127.0.0.3"), wait) {
		t.Fatal("connection beyond the total cap was not closed")
	}
	for i, nc := range held {
		if closedBy(nc, 20*time.Millisecond) {
			t.Fatalf("held connection %d was closed", i)
		}
	}
	eventually(t, "2 refusals counted", func() bool { return refused() == 2 })
	if calls := alice.Calls(); len(calls) != 1 || calls[0].State != "active" {
		t.Fatalf("alice's call during the flood: %+v", calls)
	}

	// The flood goes; bob hangs up and calls again.
	for _, nc := range held {
		_ = nc.Close()
	}
	eventually(t, "no pending", func() bool { return alice.preAuth.Pending() == 0 })
	if err := bob.Hangup(context.Background(), out.ID); err != nil {
		t.Fatal(err)
	}
	alice.waitState(t, in.ID, "ended")
	establish(t, bob, alice)
}

// TestSignalingPreAuthDeadline: a connection that has not finished the
// handshake and sent its first message by PreAuthTimeout from accept is
// closed, whether it said nothing or completed TLS and then went quiet.
func TestSignalingPreAuthDeadline(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	const timeout = 300 * time.Millisecond
	alice := n.start("alice", "laptop", func(c *Config) { c.PreAuthTimeout = timeout })
	silent := dialFrom(t, alice.SignalAddr().String(), "127.0.0.1")
	mallory := n.rawLogin(t, "mallory", "x")
	quiet := n.rawDial(t, mallory, alice) // TLS done, no first message
	start := time.Now()
	if !closedBy(silent, wait) {
		t.Fatal("a connection that never started TLS was not closed")
	}
	// The endpoint may say why (an error naming the timeout) before it
	// closes; it must close.
	_ = quiet.SetReadDeadline(time.Now().Add(wait))
	said := ""
	for {
		m, err := quiet.Recv()
		if err == nil {
			if e, ok := m.(*wire.Error); ok {
				said = string(e.Code) + ": " + e.Message
			}
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("a connection without a first message was not closed")
		}
		break
	}
	if !strings.Contains(said, "timeout: no first message within 300ms") {
		t.Errorf("endpoint said %q before closing, want a timeout error naming the limit", said)
	}
	t.Logf("both closed %v after connect (pre-auth timeout %v); the endpoint said %q", time.Since(start), timeout, said)
	eventually(t, "no pending", func() bool { return alice.preAuth.Pending() == 0 })
}
