package access

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/baton-voice/baton/p2p/pki"
	"github.com/baton-voice/baton/p2p/presence"
	"github.com/baton-voice/baton/p2p/wire"
)

func TestLoginProfile(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.CredentialTTL = 30 * time.Minute })
	e.addUsers("alice", "bob", "carol", "dave")
	e.buddies([2]string{"alice", "bob"}, [2]string{"carol", "alice"}, [2]string{"bob", "dave"})

	desk := e.login("alice", "desk", withSignal("127.0.0.1:6001"))
	e.login("bob", "phone", withSignal("127.0.0.1:6002"), withStatus(wire.StatusAway))
	e.login("dave", "desk", withSignal("127.0.0.1:6003"))
	// carol was online once: her device is known, now offline.
	carol := e.login("carol", "laptop", withSignal("127.0.0.1:6004"))
	if err := carol.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "carol offline", func() bool {
		en, ok, _ := e.srv.store.Get(context.Background(), "carol", "laptop")
		return ok && en.Status == presence.StatusOffline
	})

	key := newKey(t)
	cfg := e.clientConfig("alice", "laptop", withSignal("0.0.0.0:7000"))
	cfg.Key = key
	c, err := Login(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Login: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })

	p := c.Profile()
	if p.User != "alice" {
		t.Errorf("profile user = %q", p.User)
	}
	wantDevices := []wire.Device{dev("alice", "desk", wire.StatusOnline, "127.0.0.1:6001")}
	if !sameDevices(p.Devices, wantDevices) {
		t.Errorf("own devices = %v, want %v (other devices only)", p.Devices, wantDevices)
	}
	wantBuddies := []wire.Buddy{
		{User: "bob", Devices: []wire.Device{dev("bob", "phone", wire.StatusAway, "127.0.0.1:6002")}},
		{User: "carol", Devices: []wire.Device{dev("carol", "laptop", wire.StatusOffline, "")}},
	}
	if len(p.Buddies) != len(wantBuddies) {
		t.Fatalf("buddies = %+v, want %+v (dave is bob's buddy, not alice's)", p.Buddies, wantBuddies)
	}
	for i, w := range wantBuddies {
		if p.Buddies[i].User != w.User || !sameDevices(p.Buddies[i].Devices, w.Devices) {
			t.Errorf("buddy %d = %+v, want %+v", i, p.Buddies[i], w)
		}
	}

	// Observed address: what the server saw, i.e. our local address.
	local := addrPort(c.raw.LocalAddr())
	if c.Observed() != local {
		t.Errorf("Observed() = %v, want %v", c.Observed(), local)
	}
	// An unspecified signaling IP is replaced by the observed one.
	en, ok, err := e.srv.store.Get(context.Background(), "alice", "laptop")
	if err != nil || !ok || en.SignalAddr != netip.MustParseAddrPort("127.0.0.1:7000") || en.Status != presence.StatusOnline {
		t.Errorf("presence of alice/laptop = %+v (%v, %v), want online at 127.0.0.1:7000", en, ok, err)
	}

	// The certificate binds alice/laptop to our key and chains to the CA.
	cert, err := c.Certificate()
	if err != nil {
		t.Fatalf("Certificate: %v", err)
	}
	id, leaf, err := pki.VerifyEndpoint(cert.Certificate, e.srv.CA().Pool(), time.Now())
	if err != nil || id != (pki.Identity{User: "alice", Device: "laptop"}) {
		t.Fatalf("VerifyEndpoint = %v, %v", id, err)
	}
	if !bytes.Equal(leaf.RawSubjectPublicKeyInfo, pkix(t, key.Public())) {
		t.Error("certificate does not bind the client's public key")
	}
	if cert.PrivateKey != key {
		t.Error("Certificate() does not carry the client's private key")
	}
	if d := time.Until(c.Expires()); d < 25*time.Minute || d > 31*time.Minute {
		t.Errorf("expires in %v, want about the 30m CredentialTTL", d)
	}
	if got := c.Keepalive(); got != DefaultKeepalive {
		t.Errorf("Keepalive() = %v, want %v", got, DefaultKeepalive)
	}
	// The credential works for endpoint-to-endpoint TLS: desk and laptop
	// authenticate each other with what the access server issued.
	checkEndpointTLS(t, e.roots, c, desk)
	if st := e.srv.Status(); st.OnlineEndpoints != 4 || st.Logins != 5 {
		t.Errorf("Status = %+v, want 4 online after 5 logins", st)
	}
}

func sameDevices(got, want []wire.Device) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		g := got[i]
		if g.SinceUnix == 0 {
			return false // the profile says since when
		}
		g.SinceUnix = 0
		if g != want[i] {
			return false
		}
	}
	return true
}

// checkEndpointTLS runs a direct TLS handshake between two endpoints using
// their access credentials.
func checkEndpointTLS(t *testing.T, roots *x509.CertPool, server, client *Client) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", pki.EndpointServerConfig(server.Certificate, roots, time.Now))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	accepted := make(chan error, 1)
	go func() {
		nc, err := ln.Accept()
		if err == nil {
			err = nc.(*tls.Conn).Handshake()
			_ = nc.Close()
		}
		accepted <- err
	}()
	nc, err := tls.Dial("tcp", ln.Addr().String(), pki.EndpointClientConfig(client.Certificate, roots, server.Identity(), time.Now))
	if err != nil {
		t.Fatalf("endpoint dial: %v", err)
	}
	_ = nc.Close()
	if err := <-accepted; err != nil {
		t.Fatalf("endpoint accept: %v", err)
	}
}

func TestRestartReusesCAAndUsers(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	e1 := startEnv(t, dir, nil)
	e1.addUsers("alice")
	fp := e1.srv.CA().Fingerprint()
	c := e1.login("alice", "laptop")
	_ = c.Close()
	e1.stop()

	e2 := startEnv(t, dir, nil)
	if got := e2.srv.CA().Fingerprint(); got != fp {
		t.Fatalf("CA after restart = %s, want %s", got, fp)
	}
	// Endpoints keep the ca.crt they had: the old roots trust the new server.
	cfg := e2.clientConfig("alice", "laptop")
	cfg.Roots = e1.roots
	c2, err := Login(context.Background(), cfg)
	if err != nil {
		t.Fatalf("login after restart: %v", err)
	}
	_ = c2.Close()
	roots, err := pki.LoadCAFile(dir + "/" + pki.CACertFile)
	if err != nil || !roots.Equal(e1.roots) {
		t.Fatalf("ca.crt in data dir does not match the CA: %v", err)
	}
}

func TestLoginAuthFailed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.addUsers("alice")
	const secret = "hunter2-correct-horse"
	for _, tc := range []struct{ name, user, pw string }{
		{"wrong password", "alice", secret},
		{"unknown user", "mallory", secret},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := e.clientConfig(tc.user, "laptop")
			cfg.Password = tc.pw
			_, err := Login(context.Background(), cfg)
			if !errors.Is(err, ErrAuthFailed) {
				t.Fatalf("Login = %v, want ErrAuthFailed", err)
			}
			want := "access: login " + tc.user + "/laptop: wrong user or password"
			if err.Error() != want {
				t.Fatalf("error = %q, want %q", err, want)
			}
		})
	}
	if st := e.srv.Status(); st.AuthFailures != 2 {
		t.Errorf("AuthFailures = %d, want 2", st.AuthFailures)
	}
	logs := e.logs.String()
	if strings.Contains(logs, secret) {
		t.Fatal("the password appears in the server log")
	}
	if !strings.Contains(logs, "user=mallory") || !strings.Contains(logs, "wrong user or password") {
		t.Errorf("failed login not logged with its user:\n%s", logs)
	}
	// The server keeps serving.
	_ = e.login("alice", "laptop").Close()
}

func TestLoginRefusesBadInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.addUsers("alice")
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 1024)
	for _, tc := range []struct {
		name   string
		input  func(t *testing.T, r *rawConn)
		code   wire.ErrorCode
		substr string
	}{
		{"non-login first message", func(t *testing.T, r *rawConn) { r.send(&wire.Keepalive{}) },
			wire.CodeBadRequest, "first message must be login-request, got keepalive"},
		{"malformed login", func(t *testing.T, r *rawConn) { r.write(frame(wire.TypeLoginRequest, 1, `{"user":7}`)) },
			wire.CodeBadRequest, "malformed"},
		{"invalid login field", func(t *testing.T, r *rawConn) {
			req := loginRequest(t, "alice", "laptop")
			b, _ := wire.Encode(req)
			r.write(frame(wire.TypeLoginRequest, 1, strings.Replace(string(b), `"alice"`, `"Alice"`, 1)))
		}, wire.CodeBadRequest, `user "Alice"`},
		{"oversized frame", func(t *testing.T, r *rawConn) {
			h := frame(wire.TypeLoginRequest, 1, "")
			h[6], h[7], h[8], h[9] = 0x7f, 0xff, 0xff, 0xff // declared length 2 GiB
			r.write(h)
		}, wire.CodeBadRequest, "too large"},
		{"garbage bytes", func(t *testing.T, r *rawConn) { r.write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")) },
			wire.CodeBadRequest, "not a baton frame"},
		{"wrong sequence", func(t *testing.T, r *rawConn) { r.write(frame(wire.TypeLoginRequest, 7, "{}")) },
			wire.CodeBadRequest, "out-of-sequence"},
		{"unknown type", func(t *testing.T, r *rawConn) { r.write(frame(999, 1, "{}")) },
			wire.CodeBadRequest, "unknown message type"},
		{"ecdsa p-384 key", func(t *testing.T, r *rawConn) {
			req := loginRequest(t, "alice", "laptop")
			req.PublicKey = pkix(t, p384.Public())
			r.send(req)
		}, wire.CodeBadRequest, "ECDSA P-384: want ECDSA P-256 or Ed25519"},
		{"rsa key", func(t *testing.T, r *rawConn) {
			req := loginRequest(t, "alice", "laptop")
			req.PublicKey = pkix(t, rsaKey.Public())
			r.send(req)
		}, wire.CodeBadRequest, "RSA-1024"},
		{"key not pkix", func(t *testing.T, r *rawConn) {
			req := loginRequest(t, "alice", "laptop")
			req.PublicKey = []byte("not a key")
			r.send(req)
		}, wire.CodeBadRequest, "not PKIX"},
		{"wrong password", func(t *testing.T, r *rawConn) {
			req := loginRequest(t, "alice", "laptop")
			req.Password = "nope"
			r.send(req)
		}, wire.CodeAuthFailed, "wrong user or password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.dialRaw()
			r.t = t
			tc.input(t, r)
			r.expectError(tc.code, tc.substr)
			r.expectClosed()
		})
	}
	// Nothing above took the server down or left a session behind.
	if st := e.srv.Status(); st.OnlineEndpoints != 0 {
		t.Fatalf("OnlineEndpoints = %d after refused logins", st.OnlineEndpoints)
	}
	c := e.login("alice", "laptop")
	if c.Profile().User != "alice" {
		t.Fatal("good login after bad input failed")
	}
}

func TestLoginEd25519Key(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.addUsers("alice")
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	cfg := e.clientConfig("alice", "laptop")
	cfg.Key = priv
	c, err := Login(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Login with Ed25519: %v", err)
	}
	defer func() { _ = c.Close() }()
	cert, _ := c.Certificate()
	if _, ok := cert.Leaf.PublicKey.(ed25519.PublicKey); !ok {
		t.Fatalf("certificate key is %T, want Ed25519", cert.Leaf.PublicKey)
	}
}

func TestLoginClientErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.addUsers("alice")
	otherCA, err := pki.LoadOrCreateCA(t.TempDir(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// A server that accepts TCP and never answers.
	mute, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mute.Close() })
	go func() {
		for {
			nc, err := mute.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { _ = nc.Close() })
		}
	}()
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)

	for _, tc := range []struct {
		name    string
		mod     func(*ClientConfig)
		timeout time.Duration
		want    error
		substr  string
	}{
		{"untrusted server", func(c *ClientConfig) { c.Roots = otherCA.Pool() }, wait, ErrUntrustedServer, "certificate signed by unknown authority"},
		{"wrong server name", func(c *ClientConfig) { c.ServerName = "access.example.com" }, wait, ErrUntrustedServer, "access.example.com"},
		{"no answer", func(c *ClientConfig) { c.Addr = mute.Addr().String() }, 300 * time.Millisecond, context.DeadlineExceeded, ""},
		{"nothing listening", func(c *ClientConfig) { c.Addr = closedAddr(t) }, wait, nil, "connect"},
		{"bad user name", func(c *ClientConfig) { c.User = "Alice" }, wait, ErrInvalidName, `"Alice"`},
		{"p-384 key", func(c *ClientConfig) { c.Key = p384 }, wait, ErrBadKey, "P-384"},
		{"no roots", func(c *ClientConfig) { c.Roots = nil }, wait, nil, "roots"},
		{"no signal port", func(c *ClientConfig) { c.SignalAddr = netip.MustParseAddrPort("127.0.0.1:0") }, wait, nil, "signal address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := e.clientConfig("alice", "laptop")
			tc.mod(&cfg)
			ctx, cancel := context.WithTimeout(context.Background(), tc.timeout)
			defer cancel()
			c, err := Login(ctx, cfg)
			if err == nil {
				_ = c.Close()
				t.Fatal("Login succeeded")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Login = %v, want %v", err, tc.want)
			}
			prefix := "access: login " + cfg.User + "/laptop: "
			if !strings.Contains(err.Error(), tc.substr) || !strings.HasPrefix(err.Error(), prefix) {
				t.Fatalf("error %q: want prefix %q and %q", err, prefix, tc.substr)
			}
		})
	}
}

func closedAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().String()
	_ = ln.Close()
	return a
}

func TestLoginTimeout(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.LoginTimeout = 300 * time.Millisecond })
	e.addUsers("alice")
	// Handshake done, then silence: the server hangs up.
	r := e.dialRaw()
	r.expectClosed()
	// A TCP connection that never even starts TLS is closed too.
	nc, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = nc.Close() }()
	_ = nc.SetReadDeadline(time.Now().Add(wait))
	if _, err := nc.Read(make([]byte, 1)); err == nil {
		t.Fatal("read from a silent connection succeeded")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("server did not close a connection that never spoke TLS")
	}
	_ = e.login("alice", "laptop").Close()
}

func TestPresencePushes(t *testing.T) {
	t.Parallel()
	// A long Timeout: logout must take effect at once, not when the
	// session would have timed out.
	e := newEnv(t, func(c *Config) { c.Keepalive = time.Second; c.Timeout = time.Minute })
	e.addUsers("alice", "bob", "carol")
	e.buddies([2]string{"alice", "bob"})

	ra, rc := newRecorder(), newRecorder()
	e.login("alice", "laptop", withRecorder(ra), withSignal("127.0.0.1:7000"))
	e.login("carol", "desk", withRecorder(rc))

	bob := e.login("bob", "desk", withSignal("127.0.0.1:7001"))
	ra.expect(t, dev("bob", "desk", wire.StatusOnline, "127.0.0.1:7001"))
	if err := bob.SetStatus(context.Background(), wire.StatusAway); err != nil {
		t.Fatalf("SetStatus: %v", err)
	}
	ra.expect(t, dev("bob", "desk", wire.StatusAway, "127.0.0.1:7001"))
	if err := bob.SetStatus(context.Background(), wire.StatusOnline); err != nil {
		t.Fatalf("SetStatus: %v", err)
	}
	ra.expect(t, dev("bob", "desk", wire.StatusOnline, "127.0.0.1:7001"))
	if err := bob.SetStatus(context.Background(), wire.StatusOffline); err == nil {
		t.Fatal("SetStatus(offline) accepted: logout is how to go offline")
	}
	if err := bob.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ra.expect(t, dev("bob", "desk", wire.StatusOffline, ""))
	if err := bob.SetStatus(context.Background(), wire.StatusAway); !errors.Is(err, ErrClosed) {
		t.Fatalf("SetStatus after Close = %v, want ErrClosed", err)
	}

	// Same-user devices always see each other, buddies or not.
	ra2 := newRecorder()
	phone := e.login("alice", "phone", withRecorder(ra2), withSignal("127.0.0.1:7002"))
	ra.expect(t, dev("alice", "phone", wire.StatusOnline, "127.0.0.1:7002"))
	if !sameDevices(phone.Profile().Devices, []wire.Device{dev("alice", "laptop", wire.StatusOnline, "127.0.0.1:7000")}) {
		t.Fatalf("phone's own devices = %v", phone.Profile().Devices)
	}
	if b := phone.Profile().Buddies; len(b) != 1 || !sameDevices(b[0].Devices, []wire.Device{dev("bob", "desk", wire.StatusOffline, "")}) {
		t.Fatalf("phone's buddies = %+v, want bob/desk offline", b)
	}

	// A second login of alice/phone replaces the first without an offline
	// in between.
	phone2 := e.login("alice", "phone", withSignal("127.0.0.1:7003"))
	ra.expect(t, dev("alice", "phone", wire.StatusOnline, "127.0.0.1:7003"))
	select {
	case <-phone.Done():
		if !errors.Is(phone.Err(), ErrConnectionLost) {
			t.Fatalf("replaced client Err = %v, want ErrConnectionLost", phone.Err())
		}
	case <-time.After(wait):
		t.Fatal("replaced session still connected")
	}

	// Carol is nobody's buddy and alone: her first push is her own new
	// device, proving nothing about alice or bob reached her before it.
	e.login("carol", "phone", withSignal("127.0.0.1:7004"))
	rc.expect(t, dev("carol", "phone", wire.StatusOnline, "127.0.0.1:7004"))
	rc.expectNone(t)

	// And alice/laptop saw no offline for the replaced phone: the next push
	// is the marker below.
	if err := phone2.SetStatus(context.Background(), wire.StatusAway); err != nil {
		t.Fatal(err)
	}
	ra.expect(t, dev("alice", "phone", wire.StatusAway, "127.0.0.1:7003"))
	ra.expectNone(t)
	if st := e.srv.Status(); st.Replaced != 1 || st.PresencePushes == 0 {
		t.Errorf("Status = %+v, want 1 replaced and some pushes", st)
	}
}

func TestPresenceTimeout(t *testing.T) {
	t.Parallel()
	// Short enough to test, with 30 keep-alives of margin for alice on a
	// loaded machine.
	e := newEnv(t, func(c *Config) { c.Keepalive = 100 * time.Millisecond; c.Timeout = 3 * time.Second })
	e.addUsers("alice", "bob")
	e.buddies([2]string{"alice", "bob"})
	ra := newRecorder()
	alice := e.login("alice", "laptop", withRecorder(ra))

	// bob logs in by hand and then says nothing.
	silent := e.dialRaw()
	silent.send(loginRequest(t, "bob", "desk"))
	if _, ok := silent.recv().(*wire.LoginResponse); !ok {
		t.Fatal("bob's login failed")
	}
	ra.expect(t, dev("bob", "desk", wire.StatusOnline, "127.0.0.1:9"))
	ra.expect(t, dev("bob", "desk", wire.StatusOffline, ""))
	silent.expectClosed()
	if st := e.srv.Status(); st.Timeouts != 1 {
		t.Errorf("Timeouts = %d, want 1", st.Timeouts)
	}
	if alice.Err() != nil {
		t.Fatalf("alice, who keeps alive, was disconnected: %v", alice.Err())
	}
}

func TestPresenceProtocolError(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.addUsers("alice", "bob")
	e.buddies([2]string{"alice", "bob"})
	ra := newRecorder()
	e.login("alice", "laptop", withRecorder(ra))
	for _, tc := range []struct {
		name  string
		frame func(next uint64) []byte
	}{
		{"malformed", func(n uint64) []byte { return frame(wire.TypeSetStatus, n, `{"status":"busy"}`) }},
		{"replayed sequence", func(n uint64) []byte { return frame(wire.TypeKeepalive, n-1, `{}`) }},
		{"garbage", func(uint64) []byte { return []byte("\x00\x01garbage-garbage-garbage") }},
		{"call message to server", func(n uint64) []byte { return frame(wire.TypeBye, n, `{"call_id":"x"}`) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.dialRaw()
			r.t = t
			r.send(loginRequest(t, "bob", "desk"))
			r.recv()
			ra.expect(t, dev("bob", "desk", wire.StatusOnline, "127.0.0.1:9"))
			r.send(&wire.Keepalive{})
			if _, ok := r.recv().(*wire.KeepaliveAck); !ok {
				t.Fatal("no keepalive ack")
			}
			r.write(tc.frame(3))
			ra.expect(t, dev("bob", "desk", wire.StatusOffline, ""))
			r.expectClosed()
		})
	}
	if st := e.srv.Status(); st.ProtocolErrors != 4 {
		t.Errorf("ProtocolErrors = %d, want 4", st.ProtocolErrors)
	}
}

// TestSlowReceiver: an endpoint that stops reading is disconnected once its
// queue is full, and meanwhile everyone else keeps getting every push.
func TestSlowReceiver(t *testing.T) {
	t.Parallel()
	var sl *stallListener
	e := startEnvListener(t, t.TempDir(), func(c *Config) { c.Keepalive = time.Second; c.Timeout = time.Minute },
		func(ln net.Listener) net.Listener { sl = newStallListener(ln).(*stallListener); return sl })
	e.addUsers("alice", "bob", "carol")
	e.buddies([2]string{"alice", "bob"}, [2]string{"alice", "carol"})

	bob := e.dialRaw()
	bob.send(loginRequest(t, "bob", "desk"))
	bob.recv()
	if !sl.stall(bob.tc.LocalAddr().String()) {
		t.Fatal("bob's server-side connection not found")
	}

	rc := newRecorder()
	e.login("carol", "desk", withRecorder(rc))
	alice := e.login("alice", "laptop")
	rc.expect(t, dev("alice", "laptop", wire.StatusOnline, "127.0.0.1:9"))

	const n = maxQueue + 100
	statuses := [2]wire.Status{wire.StatusAway, wire.StatusOnline}
	for i := range n {
		if err := alice.SetStatus(context.Background(), statuses[i%2]); err != nil {
			t.Fatalf("SetStatus %d: %v", i, err)
		}
	}
	for i := range n {
		rc.expect(t, dev("alice", "laptop", statuses[i%2], "127.0.0.1:9"))
	}
	waitFor(t, "slow bob disconnected", func() bool { return e.srv.Status().SlowDisconnects == 1 })
	// alice (bob's buddy) learns bob went offline.
	waitFor(t, "bob offline", func() bool {
		en, _, _ := e.srv.store.Get(context.Background(), "bob", "desk")
		return en.Status == presence.StatusOffline
	})
	if !strings.Contains(e.logs.String(), "too slow") {
		t.Error("slow disconnect not logged")
	}
}

func TestQueueOverflowDisconnects(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	a, b := net.Pipe() // nobody reads b: the first write blocks
	defer func() { _ = b.Close() }()
	sess := &session{srv: e.srv, raw: a, wc: wire.NewConn(a, 0)}
	msg := &wire.Presence{Device: dev("bob", "desk", wire.StatusOnline, "")}
	// The writer takes a first batch and blocks on it; the queue then fills.
	n := 0
	for !sess.isSlow() && n < 3*maxQueue {
		sess.enqueue(msg)
		n++
	}
	if !sess.isSlow() {
		t.Fatalf("%d messages queued to a stuck endpoint did not disconnect it", n)
	}
	if n <= maxQueue {
		t.Fatalf("disconnected after %d messages, before the queue (%d) was full", n, maxQueue)
	}
	sess.enqueue(msg) // after close: ignored, must not panic or block
	done := make(chan struct{})
	go func() { sess.writers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(wait):
		t.Fatal("writer still blocked after disconnect")
	}
}

func TestRenewal(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.CredentialTTL = 2 * time.Second })
	e.addUsers("alice", "bob")
	e.buddies([2]string{"alice", "bob"})
	ra := newRecorder()
	e.login("alice", "laptop", withRecorder(ra))
	c := e.login("bob", "desk")
	ra.expect(t, dev("bob", "desk", wire.StatusOnline, "127.0.0.1:9"))

	first, err := c.Certificate()
	if err != nil {
		t.Fatal(err)
	}
	firstExp := c.Expires()
	waitFor(t, "renewal", func() bool { return c.Expires().After(firstExp) })
	renewed, err := c.Certificate()
	if err != nil {
		t.Fatalf("Certificate after renewal: %v", err)
	}
	if bytes.Equal(renewed.Certificate[0], first.Certificate[0]) {
		t.Fatal("Certificate() still returns the first certificate")
	}
	if !bytes.Equal(renewed.Leaf.RawSubjectPublicKeyInfo, first.Leaf.RawSubjectPublicKeyInfo) {
		t.Fatal("renewed certificate binds another key")
	}
	if _, _, err := pki.VerifyEndpoint(renewed.Certificate, e.roots, time.Now()); err != nil {
		t.Fatalf("renewed certificate does not verify: %v", err)
	}
	// The first certificate is dead once its short life is over.
	if _, _, err := pki.VerifyEndpoint(first.Certificate, e.roots, firstExp.Add(time.Second)); !errors.Is(err, pki.ErrUntrusted) {
		t.Fatalf("expired certificate verifies: %v", err)
	}
	later := func() time.Time { return firstExp.Add(time.Second) }
	stale := &Client{cfg: ClientConfig{Now: later}}
	stale.cert.Store(first)
	if _, err := stale.Certificate(); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("Certificate() of an expired credential = %v, want expired", err)
	}

	// A user deleted while online loses the session at the next renewal.
	if err := e.srv.Users().DeleteUser(context.Background(), "bob"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Done():
		if !errors.Is(c.Err(), ErrConnectionLost) {
			t.Fatalf("Err = %v, want ErrConnectionLost", c.Err())
		}
	case <-time.After(wait):
		t.Fatal("deleted user still connected")
	}
	ra.expect(t, dev("bob", "desk", wire.StatusOffline, ""))
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.addUsers("alice", "bob")
	e.buddies([2]string{"alice", "bob"})
	reg := prometheus.NewRegistry()
	if err := e.srv.Register(reg); err != nil {
		t.Fatalf("Register: %v", err)
	}
	if err := e.srv.Register(reg); err == nil {
		t.Fatal("second Register on the same registry succeeded")
	}
	ra := newRecorder()
	e.login("alice", "laptop", withRecorder(ra))
	e.login("bob", "desk")
	ra.expect(t, dev("bob", "desk", wire.StatusOnline, "127.0.0.1:9"))
	cfg := e.clientConfig("bob", "x")
	cfg.Password = "wrong"
	if _, err := Login(context.Background(), cfg); !errors.Is(err, ErrAuthFailed) {
		t.Fatal(err)
	}
	waitFor(t, "push counted", func() bool { return e.srv.Status().PresencePushes >= 1 })

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += "{" + l.GetName() + "=" + l.GetValue() + "}"
			}
			switch {
			case m.Counter != nil:
				got[key] = m.Counter.GetValue()
			case m.Gauge != nil:
				got[key] = m.Gauge.GetValue()
			case m.Histogram != nil:
				got[key+"_count"] = float64(m.Histogram.GetSampleCount())
			}
		}
	}
	for key, want := range map[string]float64{
		"baton_access_logins_total{result=ok}":          2,
		"baton_access_logins_total{result=auth_failed}": 1,
		"baton_access_online_endpoints":                 2,
	} {
		if got[key] != want {
			t.Errorf("%s = %v, want %v", key, got[key], want)
		}
	}
	for _, key := range []string{"baton_access_presence_pushes_total", "baton_access_presence_fanout_seconds_count"} {
		if got[key] < 1 {
			t.Errorf("%s = %v, want >= 1", key, got[key])
		}
	}
}

func TestServeStopsWithContext(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.addUsers("alice")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- e.srv.Serve(ctx, ln) }()
	cfg := e.clientConfig("alice", "second")
	cfg.Addr = ln.Addr().String()
	c, err := Login(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	other := e.login("alice", "first") // on the env's own listener
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve = %v after cancel, want nil", err)
		}
	case <-time.After(wait):
		t.Fatal("Serve did not return after its context ended")
	}
	select {
	case <-c.Done():
	case <-time.After(wait):
		t.Fatal("session of the stopped Serve still connected")
	}
	if other.Err() != nil {
		t.Fatalf("session of the other listener ended: %v", other.Err())
	}
	waitFor(t, "second offline", func() bool {
		en, _, _ := e.srv.store.Get(context.Background(), "alice", "second")
		return en.Status == presence.StatusOffline
	})
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		cfg    Config
		substr string
	}{
		{"no data dir", Config{}, "data dir"},
		{"timeout not above keepalive", Config{DataDir: t.TempDir(), Keepalive: time.Second, Timeout: time.Second}, "must exceed"},
		{"negative ttl", Config{DataDir: t.TempDir(), CredentialTTL: -time.Second}, "positive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewServer(context.Background(), tc.cfg)
			if err == nil {
				_ = s.Close()
				t.Fatal("NewServer succeeded")
			}
			if !strings.Contains(err.Error(), tc.substr) {
				t.Fatalf("error %q does not mention %q", err, tc.substr)
			}
		})
	}
}

// TestCloseLeavesNoGoroutines is not parallel: it counts goroutines.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	before := countGoroutines()
	dir := t.TempDir()
	func() {
		e := startEnv(t, dir, func(c *Config) { c.Keepalive = 50 * time.Millisecond; c.Timeout = 5 * time.Second })
		e.addUsers("alice", "bob")
		e.buddies([2]string{"alice", "bob"})
		ra := newRecorder()
		a := e.login("alice", "laptop", withRecorder(ra))
		b := e.login("bob", "desk", withRecorder(newRecorder()))
		ra.expect(t, dev("bob", "desk", wire.StatusOnline, "127.0.0.1:9"))
		_ = b.SetStatus(context.Background(), wire.StatusAway)
		ra.expect(t, dev("bob", "desk", wire.StatusAway, "127.0.0.1:9"))
		r := e.dialRaw() // a connection stuck before login
		_ = r
		e.stop() // server first: clients see the connection drop
		for _, c := range []*Client{a, b} {
			select {
			case <-c.Done():
			case <-time.After(wait):
				t.Fatal("client still connected after server Close")
			}
			_ = c.Close()
			_ = c.Close()
		}
		if err := e.srv.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		if err := e.srv.Serve(context.Background(), ln); !errors.Is(err, ErrClosed) {
			t.Fatalf("Serve after Close = %v, want ErrClosed", err)
		}
		_ = r.tc.Close()
	}()
	waitFor(t, "goroutines to exit", func() bool { return countGoroutines() <= before })
}
