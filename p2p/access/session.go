package access

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/baton-voice/baton/p2p/pki"
	"github.com/baton-voice/baton/p2p/presence"
	"github.com/baton-voice/baton/p2p/wire"
)

// session is one logged-in endpoint. Its reader goroutine (the connection
// goroutine) owns the presence fields; everything sent to the endpoint goes
// through its queue, drained by at most one writer goroutine at a time, so
// frames leave in queue order and one connection never has two writers.
type session struct {
	srv     *Server
	id      pki.Identity
	raw     net.Conn // the TCP connection: closing it never blocks
	pc      *parkConn
	wc      *wire.Conn // reads through pc
	pubDER  []byte     // PKIX; kept to renew the certificate for the same key
	gateway string     // the gateway credential this device logged in with ("" = its own password)
	signal  netip.AddrPort
	buddies []string

	replaced atomic.Bool // set by the login that replaced this session

	// parent is set for a device logged in through a gateway session
	// (gatewaysession.go): it has no connection of its own (raw, pc and
	// wc are nil) and everything it is sent goes out on parent's. mux is
	// set for a gateway session itself: the devices it carries.
	parent *session
	mux    *muxState

	qmu     sync.Mutex
	queue   []wire.Message
	held    bool // queued but not written until the login response is first
	writing bool // a writer goroutine is running
	closed  bool // no more enqueues (ended, broken or overflowed)
	slow    bool // closed because the queue overflowed
	writers sync.WaitGroup
}

// parkConn is the connection a session's wire.Conn reads from: the byte
// the parked reader took (see Server.runSession), then the TLS stream.
type parkConn struct {
	net.Conn
	first [1]byte
	has   bool
}

// park blocks until the next byte arrives and keeps it for Read.
func (p *parkConn) park() error {
	n, err := p.Conn.Read(p.first[:])
	p.has = n == 1
	return err
}

func (p *parkConn) Read(b []byte) (int, error) {
	if p.has && len(b) > 0 {
		b[0], p.has = p.first[0], false
		return 1, nil
	}
	return p.Conn.Read(b)
}

// pendingConn is what the accept loop knows of a connection that has not
// logged in: its source (counted in Server.pending until login ends) and
// when its time to log in runs out.
type pendingConn struct {
	src      netip.Addr
	deadline time.Time
}

// handle runs one connection's TLS handshake and login. finish is called
// once the connection is over and closed. Without a poller, a session's
// receive loop runs on a fresh goroutine: the handshake's deep stack is
// released with this one, so an idle endpoint keeps only a small parked
// stack. The connection stops counting as pending once its login is
// answered either way.
func (s *Server) handle(ctx context.Context, raw net.Conn, pend pendingConn, finish func()) {
	tc := tls.Server(newRecordConn(raw), s.tls)
	// One deadline from accept covers the handshake and the login request:
	// a peer that connects and says nothing, or dribbles, costs a goroutine
	// for LoginTimeout at most.
	_ = raw.SetDeadline(pend.deadline)
	if err := tc.HandshakeContext(ctx); err != nil {
		s.pending.Leave(pend.src)
		s.log.Debug("tls handshake failed", "remote", raw.RemoteAddr().String(), "error", err)
		_ = raw.Close()
		finish()
		return
	}
	sess := s.loginConn(ctx, raw, tc, pend.deadline)
	s.pending.Leave(pend.src)
	if sess == nil {
		_ = raw.Close()
		finish()
		return
	}
	if _, ok := raw.(*pollConn); ok {
		// The loop parks the connection as soon as it is idle and this
		// goroutine, with the handshake's deep stack, ends.
		s.runSession(ctx, sess, finish)
		return
	}
	go s.runSession(ctx, sess, finish)
}

// loginConn speaks the access protocol on c, the established (TLS)
// connection over raw, up to a successful login, and returns the session;
// nil if the login was refused (an Error has been sent; the caller closes
// raw). raw carries the deadlines and is what a forced close closes; the
// login request must have arrived by deadline.
func (s *Server) loginConn(ctx context.Context, raw, c net.Conn, deadline time.Time) *session {
	remote := raw.RemoteAddr().String()
	_ = raw.SetDeadline(deadline)
	pc := &parkConn{Conn: c}
	wc := wire.NewConn(pc, 0)
	// Nothing is known of the peer yet: a login request is well under
	// MaxLoginFrame, and a bigger declared frame is refused from its header.
	wc.SetMaxRecvPayload(s.cfg.Limits.MaxLoginFrame)
	m, err := wc.Recv()
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
			// A probe or a client that gave up: not a bad login.
			s.log.Debug("connection closed before login", "remote", remote)
			return nil
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			s.stats.logins[loginBadRequest].Add(1)
			s.log.Info("login refused: no login request in time", "remote", remote, "timeout", s.cfg.LoginTimeout)
			// The deadline has passed, so no answer could be written.
			return nil
		}
		s.stats.logins[loginBadRequest].Add(1)
		s.log.Info("login refused: bad first frame", "remote", remote, "error", err)
		s.refuse(wc, wire.CodeBadRequest, err.Error())
		return nil
	}
	wc.SetMaxRecvPayload(0)
	if gl, ok := m.(*wire.GatewayLogin); ok {
		_ = raw.SetDeadline(time.Time{})
		return s.gatewayLogin(ctx, raw, pc, wc, gl)
	}
	req, ok := m.(*wire.LoginRequest)
	if !ok {
		s.stats.logins[loginBadRequest].Add(1)
		s.log.Info("login refused: first message is not a login request", "remote", remote, "type", m.Type())
		s.refuse(wc, wire.CodeBadRequest, fmt.Sprintf("first message must be %s, got %s", wire.TypeLoginRequest, m.Type()))
		return nil
	}
	_ = raw.SetDeadline(time.Time{})
	return s.login(ctx, raw, pc, wc, req)
}

// refuse answers a connection that will not become a session; the caller
// then closes it. It writes directly: no writer goroutine exists yet.
func (s *Server) refuse(wc *wire.Conn, code wire.ErrorCode, msg string) {
	if err := wc.SendError(code, msg, "", s.cfg.Timeout); err != nil {
		s.log.Debug("could not send error", "error", err)
	}
}

// refuseLimited answers a login the failed-login limiter refused: the
// password was not checked.
func (s *Server) refuseLimited(log *slog.Logger, wc *wire.Conn, wait time.Duration) {
	s.stats.logins[loginRateLimited].Add(1)
	if ok, held := s.logLimited.allow(); ok {
		log.Warn("login refused: too many failed logins", "retry_after", wait, "rate_limited_since_last_log", held)
	}
	// Whole milliseconds, rounded up, so a client that waits exactly that
	// long is admitted.
	ms := min((wait+time.Millisecond-1)/time.Millisecond, wire.MaxRetryAfterMS)
	err := wc.Send(&wire.Error{
		Code:         wire.CodeRateLimited,
		Message:      "too many failed logins; retry in " + (time.Duration(ms) * time.Millisecond).Round(time.Second).String(),
		RetryAfterMS: int64(ms),
	}, s.cfg.Timeout)
	if err != nil {
		log.Debug("could not send error", "error", err)
	}
}

// login authenticates req, issues the credential, registers the session and
// queues the login response. It returns nil if the login was refused.
func (s *Server) login(ctx context.Context, raw net.Conn, pc *parkConn, wc *wire.Conn, req *wire.LoginRequest) *session {
	id := pki.Identity{User: req.User, Device: req.Device}
	log := s.log.With("user", id.User, "device", id.Device, "remote", raw.RemoteAddr().String())
	if !s.authenticate(ctx, log, raw, wc, req) {
		return nil
	}
	pub, err := parseEndpointKey(req.PublicKey)
	if err != nil {
		s.stats.logins[loginBadRequest].Add(1)
		log.Info("login refused", "error", err)
		s.refuse(wc, wire.CodeBadRequest, err.Error())
		return nil
	}
	now := s.cfg.Now()
	der, expires, err := s.issue(pub, id, req.Gateway, now)
	if err != nil {
		s.stats.logins[loginError].Add(1)
		log.Error("login failed: issue certificate", "error", err)
		s.refuse(wc, wire.CodeInternal, "cannot issue credential")
		return nil
	}
	buddies, err := s.db.Buddies(ctx, id.User)
	if err != nil {
		s.stats.logins[loginError].Add(1)
		log.Error("login failed: load buddies", "error", err)
		s.refuse(wc, wire.CodeInternal, "cannot load profile")
		return nil
	}
	if len(buddies) > wire.MaxBuddies {
		log.Warn("too many buddies for one profile; truncating", "buddies", len(buddies), "limit", wire.MaxBuddies)
		buddies = buddies[:wire.MaxBuddies]
	}
	observed := addrPort(raw.RemoteAddr())
	signal, _ := netip.ParseAddrPort(req.SignalAddr) // validated by wire
	if signal.Addr().IsUnspecified() {
		// "0.0.0.0:port": the endpoint does not know its address; use the
		// one it was seen from, with the port it listens on.
		signal = netip.AddrPortFrom(observed.Addr(), signal.Port())
	}
	status := presence.StatusOnline
	if req.Status == wire.StatusAway {
		status = presence.StatusAway
	}
	sess := &session{
		srv:     s,
		id:      id,
		raw:     raw,
		pc:      pc,
		wc:      wc,
		pubDER:  req.PublicKey,
		gateway: req.Gateway,
		signal:  signal,
		buddies: buddies,
		held:    true,
	}

	// Register before reading the profile: every change applied after the
	// snapshot below is then queued for this session, behind the response.
	lk := s.idLock(id)
	lk.Lock()
	if req.Gateway != "" && s.ownLoginOnline(id) {
		lk.Unlock()
		s.stats.logins[loginNotDelegated].Add(1)
		log.Warn("login refused: a gateway may not replace a device's own login", "gateway", req.Gateway)
		s.refuse(wc, wire.CodeDuplicate, ownLoginMessage(req.Gateway, id))
		return nil
	}
	old, ok := s.register(sess)
	if !ok {
		lk.Unlock()
		return nil // server closing
	}
	if old != nil {
		// Same device logged in again (new network, crashed client): the
		// new session takes over without an offline blip in between.
		old.replaced.Store(true)
		old.shutdown()
		log.Info("login replaces previous session", "previous_remote", old.remote())
	}
	err = s.store.Put(ctx, presence.Entry{User: id.User, Device: id.Device, Status: status, SignalAddr: signal, Since: now})
	lk.Unlock()
	if err != nil {
		s.stats.logins[loginError].Add(1)
		log.Error("login failed: presence store", "error", err)
		s.unregisterAndOffline(sess)
		s.refuse(wc, wire.CodeInternal, "presence unavailable")
		return nil
	}
	profile, err := s.profile(ctx, sess)
	if err != nil {
		s.stats.logins[loginError].Add(1)
		log.Error("login failed: read presence", "error", err)
		s.unregisterAndOffline(sess)
		s.refuse(wc, wire.CodeInternal, "presence unavailable")
		return nil
	}
	s.stats.logins[loginOK].Add(1)
	log.Info("login", "gateway", req.Gateway, "signal", signal.String(), "status", status.String(), "buddies", len(buddies), "expires", expires)
	sess.release(&wire.LoginResponse{
		Certificate:  der,
		ExpiresUnix:  expires.Unix(),
		ObservedAddr: observed.String(),
		KeepaliveMS:  s.cfg.Keepalive.Milliseconds(),
		Profile:      profile,
	})
	return sess
}

// register makes sess the current session of its identity and indexes its
// interests. It returns the session it replaced, and false if the server is
// closing.
func (s *Server) register(sess *session) (*session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, false
	}
	old := s.sessions[sess.id]
	if old != nil {
		s.unindexLocked(old)
	}
	s.sessions[sess.id] = sess
	s.indexLocked(sess)
	if old == nil {
		s.stats.online.Add(1)
	}
	return old, true
}

func (s *Server) indexLocked(sess *session) {
	s.interest[sess.id.User] = append(s.interest[sess.id.User], sess)
	for _, b := range sess.buddies {
		s.interest[b] = append(s.interest[b], sess)
	}
}

func (s *Server) unindexLocked(sess *session) {
	del := func(user string) {
		list := s.interest[user]
		if i := slices.Index(list, sess); i >= 0 {
			last := len(list) - 1
			list[i], list[last] = list[last], nil
			list = list[:last]
		}
		if len(list) == 0 {
			delete(s.interest, user)
		} else {
			s.interest[user] = list
		}
	}
	del(sess.id.User)
	for _, b := range sess.buddies {
		del(b)
	}
}

// unregisterAndOffline removes sess if it is still current and, if so, marks
// its device offline. Both happen under the identity lock so a newer login
// of the same device is never marked offline by an older session.
func (s *Server) unregisterAndOffline(sess *session) {
	lk := s.idLock(sess.id)
	lk.Lock()
	defer lk.Unlock()
	s.mu.Lock()
	current := s.sessions[sess.id] == sess
	if current {
		delete(s.sessions, sess.id)
		s.unindexLocked(sess)
		s.stats.online.Add(-1)
	}
	s.mu.Unlock()
	if !current {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.base), storeTimeout)
	defer cancel()
	if err := s.store.Delete(ctx, sess.id.User, sess.id.Device); err != nil {
		s.log.Error("cannot mark endpoint offline", "user", sess.id.User, "device", sess.id.Device, "error", err)
	}
}

// profile is the login snapshot: the user's other devices and each buddy's
// devices, any status, with addresses only for reachable ones.
func (s *Server) profile(ctx context.Context, sess *session) (wire.Profile, error) {
	p := wire.Profile{User: sess.id.User}
	own, err := s.store.ListUser(ctx, sess.id.User)
	if err != nil {
		return p, err
	}
	for _, e := range own {
		if e.Device != sess.id.Device && len(p.Devices) < wire.MaxDevices {
			p.Devices = append(p.Devices, e.Wire())
		}
	}
	p.Buddies = make([]wire.Buddy, 0, len(sess.buddies))
	for _, b := range sess.buddies {
		entries, err := s.store.ListUser(ctx, b)
		if err != nil {
			return p, err
		}
		bd := wire.Buddy{User: b}
		for _, e := range entries[:min(len(entries), wire.MaxDevices)] {
			bd.Devices = append(bd.Devices, e.Wire())
		}
		p.Buddies = append(p.Buddies, bd)
	}
	return p, nil
}

// runSession is a logged-in session's receive loop: it handles the
// endpoint's messages until the session ends, then tears it down, closes
// the connection and calls finish.
//
// Memory: an idle endpoint must cost little (docs/benchmarks.md §8). With
// the server's poller (pollconn.go) it costs no goroutine: once no message
// is waiting, the connection is parked and runSession returns; the poller
// runs resumeSession on a fresh goroutine when the connection has data, is
// closed, or its read deadline passes. Without a poller, the goroutine
// parks in a read. The runtime halves a parked goroutine's stack at GC
// only while it uses under a quarter of it (runtime.shrinkstack, counting
// an 800-byte guard), so a goroutine that once decoded JSON keeps an 8 KiB
// stack for good. That loop therefore parks in a 1-byte read (the TLS
// layer decrypts the record and keeps the rest) and decodes and handles
// each message on a short-lived goroutine it waits for: the parked stack
// stays at 4 KiB.
func (s *Server) runSession(ctx context.Context, sess *session, finish func()) {
	s.receive(ctx, sess, finish, false)
}

// resumeSession continues a parked session's receive loop.
func (s *Server) resumeSession(ctx context.Context, sess *session, finish func()) {
	s.receive(ctx, sess, finish, true)
}

// errParked: the session's connection is parked with the poller; the
// goroutine that parked it is done.
var errParked = errors.New("access: session parked")

// receive is runSession's loop. woken: the connection was parked, and the
// read deadline armed before parking still holds (so a wake by the timer
// ends the session as a timeout).
func (s *Server) receive(ctx context.Context, sess *session, finish func(), woken bool) {
	var reason int
	var err error
	pl, _ := sess.raw.(*pollConn)
	for {
		var rerr error
		if woken {
			rerr, woken = sess.pc.park(), false
		} else {
			rerr = s.nextByte(ctx, sess, pl, finish)
		}
		if rerr == errParked {
			return
		}
		if rerr != nil {
			reason, err = classify(ctx, sess, rerr), rerr
			break
		}
		if pl != nil {
			// This goroutine is short-lived: handle on it.
			reason, err = sess.recvDispatch(ctx)
		} else {
			reason, err = sess.handleOne(ctx)
		}
		if reason != endNone {
			break
		}
	}
	s.finishSession(sess, reason, err, finish)
}

// longAgo is a read deadline already passed: a read with it returns at
// once what the TLS layer holds, or a timeout without touching the socket.
var longAgo = time.Unix(1, 0)

// nextByte makes the first byte of the next frame available in sess.pc:
// at once if the TLS layer already holds it (a record can carry several
// frames, and the TLS layer may have read ahead); else it parks the
// connection with the poller and returns errParked; else (no poller) it
// blocks in a read until the byte arrives or the read deadline passes.
func (s *Server) nextByte(ctx context.Context, sess *session, pl *pollConn, finish func()) error {
	if pl != nil {
		_ = sess.raw.SetReadDeadline(longAgo)
		err := sess.pc.park()
		if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
			return err
		}
		sess.armReadDeadline()
		if pl.park(s.cfg.Timeout, func() { s.resumeSession(ctx, sess, finish) }) {
			return errParked
		}
	} else {
		sess.armReadDeadline()
	}
	return sess.pc.park()
}

// recvDispatch reads the rest of the frame whose first byte the park took
// and handles it. The read deadline armed before the park still bounds it.
func (sess *session) recvDispatch(ctx context.Context) (reason int, err error) {
	m, rerr := sess.wc.Recv()
	if rerr != nil {
		return classify(ctx, sess, rerr), rerr
	}
	return sess.dispatch(ctx, m)
}

// handleOne is recvDispatch on a goroutine of its own, for a session whose
// goroutine parks in a read (see runSession).
//
//go:noinline
func (sess *session) handleOne(ctx context.Context) (reason int, err error) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		reason, err = sess.recvDispatch(ctx)
	}()
	<-done
	return reason, err
}

//go:noinline
func (sess *session) armReadDeadline() {
	_ = sess.raw.SetReadDeadline(time.Now().Add(sess.srv.cfg.Timeout))
}

//go:noinline
func (s *Server) finishSession(sess *session, reason int, err error, finish func()) {
	s.end(sess, reason, err)
	_ = sess.raw.Close()
	if finish != nil {
		finish()
	}
}

// dispatch handles one message from the endpoint. It returns endNone to
// keep the session, or why it ends.
//
//go:noinline
func (sess *session) dispatch(ctx context.Context, m wire.Message) (int, error) {
	s := sess.srv
	if sess.mux != nil {
		return s.dispatchGateway(ctx, sess, m)
	}
	switch m := m.(type) {
	case *wire.Keepalive:
		sess.enqueue(&wire.KeepaliveAck{}) // zero-size: no allocation
	case *wire.SetStatus:
		if err := s.setStatus(ctx, sess, presence.StatusFromWire(m.Status)); err != nil {
			return endError, err
		}
	case *wire.RenewRequest:
		if err := s.renew(ctx, sess); err != nil {
			return endError, err
		}
	case *wire.Logout:
		return endLogout, nil
	default:
		sess.enqueue(&wire.Error{Code: wire.CodeBadRequest, Message: fmt.Sprintf("unexpected %s", m.Type())})
		return endProtocol, fmt.Errorf("%w: %s from an endpoint", wire.ErrUnexpected, m.Type())
	}
	return endNone, nil
}

func classify(ctx context.Context, sess *session, err error) int {
	var ne net.Error
	switch {
	case sess.replaced.Load():
		return endReplaced
	case ctx.Err() != nil:
		return endShutdown
	case sess.isSlow():
		return endSlow
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, wire.ErrTruncated):
		return endClosed
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return endTimeout
	case errors.Is(err, wire.ErrBadMagic), errors.Is(err, wire.ErrVersion), errors.Is(err, wire.ErrTooLarge),
		errors.Is(err, wire.ErrSequence), errors.Is(err, wire.ErrUnknownType), errors.Is(err, wire.ErrMalformed),
		errors.Is(err, wire.ErrTruncated):
		return endProtocol
	}
	return endClosed // connection reset and other network failures
}

func (s *Server) setStatus(ctx context.Context, sess *session, st presence.Status) error {
	lk := s.idLock(sess.id)
	lk.Lock()
	defer lk.Unlock()
	s.mu.Lock()
	current := s.sessions[sess.id] == sess
	s.mu.Unlock()
	if !current {
		return nil // replaced; the new session owns the presence now
	}
	return s.store.Put(ctx, presence.Entry{User: sess.id.User, Device: sess.id.Device, Status: st, SignalAddr: sess.signal, Since: s.cfg.Now()})
}

// renew issues a new certificate for the key the endpoint logged in with,
// unless its user has been deleted since.
func (s *Server) renew(ctx context.Context, sess *session) error {
	ok, err := s.db.HasUser(ctx, sess.id.User)
	if err != nil {
		return err
	}
	if !ok {
		sess.enqueue(&wire.Error{Code: wire.CodeForbidden, Message: "user no longer exists"})
		return fmt.Errorf("renew: %w", ErrNoSuchUser)
	}
	if sess.gateway != "" {
		// A delegation withdrawn (or a gateway removed) since login ends
		// the device's credential at its next renewal.
		ok, err := s.db.IsDelegated(ctx, sess.gateway, sess.id.User)
		if err != nil {
			return err
		}
		if !ok {
			nd := &NotDelegatedError{Gateway: sess.gateway, User: sess.id.User, Device: sess.id.Device}
			sess.enqueue(&wire.Error{Code: wire.CodeNotDelegated, Message: nd.Error()})
			return fmt.Errorf("renew: %w", nd)
		}
	}
	pub, err := parseEndpointKey(sess.pubDER)
	if err != nil {
		return err
	}
	der, expires, err := s.issue(pub, sess.id, sess.gateway, s.cfg.Now())
	if err != nil {
		return err
	}
	sess.enqueue(&wire.RenewResponse{Certificate: der, ExpiresUnix: expires.Unix()})
	return nil
}

// end tears a session down: offline at once (unless a newer login of the
// same device replaced it), queued messages flushed where that makes sense,
// connection closed, writer waited for.
func (s *Server) end(sess *session, reason int, err error) {
	s.stats.ends[reason].Add(1)
	log := s.log.With("user", sess.id.User, "device", sess.id.Device, "remote", sess.remote())
	switch reason {
	case endLogout:
		log.Info("logout")
	case endClosed:
		log.Info("endpoint disconnected", "error", err)
	case endTimeout:
		log.Info("endpoint timed out; marking offline", "timeout", s.cfg.Timeout)
	case endProtocol:
		log.Warn("protocol error; closing", "error", err)
	case endSlow:
		log.Warn("endpoint too slow reading presence; disconnected", "queue_limit", maxQueue)
	case endReplaced:
		log.Debug("session replaced by a new login")
	case endShutdown:
		log.Debug("session closed by shutdown")
	default:
		log.Error("session failed", "error", err)
	}
	// Offline first, so buddies learn of a logout even if the flush below
	// has to wait for a slow endpoint.
	s.unregisterAndOffline(sess)
	if sess.mux != nil {
		// A gateway session's devices go offline with it.
		s.endDevices(sess)
	}
	if reason == endLogout || reason == endProtocol || reason == endError {
		sess.flush(s.cfg.Timeout)
	}
	sess.shutdown()
	sess.writers.Wait()
}

// enqueue queues m for the endpoint. It never blocks: an endpoint whose
// queue is full is disconnected instead.
func (sess *session) enqueue(m wire.Message) {
	if sess.parent != nil {
		sess.enqueueDevice(m)
		return
	}
	sess.qmu.Lock()
	if sess.closed {
		sess.qmu.Unlock()
		return
	}
	if len(sess.queue) >= sess.queueLimit() {
		sess.closed, sess.slow = true, true
		sess.queue = nil
		sess.qmu.Unlock()
		_ = sess.raw.Close() // the reader sees the error and tears down
		return
	}
	sess.queue = append(sess.queue, m)
	sess.startWriterLocked()
	sess.qmu.Unlock()
}

// release puts the login response at the head of the queue and starts
// writing: whatever was queued while the profile was read follows it.
func (sess *session) release(first wire.Message) {
	if sess.parent != nil {
		sess.releaseDevice(first)
		return
	}
	sess.qmu.Lock()
	defer sess.qmu.Unlock()
	sess.held = false
	sess.queue = append(sess.queue, nil)
	copy(sess.queue[1:], sess.queue)
	sess.queue[0] = first
	sess.startWriterLocked()
}

func (sess *session) startWriterLocked() {
	if sess.held || sess.writing || len(sess.queue) == 0 {
		return
	}
	sess.writing = true
	sess.writers.Add(1)
	go sess.write()
}

// write drains the queue, then exits: an idle endpoint costs no writer
// goroutine.
func (sess *session) write() {
	defer sess.writers.Done()
	s := sess.srv
	for {
		sess.qmu.Lock()
		batch := sess.queue
		sess.queue = nil
		if len(batch) == 0 {
			sess.writing = false
			sess.qmu.Unlock()
			return
		}
		sess.qmu.Unlock()
		for i, m := range batch {
			if err := sess.wc.Send(m, s.cfg.Timeout); err != nil {
				sess.qmu.Lock()
				sess.closed, sess.writing, sess.queue = true, false, nil
				sess.qmu.Unlock()
				_ = sess.raw.Close()
				if !errors.Is(err, net.ErrClosed) {
					s.log.Info("write to endpoint failed; closing", "user", sess.id.User, "device", sess.id.Device, "error", err)
				}
				return
			}
			if _, ok := m.(*wire.Presence); ok {
				s.stats.pushes.Add(1)
			}
			batch[i] = nil
		}
	}
}

// flush stops new enqueues and waits (up to timeout) for the queue to be
// written, so a final Error reaches the endpoint before the close. A writer
// still stuck at the timeout has its connection closed under it.
func (sess *session) flush(timeout time.Duration) {
	sess.qmu.Lock()
	sess.closed = true
	sess.qmu.Unlock()
	t := time.AfterFunc(timeout, func() { _ = sess.raw.Close() })
	sess.writers.Wait()
	t.Stop()
}

// shutdown stops the session's I/O at once: no new enqueues, connection
// closed (the TCP connection, so no TLS alert write can block us).
func (sess *session) shutdown() {
	sess.qmu.Lock()
	sess.closed = true
	sess.queue = nil
	sess.qmu.Unlock()
	if sess.parent != nil {
		// A gateway's device has no connection: its gateway session
		// stops carrying it.
		sess.parent.mux.remove(sess)
		return
	}
	_ = sess.raw.Close()
}

func (sess *session) isSlow() bool {
	sess.qmu.Lock()
	defer sess.qmu.Unlock()
	return sess.slow
}

// parseEndpointKey accepts the key types endpoints may use: ECDSA P-256
// and Ed25519.
func parseEndpointKey(der []byte) (crypto.PublicKey, error) {
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("%w: public key is not PKIX DER: %w", ErrBadKey, err)
	}
	switch k := k.(type) {
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P256() {
			return k, nil
		}
		return nil, fmt.Errorf("%w: ECDSA %s: want ECDSA P-256 or Ed25519", ErrBadKey, k.Curve.Params().Name)
	case ed25519.PublicKey:
		return k, nil
	case *rsa.PublicKey:
		return nil, fmt.Errorf("%w: RSA-%d: want ECDSA P-256 or Ed25519", ErrBadKey, k.N.BitLen())
	}
	return nil, fmt.Errorf("%w: %T: want ECDSA P-256 or Ed25519", ErrBadKey, k)
}

// addrPort converts a connection's address, unmapping IPv4-in-IPv6.
func addrPort(a net.Addr) netip.AddrPort {
	if t, ok := a.(*net.TCPAddr); ok {
		ap := t.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
