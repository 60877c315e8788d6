package access

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/baton-voice/baton/p2p/pki"
	"github.com/baton-voice/baton/p2p/wire"
)

// Session is one logged-in device's session with the access server, as an
// endpoint uses it: its own connection (*Client) or its share of a
// gateway's (*DeviceSession).
type Session interface {
	// Profile is the profile received at login.
	Profile() wire.Profile
	// Observed is the address the access server saw the login come from.
	Observed() netip.AddrPort
	// Certificate is the current certificate with its key, renewed as
	// the session goes on; an error once it has expired.
	Certificate() (*tls.Certificate, error)
	// Expires is when the current certificate expires.
	Expires() time.Time
	// SetStatus changes the device's presence status.
	SetStatus(ctx context.Context, st wire.Status) error
	// Done is closed when the session ends; Err then says why.
	Done() <-chan struct{}
	Err() error
	// Close logs the device out. It is idempotent.
	Close() error
}

var (
	_ Session = (*Client)(nil)
	_ Session = (*DeviceSession)(nil)
)

// DeviceLogin is one device's login through a gateway session.
type DeviceLogin struct {
	// User and Device name the device; User must be delegated to the
	// gateway.
	User, Device string
	// SignalAddr is where the device accepts direct signaling; an
	// unspecified IP asks the server to publish the gateway's address.
	SignalAddr netip.AddrPort
	// Status is the initial status: online (the default) or away.
	Status wire.Status
	// Key is the device's own key pair (nil = a fresh P-256 key): the
	// certificate binds it; the gateway's credential only vouches for it.
	Key crypto.Signer
	// OnPresence, if set, is called for every presence push to this
	// device, in order, on the gateway session's reader goroutine: it must
	// not block or call Close.
	OnPresence func(wire.Device)
}

// GatewayConfig configures a gateway's shared session with the access
// server (issue 8 §1, issue 11 §3).
type GatewayConfig struct {
	// Addr, Roots, ServerName and LocalAddr are as in ClientConfig.
	Addr       string
	Roots      *x509.CertPool
	ServerName string
	LocalAddr  netip.Addr
	// Gateway and Secret are the credential `baton gateway add` issued.
	Gateway, Secret string
	// Logger receives the session's logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock for certificate validity (nil = time.Now).
	Now func() time.Time
}

// GatewaySession is a gateway's one connection to the access server,
// carrying the logins and presence of all the devices it bridges (wire
// types 110-119). It connects at the first Login and again, after the
// connection is lost, at the next one: the devices' own re-login loops
// (the endpoint's) drive reconnection. Safe for concurrent use.
type GatewaySession struct {
	cfg GatewayConfig
	log *slog.Logger

	mu     sync.Mutex // serialises connecting
	conn   *gwConn
	closed bool
}

// NewGatewaySession checks cfg; it does no I/O.
func NewGatewaySession(cfg GatewayConfig) (*GatewaySession, error) {
	if !pki.ValidName(cfg.Gateway) {
		return nil, fmt.Errorf("access: gateway session: %w: gateway %q", ErrInvalidName, cfg.Gateway)
	}
	if err := checkPassword("gateway session: secret", cfg.Secret); err != nil {
		return nil, err
	}
	if cfg.Roots == nil {
		return nil, errors.New("access: gateway session: no roots to verify the access server with (its ca.crt)")
	}
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(cfg.Addr)
		if err != nil {
			return nil, fmt.Errorf("access: gateway session: server address %q: %w", cfg.Addr, err)
		}
		cfg.ServerName = host
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &GatewaySession{cfg: cfg, log: cfg.Logger.With("component", "access-gateway", "gateway", cfg.Gateway)}, nil
}

// Gateway returns the gateway's name.
func (g *GatewaySession) Gateway() string { return g.cfg.Gateway }

// Connected reports whether the session's connection is up.
func (g *GatewaySession) Connected() bool {
	g.mu.Lock()
	c := g.conn
	g.mu.Unlock()
	return c != nil && c.err() == nil
}

// Login logs one device in through the gateway session, connecting first
// if needed. A user not delegated to the gateway is an error matching
// ErrNotDelegated (a *NotDelegatedError); a wrong gateway secret matches
// ErrAuthFailed.
func (g *GatewaySession) Login(ctx context.Context, dl DeviceLogin) (*DeviceSession, error) {
	id := pki.Identity{User: dl.User, Device: dl.Device}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("access: login %s via gateway %s: "+format, append([]any{id, g.cfg.Gateway}, args...)...)
	}
	if err := id.Validate(); err != nil {
		return nil, fail("%w", err)
	}
	if !dl.SignalAddr.IsValid() || dl.SignalAddr.Port() == 0 {
		return nil, fail("signal address %v: want ip:port with a port", dl.SignalAddr)
	}
	switch dl.Status {
	case "":
		dl.Status = wire.StatusOnline
	case wire.StatusOnline, wire.StatusAway:
	default:
		return nil, fail("initial status %q: want online or away", dl.Status)
	}
	if dl.Key == nil {
		k, err := pki.NewKey()
		if err != nil {
			return nil, fail("%w", err)
		}
		dl.Key = k
	}
	pubDER, err := x509.MarshalPKIXPublicKey(dl.Key.Public())
	if err != nil {
		return nil, fail("%w: %w", ErrBadKey, err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultLoginWait)
		defer cancel()
	}
	c, err := g.connect(ctx)
	if err != nil {
		return nil, fail("%w", err)
	}
	d := &DeviceSession{c: c, id: id, key: dl.Key, pubDER: pubDER, onPresence: dl.OnPresence, done: make(chan struct{})}
	w, err := c.login(ctx, d, &wire.DeviceLogin{ID: id.String(), PublicKey: pubDER, SignalAddr: dl.SignalAddr.String(), Status: dl.Status})
	if err != nil {
		var de *deviceRefused
		if errors.As(err, &de) {
			switch de.Code {
			case wire.CodeNotDelegated:
				return nil, fail("%w", &NotDelegatedError{Gateway: g.cfg.Gateway, User: id.User, Device: id.Device})
			}
			return nil, fail("refused: %s: %s", de.Code, de.Message)
		}
		return nil, fail("%w", err)
	}
	d.profile = w.Profile
	if err := d.setCert(w.Certificate); err != nil {
		c.forget(d)
		_ = c.send(&wire.DeviceLogout{ID: id.String()})
		return nil, fail("%w", err)
	}
	d.scheduleRenew()
	return d, nil
}

// Close ends the gateway session: every device on it is offline at once.
// It is idempotent.
func (g *GatewaySession) Close() error {
	g.mu.Lock()
	g.closed = true
	c := g.conn
	g.conn = nil
	g.mu.Unlock()
	if c != nil {
		c.close(true)
	}
	return nil
}

// connect returns the live connection, dialling and authenticating a new
// one if there is none.
func (g *GatewaySession) connect(ctx context.Context) (*gwConn, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil, fmt.Errorf("gateway session %w", ErrClosed)
	}
	if g.conn != nil && g.conn.err() == nil {
		return g.conn, nil
	}
	c, err := g.dial(ctx)
	if err != nil {
		return nil, err
	}
	g.conn = c
	return c, nil
}

func (g *GatewaySession) dial(ctx context.Context) (*gwConn, error) {
	cfg := g.cfg
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
			return nil, fmt.Errorf("%s: %w: %w", cfg.Addr, ErrUntrustedServer, err)
		}
		return nil, fmt.Errorf("connect %s: %w", cfg.Addr, err)
	}
	tc := nc.(*tls.Conn)
	raw := tc.NetConn()
	ok := false
	defer func() {
		if !ok {
			_ = raw.Close()
		}
	}()
	stop := context.AfterFunc(ctx, func() { _ = raw.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	dl, _ := ctx.Deadline()
	_ = raw.SetDeadline(dl)
	wc := wire.NewConn(tc, 0)
	if err := wc.Send(&wire.GatewayLogin{Gateway: cfg.Gateway, Secret: cfg.Secret}, 0); err != nil {
		return nil, ctxErr(ctx, err)
	}
	m, err := wc.Recv()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("server closed the connection without answering")
		}
		return nil, ctxErr(ctx, err)
	}
	var welcome *wire.GatewayWelcome
	switch m := m.(type) {
	case *wire.GatewayWelcome:
		welcome = m
	case *wire.Error:
		switch m.Code {
		case wire.CodeAuthFailed:
			return nil, fmt.Errorf("gateway %s: wrong gateway name or secret (%w)", cfg.Gateway, ErrAuthFailed)
		case wire.CodeRateLimited:
			return nil, &RateLimitedError{RetryAfter: time.Duration(m.RetryAfterMS) * time.Millisecond}
		}
		return nil, fmt.Errorf("refused: %w", wire.AsError(m))
	default:
		return nil, fmt.Errorf("%w: %s instead of %s", ErrBadResponse, m.Type(), wire.TypeGatewayWelcome)
	}
	if !stop() {
		return nil, ctx.Err()
	}
	_ = raw.SetDeadline(time.Time{})
	c := &gwConn{
		g:         g,
		raw:       raw,
		wc:        wc,
		keepalive: time.Duration(welcome.KeepaliveMS) * time.Millisecond,
		devices:   make(map[string]*DeviceSession),
		pending:   make(map[string]chan loginResult),
		done:      make(chan struct{}),
	}
	c.observed, _ = netip.ParseAddrPort(welcome.ObservedAddr) // validated by wire
	ok = true
	g.log.Info("gateway session up", "access", cfg.Addr, "observed", c.observed, "delegated_users", max(welcome.UsersTotal, len(welcome.Users)))
	c.wg.Add(2)
	go c.read()
	go c.loop()
	return c, nil
}

// gwConn is one connection of a gateway session.
type gwConn struct {
	g         *GatewaySession
	raw       net.Conn
	wc        *wire.Conn
	keepalive time.Duration
	observed  netip.AddrPort

	mu      sync.Mutex
	devices map[string]*DeviceSession // by "user/device"
	pending map[string]chan loginResult
	cause   error

	done      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

// deviceRefused is a device-error answering a device-login.
type deviceRefused struct{ *wire.DeviceError }

func (e *deviceRefused) Error() string { return string(e.Code) + ": " + e.Message }

type loginResult struct {
	welcome *wire.DeviceWelcome
	err     error
}

func (c *gwConn) err() error {
	select {
	case <-c.done:
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.cause
	default:
		return nil
	}
}

func (c *gwConn) send(m wire.Message) error {
	return c.wc.Send(m, max(c.keepalive, time.Second))
}

// login sends a device-login and waits for its answer.
func (c *gwConn) login(ctx context.Context, d *DeviceSession, m *wire.DeviceLogin) (*wire.DeviceWelcome, error) {
	ch := make(chan loginResult, 1)
	c.mu.Lock()
	if c.cause != nil {
		c.mu.Unlock()
		return nil, c.cause
	}
	if _, busy := c.pending[m.ID]; busy {
		c.mu.Unlock()
		return nil, fmt.Errorf("a login of %s is already in progress", m.ID)
	}
	c.pending[m.ID] = ch
	// Registered now, so pushes that follow the welcome find it.
	c.devices[m.ID] = d
	c.mu.Unlock()
	if err := c.send(m); err != nil {
		c.forget(d)
		return nil, err
	}
	select {
	case r := <-ch:
		if r.err != nil {
			c.forget(d)
		}
		return r.welcome, r.err
	case <-ctx.Done():
		c.forget(d)
		_ = c.send(&wire.DeviceLogout{ID: m.ID})
		return nil, ctx.Err()
	}
}

// forget drops d (if it is still the device's current session here).
func (c *gwConn) forget(d *DeviceSession) {
	sid := d.id.String()
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.pending, sid)
	if c.devices[sid] == d {
		delete(c.devices, sid)
	}
}

func (c *gwConn) device(sid string) *DeviceSession {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.devices[sid]
}

// answer delivers a device-login's result, if one is waiting.
func (c *gwConn) answer(sid string, r loginResult) bool {
	c.mu.Lock()
	ch := c.pending[sid]
	delete(c.pending, sid)
	c.mu.Unlock()
	if ch == nil {
		return false
	}
	ch <- r
	return true
}

// read receives everything the server sends on the gateway session.
func (c *gwConn) read() {
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
		case *wire.DeviceWelcome:
			c.answer(m.ID, loginResult{welcome: m})
		case *wire.DeviceError:
			if c.answer(m.ID, loginResult{err: &deviceRefused{m}}) {
				continue
			}
			if d := c.device(m.ID); d != nil {
				c.forget(d)
				d.end(fmt.Errorf("access: %s: %w: ended by the server: %s: %s", d.id, ErrConnectionLost, m.Code, m.Message))
			}
		case *wire.DevicePresence:
			if d := c.device(m.ID); d != nil && d.onPresence != nil {
				d.onPresence(m.Device)
			}
		case *wire.DeviceRenewed:
			if d := c.device(m.ID); d != nil {
				if err := d.setCert(m.Certificate); err != nil {
					c.g.log.Warn("bad renewal; device offline", "device", m.ID, "error", err)
					c.forget(d)
					_ = c.send(&wire.DeviceLogout{ID: m.ID})
					d.end(fmt.Errorf("access: %s: renewal: %w", d.id, err))
					continue
				}
				d.scheduleRenew()
			}
		case *wire.Error:
			c.g.log.Warn("access server reported an error", "error", wire.AsError(m))
		default:
			c.lost(fmt.Errorf("%w: %s", ErrBadResponse, m.Type()))
			return
		}
	}
}

// loop sends the session's keep-alives.
func (c *gwConn) loop() {
	defer c.wg.Done()
	t := time.NewTicker(c.keepalive)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
			if err := c.wc.Send(&wire.Keepalive{}, c.keepalive); err != nil {
				c.lost(err)
				return
			}
		}
	}
}

func (c *gwConn) lost(err error) {
	c.g.log.Warn("gateway session to the access server lost; its devices log in again", "error", err)
	c.shut(fmt.Errorf("access: gateway %s: %w: %w", c.g.cfg.Gateway, ErrConnectionLost, err), false)
}

// close ends the connection (logging out when asked) and waits for its
// goroutines.
func (c *gwConn) close(logout bool) {
	c.shut(fmt.Errorf("access: gateway %s: session %w", c.g.cfg.Gateway, ErrClosed), logout)
	c.wg.Wait()
}

// shut ends the connection once: every device on it and every pending
// login ends with cause.
func (c *gwConn) shut(cause error, logout bool) {
	c.closeOnce.Do(func() {
		if logout {
			_ = c.wc.Send(&wire.Logout{}, time.Second)
		}
		c.mu.Lock()
		c.cause = cause
		devs := c.devices
		pend := c.pending
		c.devices, c.pending = map[string]*DeviceSession{}, map[string]chan loginResult{}
		c.mu.Unlock()
		close(c.done)
		_ = c.raw.Close()
		for _, ch := range pend {
			ch <- loginResult{err: cause}
		}
		for _, d := range devs {
			d.end(cause)
		}
	})
}

// DeviceSession is one device's login on a gateway session. It implements
// Session; its keep-alives are the gateway session's.
type DeviceSession struct {
	c          *gwConn
	id         pki.Identity
	key        crypto.Signer
	pubDER     []byte
	onPresence func(wire.Device)
	profile    wire.Profile

	cert atomic.Pointer[tls.Certificate]

	tmu   sync.Mutex
	timer *time.Timer

	done    chan struct{}
	endOnce sync.Once
	cause   error
	closed  atomic.Bool
}

func (d *DeviceSession) setCert(der []byte) error {
	cfg := d.c.g.cfg
	id, leaf, err := pki.VerifyEndpoint([][]byte{der}, cfg.Roots, cfg.Now())
	if err != nil {
		return fmt.Errorf("%w: certificate: %w", ErrBadResponse, err)
	}
	if id != d.id {
		return fmt.Errorf("%w: certificate is for %s", ErrBadResponse, id)
	}
	if !bytes.Equal(leaf.RawSubjectPublicKeyInfo, d.pubDER) {
		return fmt.Errorf("%w: certificate binds another key", ErrBadResponse)
	}
	if by := pki.BridgedBy(leaf); by != cfg.Gateway {
		return fmt.Errorf("%w: certificate says bridged by %q, want %q", ErrBadResponse, by, cfg.Gateway)
	}
	d.cert.Store(&tls.Certificate{Certificate: [][]byte{der}, PrivateKey: d.key, Leaf: leaf})
	return nil
}

// scheduleRenew asks for a renewal at about half the certificate's
// remaining life (a timer, not a goroutine per device).
func (d *DeviceSession) scheduleRenew() {
	delay := max(d.Expires().Sub(d.c.g.cfg.Now())/2, minRenewDelay)
	d.tmu.Lock()
	defer d.tmu.Unlock()
	if d.timer != nil {
		d.timer.Stop()
	}
	select {
	case <-d.done:
		return
	default:
	}
	d.timer = time.AfterFunc(delay, func() {
		if err := d.c.send(&wire.DeviceRenew{ID: d.id.String()}); err != nil {
			return // the connection's reader sees the failure
		}
		// If no answer comes, ask again at half the remaining time.
		d.scheduleRenew()
	})
}

// Identity returns the device's user/device.
func (d *DeviceSession) Identity() pki.Identity { return d.id }

// Profile implements Session.
func (d *DeviceSession) Profile() wire.Profile { return d.profile }

// Observed implements Session: the gateway's address as the server saw it.
func (d *DeviceSession) Observed() netip.AddrPort { return d.c.observed }

// Certificate implements Session.
func (d *DeviceSession) Certificate() (*tls.Certificate, error) {
	cert := d.cert.Load()
	if now := d.c.g.cfg.Now(); now.After(cert.Leaf.NotAfter) {
		return nil, fmt.Errorf("access: %s: certificate expired at %s", d.id, cert.Leaf.NotAfter.Format(time.RFC3339))
	}
	return cert, nil
}

// Expires implements Session.
func (d *DeviceSession) Expires() time.Time { return d.cert.Load().Leaf.NotAfter }

// SetStatus implements Session.
func (d *DeviceSession) SetStatus(_ context.Context, st wire.Status) error {
	if st != wire.StatusOnline && st != wire.StatusAway {
		return fmt.Errorf("access: %s: set status %q: want online or away", d.id, st)
	}
	if err := d.Err(); err != nil {
		return fmt.Errorf("access: %s: set status: %w", d.id, err)
	}
	if err := d.c.send(&wire.DeviceStatus{ID: d.id.String(), Status: st}); err != nil {
		return fmt.Errorf("access: %s: set status: %w", d.id, err)
	}
	return nil
}

// Done implements Session.
func (d *DeviceSession) Done() <-chan struct{} { return d.done }

// Err implements Session.
func (d *DeviceSession) Err() error {
	select {
	case <-d.done:
		return d.cause
	default:
		return nil
	}
}

// Close implements Session: the device logs out; the gateway session and
// its other devices go on.
func (d *DeviceSession) Close() error {
	if d.closed.Swap(true) {
		return nil
	}
	select {
	case <-d.done:
	default:
		d.c.forget(d)
		if err := d.c.send(&wire.DeviceLogout{ID: d.id.String()}); err != nil {
			d.c.g.log.Debug("device logout not sent", "device", d.id.String(), "error", err)
		}
	}
	d.end(fmt.Errorf("access: %s: session %w", d.id, ErrClosed))
	return nil
}

func (d *DeviceSession) end(cause error) {
	d.endOnce.Do(func() {
		d.cause = cause
		d.tmu.Lock()
		if d.timer != nil {
			d.timer.Stop()
		}
		close(d.done)
		d.tmu.Unlock()
	})
}

// LoginDevice is Login returning the Session interface: what an endpoint
// sharing this session calls (endpoint.Config.AccessSession).
func (g *GatewaySession) LoginDevice(ctx context.Context, dl DeviceLogin) (Session, error) {
	d, err := g.Login(ctx, dl)
	if err != nil {
		return nil, err
	}
	return d, nil
}
