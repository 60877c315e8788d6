package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/baton-voice/baton/p2p/wire"
)

// Trunk is a SIP provider (a PSTN trunk) the gateway exchanges calls with.
// Its calls come from one P2P device (User/Device, e.g. pstn/trunk1) that
// is online while the gateway runs. Inbound INVITEs are accepted without
// digest only from the trunk's addresses and are routed by the dialled
// number; the gateway can register itself with the provider.
type Trunk struct {
	// Name labels the trunk in logs, status and errors.
	Name string
	// User, Device and Password are the P2P identity the trunk's callers
	// appear as, and its P2P password.
	User, Device, Password string
	// Allow are the source addresses inbound calls are accepted from.
	Allow []netip.Prefix
	// Numbers routes a dialled number (the Request-URI user, e.g.
	// +15551234) to a P2P target (alice, alice/desk); Route is the target
	// of any other number; "" refuses them (404).
	Numbers map[string]string
	Route   string
	// Registrar is the provider's host:port to REGISTER with; "" means the
	// provider sends calls without a registration. AuthUser and
	// AuthPassword answer its digest challenge; Expires is the asked
	// registration time (default 10 min).
	Registrar              string
	AuthUser, AuthPassword string
	Expires                time.Duration
	// Proxy is the provider's host:port calls out are sent to; "" means
	// the registrar. A P2P call to the trunk's device with a number
	// (CallOptions.Number) goes out as INVITE sip:NUMBER@Proxy, answering
	// the provider's digest challenge with AuthUser and AuthPassword.
	Proxy string
}

// ErrTrunkNumber means a call to a trunk's device named no number to dial
// (or one the trunk cannot send anywhere).
var ErrTrunkNumber = errors.New("gateway: trunk call")

// trunkKey is the devices-map key of a trunk; it cannot collide with a
// SIP user name (config names allow no ':').
func trunkKey(name string) string { return "trunk:" + name }

// TrunkStatus is one trunk's state for status and tests.
type TrunkStatus struct {
	Name       string    `json:"name"`
	Device     string    `json:"device"`
	Online     bool      `json:"online"`
	Registrar  string    `json:"registrar,omitempty"`
	Registered bool      `json:"registered"`
	LastError  string    `json:"last_error,omitempty"`
	Expires    time.Time `json:"expires,omitzero"`
	Refused    uint64    `json:"refused"` // INVITEs from the trunk refused (no route)
}

// trunkState is the live part of a trunk.
type trunkState struct {
	cfg Trunk
	dev *device

	mu         sync.Mutex
	registered bool
	lastErr    string
	expires    time.Time
	refused    uint64
}

func (t *trunkState) status() TrunkStatus {
	t.mu.Lock()
	defer t.mu.Unlock()
	return TrunkStatus{Name: t.cfg.Name, Device: t.dev.identity(), Online: t.dev.isOnline(), Registrar: t.cfg.Registrar,
		Registered: t.registered, LastError: t.lastErr, Expires: t.expires, Refused: t.refused}
}

func (c *Config) checkTrunks() error {
	seen := map[string]bool{}
	for _, t := range c.Trunks {
		if !wire.ValidName(t.Name) {
			return fmt.Errorf("gateway: trunk %q: not a valid name", t.Name)
		}
		if seen[t.Name] {
			return fmt.Errorf("gateway: trunk %q is configured twice", t.Name)
		}
		seen[t.Name] = true
		if !wire.ValidName(t.User) || !wire.ValidName(t.Device) {
			return fmt.Errorf("gateway: trunk %q: P2P identity %q/%q is not valid", t.Name, t.User, t.Device)
		}
		if len(t.Allow) == 0 && t.Registrar == "" && t.Proxy == "" {
			return fmt.Errorf("gateway: trunk %q: no allowed source addresses and no registrar: it could never call in", t.Name)
		}
		for what, hp := range map[string]string{"registrar": t.Registrar, "proxy": t.Proxy} {
			if hp == "" {
				continue
			}
			if _, _, err := net.SplitHostPort(hp); err != nil {
				return fmt.Errorf("gateway: trunk %q: %s %q: %v", t.Name, what, hp, err)
			}
		}
	}
	return nil
}

// trunkFor returns the trunk an INVITE from src comes from: one whose
// allowed addresses hold src, or whose registrar host is src.
func (g *Gateway) trunkFor(src netip.Addr) *trunkState {
	if !src.IsValid() {
		return nil
	}
	for _, t := range g.trunks {
		for _, p := range t.cfg.Allow {
			if p.Contains(src) {
				return t
			}
		}
		for _, hp := range []string{t.cfg.Registrar, t.cfg.Proxy} {
			if h, _, err := net.SplitHostPort(hp); err == nil {
				if a, err := netip.ParseAddr(h); err == nil && a.Unmap() == src {
					return t
				}
			}
		}
	}
	return nil
}

// trunkTarget routes a number dialled through trunk t to a P2P target.
func (t *trunkState) target(number string) (string, error) {
	if to, ok := t.cfg.Numbers[number]; ok {
		return to, nil
	}
	if t.cfg.Route != "" {
		return t.cfg.Route, nil
	}
	t.mu.Lock()
	t.refused++
	t.mu.Unlock()
	return "", fmt.Errorf("%w: trunk %s routes no number %q", ErrBadTarget, t.cfg.Name, number)
}

// callTarget is the P2P target of an INVITE's Request-URI user from
// device d: a trunk's number plan, else the user[+device] form.
func (g *Gateway) callTarget(d *device, user string) (string, error) {
	if d.trunk != nil {
		to, err := d.trunk.target(user)
		if err != nil {
			return "", err
		}
		// Never trunk to trunk: a provider's caller must not get a line
		// out through this gateway (toll fraud).
		for _, t := range g.trunks {
			if to == t.dev.identity() || to == t.cfg.User {
				return "", fmt.Errorf("%w: trunk %s routes %q to trunk %s: calls from a trunk never go out through one", ErrBadTarget, d.trunk.cfg.Name, user, t.cfg.Name)
			}
		}
		return to, nil
	}
	return dialTarget(user)
}

// startTrunks brings every trunk's device online and starts the
// registrations.
func (g *Gateway) startTrunks() {
	for _, t := range g.trunks {
		t.dev.want(true)
		if t.cfg.Registrar != "" {
			g.trunkWG.Add(1)
			go func() {
				defer g.trunkWG.Done()
				g.registerLoop(t)
			}()
		}
	}
}

// registerLoop keeps the gateway registered with a trunk's provider:
// REGISTER with digest (RFC 3261 §10.2, §22), refreshed at half the
// granted time, retried with backoff after a failure; Expires: 0 when the
// gateway stops.
func (g *Gateway) registerLoop(t *trunkState) {
	log := g.log.With("trunk", t.cfg.Name, "registrar", t.cfg.Registrar)
	expires := t.cfg.Expires
	if expires <= 0 {
		expires = 10 * time.Minute
	}
	backoff := time.Second
	callID := sip.CallIDHeader("trunk-" + t.cfg.Name + "-" + strconv.FormatInt(time.Now().UnixNano(), 36))
	var cseq uint32
	registered := false
	for {
		cseq++
		granted, err := g.register(t, callID, cseq, expires)
		t.mu.Lock()
		t.registered = err == nil
		if err != nil {
			t.lastErr = err.Error()
			t.expires = time.Time{}
		} else {
			t.lastErr = ""
			t.expires = g.cfg.Now().Add(granted)
		}
		t.mu.Unlock()
		wait := granted / 2
		if err != nil {
			log.Warn("trunk registration failed", "err", err, "retry_in", backoff)
			wait = backoff
			backoff = min(backoff*2, time.Minute)
		} else {
			if !registered {
				log.Info("trunk registered", "expires", granted)
			}
			backoff = time.Second
		}
		registered = err == nil
		select {
		case <-g.trunkStop:
		case <-g.ctx.Done():
		case <-time.After(wait):
			continue
		}
		// Stopping (Close waits for this before it closes the listeners).
		if registered {
			cseq++
			if _, err := g.register(t, callID, cseq, 0); err != nil {
				log.Info("trunk unREGISTER failed", "err", err)
			} else {
				log.Info("trunk unregistered")
			}
		}
		return
	}
}

// register sends one REGISTER for t and returns the granted time.
func (g *Gateway) register(t *trunkState, callID sip.CallIDHeader, cseq uint32, expires time.Duration) (time.Duration, error) {
	host, port, _ := net.SplitHostPort(t.cfg.Registrar)
	p, _ := strconv.Atoi(port)
	user := t.cfg.AuthUser
	if user == "" {
		user = "gateway"
	}
	aor := sip.Uri{Scheme: "sip", User: user, Host: host, Port: p}
	req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: host, Port: p})
	from := &sip.FromHeader{Address: aor, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(16))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: aor})
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: cseq, MethodName: sip.REGISTER})
	contact := sip.ContactHeader{Address: g.contact.Address}
	contact.Address.User = user
	req.AppendHeader(&contact)
	req.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(int(expires/time.Second))))
	req.SetTransport("UDP")

	ctx, cancel := context.WithTimeout(g.ctx, 10*time.Second)
	defer cancel()
	if expires == 0 {
		// The unREGISTER runs while the gateway stops, after its context
		// has ended: bounded on its own.
		ctx, cancel = context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
	}
	res, err := g.cli.Do(ctx, req)
	if err != nil {
		return 0, fmt.Errorf("REGISTER to %s: %w", t.cfg.Registrar, err)
	}
	if res.StatusCode == sip.StatusUnauthorized || res.StatusCode == sip.StatusProxyAuthRequired {
		if t.cfg.AuthUser == "" {
			return 0, fmt.Errorf("REGISTER to %s: %d %s and no auth_user configured", t.cfg.Registrar, res.StatusCode, res.Reason)
		}
		res, err = g.cli.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: t.cfg.AuthUser, Password: t.cfg.AuthPassword})
		if err != nil {
			return 0, fmt.Errorf("REGISTER to %s with digest: %w", t.cfg.Registrar, err)
		}
	}
	if res.StatusCode != sip.StatusOK {
		return 0, fmt.Errorf("REGISTER to %s: %d %s", t.cfg.Registrar, res.StatusCode, res.Reason)
	}
	granted := expires
	if h := res.GetHeader("Expires"); h != nil {
		if n, err := strconv.Atoi(strings.TrimSpace(h.Value())); err == nil && n > 0 {
			granted = time.Duration(n) * time.Second
		}
	}
	if c := res.Contact(); c != nil {
		if v, ok := c.Params.Get("expires"); ok {
			if n, err := strconv.Atoi(v); err == nil && n > 0 {
				granted = time.Duration(n) * time.Second
			}
		}
	}
	if granted < 10*time.Second && expires > 0 {
		granted = 10 * time.Second // never hammer a provider that grants too little
	}
	return granted, nil
}

// Trunks reports each trunk's state.
func (g *Gateway) Trunks() []TrunkStatus {
	out := make([]TrunkStatus, 0, len(g.trunks))
	for _, t := range g.trunks {
		out = append(out, t.status())
	}
	return out
}

// outboundURI is the Request-URI of a call out through t to number.
func (t *trunkState) outboundURI(number string) (sip.Uri, error) {
	if number == "" {
		return sip.Uri{}, fmt.Errorf("%w: a call to trunk %s needs a number to dial (baton ctl call %s --number +15551234)", ErrTrunkNumber, t.cfg.Name, t.dev.identity())
	}
	if !wire.ValidNumber(number) {
		return sip.Uri{}, fmt.Errorf("%w: %q is not a number", ErrTrunkNumber, number)
	}
	hp := t.cfg.Proxy
	if hp == "" {
		hp = t.cfg.Registrar
	}
	if hp == "" {
		return sip.Uri{}, fmt.Errorf("%w: trunk %s has no proxy or registrar to send calls out to", ErrTrunkNumber, t.cfg.Name)
	}
	host, port, err := net.SplitHostPort(hp)
	if err != nil {
		return sip.Uri{}, fmt.Errorf("%w: trunk %s proxy %q: %v", ErrTrunkNumber, t.cfg.Name, hp, err)
	}
	p, _ := strconv.Atoi(port)
	return sip.Uri{Scheme: "sip", User: number, Host: host, Port: p}, nil
}

// DialRule sends numbers a registered phone dials out through a trunk: a
// Request-URI user starting with Prefix (e.g. "+", "00", "9") loses its
// first Strip characters, gets Prepend in front, and is dialled through
// trunk Trunk, as a call from the phone's device to the trunk's device
// with that number (CallOptions.Number).
type DialRule struct {
	Prefix  string
	Strip   int
	Prepend string
	Trunk   string
}

func (c *Config) checkDialPlan() error {
	for i, r := range c.DialPlan {
		if r.Prefix == "" || strings.Trim(r.Prefix, "+0123456789*#") != "" {
			return fmt.Errorf("gateway: dial plan rule %d: prefix %q: want digits, *, # or a leading +", i, r.Prefix)
		}
		if r.Strip < 0 || r.Strip > wire.MaxNumberLen {
			return fmt.Errorf("gateway: dial plan rule %d: strip %d: want 0 to %d", i, r.Strip, wire.MaxNumberLen)
		}
		found := false
		for _, t := range c.Trunks {
			found = found || t.Name == r.Trunk
		}
		if !found {
			return fmt.Errorf("gateway: dial plan rule %d: no trunk %q", i, r.Trunk)
		}
	}
	return nil
}

// dialPlan maps a number a phone dialled to the trunk device to call and
// the number it dials out, by the first matching rule.
func (g *Gateway) dialPlan(user string) (target, number string, ok bool) {
	for _, r := range g.cfg.DialPlan {
		if !strings.HasPrefix(user, r.Prefix) || len(user) < r.Strip {
			continue
		}
		n := r.Prepend + user[r.Strip:]
		if !wire.ValidNumber(n) {
			continue
		}
		for _, t := range g.trunks {
			if t.cfg.Name == r.Trunk {
				return t.dev.identity(), n, true
			}
		}
	}
	return "", "", false
}
