package endpoint

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/baton-voice/baton/p2p/connlimit"
	"github.com/baton-voice/baton/p2p/pki"
)

// Host errors.
var (
	// ErrHostNotStarted means an endpoint of a Host was started before
	// the Host (it has no signaling address to advertise yet).
	ErrHostNotStarted = errors.New("endpoint: host not started")
	// ErrDuplicateIdentity means a Host already serves an endpoint with
	// this identity: one identity has one endpoint per host.
	ErrDuplicateIdentity = errors.New("endpoint: identity already on this host")
)

// HostConfig configures a Host.
type HostConfig struct {
	// SignalListen is where direct signaling for every endpoint of the
	// host is accepted ("127.0.0.1:0").
	SignalListen string
	// MaxPreAuthPerSource, MaxPreAuth and PreAuthTimeout cap connections
	// that have not completed the mutual TLS handshake and their first
	// message, per source and in total over the whole host (0 = 32, 1024
	// and 5 s); they replace the endpoints' own.
	MaxPreAuthPerSource int
	MaxPreAuth          int
	PreAuthTimeout      time.Duration
	// AddrWatch is how often the host's one address watcher checks the
	// media address of each endpoint (mobility, addrwatch.go): 0 = every
	// second, negative = never. It replaces the endpoints' AddrWatch.
	AddrWatch time.Duration
	// NoLocalShortcut turns off the in-process connection between two
	// endpoints of this host (localconn.go): a dial from one to another
	// then goes over TCP and TLS to the host's own listener, as a dial
	// from another process does (for tests and benchmarks of that path).
	NoLocalShortcut bool
	// Logger receives the host's logs; nil = discard.
	Logger *slog.Logger

	// present, in tests, replaces addrPresent for the watcher.
	present func(netip.Addr) bool
}

// Host runs many endpoints in one process (a gateway's SIP devices, or the
// one endpoint of `baton phone`) behind one signaling listener: the dialer
// names the endpoint it wants by TLS server name (pki.ServerName of the
// identity, which EndpointClientConfig sends), and the host hands the
// connection to that endpoint after the handshake. Every endpoint of the
// host advertises the host's one signaling address in presence. The
// pre-authentication caps, the address watcher and the cache of verified
// peer chains are the host's, shared by its endpoints (issue 11 §3).
//
// Create it with NewHost, Start it, then Add endpoints and Start each.
type Host struct {
	cfg     HostConfig
	log     *slog.Logger
	preAuth *connlimit.Gate
	stats   *counters // rejections no endpoint can be blamed for
	// verified is the one cache of verified peer chains of every endpoint
	// of the host (pki.VerifyCache): the peers of a gateway's devices are
	// largely the same, and one bound holds for the whole host instead of
	// one per endpoint (issue 11 §3).
	verified *pki.VerifyCache
	// refuseName is the TLS config of a connection that asked for no
	// endpoint of this host: with no certificate to offer, the handshake
	// ends with the unrecognized_name alert (RFC 6066 §3), which the
	// dialer reports.
	refuseName *tls.Config

	// lastNameLog rate-limits the log line of refused server names.
	lastNameLog atomic.Int64
	quietNames  atomic.Int64
	// local counts the signaling connections made in process between two
	// endpoints of the host (localconn.go).
	local atomic.Uint64
	// serveLocal is (*Endpoint).serveSignaling, reached through a field:
	// a direct call from dialLocal would close an initialization cycle
	// through the handoff table (aHandlers -> dial -> ... -> aHandlers).
	serveLocal func(e *Endpoint, nc net.Conn, peer pki.Identity, deadline time.Time, authenticated func(), log *slog.Logger)

	mu     sync.Mutex
	ln     net.Listener
	byName map[string]*Endpoint // by pki.ServerName of the identity
	closed bool
	// tickets are the TLS session ticket keys of every connection of the
	// host (newest first), so that a dialer's resumption (pki.
	// IdentitySessionCache) works across connections although each
	// connection's config is built for it; rotated as crypto/tls rotates
	// its own (ticketKeys).
	tickets   [][32]byte
	ticketsAt time.Time

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// hostVerifyCacheSize bounds the host's one cache of verified peer
// chains: one entry per peer leaf (pki.VerifyCache), a parsed certificate
// of about 1.5 KiB each, so at most a few MiB for the whole host.
const hostVerifyCacheSize = 4096

// NewHost checks cfg; Start opens the listener.
func NewHost(cfg HostConfig) (*Host, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.SignalListen == "" {
		cfg.SignalListen = "127.0.0.1:0"
	}
	if cfg.MaxPreAuthPerSource <= 0 {
		cfg.MaxPreAuthPerSource = DefaultMaxPreAuthPerSource
	}
	if cfg.MaxPreAuth <= 0 {
		cfg.MaxPreAuth = DefaultMaxPreAuth
	}
	if cfg.PreAuthTimeout <= 0 {
		cfg.PreAuthTimeout = DefaultPreAuthTimeout
	}
	if cfg.AddrWatch == 0 {
		cfg.AddrWatch = time.Second
	}
	if cfg.present == nil {
		cfg.present = addrPresent
	}
	return &Host{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "host"),
		preAuth: connlimit.NewGate(cfg.MaxPreAuthPerSource, cfg.MaxPreAuth),
		stats:   newCounters(),
		byName:  map[string]*Endpoint{},

		verified: pki.NewVerifyCache(hostVerifyCacheSize),

		refuseName: &tls.Config{MinVersion: tls.VersionTLS13},
		serveLocal: (*Endpoint).serveSignaling,
	}, nil
}

// Start opens the signaling listener and runs the address watcher until
// Close.
func (h *Host) Start(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return ErrClosed
	}
	if h.ln != nil {
		return nil
	}
	ln, err := net.Listen("tcp", h.cfg.SignalListen)
	if err != nil {
		return fmt.Errorf("endpoint: listen for signaling on %s: %w", h.cfg.SignalListen, err)
	}
	h.ln = ln
	h.ctx, h.cancel = context.WithCancel(context.WithoutCancel(ctx))
	h.wg.Add(1)
	go func() { defer h.wg.Done(); h.acceptLoop(ln) }()
	if h.cfg.AddrWatch > 0 {
		h.wg.Add(1)
		go func() { defer h.wg.Done(); h.watchAddresses() }()
	}
	h.log.Info("host listening", "signal", ln.Addr().String())
	return nil
}

// SignalAddr returns the bound signaling address, the one every endpoint
// of the host advertises.
func (h *Host) SignalAddr() netip.AddrPort {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ln == nil {
		return netip.AddrPort{}
	}
	return h.ln.Addr().(*net.TCPAddr).AddrPort()
}

// Add builds an endpoint of this host (as New does); Start it to log it
// in. cfg.SignalListen must be empty: the endpoint is reached on the
// host's listener. cfg's pre-authentication caps and AddrWatch are the
// host's.
func (h *Host) Add(cfg Config) (*Endpoint, error) {
	if cfg.SignalListen != "" {
		return nil, fmt.Errorf("%w: signal listen %q: an endpoint of a host is reached on the host's listener", ErrInvalidConfig, cfg.SignalListen)
	}
	cfg.MaxPreAuthPerSource, cfg.MaxPreAuth, cfg.PreAuthTimeout = h.cfg.MaxPreAuthPerSource, h.cfg.MaxPreAuth, h.cfg.PreAuthTimeout
	cfg.AddrWatch = -1 // the host's watcher checks it
	e, err := New(cfg)
	if err != nil {
		return nil, err
	}
	e.host = h
	e.preAuth = h.preAuth
	e.verified = h.verified
	e.serverName = pki.ServerName(e.id)
	return e, nil
}

// attach makes e reachable on the host (Endpoint.Start).
func (h *Host) attach(e *Endpoint) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return ErrClosed
	}
	if h.ln == nil {
		return ErrHostNotStarted
	}
	if other, ok := h.byName[e.serverName]; ok && other != e {
		return fmt.Errorf("%w: %s", ErrDuplicateIdentity, e.id)
	}
	h.byName[e.serverName] = e
	return nil
}

// detach makes e unreachable (Endpoint.Close, crash): a connection that
// asks for it from now on is refused as an unknown name.
func (h *Host) detach(e *Endpoint) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.byName[e.serverName] == e {
		delete(h.byName, e.serverName)
	}
}

func (h *Host) lookup(serverName string) *Endpoint {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.byName[serverName]
}

// Endpoints returns the started endpoints of the host, by identity.
func (h *Host) Endpoints() []*Endpoint {
	h.mu.Lock()
	out := make([]*Endpoint, 0, len(h.byName))
	for _, e := range h.byName {
		out = append(out, e)
	}
	h.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].id.String() < out[j].id.String() })
	return out
}

// Rejected returns how many signaling connections the host refused
// before any endpoint was chosen, for reason ("pre-auth-cap",
// "unknown-name", "no-name", "handshake").
func (h *Host) Rejected(reason string) uint64 {
	h.stats.mu.Lock()
	defer h.stats.mu.Unlock()
	return h.stats.rejects[reason]
}

// LocalConnections returns how many signaling connections between two
// endpoints of the host were made in process, without TCP or TLS
// (HostConfig.NoLocalShortcut).
func (h *Host) LocalConnections() uint64 { return h.local.Load() }

// enterLocal counts the goroutine serving the callee end of an in-process
// connection in the host's wg, unless the host is closing.
func (h *Host) enterLocal() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.wg.Add(1)
	return true
}

// Close closes every endpoint still on the host, then the listener, and
// returns after every goroutine of the host has exited. It is idempotent.
func (h *Host) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	eps := make([]*Endpoint, 0, len(h.byName))
	for _, e := range h.byName {
		eps = append(eps, e)
	}
	h.mu.Unlock()
	var errs []error
	for _, e := range eps {
		errs = append(errs, e.Close())
	}
	if h.cancel != nil {
		h.cancel()
	}
	h.mu.Lock()
	ln := h.ln
	h.mu.Unlock()
	if ln != nil {
		_ = ln.Close()
	}
	h.wg.Wait()
	return errors.Join(errs...)
}

// acceptLoop accepts signaling connections until the listener closes,
// with the host's pre-authentication caps (acceptSignaling, as a
// standalone endpoint's).
func (h *Host) acceptLoop(ln net.Listener) {
	acceptSignaling(h.ctx, ln, h.log, h.preAuth, h.cfg.PreAuthTimeout, h.stats, &h.wg, h.serveConn)
}

// Ticket keys rotate daily and a ticket is accepted for up to a week
// after its key was made current, like crypto/tls's own automatic keys.
const (
	ticketKeyRotation = 24 * time.Hour
	ticketKeysKept    = 7
)

// ticketKeys returns the host's session ticket keys, newest first,
// rotating them when the newest is older than ticketKeyRotation.
func (h *Host) ticketKeys() [][32]byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.tickets) == 0 || time.Since(h.ticketsAt) >= ticketKeyRotation {
		var k [32]byte
		_, _ = rand.Read(k[:]) // crypto/rand.Read never fails
		h.tickets = append([][32]byte{k}, h.tickets...)
		if len(h.tickets) > ticketKeysKept {
			h.tickets = h.tickets[:ticketKeysKept]
		}
		h.ticketsAt = time.Now()
	}
	return h.tickets
}

// serveConn runs the TLS handshake as the endpoint the client names, then
// hands the connection to that endpoint's serveConn. A name no endpoint of
// the host has is refused before any endpoint work.
func (h *Host) serveConn(nc net.Conn, src netip.Addr, deadline time.Time) {
	var ep *Endpoint
	refused := false
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS13,
		// The ticket keys of the config GetConfigForClient returns are
		// this one's (crypto/tls), so they must be the host's.
		GetConfigForClient: func(hi *tls.ClientHelloInfo) (*tls.Config, error) {
			ep = h.lookup(hi.ServerName)
			if ep == nil {
				refused = true
				h.refuseServerName(hi.ServerName, nc.RemoteAddr())
				return h.refuseName, nil
			}
			// Built per connection, not kept per endpoint: a gateway's
			// thousands of idle devices would each hold one.
			return ep.verified.ServerConfig(ep.certificate, ep.cfg.Roots, ep.cfg.Now), nil
		},
	}
	cfg.SetSessionTicketKeys(h.ticketKeys())
	tc := tls.Server(nc, cfg)
	_ = tc.SetDeadline(deadline)
	if err := tc.HandshakeContext(h.ctx); err != nil {
		switch {
		case refused:
		case ep != nil:
			ep.stats.rejected("handshake")
			ep.log.Info("signaling handshake refused", "remote", nc.RemoteAddr().String(), "err", err)
		default:
			h.stats.rejected("handshake")
			h.log.Info("signaling handshake refused", "remote", nc.RemoteAddr().String(), "err", err)
		}
		h.preAuth.Leave(src)
		_ = tc.Close()
		return
	}
	if !ep.enterConn() {
		// Closed (or crashed) during the handshake.
		h.preAuth.Leave(src)
		_ = tc.Close()
		return
	}
	defer ep.wg.Done()
	ep.serveConn(tc, src, deadline)
}

// refuseServerName counts and logs a connection whose server name no
// endpoint of the host has. The log line is kept to one a second: a scan
// would otherwise flood it; the counter has every one.
func (h *Host) refuseServerName(name string, remote net.Addr) {
	reason, why := "unknown-name", "no endpoint of this host has that identity (offline, moved, or never here)"
	switch {
	case name == "":
		reason, why = "no-name", "the client named no endpoint (TLS server name missing)"
	case !pki.IsServerName(name):
		why = "not an endpoint server name (want pki.ServerName of user/device)"
	}
	h.stats.rejected(reason)
	now := time.Now().UnixNano()
	last := h.lastNameLog.Load()
	if now-last < int64(time.Second) || !h.lastNameLog.CompareAndSwap(last, now) {
		h.quietNames.Add(1)
		return
	}
	h.log.Info("signaling refused: unknown endpoint", "remote", remote.String(), "server_name", name,
		"why", why, "refused_unlogged_since_last", h.quietNames.Swap(0))
}

// watchAddresses is the host's one address watcher: every AddrWatch, each
// endpoint's media address is checked (one interface lookup per distinct
// address), and an endpoint whose address is gone moves its media.
func (h *Host) watchAddresses() {
	t := time.NewTicker(h.cfg.AddrWatch)
	defer t.Stop()
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-t.C:
		}
		seen := map[netip.Addr]bool{}
		present := func(ip netip.Addr) bool {
			p, ok := seen[ip]
			if !ok {
				p = h.cfg.present(ip)
				seen[ip] = p
			}
			return p
		}
		for _, e := range h.Endpoints() {
			if h.ctx.Err() != nil {
				return
			}
			e.checkAddress(present)
		}
	}
}

var hostDescs = struct {
	rejected, endpoints, pending, local *prometheus.Desc
}{
	local:     prometheus.NewDesc("baton_host_local_connections_total", "Signaling connections between two endpoints of the host made in process, without TCP or TLS.", nil, nil),
	rejected:  prometheus.NewDesc("baton_host_signaling_rejected_total", "Signaling connections the host refused before choosing an endpoint, by reason: pre-auth-cap, unknown-name, no-name, handshake.", []string{"reason"}, nil),
	endpoints: prometheus.NewDesc("baton_host_endpoints", "Endpoints reachable on the host's signaling listener.", nil, nil),
	pending:   prometheus.NewDesc("baton_host_preauth_pending", "Signaling connections not yet authenticated.", nil, nil),
}

// Register adds the host's metrics to reg. Each endpoint registers its
// own (Endpoint.Register), with its device label.
func (h *Host) Register(reg prometheus.Registerer) error {
	if err := reg.Register(hostCollector{h}); err != nil {
		return fmt.Errorf("endpoint: host metrics: %w", err)
	}
	return nil
}

type hostCollector struct{ h *Host }

func (c hostCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- hostDescs.rejected
	ch <- hostDescs.endpoints
	ch <- hostDescs.pending
	ch <- hostDescs.local
}

func (c hostCollector) Collect(ch chan<- prometheus.Metric) {
	h := c.h
	h.stats.mu.Lock()
	for k, v := range h.stats.rejects {
		ch <- prometheus.MustNewConstMetric(hostDescs.rejected, prometheus.CounterValue, float64(v), k)
	}
	h.stats.mu.Unlock()
	h.mu.Lock()
	n := len(h.byName)
	h.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(hostDescs.endpoints, prometheus.GaugeValue, float64(n))
	ch <- prometheus.MustNewConstMetric(hostDescs.pending, prometheus.GaugeValue, float64(h.preAuth.Pending()))
	ch <- prometheus.MustNewConstMetric(hostDescs.local, prometheus.CounterValue, float64(h.local.Load()))
}
