package access

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/baton-voice/baton/p2p/pki"
	"github.com/baton-voice/baton/p2p/presence"
	"github.com/baton-voice/baton/p2p/wire"
)

// The server side of a gateway session (wire types 110-119): one TLS
// connection, authenticated once with the gateway's credential, carries the
// logins and presence of every device the gateway bridges. A device logged
// in this way is a session like any other in s.sessions and s.interest
// (fan-out, replacement and presence work unchanged), except that it has
// no connection, reader goroutine or writer of its own: what it is sent is
// wrapped with its identity (device-presence, device-welcome...) and
// queued on the gateway's session. What a device costs the server is then
// its session record, its presence entry and its index entries: no TLS
// state, no buffers, no goroutine (docs/benchmarks.md, "Bridged devices").

// perDeviceQueue is how much a gateway session's queue may grow per device
// it carries, on top of maxQueue: its queue carries every device's pushes.
const perDeviceQueue = 16

// muxState is a gateway session's side: the gateway and its devices.
type muxState struct {
	gateway  string
	observed netip.AddrPort
	count    atomic.Int64 // len(devices), for the queue limit without the lock

	mu      sync.Mutex
	devices map[pki.Identity]*session
}

func (m *muxState) add(d *session) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.devices[d.id] = d
	m.count.Store(int64(len(m.devices)))
}

// remove forgets d, if it is still the device's current session here.
func (m *muxState) remove(d *session) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.devices[d.id] == d {
		delete(m.devices, d.id)
		m.count.Store(int64(len(m.devices)))
	}
}

func (m *muxState) get(id pki.Identity) *session {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.devices[id]
}

func (m *muxState) all() []*session {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*session, 0, len(m.devices))
	for _, d := range m.devices {
		out = append(out, d)
	}
	return out
}

// remote is the session's peer address for logs: a gateway's device's is
// its gateway's.
func (sess *session) remote() string {
	if sess.parent != nil {
		return sess.parent.remote() + " (gateway " + sess.gateway + ")"
	}
	return sess.raw.RemoteAddr().String()
}

// queueLimit is how many messages may wait: a gateway session's grows with
// the devices it carries.
func (sess *session) queueLimit() int {
	if sess.mux != nil {
		return maxQueue + perDeviceQueue*int(sess.mux.count.Load())
	}
	return maxQueue
}

// forDevice wraps a message for device id to go out on its gateway's
// connection; nil for what has no per-device form (it is dropped).
func forDevice(id pki.Identity, m wire.Message) wire.Message {
	sid := id.String()
	switch m := m.(type) {
	case *wire.Presence:
		return &wire.DevicePresence{ID: sid, Device: m.Device}
	case *wire.LoginResponse:
		return &wire.DeviceWelcome{ID: sid, Certificate: m.Certificate, ExpiresUnix: m.ExpiresUnix, Profile: m.Profile}
	case *wire.RenewResponse:
		return &wire.DeviceRenewed{ID: sid, Certificate: m.Certificate, ExpiresUnix: m.ExpiresUnix}
	case *wire.Error:
		return &wire.DeviceError{ID: sid, Code: m.Code, Message: m.Message}
	}
	return nil
}

// enqueueDevice queues m for a gateway's device: held back (in order)
// until its welcome is released, then straight onto the gateway's queue.
func (sess *session) enqueueDevice(m wire.Message) {
	sess.qmu.Lock()
	defer sess.qmu.Unlock()
	if sess.closed {
		return
	}
	if sess.held {
		if len(sess.queue) >= maxQueue {
			sess.closed, sess.queue = true, nil
			return
		}
		sess.queue = append(sess.queue, m)
		return
	}
	if w := forDevice(sess.id, m); w != nil {
		sess.parent.enqueue(w)
	}
}

// releaseDevice sends the device's welcome, then what was held behind it.
func (sess *session) releaseDevice(first wire.Message) {
	sess.qmu.Lock()
	defer sess.qmu.Unlock()
	sess.held = false
	held := sess.queue
	sess.queue = nil
	if sess.closed {
		return
	}
	sess.parent.enqueue(forDevice(sess.id, first))
	for _, m := range held {
		if w := forDevice(sess.id, m); w != nil {
			sess.parent.enqueue(w)
		}
	}
}

// gatewayLogin authenticates a gateway session's first message and
// returns the session; nil if refused (answered; the caller closes raw).
func (s *Server) gatewayLogin(ctx context.Context, raw net.Conn, pc *parkConn, wc *wire.Conn, gl *wire.GatewayLogin) *session {
	log := s.log.With("gateway", gl.Gateway, "remote", raw.RemoteAddr().String())
	users, ok := s.authenticateAs(ctx, log, raw, wc, &wire.LoginRequest{Gateway: gl.Gateway, Password: gl.Secret})
	if !ok {
		return nil
	}
	observed := addrPort(raw.RemoteAddr())
	total := len(users)
	if len(users) > wire.MaxGatewayUsers {
		users = users[:wire.MaxGatewayUsers]
	}
	sess := &session{
		srv: s,
		// Not an endpoint identity (the device name is not a valid one),
		// never in s.sessions: it names the gateway in logs.
		id:      pki.Identity{User: gl.Gateway, Device: "(gateway)"},
		raw:     raw,
		pc:      pc,
		wc:      wc,
		gateway: gl.Gateway,
		mux:     &muxState{gateway: gl.Gateway, observed: observed, devices: make(map[pki.Identity]*session)},
	}
	s.mu.Lock()
	closed := s.closed
	if !closed {
		s.gateways++
	}
	s.mu.Unlock()
	if closed {
		return nil
	}
	s.stats.logins[loginOK].Add(1)
	log.Info("gateway session", "delegated_users", total)
	sess.enqueue(&wire.GatewayWelcome{ObservedAddr: observed.String(), KeepaliveMS: s.cfg.Keepalive.Milliseconds(), Users: users, UsersTotal: total})
	return sess
}

// dispatchGateway handles one message on a gateway session.
func (s *Server) dispatchGateway(ctx context.Context, gw *session, m wire.Message) (int, error) {
	switch m := m.(type) {
	case *wire.Keepalive:
		gw.enqueue(&wire.KeepaliveAck{})
	case *wire.Logout:
		return endLogout, nil
	case *wire.DeviceLogin:
		if err := s.deviceLogin(ctx, gw, m); err != nil {
			return endShutdown, err
		}
	case *wire.DeviceStatus, *wire.DeviceLogout, *wire.DeviceRenew:
		s.deviceRequest(ctx, gw, m)
	default:
		gw.enqueue(&wire.Error{Code: wire.CodeBadRequest, Message: fmt.Sprintf("unexpected %s on a gateway session", m.Type())})
		return endProtocol, fmt.Errorf("%w: %s from a gateway", wire.ErrUnexpected, m.Type())
	}
	return endNone, nil
}

// deviceRequest handles a status change, logout or renewal for one of the
// gateway's devices. A device the gateway does not have online is answered
// with a device-error; the gateway session goes on.
func (s *Server) deviceRequest(ctx context.Context, gw *session, m wire.Message) {
	var sid string
	switch m := m.(type) {
	case *wire.DeviceStatus:
		sid = m.ID
	case *wire.DeviceLogout:
		sid = m.ID
	case *wire.DeviceRenew:
		sid = m.ID
	}
	id, _ := pki.ParseIdentity(sid) // validated by wire
	d := gw.mux.get(id)
	if d == nil {
		gw.enqueue(&wire.DeviceError{ID: sid, Code: wire.CodeNotFound, Message: "device not logged in through this gateway session"})
		return
	}
	log := s.log.With("user", id.User, "device", id.Device, "gateway", gw.gateway)
	switch m := m.(type) {
	case *wire.DeviceStatus:
		if err := s.setStatus(ctx, d, presence.StatusFromWire(m.Status)); err != nil {
			log.Error("set status failed", "error", err)
			s.endDevice(d, endError)
		}
	case *wire.DeviceLogout:
		log.Info("logout")
		s.endDevice(d, endLogout)
	case *wire.DeviceRenew:
		if err := s.renew(ctx, d); err != nil {
			// renew has told the device why (device-error).
			log.Info("renewal refused; device offline", "error", err)
			s.endDevice(d, endError)
		}
	}
}

// endDevice takes one of a gateway's devices offline.
func (s *Server) endDevice(d *session, reason int) {
	s.stats.ends[reason].Add(1)
	s.unregisterAndOffline(d)
	d.shutdown()
}

// endDevices takes every device of an ending gateway session offline.
func (s *Server) endDevices(gw *session) {
	devs := gw.mux.all()
	for _, d := range devs {
		s.unregisterAndOffline(d)
		d.shutdown()
	}
	s.mu.Lock()
	s.gateways--
	s.mu.Unlock()
	if len(devs) > 0 {
		s.log.Info("gateway session ended; its devices are offline", "gateway", gw.gateway, "devices", len(devs))
	}
}

// deviceLogin logs one device in through a gateway session: the device's
// user must be delegated to the gateway (read from the database at each
// login, so a withdrawn delegation counts at once). A refusal is a
// device-error for that device; only a server failure ends the session.
func (s *Server) deviceLogin(ctx context.Context, gw *session, req *wire.DeviceLogin) error {
	id, _ := pki.ParseIdentity(req.ID) // validated by wire
	log := s.log.With("user", id.User, "device", id.Device, "gateway", gw.gateway, "remote", gw.raw.RemoteAddr().String())
	refuse := func(code wire.ErrorCode, msg string) {
		gw.enqueue(&wire.DeviceError{ID: req.ID, Code: code, Message: wire.TrimReason(msg)})
	}
	ok, err := s.db.IsDelegated(ctx, gw.gateway, id.User)
	if err != nil {
		s.stats.logins[loginError].Add(1)
		log.Error("device login failed", "error", err)
		refuse(wire.CodeInternal, "authentication unavailable")
		return nil
	}
	if !ok {
		s.stats.logins[loginNotDelegated].Add(1)
		nd := &NotDelegatedError{Gateway: gw.gateway, User: id.User, Device: id.Device}
		log.Warn("login refused: user not delegated to the gateway")
		refuse(wire.CodeNotDelegated, nd.Error())
		return nil
	}
	pub, err := parseEndpointKey(req.PublicKey)
	if err != nil {
		s.stats.logins[loginBadRequest].Add(1)
		log.Info("device login refused", "error", err)
		refuse(wire.CodeBadRequest, err.Error())
		return nil
	}
	now := s.cfg.Now()
	der, expires, err := s.issue(pub, id, gw.gateway, now)
	if err != nil {
		s.stats.logins[loginError].Add(1)
		log.Error("device login failed: issue certificate", "error", err)
		refuse(wire.CodeInternal, "cannot issue credential")
		return nil
	}
	buddies, err := s.db.Buddies(ctx, id.User)
	if err != nil {
		s.stats.logins[loginError].Add(1)
		log.Error("device login failed: load buddies", "error", err)
		refuse(wire.CodeInternal, "cannot load profile")
		return nil
	}
	if len(buddies) > wire.MaxBuddies {
		buddies = buddies[:wire.MaxBuddies]
	}
	signal, _ := netip.ParseAddrPort(req.SignalAddr) // validated by wire
	if signal.Addr().IsUnspecified() {
		signal = netip.AddrPortFrom(gw.mux.observed.Addr(), signal.Port())
	}
	status := presence.StatusOnline
	if req.Status == wire.StatusAway {
		status = presence.StatusAway
	}
	d := &session{
		srv:     s,
		id:      id,
		parent:  gw,
		pubDER:  req.PublicKey,
		gateway: gw.gateway,
		signal:  signal,
		buddies: buddies,
		held:    true,
	}
	lk := s.idLock(id)
	lk.Lock()
	if s.ownLoginOnline(id) {
		lk.Unlock()
		s.stats.logins[loginNotDelegated].Add(1)
		log.Warn("login refused: a gateway may not replace a device's own login")
		refuse(wire.CodeDuplicate, ownLoginMessage(gw.gateway, id))
		return nil
	}
	old, registered := s.register(d)
	if !registered {
		lk.Unlock()
		return errors.New("server closing")
	}
	if old != nil {
		old.replaced.Store(true)
		old.shutdown()
		log.Info("login replaces previous session", "previous_remote", old.remote())
	}
	gw.mux.add(d)
	err = s.store.Put(ctx, presence.Entry{User: id.User, Device: id.Device, Status: status, SignalAddr: signal, Since: now})
	lk.Unlock()
	if err == nil {
		var profile wire.Profile
		if profile, err = s.profile(ctx, d); err == nil {
			s.stats.logins[loginOK].Add(1)
			log.Info("login", "signal", signal.String(), "status", status.String(), "buddies", len(buddies), "expires", expires)
			d.release(&wire.LoginResponse{Certificate: der, ExpiresUnix: expires.Unix(), Profile: profile,
				ObservedAddr: gw.mux.observed.String(), KeepaliveMS: s.cfg.Keepalive.Milliseconds()})
			return nil
		}
	}
	s.stats.logins[loginError].Add(1)
	log.Error("device login failed: presence store", "error", err)
	s.unregisterAndOffline(d)
	d.shutdown()
	refuse(wire.CodeInternal, "presence unavailable")
	return nil
}

// ownLoginOnline reports whether id is online with a login of its own (its
// user's password). A gateway may not replace such a session: delegation
// lets it act for a user's bridged SIP devices, not take over the user's
// P2P phones. (A login with the user's password may replace a bridged
// session: it is the stronger credential.) Call with id's lock held.
func (s *Server) ownLoginOnline(id pki.Identity) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.sessions[id]
	return old != nil && old.gateway == ""
}

func ownLoginMessage(gateway string, id pki.Identity) string {
	return id.String() + " is online with its own login; gateway " + gateway + " may not replace it"
}
