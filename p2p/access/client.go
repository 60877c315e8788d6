package access

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/baton-voice/baton/p2p/pki"
	"github.com/baton-voice/baton/p2p/wire"
)

// DefaultLoginWait bounds Login when ctx has no deadline.
const DefaultLoginWait = 30 * time.Second

// minRenewDelay keeps a client whose renewals go unanswered from asking in a
// tight loop as its certificate nears expiry.
const minRenewDelay = 250 * time.Millisecond

// ClientConfig configures an endpoint's connection to the access server.
type ClientConfig struct {
	// Addr is the access server's host:port.
	Addr string
	// Roots verifies the access server's certificate: the access CA
	// (pki.LoadCAFile of its ca.crt). Required.
	Roots *x509.CertPool
	// ServerName is the name checked in the server's certificate; empty
	// means the host part of Addr.
	ServerName string
	// User, Device and Password identify and authenticate the endpoint.
	User, Device, Password string
	// Gateway, when set, names the gateway credential to log in with
	// (issue 8 §1): Password is then the gateway's secret, User must be
	// delegated to it, and the certificate says the device is bridged. A
	// user not delegated is an error matching ErrNotDelegated.
	Gateway string
	// LocalAddr, if set, is the source IP of the connection to the access
	// server; otherwise the kernel picks it. The access server's login
	// limits are kept per source address.
	LocalAddr netip.Addr
	// SignalAddr is where the endpoint accepts direct signaling. An
	// unspecified IP (0.0.0.0:port) asks the server to publish the address
	// it sees the endpoint connect from, with this port.
	SignalAddr netip.AddrPort
	// Status is the initial status: wire.StatusOnline (the default when
	// empty) or wire.StatusAway.
	Status wire.Status
	// Key is the endpoint's key pair, ECDSA P-256 (or Ed25519). Only its
	// public half is sent; the certificate issued binds it. Nil means a
	// fresh P-256 key for this login.
	Key crypto.Signer
	// OnPresence, if set, is called for every presence push, in the order
	// the server sent them, from one goroutine, never concurrently. It
	// must not call Close (Close waits for it); anything else is fine.
	OnPresence func(wire.Device)
	// Logger receives the client's logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock for certificate validity (nil = time.Now).
	Now func() time.Time
}

// Client is a logged-in endpoint's session with the access server: it keeps
// the session alive, renews the certificate at about half its lifetime and
// delivers presence pushes.
type Client struct {
	cfg       ClientConfig
	id        pki.Identity
	log       *slog.Logger
	raw       net.Conn
	wc        *wire.Conn
	keepalive time.Duration
	profile   wire.Profile
	observed  netip.AddrPort
	pubDER    []byte

	cert    atomic.Pointer[tls.Certificate]
	renewed chan struct{} // capacity 1: the certificate was renewed

	done    chan struct{} // closed when the session is over
	endOnce sync.Once
	err     error // set before done is closed
	closing atomic.Bool

	nmu    sync.Mutex
	nqueue []wire.Device
	nwake  chan struct{} // capacity 1

	closeOnce sync.Once
	wg        sync.WaitGroup
}

// Login connects to the access server, authenticates, and returns the
// session. A wrong user or password is an error matching ErrAuthFailed; a
// server whose certificate does not verify against cfg.Roots matches
// ErrUntrustedServer; a login refused by the server's failed-login limiter
// matches ErrRateLimited (errors.As to *RateLimitedError for how long to
// wait).
func Login(ctx context.Context, cfg ClientConfig) (*Client, error) {
	id := pki.Identity{User: cfg.User, Device: cfg.Device}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("access: login %s: "+format, append([]any{id}, args...)...)
	}
	if err := checkClientConfig(&cfg); err != nil {
		return nil, fail("%w", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(cfg.Key.Public())
	if err != nil {
		return nil, fail("%w: %w", ErrBadKey, err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultLoginWait)
		defer cancel()
	}

	d := tls.Dialer{NetDialer: &net.Dialer{}, Config: &tls.Config{
		MinVersion: tls.VersionTLS13,
		RootCAs:    cfg.Roots,
		ServerName: cfg.ServerName,
		Time:       cfg.Now,
	}}
	if cfg.LocalAddr.IsValid() {
		d.NetDialer.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(cfg.LocalAddr, 0))
	}
	nc, err := d.DialContext(ctx, "tcp", cfg.Addr)
	if err != nil {
		var cve *tls.CertificateVerificationError
		if errors.As(err, &cve) {
			return nil, fail("%s: %w: %w", cfg.Addr, ErrUntrustedServer, err)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
			// The access server closes connections beyond its caps on
			// connections not logged in before any TLS.
			return nil, fail("connect %s: server closed the connection before TLS completed (at its cap on connections not logged in yet?): %w", cfg.Addr, err)
		}
		return nil, fail("connect %s: %w", cfg.Addr, err)
	}
	tc := nc.(*tls.Conn)
	raw := tc.NetConn()
	ok := false
	defer func() {
		if !ok {
			_ = raw.Close()
		}
	}()
	// Cancelling ctx aborts the exchange; its deadline bounds it.
	stop := context.AfterFunc(ctx, func() { _ = raw.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	dl, _ := ctx.Deadline()
	_ = raw.SetDeadline(dl)

	wc := wire.NewConn(tc, 0)
	req := &wire.LoginRequest{
		User: cfg.User, Device: cfg.Device, Password: cfg.Password,
		PublicKey: pubDER, SignalAddr: cfg.SignalAddr.String(), Status: cfg.Status,
		Gateway: cfg.Gateway,
	}
	if err := wc.Send(req, 0); err != nil {
		return nil, fail("%w", ctxErr(ctx, err))
	}
	m, err := wc.Recv()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fail("server closed the connection without answering")
		}
		return nil, fail("%w", ctxErr(ctx, err))
	}
	var resp *wire.LoginResponse
	switch m := m.(type) {
	case *wire.LoginResponse:
		resp = m
	case *wire.Error:
		switch m.Code {
		case wire.CodeAuthFailed:
			if cfg.Gateway != "" {
				return nil, fail("gateway %s: wrong gateway name or secret (%w)", cfg.Gateway, ErrAuthFailed)
			}
			return nil, fail("%w", ErrAuthFailed)
		case wire.CodeNotDelegated:
			return nil, fail("%w", &NotDelegatedError{Gateway: cfg.Gateway, User: cfg.User, Device: cfg.Device})
		case wire.CodeRateLimited:
			return nil, fail("%w", &RateLimitedError{RetryAfter: time.Duration(m.RetryAfterMS) * time.Millisecond})
		}
		return nil, fail("refused: %w", wire.AsError(m))
	default:
		return nil, fail("%w: %s instead of %s", ErrBadResponse, m.Type(), wire.TypeLoginResponse)
	}
	if !stop() {
		return nil, fail("%w", ctx.Err())
	}
	_ = raw.SetDeadline(time.Time{})

	c := &Client{
		cfg:       cfg,
		id:        id,
		log:       cfg.Logger.With("component", "access-client", "user", id.User, "device", id.Device),
		raw:       raw,
		wc:        wc,
		keepalive: time.Duration(resp.KeepaliveMS) * time.Millisecond,
		profile:   resp.Profile,
		pubDER:    pubDER,
		renewed:   make(chan struct{}, 1),
		done:      make(chan struct{}),
		nwake:     make(chan struct{}, 1),
	}
	c.observed, _ = netip.ParseAddrPort(resp.ObservedAddr) // validated by wire
	if err := c.setCert(resp.Certificate); err != nil {
		return nil, fail("%w", err)
	}
	ok = true
	c.wg.Add(2)
	go c.read()
	go c.loop()
	if cfg.OnPresence != nil {
		c.wg.Add(1)
		go c.notify()
	}
	return c, nil
}

func checkClientConfig(cfg *ClientConfig) error {
	if !pki.ValidName(cfg.User) {
		return fmt.Errorf("%w: user %q", ErrInvalidName, cfg.User)
	}
	if !pki.ValidName(cfg.Device) {
		return fmt.Errorf("%w: device %q", ErrInvalidName, cfg.Device)
	}
	if cfg.Gateway != "" && !pki.ValidName(cfg.Gateway) {
		return fmt.Errorf("%w: gateway %q", ErrInvalidName, cfg.Gateway)
	}
	if err := checkPassword("password", cfg.Password); err != nil {
		return err
	}
	if cfg.Roots == nil {
		return errors.New("no roots to verify the access server with (its ca.crt)")
	}
	if !cfg.SignalAddr.IsValid() || cfg.SignalAddr.Port() == 0 {
		return fmt.Errorf("signal address %v: want ip:port with a port", cfg.SignalAddr)
	}
	switch cfg.Status {
	case "":
		cfg.Status = wire.StatusOnline
	case wire.StatusOnline, wire.StatusAway:
	default:
		return fmt.Errorf("initial status %q: want online or away", cfg.Status)
	}
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(cfg.Addr)
		if err != nil {
			return fmt.Errorf("server address %q: %w", cfg.Addr, err)
		}
		cfg.ServerName = host
	}
	if cfg.Key == nil {
		k, err := pki.NewKey()
		if err != nil {
			return err
		}
		cfg.Key = k
	}
	switch k := cfg.Key.Public().(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return fmt.Errorf("%w: ECDSA %s: want P-256 or Ed25519", ErrBadKey, k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
	default:
		return fmt.Errorf("%w: %T: want ECDSA P-256 or Ed25519", ErrBadKey, k)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return nil
}

// ctxErr prefers the context's reason over the I/O error it caused.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%w)", ctx.Err(), err)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("no answer from access server: %w", err)
	}
	return err
}

// setCert checks a certificate from the server (it must chain to Roots and
// bind this identity to this key) and makes it current.
func (c *Client) setCert(der []byte) error {
	id, leaf, err := pki.VerifyEndpoint([][]byte{der}, c.cfg.Roots, c.cfg.Now())
	if err != nil {
		return fmt.Errorf("%w: certificate: %w", ErrBadResponse, err)
	}
	if id != c.id {
		return fmt.Errorf("%w: certificate is for %s", ErrBadResponse, id)
	}
	if !bytes.Equal(leaf.RawSubjectPublicKeyInfo, c.pubDER) {
		return fmt.Errorf("%w: certificate binds another key", ErrBadResponse)
	}
	if by := pki.BridgedBy(leaf); by != c.cfg.Gateway {
		return fmt.Errorf("%w: certificate says bridged by %q, logged in with gateway %q", ErrBadResponse, by, c.cfg.Gateway)
	}
	c.cert.Store(&tls.Certificate{Certificate: [][]byte{der}, PrivateKey: c.cfg.Key, Leaf: leaf})
	return nil
}

// Identity returns the endpoint's user/device.
func (c *Client) Identity() pki.Identity { return c.id }

// Profile returns the profile received at login: the user's other devices
// and the buddies with their presence at that moment. Later changes arrive
// through OnPresence.
func (c *Client) Profile() wire.Profile { return c.profile }

// Observed returns the endpoint's address as the access server saw it.
func (c *Client) Observed() netip.AddrPort { return c.observed }

// Keepalive returns the keep-alive interval the server asked for.
func (c *Client) Keepalive() time.Duration { return c.keepalive }

// Certificate returns the current endpoint certificate with its private
// key, for the endpoint's own TLS (pki.EndpointServerConfig and
// EndpointClientConfig). It is safe for concurrent use and reflects
// renewals; it fails once the certificate has expired.
func (c *Client) Certificate() (*tls.Certificate, error) {
	cert := c.cert.Load()
	if now := c.cfg.Now(); now.After(cert.Leaf.NotAfter) {
		return nil, fmt.Errorf("access: %s: certificate expired at %s", c.id, cert.Leaf.NotAfter.Format(time.RFC3339))
	}
	return cert, nil
}

// Expires returns when the current certificate expires.
func (c *Client) Expires() time.Time { return c.cert.Load().Leaf.NotAfter }

// SetStatus changes the endpoint's presence status (online or away).
func (c *Client) SetStatus(ctx context.Context, st wire.Status) error {
	if st != wire.StatusOnline && st != wire.StatusAway {
		return fmt.Errorf("access: %s: set status %q: want online or away", c.id, st)
	}
	select {
	case <-c.done:
		return fmt.Errorf("access: %s: set status: %w", c.id, c.Err())
	default:
	}
	timeout := c.keepalive
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	if err := c.wc.Send(&wire.SetStatus{Status: st}, max(timeout, time.Millisecond)); err != nil {
		return fmt.Errorf("access: %s: set status: %w", c.id, err)
	}
	return nil
}

// Done is closed when the session ends: connection lost or Close.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns nil while the session is up, then why it ended: ErrClosed
// after Close, otherwise an error wrapping ErrConnectionLost.
func (c *Client) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

// Close logs out (the endpoint is offline at once), closes the connection
// and waits for the client's goroutines. It is idempotent.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.closing.Store(true)
		select {
		case <-c.done:
		default:
			if err := c.wc.Send(&wire.Logout{}, time.Second); err != nil {
				c.log.Debug("logout not sent", "error", err)
			}
		}
		c.end(fmt.Errorf("access: %s: client %w", c.id, ErrClosed))
	})
	c.wg.Wait()
	return nil
}

// end records why the session ended, once, and stops its I/O.
func (c *Client) end(err error) {
	c.endOnce.Do(func() {
		c.err = err
		close(c.done)
		_ = c.raw.Close()
	})
}

func (c *Client) lost(err error) {
	if c.closing.Load() {
		return
	}
	c.log.Warn("connection to access server lost", "error", err)
	c.end(fmt.Errorf("access: %s: %w: %w", c.id, ErrConnectionLost, err))
}

// read receives acks, renewals and pushes until the connection ends. The
// server answers every keep-alive, so a silence of several intervals means
// the server or the path is gone.
func (c *Client) read() {
	defer c.wg.Done()
	silence := max(3*c.keepalive, 5*time.Second)
	for {
		_ = c.raw.SetReadDeadline(time.Now().Add(silence))
		m, err := c.wc.Recv()
		if err != nil {
			c.lost(err)
			return
		}
		switch m := m.(type) {
		case *wire.KeepaliveAck:
		case *wire.Presence:
			c.enqueue(m.Device)
		case *wire.RenewResponse:
			if err := c.setCert(m.Certificate); err != nil {
				c.lost(fmt.Errorf("renewal: %w", err))
				return
			}
			c.log.Debug("certificate renewed", "expires", c.Expires())
			select {
			case c.renewed <- struct{}{}:
			default:
			}
		case *wire.Error:
			// The server explains before it closes (forbidden: user
			// deleted); the close follows and ends the session.
			c.log.Warn("access server reported an error", "error", wire.AsError(m))
		default:
			c.lost(fmt.Errorf("%w: %s", ErrBadResponse, m.Type()))
			return
		}
	}
}

// loop sends keep-alives and renews the certificate.
func (c *Client) loop() {
	defer c.wg.Done()
	ka := time.NewTicker(c.keepalive)
	defer ka.Stop()
	renew := time.NewTimer(c.renewDelay())
	defer renew.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-ka.C:
			if err := c.wc.Send(&wire.Keepalive{}, c.keepalive); err != nil {
				c.lost(err)
				return
			}
		case <-renew.C:
			if err := c.wc.Send(&wire.RenewRequest{}, c.keepalive); err != nil {
				c.lost(err)
				return
			}
			// If no answer comes, ask again at half the remaining time.
			renew.Reset(c.renewDelay())
		case <-c.renewed:
			renew.Reset(c.renewDelay())
		}
	}
}

// renewDelay is half the current certificate's remaining lifetime: renewal
// at about half-life, with retries converging on (never passing) expiry.
func (c *Client) renewDelay() time.Duration {
	return max(c.Expires().Sub(c.cfg.Now())/2, minRenewDelay)
}

func (c *Client) enqueue(d wire.Device) {
	if c.cfg.OnPresence == nil {
		return
	}
	c.nmu.Lock()
	c.nqueue = append(c.nqueue, d)
	c.nmu.Unlock()
	select {
	case c.nwake <- struct{}{}:
	default:
	}
}

// notify calls OnPresence for each push, in order, from this one goroutine.
// Its queue is unbounded so a slow callback never stalls the reader (and
// with it keep-alive acks); the server bounds what it sends.
func (c *Client) notify() {
	defer c.wg.Done()
	for {
		c.nmu.Lock()
		batch := c.nqueue
		c.nqueue = nil
		c.nmu.Unlock()
		for _, d := range batch {
			select {
			case <-c.done:
				return
			default:
			}
			c.cfg.OnPresence(d)
		}
		if len(batch) > 0 {
			continue
		}
		select {
		case <-c.nwake:
		case <-c.done:
			return
		}
	}
}
