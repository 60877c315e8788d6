package endpoint

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/baton-voice/baton/p2p/audio"
	"github.com/baton-voice/baton/p2p/pki"
)

// newHost starts a Host on 127.0.0.1 for the test.
func (n *network) newHost(opts ...func(*HostConfig)) *Host {
	n.t.Helper()
	cfg := HostConfig{Logger: testLogger(n.t).With("host", n.t.Name()), AddrWatch: -1}
	for _, o := range opts {
		o(&cfg)
	}
	h, err := NewHost(cfg)
	if err != nil {
		n.t.Fatal(err)
	}
	if err := h.Start(context.Background()); err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(func() { _ = h.Close() })
	return h
}

// startOn is start for an endpoint of host h.
func (n *network) startOn(h *Host, user, device string, opts ...func(*Config)) *party {
	n.t.Helper()
	cfg := n.config(user, device)
	sink := &frameSink{}
	cfg.NewSink = func(string, string) (audio.Sink, error) { return sink, nil }
	for _, o := range opts {
		o(&cfg)
	}
	ep, err := h.Add(cfg)
	if err != nil {
		n.t.Fatal(err)
	}
	events, cancel := ep.Subscribe()
	if err := ep.Start(context.Background()); err != nil {
		cancel()
		n.t.Fatalf("start %s/%s on the host: %v", user, device, err)
	}
	n.t.Cleanup(func() { cancel(); _ = ep.Close() })
	return &party{Endpoint: ep, events: events, sink: sink}
}

// signalAddrSeen is the signaling address viewer's presence has for peer.
func signalAddrSeen(p *party, peer string) string {
	for _, b := range p.Buddies() {
		for _, d := range b.Devices {
			if b.User+"/"+d.Device == peer {
				return d.SignalAddr
			}
		}
	}
	return ""
}

// TestHostEndpointsShareOneListener: two endpoints on one Host advertise
// the host's one signaling address, call each other through it, are called
// by a standalone endpoint and call it; audio flows every time.
func TestHostEndpointsShareOneListener(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	h := n.newHost()
	// One roots pool for the host's endpoints, as a gateway has.
	roots := n.srv.CA().Pool()
	sameRoots := func(c *Config) { c.Roots = roots }
	desk := n.startOn(h, "alice", "desk", autoAnswer, withTone(440), sameRoots)
	carol := n.startOn(h, "carol", "desk", autoAnswer, withTone(550), sameRoots)
	bob := n.start("bob", "laptop", autoAnswer, withTone(660))

	addr := h.SignalAddr().String()
	if desk.SignalAddr().String() != addr || carol.SignalAddr().String() != addr {
		t.Fatalf("signal addresses %s and %s, want the host's %s", desk.SignalAddr(), carol.SignalAddr(), addr)
	}
	if got := desk.Status().SignalAddr; got != addr {
		t.Errorf("status signal_addr %s, want %s", got, addr)
	}
	bob.waitOnline(t, "alice/desk")
	bob.waitOnline(t, "carol/desk")
	for _, peer := range []string{"alice/desk", "carol/desk"} {
		if got := signalAddrSeen(bob, peer); got != addr {
			t.Errorf("bob's presence has %s at %s, want the host's %s", peer, got, addr)
		}
	}
	if eps := h.Endpoints(); len(eps) != 2 || eps[0] != desk.Endpoint || eps[1] != carol.Endpoint {
		t.Errorf("host endpoints %v", eps)
	}

	ctx := context.Background()
	call := func(from, to *party) {
		t.Helper()
		before := len(to.sink.samples())
		from.waitOnline(t, to.Identity().String())
		out, err := from.Dial(ctx, to.Identity().String())
		if err != nil {
			t.Fatalf("%s dials %s: %v", from.Identity(), to.Identity(), err)
		}
		from.waitState(t, out.ID, "active")
		var in CallInfo
		eventually(t, to.Identity().String()+" to have the call active", func() bool {
			for _, c := range to.Calls() {
				if c.Peer == from.Identity().String() && c.State == "active" {
					in = c
					return true
				}
			}
			return false
		})
		eventually(t, to.Identity().String()+" to hear "+from.Identity().String(), func() bool {
			return len(to.sink.samples()) > before+1600
		})
		if err := from.Hangup(ctx, out.ID); err != nil {
			t.Fatal(err)
		}
		to.waitState(t, in.ID, "ended")
	}
	call(desk, carol) // host to itself
	call(carol, desk)
	call(bob, desk) // standalone to host
	call(bob, carol)
	call(desk, bob) // host to standalone
	// One cache of verified chains for the whole host, one entry per
	// peer leaf: bob's, though he called both, and the two endpoints'
	// own (their in-process calls verify each other). The standalone
	// endpoint keeps its own.
	if desk.verified != carol.verified || desk.verified != h.verified || bob.verified == h.verified {
		t.Errorf("verify caches: desk %p, carol %p, host %p, bob %p; want the host's shared by its endpoints only",
			desk.verified, carol.verified, h.verified, bob.verified)
	}
	if got := h.verified.Len(); got != 3 {
		t.Errorf("the host's verify cache holds %d chains, want 3 (bob, alice/desk, carol/desk)", got)
	}
	for _, r := range []string{"unknown-name", "no-name", "handshake", "pre-auth-cap"} {
		if v := h.Rejected(r); v != 0 {
			t.Errorf("host refused %d connections for %s", v, r)
		}
	}
}

// TestHostRefusesUnknownServerName: a connection naming no endpoint of the
// host (another identity, none, not a server name at all) is refused with
// the unrecognized_name alert before any endpoint work, and counted; a
// name that routes but a certificate that is not the expected identity
// still fails the dialer's check. An endpoint closed on the host is
// unknown from then on.
func TestHostRefusesUnknownServerName(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	h := n.newHost()
	desk := n.startOn(h, "alice", "desk", autoAnswer)
	carol := n.startOn(h, "carol", "desk", autoAnswer)
	mallory := n.rawLogin(t, "mallory", "phone")
	roots := n.srv.CA().Pool()
	reg := prometheus.NewRegistry()
	if err := h.Register(reg); err != nil {
		t.Fatal(err)
	}
	dial := func(cfg *tls.Config) error {
		t.Helper()
		d := tls.Dialer{NetDialer: &net.Dialer{Timeout: wait}, Config: cfg}
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		nc, err := d.DialContext(ctx, "tcp", h.SignalAddr().String())
		if err != nil {
			return err
		}
		defer nc.Close()
		// TLS 1.3: a refusal after the client's flight shows on read.
		_ = nc.SetReadDeadline(time.Now().Add(time.Second))
		_, err = nc.Read(make([]byte, 1))
		if errors.Is(err, net.ErrClosed) || err == nil {
			return nil
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil // accepted, waiting for a first message
		}
		return err
	}
	client := func(expect pki.Identity) *tls.Config {
		return pki.EndpointClientConfig(mallory.Certificate, roots, expect, time.Now)
	}
	cases := []struct {
		name   string
		cfg    *tls.Config
		reason string
	}{
		{"identity not on the host", client(pki.Identity{User: "bob", Device: "laptop"}), "unknown-name"},
		{"no server name", func() *tls.Config { c := client(desk.Identity()); c.ServerName = ""; return c }(), "no-name"},
		{"not a server name", func() *tls.Config { c := client(desk.Identity()); c.ServerName = "example.com"; return c }(), "unknown-name"},
	}
	want := map[string]uint64{}
	for _, tc := range cases {
		err := dial(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), "unrecognized name") {
			t.Errorf("%s: dial error %v, want the unrecognized name alert", tc.name, err)
		}
		want[tc.reason]++
		if got := h.Rejected(tc.reason); got != want[tc.reason] {
			t.Errorf("%s: host counted %d %s, want %d", tc.name, got, tc.reason, want[tc.reason])
		}
	}
	v, _ := findMetric(t, reg, "baton_host_signaling_rejected_total", map[string]string{"reason": "unknown-name"})
	if v != float64(want["unknown-name"]) {
		t.Errorf("metric unknown-name = %v, want %d", v, want["unknown-name"])
	}

	// Routed to alice/desk by name while expecting carol/desk: the name is
	// only a routing key, the certificate decides.
	c := client(carol.Identity())
	c.ServerName = pki.ServerName(desk.Identity())
	if err := dial(c); !errors.Is(err, pki.ErrIdentityMismatch) {
		t.Errorf("name of alice/desk, expecting carol/desk: %v, want ErrIdentityMismatch", err)
	}

	// A right name reaches the endpoint (mallory is not a buddy: the
	// handshake succeeds, nothing is refused at the host).
	if err := dial(client(desk.Identity())); err != nil {
		t.Errorf("dial alice/desk by its name: %v", err)
	}

	// Closed: its name is unknown from now on, its neighbour still served.
	_ = carol.Close()
	if err := dial(client(carol.Identity())); err == nil || !strings.Contains(err.Error(), "unrecognized name") {
		t.Errorf("closed carol/desk: %v, want the unrecognized name alert", err)
	}
	if err := dial(client(desk.Identity())); err != nil {
		t.Errorf("alice/desk after carol/desk closed: %v", err)
	}
	if got := h.Rejected("unknown-name"); got != want["unknown-name"]+1 {
		t.Errorf("unknown-name after close: %d, want %d", got, want["unknown-name"]+1)
	}
	if len(h.Endpoints()) != 1 {
		t.Errorf("host has %d endpoints after one closed, want 1", len(h.Endpoints()))
	}
}

// TestHostDialerSeesNoSuchEndpoint: presence still names a device that
// has left the host; the dialer's error says the host has no such
// endpoint, classified ErrUnreachable.
func TestHostDialerSeesNoSuchEndpoint(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	h := n.newHost()
	desk := n.startOn(h, "alice", "desk")
	bob := n.start("bob", "laptop")
	bob.waitOnline(t, "alice/desk")
	h.detach(desk.Endpoint) // gone from the host; presence not yet told
	_, err := bob.Dial(context.Background(), "alice/desk")
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "no such endpoint") {
		t.Fatalf("dial: %v, want ErrUnreachable naming the missing endpoint", err)
	}
}

func TestHostAddChecks(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	h := n.newHost()
	cfg := n.config("alice", "desk")
	cfg.SignalListen = "127.0.0.1:0"
	if _, err := h.Add(cfg); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("Add with its own listener: %v, want ErrInvalidConfig", err)
	}
	n.startOn(h, "alice", "desk")
	twin, err := h.Add(n.config("alice", "desk"))
	if err != nil {
		t.Fatal(err)
	}
	if err := twin.Start(context.Background()); !errors.Is(err, ErrDuplicateIdentity) {
		t.Errorf("second alice/desk on the host: %v, want ErrDuplicateIdentity", err)
	}
	_ = twin.Close()

	idle, err := NewHost(HostConfig{})
	if err != nil {
		t.Fatal(err)
	}
	early, err := idle.Add(n.config("bob", "laptop"))
	if err != nil {
		t.Fatal(err)
	}
	if err := early.Start(context.Background()); !errors.Is(err, ErrHostNotStarted) {
		t.Errorf("start on a host not started: %v, want ErrHostNotStarted", err)
	}
	_ = early.Close()
	_ = idle.Close()
}

// TestHostPreAuthCap: the pre-authentication caps are the host's, across
// its endpoints: connections beyond the per-source cap are closed at
// accept and counted, and once they go a call goes through.
func TestHostPreAuthCap(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	h := n.newHost(func(c *HostConfig) { c.MaxPreAuthPerSource = 3 })
	desk := n.startOn(h, "alice", "desk", autoAnswer)
	bob := n.start("bob", "laptop")
	var held []net.Conn
	for range 8 {
		nc, err := net.Dial("tcp", h.SignalAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, nc)
	}
	eventually(t, "5 connections over the cap to be refused", func() bool { return h.Rejected("pre-auth-cap") == 5 })
	// A dialer over the cap is told why, not just "EOF".
	bob.waitOnline(t, "alice/desk")
	id, addr, err := bob.resolve("alice/desk")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.dial(context.Background(), id, addr); !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "too many connections not yet authenticated") {
		t.Errorf("dial over the host's cap: %v, want ErrUnreachable naming the cap", err)
	}
	for _, nc := range held {
		_ = nc.Close()
	}
	eventually(t, "the held connections to be released", func() bool { return h.preAuth.Pending() == 0 })
	establish(t, bob, desk)
}

// TestHostWatchesEveryEndpointsAddress: the host's one address watcher
// moves the media of each of its endpoints whose address disappeared.
func TestHostWatchesEveryEndpointsAddress(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	var gone sync.Map
	present := func(ip netip.Addr) bool { _, g := gone.Load(ip); return !g }
	h := n.newHost(func(c *HostConfig) { c.AddrWatch = 20 * time.Millisecond; c.present = present })
	moved := func(c *Config) {
		c.MediaIP = netip.MustParseAddr("127.0.0.2")
		c.FallbackIPs = []netip.Addr{netip.MustParseAddr("127.0.0.7")}
	}
	desk := n.startOn(h, "alice", "desk", moved)
	carol := n.startOn(h, "carol", "desk", moved)
	stay := n.startOn(h, "bob", "desk")
	gone.Store(netip.MustParseAddr("127.0.0.2"), true)
	for _, p := range []*party{desk, carol} {
		eventually(t, p.Identity().String()+"'s media to move", func() bool { return p.Status().MediaIP == "127.0.0.7" })
	}
	if got := stay.Status().MediaIP; got != "127.0.0.1" {
		t.Errorf("bob/desk's media moved to %s; its address is still here", got)
	}
}

// A dialer's second signaling connection to an endpoint on a Host resumes
// the TLS session of the first (the host's ticket keys are shared by its
// connections although each one's config is built for it), and a ticket
// for one endpoint of the host is not offered to another.
func TestHostResumesSignalingSessions(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	h := n.newHost()
	desk := n.startOn(h, "alice", "desk", autoAnswer)
	carol := n.startOn(h, "carol", "desk", autoAnswer)
	bob := n.start("bob", "laptop", autoAnswer)
	bob.waitOnline(t, "alice/desk")
	bob.waitOnline(t, "carol/desk")
	resumed := func(to *party) bool {
		t.Helper()
		id, addr, err := bob.resolve(to.Identity().String())
		if err != nil {
			t.Fatal(err)
		}
		wc, err := bob.dial(context.Background(), id, addr)
		if err != nil {
			t.Fatalf("dial %s: %v", id, err)
		}
		defer wc.Close()
		tc := wc.NetConn().(*tracked).Conn.(*tls.Conn)
		// TLS 1.3 tickets come after the handshake: the client files one
		// when it reads the server's NewSessionTicket, so read once
		// (nothing else arrives; the read times out).
		_ = tc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		_, _ = tc.Read(make([]byte, 1))
		return tc.ConnectionState().DidResume
	}
	if resumed(desk) {
		t.Fatal("the first connection to alice/desk resumed")
	}
	if !resumed(desk) {
		t.Error("the second connection to alice/desk did not resume")
	}
	if resumed(carol) {
		t.Error("the first connection to carol/desk (same host, same address) resumed alice/desk's session")
	}
}

// TestHostCloseRacesStart: Host.Close and an endpoint's Start, run at the
// same time again and again, Close landing before the endpoint is on the
// host, just after (the even rounds, a few µs apart), and during its
// login (the odd rounds). Whatever the order, Start either succeeds (and
// Close closed it) or fails with ErrClosed, and once both returned the
// endpoint has no goroutine left, its context is cancelled and its access
// session (the login that was in flight) is closed. Before the fix, a
// login that ended after Close left the device logged in for good (77 of
// 80 rounds failed that check) with its re-login loop started after Close
// had waited for the endpoint's goroutines; Start's writes of ctx and
// cancel after the endpoint was on the host were unordered with Close's
// read (the race detector did not catch it in these runs: the window
// before the login's first lock of the host is a few instructions).
func TestHostCloseRacesStart(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	const rounds = 80
	for i := range rounds {
		h, err := NewHost(HostConfig{Logger: testLogger(t), AddrWatch: -1})
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		ep, err := h.Add(n.config("alice", fmt.Sprintf("race%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		delay := time.Duration(i) * 2 * time.Microsecond // 0 to 160 µs
		if i%2 == 1 {
			delay = time.Duration(i%20) * time.Millisecond // inside the login
		}
		var startErr, closeErr error
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); startErr = ep.Start(context.Background()) }()
		go func() {
			defer wg.Done()
			time.Sleep(delay)
			closeErr = h.Close()
		}()
		wg.Wait()
		if startErr != nil && !errors.Is(startErr, ErrClosed) {
			t.Errorf("round %d: Start: %v, want nil or ErrClosed", i, startErr)
		}
		if closeErr != nil {
			t.Errorf("round %d: Close: %v", i, closeErr)
		}
		_ = ep.Close()
		left := make(chan struct{})
		go func() { ep.wg.Wait(); close(left) }()
		select {
		case <-left:
		case <-time.After(wait):
			t.Fatalf("round %d (Start: %v): a goroutine of the endpoint outlived Host.Close and Endpoint.Close", i, startErr)
		}
		if ep.ctx != nil && ep.ctx.Err() == nil {
			t.Errorf("round %d (Start: %v): the endpoint's context is not cancelled after Close", i, startErr)
		}
		ep.mu.Lock()
		c := ep.client
		ep.mu.Unlock()
		if c != nil {
			select {
			case <-c.Done():
			case <-time.After(3 * time.Second):
				t.Errorf("round %d (Start: %v): the endpoint's access session is still up after Close (logged in for good)", i, startErr)
			}
		}
	}
}
