// Package access is Baton's access server and its client: it authenticates
// users and devices against the user database, issues each endpoint a
// short-lived certificate binding user, device and public key, keeps
// presence, hands each endpoint its profile (its user's other devices, its
// buddies and their presence), pushes presence changes to the endpoints that
// care, and reports each endpoint's observed address. It is never on the
// call path: after login, signaling and media go endpoint to endpoint.
//
// Buddy lists are read from the user database at login; a buddy added or
// removed while an endpoint is online takes effect at its next login.
package access

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/baton-voice/baton/p2p/connlimit"
	"github.com/baton-voice/baton/p2p/pki"
	"github.com/baton-voice/baton/p2p/presence"
	"github.com/baton-voice/baton/p2p/wire"
)

// Defaults for zero Config fields.
const (
	DefaultCredentialTTL = time.Hour
	DefaultKeepalive     = 15 * time.Second
	DefaultLoginTimeout  = 5 * time.Second
)

// serverCertTTL is the lifetime of the access server's own TLS certificate;
// it is re-issued (same CA, fresh key) when less than a third remains, so a
// long-running server never presents an expired one.
const serverCertTTL = 90 * 24 * time.Hour

// storeTimeout bounds presence store calls made while tearing a session
// down, when the connection's context may already be cancelled.
const storeTimeout = 10 * time.Second

// maxQueue is how many messages may wait for one endpoint. An endpoint that
// falls this far behind is disconnected (and logs in again), so one slow
// reader never holds up fan-out to the others or grows without bound.
const maxQueue = 1024

// Config configures a Server.
type Config struct {
	// DataDir holds ca.crt, ca.key and users.db; created on first run.
	DataDir string
	// ServerNames are the DNS names and IP addresses in the server's TLS
	// certificate: what endpoints dial. Empty means localhost, 127.0.0.1
	// and ::1.
	ServerNames []string
	// CredentialTTL is the lifetime of endpoint certificates (0 = 1h).
	CredentialTTL time.Duration
	// Keepalive is the interval endpoints are told to send keep-alives at
	// (0 = 15s).
	Keepalive time.Duration
	// Timeout is how long an endpoint may stay silent before it is marked
	// offline and disconnected; also the write timeout toward it (0 = three
	// keep-alive intervals). It must exceed Keepalive.
	Timeout time.Duration
	// LoginTimeout bounds the TLS handshake and the arrival of the login
	// request on a new connection, measured from accept (0 = 5s): a
	// connection that has not sent its login by then is closed.
	LoginTimeout time.Duration
	// Limits bound failed logins and connections that have not logged in
	// (zero fields take their defaults).
	Limits Limits
	// Store is the presence backend; nil means a fresh presence.Memory owned
	// (and closed) by the server. A Store passed in is not closed.
	Store presence.Store
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock for certificates, presence times and the failed-login
	// limiter (nil = time.Now). Network deadlines always use the real clock.
	Now func() time.Time

	// noPoller makes every session's goroutine park in a read, as on a
	// system without the poller (tests of that path).
	noPoller bool
}

func (c *Config) setDefaults() error {
	if c.DataDir == "" {
		return errors.New("access: config: data dir is required")
	}
	if len(c.ServerNames) == 0 {
		c.ServerNames = []string{"localhost", "127.0.0.1", "::1"}
	}
	if c.CredentialTTL == 0 {
		c.CredentialTTL = DefaultCredentialTTL
	}
	if c.Keepalive == 0 {
		c.Keepalive = DefaultKeepalive
	}
	if c.Timeout == 0 {
		c.Timeout = 3 * c.Keepalive
	}
	if c.LoginTimeout == 0 {
		c.LoginTimeout = DefaultLoginTimeout
	}
	if c.CredentialTTL < 0 || c.Keepalive < time.Millisecond || c.Timeout < 0 || c.LoginTimeout < 0 {
		return errors.New("access: config: durations must be positive")
	}
	if c.Timeout <= c.Keepalive {
		return fmt.Errorf("access: config: timeout %v must exceed keepalive %v", c.Timeout, c.Keepalive)
	}
	if err := c.Limits.setDefaults(); err != nil {
		return err
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// Server is the access server. Create it with NewServer, run it with Serve
// (on one or more listeners), stop it with Close.
type Server struct {
	cfg      Config
	log      *slog.Logger
	db       *UserDB
	ca       *pki.CA
	store    presence.Store
	ownStore bool
	tls      *tls.Config
	stats    *stats
	fails    *failLimiter
	pending  *connlimit.Gate
	// poller parks idle sessions' connections (pollconn.go); nil where
	// there is none, and then each session's goroutine parks in a read.
	poller *poller
	// Sampled logs for refusals, which an attacker can make cheaply.
	logRefused, logLimited logEvery

	certMu sync.Mutex
	cert   *tls.Certificate

	// base is cancelled by Close; every connection's context derives from it.
	base       context.Context
	cancelBase context.CancelFunc

	mu       sync.Mutex
	closed   bool
	serves   map[*serveState]struct{}
	sessions map[pki.Identity]*session
	// interest maps a user to the online sessions that want its presence:
	// the user's own devices and every session that has it as a buddy. A
	// slice, not a set: most lists are short, and a small map costs far
	// more memory per endpoint than the linear removal costs time.
	interest map[string][]*session
	gateways int // gateway sessions online (gatewaysession.go)

	// idLocks serialise presence writes per identity (striped), so a
	// replaced session's teardown cannot mark offline a device that a newer
	// login just put online, without one lock serialising all logins.
	idLocks [64]sync.Mutex

	wg       sync.WaitGroup // connection goroutines
	fanoutWG sync.WaitGroup
	stopFan  context.CancelFunc
}

// serveState is one Serve call: its listener and the connections it accepted.
type serveState struct {
	ln    net.Listener
	conns map[net.Conn]struct{}
}

// NewServer opens the user database, loads the CA from DataDir (creating it
// on first run) and issues the server's TLS certificate under a fresh key.
func NewServer(ctx context.Context, cfg Config) (*Server, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	ca, err := pki.LoadOrCreateCA(cfg.DataDir, cfg.Now())
	if err != nil {
		return nil, fmt.Errorf("access: %w", err)
	}
	db, err := OpenUserDB(ctx, filepath.Join(cfg.DataDir, UsersFile))
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger.With("component", "access"),
		db:       db,
		ca:       ca,
		store:    cfg.Store,
		stats:    newStats(),
		fails:    newFailLimiter(cfg.Limits, cfg.Now),
		pending:  connlimit.NewGate(cfg.Limits.MaxPendingPerSource, cfg.Limits.MaxPending),
		serves:   make(map[*serveState]struct{}),
		sessions: make(map[pki.Identity]*session),
		interest: make(map[string][]*session),

		logRefused: logEvery{every: 10 * time.Second},
		logLimited: logEvery{every: 10 * time.Second},
	}
	s.stats.pending = s.pending.Pending
	if cfg.noPoller {
		// one goroutine per session, parked in a read
	} else if p, err := newPoller(); err == nil {
		s.poller = p
	} else {
		s.log.Debug("no connection poller; one goroutine per session", "error", err)
	}
	if s.store == nil {
		s.store, s.ownStore = presence.NewMemory(), true
	}
	if _, err := s.serverCert(); err != nil {
		s.closeStorage()
		return nil, err
	}
	s.tls = &tls.Config{
		// TLS 1.3 only (RFC 8446), no 0-RTT. Server authentication only:
		// the endpoint has no certificate until this server issues one.
		MinVersion:     tls.VersionTLS13,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return s.serverCert() },
		ClientAuth:     tls.NoClientCert,
		// Endpoints reconnect with a full login anyway; tickets would only
		// cost memory and a write per connection.
		SessionTicketsDisabled: true,
		Time:                   cfg.Now,
	}
	s.base, s.cancelBase = context.WithCancel(context.WithoutCancel(ctx))
	fanCtx, stopFan := context.WithCancel(s.base)
	s.stopFan = stopFan
	events, err := s.store.Watch(fanCtx)
	if err != nil {
		stopFan()
		s.cancelBase()
		s.closeStorage()
		return nil, fmt.Errorf("access: watch presence: %w", err)
	}
	s.fanoutWG.Add(1)
	go s.fanout(fanCtx, events)
	return s, nil
}

// serverCert returns the server's TLS certificate, issuing a new one when
// the current one has less than a third of its lifetime left.
func (s *Server) serverCert() (*tls.Certificate, error) {
	s.certMu.Lock()
	defer s.certMu.Unlock()
	now := s.cfg.Now()
	if c := s.cert; c != nil && c.Leaf.NotAfter.Sub(now) > serverCertTTL/3 {
		return c, nil
	}
	key, err := pki.NewKey()
	if err != nil {
		return nil, fmt.Errorf("access: server key: %w", err)
	}
	der, err := s.ca.IssueServer(&key.PublicKey, s.cfg.ServerNames, now, serverCertTTL)
	if err != nil {
		return nil, fmt.Errorf("access: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("access: server certificate: %w", err)
	}
	s.cert = &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
	return s.cert, nil
}

// CA returns the certificate authority: its certificate is what endpoints
// trust (ca.crt in the data directory).
func (s *Server) CA() *pki.CA { return s.ca }

// Users returns the user database.
func (s *Server) Users() *UserDB { return s.db }

// Serve accepts endpoint connections on ln until ctx ends or the server is
// closed, then closes ln and the connections it accepted and returns once
// their goroutines have exited. It returns nil on such an orderly stop and
// ErrClosed if the server was already closed. Serve may run on several
// listeners at once.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	st := &serveState{ln: ln, conns: make(map[net.Conn]struct{})}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = ln.Close()
		return fmt.Errorf("access: serve: server %w", ErrClosed)
	}
	s.serves[st] = struct{}{}
	s.mu.Unlock()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopBase := context.AfterFunc(s.base, cancel)
	defer stopBase()
	stopLn := context.AfterFunc(ctx, func() { _ = ln.Close() })
	defer stopLn()

	var conns sync.WaitGroup
	err := s.acceptLoop(ctx, st, &conns)

	_ = ln.Close()
	s.mu.Lock()
	delete(s.serves, st)
	for nc := range st.conns {
		_ = nc.Close()
	}
	s.mu.Unlock()
	conns.Wait()
	return err
}

func (s *Server) acceptLoop(ctx context.Context, st *serveState, conns *sync.WaitGroup) error {
	var backoff time.Duration
	for {
		nc, err := st.ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Out of file descriptors and the like: back off and retry
			// rather than give up serving.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("accept failed; retrying", "error", err, "in", backoff)
			select {
			case <-time.After(backoff):
				continue
			case <-ctx.Done():
				return nil
			}
		}
		backoff = 0
		deadline := time.Now().Add(s.cfg.LoginTimeout)
		src := connlimit.Source(nc.RemoteAddr())
		if reason, ok := s.pending.Enter(src, s.cfg.Limits.trusted(src)); !ok {
			// Closed before any TLS work: a flood of connections that never
			// log in costs a socket for an instant, not a handshake and
			// buffers each.
			_ = nc.Close()
			s.stats.refused[reason-1].Add(1)
			if ok, held := s.logRefused.allow(); ok {
				s.log.Warn("connection refused: too many connections not logged in",
					"remote", nc.RemoteAddr().String(), "cap", reason.String(),
					"pending", s.pending.Pending(), "refused_since_last_log", held)
			}
			continue
		}
		nc = newPollConn(nc, s.poller)
		s.mu.Lock()
		if s.closed || ctx.Err() != nil {
			s.mu.Unlock()
			s.pending.Leave(src)
			_ = nc.Close()
			return nil
		}
		st.conns[nc] = struct{}{}
		s.wg.Add(1)
		conns.Add(1)
		s.mu.Unlock()
		go s.handle(ctx, nc, pendingConn{src: src, deadline: deadline}, func() {
			s.mu.Lock()
			delete(st.conns, nc)
			s.mu.Unlock()
			conns.Done()
			s.wg.Done()
		})
	}
}

// Close stops every Serve, disconnects every endpoint (marking it offline),
// and releases the database and the presence store if the server owns it.
// It is idempotent and returns after every goroutine of the server has
// exited.
func (s *Server) Close() error {
	s.mu.Lock()
	first := !s.closed
	s.closed = true
	if first {
		for st := range s.serves {
			_ = st.ln.Close()
			for nc := range st.conns {
				_ = nc.Close()
			}
		}
	}
	s.mu.Unlock()
	s.cancelBase()
	s.wg.Wait()
	s.stopFan()
	s.fanoutWG.Wait()
	if first {
		return s.closeStorage()
	}
	return nil
}

func (s *Server) closeStorage() error {
	var errs []error
	if s.poller != nil {
		errs = append(errs, s.poller.Close())
	}
	if s.ownStore {
		errs = append(errs, s.store.Close())
	}
	errs = append(errs, s.db.Close())
	return errors.Join(errs...)
}

// Status is a snapshot of the server's state and counters.
type Status struct {
	OnlineEndpoints int    `json:"online_endpoints"` // endpoints logged in to this server now
	Logins          uint64 `json:"logins"`           // successful logins since start
	AuthFailures    uint64 `json:"auth_failures"`    // logins refused: unknown user or wrong password
	BadLogins       uint64 `json:"bad_logins"`       // first messages that were not a valid login
	Timeouts        uint64 `json:"timeouts"`         // endpoints disconnected for silence
	ProtocolErrors  uint64 `json:"protocol_errors"`  // sessions ended by a malformed or unexpected frame
	SlowDisconnects uint64 `json:"slow_disconnects"` // endpoints disconnected for not reading pushes
	Replaced        uint64 `json:"replaced"`         // sessions replaced by a new login of the same device
	PresencePushes  uint64 `json:"presence_pushes"`  // presence messages written to endpoints
	RateLimited     uint64 `json:"rate_limited"`     // logins refused by the failed-login limiter, password unchecked
	RefusedConns    uint64 `json:"refused_conns"`    // connections closed at accept: too many not logged in
	PendingConns    int64  `json:"pending_conns"`    // connections not logged in yet, now
	LimiterEntries  int    `json:"limiter_entries"`  // sources and user-at-source pairs the limiter tracks now
	NotDelegated    uint64 `json:"not_delegated"`    // gateway logins refused: user not delegated, or the device online with its own login
	GatewaySessions int    `json:"gateway_sessions"` // gateway sessions online now, each carrying many devices
}

// Status returns a snapshot of the server's state.
func (s *Server) Status() Status {
	s.mu.Lock()
	online := len(s.sessions)
	gateways := s.gateways
	s.mu.Unlock()
	st := s.stats
	return Status{
		OnlineEndpoints: online,
		Logins:          st.logins[loginOK].Load(),
		AuthFailures:    st.logins[loginAuthFailed].Load(),
		BadLogins:       st.logins[loginBadRequest].Load(),
		Timeouts:        st.ends[endTimeout].Load(),
		ProtocolErrors:  st.ends[endProtocol].Load(),
		SlowDisconnects: st.ends[endSlow].Load(),
		Replaced:        st.ends[endReplaced].Load(),
		PresencePushes:  st.pushes.Load(),
		RateLimited:     st.logins[loginRateLimited].Load(),
		RefusedConns:    st.refused[0].Load() + st.refused[1].Load(),
		PendingConns:    s.pending.Pending(),
		LimiterEntries:  s.fails.size(),
		NotDelegated:    st.logins[loginNotDelegated].Load(),
		GatewaySessions: gateways,
	}
}

// idLock returns the stripe lock for id (FNV-1a over "user/device").
func (s *Server) idLock(id pki.Identity) *sync.Mutex {
	h := uint32(2166136261)
	for i := 0; i < len(id.User); i++ {
		h = (h ^ uint32(id.User[i])) * 16777619
	}
	h = (h ^ '/') * 16777619
	for i := 0; i < len(id.Device); i++ {
		h = (h ^ uint32(id.Device[i])) * 16777619
	}
	return &s.idLocks[h%uint32(len(s.idLocks))]
}

// fanout turns every presence change into pushes, in store order, to the
// sessions interested in the changed user. It only appends to per-session
// queues, so a slow endpoint never delays the others.
func (s *Server) fanout(ctx context.Context, events <-chan presence.Entry) {
	defer s.fanoutWG.Done()
	var recv []*session // reused between events
	for {
		e, ok := <-events
		if !ok {
			if ctx.Err() != nil {
				return
			}
			// The store could not deliver every change (a remote backend
			// dropped the subscription). Watch again, then re-send current
			// presence so every endpoint converges.
			s.log.Error("presence watch ended unexpectedly; resubscribing")
			events = s.rewatch(ctx)
			if events == nil {
				return
			}
			continue
		}
		start := time.Now()
		msg := &wire.Presence{Device: e.Wire()}
		s.mu.Lock()
		for _, r := range s.interest[e.User] {
			if r.id.User == e.User && r.id.Device == e.Device {
				continue // an endpoint is not told about itself
			}
			recv = append(recv, r)
		}
		s.mu.Unlock()
		for i, r := range recv {
			r.enqueue(msg)
			recv[i] = nil
		}
		recv = recv[:0]
		s.stats.fanout.Observe(time.Since(start).Seconds())
	}
}

// rewatch subscribes again (retrying with backoff until ctx ends) and
// pushes every interested session the current presence it cares about.
func (s *Server) rewatch(ctx context.Context) <-chan presence.Entry {
	backoff := 100 * time.Millisecond
	for {
		events, err := s.store.Watch(ctx)
		if err == nil {
			s.resync(ctx)
			return events
		}
		if ctx.Err() != nil || errors.Is(err, presence.ErrClosed) {
			return nil
		}
		s.log.Error("presence watch failed; retrying", "error", err, "in", backoff)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return nil
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

func (s *Server) resync(ctx context.Context) {
	s.mu.Lock()
	users := make(map[string][]*session, len(s.interest))
	for u, list := range s.interest {
		users[u] = slices.Clone(list)
	}
	s.mu.Unlock()
	for u, rs := range users {
		entries, err := s.store.ListUser(ctx, u)
		if err != nil {
			s.log.Error("presence resync failed", "user", u, "error", err)
			continue
		}
		for _, e := range entries {
			msg := &wire.Presence{Device: e.Wire()}
			for _, r := range rs {
				if r.id.User != e.User || r.id.Device != e.Device {
					r.enqueue(msg)
				}
			}
		}
	}
}
