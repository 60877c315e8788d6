package gateway

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/baton-voice/baton/codecs"
	"github.com/baton-voice/baton/p2p/access"
	"github.com/baton-voice/baton/p2p/endpoint"
	"github.com/baton-voice/baton/p2p/handoff"
	"github.com/baton-voice/baton/p2p/wire"
	"github.com/baton-voice/baton/sipbridge"
	"github.com/baton-voice/baton/sipbridge/sdp"
)

// Account is one SIP user agent the gateway registers and bridges: a SIP
// user name with its digest secret (as HA1, never in plain text) and the
// P2P device it appears as.
type Account struct {
	// SIPUser is the digest user name and the user part of its AOR.
	SIPUser string
	// HA1 is MD5(user:realm:password) (RFC 2617 §3.2.2.2), lower-case hex.
	HA1 string
	// User and Device are the P2P identity, e.g. alice/desk.
	User, Device string
	// Password logs the device into the access server when the gateway
	// has no Credential; with one it is not used (and may be empty).
	Password string
	// MaxCalls bounds the device's P2P calls at once (0: DefaultMaxCalls).
	MaxCalls int
}

// Defaults of the P2P signaling listener's pre-authentication caps
// (Config.MaxPreAuthPerSource, MaxPreAuth): higher than one phone's
// (endpoint.DefaultMaxPreAuthPerSource, 32), since all the gateway's
// devices share the listener and a source may be an office's NAT.
const (
	DefaultMaxPreAuthPerSource = 256
	DefaultMaxPreAuth          = 4096
)

// sipUDPBuffer is the socket buffer the SIP UDP listener asks for.
const sipUDPBuffer = 4 << 20

// DefaultMaxCalls is a device's bound on calls at once when its Account
// sets none: a SIP account may have several phones and calls, and the
// phones themselves refuse what they cannot take (486).
const DefaultMaxCalls = 8

// Credential is the gateway's own credential at the access server (`baton
// gateway add NAME --users ...`, issue 8 §1): every bridged device logs in
// with it instead of its user's password, for the users delegated to it.
type Credential struct {
	// Name is the gateway's name at the access server; Secret the secret
	// `baton gateway add` issued.
	Name, Secret string
}

// Config configures a Gateway.
type Config struct {
	// Access is the access server's host:port; Roots trusts its CA.
	Access string
	Roots  *x509.CertPool
	// Credential, when Name is set, logs every device in as this gateway
	// (docs/sip.md, "Gateway credential"); otherwise each device logs in
	// with its account's Password.
	Credential Credential
	// UDP and TCP are the SIP listen addresses; "" turns one off.
	UDP, TCP string
	// TLS is the SIP-over-TLS listen address (RFC 3261 §26.3.1, a phone's
	// transport=tls); "" turns it off. TLSConfig holds its certificate.
	TLS       string
	TLSConfig *tls.Config
	// Advertise is the host put in our Contact headers and SDP (the
	// gateway's public address behind NAT); "" = the listen IP.
	Advertise string
	// Realm is the digest realm (RFC 3261 §22.1).
	Realm string
	// NonceTTL bounds a digest nonce's life; after it the phone gets
	// stale=true and retries without asking its user (default 5 min).
	NonceTTL time.Duration
	// MinExpires and MaxExpires bound a registration (defaults 60 s, 1 h):
	// shorter asks get 423 Interval Too Brief (RFC 3261 §10.3 step 7).
	MinExpires, MaxExpires time.Duration
	// MediaIP is where RTP sockets bind, both toward phones and toward
	// P2P endpoints.
	MediaIP netip.Addr
	// SRTP encrypts the P2P legs; SIPSRTP is SDES-SRTP on the SIP legs
	// (srtp.go; zero: off).
	SRTP    bool
	SIPSRTP sdp.SRTPMode
	// Codecs are the codecs of both sides in preference order (PCMU, PCMA).
	Codecs *codecs.Registry
	// Accounts are the bridged SIP user agents.
	Accounts []Account
	// PickupCode is the number a registered phone dials to take its
	// user's active call from another device (e.g. "*8"); "" turns
	// pickup off.
	PickupCode string
	// Trunks are the SIP providers calls come in from (docs/sip.md).
	Trunks []Trunk
	// DialPlan sends numbers dialled by registered phones out through a
	// trunk; the first rule whose prefix matches wins.
	DialPlan []DialRule
	// Policy decides session queries and pulls for every bridged device
	// (endpoint.Config.Policy), and who may watch (dialog-event
	// SUBSCRIBE) and take (INVITE with Replaces) a user's calls; nil is
	// the same-user rule.
	Policy handoff.Policy
	// NoLocalShortcut makes a P2P call between two devices of this
	// gateway go over TCP and TLS to its own signaling listener instead of
	// in process (endpoint.HostConfig.NoLocalShortcut; benchmarks and
	// tests of that path).
	NoLocalShortcut bool
	// MaxPreAuthPerSource, MaxPreAuth and PreAuthTimeout cap the P2P
	// signaling connections to the devices that have not authenticated
	// yet, per source and in total (endpoint.HostConfig); zero: the
	// gateway defaults, 256, 4,096 and 5 s.
	MaxPreAuthPerSource int
	MaxPreAuth          int
	PreAuthTimeout      time.Duration
	// MediaTimeout ends a call whose SIP leg has been silent this long
	// (default 30 s).
	MediaTimeout time.Duration
	// FailBurst and FailEvery limit failed digest authentications per
	// source address (defaults 10, one more per 6 s).
	FailBurst int
	FailEvery time.Duration
	// Logger receives the gateway's logs; nil = discard.
	Logger *slog.Logger
	// Now is the clock; nil = time.Now.
	Now func() time.Time
}

func (c *Config) setDefaults() error {
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Realm == "" {
		c.Realm = "baton"
	}
	if c.NonceTTL == 0 {
		c.NonceTTL = 5 * time.Minute
	}
	if c.MinExpires == 0 {
		c.MinExpires = 60 * time.Second
	}
	if c.MaxExpires == 0 {
		c.MaxExpires = time.Hour
	}
	if c.MediaTimeout == 0 {
		c.MediaTimeout = 30 * time.Second
	}
	if c.FailBurst == 0 {
		c.FailBurst = 10
	}
	if c.FailEvery == 0 {
		c.FailEvery = 6 * time.Second
	}
	if c.SIPSRTP == sdp.SRTPModeUnknown {
		c.SIPSRTP = sdp.SRTPOff
	}
	if c.Codecs == nil {
		c.Codecs = codecs.DefaultRegistry()
	}
	// The SIP legs speak what SDP here can describe (G.711); the P2P legs
	// speak every codec, plugin codecs included (a softphone's opus is
	// transcoded to the phone's PCMU through PCM). The leg's PCM is the
	// SIP codec's 8 kHz, so every codec must take 8 kHz PCM.
	known := false
	for _, cd := range c.Codecs.List() {
		d := cd.Descriptor()
		if sdp.Known(d.Name) {
			known = true
		}
		if d.SampleRate != 8000 {
			return fmt.Errorf("gateway: codec %s takes %d Hz PCM; the gateway bridges at 8000 Hz (a codec plugin: start it at 8 kHz, for codec-opus args [\"-rate\", \"8000\"])", d.Name, d.SampleRate)
		}
	}
	if !known {
		return fmt.Errorf("gateway: codecs %v: none for the SIP side (PCMU or PCMA)", c.Codecs.Names())
	}
	if !c.MediaIP.IsValid() {
		return errors.New("gateway: media IP is required")
	}
	if c.UDP == "" && c.TCP == "" && c.TLS == "" {
		return errors.New("gateway: no SIP listener configured (udp, tcp and tls are all off)")
	}
	if c.TLS != "" && (c.TLSConfig == nil || (len(c.TLSConfig.Certificates) == 0 && c.TLSConfig.GetCertificate == nil)) {
		return errors.New("gateway: the sip tls listener needs a certificate and key")
	}
	seen := map[string]bool{}
	for _, a := range c.Accounts {
		if seen[a.SIPUser] {
			return fmt.Errorf("gateway: account %q is configured twice", a.SIPUser)
		}
		seen[a.SIPUser] = true
		if !wire.ValidName(a.User) || !wire.ValidName(a.Device) {
			return fmt.Errorf("gateway: account %q: P2P identity %q/%q is not valid", a.SIPUser, a.User, a.Device)
		}
		if len(a.HA1) != 32 {
			return fmt.Errorf("gateway: account %q: ha1 must be 32 hex digits (MD5 of user:realm:password)", a.SIPUser)
		}
	}
	if err := c.checkTrunks(); err != nil {
		return err
	}
	return c.checkDialPlan()
}

// Gateway bridges SIP user agents into the P2P network: a registrar with
// digest authentication, and a B2BUA that turns each SIP call into a P2P
// call of the phone's device endpoint, with the media anchored here.
type Gateway struct {
	cfg Config
	log *slog.Logger

	ua       *sipgo.UserAgent
	srv      *sipgo.Server
	cli      *sipgo.Client
	inbound  *sipgo.DialogServerCache
	outbound *sipgo.DialogClientCache
	contact  sip.ContactHeader
	// contacts are our Contact per transport ("UDP", "TCP", "TLS"): the
	// listener's port, and transport=tcp or tls so that the phone's
	// in-dialog requests come back over the transport the dialog uses
	// (RFC 3261 §12.1.1, §19.1.4).
	contacts map[string]*sip.ContactHeader

	verifier *sipbridge.Verifier
	limiter  *sipbridge.FailLimiter
	bindings *sipbridge.Bindings
	stats    stats

	devices map[string]*device // by SIP user, and trunkKey(name) for trunks
	// deviceIDs are the devices' P2P identities ("alice/desk"), fixed
	// after New.
	deviceIDs map[string]bool
	// access is the one session to the access server that carries every
	// device's login and presence, when the gateway has a Credential
	// (issue 8 §1); nil: each device logs in on its own.
	access *access.GatewaySession
	// host is the one P2P signaling listener of every device endpoint
	// (endpoint.Host, issue 11 §3): N phones, one port.
	host   *endpoint.Host
	trunks []*trunkState
	// trunkStop ends the trunk registrations (unREGISTER) before the
	// listeners close; trunkWG waits for them.
	trunkStop chan struct{}
	trunkWG   sync.WaitGroup
	dialogs   *notifier // dialog-event subscriptions (dialogevent.go)
	// hlog is the handoff log: SIP messages, P2P-to-SIP call ids, the
	// handoffs and transfers of the devices (handofflog.go).
	hlog *handoffLog

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// sipCodecs are the codecs the SIP legs offer and accept, in
	// preference order: those of cfg.Codecs that SDP can describe.
	sipCodecs []string

	mu      sync.Mutex
	bridges map[string]*bridge // by SIP Call-ID
	// flows are the TCP/TLS connections phones registered over, by
	// binding (flow.go): calls to a phone reuse them.
	flows map[string]flow
	addrs map[string]string // "udp"/"tcp"/"tls" -> bound address
	// listeners are the SIP sockets (sipgo's Close does not close
	// sockets handed to ServeUDP/ServeTCP).
	listeners []io.Closer
	closed    bool
}

// New checks cfg and builds a Gateway; Start opens its listeners.
func New(cfg Config) (*Gateway, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	var sipCodecs []string
	for _, name := range cfg.Codecs.Names() {
		if sdp.Known(name) {
			sipCodecs = append(sipCodecs, name)
		}
	}
	g := &Gateway{
		cfg:       cfg,
		sipCodecs: sipCodecs,
		log:       cfg.Logger,
		devices:   map[string]*device{},
		bridges:   map[string]*bridge{},
		addrs:     map[string]string{},
		dialogs:   newNotifier(),
	}
	g.hlog = newHandoffLog(g)
	for _, a := range cfg.Accounts {
		g.devices[a.SIPUser] = &device{g: g, acct: a, calls: map[string]*bridge{}, pending: map[string][]endpoint.Event{}}
	}
	g.trunkStop = make(chan struct{})
	for _, tc := range cfg.Trunks {
		t := &trunkState{cfg: tc}
		t.dev = &device{g: g, trunk: t, acct: Account{SIPUser: trunkKey(tc.Name), User: tc.User, Device: tc.Device, Password: tc.Password},
			calls: map[string]*bridge{}, pending: map[string][]endpoint.Event{}}
		g.devices[trunkKey(tc.Name)] = t.dev
		g.trunks = append(g.trunks, t)
	}
	g.deviceIDs = make(map[string]bool, len(g.devices))
	for _, d := range g.devices {
		g.deviceIDs[d.identity()] = true
	}
	if cr := cfg.Credential; cr.Name != "" {
		as, err := access.NewGatewaySession(access.GatewayConfig{
			Addr: cfg.Access, Roots: cfg.Roots, Gateway: cr.Name, Secret: cr.Secret,
			Logger: cfg.Logger, Now: cfg.Now,
		})
		if err != nil {
			return nil, fmt.Errorf("gateway: credential: %w", err)
		}
		g.access = as
	}
	// The address watcher stays off as before: the gateway's MediaIP is
	// configured, not a roaming laptop's.
	host, err := endpoint.NewHost(endpoint.HostConfig{
		SignalListen:    cfg.MediaIP.String() + ":0",
		AddrWatch:       -1,
		NoLocalShortcut: cfg.NoLocalShortcut,
		// Many softphones call a gateway's devices, often from one NAT.
		MaxPreAuthPerSource: cmp.Or(cfg.MaxPreAuthPerSource, DefaultMaxPreAuthPerSource),
		MaxPreAuth:          cmp.Or(cfg.MaxPreAuth, DefaultMaxPreAuth),
		PreAuthTimeout:      cfg.PreAuthTimeout,
		Logger:              cfg.Logger.With("part", "p2p-host"),
	})
	if err != nil {
		return nil, fmt.Errorf("gateway: p2p host: %w", err)
	}
	g.host = host
	g.verifier = sipbridge.NewVerifier(cfg.Realm, cfg.NonceTTL, cfg.Now, func(user string) (string, bool) {
		d, ok := g.devices[user]
		if !ok || d.trunk != nil {
			return "", false
		}
		return strings.ToLower(d.acct.HA1), true
	})
	g.limiter = &sipbridge.FailLimiter{Burst: cfg.FailBurst, Every: cfg.FailEvery, Now: cfg.Now}
	g.bindings = &sipbridge.Bindings{Now: cfg.Now, OnChange: g.onBindingChange}
	return g, nil
}

// Start opens the SIP listeners and serves until ctx ends or Close.
func (g *Gateway) Start(ctx context.Context) error {
	g.ctx, g.cancel = context.WithCancel(ctx)
	if err := g.host.Start(g.ctx); err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("baton-gateway"))
	if err != nil {
		return fmt.Errorf("gateway: sip user agent: %w", err)
	}
	g.ua = ua
	g.srv, err = sipgo.NewServer(ua, sipgo.WithServerLogger(g.log.With("part", "sip")))
	if err != nil {
		return fmt.Errorf("gateway: sip server: %w", err)
	}
	// Bind the listeners ourselves so errors (a taken port) come back here
	// and port 0 works.
	type served struct {
		network string
		serve   func() error
	}
	var serve []served
	host := ""
	if g.cfg.UDP != "" {
		pc, err := net.ListenPacket("udp", g.cfg.UDP)
		if err != nil {
			return fmt.Errorf("gateway: sip udp listen %s: %w", g.cfg.UDP, err)
		}
		// One socket takes every phone's and trunk's SIP: a burst of
		// INVITEs, 200s and BYEs while the reader is descheduled for a
		// few ms overflows the kernel's default ~200 KB and is lost
		// (UDP RcvbufErrors; sipp then sees retransmissions to calls it
		// ended). Ask for more; the kernel caps it at net.core.rmem_max.
		if uc, ok := pc.(*net.UDPConn); ok {
			_ = uc.SetReadBuffer(sipUDPBuffer)
			_ = uc.SetWriteBuffer(sipUDPBuffer)
		}
		g.listeners = append(g.listeners, pc)
		g.addrs["udp"] = pc.LocalAddr().String()
		host = pc.LocalAddr().String()
		serve = append(serve, served{"udp", func() error { return g.srv.ServeUDP(pc) }})
	}
	if g.cfg.TCP != "" {
		ln, err := net.Listen("tcp", g.cfg.TCP)
		if err != nil {
			g.closeListeners()
			return fmt.Errorf("gateway: sip tcp listen %s: %w", g.cfg.TCP, err)
		}
		g.listeners = append(g.listeners, ln)
		g.addrs["tcp"] = ln.Addr().String()
		if host == "" {
			host = ln.Addr().String()
		}
		serve = append(serve, served{"tcp", func() error { return g.srv.ServeTCP(ln) }})
	}
	if g.cfg.TLS != "" {
		ln, err := tls.Listen("tcp", g.cfg.TLS, g.cfg.TLSConfig)
		if err != nil {
			g.closeListeners()
			return fmt.Errorf("gateway: sip tls listen %s: %w", g.cfg.TLS, err)
		}
		g.listeners = append(g.listeners, ln)
		g.addrs["tls"] = ln.Addr().String()
		if host == "" {
			host = ln.Addr().String()
		}
		serve = append(serve, served{"tls", func() error { return g.srv.ServeTLS(ln) }})
	}
	h, p, _ := net.SplitHostPort(host)
	port, _ := strconv.Atoi(p)
	if g.cfg.Advertise != "" {
		h = g.cfg.Advertise
	}
	g.cli, err = sipgo.NewClient(ua, sipgo.WithClientHostname(h), sipgo.WithClientPort(port))
	if err != nil {
		return fmt.Errorf("gateway: sip client: %w", err)
	}
	g.contact = sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "gateway", Host: h, Port: port}}
	g.contacts = map[string]*sip.ContactHeader{}
	for network, addr := range g.addrs {
		_, p, _ := net.SplitHostPort(addr)
		n, _ := strconv.Atoi(p)
		c := &sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "gateway", Host: h, Port: n, UriParams: sip.NewParams()}}
		if network != "udp" {
			c.Address.UriParams.Add("transport", network)
		}
		g.contacts[strings.ToUpper(network)] = c
	}
	g.inbound = sipgo.NewDialogServerCache(g.cli, g.contact)
	g.outbound = sipgo.NewDialogClientCache(g.cli, g.contact)

	g.srv.OnRegister(g.sipsOverTLS(g.onRegister))
	g.srv.OnOptions(g.sipsOverTLS(g.onOptions))
	g.srv.OnInvite(g.sipsOverTLS(g.onInvite))
	g.srv.OnAck(g.sipsOverTLS(g.onAck))
	g.srv.OnBye(g.sipsOverTLS(g.onBye))
	g.srv.OnRefer(g.sipsOverTLS(g.onRefer))
	g.srv.OnNotify(g.sipsOverTLS(g.onNotify))
	g.srv.OnSubscribe(g.sipsOverTLS(g.onSubscribe))
	g.srv.OnInfo(g.sipsOverTLS(g.onInfo)) // DTMF by SIP INFO (dtmf.go)
	g.srv.OnCancel(g.sipsOverTLS(func(req *sip.Request, tx sip.ServerTransaction) {
		// A CANCEL that matched an INVITE transaction was handled by the
		// transaction layer (the dialog ends, see inboundCall); one that
		// matched nothing gets 481 (RFC 3261 §9.2).
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist", nil))
	}))
	for network, addr := range g.addrs {
		g.hlog.listen(network, addr) // the SIP message log (siplog.go)
	}
	g.hlog.dialed(ua.TransportLayer())
	for _, s := range serve {
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			if err := s.serve(); err != nil && g.ctx.Err() == nil {
				g.log.Error("sip listener stopped", "network", s.network, "err", err)
			}
		}()
	}
	g.wg.Add(1)
	go g.expireLoop()
	g.startTrunks()
	g.log.Info("gateway listening", "udp", g.addrs["udp"], "tcp", g.addrs["tcp"], "tls", g.addrs["tls"], "accounts", len(g.devices))
	return nil
}

// contactFor is our Contact for responses to req: the one of the
// transport req came over, a sips: one for a sips: request.
func (g *Gateway) contactFor(req *sip.Request) *sip.ContactHeader {
	if c, ok := g.contacts["TLS"]; ok && dialogWantsSIPS(req) && strings.EqualFold(req.Transport(), "TLS") {
		return sipsContact(c) // RFC 3261 §12.1.1 (sips.go)
	}
	if c, ok := g.contacts[strings.ToUpper(req.Transport())]; ok {
		return c
	}
	return &g.contact
}

// Addr returns the bound SIP address of network ("udp", "tcp" or "tls").
func (g *Gateway) Addr(network string) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.addrs[network]
}

func (g *Gateway) closeListeners() {
	if g.srv != nil {
		_ = g.srv.Close()
	}
	for _, l := range g.listeners {
		_ = l.Close()
	}
}

// expireLoop drops registrations whose expiry has passed, which turns
// their devices offline.
func (g *Gateway) expireLoop() {
	defer g.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-g.ctx.Done():
			return
		case <-t.C:
			g.bindings.Expire()
			g.pruneFlows()
		}
	}
}

// Close ends every call, logs every device out and stops the listeners.
func (g *Gateway) Close() error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil
	}
	g.closed = true
	bridges := make([]*bridge, 0, len(g.bridges))
	for _, b := range g.bridges {
		bridges = append(bridges, b)
	}
	g.mu.Unlock()
	for _, b := range bridges {
		b.hangup("gateway shutting down")
	}
	if g.ctx != nil {
		sctx, scancel := context.WithTimeout(g.ctx, 3*time.Second)
		g.dialogs.shutdown(sctx)
		scancel()
	}
	close(g.trunkStop)
	g.trunkWG.Wait() // unREGISTER while the listeners are open
	for _, d := range g.devices {
		d.setOnline(false)
	}
	if g.cancel != nil {
		g.cancel()
	}
	g.closeListeners()
	g.hlog.close()
	if g.ua != nil {
		_ = g.ua.Close()
	}
	g.wg.Wait()
	_ = g.host.Close() // after every device has left it
	if g.access != nil {
		_ = g.access.Close() // after every device has logged out on it
	}
	return nil
}

// Registration is one registered contact, for the control API.
type Registration struct {
	SIPUser string `json:"sip_user"`
	Device  string `json:"device"`
	Contact string `json:"contact"`
	Online  bool   `json:"online"`
	// LoginError is why the device is not online in the P2P network
	// although its phone is registered (e.g. its user is not delegated to
	// the gateway's credential); "" when it is, or was never tried.
	LoginError string `json:"login_error,omitempty"`
	// Flow is the open connection the contact registered over ("tls
	// 127.0.0.1:40312"), which calls to the phone reuse (flow.go); "" for
	// UDP or once it closed.
	Flow string `json:"flow,omitempty"`
}

// Registrations lists every account with its live contacts.
func (g *Gateway) Registrations() []Registration {
	var out []Registration
	for user, d := range g.devices {
		if d.trunk != nil {
			continue // Trunks() reports them
		}
		contacts := g.bindings.Contacts(user)
		sort.Strings(contacts)
		if len(contacts) == 0 {
			out = append(out, Registration{SIPUser: user, Device: d.identity()})
		}
		for _, c := range contacts {
			r := Registration{SIPUser: user, Device: d.identity(), Contact: c, Online: d.isOnline(), LoginError: d.loginError()}
			if f, ok := g.openFlow(user, c); ok {
				r.Flow = strings.ToLower(f.network) + " " + f.source
			}
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].SIPUser < out[j].SIPUser })
	return out
}

// Device returns the P2P endpoint of a SIP account while it is online.
func (g *Gateway) Device(sipUser string) (*endpoint.Endpoint, bool) {
	d, ok := g.devices[sipUser]
	if !ok {
		return nil, false
	}
	ep := d.endpoint()
	return ep, ep != nil
}

func (g *Gateway) onBindingChange(aor string, online bool) {
	d, ok := g.devices[aor]
	if !ok {
		return
	}
	g.log.Info("registration", "sip_user", aor, "device", d.identity(), "online", online)
	// Logging in takes a round trip to the access server: not on the
	// SIP transaction's goroutine, but in order per device.
	d.want(online)
}

// sourceIP is the IP a request came from.
func sourceIP(req *sip.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(req.Source())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

func respond(tx sip.ServerTransaction, req *sip.Request, code int, reason string, hdrs ...sip.Header) {
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	_ = tx.Respond(res)
}

func (g *Gateway) onOptions(req *sip.Request, tx sip.ServerTransaction) {
	respond(tx, req, sip.StatusOK, "OK",
		sip.NewHeader("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS, REGISTER, SUBSCRIBE, REFER, INFO"),
		sip.NewHeader("Allow-Events", dialogEvent), sip.NewHeader("Supported", "replaces"),
		sip.NewHeader("Accept", "application/sdp"))
}

// authenticate checks a request's digest credentials (header Authorization
// for REGISTER, Proxy-Authorization for INVITE) and answers the challenge
// itself when they are missing or wrong. ok reports a verified user.
func (g *Gateway) authenticate(req *sip.Request, tx sip.ServerTransaction, proxy bool) (string, bool) {
	credHdr, chalHdr, code, reason := "Authorization", "WWW-Authenticate", sip.StatusUnauthorized, "Unauthorized"
	if proxy {
		credHdr, chalHdr, code, reason = "Proxy-Authorization", "Proxy-Authenticate", sip.StatusProxyAuthRequired, "Proxy Authentication Required"
	}
	ip := sourceIP(req).String()
	if !g.limiter.Allowed(ip) {
		g.stats.authLimited.Add(1)
		respond(tx, req, sip.StatusForbidden, "Too many failed authentications")
		return "", false
	}
	h := req.GetHeader(credHdr)
	if h == nil {
		respond(tx, req, code, reason, sip.NewHeader(chalHdr, g.verifier.Challenge(false)))
		return "", false
	}
	user, err := g.verifier.Verify(h.Value(), string(req.Method))
	switch {
	case errors.Is(err, sipbridge.ErrStaleNonce):
		respond(tx, req, code, reason, sip.NewHeader(chalHdr, g.verifier.Challenge(true)))
		return "", false
	case errors.Is(err, sipbridge.ErrReplay):
		// Right credentials on a nonce count already used: most often a
		// UDP retransmission read after its transaction ended (the
		// gateway fell behind; docs/benchmarks.md §16b). It is refused
		// like a failure, but it proves the password, so it is no
		// guess for the per-source limiter: counted there, the 10th
		// locked every phone behind the address out.
		g.stats.authReplayed.Add(1)
		g.log.Debug("sip credentials replayed", "source", req.Source(), "method", req.Method, "err", err)
		respond(tx, req, code, reason, sip.NewHeader(chalHdr, g.verifier.Challenge(false)))
		return "", false
	case err != nil:
		// Unknown user and wrong password get the same answer as a
		// replay (a fresh challenge) so the responses enumerate nothing.
		g.limiter.Failed(ip)
		g.stats.authFailed.Add(1)
		g.log.Info("sip authentication failed", "source", req.Source(), "method", req.Method, "err", err)
		respond(tx, req, code, reason, sip.NewHeader(chalHdr, g.verifier.Challenge(false)))
		return "", false
	}
	return user, true
}

func (g *Gateway) onRegister(req *sip.Request, tx sip.ServerTransaction) {
	user, ok := g.authenticate(req, tx, false)
	if !ok {
		return
	}
	to := req.To()
	if to == nil || to.Address.User != user {
		respond(tx, req, sip.StatusForbidden, "Credentials do not match the registered address")
		return
	}
	expires := g.cfg.MaxExpires
	if h := req.GetHeader("Expires"); h != nil {
		n, err := strconv.Atoi(strings.TrimSpace(h.Value()))
		if err != nil || n < 0 {
			respond(tx, req, sip.StatusBadRequest, "Bad Expires header")
			return
		}
		expires = time.Duration(n) * time.Second
	}
	contacts := req.GetHeaders("Contact")
	for _, h := range contacts {
		c, ok := h.(*sip.ContactHeader)
		if !ok {
			respond(tx, req, sip.StatusBadRequest, "Bad Contact header")
			return
		}
		exp := expires
		if v, ok := c.Params.Get("expires"); ok {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				respond(tx, req, sip.StatusBadRequest, "Bad Contact expires parameter")
				return
			}
			exp = time.Duration(n) * time.Second
		}
		if c.Address.Wildcard {
			if exp != 0 || len(contacts) != 1 {
				respond(tx, req, sip.StatusBadRequest, "Contact: * needs Expires: 0 and no other contact")
				return
			}
			g.bindings.RemoveAll(user)
			g.pruneFlows()
			continue
		}
		if exp > 0 && exp < g.cfg.MinExpires {
			respond(tx, req, sip.StatusIntervalToBrief, "Interval Too Brief",
				sip.NewHeader("Min-Expires", strconv.Itoa(int(g.cfg.MinExpires/time.Second))))
			return
		}
		if exp > g.cfg.MaxExpires {
			exp = g.cfg.MaxExpires
		}
		g.bindings.Set(user, c.Address.String(), exp)
		g.rememberFlow(user, c.Address.String(), req, exp == 0)
	}
	g.stats.registers.Add(1)
	res := sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil)
	for _, c := range g.bindings.Contacts(user) {
		var u sip.Uri
		if err := sip.ParseUri(c, &u); err != nil {
			continue
		}
		params := sip.NewParams()
		params.Add("expires", strconv.Itoa(int(g.bindings.ExpiresIn(user, c)/time.Second)))
		res.AppendHeader(&sip.ContactHeader{Address: u, Params: params})
	}
	res.AppendHeader(sip.NewHeader("Date", g.cfg.Now().UTC().Format(time.RFC1123)))
	_ = tx.Respond(res)
}

func (g *Gateway) onBye(req *sip.Request, tx sip.ServerTransaction) {
	id := req.CallID().Value()
	err := g.inbound.ReadBye(req, tx)
	if errors.Is(err, sipgo.ErrDialogDoesNotExists) || errors.Is(err, sipgo.ErrDialogOutsideDialog) {
		err = g.outbound.ReadBye(req, tx)
	}
	if err != nil {
		respond(tx, req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist")
		return
	}
	g.mu.Lock()
	b := g.bridges[id]
	g.mu.Unlock()
	if b != nil {
		b.hangup("SIP BYE")
	}
}

// onInvite routes an INVITE: a re-INVITE inside one of our dialogs, or a
// new call from a registered phone.
func (g *Gateway) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	if to := req.To(); to != nil {
		if _, tagged := to.Params.Get("tag"); tagged {
			g.onReInvite(req, tx)
			return
		}
	}
	if g.duplicateInvite(req, tx) {
		return
	}
	if t := g.trunkFor(sourceIP(req)); t != nil {
		// A trunk's calls come from its addresses, without digest.
		g.inboundCall(trunkKey(t.cfg.Name), req, tx)
		return
	}
	user, ok := g.authenticate(req, tx, true)
	if !ok {
		return
	}
	g.inboundCall(user, req, tx)
}

func (g *Gateway) addBridge(b *bridge) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.bridges[b.sipCallID] = b
	return true
}

func (g *Gateway) removeBridge(b *bridge) {
	g.hlog.linkBridge(b.sipCallID, b) // the ended call stays in the handoff log
	g.mu.Lock()
	if g.bridges[b.sipCallID] == b {
		delete(g.bridges, b.sipCallID)
	}
	g.mu.Unlock()
}

// Calls lists the bridged calls in progress.
func (g *Gateway) Calls() []CallInfo {
	g.mu.Lock()
	bs := make([]*bridge, 0, len(g.bridges))
	for _, b := range g.bridges {
		bs = append(bs, b)
	}
	g.mu.Unlock()
	out := make([]CallInfo, 0, len(bs))
	for _, b := range bs {
		out = append(out, b.info())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].SIPCallID < out[j].SIPCallID })
	return out
}
