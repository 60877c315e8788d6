package endpoint

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-voice/baton/p2p/audio"
	"github.com/baton-voice/baton/p2p/pki"
)

// hears waits until p's sink has grown by 8000 samples (1 s) and reports
// the dominant of the candidate tones in the last half second.
func hears(t *testing.T, p *party, tones ...float64) float64 {
	t.Helper()
	start := len(p.sink.samples())
	eventually(t, p.Identity().String()+" to hear audio", func() bool { return len(p.sink.samples()) > start+8000 })
	s := p.sink.samples()
	return audio.DominantFrequency(s[len(s)-4000:], 8000, tones)
}

// netConnOf is the connection under a call's signaling at p.
func netConnOf(t *testing.T, p *party, id string) net.Conn {
	t.Helper()
	p.mu.Lock()
	c := p.calls[id]
	p.mu.Unlock()
	if c == nil {
		t.Fatalf("%s has no call %s", p.Identity(), id)
	}
	var nc net.Conn
	if err := c.exec(context.Background(), func() error { nc = c.conn.NetConn(); return nil }); err != nil {
		t.Fatal(err)
	}
	if tr, ok := nc.(*tracked); ok {
		return tr.Conn
	}
	return nc
}

// TestHostLocalShortcut: two endpoints of one host call each other
// through the in-process connection (counted; no TLS connection to the
// host's own listener): audio both ways, hold and resume, DTMF both ways,
// and the call pushed to a third device of the host, which pulls it from
// the first (session query, pull, reestablish all in process).
func TestHostLocalShortcut(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	h := n.newHost()
	desk := n.startOn(h, "alice", "desk", withTone(440))
	carol := n.startOn(h, "carol", "desk", withTone(550), autoAnswer)
	phone := n.startOn(h, "alice", "phone", withTone(880))
	ctx := context.Background()

	dc, cc := establish(t, desk, carol)
	if got := h.LocalConnections(); got != 1 {
		t.Fatalf("local connections after one call: %d, want 1", got)
	}
	for _, c := range []struct {
		p  *party
		id string
	}{{desk, dc.ID}, {carol, cc.ID}} {
		lc, ok := netConnOf(t, c.p, c.id).(*localConn)
		if !ok {
			t.Fatalf("%s's call signals over %T, want the in-process connection", c.p.Identity(), netConnOf(t, c.p, c.id))
		}
		if ra := lc.RemoteAddr().(*net.TCPAddr); ra.AddrPort().Addr() != h.SignalAddr().Addr() {
			t.Errorf("%s: remote address %s, want on the host's IP %s", c.p.Identity(), ra, h.SignalAddr().Addr())
		}
	}
	// Each side knows the other's leaf certificate (attended transfer's
	// signed Replaces needs it).
	for _, c := range []struct {
		p    *party
		id   string
		peer pki.Identity
	}{{desk, dc.ID, carol.Identity()}, {carol, cc.ID, desk.Identity()}} {
		c.p.mu.Lock()
		cl := c.p.calls[c.id]
		c.p.mu.Unlock()
		var cert *x509.Certificate
		_ = cl.exec(context.Background(), func() error { cert = cl.peerCert; return nil })
		if cert == nil {
			t.Fatalf("%s: no peer certificate", c.p.Identity())
		}
		if id, err := pki.IdentityFromCert(cert); err != nil || id != c.peer {
			t.Errorf("%s: peer certificate of %v (%v), want %s", c.p.Identity(), id, err, c.peer)
		}
	}
	if f := hears(t, carol, 440, 550, 880); f != 440 {
		t.Errorf("carol hears %v Hz, want the desk's 440", f)
	}
	if f := hears(t, desk, 440, 550, 880); f != 550 {
		t.Errorf("the desk hears %v Hz, want carol's 550", f)
	}

	if err := desk.Hold(ctx, dc.ID, true); err != nil {
		t.Fatalf("hold: %v", err)
	}
	if ev := carol.next(t, EventHeld); ev.CallID != cc.ID || !contains(ev.Detail, "by=remote direction=recvonly") {
		t.Errorf("carol's held event %+v", ev)
	}
	if err := desk.Hold(ctx, dc.ID, false); err != nil {
		t.Fatalf("resume: %v", err)
	}
	eventually(t, "carol's call resumed", func() bool {
		c, err := carol.Call(cc.ID)
		return err == nil && c.MediaDirection == "sendrecv"
	})
	if f := hears(t, carol, 440, 550, 880); f != 440 {
		t.Errorf("after resume carol hears %v Hz, want 440", f)
	}

	if err := desk.SendDTMF(ctx, dc.ID, DTMFRequest{Digits: "12#"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := carol.digits(t, cc.ID, 3); got != "12#" {
		t.Errorf("carol got digits %q, want 12#", got)
	}
	if err := carol.SendDTMF(ctx, cc.ID, DTMFRequest{Digits: "*9"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := desk.digits(t, dc.ID, 2); got != "*9" {
		t.Errorf("the desk got digits %q, want *9", got)
	}

	desk.waitOnline(t, "alice/phone")
	before := h.LocalConnections()
	ho, err := desk.Push(ctx, PushRequest{CallID: dc.ID, To: "phone"})
	if err != nil || ho.State != "done" {
		t.Fatalf("push to alice/phone: %v (%+v)", err, ho)
	}
	if pc := phone.waitState(t, dc.ID, "active"); pc.Peer != "carol/desk" {
		t.Fatalf("phone's call %+v", pc)
	}
	desk.waitState(t, dc.ID, "ended")
	if f := hears(t, carol, 440, 550, 880); f != 880 {
		t.Errorf("after the push carol hears %v Hz, want the phone's 880", f)
	}
	if f := hears(t, phone, 440, 550, 880); f != 550 {
		t.Errorf("the phone hears %v Hz, want carol's 550", f)
	}
	after := h.LocalConnections()
	t.Logf("in-process connections: %d for the call, %d for the push", before, after-before)
	if after < before+2 {
		t.Errorf("the push made %d in-process connections, want at least 2 (push offer, the pull's)", after-before)
	}
	// Pulled back by the desk.
	if _, err := desk.Pull(ctx, PullRequest{From: "phone", SessionID: dc.ID}); err != nil {
		t.Fatalf("pull back: %v", err)
	}
	if f := hears(t, carol, 440, 550, 880); f != 440 {
		t.Errorf("after the pull carol hears %v Hz, want the desk's 440", f)
	}
	if err := desk.Hangup(ctx, dc.ID); err != nil {
		t.Fatal(err)
	}
	carol.waitState(t, cc.ID, "ended")
	for _, r := range []string{"unknown-name", "no-name", "handshake", "pre-auth-cap"} {
		if v := h.Rejected(r); v != 0 {
			t.Errorf("host refused %d connections for %s", v, r)
		}
	}
}

// TestHostLocalShortcutAttendedTransfer: an attended transfer among three
// endpoints of one host: the invite-replaces is signed and checked with
// the certificates the in-process connections carry.
func TestHostLocalShortcutAttendedTransfer(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	h := n.newHost()
	bob := n.startOn(h, "bob", "mobile", withTone(440), autoAnswer)
	carol := n.startOn(h, "carol", "laptop", withTone(880), autoAnswer)
	alice := n.startOn(h, "alice", "laptop", withTone(660), func(c *Config) { c.MaxCalls = 2 })
	toBob, _ := establish(t, alice, bob)
	toCarol, _ := establish(t, alice, carol)
	bob.waitOnline(t, "carol/laptop")
	info, err := alice.TransferAttended(context.Background(), toBob.ID, toCarol.ID)
	if err != nil || info.State != "done" || info.NewCallID == "" {
		t.Fatalf("attended transfer: %v (%+v)", err, info)
	}
	if bc := bob.waitState(t, info.NewCallID, "active"); bc.Peer != "carol/laptop" {
		t.Fatalf("bob's new call %+v", bc)
	}
	if old := carol.waitState(t, toCarol.ID, "ended"); !contains(old.EndReason, "replaced by call "+info.NewCallID) {
		t.Errorf("carol's call with alice ended %q, want replaced", old.EndReason)
	}
	if f := hears(t, carol, 440, 660, 880); f != 440 {
		t.Errorf("carol hears %v Hz, want bob's 440", f)
	}
	if f := hears(t, bob, 440, 660, 880); f != 880 {
		t.Errorf("bob hears %v Hz, want carol's 880", f)
	}
	if got := h.LocalConnections(); got < 4 {
		t.Errorf("local connections %d, want at least 4 (two calls, transfer request, invite-replaces)", got)
	}
}

// TestHostLocalShortcutOff: with HostConfig.NoLocalShortcut the same call
// goes over TLS to the host's own listener, and nothing is counted local.
func TestHostLocalShortcutOff(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	h := n.newHost(func(c *HostConfig) { c.NoLocalShortcut = true })
	desk := n.startOn(h, "alice", "desk", withTone(440))
	carol := n.startOn(h, "carol", "desk", withTone(550), autoAnswer)
	dc, cc := establish(t, desk, carol)
	for _, c := range []struct {
		p  *party
		id string
	}{{desk, dc.ID}, {carol, cc.ID}} {
		if nc := netConnOf(t, c.p, c.id); func() bool { _, ok := nc.(*tls.Conn); return !ok }() {
			t.Errorf("%s's call signals over %T, want TLS", c.p.Identity(), nc)
		}
	}
	if f := hears(t, carol, 440, 550); f != 440 {
		t.Errorf("carol hears %v Hz, want 440", f)
	}
	if got := h.LocalConnections(); got != 0 {
		t.Errorf("local connections %d with the shortcut off", got)
	}
}

// TestHostLocalShortcutChecks: the in-process path refuses what the TLS
// path refuses, the same way: a callee that left the host is unreachable
// (no such endpoint), a peer certificate not yet valid at the dialer's
// time is untrusted, and a dialer certificate not yet valid at the
// callee's time is refused by the callee; both count as a handshake
// refusal at the callee, as on the TLS path.
func TestHostLocalShortcutChecks(t *testing.T) {
	t.Parallel()
	for _, path := range []struct {
		name string
		off  bool
	}{{"in process", false}, {"tls", true}} {
		t.Run(path.name, func(t *testing.T) {
			t.Parallel()
			n := newNetwork(t)
			h := n.newHost(func(c *HostConfig) { c.NoLocalShortcut = path.off })
			var deskSkew, carolSkew atomic.Int64
			skewed := func(s *atomic.Int64) func(*Config) {
				return func(c *Config) { c.Now = func() time.Time { return time.Now().Add(time.Duration(s.Load())) } }
			}
			desk := n.startOn(h, "alice", "desk", skewed(&deskSkew))
			carol := n.startOn(h, "carol", "desk", autoAnswer, skewed(&carolSkew))
			desk.waitOnline(t, "carol/desk")
			ctx := context.Background()
			// A day back: before every certificate's NotBefore (each side's
			// own certificate still counts as valid to it: the access
			// client checks its expiry only).
			dayBack := -int64(24 * time.Hour)

			before := carol.rejects("handshake")
			deskSkew.Store(dayBack)
			_, err := desk.Dial(ctx, "carol/desk")
			if !errors.Is(err, pki.ErrUntrusted) {
				t.Errorf("callee's certificate not yet valid at the dialer: %v, want ErrUntrusted", err)
			}
			countsOne := func() {
				t.Helper()
				// On the TLS path the callee's side of the handshake ends
				// after the dialer's: counted a moment later.
				eventually(t, "carol to count one handshake refusal", func() bool { return carol.rejects("handshake") == before+1 })
			}
			countsOne()
			deskSkew.Store(0)

			carolSkew.Store(dayBack)
			before = carol.rejects("handshake")
			out, err := desk.Dial(ctx, "carol/desk")
			switch {
			case errors.Is(err, ErrUnreachable):
				// In process: refused before the dial returns.
			case err == nil && path.off:
				// TLS 1.3: the client's handshake is done before the server
				// checks the client's certificate; the invite then fails.
				if c := desk.waitState(t, out.ID, "ended"); c.State != "ended" {
					t.Errorf("call %+v", c)
				}
			default:
				t.Errorf("dialer's certificate not yet valid at the callee: %v, want ErrUnreachable", err)
			}
			countsOne()
			carolSkew.Store(0)

			if _, err := desk.Dial(ctx, "carol/desk"); err != nil {
				t.Fatalf("with both clocks right: %v", err)
			}
			h.detach(carol.Endpoint) // gone from the host; presence not yet told
			_, err = desk.Dial(ctx, "carol/desk")
			if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "no such endpoint") {
				t.Errorf("dial a detached endpoint: %v, want ErrUnreachable naming the missing endpoint", err)
			}
			wantLocal := uint64(1)
			if path.off {
				wantLocal = 0
			}
			if got := h.LocalConnections(); got != wantLocal {
				t.Errorf("local connections %d, want %d", got, wantLocal)
			}
		})
	}
}

// rejects is p's count of refused signaling connections for reason.
func (p *party) rejects(reason string) uint64 {
	p.stats.mu.Lock()
	defer p.stats.mu.Unlock()
	return p.stats.rejects[reason]
}
