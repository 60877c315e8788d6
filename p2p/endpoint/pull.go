package endpoint

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/baton-voice/baton/codecs"
	"github.com/baton-voice/baton/p2p/audio"
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
	// Initiator is who placed the call (wire SessionParams.Initiator:
	// "self", "peer", or "" when the device did not say).
	Initiator string `json:"initiator,omitempty"`
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
		h.mu.Lock()
		// An event can carry an earlier time than the step before it
		// was recorded at (C's first packet, stamped on arrival, read
		// after step 11 was fired): the machine reached this step after
		// that one, so its time is never before it (FirstAudioMS keeps
		// the arrival time).
		if n := len(h.info.Steps); n > 0 && at.Before(h.info.Steps[n-1].At) {
			at = h.info.Steps[n-1].At
		}
		s := StepInfo{Step: int(tr.Step), Title: title, At: at,
			SinceStartMS: float64(at.Sub(h.start).Microseconds()) / 1000, Detail: detail}
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
		out = append(out, SessionInfo{CallID: s.CallID, Peer: s.Peer, Direction: s.Direction, Codec: s.Codec, PeerMedia: s.PeerMedia, Initiator: s.Initiator})
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

// pullState is what role A's handlers share during one pull: B and its
// connection, the session parameters, the provisional media to C and the
// connection to C (steps 2-12).
type pullState struct {
	ctx context.Context
	req PullRequest
	log *slog.Logger

	b     pki.Identity
	bAddr netip.AddrPort
	bConn *wire.Conn
	bRead *connReader
	qid   string
	list  *wire.SessionList

	p     wire.SessionParams
	peer  pki.Identity
	cAddr netip.AddrPort
	cDial chan dialResult
	cConn *wire.Conn
	cRead *connReader

	codec      codecs.Codec
	send, recv *media.Keys
	peerMedia  netip.AddrPort
	src        audio.Source
	sink       audio.Sink
	mcfg       media.Config
	prov       *media.Session // the provisional session (steps 4-8)
	provSSRC   uint32
	consent    bool      // C confirmed the provisional session's address
	firstHeard time.Time // C's first packet on any of A's sessions
	stopAt     time.Time // step 5, on the clock: step 6 is measured from it
	// stopIdx is C's stream index as B's stop-ack gave it (step 5), nil
	// if B did not say (an older B, plain RTP, B never heard C).
	stopIdx *media.ROC
	// cIdx is C's own stream index as its reestablish-ack gave it (step
	// 7), nil if C did not say (an older C, plain RTP).
	cIdx *media.ROC

	reserved  *bool // the call slot reserved for the pulled call
	committed bool  // the call is this endpoint's (ReleaseB)
	resumeErr error // why the rollback was not confirmed
}

type dialResult struct {
	conn *wire.Conn
	err  error
}

func (e *Endpoint) pull(ctx context.Context, h *handoffRun, req PullRequest) error {
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
	a := &pullState{ctx: ctx, req: req, log: e.log, reserved: &reserved}
	x := e.newExec(h, aHandlers)
	x.a, x.mv = a, a
	// Step 6 is a timer measured from step 5 (the stop-audio), not from
	// B's acknowledgement.
	x.timerFor = func(tm handoff.Timer) time.Duration {
		if tm == handoff.TimerNoAudio {
			return e.timeouts.NoAudio - e.cfg.Clock.Now().Sub(a.stopAt)
		}
		return e.timeouts.Duration(tm)
	}
	defer a.cleanup(e)

	// Step 1: this endpoint logged in through the access server.
	if _, err := h.fireAt(handoff.EvLoginDone, "logged in to "+e.cfg.Access, loginAt); err != nil {
		return err
	}
	// Step 2: B's presence arrived with the login; only then the query.
	b, bAddr, err := e.ownDevice(req.From)
	a.b, a.bAddr = b, bAddr
	h.set(func(i *HandoffInfo) { i.From = b.String() })
	first, detail := handoff.EvPresenceB, fmt.Sprintf("%s is online at %s; session query sent directly to it", b, bAddr)
	if err != nil {
		x.fail(err)
		first, detail = handoff.EvTimeout, err.Error()
	}
	if err := x.run(first, detail, e.cfg.Now()); err != nil {
		if !errors.Is(err, ErrClosed) {
			a.abandon(e, h.m.State(), err)
		}
		return errors.Join(x.cause, err)
	}
	switch h.m.State() {
	case handoff.ADone:
		return nil
	case handoff.ARolledBack:
		return fmt.Errorf("%w: rolled back: %w", ErrHandoffFailed, x.cause)
	case handoff.ACallEnded:
		return fmt.Errorf("%w: rollback not confirmed (%v) after: %w", ErrHandoffFailed, a.resumeErr, x.cause)
	}
	if x.cause == nil {
		x.cause = fmt.Errorf("%w: ended in %s", ErrHandoffFailed, h.m.State())
	}
	return x.cause
}

// abandon is the way out when the run itself failed (the table refused an
// event: code and table disagree, already logged as an error) in a state
// where B may have muted: B is told to resume, so the call stays on B
// without waiting for its guard. Everything else cleanup closes.
func (a *pullState) abandon(e *Endpoint, s handoff.State, cause error) {
	switch s {
	case handoff.AStopping, handoff.ACheckingAudio, handoff.AReestablishing, handoff.AClosing,
		handoff.AAllocating, handoff.ARestarting, handoff.ANotifying:
	default:
		return
	}
	if a.bConn == nil || a.committed {
		return
	}
	e.log.Error("handoff abandoned; telling the other device to resume", "state", s, "err", cause)
	if a.cConn != nil && s != handoff.AStopping && s != handoff.ACheckingAudio {
		// C may have accepted this endpoint (step 7): back to B.
		_ = a.cConn.Send(&wire.Withdraw{CallID: a.p.CallID, Reason: wire.TrimReason("abandoned: " + cause.Error())}, sendTimeout)
	}
	_ = a.bConn.Send(&wire.Resume{CallID: a.p.CallID, Reason: wire.TrimReason("abandoned: " + cause.Error())}, sendTimeout)
}

// cleanup closes what the pull opened and did not hand to the call.
func (a *pullState) cleanup(e *Endpoint) {
	if *a.reserved {
		e.mu.Lock()
		e.reserved--
		e.mu.Unlock()
	}
	if a.prov != nil {
		_ = a.prov.Close()
	}
	if a.bConn != nil {
		_ = a.bConn.Close()
	}
	if a.cDial != nil {
		if r := <-a.cDial; r.conn != nil {
			a.cConn = r.conn
		}
		a.cDial = nil
	}
	if !a.committed && a.cConn != nil {
		_ = a.cConn.Close()
	}
}

// connReader reads a peer's answers for the run: one message at a time,
// each read started by want on its own goroutine and handed to the loop,
// which maps it to an event for the state it is then in. No read is left
// pending on C's connection when the call takes it over (the call reads it
// from then on): reads start only where a state waits for an answer.
type connReader struct {
	x       *handoffExec
	conn    *wire.Conn
	pending bool
	dead    bool
	answer  func(s handoff.State, m wire.Message, err error) (handoff.Event, string, bool)
}

func (r *connReader) want() {
	if r.pending || r.dead {
		return
	}
	r.pending = true
	go func() {
		m, err := r.conn.Recv()
		in := func(s handoff.State) (handoff.Event, string, time.Time, bool) {
			r.pending = false
			if err != nil {
				r.dead = true
			}
			ev, detail, ok := r.answer(s, m, err)
			return ev, detail, r.x.e.cfg.Now(), ok
		}
		select {
		case r.x.in <- in:
		case <-r.x.quit:
		}
	}()
}

func errDetail(prefix string, err error) string {
	if err != nil {
		return prefix + ": " + err.Error()
	}
	return prefix
}

// sendSessionQuery: step 2, the query goes directly to B.
func (x *handoffExec) sendSessionQuery(handoff.Transition) (handoff.Event, string) {
	a, e := x.a, x.e
	conn, err := e.dial(a.ctx, a.b, a.bAddr)
	if err != nil {
		x.fail(err)
		if errors.Is(err, ErrForbidden) {
			return handoff.EvPolicyRefused, err.Error()
		}
		return handoff.EvTimeout, err.Error()
	}
	a.bConn = conn
	a.qid = newCallID()
	if err := conn.Send(&wire.SessionQuery{QueryID: a.qid}, sendTimeout); err != nil {
		err = fmt.Errorf("%w: session query to %s: %w", ErrUnreachable, a.b, err)
		x.fail(err)
		return handoff.EvTimeout, err.Error()
	}
	a.bRead = &connReader{x: x, conn: conn, answer: x.answerFromB}
	a.bRead.want()
	return handoff.EventUnknown, ""
}

// answerFromB maps what B said to the event of the state A is in.
func (x *handoffExec) answerFromB(s handoff.State, m wire.Message, rerr error) (handoff.Event, string, bool) {
	a := x.a
	switch s {
	case handoff.AQuerying:
		return x.sessionAnswer(m, rerr)
	case handoff.AStopping:
		switch m := m.(type) {
		case *wire.StopAck:
			if m.PeerSeq != nil && a.recv != nil {
				a.stopIdx = &media.ROC{SSRC: m.PeerSSRC, ROC: m.PeerROC, Seq: *m.PeerSeq, HasSeq: true}
			}
			return handoff.EvStopAcked, a.b.String() + " stopped sending audio to " + a.peer.String(), true
		case *wire.Reject:
			x.fail(fmt.Errorf("%w: %s refused to stop: %s %s", ErrHandoffFailed, a.b, m.Code, m.Reason))
			return handoff.EvBusy, "stop-audio refused: " + m.Reason, true
		}
		return handoff.EvTimeout, errDetail("no acknowledgement from "+a.b.String(), rerr) + "; carrying on", true
	case handoff.ARollingBack:
		if _, ok := m.(*wire.ResumeAck); ok {
			return handoff.EvResumeAcked, "the call stays on the other device", true
		}
		if _, ok := m.(*wire.StopAck); ok && rerr == nil {
			a.bRead.want() // a late acknowledgement of the stop
			return 0, "", false
		}
		a.resumeErr = errors.New(errDetail(fmt.Sprintf("%T instead of a resume acknowledgement", m), rerr))
		return handoff.EvTimeout, "the other device did not confirm the resume", true
	}
	return 0, "", false
}

// sessionAnswer is step 3: B's session list, or its refusal.
func (x *handoffExec) sessionAnswer(m wire.Message, rerr error) (handoff.Event, string, bool) {
	a := x.a
	if rerr != nil {
		x.fail(fmt.Errorf("%w: %s did not answer the session query: %w", ErrUnreachable, a.b, rerr))
		return handoff.EvTimeout, x.cause.Error(), true
	}
	switch m := m.(type) {
	case *wire.SessionList:
		if m.QueryID != a.qid {
			x.fail(fmt.Errorf("%w: answer for another query", ErrUnreachable))
			return handoff.EvTimeout, x.cause.Error(), true
		}
		a.list = m
		var ids []string
		for _, s := range m.Sessions {
			ids = append(ids, s.CallID)
		}
		id := a.req.SessionID
		switch {
		case len(m.Sessions) == 0:
			x.fail(fmt.Errorf("%w: the other device has no active session", ErrNothingToPull))
			return handoff.EvNoSession, "the other device has no active session", true
		case len(m.Sessions) == 1 && (id == "" || id == m.Sessions[0].CallID):
			a.p = m.Sessions[0]
			return handoff.EvSessionParams, fmt.Sprintf("session %s with %s, two-way audio, %s", a.p.CallID, a.p.Peer, a.p.Codec), true
		case len(m.Sessions) == 1:
			x.fail(fmt.Errorf("%w: no session %q (have %v)", ErrNothingToPull, id, ids))
			return handoff.EvNoSession, "no session " + id, true
		}
		return handoff.EvSeveralSessions, fmt.Sprintf("%d sessions: %v", len(ids), ids), true
	case *wire.Reject:
		if m.Code == wire.CodeForbidden {
			x.fail(fmt.Errorf("%w: %s: %s", ErrForbidden, a.b, m.Reason))
			return handoff.EvPolicyRefused, x.cause.Error(), true
		}
		// B answers a query only with its list or forbidden (a call it is
		// handing off is left out of the list): any other refusal fails
		// the pull like no answer (AQuerying + Busy is no row; Omitted).
		x.fail(fmt.Errorf("%w: %s refused: %s %s", ErrHandoffFailed, a.b, m.Code, m.Reason))
		return handoff.EvTimeout, x.cause.Error(), true
	case *wire.Error:
		x.fail(fmt.Errorf("%w: %s: %s %s", ErrHandoffFailed, a.b, m.Code, m.Message))
		return handoff.EvTimeout, x.cause.Error(), true
	}
	x.fail(fmt.Errorf("%w: unexpected %s", ErrHandoffFailed, m.Type()))
	return handoff.EvTimeout, x.cause.Error(), true
}

// chooseSession: step 3 with several sessions, the one the user asked for.
func (x *handoffExec) chooseSession(handoff.Transition) (handoff.Event, string) {
	a := x.a
	var ids []string
	for _, p := range a.list.Sessions {
		ids = append(ids, p.CallID)
		if p.CallID == a.req.SessionID {
			a.p = p
			return handoff.EvSessionChosen, fmt.Sprintf("session %s with %s, two-way audio, %s", p.CallID, p.Peer, p.Codec)
		}
	}
	x.fail(fmt.Errorf("%w: %v", ErrSeveralSessions, ids))
	return handoff.EvNoSession, "no session chosen"
}

// startAudioToC: step 4, provisional audio directly to C with B's keys and
// a new SSRC; the connection to C for step 7 is dialled meanwhile.
func (x *handoffExec) startAudioToC(handoff.Transition) (handoff.Event, string) {
	a, e, p := x.a, x.e, x.a.p
	failed := func(err error) (handoff.Event, string) {
		x.fail(err)
		return handoff.EvMediaFailed, err.Error()
	}
	if err := e.checkParams(p); err != nil {
		return failed(err)
	}
	x.callID = p.CallID
	x.h.set(func(i *HandoffInfo) { i.CallID, i.Peer = p.CallID, p.Peer })
	peer, err := pki.ParseIdentity(p.Peer)
	if err != nil {
		return failed(fmt.Errorf("%w: bad peer in session parameters: %w", ErrHandoffFailed, err))
	}
	a.peer = peer
	// Out-of-band signaling with C (step 7) needs a connection: open it
	// now, in parallel, so step 7 costs one message.
	a.cAddr, _ = netip.ParseAddrPort(p.PeerSignal)
	a.cDial = make(chan dialResult, 1)
	go func() {
		conn, err := e.dial(a.ctx, peer, a.cAddr)
		a.cDial <- dialResult{conn, err}
	}()
	codec, ok := e.cfg.Codecs.Lookup(p.Codec)
	if !ok {
		return failed(fmt.Errorf("%w: codec %s not supported here", ErrNoCodec, p.Codec))
	}
	a.codec = codec
	if p.SendKey != nil {
		s, err1 := media.KeysFromBytes(p.SendKey)
		r, err2 := media.KeysFromBytes(p.RecvKey)
		if err1 != nil || err2 != nil {
			return failed(fmt.Errorf("%w: bad keys in session parameters", ErrHandoffFailed))
		}
		a.send, a.recv = &s, &r
	}
	var peerROC *media.ROC
	if a.recv != nil {
		peerROC = &media.ROC{SSRC: p.PeerSSRC, ROC: p.PeerROC}
		if p.PeerSeq != nil {
			peerROC.Seq, peerROC.HasSeq = *p.PeerSeq, true
		}
	}
	a.peerMedia, _ = netip.ParseAddrPort(p.PeerMedia)
	a.src, a.sink = a.req.Options.Source, a.req.Options.Sink
	if a.src == nil {
		if a.src, err = e.newSource(p.CallID); err != nil {
			return failed(err)
		}
	}
	if a.sink == nil {
		if a.sink, err = e.newSink(p.CallID, p.Peer); err != nil {
			return failed(err)
		}
	}
	a.mcfg = media.Config{
		Local: netip.AddrPortFrom(e.mediaAddr(), 0), Codec: codec, Ptime: e.cfg.Ptime,
		SSRC:     randomSSRC(p.LocalSSRC, p.PeerSSRC),
		SendKeys: a.send, RecvKeys: a.recv, LatchAuthenticated: true, RemoteROC: peerROC,
		JitterDelay: e.cfg.JitterDelay, StaleSourceTimeout: staleSource(e.timeouts, e.cfg.Ptime),
		Source: a.src, Sink: a.sink, Logger: e.log,
		Impairment: e.cfg.Impairment, Now: e.cfg.Clock.Now,
	}
	prov, err := media.Open(a.ctx, a.mcfg)
	if err != nil {
		return failed(fmt.Errorf("%w: provisional media: %w", ErrHandoffFailed, err))
	}
	a.prov, a.provSSRC = prov, prov.SSRC()
	// B, a device of this user on an authenticated connection, reports
	// both of C's addresses; the media one is confirmed when it is on the
	// IP this endpoint dials for C's signaling (mutually authenticated).
	aimMedia(e.log, prov, a.peerMedia, a.cAddr.Addr(), false)
	prov.Start()
	return handoff.EvAudioToCStarted, fmt.Sprintf("audio from %s (ssrc %08x) to %s at %s", prov.LocalAddr(), prov.SSRC(), peer, a.peerMedia)
}

// sendStopAudio: step 5, B is told directly to stop its audio to C.
func (x *handoffExec) sendStopAudio(handoff.Transition) (handoff.Event, string) {
	a := x.a
	a.stopAt = x.e.cfg.Clock.Now()
	if err := a.bConn.Send(&wire.StopAudio{CallID: a.p.CallID}, sendTimeout); err != nil {
		x.e.log.Info("stop-audio not delivered; carrying on", "err", err)
	}
	a.bRead.want()
	return handoff.EventUnknown, ""
}

// sendReestablish: step 7, out-of-band signaling directly with C.
func (x *handoffExec) sendReestablish(handoff.Transition) (handoff.Event, string) {
	a, e := x.a, x.e
	r := <-a.cDial
	a.cDial = nil
	a.cConn = r.conn
	if r.err != nil {
		x.fail(r.err)
		return handoff.EvTimeout, "cannot reach " + a.peer.String() + ": " + r.err.Error()
	}
	re := &wire.Reestablish{CallID: a.p.CallID, SignalAddr: e.SignalAddr().String(),
		Media: wire.Media{Addr: a.prov.LocalAddr().String(), SSRC: a.prov.SSRC(), PtimeMS: int(e.cfg.Ptime / time.Millisecond)},
		Grant: a.p.Grant}
	if err := a.cConn.Send(re, sendTimeout); err != nil {
		x.fail(err)
		return handoff.EvTimeout, "reestablish not delivered: " + err.Error()
	}
	a.cRead = &connReader{x: x, conn: a.cConn, answer: x.answerFromC}
	a.cRead.want()
	return handoff.EventUnknown, ""
}

// answerFromC maps what C said to the event of the state A is in.
func (x *handoffExec) answerFromC(s handoff.State, m wire.Message, rerr error) (handoff.Event, string, bool) {
	a := x.a
	switch s {
	case handoff.AReestablishing:
		switch m := m.(type) {
		case *wire.ReestablishAck:
			if m.PeerSeq != nil && a.recv != nil {
				a.cIdx = &media.ROC{SSRC: m.PeerSSRC, ROC: m.PeerROC, Seq: *m.PeerSeq, HasSeq: true}
			}
			return handoff.EvReestablishAccepted, a.peer.String() + " accepted this endpoint as its peer (grant verified)", true
		case *wire.Reject:
			x.fail(fmt.Errorf("%s refused: %s", a.peer, m.Reason))
			return handoff.EvReestablishRefused, m.Reason, true
		}
		detail := errDetail("no answer from "+a.peer.String(), rerr)
		x.fail(errors.New(detail))
		return handoff.EvTimeout, detail, true
	case handoff.ANotifying:
		if _, ok := m.(*wire.NewAddressAck); ok {
			ev, detail, _, ok := x.newAddressAcked(s)
			return ev, detail, ok
		}
		detail := errDetail(fmt.Sprintf("no acknowledgement of the new address from %s", a.peer), rerr)
		x.fail(errors.New(detail))
		return handoff.EvTimeout, detail, true
	}
	return 0, "", false
}

// Steps 8-11 for A: the mediaMove of the provisional session.

func (a *pullState) closeOld() (string, error) {
	st := a.prov.Stats()
	a.firstHeard = st.FirstPacket
	a.consent = st.RemoteConfirmed
	// The new session starts from the freshest index of C's stream
	// (RFC 3711 §3.3.1): B's at step 5 rather than step 3's, the
	// provisional session's own if it played C's stream (only C sends
	// under C's key), and C's own at step 7, the sender's, known even
	// when B never heard C. Step 3's alone left A deaf when B had not
	// heard C yet at step 3 and C's sequence number wrapped before A
	// heard it.
	if a.stopIdx != nil {
		a.mcfg.RemoteROC = fresherIndex(a.mcfg.RemoteROC, a.stopIdx)
	}
	if st.RemoteSSRC != 0 {
		if roc, ok := a.prov.RemoteROC(); ok {
			a.mcfg.RemoteROC = fresherIndex(a.mcfg.RemoteROC, &roc)
		}
	}
	if a.cIdx != nil {
		a.mcfg.RemoteROC = fresherIndex(a.mcfg.RemoteROC, a.cIdx)
	}
	// The final session continues the provisional one's ticks (steps 8-10
	// take about a millisecond): a source they both read, a SIP leg, is
	// read once per ptime across the switch, not twice in that
	// millisecond (media.Config.ContinueTicks). Taken once it is closed:
	// no tick of it runs after.
	addr := a.prov.LocalAddr()
	_ = a.prov.Close()
	a.mcfg.ContinueTicks = a.prov.NextTick()
	a.prov = nil
	return "provisional media " + addr.String() + " closed; no termination signal sent", nil
}

// fresherIndex returns the later of two indexes of C's stream: later
// is the one learnt later when they are of different SSRCs (the earlier
// did not know C's stream, or C changed it), the higher packet index
// when of the same SSRC (both are authenticated points of the stream).
func fresherIndex(earlier, later *media.ROC) *media.ROC {
	if earlier == nil || earlier.SSRC != later.SSRC {
		return later
	}
	if uint64(earlier.ROC)<<16|uint64(earlier.Seq) > uint64(later.ROC)<<16|uint64(later.Seq) {
		return earlier
	}
	return later
}

func (a *pullState) openNew() (*media.Session, error) {
	avoid := []uint32{a.p.LocalSSRC, a.p.PeerSSRC, a.provSSRC}
	if a.mcfg.RemoteROC != nil {
		avoid = append(avoid, a.mcfg.RemoteROC.SSRC) // C's, when step 3 did not say
	}
	a.mcfg.SSRC = randomSSRC(avoid...)
	return media.Open(a.ctx, a.mcfg)
}

func (a *pullState) startNew(sess *media.Session) {
	aimMedia(a.log, sess, a.peerMedia, signalIP(a.cConn), a.consent)
	sess.Start()
}

func (a *pullState) sendNewAddress(na *wire.NewAddress) error {
	if err := a.cConn.Send(na, sendTimeout); err != nil {
		return err
	}
	a.cRead.want()
	return nil
}

// stopProvisional: A stops its own audio to C (a failure or a rollback):
// whichever of its sessions is open and not yet the call's closes.
func (x *handoffExec) stopProvisional(handoff.Transition) (handoff.Event, string) {
	a := x.a
	if a.prov != nil {
		_ = a.prov.Close()
		a.prov = nil
	}
	if x.fresh != nil && !a.committed {
		_ = x.fresh.Close()
		x.fresh = nil
	}
	return handoff.EventUnknown, ""
}

// sendWithdraw: the rollback after step 7, C is told on the step-7
// connection that A gave up. C reads that connection in order, so a C that
// handles A's new address (step 11) after A's acknowledgement timer ran
// out still goes back to B right after it (docs/protocol.md, 314
// withdraw). An older C answers the unknown type with an error and keeps
// what it had (its own timers, CSwitched + Timeout).
func (x *handoffExec) sendWithdraw(handoff.Transition) (handoff.Event, string) {
	a := x.a
	if a.cConn == nil {
		return handoff.EventUnknown, ""
	}
	reason := "rollback"
	if x.cause != nil {
		reason = x.cause.Error()
	}
	if err := a.cConn.Send(&wire.Withdraw{CallID: a.p.CallID, Reason: wire.TrimReason(reason)}, sendTimeout); err != nil {
		x.e.log.Info("withdraw not delivered to the far party; it goes back to B on its own timer", "err", err)
	}
	return handoff.EventUnknown, ""
}

// sendResume: the rollback, B is told to resume its audio to C.
func (x *handoffExec) sendResume(handoff.Transition) (handoff.Event, string) {
	a := x.a
	reason := "rollback"
	if x.cause != nil {
		reason = x.cause.Error()
	}
	if err := a.bConn.Send(&wire.Resume{CallID: a.p.CallID, Reason: wire.TrimReason(reason)}, sendTimeout); err != nil {
		a.resumeErr = err
		return handoff.EvTimeout, "the other device did not confirm the resume"
	}
	a.bRead.want()
	return handoff.EventUnknown, ""
}

// releaseB: step 12, the call is this endpoint's; B is released silently.
func (x *handoffExec) releaseB(tr handoff.Transition) (handoff.Event, string) {
	a, e, p, sess := x.a, x.e, x.a.p, x.fresh
	firstHeard := a.firstHeard
	if !x.firstAudio.IsZero() && (firstHeard.IsZero() || x.firstAudio.Before(firstHeard)) {
		firstHeard = x.firstAudio
	}
	x.h.set(func(i *HandoffInfo) {
		if !firstHeard.IsZero() {
			i.FirstAudioMS = float64(firstHeard.Sub(x.h.start).Microseconds()) / 1000
		}
		i.NewAddress = sess.LocalAddr().String()
	})
	// The call takes the slot reserved at the start, then B is released.
	// From here on C is with A for good (it has no way back to B), so the
	// call stays here even if C's audio is late (AWaitAudio + Timeout).
	c := e.newCall(p.CallID, dirPulled, a.peer, a.cConn)
	c.codec, c.sess, c.live, c.sink, c.src = a.codec, sess, sess, a.sink, a.src
	c.sendKeys, c.recvKeys = a.send, a.recv
	c.peerSignal = p.PeerSignal
	c.placedBy = p.Initiator // who placed it stays true on this device
	c.state = CallActive
	now := e.cfg.Now()
	c.info.Codec = a.codec.Descriptor().Name
	c.info.SRTP = a.send != nil
	c.info.LocalMedia = sess.LocalAddr().String()
	c.info.RemoteMedia = a.peerMedia.String()
	c.info.Answered = &now
	c.info.State = CallActive.String()
	if err := e.registerReserved(c, a.reserved); err != nil {
		// Only a closing endpoint gets here; C then ends on its own.
		x.fatal = err
		return handoff.EventUnknown, ""
	}
	a.committed = true
	c.start()
	if err := a.bConn.Send(&wire.Release{CallID: p.CallID}, sendTimeout); err != nil {
		// B's guard timer would resume it: say so loudly, the call is on A.
		e.log.Warn("release not delivered to the other device", "device", a.b.String(), "err", err)
	}
	e.emit(Event{Type: "call.active", CallID: c.id, Peer: a.peer.String(), State: "active", Detail: "pulled from " + a.b.String()})
	return handoff.EventUnknown, ""
}

const dirPulled = "pulled"

func (e *Endpoint) checkParams(p wire.SessionParams) error {
	if p.Grant.To != e.id.String() {
		return fmt.Errorf("%w: the grant is for %s", ErrHandoffFailed, p.Grant.To)
	}
	return nil
}
