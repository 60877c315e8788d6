package endpoint

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/baton-voice/baton/codecs"
	"github.com/baton-voice/baton/p2p/audio"
	"github.com/baton-voice/baton/p2p/media"
	"github.com/baton-voice/baton/p2p/pki"
	"github.com/baton-voice/baton/p2p/wire"
)

const (
	dirOutgoing = "outgoing"
	dirIncoming = "incoming"
)

type cmdKind int

const (
	cmdAnswer cmdKind = iota + 1
	cmdHangup
	cmdExec
)

type command struct {
	kind   cmdKind
	reason string
	fn     func() error // cmdExec: runs on the call's owner goroutine
	reply  chan error
}

// inbound is one thing a signaling reader hands the call's owner: a
// message, or (m == nil) the end of that connection.
type inbound struct {
	conn *wire.Conn
	m    wire.Message
}

// call is one call. Its state is owned by the run goroutine; the signaling
// reader and the API talk to it through channels. info is a snapshot that
// readers take under mu.
type call struct {
	e   *Endpoint
	id  string
	dir string
	// placedBy is wire.InitiatorSelf or InitiatorPeer for a pulled call
	// (what its session list said; "" unknown); see initiator.
	placedBy string
	peer     pki.Identity
	conn     *wire.Conn // current signaling connection with the peer
	log      *slog.Logger

	inbox chan inbound // from the signaling readers
	cmds  chan command
	done  chan struct{} // closed when run has returned and cleaned up

	// Owned by run.
	state    CallState
	invite   *wire.Invite // incoming calls: the offer
	codec    codecs.Codec
	sess     *media.Session
	src      audio.Source // kept across reopenings: the tone stays continuous
	sink     audio.Sink
	sigLost  bool
	sendKeys *media.Keys
	recvKeys *media.Keys
	reason   string
	result   string // how it ended: "completed", "cancelled", a wire.ErrorCode...
	// peerCert is the certificate the peer proved at setup: C verifies
	// B's handoff grants with its key.
	peerCert   *x509.Certificate
	peerSignal string // the peer's signaling listener, when known
	transfer   bool   // a transferee's call to its target: one slot past MaxCalls (transfer.go)
	oldConns   []*wire.Conn
	ho         *handoffState // handoff roles B and C; nil until needed
	addrAck    chan struct{} // a rebind waits for the peer's new-address-ack
	remoteROC  *media.ROC    // the peer stream's SRTP roll-over counter, for a reopened session
	// peerSSRC is the SSRC the peer's offer, answer or new address named
	// (0: none known), for a rebind whose old session never authenticated
	// the peer's stream (mobility.go).
	peerSSRC  uint32
	deadConns map[*wire.Conn]bool // connections whose stream has ended
	mup       *mediaUpdates       // hold, resume, codec change (hold.go); nil until needed

	mu   sync.Mutex
	info CallInfo
	live *media.Session // c.sess, for snapshot readers
}

// initiator says who placed the call, for the session list (wire
// SessionParams.Initiator): this user for an outgoing call, the peer for
// an incoming one, and for a pulled call what the device it came from said.
func (c *call) initiator() string {
	switch c.dir {
	case dirOutgoing:
		return wire.InitiatorSelf
	case dirIncoming:
		return wire.InitiatorPeer
	}
	return c.placedBy
}

// progressLogged reports whether the call's progress lines are logged at
// Config.CallLogLevel; callers check it before building the attributes.
func (c *call) progressLogged() bool {
	return c.log.Enabled(context.Background(), c.e.cfg.CallLogLevel)
}

func (e *Endpoint) newCall(id, dir string, peer pki.Identity, conn *wire.Conn) *call {
	c := &call{
		e:         e,
		id:        id,
		dir:       dir,
		peer:      peer,
		conn:      conn,
		log:       e.log.With("call_id", id, "peer", peer.String(), "direction", dir),
		inbox:     make(chan inbound, 16),
		deadConns: map[*wire.Conn]bool{},
		cmds:      make(chan command),
		done:      make(chan struct{}),
		info:      CallInfo{ID: id, Direction: dir, Peer: peer.String(), State: CallDialing.String(), Started: e.cfg.Now()},
	}
	c.peerCert = peerCertificate(conn)
	c.info.PeerGateway = pki.BridgedBy(c.peerCert)
	return c
}

// register adds c to the endpoint, enforcing MaxCalls (1 for a phone).
func (e *Endpoint) register(c *call) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed || e.crashed {
		return ErrClosed
	}
	if _, dup := e.calls[c.id]; dup {
		return fmt.Errorf("%w: call id %q is already in use", ErrBadState, c.id)
	}
	limit := e.cfg.MaxCalls
	if c.transfer {
		limit++
	}
	if len(e.calls)+e.reserved >= limit {
		return fmt.Errorf("%w: %s is already in %d call(s)", ErrBusy, e.id, len(e.calls)+e.reserved)
	}
	e.calls[c.id] = c
	return nil
}

// registerReserved adds c in the slot a pull reserved (*reserved true),
// and marks the reservation used.
func (e *Endpoint) registerReserved(c *call, reserved *bool) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed || e.crashed {
		return ErrClosed
	}
	if _, dup := e.calls[c.id]; dup {
		return fmt.Errorf("%w: call id %q is already in use", ErrBadState, c.id)
	}
	e.reserved--
	*reserved = false
	e.calls[c.id] = c
	return nil
}

// Dial implements API: it places a call to "user" (its best online device)
// or "user/device" and returns once the invite is sent.
func (e *Endpoint) Dial(ctx context.Context, target string) (CallInfo, error) {
	return e.DialWith(ctx, target, CallOptions{})
}

// DialWith is Dial with per-call options: the call's audio comes from and
// goes to opts' Source and Sink instead of the endpoint's factories.
func (e *Endpoint) DialWith(ctx context.Context, target string, opts CallOptions) (CallInfo, error) {
	if opts.Number != "" && !wire.ValidNumber(opts.Number) {
		return CallInfo{}, fmt.Errorf("%w: number %q: want digits, * and # with an optional leading +", ErrInvalidTarget, opts.Number)
	}
	peer, addr, err := e.resolve(target)
	if err != nil {
		return CallInfo{}, err
	}
	conn, err := e.dial(ctx, peer, addr)
	if err != nil {
		e.stats.callResult(dirOutgoing, "unreachable")
		return CallInfo{}, err
	}
	c := e.newCall(newCallID(), dirOutgoing, peer, conn)
	c.src, c.sink = opts.Source, opts.Sink
	c.info.Number = opts.Number
	c.transfer = opts.transfer
	if err := e.register(c); err != nil {
		_ = conn.Close()
		return CallInfo{}, err
	}
	// The offer: our codecs in preference order and our media address. The
	// session is opened with our first codec; if the answer picks another,
	// the session is reopened on the same port before any audio flows.
	first := e.cfg.Codecs.List()[0]
	if e.cfg.SRTP {
		if err := c.newSendKeys(); err != nil {
			e.abandon(c)
			_ = conn.Close()
			return CallInfo{}, err
		}
	}
	if err := c.openMedia(ctx, first, netip.AddrPortFrom(e.mediaAddr(), 0), nil); err != nil {
		e.abandon(c)
		_ = conn.Close()
		return CallInfo{}, err
	}
	c.codec = first
	c.peerSignal = addr.String()
	inv := &wire.Invite{
		CallID:     c.id,
		From:       e.id.String(),
		To:         peer.String(),
		Codecs:     e.cfg.Codecs.Names(),
		Media:      c.localMedia(),
		SignalAddr: e.SignalAddr().String(),
		Number:     opts.Number,
	}
	var msg wire.Message = inv
	if opts.Replaces != nil { // an attended transfer's invite (transfer.go)
		msg = &wire.InviteReplaces{Invite: *inv, Replaces: *opts.Replaces}
	}
	if err := conn.Send(msg, sendTimeout); err != nil {
		c.closeMedia()
		e.abandon(c)
		_ = conn.Close()
		e.stats.callResult(dirOutgoing, "unreachable")
		return CallInfo{}, fmt.Errorf("%w: send invite to %s: %w", ErrUnreachable, peer, err)
	}
	c.state = CallDialing
	c.update()
	if c.progressLogged() {
		c.log.Log(context.Background(), c.e.cfg.CallLogLevel, "invite sent", "codecs", inv.Codecs, "media", inv.Media.Addr)
	}
	e.emit(Event{Type: "call.dialing", CallID: c.id, Peer: peer.String(), State: "dialing"})
	info := c.snapshot()
	c.start()
	return info, nil
}

// handleInvite checks an incoming invite on an authenticated connection and
// either rejects it or starts an incoming call.
func (e *Endpoint) handleInvite(wc *wire.Conn, peer pki.Identity, inv *wire.Invite, log *slog.Logger) {
	e.handleInviteWith(wc, peer, inv, log, nil)
}

// handleInviteWith is handleInvite; rep, when not nil, makes the call an
// attended transfer's replacement of call rep.old (transfer.go): it takes
// a transfer's extra call slot and is answered at once by rep.
func (e *Endpoint) handleInviteWith(wc *wire.Conn, peer pki.Identity, inv *wire.Invite, log *slog.Logger, rep *replacement) {
	reject := func(code wire.ErrorCode, reason, stat string) {
		e.stats.rejected(stat)
		log.Info("invite refused", "call_id", inv.CallID, "code", code, "reason", reason)
		_ = wc.Send(&wire.Reject{CallID: inv.CallID, Code: code, Reason: reason}, sendTimeout)
		_ = wc.Close()
	}
	// The From header must be the identity the peer proved with its
	// certificate: a peer cannot call as another user.
	if inv.From != peer.String() {
		reject(wire.CodeIdentityMismatch, fmt.Sprintf("invite from %q but certificate is %s", inv.From, peer), "identity")
		return
	}
	if inv.To != e.id.String() {
		reject(wire.CodeNotFound, fmt.Sprintf("this endpoint is %s, not %s", e.id, inv.To), "wrong-target")
		return
	}
	// The rule outgoing calls follow (resolve), applied to incoming ones:
	// buddies and own devices only, unless configured otherwise.
	if !e.mayCall(peer) {
		e.stats.callResult(dirIncoming, "not-buddy")
		reject(wire.CodeForbidden, fmt.Sprintf("not a buddy: %s accepts calls from buddies only", e.id), "not-buddy")
		return
	}
	codec, err := e.cfg.Codecs.Negotiate(inv.Codecs)
	if err != nil {
		reject(wire.CodeUnsupported, fmt.Sprintf("none of %v is supported here (have %v)", inv.Codecs, e.cfg.Codecs.Names()), "codec")
		return
	}
	if e.cfg.SRTP && inv.Media.SRTPKey == nil {
		reject(wire.CodeBadRequest, "srtp required", "srtp")
		return
	}
	c := e.newCall(inv.CallID, dirIncoming, peer, wc)
	c.info.Number = inv.Number
	c.invite = inv
	c.codec = codec
	c.peerSignal = inv.SignalAddr
	c.transfer = rep != nil
	if err := e.register(c); err != nil {
		code := wire.CodeBusy
		if errors.Is(err, ErrClosed) {
			code = wire.CodeDeclined
		}
		e.stats.callResult(dirIncoming, string(code))
		reject(code, err.Error(), string(code))
		return
	}
	if err := wc.Send(&wire.Ringing{CallID: c.id}, sendTimeout); err != nil {
		e.abandon(c)
		_ = wc.Close()
		log.Info("ringing not delivered", "err", err)
		return
	}
	c.state = CallRinging
	c.info.Codec = codec.Descriptor().Name
	c.update()
	if c.progressLogged() {
		c.log.Log(context.Background(), c.e.cfg.CallLogLevel, "incoming call ringing", "codec", codec.Descriptor().Name)
	}
	if rep != nil {
		e.emit(Event{Type: "call.ringing", CallID: c.id, Peer: peer.String(), State: "ringing", Detail: "replaces " + rep.old})
		c.start()
		rep.started = true
		e.wg.Add(1)
		go func() { defer e.wg.Done(); e.completeReplacement(c, rep) }()
		return
	}
	e.emit(Event{Type: "call.ringing", CallID: c.id, Peer: peer.String(), State: "ringing", Detail: "incoming"})
	d := e.decideIncoming(c) // OnIncoming (incoming.go)
	c.start()
	e.actOnIncoming(c, d)
}

// abandon removes a call that was registered but never started (its
// set-up failed), and marks it done so nobody waits for it.
func (e *Endpoint) abandon(c *call) {
	e.mu.Lock()
	if e.calls[c.id] == c {
		delete(e.calls, c.id)
	}
	e.mu.Unlock()
	close(c.done)
}

func (e *Endpoint) lookup(id string) (*call, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, ok := e.calls[id]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNoSuchCall, id)
	}
	return c, nil
}

// Answer implements API.
func (e *Endpoint) Answer(ctx context.Context, id string) error {
	c, err := e.lookup(id)
	if err != nil {
		return err
	}
	return c.command(ctx, cmdAnswer, "")
}

// AnswerWith answers an incoming call whose audio comes from and goes to
// opts' Source and Sink instead of the endpoint's factories.
func (e *Endpoint) AnswerWith(ctx context.Context, id string, opts CallOptions) error {
	c, err := e.lookup(id)
	if err != nil {
		return err
	}
	return c.exec(ctx, func() error {
		if c.dir != dirIncoming || c.state != CallRinging {
			return fmt.Errorf("%w: cannot answer a %s %s call", ErrBadState, c.state, c.dir)
		}
		if opts.Source != nil {
			c.src = opts.Source
		}
		if opts.Sink != nil {
			c.sink = opts.Sink
		}
		return c.onCommand(command{kind: cmdAnswer})
	})
}

// Decline refuses a ringing incoming call with a code the caller sees
// (wire.CodeBusy, wire.CodeDeclined, wire.CodeOffline...): a gateway
// passes on what the SIP phone answered.
func (e *Endpoint) Decline(ctx context.Context, id string, code wire.ErrorCode, reason string) error {
	c, err := e.lookup(id)
	if err != nil {
		return err
	}
	return c.exec(ctx, func() error {
		if c.dir != dirIncoming || c.state != CallRinging {
			return fmt.Errorf("%w: cannot decline a %s %s call", ErrBadState, c.state, c.dir)
		}
		_ = c.conn.Send(&wire.Reject{CallID: c.id, Code: code, Reason: reason}, sendTimeout)
		c.end(fmt.Sprintf("declined: %s %s", code, reason), string(code))
		return nil
	})
}

// Hangup implements API. It returns once the call has ended and released
// everything (its recording is closed), so Call(id) then shows the end.
func (e *Endpoint) Hangup(ctx context.Context, id string) error {
	c, err := e.lookup(id)
	if err != nil {
		return err
	}
	if err := c.command(ctx, cmdHangup, "local hangup"); err != nil {
		return err
	}
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Calls implements API: live calls, then recently ended ones.
func (e *Endpoint) Calls() []CallInfo {
	e.mu.Lock()
	live := make([]*call, 0, len(e.calls))
	for _, c := range e.calls {
		live = append(live, c)
	}
	out := make([]CallInfo, 0, len(live)+len(e.ended))
	ended := append([]CallInfo(nil), e.ended...)
	e.mu.Unlock()
	for _, c := range live {
		out = append(out, c.snapshot())
	}
	return append(out, ended...)
}

// Call implements API.
func (e *Endpoint) Call(id string) (CallInfo, error) {
	if c, err := e.lookup(id); err == nil {
		return c.snapshot(), nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := len(e.ended) - 1; i >= 0; i-- {
		if e.ended[i].ID == id {
			return e.ended[i], nil
		}
	}
	return CallInfo{}, fmt.Errorf("%w: %q", ErrNoSuchCall, id)
}

func (c *call) start() {
	c.startReader(c.conn)
	c.e.wg.Add(1)
	go func() { defer c.e.wg.Done(); c.run() }()
}

func (c *call) startReader(conn *wire.Conn) {
	log := c.log // fixed now: run may change c.log when the peer changes
	c.e.wg.Add(1)
	go func() { defer c.e.wg.Done(); c.readLoop(conn, log) }()
}

// peerCertificate returns the certificate the TLS peer of conn proved
// (for an in-process connection, localconn.go, the one this side verified).
func peerCertificate(conn *wire.Conn) *x509.Certificate {
	if conn == nil {
		return nil
	}
	nc := conn.NetConn()
	if t, ok := nc.(*tracked); ok {
		nc = t.Conn
	}
	if lc, ok := nc.(*localConn); ok {
		return lc.peer
	}
	if tc, ok := nc.(*tls.Conn); ok {
		if pc := tc.ConnectionState().PeerCertificates; len(pc) > 0 {
			return pc[0]
		}
	}
	return nil
}

// exec runs fn on the call's owner goroutine and returns its error.
func (c *call) exec(ctx context.Context, fn func() error) error {
	return c.send(ctx, command{kind: cmdExec, fn: fn})
}

// command hands a command to the call's owner and waits for its answer.
func (c *call) command(ctx context.Context, k cmdKind, reason string) error {
	return c.send(ctx, command{kind: k, reason: reason})
}

func (c *call) send(ctx context.Context, cmd command) error {
	cmd.reply = make(chan error, 1)
	select {
	case c.cmds <- cmd:
	case <-c.done:
		return fmt.Errorf("%w: call %s has ended", ErrBadState, c.id)
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-cmd.reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// hangup ends the call from the endpoint itself (shutdown).
func (c *call) hangup(reason string) {
	_ = c.command(context.Background(), cmdHangup, reason)
}

// readLoop reads one signaling connection of this call. A malformed
// message gets an Error answer and the call goes on; a broken stream stops
// the reader, which tells the owner.
func (c *call) readLoop(conn *wire.Conn, log *slog.Logger) {
	for {
		m, err := conn.Recv()
		if err != nil {
			if errors.Is(err, wire.ErrMalformed) || errors.Is(err, wire.ErrUnknownType) {
				c.e.stats.rejected("malformed")
				log.Info("malformed signaling message ignored", "err", err)
				_ = conn.SendError(wire.CodeBadRequest, err.Error(), c.id, sendTimeout)
				continue
			}
			// EOF is the peer closing, net.ErrClosed this side closing the
			// connection at the call's end: both normal, so not logged at
			// info (one line per call was a few % of a gateway call's CPU,
			// docs/benchmarks.md §16).
			if errors.Is(err, net.ErrClosed) {
				log.Debug("signaling stream closed")
			} else if !errors.Is(err, io.EOF) {
				log.Info("signaling stream ended", "err", err)
			}
			select {
			case c.inbox <- inbound{conn: conn}:
			case <-c.done:
			}
			return
		}
		select {
		case c.inbox <- inbound{conn: conn, m: m}:
		case <-c.done:
			return
		}
	}
}

// run is the call's owner goroutine.
func (c *call) run() {
	defer c.finish()
	ring := time.NewTimer(c.e.cfg.RingTimeout)
	defer ring.Stop()
	watchdog := time.NewTicker(time.Second)
	defer watchdog.Stop()
	for c.state != CallEnded {
		select {
		case in := <-c.inbox:
			if in.m == nil {
				c.deadConns[in.conn] = true
			}
			if in.conn != c.conn {
				// A connection the call no longer uses (B's, after a
				// handoff moved the call to A): its end means nothing, and
				// anything it still says is not from the call's peer.
				if in.m != nil {
					c.log.Info("message on a replaced signaling connection ignored", "type", in.m.Type())
				}
				continue
			}
			if in.m == nil {
				c.onSignalingLost()
				continue
			}
			c.onMessage(in.m)
		case <-c.bTimer():
			c.onBTimeout()
		case <-c.cTimer():
			c.onCTimeout()
		case <-c.watchC():
			c.onWatch()
		case <-c.mupTimer():
			c.onMediaUpdateTimeout() // hold.go
		case cmd := <-c.cmds:
			cmd.reply <- c.onCommand(cmd)
		case <-ring.C:
			if c.state == CallDialing || c.state == CallRinging {
				if c.dir == dirOutgoing {
					_ = c.conn.Send(&wire.Cancel{CallID: c.id}, sendTimeout)
				} else {
					_ = c.conn.Send(&wire.Reject{CallID: c.id, Code: wire.CodeTimeout, Reason: "not answered"}, sendTimeout)
				}
				c.end("no answer", "timeout")
			}
		case <-watchdog.C:
			if c.sigLost && c.sess != nil {
				last := c.sess.Stats().LastPacket
				if last.IsZero() || c.e.cfg.Clock.Now().Sub(last) > c.e.cfg.MediaTimeout {
					c.onMediaTimeout() // handoff_peer.go: C's table ends the call
				}
			}
		}
	}
}

func (c *call) onSignalingLost() {
	if c.state != CallActive {
		c.end("signaling connection lost", "signaling-lost")
		return
	}
	// Media is direct: an active call survives the loss of its signaling
	// connection while audio still flows; the watchdog ends it when the
	// media stops too.
	c.sigLost = true
	c.log.Warn("signaling connection lost; call continues on media")
	c.e.emit(Event{Type: "call.signaling-lost", CallID: c.id, Peer: c.peer.String(), State: c.state.String()})
}

func (c *call) onMessage(m wire.Message) {
	switch m := m.(type) {
	case *wire.Ringing:
		if c.dir == dirOutgoing && c.state == CallDialing {
			c.state = CallRinging
			c.update()
			c.e.emit(Event{Type: "call.ringing", CallID: c.id, Peer: c.peer.String(), State: "ringing", Detail: "outgoing"})
			return
		}
	case *wire.Accept:
		if c.dir == dirOutgoing && (c.state == CallDialing || c.state == CallRinging) {
			if err := c.onAccept(m); err != nil {
				c.log.Warn("answer unusable; hanging up", "err", err)
				_ = c.conn.Send(&wire.Bye{CallID: c.id, Reason: err.Error()}, sendTimeout)
				c.end(err.Error(), "bad-answer")
			}
			return
		}
	case *wire.Reject:
		if c.dir == dirOutgoing && (c.state == CallDialing || c.state == CallRinging) {
			c.end(fmt.Sprintf("rejected: %s %s", m.Code, m.Reason), string(m.Code))
			return
		}
	case *wire.Cancel:
		if c.dir == dirIncoming && c.state == CallRinging {
			c.end("cancelled by caller", "cancelled")
			return
		}
	case *wire.Bye:
		if c.state == CallActive || c.state == CallRinging || c.state == CallDialing {
			reason := "remote hangup"
			if m.Reason != "" {
				reason += ": " + m.Reason
			}
			c.end(reason, "completed")
			return
		}
	case *wire.NewAddress:
		if c.state == CallActive {
			c.onNewAddress(m)
			return
		}
	case *wire.Withdraw:
		if c.state == CallActive && c.onWithdraw(m) { // handoff_peer.go
			return
		}
	case *wire.DTMF:
		if c.state == CallActive {
			c.onDTMF(m) // dtmf.go
			return
		}
	case *wire.MediaUpdate:
		if c.state == CallActive {
			c.onMediaUpdate(m) // hold.go
			return
		}
	case *wire.MediaUpdateAck:
		if c.state == CallActive && c.onMediaUpdateAck(m) {
			return
		}
	case *wire.NewAddressAck:
		if c.addrAck != nil {
			c.addrAck <- struct{}{} // buffered, one per rebind
			c.addrAck = nil
			return
		}
	case *wire.Error:
		if c.state != CallActive {
			c.end(fmt.Sprintf("peer error: %s %s", m.Code, m.Message), string(m.Code))
			return
		}
		c.log.Info("peer reported an error", "code", m.Code, "message", m.Message)
		return
	}
	// Well-formed but out of place: tell the peer, keep the call.
	c.e.stats.rejected("unexpected")
	c.log.Info("unexpected signaling message ignored", "type", m.Type(), "state", c.state)
	_ = c.conn.SendError(wire.CodeBadRequest, fmt.Sprintf("unexpected %s in state %s", m.Type(), c.state), c.id, sendTimeout)
}

func (c *call) onAccept(m *wire.Accept) error {
	codec, ok := c.e.cfg.Codecs.Lookup(m.Codec)
	if !ok {
		return fmt.Errorf("%w: answer chose %q, which was not offered", ErrNoCodec, m.Codec)
	}
	remote, err := netip.ParseAddrPort(m.Media.Addr)
	if err != nil {
		return fmt.Errorf("endpoint: answer media address %q: %w", m.Media.Addr, err)
	}
	c.peerSSRC = m.Media.SSRC
	var recv *media.Keys
	if c.sendKeys != nil {
		if m.Media.SRTPKey == nil {
			return errors.New("endpoint: answer has no SRTP key but the offer required SRTP")
		}
		k, err := media.KeysFromBytes(m.Media.SRTPKey)
		if err != nil {
			return fmt.Errorf("endpoint: answer SRTP key: %w", err)
		}
		recv = &k
	}
	// The session must be reopened when the codec differs or to install
	// the receive keys, which were unknown when the offer went out. It is
	// reopened on the same local port that the offer advertised.
	conn := c.detachMedia()
	if err := c.openMediaOn(context.Background(), codec, conn, recv); err != nil {
		return err
	}
	c.codec = codec
	c.recvKeys = recv
	if m.SignalAddr != "" {
		c.peerSignal = m.SignalAddr
	}
	c.aimMedia(c.sess, remote, c.conn, false)
	c.activate(remote)
	return nil
}

// activate starts the media and marks the call answered (run goroutine).
func (c *call) activate(remote netip.AddrPort) {
	c.sess.Start()
	c.state = CallActive
	now := c.e.cfg.Now()
	c.mu.Lock()
	c.info.Answered = &now
	c.info.RemoteMedia = remote.String()
	c.mu.Unlock()
	c.update()
	c.e.stats.callResult(c.dir, "answered")
	if c.progressLogged() {
		c.log.Log(context.Background(), c.e.cfg.CallLogLevel, "call active", "codec", c.codec.Descriptor().Name, "remote_media", remote)
	}
	c.e.emit(Event{Type: "call.active", CallID: c.id, Peer: c.peer.String(), State: "active",
		Detail: fmt.Sprintf("codec=%s srtp=%t local=%s remote=%s%s", c.codec.Descriptor().Name, c.recvKeys != nil, c.sess.LocalAddr(), remote, bridgedNote(c.peerCert))})
}

func (c *call) onCommand(cmd command) error {
	switch cmd.kind {
	case cmdExec:
		return cmd.fn()
	case cmdAnswer:
		if c.dir != dirIncoming || c.state != CallRinging {
			return fmt.Errorf("%w: cannot answer a %s %s call", ErrBadState, c.state, c.dir)
		}
		if err := c.answer(); err != nil {
			c.log.Warn("answer failed", "err", err)
			_ = c.conn.Send(&wire.Reject{CallID: c.id, Code: wire.CodeInternal, Reason: "answer failed"}, sendTimeout)
			c.end("answer failed: "+err.Error(), "failed")
			return err
		}
		return nil
	case cmdHangup:
		switch {
		case c.state == CallActive:
			if !c.sigLost {
				_ = c.conn.Send(&wire.Bye{CallID: c.id, Reason: cmd.reason}, sendTimeout)
			}
			c.end(cmd.reason, "completed")
		case c.dir == dirOutgoing:
			_ = c.conn.Send(&wire.Cancel{CallID: c.id}, sendTimeout)
			c.end("cancelled: "+cmd.reason, "cancelled")
		default:
			_ = c.conn.Send(&wire.Reject{CallID: c.id, Code: wire.CodeDeclined, Reason: cmd.reason}, sendTimeout)
			c.end("declined: "+cmd.reason, "declined")
		}
		return nil
	}
	return fmt.Errorf("endpoint: unknown command %d", cmd.kind)
}

// answer opens media with the negotiated codec and sends Accept.
func (c *call) answer() error {
	inv := c.invite
	remote, err := netip.ParseAddrPort(inv.Media.Addr)
	if err != nil {
		return fmt.Errorf("endpoint: offer media address %q: %w", inv.Media.Addr, err)
	}
	c.peerSSRC = inv.Media.SSRC
	var recv *media.Keys
	if inv.Media.SRTPKey != nil {
		k, err := media.KeysFromBytes(inv.Media.SRTPKey)
		if err != nil {
			return fmt.Errorf("endpoint: offer SRTP key: %w", err)
		}
		recv = &k
		// SRTP both ways when the offer carried a key (RFC 3711 keys are
		// per sender); plain RTP both ways when it did not.
		if err := c.newSendKeys(); err != nil {
			return err
		}
	}
	if err := c.openMedia(c.e.ctx, c.codec, netip.AddrPortFrom(c.e.mediaAddr(), 0), recv); err != nil {
		return err
	}
	c.aimMedia(c.sess, remote, c.conn, false)
	c.recvKeys = recv
	acc := &wire.Accept{CallID: c.id, Codec: c.codec.Descriptor().Name, Media: c.localMedia(), SignalAddr: c.e.SignalAddr().String()}
	if err := c.conn.Send(acc, sendTimeout); err != nil {
		return fmt.Errorf("endpoint: send accept: %w", err)
	}
	c.activate(remote)
	return nil
}

// openMedia opens the call's RTP session. recv is the peer's SRTP key
// (nil when not known yet or plain RTP); our own send key is created once
// per call and kept across reopenings.
func (c *call) openMedia(ctx context.Context, codec codecs.Codec, local netip.AddrPort, recv *media.Keys) error {
	return c.openMediaWith(ctx, codec, local, nil, recv)
}

// openMediaOn is openMedia on the socket of the session detachMedia ended
// (its port is the one the call advertised); nil: bind a new one, as
// openMedia does.
func (c *call) openMediaOn(ctx context.Context, codec codecs.Codec, conn *net.UDPConn, recv *media.Keys) error {
	if conn == nil {
		return c.openMediaWith(ctx, codec, netip.AddrPortFrom(c.e.mediaAddr(), 0), nil, recv)
	}
	local := netip.AddrPort{}
	if ua, ok := conn.LocalAddr().(*net.UDPAddr); ok {
		local = ua.AddrPort()
	}
	return c.openMediaWith(ctx, codec, local, conn, recv)
}

func (c *call) openMediaWith(ctx context.Context, codec codecs.Codec, local netip.AddrPort, conn *net.UDPConn, recv *media.Keys) error {
	if conn != nil {
		defer func() {
			if c.sess == nil {
				_ = conn.Close() // media.Open owns it only once reached
			}
		}()
	}
	if c.src == nil {
		src, err := c.e.newSource(c.id)
		if err != nil {
			return err
		}
		c.src = src
	}
	if c.sink == nil {
		sink, err := c.e.newSink(c.id, c.peer.String())
		if err != nil {
			return err
		}
		c.sink = sink
	}
	src := c.src
	cfg := media.Config{
		Local:         local,
		Conn:          conn,
		Codec:         codec,
		Ptime:         c.e.cfg.Ptime,
		JitterDelay:   c.e.cfg.JitterDelay,
		Source:        src,
		Sink:          c.sink,
		Logger:        c.log,
		Impairment:    c.e.cfg.Impairment,
		FirstSequence: c.e.cfg.firstSeq,
	}
	// A replaced stream plays again a few packet times after its
	// replacement went silent (handoff_peer.go, staleSource).
	cfg.StaleSourceTimeout = staleSource(c.e.timeouts, c.e.cfg.Ptime)
	// Its LastPacket on the clock the handoff checks and the watchdog
	// compare it with (handoff_peer.go: checkMute, checkSwitched).
	cfg.Now = c.e.cfg.Clock.Now
	// What the far party of a handoff sees of it before any signaling
	// (step 4: the new device's stream plays; its silence: the replaced
	// stream plays again), as events: a puller that dies before step 7
	// leaves C nothing else to know the attempt by (the gateway's
	// handoff log builds C's record from them). The media layer calls
	// this on its receiving goroutine; emit does not block.
	id, e := c.id, c.e
	cfg.OnSourceSwitch = func(ssrc uint32, returned bool) {
		if returned {
			e.emit(Event{Kind: KindMediaSourceReturned, CallID: id,
				Detail: fmt.Sprintf("playing ssrc %08x again: the stream that replaced it went silent", ssrc)})
			return
		}
		e.emit(Event{Kind: KindMediaSourceSwitched, CallID: id, Detail: fmt.Sprintf("playing a new authenticated stream, ssrc %08x", ssrc)})
	}
	// Keys are installed in pairs: before the answer only our send key is
	// known, and nothing is sent or received before the answer anyway.
	if c.sendKeys != nil && recv != nil {
		cfg.SendKeys, cfg.RecvKeys = c.sendKeys, recv
		// A handoff's new device, or a peer that moved, is heard as soon
		// as its stream authenticates (docs/handoff.md, step 4).
		cfg.LatchAuthenticated = true
		cfg.RemoteROC = c.remoteROC
	}
	s, err := media.Open(ctx, cfg)
	if err != nil {
		return fmt.Errorf("endpoint: open media on %s: %w", local, err)
	}
	c.sess = s
	c.mu.Lock()
	c.live = s
	c.info.LocalMedia = s.LocalAddr().String()
	c.info.Codec = codec.Descriptor().Name
	c.info.SRTP = cfg.SendKeys != nil
	c.mu.Unlock()
	return nil
}

func (c *call) newSendKeys() error {
	k, err := media.NewKeys()
	if err != nil {
		return fmt.Errorf("endpoint: srtp keys: %w", err)
	}
	c.sendKeys = &k
	return nil
}

func (c *call) localMedia() wire.Media {
	m := wire.Media{
		Addr:    c.sess.LocalAddr().String(),
		SSRC:    c.sess.SSRC(),
		PtimeMS: int(c.e.cfg.Ptime / time.Millisecond),
	}
	if c.sendKeys != nil {
		m.SRTPKey = c.sendKeys.Bytes()
	}
	return m
}

func (c *call) closeMedia() {
	if c.sess != nil {
		c.endMedia()
		_ = c.sess.Close()
		c.dropMedia()
	}
}

// detachMedia is closeMedia keeping the session's socket, which it
// returns for openMediaOn (nil when there was no session).
func (c *call) detachMedia() *net.UDPConn {
	if c.sess == nil {
		return nil
	}
	c.endMedia()
	conn, _ := c.sess.Detach()
	c.dropMedia()
	return conn
}

// endMedia files the ending session's counters.
func (c *call) endMedia() {
	st := c.sess.Stats()
	c.e.stats.addMedia(st)
	c.mu.Lock()
	c.info.Media = mediaInfo(st)
	c.mu.Unlock()
}

func (c *call) dropMedia() {
	c.sess = nil
	c.mu.Lock()
	c.live = nil
	c.mu.Unlock()
}

// end moves the call to CallEnded; run returns and finish cleans up.
func (c *call) end(reason, result string) {
	c.state = CallEnded
	c.reason = reason
	c.result = result
	c.e.stats.callResult(c.dir, result)
}

// finish releases everything the call holds and records it as ended.
func (c *call) finish() {
	if c.ho != nil && c.ho.watch != nil {
		c.ho.watch.Stop()
	}
	c.failPending() // hold.go
	c.closeMedia()
	if cl, ok := c.sink.(io.Closer); ok {
		if err := cl.Close(); err != nil {
			c.log.Warn("closing recording", "err", err)
		}
	}
	if c.conn != nil {
		_ = c.conn.Close()
	}
	for _, oc := range c.oldConns {
		_ = oc.Close()
	}
	now := c.e.cfg.Now()
	// The call shows ended only once its slot is free: under e.mu, so no
	// one sees it ended while it still counts against MaxCalls (a pull
	// right after the last move ended was refused, docs/benchmarks.md §23).
	c.e.mu.Lock()
	c.mu.Lock()
	c.info.State = CallEnded.String()
	c.info.Ended = &now
	c.info.EndReason = c.reason
	c.info.Result = c.result
	info := c.info
	c.mu.Unlock()
	if c.e.calls[c.id] == c {
		delete(c.e.calls, c.id)
	}
	c.e.ended = append(c.e.ended, info)
	if len(c.e.ended) > maxEndedCalls {
		c.e.ended = c.e.ended[len(c.e.ended)-maxEndedCalls:]
	}
	c.e.mu.Unlock()
	if c.progressLogged() {
		c.log.Log(context.Background(), c.e.cfg.CallLogLevel, "call ended", "reason", c.reason)
	}
	c.e.emit(Event{Type: "call.ended", CallID: c.id, Peer: c.peer.String(), State: "ended", Detail: c.reason})
	close(c.done)
}

// update refreshes the snapshot's state field (run goroutine only).
func (c *call) update() {
	c.mu.Lock()
	c.info.State = c.state.String()
	c.mu.Unlock()
}

func (c *call) snapshot() CallInfo {
	c.mu.Lock()
	info := c.info
	c.mu.Unlock()
	if s := c.currentSession(); s != nil {
		st := s.Stats()
		info.Media = mediaInfo(st)
		codecChangeGap(&info, st) // hold.go
	}
	return info
}

// currentSession returns the live media session for readers other than
// run (which owns c.sess).
func (c *call) currentSession() *media.Session {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.live
}

func mediaInfo(st media.Stats) *MediaInfo {
	return &MediaInfo{
		PacketsSent:     st.PacketsSent,
		PacketsReceived: st.PacketsReceived,
		Lost:            st.Lost,
		Late:            st.Late,
		Concealed:       st.FramesConcealed,
		Played:          st.FramesPlayed,
		WrongSource:     st.WrongSource,
		Malformed:       st.Malformed,
		AuthFailed:      st.AuthFailed,
		JitterMS:        float64(st.Jitter) / float64(time.Millisecond),
		LongestGapMS:    float64(st.LongestPlayoutGap) / float64(time.Millisecond),
		SourceSwitches:  st.SourceSwitches,
		Latched:         st.Latched,

		RemoteConfirmed:  st.RemoteConfirmed,
		ConsentProbes:    st.ConsentProbes,
		NotSentNoConsent: st.NotSentNoConsent,
		ConsentLapses:    st.ConsentLapses,
	}
}

// bridgedNote says, in an event's detail, that the peer is a SIP device
// behind a gateway (its certificate says so), or nothing.
func bridgedNote(cert *x509.Certificate) string {
	if gw := pki.BridgedBy(cert); gw != "" {
		return " peer=SIP,via-gateway-" + gw
	}
	return ""
}
