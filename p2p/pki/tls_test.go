package pki

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
)

// wait bounds every handshake so a bug turns into a failure, not a hang. It
// measures nothing.
const wait = 10 * time.Second

// fixedClock is the clock handed to the TLS configs.
func fixedClock(t time.Time) func() time.Time { return func() time.Time { return t } }

// certOf returns a getCert func serving e's certificate.
func certOf(e *endpoint) func() (*tls.Certificate, error) {
	return func() (*tls.Certificate, error) { return e.tlsCert(), nil }
}

// result is one side of a handshake.
type result struct {
	err   error
	state tls.ConnectionState
}

// handshake runs a real TLS handshake over TCP on 127.0.0.1 between a
// server and a client config, then exchanges one byte each way so that a
// rejection the other side only learns after its own handshake (a TLS 1.3
// server refusing the client's certificate) shows up as that side's error.
func handshake(t *testing.T, server, client *tls.Config) (srv, cli result) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	srvDone := make(chan result, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			srvDone <- result{err: err}
			return
		}
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(wait))
		tc := tls.Server(nc, server)
		if err := tc.HandshakeContext(ctx); err != nil {
			srvDone <- result{err: err}
			return
		}
		err = exchange(tc)
		srvDone <- result{err: err, state: tc.ConnectionState()}
	}()

	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(wait))
	tc := tls.Client(nc, client)
	if err := tc.HandshakeContext(ctx); err != nil {
		cli = result{err: err}
		_ = nc.Close() // let the server's read end
	} else {
		err := exchange(tc)
		cli = result{err: err, state: tc.ConnectionState()}
	}
	select {
	case srv = <-srvDone:
	case <-time.After(wait):
		t.Fatal("server side did not finish")
	}
	return srv, cli
}

// exchange writes one byte and reads one.
func exchange(tc *tls.Conn) error {
	if _, err := tc.Write([]byte{1}); err != nil {
		return err
	}
	var b [1]byte
	_, err := tc.Read(b[:])
	return err
}

func TestEndpointMutualTLS(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	a := issue(t, ca, alice, testNow, time.Hour)
	b := issue(t, ca, bob, testNow, time.Hour)
	clock := fixedClock(testNow)

	srv, cli := handshake(t,
		EndpointServerConfig(certOf(b), ca.Pool(), clock),
		EndpointClientConfig(certOf(a), ca.Pool(), bob, clock))
	if srv.err != nil || cli.err != nil {
		t.Fatalf("handshake: server %v, client %v", srv.err, cli.err)
	}
	if srv.state.Version != tls.VersionTLS13 || cli.state.Version != tls.VersionTLS13 {
		t.Errorf("versions %x/%x, want TLS 1.3", srv.state.Version, cli.state.Version)
	}
	if srv.state.DidResume || cli.state.DidResume {
		t.Error("session resumed: each connection must authenticate afresh")
	}
	if id, err := PeerIdentity(srv.state); err != nil || id != alice {
		t.Errorf("server sees %v (%v), want %v", id, err, alice)
	}
	if id, err := PeerIdentity(cli.state); err != nil || id != bob {
		t.Errorf("client sees %v (%v), want %v", id, err, bob)
	}
}

func TestEndpointTLSRejects(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	forger := newTestCA(t)
	clock := fixedClock(testNow)
	a := issue(t, ca, alice, testNow, time.Hour)
	b := issue(t, ca, bob, testNow, time.Hour)
	expiredA := issue(t, ca, alice, testNow.Add(-3*time.Hour), time.Hour)
	expiredB := issue(t, ca, bob, testNow.Add(-3*time.Hour), time.Hour)
	forgedA := issue(t, forger, alice, testNow, time.Hour)
	forgedB := issue(t, forger, bob, testNow, time.Hour)
	// The access server's own certificate is signed by the same CA but
	// binds no endpoint identity.
	serverDER, err := ca.IssueServer(&b.key.PublicKey, []string{"127.0.0.1"}, testNow, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	accessServer := &tls.Certificate{Certificate: [][]byte{serverDER}, PrivateKey: b.key}

	tests := []struct {
		name   string
		server *tls.Config
		client *tls.Config
		// Which side must fail, and with what. clientErr is checked with
		// errors.Is on the error the failing side's VerifyConnection
		// returned; the other side only sees a TLS alert.
		serverErr error
		clientErr error
		serverMsg string // substring of the server error, if set
	}{
		{
			name:      "client expects another identity",
			server:    EndpointServerConfig(certOf(b), ca.Pool(), clock),
			client:    EndpointClientConfig(certOf(a), ca.Pool(), alice, clock), // expects alice/laptop, server is bob/mobile
			clientErr: ErrIdentityMismatch,
		},
		{
			name:      "client expects another device of the same user",
			server:    EndpointServerConfig(certOf(b), ca.Pool(), clock),
			client:    EndpointClientConfig(certOf(a), ca.Pool(), Identity{User: "bob", Device: "desk"}, clock),
			clientErr: ErrIdentityMismatch,
		},
		{
			name:      "server certificate expired",
			server:    EndpointServerConfig(certOf(expiredB), ca.Pool(), clock),
			client:    EndpointClientConfig(certOf(a), ca.Pool(), bob, clock),
			clientErr: ErrUntrusted,
		},
		{
			name:      "server certificate forged",
			server:    EndpointServerConfig(certOf(forgedB), ca.Pool(), clock),
			client:    EndpointClientConfig(certOf(a), ca.Pool(), bob, clock),
			clientErr: ErrUntrusted,
		},
		{
			name: "server presents the access server certificate",
			server: EndpointServerConfig(func() (*tls.Certificate, error) { return accessServer, nil },
				ca.Pool(), clock),
			client:    EndpointClientConfig(certOf(a), ca.Pool(), bob, clock),
			clientErr: ErrUntrusted,
		},
		{
			name:   "client without a certificate",
			server: EndpointServerConfig(certOf(b), ca.Pool(), clock),
			client: EndpointClientConfig(func() (*tls.Certificate, error) { return &tls.Certificate{}, nil },
				ca.Pool(), bob, clock),
			serverErr: nil, // crypto/tls refuses before VerifyConnection runs
			serverMsg: "certificate",
		},
		{
			name:      "plain TLS client without a certificate",
			server:    EndpointServerConfig(certOf(b), ca.Pool(), clock),
			client:    &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}, //nolint:gosec // the attacker's config
			serverMsg: "certificate",
		},
		{
			name:      "client certificate expired",
			server:    EndpointServerConfig(certOf(b), ca.Pool(), clock),
			client:    EndpointClientConfig(certOf(expiredA), ca.Pool(), bob, clock),
			serverErr: ErrUntrusted,
			serverMsg: "expired",
		},
		{
			name:      "client certificate forged",
			server:    EndpointServerConfig(certOf(b), ca.Pool(), clock),
			client:    EndpointClientConfig(certOf(forgedA), ca.Pool(), bob, clock),
			serverErr: ErrUntrusted,
		},
		{
			name:   "client presents the access server certificate",
			server: EndpointServerConfig(certOf(b), ca.Pool(), clock),
			client: EndpointClientConfig(func() (*tls.Certificate, error) { return accessServer, nil },
				ca.Pool(), bob, clock),
			serverErr: ErrUntrusted,
		},
		{
			name:   "TLS 1.2-only client",
			server: EndpointServerConfig(certOf(b), ca.Pool(), clock),
			client: func() *tls.Config {
				c := EndpointClientConfig(certOf(a), ca.Pool(), bob, clock)
				c.MinVersion, c.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
				return c
			}(),
			serverMsg: "version",
		},
		{
			name:      "getCert fails on the server",
			server:    EndpointServerConfig(func() (*tls.Certificate, error) { return nil, errors.New("no credential yet") }, ca.Pool(), clock),
			client:    EndpointClientConfig(certOf(a), ca.Pool(), bob, clock),
			serverMsg: "no credential yet",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, cli := handshake(t, tt.server, tt.client)
			// A rejected connection fails on both sides.
			if srv.err == nil || cli.err == nil {
				t.Fatalf("connection not refused: server err %v, client err %v", srv.err, cli.err)
			}
			if tt.serverErr != nil && !errors.Is(srv.err, tt.serverErr) {
				t.Errorf("server error = %v, want %v", srv.err, tt.serverErr)
			}
			if tt.serverMsg != "" && !strings.Contains(srv.err.Error(), tt.serverMsg) {
				t.Errorf("server error %q does not mention %q", srv.err, tt.serverMsg)
			}
			if tt.clientErr != nil && !errors.Is(cli.err, tt.clientErr) {
				t.Errorf("client error = %v, want %v", cli.err, tt.clientErr)
			}
		})
	}
}

// TestEndpointTLSMismatchNamesBoth checks the mismatch error says what was
// expected and what the peer proved, for the dialer's logs.
func TestEndpointTLSMismatchNamesBoth(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	clock := fixedClock(testNow)
	a := issue(t, ca, alice, testNow, time.Hour)
	b := issue(t, ca, bob, testNow, time.Hour)
	_, cli := handshake(t,
		EndpointServerConfig(certOf(b), ca.Pool(), clock),
		EndpointClientConfig(certOf(a), ca.Pool(), alice, clock))
	if !errors.Is(cli.err, ErrIdentityMismatch) {
		t.Fatalf("client error = %v, want ErrIdentityMismatch", cli.err)
	}
	if msg := cli.err.Error(); !strings.Contains(msg, "alice/laptop") || !strings.Contains(msg, "bob/mobile") {
		t.Errorf("error %q does not name expected and proved identities", msg)
	}
}

// TestEndpointServerConfigUsesCurrentCertificate checks that a renewed
// credential is served on the next handshake without rebuilding the config.
func TestEndpointServerConfigUsesCurrentCertificate(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	clock := fixedClock(testNow)
	a := issue(t, ca, alice, testNow, time.Hour)
	first := issue(t, ca, bob, testNow, time.Hour)
	renewed := issue(t, ca, bob, testNow, 2*time.Hour)
	var current atomic.Pointer[endpoint]
	current.Store(first)
	server := EndpointServerConfig(func() (*tls.Certificate, error) { return current.Load().tlsCert(), nil }, ca.Pool(), clock)
	client := EndpointClientConfig(certOf(a), ca.Pool(), bob, clock)

	for _, want := range []*endpoint{first, renewed} {
		current.Store(want)
		srv, cli := handshake(t, server, client)
		if srv.err != nil || cli.err != nil {
			t.Fatalf("handshake: server %v, client %v", srv.err, cli.err)
		}
		if got := cli.state.PeerCertificates[0]; got.SerialNumber.Cmp(want.cert.SerialNumber) != 0 {
			t.Errorf("server presented serial %v, want %v", got.SerialNumber, want.cert.SerialNumber)
		}
	}
}

// TestEndpointTLSClockDecides checks that the configs judge validity by the
// injected clock, not the wall clock: the same credentials fail once the
// clock is past NotAfter.
func TestEndpointTLSClockDecides(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	a := issue(t, ca, alice, testNow, time.Hour)
	b := issue(t, ca, bob, testNow, time.Hour)
	late := fixedClock(testNow.Add(2 * time.Hour))
	srv, cli := handshake(t,
		EndpointServerConfig(certOf(b), ca.Pool(), fixedClock(testNow)),
		EndpointClientConfig(certOf(a), ca.Pool(), bob, late))
	if !errors.Is(cli.err, ErrUntrusted) {
		t.Errorf("client with a late clock: err = %v, want ErrUntrusted", cli.err)
	}
	if srv.err == nil {
		t.Error("server: handshake succeeded")
	}
}

func TestPeerIdentityWithoutCertificate(t *testing.T) {
	t.Parallel()
	if _, err := PeerIdentity(tls.ConnectionState{}); !errors.Is(err, ErrUntrusted) {
		t.Errorf("PeerIdentity(no cert) = %v, want ErrUntrusted", err)
	}
	if _, err := PeerIdentity(tls.ConnectionState{PeerCertificates: []*x509.Certificate{{}}}); !errors.Is(err, ErrNoIdentity) {
		t.Errorf("PeerIdentity(cert without identity) = %v, want ErrNoIdentity", err)
	}
}

func TestIssueServer(t *testing.T) {
	t.Parallel()
	// The access server runs against the wall clock here: the standard
	// client verifies with time.Now.
	now := time.Now()
	ca, err := LoadOrCreateCA(t.TempDir(), now)
	if err != nil {
		t.Fatal(err)
	}
	key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	der, err := ca.IssueServer(&key.PublicKey, []string{"127.0.0.1", "access.example.test"}, now, time.Hour)
	if err != nil {
		t.Fatalf("IssueServer: %v", err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.IPAddresses) != 1 || !c.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) {
		t.Errorf("IPAddresses = %v", c.IPAddresses)
	}
	if len(c.DNSNames) != 1 || c.DNSNames[0] != "access.example.test" {
		t.Errorf("DNSNames = %v", c.DNSNames)
	}
	if len(c.URIs) != 0 {
		t.Errorf("server certificate carries URIs %v", c.URIs)
	}
	server := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
	}
	tests := []struct {
		name       string
		roots      *x509.CertPool
		serverName string
		ok         bool
	}{
		{"IP address", ca.Pool(), "127.0.0.1", true},
		{"DNS name", ca.Pool(), "access.example.test", true},
		{"name not in the certificate", ca.Pool(), "other.example.test", false},
		{"another CA", newTestCA(t).Pool(), "127.0.0.1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, cli := handshake(t, server, &tls.Config{RootCAs: tt.roots, ServerName: tt.serverName, MinVersion: tls.VersionTLS13})
			if tt.ok {
				if srv.err != nil || cli.err != nil {
					t.Fatalf("handshake: server %v, client %v", srv.err, cli.err)
				}
				return
			}
			var verr *tls.CertificateVerificationError
			if !errors.As(cli.err, &verr) {
				t.Errorf("client error = %v, want a certificate verification error", cli.err)
			}
		})
	}
}

func BenchmarkEndpointHandshake(b *testing.B) {
	ca, err := LoadOrCreateCA(b.TempDir(), testNow)
	if err != nil {
		b.Fatal(err)
	}
	mk := func(id Identity) *tls.Certificate {
		key, err := NewKey()
		if err != nil {
			b.Fatal(err)
		}
		der, _, err := ca.IssueEndpoint(&key.PublicKey, id, testNow, time.Hour)
		if err != nil {
			b.Fatal(err)
		}
		return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	}
	ac, bc := mk(alice), mk(bob)
	clock := fixedClock(testNow)
	server := EndpointServerConfig(func() (*tls.Certificate, error) { return bc, nil }, ca.Pool(), clock)
	// net.Pipe is unbuffered: a session ticket written after the client's
	// Handshake returned would block forever (resumption over TCP:
	// BenchmarkEndpointHandshakeResume).
	server.SessionTicketsDisabled = true
	client := EndpointClientConfig(func() (*tls.Certificate, error) { return ac, nil }, ca.Pool(), bob, clock)
	b.ReportAllocs()
	for b.Loop() {
		c1, c2 := net.Pipe()
		errc := make(chan error, 1)
		go func() {
			errc <- tls.Server(c2, server).Handshake()
		}()
		if err := tls.Client(c1, client).Handshake(); err != nil {
			b.Fatal(err)
		}
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
		_ = c1.Close()
		_ = c2.Close()
	}
}
