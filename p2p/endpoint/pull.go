package endpoint

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/baton-voice/baton/p2p/handoff"
	"github.com/baton-voice/baton/p2p/media"
	"github.com/baton-voice/baton/p2p/pki"
	"github.com/baton-voice/baton/p2p/wire"
)

// StepInfo is one claim step of a handoff as it happened.
type StepInfo struct {
	Step         int       `json:"step"`
	Title        string    `json:"title"`
	At           time.Time `json:"at"`
	SinceStartMS float64   `json:"since_start_ms"`
	Detail       string    `json:"detail,omitempty"`
}

// HandoffInfo is a snapshot of one handoff (a pull, or a rebind of this
// endpoint's own media), with per-step timestamps.
type HandoffInfo struct {
	ID   string `json:"id"`
	Kind string `json:"kind"`           // "pull", "rebind" or "push"
	From string `json:"from,omitempty"` // B, the device the call was on
	// To is, for a push, the device the call was sent to (which pulled it).
	To       string     `json:"to,omitempty"`
	CallID   string     `json:"call_id,omitempty"`
	Peer     string     `json:"peer,omitempty"` // C
	State    string     `json:"state"`          // running, done, failed, rolled-back, call-ended; a push also refused
	Error    string     `json:"error,omitempty"`
	Started  time.Time  `json:"started"`
	Finished *time.Time `json:"finished,omitempty"`
	Steps    []StepInfo `json:"steps"`
	// FirstAudioMS is the time from the request to the first audio packet
	// received from C (for a rebind: on the new address).
	FirstAudioMS float64 `json:"first_audio_ms,omitempty"`
	// NewAddress is the media address the call ended up on.
	NewAddress string `json:"new_address,omitempty"`
	// TargetHandoff is, for a push, the id of the pull the target ran
	// (its /v1/handoffs/{id}); Steps are that pull's steps.
	TargetHandoff string `json:"target_handoff,omitempty"`
}

// PullRequest asks to take a call from another device of this user.
type PullRequest struct {
	From      string `json:"from"`                 // device name, or user/device of the same user
	SessionID string `json:"session_id,omitempty"` // which session, when B has several
	// Options gives the pulled call its own audio (a gateway: the SIP leg
	// of the phone that pulls); zero = Config.NewSource/NewSink.
	Options CallOptions `json:"-"`
}

// SessionInfo describes one of another device's sessions (what B would
// report to a session query), without its keys and grant.
type SessionInfo struct {
	CallID    string `json:"call_id"`
	Peer      string `json:"peer"`
	Direction string `json:"direction"`
	Codec     string `json:"codec"`
	PeerMedia string `json:"peer_media"`
}

// handoffRun records one handoff. Its owner is the goroutine running it.
type handoffRun struct {
	e     *Endpoint
	m     *handoff.Machine
	start time.Time

	mu   sync.Mutex
	info HandoffInfo
}

const maxHandoffs = 50

func (e *Endpoint) newHandoffRun(kind string, role handoff.Role) *handoffRun {
	var b [6]byte
	_, _ = rand.Read(b[:])
	now := e.cfg.Now()
	h := &handoffRun{e: e, m: handoff.NewMachine(role), start: now,
		info: HandoffInfo{ID: "h-" + hex.EncodeToString(b[:]), Kind: kind, State: "running", Started: now, Steps: []StepInfo{}}}
	e.mu.Lock()
	e.handoffs = append(e.handoffs, h)
	if len(e.handoffs) > maxHandoffs {
		e.handoffs = e.handoffs[len(e.handoffs)-maxHandoffs:]
	}
	e.mu.Unlock()
	return h
}

// fire drives the handoff's table and records the claim step it completes.
func (h *handoffRun) fire(ev handoff.Event, detail string) (handoff.Transition, error) {
	return h.fireAt(ev, detail, h.e.cfg.Now())
}

func (h *handoffRun) fireAt(ev handoff.Event, detail string, at time.Time) (handoff.Transition, error) {
	h.e.mu.Lock()
	dead := h.e.crashed
	h.e.mu.Unlock()
	if dead {
		// A crashed endpoint (tests) does nothing more, like a dead one.
		return handoff.Transition{}, ErrClosed
	}
	from := h.m.State()
	tr, err := h.m.Fire(ev)
	h.e.observe(h.m, from, ev, tr, err)
	if err != nil {
		// The code and the table disagree: a bug, reported as such.
		return tr, fmt.Errorf("endpoint: handoff table: %w", err)
	}
	if tr.Step != handoff.StepNone {
		title := tr.Step.Title()
		if h.m.Role() == handoff.RoleM {
			title = mobilityTitle(tr.Step)
		}
		s := StepInfo{Step: int(tr.Step), Title: title, At: at,
			SinceStartMS: float64(at.Sub(h.start).Microseconds()) / 1000, Detail: detail}
		h.mu.Lock()
		h.info.Steps = append(h.info.Steps, s)
		id, callID := h.info.ID, h.info.CallID
		h.mu.Unlock()
		h.e.log.Info("handoff step", "handoff", id, "step", s.Step, "title", s.Title, "detail", detail, "since_start_ms", s.SinceStartMS)
		h.e.emit(Event{Time: at, Type: "handoff.step", CallID: callID, Step: s.Step, Detail: s.Title + ": " + detail})
		if h.e.cfg.stepHook != nil {
			h.e.cfg.stepHook(s.Step)
		}
	}
	return tr, nil
}

// failWith fires ev, the table's failure row for what went wrong, and
// returns cause. If the table refuses the event (code and table disagree)
// the refusal, already logged, is returned joined to cause: the handoff
// fails either way and nothing is silently ignored.
func (h *handoffRun) failWith(ev handoff.Event, detail string, cause error) error {
	if _, err := h.fire(ev, detail); err != nil {
		return errors.Join(cause, err)
	}
	return cause
}

func (h *handoffRun) set(fn func(*HandoffInfo)) {
	h.mu.Lock()
	fn(&h.info)
	h.mu.Unlock()
}

func (h *handoffRun) snapshot() HandoffInfo {
	h.mu.Lock()
	defer h.mu.Unlock()
	info := h.info
	info.Steps = append([]StepInfo(nil), h.info.Steps...)
	return info
}

// finish records the outcome from the machine's final state.
func (h *handoffRun) finish(err error) {
	now := h.e.cfg.Now()
	state := "done"
	switch h.m.State() {
	case handoff.ADone, handoff.MInCall:
	case handoff.ARolledBack:
		state = "rolled-back"
	case handoff.ACallEnded, handoff.MCallEnded:
		state = "call-ended"
	default:
		state = "failed"
	}
	if err != nil && state == "done" {
		state = "failed"
	}
	h.set(func(i *HandoffInfo) {
		i.State = state
		i.Finished = &now
		if err != nil {
			i.Error = err.Error()
		}
	})
	info := h.snapshot()
	h.e.emit(Event{Type: "handoff." + state, CallID: info.CallID, Peer: info.Peer, Detail: info.Error})
}

// mobilityTitle names steps 8-12 when an endpoint moves its own media
// (no B, no provisional session).
func mobilityTitle(s handoff.Step) string {
	switch s {
	case 8:
		return "close the media session silently"
	case 9:
		return "obtain a new address"
	case 10:
		return "restart audio on it"
	case 11:
		return "send the new address to the peer"
	case 12:
		return "the peer's audio on the new address"
	}
	return s.Title()
}

// Handoffs returns the recent handoffs, oldest first.
func (e *Endpoint) Handoffs() []HandoffInfo {
	e.mu.Lock()
	runs := append([]*handoffRun(nil), e.handoffs...)
	e.mu.Unlock()
	out := make([]HandoffInfo, 0, len(runs))
	for _, h := range runs {
		out = append(out, h.snapshot())
	}
	return out
}

// Handoff returns one handoff by id.
func (e *Endpoint) Handoff(id string) (HandoffInfo, error) {
	for _, h := range e.Handoffs() {
		if h.ID == id {
			return h, nil
		}
	}
	return HandoffInfo{}, fmt.Errorf("%w: %q", ErrNoSuchHandoff, id)
}

// ownDevice resolves a device of this user from the presence cache: the
// presence that arrived with the login (claim step 2 needs it first).
func (e *Endpoint) ownDevice(name string) (pki.Identity, netip.AddrPort, error) {
	dev := name
	if u, d, ok := strings.Cut(name, "/"); ok {
		if u != e.id.User {
			return pki.Identity{}, netip.AddrPort{}, fmt.Errorf("%w: %s is not a device of %s", ErrForbidden, name, e.id.User)
		}
		dev = d
	}
	id := pki.Identity{User: e.id.User, Device: dev}
	if err := id.Validate(); err != nil {
		return pki.Identity{}, netip.AddrPort{}, fmt.Errorf("%w: %v", ErrInvalidTarget, err)
	}
	if id == e.id {
		return pki.Identity{}, netip.AddrPort{}, fmt.Errorf("%w: %s is this endpoint", ErrInvalidTarget, id)
	}
	e.mu.Lock()
	d, ok := e.presence[id]
	e.mu.Unlock()
	if !ok {
		return id, netip.AddrPort{}, fmt.Errorf("%w: no presence for %s", ErrUnknownPeer, id)
	}
	if d.Status == wire.StatusOffline || d.SignalAddr == "" {
		return id, netip.AddrPort{}, fmt.Errorf("%w: %s", ErrOffline, id)
	}
	ap, err := netip.ParseAddrPort(d.SignalAddr)
	if err != nil {
		return id, netip.AddrPort{}, fmt.Errorf("%w: %s has a bad signaling address", ErrUnreachable, id)
	}
	return id, ap, nil
}

// query sends a session query to B (step 2) and reads its answer.
func (e *Endpoint) query(ctx context.Context, b pki.Identity, addr netip.AddrPort) (*wire.Conn, *wire.SessionList, error) {
	conn, err := e.dial(ctx, b, addr)
	if err != nil {
		return nil, nil, err
	}
	qid := newCallID()
	if err := conn.Send(&wire.SessionQuery{QueryID: qid}, sendTimeout); err != nil {
		_ = conn.Close()
		return nil, nil, fmt.Errorf("%w: session query to %s: %w", ErrUnreachable, b, err)
	}
	m, err := recvWithin(conn, e.timeouts.Query)
	if err != nil {
		_ = conn.Close()
		return nil, nil, fmt.Errorf("%w: %s did not answer the session query: %w", ErrUnreachable, b, err)
	}
	switch m := m.(type) {
	case *wire.SessionList:
		if m.QueryID != qid {
			_ = conn.Close()
			return nil, nil, fmt.Errorf("%w: answer for another query", ErrUnreachable)
		}
		return conn, m, nil
	case *wire.Reject:
		_ = conn.Close()
		if m.Code == wire.CodeForbidden {
			return nil, nil, fmt.Errorf("%w: %s: %s", ErrForbidden, b, m.Reason)
		}
		return nil, nil, fmt.Errorf("%w: %s refused: %s %s", ErrHandoffFailed, b, m.Code, m.Reason)
	case *wire.Error:
		_ = conn.Close()
		return nil, nil, fmt.Errorf("%w: %s: %s %s", ErrHandoffFailed, b, m.Code, m.Message)
	}
	_ = conn.Close()
	return nil, nil, fmt.Errorf("%w: unexpected %s", ErrHandoffFailed, m.Type())
}

// recvWithin reads one message with a deadline, then clears it.
func recvWithin(conn *wire.Conn, d time.Duration) (wire.Message, error) {
	_ = conn.SetReadDeadline(time.Now().Add(d))
	defer func() { _ = conn.SetReadDeadline(time.Time{}) }()
	return conn.Recv()
}

// Sessions asks another device of this user what it would report to a
// session query (`baton ctl sessions --device D`), without pulling.
func (e *Endpoint) Sessions(ctx context.Context, device string) ([]SessionInfo, error) {
	b, addr, err := e.ownDevice(device)
	if err != nil {
		return nil, err
	}
	conn, list, err := e.query(ctx, b, addr)
	if err != nil {
		return nil, err
	}
	_ = conn.Close()
	out := make([]SessionInfo, 0, len(list.Sessions))
	for _, s := range list.Sessions {
		out = append(out, SessionInfo{CallID: s.CallID, Peer: s.Peer, Direction: s.Direction, Codec: s.Codec, PeerMedia: s.PeerMedia})
	}
	return out, nil
}

// Pull takes a live call from another device of this user: the twelve
// steps of DESIGN.md §2 (claim 1 of US 8,380,859 B2), each recorded with
// its time. It returns when the call is on this endpoint, or when the
// handoff failed or rolled back (the call then stays on B, and C is never
// dropped).
func (e *Endpoint) Pull(ctx context.Context, req PullRequest) (HandoffInfo, error) {
	h := e.newHandoffRun("pull", handoff.RoleA)
	err := e.pull(ctx, h, req)
	if err != nil {
		e.log.Warn("handoff did not complete", "handoff", h.info.ID, "err", err)
	}
	h.finish(err)
	return h.snapshot(), err
}

func randomSSRC(avoid ...uint32) uint32 {
	for {
		var b [4]byte
		_, _ = rand.Read(b[:])
		v := binary.BigEndian.Uint32(b[:])
		ok := v != 0
		for _, a := range avoid {
			ok = ok && v != a
		}
		if ok {
			return v
		}
	}
}

func (e *Endpoint) pull(ctx context.Context, h *handoffRun, req PullRequest) (err error) {
	// A slot for the call is reserved now, so that an incoming call during
	// the handoff cannot take it after B has been told to let go.
	e.mu.Lock()
	loginAt, full := e.loginAt, len(e.calls)+e.reserved >= e.cfg.MaxCalls
	if !full {
		e.reserved++
	}
	e.mu.Unlock()
	if full {
		return fmt.Errorf("%w: %s is already in a call; hang up before pulling another", ErrBadState, e.id)
	}
	reserved := true
	defer func() {
		if reserved {
			e.mu.Lock()
			e.reserved--
			e.mu.Unlock()
		}
	}()
	// Step 1: this endpoint logged in through the access server.
	if _, err := h.fireAt(handoff.EvLoginDone, "logged in to "+e.cfg.Access, loginAt); err != nil {
		return err
	}
	// Step 2: B's presence arrived with the login; only then the query.
	b, bAddr, err := e.ownDevice(req.From)
	h.set(func(i *HandoffInfo) { i.From = b.String() })
	if err != nil {
		if _, ferr := h.fire(handoff.EvTimeout, err.Error()); ferr != nil {
			return ferr
		}
		return err
	}
	if _, err := h.fire(handoff.EvPresenceB, fmt.Sprintf("%s is online at %s; session query sent directly to it", b, bAddr)); err != nil {
		return err
	}
	bConn, list, err := e.query(ctx, b, bAddr)
	if err != nil {
		ev := handoff.EvTimeout
		if errors.Is(err, ErrForbidden) {
			ev = handoff.EvPolicyRefused
		}
		if _, ferr := h.fire(ev, err.Error()); ferr != nil {
			return ferr
		}
		return err
	}
	defer func() {
		if bConn != nil {
			_ = bConn.Close()
		}
	}()

	// Step 3: session parameters from B.
	p, err := e.choose(h, list, req.SessionID)
	if err != nil {
		if h.m.State() == handoff.AStarting {
			// Parameters unusable (checkParams): nothing was started.
			return h.failWith(handoff.EvMediaFailed, err.Error(), err)
		}
		return err
	}
	h.set(func(i *HandoffInfo) { i.CallID, i.Peer = p.CallID, p.Peer })
	peer, err := pki.ParseIdentity(p.Peer)
	if err != nil {
		return fmt.Errorf("%w: bad peer in session parameters: %w", ErrHandoffFailed, err)
	}
	// Out-of-band signaling with C (step 7) needs a connection: open it
	// now, in parallel, so step 7 costs one message.
	cAddr, _ := netip.ParseAddrPort(p.PeerSignal)
	type dialResult struct {
		conn *wire.Conn
		err  error
	}
	cDial := make(chan dialResult, 1)
	go func() {
		conn, err := e.dial(ctx, peer, cAddr)
		cDial <- dialResult{conn, err}
	}()
	var cConn *wire.Conn
	dialed := false // the dial result was taken from cDial
	defer func() {
		if cConn != nil && err != nil {
			_ = cConn.Close()
		}
		if !dialed {
			if r := <-cDial; r.conn != nil {
				_ = r.conn.Close()
			}
		}
	}()

	// Step 4: A sends audio directly to C, with B's key and a new SSRC.
	codec, ok := e.cfg.Codecs.Lookup(p.Codec)
	if !ok {
		return h.failWith(handoff.EvMediaFailed, "codec "+p.Codec+" not supported here",
			fmt.Errorf("%w: codec %s not supported here", ErrNoCodec, p.Codec))
	}
	var send, recv *media.Keys
	if p.SendKey != nil {
		s, err1 := media.KeysFromBytes(p.SendKey)
		r, err2 := media.KeysFromBytes(p.RecvKey)
		if err1 != nil || err2 != nil {
			return h.failWith(handoff.EvMediaFailed, "bad keys",
				fmt.Errorf("%w: bad keys in session parameters", ErrHandoffFailed))
		}
		send, recv = &s, &r
	}
	var peerROC *media.ROC
	if recv != nil {
		peerROC = &media.ROC{SSRC: p.PeerSSRC, ROC: p.PeerROC}
	}
	peerMedia, _ := netip.ParseAddrPort(p.PeerMedia)
	src, sink := req.Options.Source, req.Options.Sink
	if src == nil {
		if src, err = e.newSource(p.CallID); err != nil {
			return h.failWith(handoff.EvMediaFailed, err.Error(), err)
		}
	}
	if sink == nil {
		if sink, err = e.newSink(p.CallID, p.Peer); err != nil {
			return h.failWith(handoff.EvMediaFailed, err.Error(), err)
		}
	}
	mcfg := media.Config{
		Local: netip.AddrPortFrom(e.mediaAddr(), 0), Codec: codec, Ptime: e.cfg.Ptime,
		SSRC:     randomSSRC(p.LocalSSRC, p.PeerSSRC),
		SendKeys: send, RecvKeys: recv, LatchAuthenticated: true, RemoteROC: peerROC,
		JitterDelay: e.cfg.JitterDelay, Source: src, Sink: sink, Logger: e.log,
		Impairment: e.cfg.Impairment,
	}
	prov, err := media.Open(ctx, mcfg)
	if err != nil {
		return h.failWith(handoff.EvMediaFailed, err.Error(), fmt.Errorf("%w: provisional media: %w", ErrHandoffFailed, err))
	}
	provOpen := true
	defer func() {
		if provOpen {
			_ = prov.Close()
		}
	}()
	// B, a device of this user on an authenticated connection, reports
	// both of C's addresses; the media one is confirmed when it is on the
	// IP this endpoint dials for C's signaling (mutually authenticated).
	aimMedia(e.log, prov, peerMedia, cAddr.Addr(), false)
	prov.Start()
	if _, err := h.fire(handoff.EvAudioToCStarted, fmt.Sprintf("audio from %s (ssrc %08x) to %s at %s", prov.LocalAddr(), prov.SSRC(), peer, peerMedia)); err != nil {
		return err
	}

	// Step 5: tell B directly to stop sending audio to C.
	stopAt := time.Now()
	if err := bConn.Send(&wire.StopAudio{CallID: p.CallID}, sendTimeout); err != nil {
		e.log.Info("stop-audio not delivered; carrying on", "err", err)
	}
	m, rerr := recvWithin(bConn, e.timeouts.StopAck)
	switch m := m.(type) {
	case *wire.StopAck:
		if _, err := h.fire(handoff.EvStopAcked, b.String()+" stopped sending audio to "+peer.String()); err != nil {
			return err
		}
	case *wire.Reject:
		if _, err := h.fire(handoff.EvBusy, "stop-audio refused: "+m.Reason); err != nil {
			return err
		}
		return fmt.Errorf("%w: %s refused to stop: %s %s", ErrHandoffFailed, b, m.Code, m.Reason)
	default:
		detail := "no acknowledgement from " + b.String()
		if rerr != nil {
			detail += ": " + rerr.Error()
		}
		if _, err := h.fire(handoff.EvTimeout, detail+"; carrying on"); err != nil {
			return err
		}
	}

	// Step 6: audio from C does not reach A (C still sends to B); the
	// determination is a bounded timer from step 5.
	// It is a few packet times: it runs to its end even if ctx ends, and
	// step 7 then fails over to the rollback through the table.
	if wait := time.Until(stopAt.Add(e.timeouts.NoAudio)); wait > 0 {
		time.Sleep(wait)
	}
	if _, err := h.fire(handoff.EvTimeout, fmt.Sprintf("no audio from %s within %s of step 5 (%d packets)", peer, e.timeouts.NoAudio, prov.Stats().PacketsReceived)); err != nil {
		return err
	}

	// Step 7: out-of-band signaling directly with C.
	r := <-cDial
	dialed = true
	cConn = r.conn
	if r.err != nil {
		if _, ferr := h.fire(handoff.EvTimeout, "cannot reach "+peer.String()+": "+r.err.Error()); ferr != nil {
			return ferr
		}
		return e.rollback(h, bConn, prov, &provOpen, p.CallID, r.err)
	}
	re := &wire.Reestablish{CallID: p.CallID, SignalAddr: e.SignalAddr().String(),
		Media: wire.Media{Addr: prov.LocalAddr().String(), SSRC: prov.SSRC(), PtimeMS: int(e.cfg.Ptime / time.Millisecond)},
		Grant: p.Grant}
	if err := cConn.Send(re, sendTimeout); err != nil {
		if ferr := h.failWith(handoff.EvTimeout, "reestablish not delivered: "+err.Error(), nil); ferr != nil {
			err = errors.Join(err, ferr)
		}
		return e.rollback(h, bConn, prov, &provOpen, p.CallID, err)
	}
	m, rerr = recvWithin(cConn, e.timeouts.Answer)
	switch m := m.(type) {
	case *wire.ReestablishAck:
		if _, err := h.fire(handoff.EvReestablishAccepted, peer.String()+" accepted this endpoint as its peer (grant verified)"); err != nil {
			return err
		}
	case *wire.Reject:
		if _, err := h.fire(handoff.EvReestablishRefused, m.Reason); err != nil {
			return err
		}
		return e.rollback(h, bConn, prov, &provOpen, p.CallID, fmt.Errorf("%s refused: %s", peer, m.Reason))
	default:
		detail := "no answer from " + peer.String()
		if rerr != nil {
			detail += ": " + rerr.Error()
		}
		if _, err := h.fire(handoff.EvTimeout, detail); err != nil {
			return err
		}
		return e.rollback(h, bConn, prov, &provOpen, p.CallID, errors.New(detail))
	}

	// Step 8: close the provisional session, sending nothing to C.
	firstHeard := prov.Stats().FirstPacket
	if roc, ok := prov.RemoteROC(); ok && roc.SSRC == p.PeerSSRC {
		mcfg.RemoteROC = &roc // the freshest count, if C's audio arrived already
	}
	provAddr := prov.LocalAddr()
	provConsent := prov.Stats().RemoteConfirmed
	_ = prov.Close()
	provOpen = false
	if _, err := h.fire(handoff.EvMediaClosed, "provisional media "+provAddr.String()+" closed; no termination signal sent"); err != nil {
		return err
	}

	// Step 9: a new IP address and port.
	mcfg.SSRC = randomSSRC(p.LocalSSRC, p.PeerSSRC, prov.SSRC())
	sess, err := media.Open(ctx, mcfg)
	if err != nil {
		if ferr := h.failWith(handoff.EvMediaFailed, err.Error(), nil); ferr != nil {
			err = errors.Join(err, ferr)
		}
		return e.rollback(h, bConn, nil, &provOpen, p.CallID, err)
	}
	sessOpen, committed := true, false
	defer func() {
		if sessOpen && !committed {
			_ = sess.Close()
		}
	}()
	if _, err := h.fire(handoff.EvAddressAllocated, "media now on "+sess.LocalAddr().String()); err != nil {
		return err
	}

	// Step 10: restart the audio session there (new SSRC, RFC 3550 §8.2).
	aimMedia(e.log, sess, peerMedia, signalIP(cConn), provConsent)
	sess.Start()
	if _, err := h.fire(handoff.EvAudioRestarted, fmt.Sprintf("audio restarted from %s (ssrc %08x)", sess.LocalAddr(), sess.SSRC())); err != nil {
		return err
	}

	// Step 11: the new address, directly to C.
	na := &wire.NewAddress{CallID: p.CallID, Media: wire.Media{Addr: sess.LocalAddr().String(), SSRC: sess.SSRC(), PtimeMS: int(e.cfg.Ptime / time.Millisecond)}}
	if err := cConn.Send(na, sendTimeout); err != nil {
		if ferr := h.failWith(handoff.EvTimeout, "new address not delivered: "+err.Error(), nil); ferr != nil {
			err = errors.Join(err, ferr)
		}
		return e.rollback(h, bConn, sess, &sessOpen, p.CallID, err)
	}
	m, rerr = recvWithin(cConn, e.timeouts.AddressAck)
	if _, ok := m.(*wire.NewAddressAck); !ok {
		detail := fmt.Sprintf("no acknowledgement of the new address from %s", peer)
		if rerr != nil {
			detail += ": " + rerr.Error()
		}
		return e.rollback(h, bConn, sess, &sessOpen, p.CallID, h.failWith(handoff.EvTimeout, detail, errors.New(detail)))
	}
	step11 := e.cfg.Now()
	if _, err := h.fireAt(handoff.EvNewAddressAcked, peer.String()+" sends to "+sess.LocalAddr().String(), step11); err != nil {
		return err
	}

	// Step 12: audio from C on the new address; B is released silently.
	// From here on C is with A for good (it has no way back to B), so the
	// call stays here even if C's audio is late: rolling back now would
	// leave C sending to a closed port.
	first, waitErr := waitFirstPacket(ctx, sess, e.timeouts.NewAudio)
	if waitErr != nil {
		if _, err := h.fire(handoff.EvTimeout, "no audio from "+peer.String()+" on the new address yet; the call stays here"); err != nil {
			return err
		}
	} else {
		// The first packet may land before A has read C's acknowledgement:
		// the step is complete when both happened.
		at := first
		if at.Before(step11) {
			at = step11
		}
		if _, err := h.fireAt(handoff.EvAudioFromC, "audio from "+peer.String()+" on "+sess.LocalAddr().String()+"; "+b.String()+" released", at); err != nil {
			return err
		}
		if firstHeard.IsZero() || first.Before(firstHeard) {
			firstHeard = first
		}
	}
	h.set(func(i *HandoffInfo) {
		if !firstHeard.IsZero() {
			i.FirstAudioMS = float64(firstHeard.Sub(h.start).Microseconds()) / 1000
		}
		i.NewAddress = sess.LocalAddr().String()
	})

	// The call is now this endpoint's: it takes the slot reserved at the
	// start, then B is released.
	c := e.newCall(p.CallID, dirPulled, peer, cConn)
	c.codec, c.sess, c.live, c.sink, c.src = codec, sess, sess, sink, src
	c.sendKeys, c.recvKeys = send, recv
	c.peerSignal = p.PeerSignal
	c.state = CallActive
	now := e.cfg.Now()
	c.info.Codec = codec.Descriptor().Name
	c.info.SRTP = send != nil
	c.info.LocalMedia = sess.LocalAddr().String()
	c.info.RemoteMedia = peerMedia.String()
	c.info.Answered = &now
	c.info.State = CallActive.String()
	if err := e.registerReserved(c, &reserved); err != nil {
		// Only a closing endpoint gets here; C then ends on its own.
		return err
	}
	committed = true
	c.start()
	if err := bConn.Send(&wire.Release{CallID: p.CallID}, sendTimeout); err != nil {
		// B's guard timer would resume it: say so loudly, the call is on A.
		e.log.Warn("release not delivered to the other device", "device", b.String(), "err", err)
	}
	e.emit(Event{Type: "call.active", CallID: c.id, Peer: peer.String(), State: "active", Detail: "pulled from " + b.String()})
	return nil
}

const dirPulled = "pulled"

// choose picks the session to pull (step 3).
func (e *Endpoint) choose(h *handoffRun, list *wire.SessionList, id string) (wire.SessionParams, error) {
	var ids []string
	for _, s := range list.Sessions {
		ids = append(ids, s.CallID)
	}
	switch {
	case len(list.Sessions) == 0:
		return wire.SessionParams{}, h.failWith(handoff.EvNoSession, "the other device has no active session",
			fmt.Errorf("%w: the other device has no active session", ErrNothingToPull))
	case len(list.Sessions) == 1 && (id == "" || id == list.Sessions[0].CallID):
		p := list.Sessions[0]
		if _, err := h.fire(handoff.EvSessionParams, fmt.Sprintf("session %s with %s, two-way audio, %s", p.CallID, p.Peer, p.Codec)); err != nil {
			return wire.SessionParams{}, err
		}
		return p, e.checkParams(p)
	case len(list.Sessions) == 1:
		return wire.SessionParams{}, h.failWith(handoff.EvNoSession, "no session "+id,
			fmt.Errorf("%w: no session %q (have %v)", ErrNothingToPull, id, ids))
	}
	if _, err := h.fire(handoff.EvSeveralSessions, fmt.Sprintf("%d sessions: %v", len(ids), ids)); err != nil {
		return wire.SessionParams{}, err
	}
	for _, p := range list.Sessions {
		if p.CallID == id {
			if _, err := h.fire(handoff.EvSessionChosen, fmt.Sprintf("session %s with %s, two-way audio, %s", p.CallID, p.Peer, p.Codec)); err != nil {
				return wire.SessionParams{}, err
			}
			return p, e.checkParams(p)
		}
	}
	return wire.SessionParams{}, h.failWith(handoff.EvNoSession, "no session chosen", fmt.Errorf("%w: %v", ErrSeveralSessions, ids))
}

func (e *Endpoint) checkParams(p wire.SessionParams) error {
	if p.Grant.To != e.id.String() {
		return fmt.Errorf("%w: the grant is for %s", ErrHandoffFailed, p.Grant.To)
	}
	return nil
}

// rollback undoes a handoff after B may have muted: A stops its audio and
// tells B to resume, so the call stays on B and C is never dropped.
func (e *Endpoint) rollback(h *handoffRun, bConn *wire.Conn, sess *media.Session, open *bool, callID string, cause error) error {
	if sess != nil && *open {
		_ = sess.Close()
		*open = false
	}
	e.mu.Lock()
	dead := e.crashed
	e.mu.Unlock()
	if dead {
		return fmt.Errorf("%w: %w", ErrClosed, cause)
	}
	if h.m.State() != handoff.ARollingBack {
		// Failures before the table's rollback rows (ctx cancelled) still
		// roll back; the table records it through its timeout row.
		if err := h.failWith(handoff.EvTimeout, "giving up: "+cause.Error(), nil); err != nil {
			cause = errors.Join(cause, err)
		}
	}
	err := bConn.Send(&wire.Resume{CallID: callID, Reason: wire.TrimReason(cause.Error())}, sendTimeout)
	if err == nil {
		var m wire.Message
		m, err = recvWithin(bConn, e.timeouts.ResumeAck)
		if _, ok := m.(*wire.ResumeAck); ok {
			return h.failWith(handoff.EvResumeAcked, "the call stays on the other device",
				fmt.Errorf("%w: rolled back: %w", ErrHandoffFailed, cause))
		}
	}
	return h.failWith(handoff.EvTimeout, "the other device did not confirm the resume",
		fmt.Errorf("%w: rollback not confirmed (%v) after: %w", ErrHandoffFailed, err, cause))
}

// waitFirstPacket waits until sess has received audio, and returns when
// the first packet arrived.
func waitFirstPacket(ctx context.Context, sess *media.Session, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	for {
		if st := sess.Stats(); st.PacketsReceived > 0 {
			return st.FirstPacket, nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("no audio within %s", timeout)
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-t.C:
		}
	}
}
