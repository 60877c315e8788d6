package pki

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"
)

// tlsServer accepts connections with one server config (so its session
// ticket keys persist) and reports each one's handshake.
func tlsServer(t *testing.T, cfg *tls.Config) (string, <-chan result) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	out := make(chan result, 16)
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				_ = nc.SetDeadline(time.Now().Add(wait))
				tc := tls.Server(nc, cfg)
				if err := tc.Handshake(); err != nil {
					out <- result{err: err}
					return
				}
				err := exchange(tc)
				out <- result{err: err, state: tc.ConnectionState()}
			}()
		}
	}()
	return ln.Addr().String(), out
}

// dialTLS runs one client handshake to addr and its server side's result.
func dialTLS(t *testing.T, addr string, cfg *tls.Config, srv <-chan result) (s, c result) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = nc.SetDeadline(time.Now().Add(wait))
	tc := tls.Client(nc, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		c = result{err: err}
	} else {
		c = result{err: exchange(tc), state: tc.ConnectionState()}
	}
	_ = nc.Close()
	select {
	case s = <-srv:
	case <-time.After(wait):
		t.Fatal("server side did not finish")
	}
	return s, c
}

// TestIdentitySessionCacheResumes: the second connection to the same peer
// resumes, and both sides still see the identities of the full handshake.
func TestIdentitySessionCacheResumes(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	a := issue(t, ca, alice, testNow, time.Hour)
	b := issue(t, ca, bob, testNow, time.Hour)
	clock := fixedClock(testNow)
	addr, srv := tlsServer(t, EndpointServerConfig(certOf(b), ca.Pool(), clock))
	cache := tls.NewLRUClientSessionCache(8)
	for i, wantResumed := range []bool{false, true, true} {
		cfg := EndpointClientConfig(certOf(a), ca.Pool(), bob, clock)
		cfg.ClientSessionCache = IdentitySessionCache(cache, bob, netip.MustParseAddrPort(addr))
		s, c := dialTLS(t, addr, cfg, srv)
		if s.err != nil || c.err != nil {
			t.Fatalf("connection %d: server %v, client %v", i, s.err, c.err)
		}
		if c.state.DidResume != wantResumed || s.state.DidResume != wantResumed {
			t.Errorf("connection %d: resumed client %v server %v, want %v", i, c.state.DidResume, s.state.DidResume, wantResumed)
		}
		if id, err := PeerIdentity(s.state); err != nil || id != alice {
			t.Errorf("connection %d: server sees %v (%v), want %v", i, id, err, alice)
		}
		if id, err := PeerIdentity(c.state); err != nil || id != bob {
			t.Errorf("connection %d: client sees %v (%v), want %v", i, id, err, bob)
		}
	}
}

// TestIdentitySessionCacheIsPerAddress: a ticket is offered only at the
// address it came from. Two servers at two addresses prove the same
// identity with the same ticket keys (a peer that moved, its old ticket
// still good): the first dial to the new address is a full handshake, the
// next one there resumes, and the old address still resumes with its own.
// Without the address in the key, crypto/tls (which keys by server name
// when one is set) would offer the old address's ticket at the new one.
func TestIdentitySessionCacheIsPerAddress(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	a := issue(t, ca, alice, testNow, time.Hour)
	b := issue(t, ca, bob, testNow, time.Hour)
	clock := fixedClock(testNow)
	scfg := EndpointServerConfig(certOf(b), ca.Pool(), clock)
	oldAddr, oldSrv := tlsServer(t, scfg)
	newAddr, newSrv := tlsServer(t, scfg) // same config: same ticket keys
	cache := &countingCache{ClientSessionCache: tls.NewLRUClientSessionCache(8)}
	for i, st := range []struct {
		addr    string
		srv     <-chan result
		resumed bool
	}{
		{oldAddr, oldSrv, false},
		{oldAddr, oldSrv, true},
		{newAddr, newSrv, false}, // moved: a full handshake, no ticket offered
		{newAddr, newSrv, true},
		{oldAddr, oldSrv, true},
	} {
		cfg := EndpointClientConfig(certOf(a), ca.Pool(), bob, clock)
		cfg.ClientSessionCache = IdentitySessionCache(cache, bob, netip.MustParseAddrPort(st.addr))
		before := cache.hits
		s, c := dialTLS(t, st.addr, cfg, st.srv)
		if s.err != nil || c.err != nil {
			t.Fatalf("connection %d to %s: server %v, client %v", i, st.addr, s.err, c.err)
		}
		if c.state.DidResume != st.resumed || s.state.DidResume != st.resumed {
			t.Errorf("connection %d to %s: resumed client %v server %v, want %v", i, st.addr, c.state.DidResume, s.state.DidResume, st.resumed)
		}
		if offered := cache.hits > before; offered != st.resumed {
			t.Errorf("connection %d to %s: a ticket was offered: %v, want %v", i, st.addr, offered, st.resumed)
		}
	}
}

// TestResumptionKeepsChecks: a session ticket never weakens what a
// connection proves. Each case makes a first, full connection to bob's
// server with a shared cache, then a second one that would resume, and
// checks that the second is refused as a full handshake would be.
func TestResumptionKeepsChecks(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	forger := newTestCA(t)
	a := issue(t, ca, alice, testNow, time.Hour)
	b := issue(t, ca, bob, testNow, time.Hour)
	carol := Identity{User: "carol", Device: "desk"}
	tests := []struct {
		name string
		// second builds the second connection's client config, given the
		// cache the first connection filled (unwrapped) and the server's
		// address.
		second func(cache tls.ClientSessionCache, addr string) *tls.Config
		want   error
		// offered: the second connection offers the first one's ticket
		// (so the refusal is the resumed handshake's).
		offered bool
	}{
		{"another identity is not offered bob's ticket", func(cache tls.ClientSessionCache, addr string) *tls.Config {
			cfg := EndpointClientConfig(certOf(a), ca.Pool(), carol, fixedClock(testNow))
			cfg.ClientSessionCache = IdentitySessionCache(cache, carol, netip.MustParseAddrPort(addr))
			return cfg
		}, ErrIdentityMismatch, false},
		// A cache view filed under bob and a server name that is not
		// carol's (crypto/tls files tickets by server name: ServerName(
		// carol) alone would find none) offer bob's ticket to a dial
		// expecting carol: the resumed handshake still checks the
		// identity and refuses.
		{"the identity is checked on a resumed connection", func(cache tls.ClientSessionCache, addr string) *tls.Config {
			cfg := EndpointClientConfig(certOf(a), ca.Pool(), carol, fixedClock(testNow))
			cfg.ServerName = ServerName(bob)                                                         // wrong on purpose
			cfg.ClientSessionCache = IdentitySessionCache(cache, bob, netip.MustParseAddrPort(addr)) // wrong on purpose
			return cfg
		}, ErrIdentityMismatch, true},
		{"the chain is checked on a resumed connection", func(cache tls.ClientSessionCache, addr string) *tls.Config {
			cfg := EndpointClientConfig(certOf(a), forger.Pool(), bob, fixedClock(testNow))
			cfg.ClientSessionCache = IdentitySessionCache(cache, bob, netip.MustParseAddrPort(addr))
			return cfg
		}, ErrUntrusted, true},
		{"an expired peer certificate is refused", func(cache tls.ClientSessionCache, addr string) *tls.Config {
			late := fixedClock(testNow.Add(2 * time.Hour))
			cfg := EndpointClientConfig(certOf(a), ca.Pool(), bob, late)
			cfg.ClientSessionCache = IdentitySessionCache(cache, bob, netip.MustParseAddrPort(addr))
			return cfg
		}, ErrUntrusted, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clock := fixedClock(testNow)
			addr, srv := tlsServer(t, EndpointServerConfig(certOf(b), ca.Pool(), clock))
			cache := &countingCache{ClientSessionCache: tls.NewLRUClientSessionCache(8)}
			first := EndpointClientConfig(certOf(a), ca.Pool(), bob, clock)
			first.ClientSessionCache = IdentitySessionCache(cache, bob, netip.MustParseAddrPort(addr))
			if s, c := dialTLS(t, addr, first, srv); s.err != nil || c.err != nil {
				t.Fatalf("first connection: server %v, client %v", s.err, c.err)
			}
			before := cache.hits
			_, c := dialTLS(t, addr, tt.second(cache, addr), srv)
			if !errors.Is(c.err, tt.want) {
				t.Fatalf("second connection: client error %v, want %v", c.err, tt.want)
			}
			if offered := cache.hits > before; offered != tt.offered {
				t.Errorf("second connection offered the first one's ticket: %v, want %v", offered, tt.offered)
			}
		})
	}
}

// TestResumptionServerKeepsChecks: the server side re-verifies a resuming
// client's certificate chain too (its roots no longer trust the CA that
// issued it: the connection is refused).
func TestResumptionServerKeepsChecks(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	a := issue(t, ca, alice, testNow, time.Hour)
	b := issue(t, ca, bob, testNow, time.Hour)
	clock := fixedClock(testNow)
	pool := ca.Pool()
	scfg := EndpointServerConfig(certOf(b), pool, clock)
	addr, srv := tlsServer(t, scfg)
	cache := tls.NewLRUClientSessionCache(8)
	dial := func() (result, result) {
		cfg := EndpointClientConfig(certOf(a), ca.Pool(), bob, clock)
		cfg.ClientSessionCache = IdentitySessionCache(cache, bob, netip.MustParseAddrPort(addr))
		return dialTLS(t, addr, cfg, srv)
	}
	if s, c := dial(); s.err != nil || c.err != nil {
		t.Fatalf("first connection: server %v, client %v", s.err, c.err)
	}
	// The server's verifier (VerifyConnection closes over pool) now
	// trusts no CA.
	*pool = *x509.NewCertPool()
	s, _ := dial()
	if !errors.Is(s.err, ErrUntrusted) {
		t.Fatalf("second connection: server error %v, want %v", s.err, ErrUntrusted)
	}
}

// countingCache counts the Gets that found a ticket.
type countingCache struct {
	tls.ClientSessionCache
	hits int
}

func (c *countingCache) Get(key string) (*tls.ClientSessionState, bool) {
	cs, ok := c.ClientSessionCache.Get(key)
	if ok && cs != nil {
		c.hits++
	}
	return cs, ok
}

// BenchmarkEndpointHandshakeResume is one mutually authenticated signaling
// handshake on loopback, both sides' CPU in one process (as two devices
// of one gateway calling each other): a full handshake, and one resumed
// with a ticket from IdentitySessionCache.
func BenchmarkEndpointHandshakeResume(b *testing.B) {
	ca := newTestCA(b)
	ac := issue(b, ca, alice, testNow, time.Hour)
	bc := issue(b, ca, bob, testNow, time.Hour)
	clock := fixedClock(testNow)
	for _, resume := range []bool{false, true} {
		name := "full"
		if resume {
			name = "resumed"
		}
		b.Run(name, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			scfg := EndpointServerConfig(certOf(bc), ca.Pool(), clock)
			go func() {
				for {
					nc, err := ln.Accept()
					if err != nil {
						return
					}
					go func() {
						defer nc.Close()
						tc := tls.Server(nc, scfg)
						if tc.Handshake() == nil {
							_ = exchange(tc)
						}
					}()
				}
			}()
			cache := tls.NewLRUClientSessionCache(8)
			resumed, n := 0, 0
			b.ReportAllocs()
			for b.Loop() {
				cfg := EndpointClientConfig(certOf(ac), ca.Pool(), bob, clock)
				if resume {
					cfg.ClientSessionCache = IdentitySessionCache(cache, bob, netip.MustParseAddrPort(ln.Addr().String()))
				}
				nc, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					b.Fatal(err)
				}
				tc := tls.Client(nc, cfg)
				if err := tc.Handshake(); err != nil {
					b.Fatal(err)
				}
				if err := exchange(tc); err != nil {
					b.Fatal(err)
				}
				if tc.ConnectionState().DidResume {
					resumed++
				}
				n++
				_ = tc.Close()
			}
			// The first handshake of "resumed" is a full one.
			b.ReportMetric(float64(resumed)/float64(n), "resumed/op")
		})
	}
}
