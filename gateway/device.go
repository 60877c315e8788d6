package gateway

import (
	"cmp"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/baton-voice/baton/p2p/access"
	"github.com/baton-voice/baton/p2p/endpoint"
	"github.com/baton-voice/baton/p2p/wire"
)

// device is one SIP account's P2P side: an endpoint logged in while the
// phone's registration is live, and the bridges of its calls.
type device struct {
	g    *Gateway
	acct Account
	// trunk is set for a trunk's device: online while the gateway runs,
	// its calls routed by number.
	trunk *trunkState

	// life serializes logins and logouts; wanted is the last asked state.
	life   sync.Mutex
	mu     sync.Mutex
	wanted bool
	ep     *endpoint.Endpoint
	// calls are the bridges by P2P call ID; pending holds the events of a
	// call this device dialled that arrived before DialWith returned.
	calls   map[string]*bridge
	pending map[string][]endpoint.Event
	// loginErr is why the last login failed ("" after a good one).
	loginErr string
	// retryIn is the wait before the next login attempt after a failed
	// one (doubling up to maxLoginRetry); retrying is set while one is
	// scheduled.
	retryIn  time.Duration
	retrying bool
}

// maxLoginRetry bounds the wait between login attempts of a registered
// phone whose device the access server refused (e.g. its user is not
// delegated yet) or could not be reached.
const maxLoginRetry = 30 * time.Second

// loginError returns why the device's last login failed, or "".
func (d *device) loginError() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.loginErr
}

func (d *device) identity() string { return d.acct.User + "/" + d.acct.Device }

func (d *device) endpoint() *endpoint.Endpoint {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ep
}

func (d *device) isOnline() bool { return d.endpoint() != nil }

// waitOnline returns the endpoint, waiting up to max while a login asked
// for by a fresh registration is still under way (a phone calls at once).
func (d *device) waitOnline(max time.Duration) *endpoint.Endpoint {
	deadline := time.Now().Add(max)
	for {
		d.mu.Lock()
		ep, wanted := d.ep, d.wanted
		d.mu.Unlock()
		if ep != nil || !wanted || time.Now().After(deadline) {
			return ep
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// want asks for the device to be online or not; the work happens on its
// own goroutine, in order.
func (d *device) want(online bool) {
	d.mu.Lock()
	d.wanted = online
	d.mu.Unlock()
	d.g.wg.Add(1)
	go func() {
		defer d.g.wg.Done()
		d.mu.Lock()
		w := d.wanted
		d.mu.Unlock()
		d.setOnline(w)
	}()
}

// setOnline logs the device's endpoint in or out.
func (d *device) setOnline(online bool) {
	d.life.Lock()
	defer d.life.Unlock()
	d.mu.Lock()
	ep := d.ep
	d.mu.Unlock()
	if online == (ep != nil) {
		return
	}
	log := d.g.log.With("device", d.identity())
	if !online {
		d.mu.Lock()
		d.ep = nil
		d.mu.Unlock()
		_ = ep.Close()
		log.Info("device offline")
		return
	}
	if d.g.ctx == nil || d.g.ctx.Err() != nil {
		return
	}
	d.g.mu.Lock()
	closed := d.g.closed
	d.g.mu.Unlock()
	if closed {
		return // Close logs every device out after this (it waits for life)
	}
	password := d.acct.Password
	if cr := d.g.cfg.Credential; cr.Name != "" {
		password = cr.Secret
	}
	cfg := endpoint.Config{
		Access:     d.g.cfg.Access,
		Roots:      d.g.cfg.Roots,
		User:       d.acct.User,
		Device:     d.acct.Device,
		Password:   password,
		Gateway:    d.g.cfg.Credential.Name,
		MediaIP:    d.g.cfg.MediaIP,
		SRTP:       d.g.cfg.SRTP,
		Codecs:     d.g.cfg.Codecs,
		Logger:     log.With("part", "endpoint"),
		OnEvent:    d.onEvent,
		OnIncoming: d.onIncoming,
		Policy:     d.g.cfg.Policy,
		// A call pushed to this device rings the phone first (push.go).
		OnPush: d.onPush,
		// A transfer the P2P party asks for is a REFER to the phone
		// (trunkxfer.go).
		OnTransfer: d.onTransfer,
		// An attended transfer's invite-replaces for a SIP phone's call
		// (trunkxfer.go).
		OnReplaces: d.onReplaces,
		// A SIP account may have several phones and calls; the phones
		// themselves refuse what they cannot take (486).
		MaxCalls: cmp.Or(d.acct.MaxCalls, DefaultMaxCalls),
		// A call's progress at the endpoint is debug: the bridge logs
		// one line per call at info ("call ended", bridge.go).
		CallLogLevel: slog.LevelDebug,
	}
	if d.g.access != nil {
		// One shared session for every device (no connection, TLS state
		// or goroutine per phone at the access server).
		cfg.AccessSession = d.g.access
	}
	if d.trunk != nil {
		// A trunk carries many callers at once: its P2P device is limited
		// by the provider (which refuses what it cannot take), not by a
		// phone's handful of lines (issue 9 §6, 200 concurrent pulls: the
		// 9th trunk call was refused busy).
		cfg.MaxCalls = trunkMaxCalls
		// Its calls' other parties often reach it from few addresses:
		// the gateway's own devices when a desk phone takes a trunk call
		// (the gateway is A and C) connect in process, without the
		// host's pre-authentication caps (host.go); other sources count
		// against the host's per-source cap (200 concurrent pulls, before
		// the Host: the per-source default of 32 closed the 33rd
		// re-establish, "EOF", and the pull rolled back).
	}
	// Every device is reached on the gateway's one P2P signaling port
	// (the host's); the host's address watcher is off.
	ep, err := d.g.host.Add(cfg)
	if err != nil {
		log.Error("device endpoint", "err", err)
		return
	}
	if err := ep.Start(d.g.ctx); err != nil {
		log.Error("device login failed; the phone is registered but not online in presence", "err", err)
		d.mu.Lock()
		d.loginErr = err.Error()
		d.mu.Unlock()
		_ = ep.Close()
		if errors.Is(err, access.ErrAuthFailed) {
			// A wrong password or gateway secret does not fix itself, and
			// each try would cost the access server an argon2 hash and a
			// token of its failed-login limiter for this gateway's address.
			log.Warn("device login not retried: fix the password or gateway secret, then restart the gateway")
			return
		}
		d.retryLogin(log)
		return
	}
	d.mu.Lock()
	d.ep = ep
	d.loginErr = ""
	d.retryIn = 0
	d.mu.Unlock()
	log.Info("device online", "signal", ep.SignalAddr())
}

// onEvent routes the endpoint's call events to their bridges (a call
// arriving is onIncoming's). It runs on the endpoint's goroutines and must
// not block.
func (d *device) onEvent(ev endpoint.Event) {
	d.g.hlog.onEvent(d.identity(), ev) // handofflog.go
	if ev.CallID == "" {
		return
	}
	d.mu.Lock()
	b := d.calls[ev.CallID]
	if b == nil {
		if len(d.pending[ev.CallID]) < 16 {
			d.pending[ev.CallID] = append(d.pending[ev.CallID], ev)
		}
		d.mu.Unlock()
		return
	}
	d.mu.Unlock()
	b.post(ev)
}

// onIncoming takes a P2P call to this device (endpoint.Config.OnIncoming):
// a bridge rings the phone (bridge.go, outboundCall). It runs before any
// event of the call but its ringing, which waits in pending for the bridge.
func (d *device) onIncoming(in endpoint.IncomingCall) endpoint.Decision {
	if d.endpoint() == nil {
		// The login has not returned yet (the caller was quick): nobody
		// could ring the phone for this call.
		return endpoint.Decision{Action: endpoint.IncomingDecline, Code: wire.CodeOffline, Reason: "device still logging in at the gateway"}
	}
	d.g.outboundCall(d, endpoint.Event{CallID: in.ID, Peer: in.Peer.String()})
	return endpoint.Decision{Action: endpoint.IncomingRing}
}

// claim attaches a bridge to a P2P call ID and hands it the events that
// came before.
func (d *device) claim(id string, b *bridge) {
	d.mu.Lock()
	d.calls[id] = b
	d.g.hlog.link(d.identity(), id, "", b.leg) // handofflog.go
	early := d.pending[id]
	delete(d.pending, id)
	d.mu.Unlock()
	for _, ev := range early {
		b.post(ev)
	}
}

func (d *device) release(id string) {
	d.mu.Lock()
	delete(d.calls, id)
	delete(d.pending, id)
	d.mu.Unlock()
}

// retryLogin tries the login again later, with backoff, while the phone
// stays registered: the refusal may be fixed at the access server (a
// delegation added) or the server may come back.
func (d *device) retryLogin(log interface{ Info(string, ...any) }) {
	d.mu.Lock()
	if d.retrying {
		d.mu.Unlock()
		return
	}
	d.retrying = true
	d.retryIn = min(max(2*d.retryIn, time.Second), maxLoginRetry)
	wait := d.retryIn
	d.mu.Unlock()
	log.Info("device login will be retried", "in", wait)
	d.g.wg.Add(1)
	go func() {
		defer d.g.wg.Done()
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-d.g.ctx.Done():
		case <-t.C:
		}
		d.mu.Lock()
		d.retrying = false
		again := d.wanted && d.ep == nil && d.g.ctx.Err() == nil
		d.mu.Unlock()
		if again {
			d.setOnline(true)
		}
	}()
}

// trunkMaxCalls bounds the simultaneous calls of a trunk's P2P device.
const trunkMaxCalls = 4096
