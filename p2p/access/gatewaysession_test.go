package access

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/baton-voice/baton/p2p/pki"
	"github.com/baton-voice/baton/p2p/wire"
)

func (e *testEnv) gatewaySession(t testing.TB, name, secret string) *GatewaySession {
	t.Helper()
	g, err := NewGatewaySession(GatewayConfig{Addr: e.addr, Roots: e.roots, Gateway: name, Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close() })
	return g
}

func deviceLogin(user, device string, r *recorder) DeviceLogin {
	dl := DeviceLogin{User: user, Device: device, SignalAddr: netipPort(7070)}
	if r != nil {
		dl.OnPresence = r.on
	}
	return dl
}

// TestGatewaySessionDevices: one gateway connection logs in several
// devices of delegated users; each gets its own bridged certificate and
// profile, is online in presence for its buddies, receives their pushes,
// and goes offline on its own logout or with the whole session. A device
// of a user not delegated is refused by name, and the session goes on.
func TestGatewaySessionDevices(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.addUsers("alice", "bob", "carol", "dave")
	e.buddies([2]string{"alice", "carol"}, [2]string{"bob", "carol"})
	secret := e.addGateway("gw1", "alice", "bob")
	carolRec := newRecorder()
	carol := e.login("carol", "laptop", withRecorder(carolRec), withSignal("127.0.0.1:8000"))

	g := e.gatewaySession(t, "gw1", secret)
	ctx := context.Background()
	aliceRec := newRecorder()
	alice, err := g.Login(ctx, deviceLogin("alice", "desk", aliceRec))
	if err != nil {
		t.Fatal(err)
	}
	bob, err := g.Login(ctx, deviceLogin("bob", "desk", nil))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []*DeviceSession{alice, bob} {
		cert, err := d.Certificate()
		if err != nil {
			t.Fatal(err)
		}
		if id, _ := pki.IdentityFromCert(cert.Leaf); id != d.Identity() || pki.BridgedBy(cert.Leaf) != "gw1" {
			t.Fatalf("%s: certificate for %v bridged by %q", d.Identity(), id, pki.BridgedBy(cert.Leaf))
		}
	}
	if p := alice.Profile(); len(p.Buddies) != 1 || p.Buddies[0].User != "carol" || len(p.Buddies[0].Devices) != 1 {
		t.Fatalf("alice/desk's profile: %+v", p)
	}
	carolRec.expect(t, dev("alice", "desk", wire.StatusOnline, "127.0.0.1:7070"))
	carolRec.expect(t, dev("bob", "desk", wire.StatusOnline, "127.0.0.1:7070"))
	st := e.srv.Status()
	if st.OnlineEndpoints != 3 || st.GatewaySessions != 1 {
		t.Fatalf("status: %d online, %d gateway sessions; want 3 and 1", st.OnlineEndpoints, st.GatewaySessions)
	}

	// dave is not delegated to gw1: refused by name, the session goes on.
	_, err = g.Login(ctx, deviceLogin("dave", "desk", nil))
	var nd *NotDelegatedError
	if !errors.As(err, &nd) || nd.User != "dave" || nd.Gateway != "gw1" {
		t.Fatalf("dave via gw1: %v, want NotDelegatedError", err)
	}
	if alice.Err() != nil || !g.Connected() {
		t.Fatalf("a refused device ended the session: %v", alice.Err())
	}

	// Pushes reach the device through the gateway session, status changes
	// go the other way.
	if err := carol.SetStatus(ctx, wire.StatusAway); err != nil {
		t.Fatal(err)
	}
	aliceRec.expect(t, dev("carol", "laptop", wire.StatusAway, "127.0.0.1:8000"))
	if err := alice.SetStatus(ctx, wire.StatusAway); err != nil {
		t.Fatal(err)
	}
	carolRec.expect(t, dev("alice", "desk", wire.StatusAway, "127.0.0.1:7070"))

	// One device logs out; the others stay.
	if err := alice.Close(); err != nil {
		t.Fatal(err)
	}
	carolRec.expect(t, dev("alice", "desk", wire.StatusOffline, ""))
	if bob.Err() != nil {
		t.Fatalf("bob/desk ended with alice/desk: %v", bob.Err())
	}
	// The whole session ends: its devices are offline at once.
	_ = g.Close()
	carolRec.expect(t, dev("bob", "desk", wire.StatusOffline, ""))
	<-bob.Done()
	waitFor(t, "gateway session gone", func() bool { return e.srv.Status().GatewaySessions == 0 })
	if n := e.srv.Status().OnlineEndpoints; n != 1 {
		t.Fatalf("%d online after the gateway closed, want carol only", n)
	}
}

// TestGatewaySessionAuth: a wrong secret or unknown gateway is refused as
// auth-failed, and the failed-login limiter counts gateway sessions too.
func TestGatewaySessionAuth(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.Limits.UserFailBurst = 2 })
	e.addUsers("alice")
	secret := e.addGateway("gw1", "alice")
	ctx := context.Background()
	for i, s := range []string{"wrong", "also-wrong"} {
		g := e.gatewaySession(t, "gw1", s)
		if _, err := g.Login(ctx, deviceLogin("alice", "desk", nil)); !errors.Is(err, ErrAuthFailed) {
			t.Fatalf("wrong secret %d: %v, want ErrAuthFailed", i+1, err)
		}
	}
	g := e.gatewaySession(t, "gw1", secret)
	_, err := g.Login(ctx, deviceLogin("alice", "desk", nil))
	if !errors.Is(err, ErrRateLimited) {
		t.Fatalf("right secret after the burst: %v, want rate limited", err)
	}
	if g2 := e.gatewaySession(t, "gw9", secret); true {
		if _, err := g2.Login(ctx, deviceLogin("alice", "desk", nil)); !errors.Is(err, ErrAuthFailed) {
			t.Fatalf("unknown gateway: %v", err)
		}
	}
}

// TestGatewaySessionReconnect: when the connection is lost, every device
// on it ends with ErrConnectionLost and is offline; the next Login
// connects again.
func TestGatewaySessionReconnect(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.addUsers("alice", "carol")
	e.buddies([2]string{"alice", "carol"})
	secret := e.addGateway("gw1", "alice")
	carolRec := newRecorder()
	e.login("carol", "laptop", withRecorder(carolRec))
	g := e.gatewaySession(t, "gw1", secret)
	ctx := context.Background()
	d, err := g.Login(ctx, deviceLogin("alice", "desk", nil))
	if err != nil {
		t.Fatal(err)
	}
	carolRec.expect(t, dev("alice", "desk", wire.StatusOnline, "127.0.0.1:7070"))
	g.mu.Lock()
	_ = g.conn.raw.Close() // the network fails
	g.mu.Unlock()
	<-d.Done()
	if !errors.Is(d.Err(), ErrConnectionLost) {
		t.Fatalf("device ended with %v, want ErrConnectionLost", d.Err())
	}
	carolRec.expect(t, dev("alice", "desk", wire.StatusOffline, ""))
	d2, err := g.Login(ctx, deviceLogin("alice", "desk", nil))
	if err != nil {
		t.Fatalf("login after reconnect: %v", err)
	}
	carolRec.expect(t, dev("alice", "desk", wire.StatusOnline, "127.0.0.1:7070"))
	if d2.Err() != nil {
		t.Fatal(d2.Err())
	}
}

// TestGatewaySessionManyDevices: 200 devices on one connection, all
// online, one TLS connection at the server.
func TestGatewaySessionManyDevices(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.srv.db.params = cheapArgon
	users := make([]string, 200)
	for i := range users {
		users[i] = fmt.Sprintf("u%03d", i)
	}
	e.addUsers(users...)
	secret := e.addGateway("gw1", users...)
	g := e.gatewaySession(t, "gw1", secret)
	ctx := context.Background()
	for _, u := range users {
		if _, err := g.Login(ctx, deviceLogin(u, "desk", nil)); err != nil {
			t.Fatal(err)
		}
	}
	if st := e.srv.Status(); st.OnlineEndpoints != len(users) || st.GatewaySessions != 1 || st.Logins != uint64(len(users))+1 {
		t.Fatalf("status %+v", st)
	}
	if !strings.Contains(e.logs.String(), "gateway session") {
		t.Fatal("no gateway session logged")
	}
}

// TestGatewaySessionProtocol drives a gateway session by hand: requests
// for devices it does not carry are device-errors and the session goes
// on; a device-login may not replace the device's own login (its user's
// password) but replaces another gateway session's without an offline
// blip; a message that belongs to an endpoint session ends the
// gateway session, and every device on it is offline.
func TestGatewaySessionProtocol(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.addUsers("alice", "carol")
	e.buddies([2]string{"alice", "carol"})
	secret := e.addGateway("gw1", "alice")
	carolRec := newRecorder()
	e.login("carol", "laptop", withRecorder(carolRec))
	own := e.login("alice", "desk") // alice/desk on its own connection first
	carolRec.expect(t, dev("alice", "desk", wire.StatusOnline, "127.0.0.1:9"))

	r := e.dialRaw()
	r.send(&wire.GatewayLogin{Gateway: "gw1", Secret: secret})
	if w, ok := r.recv().(*wire.GatewayWelcome); !ok || len(w.Users) != 1 || w.Users[0] != "alice" {
		t.Fatalf("want gateway-welcome for alice, got %#v", w)
	}
	r.send(&wire.DeviceStatus{ID: "alice/desk", Status: wire.StatusAway})
	if m, ok := r.recv().(*wire.DeviceError); !ok || m.Code != wire.CodeNotFound || m.ID != "alice/desk" {
		t.Fatalf("status for a device not on the session: %#v", m)
	}
	// alice/desk is online with alice's own password: the gateway may not
	// take it over.
	r.send(&wire.DeviceLogin{ID: "alice/desk", PublicKey: pkix(t, newKey(t).Public()), SignalAddr: "127.0.0.1:7000"})
	if m, ok := r.recv().(*wire.DeviceError); !ok || m.Code != wire.CodeDuplicate || !strings.Contains(m.Message, "own login") {
		t.Fatalf("gateway login over a device's own login: %#v, want device-error duplicate", m)
	}
	if own.Err() != nil {
		t.Fatalf("the device's own session ended: %v", own.Err())
	}
	_ = own.Close()
	carolRec.expect(t, dev("alice", "desk", wire.StatusOffline, ""))
	r.send(&wire.DeviceLogin{ID: "alice/desk", PublicKey: pkix(t, newKey(t).Public()), SignalAddr: "127.0.0.1:7000"})
	dw, ok := r.recv().(*wire.DeviceWelcome)
	if !ok || dw.ID != "alice/desk" || len(dw.Profile.Buddies) != 1 {
		t.Fatalf("want device-welcome with carol as buddy, got %#v", dw)
	}
	carolRec.expect(t, dev("alice", "desk", wire.StatusOnline, "127.0.0.1:7000"))
	// A second gateway session's login of the same device replaces the
	// first's without an offline blip.
	r2 := e.dialRaw()
	r2.send(&wire.GatewayLogin{Gateway: "gw1", Secret: secret})
	if _, ok := r2.recv().(*wire.GatewayWelcome); !ok {
		t.Fatal("no welcome for the second gateway session")
	}
	r2.send(&wire.DeviceLogin{ID: "alice/desk", PublicKey: pkix(t, newKey(t).Public()), SignalAddr: "127.0.0.1:7002"})
	if _, ok := r2.recv().(*wire.DeviceWelcome); !ok {
		t.Fatal("no device-welcome on the second gateway session")
	}
	carolRec.expect(t, dev("alice", "desk", wire.StatusOnline, "127.0.0.1:7002"))
	r.send(&wire.DeviceStatus{ID: "alice/desk", Status: wire.StatusAway})
	if m, ok := r.recv().(*wire.DeviceError); !ok || m.Code != wire.CodeNotFound {
		t.Fatalf("the replaced session still carries alice/desk: %#v", m)
	}
	r.send(&wire.Keepalive{})
	if _, ok := r.recv().(*wire.KeepaliveAck); !ok {
		t.Fatal("no keepalive-ack on the gateway session")
	}
	// A bad key is refused for that device only.
	r.send(&wire.DeviceLogin{ID: "alice/phone", PublicKey: []byte{1, 2, 3}, SignalAddr: "127.0.0.1:7001"})
	if m, ok := r.recv().(*wire.DeviceError); !ok || m.Code != wire.CodeBadRequest || m.ID != "alice/phone" {
		t.Fatalf("bad key: %#v", m)
	}
	// set-status is an endpoint session's message: bad-request, closed.
	r.send(&wire.SetStatus{Status: wire.StatusAway})
	r.expectError(wire.CodeBadRequest, "gateway session")
	r.expectClosed()
	waitFor(t, "first gateway session gone", func() bool { return e.srv.Status().GatewaySessions == 1 })
	// alice/desk lives on the second session; ending it takes it offline.
	r2.send(&wire.Logout{})
	r2.expectClosed()
	carolRec.expect(t, dev("alice", "desk", wire.StatusOffline, ""))
	waitFor(t, "gateway sessions gone", func() bool { return e.srv.Status().GatewaySessions == 0 })
}
