package access

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-voice/baton/p2p/pki"
	"github.com/baton-voice/baton/p2p/wire"
)

// wait bounds every wait for something that should happen. Generous: tests
// check behaviour on a loaded 2-core machine under -race, never speed.
const wait = 15 * time.Second

// cheapArgon makes password hashing fast for fuzzing and benchmarks, whose
// subject is the protocol, not the hash. Unit and integration tests keep the
// production parameters.
var cheapArgon = argonParams{memoryKiB: 64, time: 1, threads: 1}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type testEnv struct {
	t     testing.TB
	srv   *Server
	addr  string
	roots *x509.CertPool
	dir   string
	logs  *syncBuffer
	stop  func()
}

// newEnv starts a server on 127.0.0.1 with a fresh data dir. mod may adjust
// the config (the data dir is already set).
func newEnv(t testing.TB, mod func(*Config)) *testEnv {
	t.Helper()
	return startEnv(t, t.TempDir(), mod)
}

func startEnv(t testing.TB, dir string, mod func(*Config)) *testEnv {
	t.Helper()
	return startEnvListener(t, dir, mod, nil)
}

// startEnvListener is startEnv with the listener wrapped by wrap (if set).
func startEnvListener(t testing.TB, dir string, mod func(*Config), wrap func(net.Listener) net.Listener) *testEnv {
	t.Helper()
	logs := &syncBuffer{}
	cfg := Config{
		DataDir: dir,
		Logger:  slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := NewServer(context.Background(), cfg)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := ln.Addr().String()
	if wrap != nil {
		ln = wrap(ln)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background(), ln) }()
	var once sync.Once
	e := &testEnv{t: t, srv: srv, addr: addr, roots: srv.CA().Pool(), dir: dir, logs: logs}
	e.stop = func() {
		once.Do(func() {
			if err := srv.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			select {
			case err := <-served:
				// A test that never dials can close the server before
				// the goroutine above runs Serve, which then returns
				// ErrClosed as documented; any other error is a bug.
				if err != nil && !errors.Is(err, ErrClosed) {
					t.Errorf("Serve returned %v after Close, want nil (or ErrClosed if Serve ran after Close)", err)
				}
			case <-time.After(wait):
				t.Errorf("Serve did not return after Close")
			}
		})
	}
	t.Cleanup(e.stop)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	return e
}

func password(user string) string { return "pw-" + user }

func (e *testEnv) addUsers(users ...string) {
	e.t.Helper()
	for _, u := range users {
		if err := e.srv.Users().AddUser(context.Background(), u, password(u)); err != nil {
			e.t.Fatalf("AddUser(%s): %v", u, err)
		}
	}
}

func (e *testEnv) buddies(pairs ...[2]string) {
	e.t.Helper()
	for _, p := range pairs {
		if err := e.srv.Users().AddBuddy(context.Background(), p[0], p[1]); err != nil {
			e.t.Fatalf("AddBuddy(%s, %s): %v", p[0], p[1], err)
		}
	}
}

// recorder collects presence pushes delivered to OnPresence.
type recorder struct {
	ch chan wire.Device
}

func newRecorder() *recorder { return &recorder{ch: make(chan wire.Device, 100000)} }

func (r *recorder) on(d wire.Device) { r.ch <- d }

func showDevice(d wire.Device) string {
	s := d.User + "/" + d.Device + " " + string(d.Status)
	if d.SignalAddr != "" {
		s += " @" + d.SignalAddr
	}
	return s
}

// expect waits for the next push and checks it (SinceUnix is not compared).
func (r *recorder) expect(t *testing.T, want wire.Device) {
	t.Helper()
	select {
	case got := <-r.ch:
		got.SinceUnix = 0
		if got != want {
			t.Fatalf("push = %s, want %s", showDevice(got), showDevice(want))
		}
	case <-time.After(wait):
		t.Fatalf("no push within %v, want %s", wait, showDevice(want))
	}
}

// expectNone checks nothing is pending. Use it after a marker push proved
// that everything sent before it has been delivered.
func (r *recorder) expectNone(t *testing.T) {
	t.Helper()
	select {
	case got := <-r.ch:
		t.Fatalf("unexpected push %s", showDevice(got))
	default:
	}
}

type loginOpt func(*ClientConfig)

func withSignal(s string) loginOpt {
	return func(c *ClientConfig) { c.SignalAddr = netip.MustParseAddrPort(s) }
}

// withLocal makes the login come from source address a (127.0.0.0/8 is
// all loopback on Linux).
func withLocal(a string) loginOpt {
	return func(c *ClientConfig) { c.LocalAddr = netip.MustParseAddr(a) }
}

func withStatus(s wire.Status) loginOpt { return func(c *ClientConfig) { c.Status = s } }

func withRecorder(r *recorder) loginOpt { return func(c *ClientConfig) { c.OnPresence = r.on } }

func (e *testEnv) clientConfig(user, device string, opts ...loginOpt) ClientConfig {
	cfg := ClientConfig{
		Addr:       e.addr,
		Roots:      e.roots,
		User:       user,
		Device:     device,
		Password:   password(user),
		SignalAddr: netip.MustParseAddrPort("127.0.0.1:9"),
	}
	for _, o := range opts {
		o(&cfg)
	}
	return cfg
}

func (e *testEnv) login(user, device string, opts ...loginOpt) *Client {
	e.t.Helper()
	return e.loginT(e.t, user, device, opts...)
}

// loginT is login reporting to t (inside a fuzz function, not to the F).
func (e *testEnv) loginT(t testing.TB, user, device string, opts ...loginOpt) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, err := Login(ctx, e.clientConfig(user, device, opts...))
	if err != nil {
		t.Fatalf("Login(%s/%s): %v", user, device, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// rawConn is a hand-driven protocol connection, for what a well-behaved
// Client never sends.
type rawConn struct {
	t  testing.TB
	tc *tls.Conn
	wc *wire.Conn
}

func (e *testEnv) dialRaw() *rawConn {
	e.t.Helper()
	d := tls.Dialer{Config: &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: e.roots, ServerName: "127.0.0.1"}}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	nc, err := d.DialContext(ctx, "tcp", e.addr)
	if err != nil {
		e.t.Fatalf("dial: %v", err)
	}
	e.t.Cleanup(func() { _ = nc.Close() })
	tc := nc.(*tls.Conn)
	return &rawConn{t: e.t, tc: tc, wc: wire.NewConn(tc, 0)}
}

func pkix(t testing.TB, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func loginRequest(t testing.TB, user, device string) *wire.LoginRequest {
	return &wire.LoginRequest{
		User: user, Device: device, Password: password(user),
		PublicKey: pkix(t, newKey(t).Public()), SignalAddr: "127.0.0.1:9",
	}
}

func (r *rawConn) send(m wire.Message) {
	r.t.Helper()
	if err := r.wc.Send(m, wait); err != nil {
		r.t.Fatalf("send %s: %v", m.Type(), err)
	}
}

func (r *rawConn) write(b []byte) {
	r.t.Helper()
	_ = r.tc.SetWriteDeadline(time.Now().Add(wait))
	if _, err := r.tc.Write(b); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

func (r *rawConn) recv() wire.Message {
	r.t.Helper()
	_ = r.tc.SetReadDeadline(time.Now().Add(wait))
	m, err := r.wc.Recv()
	if err != nil {
		r.t.Fatalf("recv: %v", err)
	}
	return m
}

// expectError reads the next message: an Error with code whose message
// contains substr.
func (r *rawConn) expectError(code wire.ErrorCode, substr string) {
	r.t.Helper()
	m := r.recv()
	e, ok := m.(*wire.Error)
	if !ok {
		r.t.Fatalf("got %s, want error %s", m.Type(), code)
	}
	if e.Code != code || !strings.Contains(e.Message, substr) {
		r.t.Fatalf("got error %s %q, want %s containing %q", e.Code, e.Message, code, substr)
	}
}

// expectClosed waits for the server to close the connection.
func (r *rawConn) expectClosed() {
	r.t.Helper()
	_ = r.tc.SetReadDeadline(time.Now().Add(wait))
	for {
		m, err := r.wc.Recv()
		if err == nil {
			continue // e.g. presence pushes still in flight
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			r.t.Fatalf("server did not close the connection within %v", wait)
		}
		_ = m
		return
	}
}

// frame builds raw frame bytes, for malformed input.
func frame(typ wire.Type, seq uint64, payload string) []byte {
	return wire.AppendFrame(nil, wire.Frame{Type: typ, Seq: seq, Payload: []byte(payload)})
}

func dev(user, device string, st wire.Status, addr string) wire.Device {
	return wire.Device{User: user, Device: device, Status: st, SignalAddr: addr}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func countGoroutines() int { return runtime.NumGoroutine() }

// stallListener hands out connections whose writes can be frozen, to play
// an endpoint that stops reading without depending on kernel buffer sizes.
type stallListener struct {
	net.Listener
	mu    sync.Mutex
	conns map[string]*stallConn // by remote address
}

func newStallListener(ln net.Listener) net.Listener {
	return &stallListener{Listener: ln, conns: make(map[string]*stallConn)}
}

func (l *stallListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	c := &stallConn{Conn: nc, closed: make(chan struct{})}
	l.mu.Lock()
	l.conns[nc.RemoteAddr().String()] = c
	l.mu.Unlock()
	return c, nil
}

// stall freezes writes on the server side of the connection whose client
// end has address remote.
func (l *stallListener) stall(remote string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	c, ok := l.conns[remote]
	if ok {
		c.stalled.Store(true)
	}
	return ok
}

type stallConn struct {
	net.Conn
	stalled   atomic.Bool
	closeOnce sync.Once
	closed    chan struct{}
}

func (c *stallConn) Write(p []byte) (int, error) {
	if c.stalled.Load() {
		<-c.closed
		return 0, net.ErrClosed
	}
	return c.Conn.Write(p)
}

func (c *stallConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return c.Conn.Close()
}
