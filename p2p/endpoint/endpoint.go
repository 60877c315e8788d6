// Package endpoint is a Baton P2P endpoint: one device of one user. It logs
// in through the access server, keeps a presence cache of its buddies and
// its own other devices, accepts and places calls with direct mutually
// authenticated signaling (TLS 1.3 with access-issued certificates), and
// carries the audio with direct RTP/SRTP (p2p/media).
//
// The access server is never on the call path: once logged in, everything
// about a call goes endpoint to endpoint.
package endpoint

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/baton-voice/baton/codecs"
	"github.com/baton-voice/baton/p2p/access"
	"github.com/baton-voice/baton/p2p/audio"
	"github.com/baton-voice/baton/p2p/connlimit"
	"github.com/baton-voice/baton/p2p/handoff"
	"github.com/baton-voice/baton/p2p/media"
	"github.com/baton-voice/baton/p2p/pki"
	"github.com/baton-voice/baton/p2p/wire"
)

// Config configures an Endpoint.
type Config struct {
	// Access is the access server's host:port.
	Access string
	// Roots trusts the access server's CA (its ca.crt).
	Roots *x509.CertPool
	// User, Device and Password are the login credentials.
	User, Device, Password string
	// Gateway, when set, logs in with that gateway credential: Password is
	// the gateway's secret and User must be delegated to it (a SIP device
	// a gateway bridges; its certificate says so).
	Gateway string
	// AccessSession, when set, logs the endpoint in through a session it
	// shares with other endpoints (a gateway's access.GatewaySession: one
	// connection for all the devices it bridges, issue 11 §3) instead of a
	// connection and password of its own; Password and Gateway are then
	// not used. A P2P phone leaves it nil and logs in as before.
	AccessSession AccessSession
	// SignalListen is where direct signaling is accepted ("127.0.0.1:0").
	SignalListen string
	// MediaIP is the local IP RTP sockets bind to.
	MediaIP netip.Addr
	// SRTP encrypts media (default true in the config layer).
	SRTP bool
	// Codecs lists the codecs offered, in preference order.
	Codecs *codecs.Registry
	// Ptime is the packet time (20 ms).
	Ptime time.Duration
	// JitterDelay is the playout delay of the jitter buffer.
	JitterDelay time.Duration
	// AutoAnswer answers incoming calls at once.
	AutoAnswer bool
	// AcceptFrom says whose invites are answered; the zero value means
	// AcceptBuddies (the rule outgoing calls follow too).
	AcceptFrom AcceptFrom
	// NewSource returns the "microphone" for a call; nil = silence.
	NewSource func(callID string) (audio.Source, error)
	// NewSink returns what the call's received audio is played to; nil =
	// discard. A sink that implements io.Closer is closed when the call ends.
	NewSink func(callID, peer string) (audio.Sink, error)
	// OnEvent, when set, is called with every event before subscribers
	// see it, on the goroutine that made it (a call's own, often). It must
	// not block and must not call back into the endpoint synchronously: a
	// gateway uses it to learn of incoming calls and call ends without the
	// event bus's drop-when-slow rule.
	OnEvent func(Event)
	// OnIncoming, when set, is told of every incoming call once it rings
	// here (the invite checked, Ringing sent, the call.ringing event
	// emitted) and before any other event of the call, and decides what happens to it (incoming.go): the zero
	// Decision does what AutoAnswer says. It runs on the goroutine that
	// accepted the call, once per call (never dropped, unlike a slow
	// subscriber's events), must not block and must not call back into
	// the endpoint synchronously.
	OnIncoming func(IncomingCall) Decision
	// OnPush, when set, takes a call another device of this user pushes
	// here, once the push is accepted (Policy allows the pull, a call slot
	// is free). It must take the call with Pull (PullRequest.From:
	// offer.From, SessionID: offer.CallID) and return the pull's
	// HandoffInfo; an error with an info without ID refuses the push
	// (ErrDeclined: nobody answered, ErrBusy, ErrOffline). It may call
	// ringing, before it returns, to tell the pusher someone is alerted. A
	// gateway rings the SIP phone, then pulls with the phone's leg as
	// audio. nil = pull at once (a P2P device auto-accepts a push from
	// its own user).
	OnPush func(ctx context.Context, offer PushOffer, ringing func()) (HandoffInfo, error)
	// OnTransfer, when set, makes a transfer the far party of a call asks
	// for (transfer-request, once it is checked: the transferor's own
	// active call, allowed by Policy). It returns when the target has
	// answered (nil) or the transfer failed (an error Transfer's sentinels
	// classify: ErrUnknownPeer, ErrBusy, ErrDeclined, ErrOffline,
	// ErrForbidden), with the new call's ID when it knows one. A gateway
	// sends its SIP phone a REFER and waits for the NOTIFY. nil = call the
	// target from this endpoint.
	OnTransfer func(ctx context.Context, offer TransferOffer) (newCallID string, err error)
	// OnReplaces, when set, decides an attended transfer's invite that
	// replaces one of this endpoint's calls (invite-replaces, once its
	// Replaces is verified): the options the new call is answered with
	// and what to run once it is active (before the old call ends), or
	// an error that refuses it (the old call stays). A gateway moves the
	// SIP leg of the old call to the new one. nil = answer with the
	// endpoint's factories.
	OnReplaces func(ctx context.Context, offer ReplacesOffer) (ReplacesAnswer, error)
	// Logger receives the endpoint's logs; nil = discard.
	Logger *slog.Logger
	// RingTimeout ends an unanswered call (default 60 s).
	RingTimeout time.Duration
	// DialTimeout bounds connecting to a peer (default 5 s).
	DialTimeout time.Duration
	// MediaTimeout ends an active call whose signaling is lost and whose
	// media has been silent this long (default 15 s).
	MediaTimeout time.Duration
	// Now is the clock; nil = time.Now.
	Now func() time.Time
	// Clock runs the handoff timers (clock.go); nil = the wall clock.
	// Tests use a fake one to fire a timer without waiting for it.
	Clock Clock
	// Policy decides session queries and pulls from other devices; nil =
	// handoff.SameUser (only devices of the same user).
	Policy handoff.Policy
	// Timeouts are the handoff timers; zero = handoff.DefaultTimeouts.
	Timeouts handoff.Timeouts
	// GrantLifetime bounds how long a handoff grant this endpoint signs
	// stays usable at the far party (default 30 s).
	GrantLifetime time.Duration
	// MaxCalls bounds simultaneous calls (default 1: a phone; a call
	// beyond it is refused as busy).
	MaxCalls int
	// CallLogLevel is the level of a call's progress lines (invite sent,
	// ringing, active, ended); zero is slog.LevelInfo, a phone's. A
	// gateway, whose every call is a few of these per device, puts them
	// at debug and logs one line per bridged call itself
	// (docs/benchmarks.md §16b: logging was ~10 % of a call's CPU).
	CallLogLevel slog.Level
	// MaxPreAuthPerSource and MaxPreAuth cap signaling connections that
	// have not completed the mutual TLS handshake and their first message,
	// per source (an IPv4 address or IPv6 /64) and in total (0 = 32 and
	// 1024); the excess is closed at accept. PreAuthTimeout is the time a
	// connection has, from accept, for both (0 = 5 s).
	MaxPreAuthPerSource int
	MaxPreAuth          int
	PreAuthTimeout      time.Duration

	// AddrWatch is how often the media address is checked; when it has
	// disappeared from the machine, the media moves on its own (mobility).
	// 0 = every second; negative = never.
	AddrWatch time.Duration
	// FallbackIPs are where media may move when its address disappears, in
	// preference order; empty = the first other address of this machine.
	FallbackIPs []netip.Addr

	// present reports whether an IP is still on this machine (tests
	// replace it; nil = addrPresent).
	present func(netip.Addr) bool

	// Impairment, when set, drops and delays this endpoint's outgoing RTP
	// on purpose (a loss/jitter shim for benchmarks and demos).
	Impairment *media.Impairment

	// firstSeq, in tests, fixes the first RTP sequence number of this
	// endpoint's media (to reach a wrap quickly).
	firstSeq *uint16

	// rebindUnheard, in tests, makes a rebind start as if the old session
	// had never authenticated a packet of the peer (no stream index to
	// carry over), as a rebind right after the answer does.
	rebindUnheard bool

	// stepHook, in tests, runs after each recorded handoff step.
	stepHook func(step int)
	// offerHook, in tests, edits the session parameters this endpoint
	// offers as B (step 3) before they are sent.
	offerHook func(*wire.SessionParams)
	// ackHook, in tests, edits the stop-ack (as B) and reestablish-ack
	// (as C) this endpoint sends, say as an older endpoint would send them.
	ackHook func(wire.Message)
	// allocFault, in tests, fails claim step 9 (AllocateAddress) with its
	// error, as a bind does when the address went away after the move
	// was decided (A: AAllocating + MediaFailed; M: MAllocating +
	// MediaFailed).
	allocFault func(handoff.Role) error
	// transitionHook, in tests, sees every event fed to a handoff machine
	// and what the table made of it (handoff_exec.go).
	transitionHook func(transition)
}

func (c *Config) setDefaults() error {
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Clock == nil {
		c.Clock = realClock{}
	}
	if c.Ptime == 0 {
		c.Ptime = 20 * time.Millisecond
	}
	if c.JitterDelay == 0 {
		c.JitterDelay = 40 * time.Millisecond
	}
	if c.RingTimeout == 0 {
		c.RingTimeout = 60 * time.Second
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = 5 * time.Second
	}
	if c.MediaTimeout == 0 {
		c.MediaTimeout = 15 * time.Second
	}
	if c.SignalListen == "" {
		c.SignalListen = "127.0.0.1:0"
	}
	if !c.MediaIP.IsValid() {
		c.MediaIP = netip.MustParseAddr("127.0.0.1")
	}
	if c.Codecs == nil {
		c.Codecs = codecs.DefaultRegistry()
	}
	if c.AddrWatch == 0 {
		c.AddrWatch = time.Second
	}
	if c.present == nil {
		c.present = addrPresent
	}
	if c.GrantLifetime == 0 {
		c.GrantLifetime = 30 * time.Second
	}
	if c.MaxCalls <= 0 {
		c.MaxCalls = 1
	}
	if c.MaxPreAuthPerSource <= 0 {
		c.MaxPreAuthPerSource = DefaultMaxPreAuthPerSource
	}
	if c.MaxPreAuth <= 0 {
		c.MaxPreAuth = DefaultMaxPreAuth
	}
	if c.PreAuthTimeout <= 0 {
		c.PreAuthTimeout = DefaultPreAuthTimeout
	}
	switch c.AcceptFrom {
	case AcceptUnknown:
		c.AcceptFrom = AcceptBuddies
	case AcceptBuddies, AcceptAnyone:
	default:
		return fmt.Errorf("%w: accept-from %d", ErrInvalidConfig, int(c.AcceptFrom))
	}
	if c.Policy == nil {
		c.Policy = handoff.SameUser{}
	}
	if c.Timeouts == (handoff.Timeouts{}) {
		c.Timeouts = handoff.DefaultTimeouts(c.Ptime)
	}
	if err := c.Timeouts.Validate(); err != nil {
		return fmt.Errorf("endpoint: %w", err)
	}
	if c.Roots == nil {
		return errors.New("endpoint: no CA to trust for the access server (set the ca file)")
	}
	id := pki.Identity{User: c.User, Device: c.Device}
	if err := id.Validate(); err != nil {
		return fmt.Errorf("endpoint: %w", err)
	}
	if c.Password == "" && c.AccessSession == nil {
		return errors.New("endpoint: empty password")
	}
	return nil
}

// AccessSession logs devices in through a shared access session (a
// gateway's): *access.GatewaySession implements it.
type AccessSession interface {
	LoginDevice(ctx context.Context, dl access.DeviceLogin) (access.Session, error)
}

// Endpoint is one logged-in device. Create it with New, then Start.
type Endpoint struct {
	cfg      Config
	id       pki.Identity
	log      *slog.Logger
	key      *ecdsa.PrivateKey
	events   *bus
	stats    *counters
	timeouts handoff.Timeouts

	ln      net.Listener
	preAuth *connlimit.Gate // signaling connections not yet authenticated
	// host, when set, is the Host whose listener reaches this endpoint
	// (Host.Add); serverName is the TLS server name dialers ask it by.
	host       *Host
	serverName string
	// tlsSessions holds the TLS 1.3 session tickets of peers this
	// endpoint dialled, filed by peer identity and address (pki.
	// IdentitySessionCache), so the next call to the same peer at the
	// same address skips the certificate signatures.
	tlsSessions tls.ClientSessionCache
	// verified remembers the peer chains already verified (exact: same
	// leaf and chain, same roots, inside their validity; pki.VerifyCache):
	// the endpoint's own, or its Host's, shared by all its endpoints.
	verified *pki.VerifyCache

	mu       sync.Mutex
	client   access.Session
	profile  wire.Profile
	presence map[pki.Identity]wire.Device // buddies and own other devices
	calls    map[string]*call
	ended    []CallInfo // recent ended calls, newest last
	handoffs []*handoffRun
	loginAt  time.Time
	mediaIP  netip.Addr // where new media binds; moved by Rebind
	conns    map[net.Conn]struct{}
	crashed  bool // tests: see crash
	reserved int  // call slots held by pulls in progress
	closed   bool

	ctx    context.Context // ends at Close; owned by Start's caller chain
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

const maxEndedCalls = 50

// New checks cfg and generates the endpoint's key pair. The private key
// never leaves the endpoint: only the public key goes to the access server.
func New(cfg Config) (*Endpoint, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	key, err := pki.NewKey()
	if err != nil {
		return nil, err
	}
	id := pki.Identity{User: cfg.User, Device: cfg.Device}
	return &Endpoint{
		cfg:      cfg,
		id:       id,
		log:      cfg.Logger.With("component", "endpoint", "identity", id.String()),
		key:      key,
		events:   newBus(),
		stats:    newCounters(),
		timeouts: cfg.Timeouts,
		presence: make(map[pki.Identity]wire.Device),
		calls:    make(map[string]*call),
		mediaIP:  cfg.MediaIP,
		preAuth:  connlimit.NewGate(cfg.MaxPreAuthPerSource, cfg.MaxPreAuth),
		// A ticket is ~1 KiB; 256 peers bound it to a few hundred KiB.
		tlsSessions: tls.NewLRUClientSessionCache(256),
		verified:    pki.NewVerifyCache(1024),
	}, nil
}

// Identity returns user/device.
func (e *Endpoint) Identity() pki.Identity { return e.id }

// Start opens the signaling listener (an endpoint of a Host is reachable
// on the host's instead), logs in (claim step 1), and keeps the access
// session alive (re-login with backoff if it drops) until Close.
func (e *Endpoint) Start(ctx context.Context) error {
	if e.host != nil {
		return e.startOnHost(ctx)
	}
	ln, err := net.Listen("tcp", e.cfg.SignalListen)
	if err != nil {
		return fmt.Errorf("endpoint: listen for signaling on %s: %w", e.cfg.SignalListen, err)
	}
	// Close may run at any moment of Start: the listener, ctx and cancel
	// are set under e.mu, where Close reads them after setting closed, so
	// Close either finds them (and closes and cancels them) or Start sees
	// closed and undoes them itself.
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		_ = ln.Close()
		return fmt.Errorf("endpoint: start %s: %w", e.id, ErrClosed)
	}
	e.ln = ln
	e.ctx, e.cancel = context.WithCancel(context.WithoutCancel(ctx))
	cancel := e.cancel
	e.mu.Unlock()
	if err := e.login(ctx); err != nil {
		cancel()
		_ = ln.Close()
		return err
	}
	tlsLn := tls.NewListener(ln, e.verified.ServerConfig(e.certificate, e.cfg.Roots, e.cfg.Now))
	// The goroutines are counted in wg only if Close has not run yet
	// (checked under e.mu, before wg.Add): one started after Close's
	// wg.Wait would outlive it.
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		cancel()
		_ = ln.Close()
		return fmt.Errorf("endpoint: start %s: %w", e.id, ErrClosed)
	}
	watch := e.cfg.AddrWatch > 0
	e.wg.Add(2)
	if watch {
		e.wg.Add(1)
	}
	e.mu.Unlock()
	go func() { defer e.wg.Done(); e.acceptLoop(tlsLn) }()
	go func() { defer e.wg.Done(); e.accessLoop() }()
	if watch {
		go func() { defer e.wg.Done(); e.watchAddress() }()
	}
	return nil
}

// startOnHost is Start for an endpoint of a Host: no listener and no
// address watcher of its own.
//
// Host.Close may run at any moment of it, and closes every endpoint on the
// host: ctx and cancel are set before the endpoint is on the host (attach,
// under the host's lock, orders them before Close reads them), and the
// re-login loop is only started if the endpoint was not closed meanwhile
// (checked under e.mu, which Close sets closed under, before wg.Add: a
// goroutine started after Close's wg.Wait would outlive it). A login that
// ends after Close is logged out again (loggedIn).
func (e *Endpoint) startOnHost(ctx context.Context) error {
	e.ctx, e.cancel = context.WithCancel(context.WithoutCancel(ctx))
	if err := e.host.attach(e); err != nil {
		e.cancel()
		return fmt.Errorf("endpoint: start %s: %w", e.id, err)
	}
	if err := e.login(ctx); err != nil {
		e.cancel()
		e.host.detach(e)
		return err
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return fmt.Errorf("endpoint: start %s: %w", e.id, ErrClosed)
	}
	e.wg.Add(1)
	e.mu.Unlock()
	go func() { defer e.wg.Done(); e.accessLoop() }()
	return nil
}

// enterConn admits a connection the host accepted for this endpoint to
// serveConn, counted in wg, unless the endpoint is closing.
func (e *Endpoint) enterConn() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed || e.crashed {
		return false
	}
	e.wg.Add(1)
	return true
}

// Host returns the Host the endpoint is on, or nil for a standalone one.
func (e *Endpoint) Host() *Host { return e.host }

// SignalAddr returns the bound signaling address (the host's, for an
// endpoint of a Host).
func (e *Endpoint) SignalAddr() netip.AddrPort {
	if e.host != nil {
		return e.host.SignalAddr()
	}
	if e.ln == nil {
		return netip.AddrPort{}
	}
	return e.ln.Addr().(*net.TCPAddr).AddrPort()
}

func (e *Endpoint) login(ctx context.Context) error {
	c, err := e.openAccess(ctx)
	if err != nil {
		return fmt.Errorf("endpoint: login %s: %w", e.id, err)
	}
	return e.loggedIn(c)
}

// openAccess logs in: through the shared session when there is one, else
// with a connection of its own.
func (e *Endpoint) openAccess(ctx context.Context) (access.Session, error) {
	if e.cfg.AccessSession != nil {
		return e.cfg.AccessSession.LoginDevice(ctx, access.DeviceLogin{
			User:       e.cfg.User,
			Device:     e.cfg.Device,
			SignalAddr: e.SignalAddr(),
			Status:     wire.StatusOnline,
			Key:        e.key,
			OnPresence: e.onPresence,
		})
	}
	c, err := access.Login(ctx, access.ClientConfig{
		Addr:       e.cfg.Access,
		Roots:      e.cfg.Roots,
		User:       e.cfg.User,
		Device:     e.cfg.Device,
		Password:   e.cfg.Password,
		Gateway:    e.cfg.Gateway,
		SignalAddr: e.SignalAddr(),
		Status:     wire.StatusOnline,
		Key:        e.key,
		OnPresence: e.onPresence,
		Logger:     e.cfg.Logger,
		Now:        e.cfg.Now,
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// loggedIn makes c the endpoint's access session and loads its profile.
func (e *Endpoint) loggedIn(c access.Session) error {
	p := c.Profile()
	e.mu.Lock()
	if e.closed {
		// Close ran during the login and found no session to close.
		e.mu.Unlock()
		_ = c.Close()
		return fmt.Errorf("endpoint: login %s: %w", e.id, ErrClosed)
	}
	e.client = c
	e.profile = p
	e.loginAt = e.cfg.Now()
	for _, d := range p.Devices {
		e.presence[pki.Identity{User: d.User, Device: d.Device}] = d
	}
	for _, b := range p.Buddies {
		for _, d := range b.Devices {
			e.presence[pki.Identity{User: d.User, Device: d.Device}] = d
		}
	}
	e.mu.Unlock()
	e.log.Info("logged in", "access", e.cfg.Access, "observed", c.Observed(), "buddies", len(p.Buddies), "devices", len(p.Devices))
	e.emit(Event{Type: "login", Detail: fmt.Sprintf("access=%s observed=%s buddies=%d", e.cfg.Access, c.Observed(), len(p.Buddies))})
	for _, d := range p.Devices {
		e.emit(Event{Type: "presence", Peer: d.User + "/" + d.Device, State: string(d.Status), Detail: "own device (from login)"})
	}
	for _, b := range p.Buddies {
		for _, d := range b.Devices {
			e.emit(Event{Type: "presence", Peer: d.User + "/" + d.Device, State: string(d.Status), Detail: "buddy (from login)"})
		}
	}
	return nil
}

// accessLoop re-logs in when the access session drops. Calls are not
// affected: the access server is not on the call path.
func (e *Endpoint) accessLoop() {
	backoff := 500 * time.Millisecond
	for {
		e.mu.Lock()
		c := e.client
		e.mu.Unlock()
		var done <-chan struct{}
		if c != nil {
			done = c.Done()
		}
		select {
		case <-e.ctx.Done():
			return
		case <-done:
			e.log.Warn("access session lost; logging in again", "err", c.Err())
			e.emit(Event{Type: "logout", Detail: fmt.Sprintf("access session lost: %v", c.Err())})
			e.mu.Lock()
			e.client = nil
			e.mu.Unlock()
		}
		for {
			ctx, cancel := context.WithTimeout(e.ctx, 10*time.Second)
			err := e.login(ctx)
			cancel()
			if err == nil {
				backoff = 500 * time.Millisecond
				break
			}
			wait := backoff
			if rl := (*access.RateLimitedError)(nil); errors.As(err, &rl) {
				// Asking again sooner would only be refused again.
				wait = max(wait, rl.RetryAfter)
			}
			e.log.Warn("re-login failed", "err", err, "retry_in", wait)
			select {
			case <-e.ctx.Done():
				return
			case <-time.After(wait):
			}
			backoff = min(backoff*2, 30*time.Second)
		}
	}
}

func (e *Endpoint) onPresence(d wire.Device) {
	pid := pki.Identity{User: d.User, Device: d.Device}
	e.mu.Lock()
	e.presence[pid] = d
	e.mu.Unlock()
	e.log.Debug("presence", "peer", pid.String(), "status", d.Status)
	e.emit(Event{Type: "presence", Peer: pid.String(), State: string(d.Status), Detail: d.SignalAddr})
}

func (e *Endpoint) present(ip netip.Addr) bool { return e.cfg.present(ip) }

// mediaAddr is the IP new media sessions bind to.
func (e *Endpoint) mediaAddr() netip.Addr {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.mediaIP
}

// audioFor returns the microphone and loudspeaker for a call.
func (e *Endpoint) audioFor(callID, peer string) (audio.Source, audio.Sink, error) {
	src, err := e.newSource(callID)
	if err != nil {
		return nil, nil, err
	}
	sink, err := e.newSink(callID, peer)
	return src, sink, err
}

func (e *Endpoint) newSource(callID string) (audio.Source, error) {
	if e.cfg.NewSource == nil {
		return nil, nil
	}
	s, err := e.cfg.NewSource(callID)
	if err != nil {
		return nil, fmt.Errorf("endpoint: audio source: %w", err)
	}
	return s, nil
}

func (e *Endpoint) newSink(callID, peer string) (audio.Sink, error) {
	if e.cfg.NewSink == nil {
		return nil, nil
	}
	s, err := e.cfg.NewSink(callID, peer)
	if err != nil {
		return nil, fmt.Errorf("endpoint: audio sink: %w", err)
	}
	return s, nil
}

// certificate returns the current endpoint certificate (renewed by the
// access client) for TLS.
func (e *Endpoint) certificate() (*tls.Certificate, error) {
	e.mu.Lock()
	c := e.client
	e.mu.Unlock()
	if c == nil {
		return nil, ErrNotLoggedIn
	}
	return c.Certificate()
}

func (e *Endpoint) emit(ev Event) {
	ev.typed()
	if ev.Time.IsZero() {
		ev.Time = e.cfg.Now()
	}
	if e.cfg.OnEvent != nil {
		e.cfg.OnEvent(ev)
	}
	e.events.publish(ev)
}

// Subscribe implements API.
func (e *Endpoint) Subscribe() (<-chan Event, func()) { return e.events.subscribe() }

// Status implements API.
func (e *Endpoint) Status() StatusInfo {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := StatusInfo{
		Identity:    e.id.String(),
		LoggedIn:    e.client != nil,
		Access:      e.cfg.Access,
		SignalAddr:  e.SignalAddr().String(),
		MediaIP:     e.mediaIP.String(),
		ActiveCalls: len(e.calls),
	}
	if e.client != nil {
		s.ObservedAddr = e.client.Observed().String()
		s.CertExpires = e.client.Expires()
	}
	return s
}

// Buddies implements API: own other devices first (Self), then buddies
// sorted by name.
func (e *Endpoint) Buddies() []BuddyInfo {
	e.mu.Lock()
	defer e.mu.Unlock()
	byUser := map[string]*BuddyInfo{}
	for id, d := range e.presence {
		b := byUser[id.User]
		if b == nil {
			b = &BuddyInfo{User: id.User, Self: id.User == e.id.User, Status: string(wire.StatusOffline)}
			byUser[id.User] = b
		}
		b.Devices = append(b.Devices, DeviceInfo{Device: id.Device, Status: string(d.Status), SignalAddr: d.SignalAddr})
		if rank(d.Status) > rank(wire.Status(b.Status)) {
			b.Status = string(d.Status)
		}
	}
	for _, b := range e.profile.Buddies {
		if byUser[b.User] == nil {
			byUser[b.User] = &BuddyInfo{User: b.User, Status: string(wire.StatusOffline), Devices: []DeviceInfo{}}
		}
	}
	out := make([]BuddyInfo, 0, len(byUser))
	for _, b := range byUser {
		sort.Slice(b.Devices, func(i, j int) bool { return b.Devices[i].Device < b.Devices[j].Device })
		out = append(out, *b)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Self != out[j].Self {
			return out[i].Self
		}
		return out[i].User < out[j].User
	})
	return out
}

func rank(s wire.Status) int {
	switch s {
	case wire.StatusOnline:
		return 2
	case wire.StatusAway:
		return 1
	}
	return 0
}

// resolve turns a call target ("user" or "user/device") into a device to
// dial, from the presence cache.
func (e *Endpoint) resolve(target string) (pki.Identity, netip.AddrPort, error) {
	user, dev, hasDev := strings.Cut(target, "/")
	if !pki.ValidName(user) || (hasDev && !pki.ValidName(dev)) {
		return pki.Identity{}, netip.AddrPort{}, fmt.Errorf("%w: %q: want user or user/device", ErrInvalidTarget, target)
	}
	if hasDev && user == e.id.User && dev == e.id.Device {
		return pki.Identity{}, netip.AddrPort{}, fmt.Errorf("%w: %q is this endpoint", ErrInvalidTarget, target)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.client == nil {
		return pki.Identity{}, netip.AddrPort{}, ErrNotLoggedIn
	}
	known := user == e.id.User
	for _, b := range e.profile.Buddies {
		if b.User == user {
			known = true
		}
	}
	var cands []wire.Device
	for id, d := range e.presence {
		if id.User != user || (hasDev && id.Device != dev) || id == e.id {
			continue
		}
		known = true
		if d.Status != wire.StatusOffline && d.SignalAddr != "" {
			cands = append(cands, d)
		}
	}
	if !known {
		return pki.Identity{}, netip.AddrPort{}, fmt.Errorf("%w: %s", ErrUnknownPeer, target)
	}
	if len(cands) == 0 {
		return pki.Identity{}, netip.AddrPort{}, fmt.Errorf("%w: %s", ErrOffline, target)
	}
	// Prefer online over away, then the most recently seen device.
	sort.Slice(cands, func(i, j int) bool {
		if rank(cands[i].Status) != rank(cands[j].Status) {
			return rank(cands[i].Status) > rank(cands[j].Status)
		}
		return cands[i].SinceUnix > cands[j].SinceUnix
	})
	ap, err := netip.ParseAddrPort(cands[0].SignalAddr)
	if err != nil {
		return pki.Identity{}, netip.AddrPort{}, fmt.Errorf("%w: %s has a bad signaling address %q", ErrUnreachable, target, cands[0].SignalAddr)
	}
	return pki.Identity{User: cands[0].User, Device: cands[0].Device}, ap, nil
}

// Close hangs up every call, logs out, and returns after every goroutine
// has exited. It is idempotent.
func (e *Endpoint) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	calls := make([]*call, 0, len(e.calls))
	for _, c := range e.calls {
		calls = append(calls, c)
	}
	client := e.client
	// Start sets these under e.mu (a Start that runs on sees closed).
	cancel, ln := e.cancel, e.ln
	e.mu.Unlock()
	for _, c := range calls {
		c.hangup("endpoint shutting down")
	}
	for _, c := range calls {
		<-c.done
	}
	if cancel != nil {
		cancel()
	}
	if ln != nil {
		_ = ln.Close()
	}
	if e.host != nil {
		e.host.detach(e)
	}
	// Connections no call owns any more (a puller's idle handoff
	// connection, a peer that has not sent its first message) end now.
	e.mu.Lock()
	conns := make([]net.Conn, 0, len(e.conns))
	for nc := range e.conns {
		conns = append(conns, nc)
	}
	e.mu.Unlock()
	for _, nc := range conns {
		_ = nc.Close()
	}
	var err error
	if client != nil {
		err = client.Close()
	}
	e.wg.Wait()
	e.emit(Event{Type: "logout", Detail: "closed"})
	e.events.close()
	return err
}

func newCallID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "c-" + hex.EncodeToString(b[:])
}

// crash stops the endpoint the way a power cut would: every socket is
// closed and nothing is said to anyone (no bye, no logout). Tests use it
// for "B dies" and "A dies" during a handoff.
func (e *Endpoint) crash() {
	e.mu.Lock()
	calls := make([]*call, 0, len(e.calls))
	for _, c := range e.calls {
		calls = append(calls, c)
	}
	conns := make([]net.Conn, 0, len(e.conns))
	for nc := range e.conns {
		conns = append(conns, nc)
	}
	e.crashed = true
	e.mu.Unlock()
	for _, c := range calls {
		_ = c.exec(context.Background(), func() error { //nolint:contextcheck // a crash has no caller context
			c.sigLost = true // no bye
			c.end("crashed", "crashed")
			return nil
		})
	}
	for _, nc := range conns {
		_ = nc.Close()
	}
	if e.ln != nil {
		_ = e.ln.Close()
	}
	if e.host != nil {
		e.host.detach(e)
	}
	// The access session is left as it is: a dead device goes offline by
	// the access server's timeout. Close, at the end of a test, logs out.
}

// tracked is a signaling connection the endpoint can find again (crash).
type tracked struct {
	net.Conn
	e    *Endpoint
	once sync.Once
}

func (t *tracked) Close() error {
	t.once.Do(func() {
		t.e.mu.Lock()
		delete(t.e.conns, t.Conn)
		t.e.mu.Unlock()
	})
	return t.Conn.Close()
}

func (e *Endpoint) track(nc net.Conn) net.Conn {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.crashed {
		_ = nc.Close() // a dead endpoint keeps no connection
	}
	if e.conns == nil {
		e.conns = map[net.Conn]struct{}{}
	}
	e.conns[nc] = struct{}{}
	return &tracked{Conn: nc, e: e}
}
