package endpoint

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/baton-voice/baton/p2p/handoff"
	"github.com/baton-voice/baton/p2p/pki"
	"github.com/baton-voice/baton/p2p/wire"
)

// handoffState is a call's state in the handoff roles B (this endpoint has
// the call and another device pulls it) and C (this endpoint is the far
// party). It is owned by the call's run goroutine.
type handoffState struct {
	// Role B.
	b       *handoff.Machine
	offered map[*wire.Conn]bool // connections that got this call's grant
	winner  *wire.Conn          // the puller whose stop-audio won
	// lastWinner is the winner of the round that ended (guard or
	// resume): its late resume is confirmed.
	lastWinner *wire.Conn
	bTimer     stateTimer // the state's timer, on Config.Clock
	// What B's handlers answer with: the request's connection and device,
	// the parameters offered (SendSessionParams), a refusal (RefuseBusy,
	// RefusePolicy with denied, the policy's reason).
	from      *wire.Conn
	requester *pki.Identity
	params    wire.SessionParams
	refusal   error
	denied    string
	// mutedAt is when B stopped its audio (step 5); unmuted says B has
	// sent again since because C kept sending to it (see checkMute).
	mutedAt time.Time
	unmuted bool

	// Role C.
	c      *handoff.Machine
	nonces map[string]struct{} // grant nonces seen: single use
	prev   struct {
		peer   pki.Identity
		conn   *wire.Conn
		cert   *x509.Certificate
		signal string
		remote netip.AddrPort
	}
	switches uint64     // media source switches seen when C's machine started
	cTimer   stateTimer // the state's timer, on Config.Clock
	// What C's handlers act on: the device taking the call (SwitchPeerToA)
	// and the peer's new address (UpdatePeerAddress).
	pendingA struct {
		id     pki.Identity
		conn   *wire.Conn
		signal string
		remote netip.AddrPort
	}
	newAddr netip.AddrPort
	// aConn is the connection of the device C took as its peer at step
	// 7, while C keeps B (prev) to go back to on its withdraw; nil when
	// there is none (no handoff, reverted, or the fallback lapsed).
	// movedAt is when C took that device's new address (step 11): a
	// withdraw is followed for withdrawWindow after it.
	aConn   *wire.Conn
	movedAt time.Time
	// switchedAt is when C took A as its peer (step 7); streamed says
	// A's provisional stream had reached C before that (step 4).
	switchedAt time.Time
	streamed   bool

	// watch fires every half packet time, on Config.Clock, while B is
	// muted or C has just switched to A: the checks that bound the
	// silence C can be left in (checkMute, checkSwitched). They compare
	// times of that clock: the media's LastPacket is read on it too
	// (media.Config.Now), so a test moves B's and C's checks on with a
	// fake clock instead of waiting for them.
	watch Timer
}

// Bounds on the silence at C during a handoff that does not happen, for
// instance a valid grant used by a device that never sends C any audio
// (issue 11 §1.3). Both derive from the step 6 timer (NoAudio, a few
// packet times): in a real handoff A re-establishes with C NoAudio after
// step 5, and C's audio then goes to A.

// muteConsent is how long after B mutes C's audio may still reach B in a
// real handoff: NoAudio, plus one packet time for the packet in flight. C
// still sending to B after that means no device took C over: B sends
// again, without leaving its muted state (a late release still works).
func muteConsent(t handoff.Timeouts, ptime time.Duration) time.Duration { return t.NoAudio + ptime }

// switchSilence is how long C, having taken A as its peer (step 7), waits
// with no audio from anyone before going back to B. In a real handoff A's
// provisional stream reached C before step 5 and pauses only between
// steps 8 and 10.
func switchSilence(t handoff.Timeouts, ptime time.Duration) time.Duration {
	return t.NoAudio + 2*ptime
}

// staleSource is the media layer's stale-source window at this endpoint
// (media.Config.StaleSourceTimeout): once the stream that replaced
// another has been silent this long, the replaced one plays again. It is
// switchSilence, so that C hears B again after a puller died after step
// 4 (its stream reached C, no step 7) as soon as after one that died
// after step 7: B resumes muteConsent after step 5 (checkMute), and C
// must not hold B's stream off for the media default's 250 ms (issue 9
// §3, the softphone dies mid-pull).
func staleSource(t handoff.Timeouts, ptime time.Duration) time.Duration {
	return switchSilence(t, ptime)
}

// streamedSilence is switchSilence for an A whose provisional stream
// reached C before step 7: a device that is really taking the call, whose
// audio pauses between steps 8 and 10 and whose new address (step 11) is
// on its way. C gives it as long as A gives C to acknowledge that address
// (AddressAck): going back to B sooner only makes A's step 11 fail and the
// pull roll back. With 200 concurrent pulls through one gateway on two
// loaded cores, C handled A's restarted stream and its new address 110-140
// ms after step 8, past switchSilence's 100 ms, and rolled back 36-42 % of
// the pulls (docs/benchmarks.md §25). A device that never streams (issue 11
// §1.3) still gets switchSilence.
func streamedSilence(t handoff.Timeouts, ptime time.Duration) time.Duration {
	return max(switchSilence(t, ptime), t.AddressAck)
}

// maxHandoffSilence is the longest silence C hears when a handoff does
// not happen, with prompt scheduling: C going back to B after
// switchSilence, plus half a packet time for C's check, one for C's next
// packet to B, half for B's check and one for B's next packet. (Without
// step 7 it is shorter: muteConsent plus 2.5 packet times.)
func maxHandoffSilence(t handoff.Timeouts, ptime time.Duration) time.Duration {
	return switchSilence(t, ptime) + 3*ptime
}

func (c *call) watchC() <-chan time.Time {
	if c.ho == nil {
		return nil
	}
	return timerC(c.ho.watch)
}

// watchPeriod is the watch's half packet time.
func (c *call) watchPeriod() time.Duration { return max(c.e.cfg.Ptime/2, time.Millisecond) }

// startWatch starts the handoff watch if it is not running.
func (c *call) startWatch() {
	h := c.handoff()
	if h.watch == nil {
		h.watch = c.e.cfg.Clock.NewTimer(c.watchPeriod())
	}
}

// onWatch runs the handoff checks when the watch fired, and starts it
// again while one is still needed.
func (c *call) onWatch() {
	h := c.ho
	h.watch = nil // spent
	need := c.checkMute()
	need = c.checkSwitched() || need
	if need && h.watch == nil {
		h.watch = c.e.cfg.Clock.NewTimer(c.watchPeriod())
	}
}

// checkMute is B's side: muted, but C's audio still arrives after
// muteConsent, so C has not gone to another device: send again. It
// reports whether B still needs watching.
func (c *call) checkMute() bool {
	h := c.ho
	if h.b == nil || h.b.State() != handoff.BMuted || h.unmuted || c.sess == nil {
		return false
	}
	grace := muteConsent(c.e.timeouts, c.e.cfg.Ptime)
	last := c.sess.Stats().LastPacket
	if !last.After(h.mutedAt.Add(grace)) {
		return true
	}
	h.unmuted = true
	c.sess.SetSending(true)
	c.log.Warn("handoff: the far party still sends here after the other device should have taken it; audio resumed",
		"muted_for", c.e.cfg.Clock.Now().Sub(h.mutedAt), "grace", grace)
	c.e.emit(Event{Type: "handoff.unmuted", CallID: c.id,
		Detail: fmt.Sprintf("%s still sends here %s after stop-audio: audio to it resumed (still waiting for a release or resume)", c.peer, grace)})
	return false
}

// checkSwitched is C's side: A was accepted as the peer (step 7) but no
// audio has come from anyone for switchSilence: go back to B, which
// resumes when it hears C again (checkMute). It reports whether C still
// needs watching.
func (c *call) checkSwitched() bool {
	h := c.ho
	if h.c == nil || h.c.State() != handoff.CSwitched || c.sess == nil {
		return false
	}
	now := c.e.cfg.Clock.Now()
	last := c.sess.Stats().LastPacket
	if last.Before(h.switchedAt) && now.Sub(h.switchedAt) < c.e.cfg.Ptime {
		return true // give A at least one packet time after step 7
	}
	window := switchSilence(c.e.timeouts, c.e.cfg.Ptime)
	if h.streamed {
		window = streamedSilence(c.e.timeouts, c.e.cfg.Ptime)
	}
	if now.Sub(last) <= window {
		return true
	}
	if tr, err := c.fire(h.c, handoff.EvAStreamLost); err == nil {
		c.log.Warn("handoff: no audio from the new device after taking it as the peer", "silent_for", now.Sub(last))
		c.doC(tr)
	}
	return false
}

func (c *call) handoff() *handoffState {
	if c.ho == nil {
		c.ho = &handoffState{nonces: map[string]struct{}{}, offered: map[*wire.Conn]bool{}}
	}
	return c.ho
}

// bTimer and cTimer return the channels of the roles' timers (nil: none).
func (c *call) bTimer() <-chan time.Time {
	if c.ho == nil {
		return nil
	}
	return c.ho.bTimer.C()
}

func (c *call) cTimer() <-chan time.Time {
	if c.ho == nil {
		return nil
	}
	return c.ho.cTimer.C()
}

// fire drives one of the call's machines. Each machine has its own timer,
// the table's timer of the state it is in: entering a state starts it,
// leaving stops it, and a self-loop leaves it running (a stream of queries
// must not keep B muted forever).
func (c *call) fire(m *handoff.Machine, ev handoff.Event) (handoff.Transition, error) {
	from := m.State()
	tr, err := m.Fire(ev)
	c.e.observe(m, from, ev, tr, err)
	if err != nil {
		return tr, err
	}
	c.log.Debug("handoff transition", "role", m.Role(), "from", tr.From, "event", ev, "to", tr.To, "actions", tr.Actions)
	if tr.From == tr.To {
		return tr, nil
	}
	h := c.handoff()
	slot := &h.bTimer
	if m.Role() == handoff.RoleC {
		slot = &h.cTimer
	}
	slot.follow(c.e.cfg.Clock, tr, c.e.timeouts.Duration)
	if m.Role() == handoff.RoleB && tr.To == handoff.BActive {
		// Back to no handoff: the next round has its own pullers. The
		// winner's late resume (its rollback crossed B's guard) is still
		// confirmed: BActive + Resume.
		h.lastWinner = h.winner
		h.winner = nil
		clear(h.offered)
	}
	return tr, nil
}

// onBTimeout and onCTimeout deliver the expiry of a role's timer.
func (c *call) onBTimeout() {
	h := c.ho
	h.bTimer.fired()
	if h.b != nil {
		if tr, err := c.fire(h.b, handoff.EvTimeout); err == nil {
			c.doB(tr)
		}
	}
}

func (c *call) onCTimeout() {
	h := c.ho
	h.cTimer.fired()
	if h.c != nil {
		if tr, err := c.fire(h.c, handoff.EvTimeout); err == nil {
			c.doC(tr)
		}
	}
}

// --- Role B ---------------------------------------------------------------

// offer answers a session query from requester on conn (step 3): the
// session's parameters and a grant signed by this endpoint for C.
func (c *call) offer(requester pki.Identity, conn *wire.Conn) (wire.SessionParams, error) {
	if c.state != CallActive || c.sess == nil {
		return wire.SessionParams{}, fmt.Errorf("%w: call %s is %s", ErrBadState, c.id, c.state)
	}
	if err := c.holdRefusesPull(); err != nil { // hold.go
		return wire.SessionParams{}, err
	}
	if c.peerSignal == "" {
		// Another device could not reach C out of band (step 7).
		return wire.SessionParams{}, fmt.Errorf("%w: %s did not say where it accepts signaling", ErrBadState, c.peer)
	}
	h := c.handoff()
	if h.b == nil || h.b.Done() {
		h.b = handoff.NewMachine(handoff.RoleB)
	}
	h.from, h.requester, h.params, h.refusal = conn, &requester, wire.SessionParams{}, nil
	tr, err := c.fire(h.b, handoff.EvQuery)
	if err != nil {
		return wire.SessionParams{}, err
	}
	c.doB(tr)
	if h.refusal != nil {
		return wire.SessionParams{}, h.refusal
	}
	return h.params, nil
}

// sendSessionParams: step 3, the session's parameters and a grant signed
// by this endpoint for C, to the device that asked.
func (c *call) sendSessionParams(handoff.Transition) {
	h := c.ho
	requester, conn := *h.requester, h.from
	grant, err := c.e.signGrant(c.id, requester, c.peer)
	if err != nil {
		h.refusal = err
		return
	}
	p := wire.SessionParams{
		CallID:     c.id,
		Peer:       c.peer.String(),
		Direction:  wire.DirectionSendRecv,
		PeerSignal: c.peerSignal,
		PeerMedia:  c.remoteMedia().String(),
		Codec:      c.codec.Descriptor().Name,
		PtimeMS:    int(c.e.cfg.Ptime / time.Millisecond),
		PeerSSRC:   c.sess.Stats().RemoteSSRC,
		LocalSSRC:  c.sess.SSRC(),
		Grant:      grant,
		Initiator:  c.initiator(),
	}
	if c.sendKeys != nil && c.recvKeys != nil {
		p.SendKey, p.RecvKey = c.sendKeys.Bytes(), c.recvKeys.Bytes()
		// A decrypts C's running stream: it needs how often its sequence
		// number has wrapped, and the highest one seen, since it may
		// wrap again before A's first packet (RFC 3711 §3.3.1).
		if roc, ok := c.sess.RemoteROC(); ok && roc.SSRC == p.PeerSSRC {
			p.PeerROC = roc.ROC
			if roc.HasSeq {
				seq := roc.Seq
				p.PeerSeq = &seq
			}
		}
	}
	if c.e.cfg.offerHook != nil {
		c.e.cfg.offerHook(&p)
	}
	h.offered[conn] = true
	h.params = p
	c.e.emit(Event{Type: "handoff.offered", CallID: c.id, Peer: requester.String(), Step: 3,
		Detail: fmt.Sprintf("session parameters sent to %s", requester)})
}

// refuseBusy: this call is already being handed off to another device.
func (c *call) refuseBusy(tr handoff.Transition) {
	if tr.Event == handoff.EvQuery {
		c.ho.refusal = fmt.Errorf("%w: call %s is already being handed off", ErrBusy, c.id)
		return
	}
	c.ho.refusal = fmt.Errorf("%w: another device is already taking call %s", ErrBusy, c.id)
}

func (c *call) remoteMedia() netip.AddrPort {
	c.mu.Lock()
	defer c.mu.Unlock()
	ap, _ := netip.ParseAddrPort(c.info.RemoteMedia)
	return ap
}

// denyQuery is B's side of a session query the policy refuses for this
// call: the call is left out of the answer, so the requester learns
// nothing about it (ActRefusePolicy).
func (c *call) denyQuery(requester pki.Identity, reason string) error {
	h := c.handoff()
	if h.b == nil || h.b.Done() {
		h.b = handoff.NewMachine(handoff.RoleB)
	}
	h.from, h.requester, h.denied = nil, &requester, reason
	tr, err := c.fire(h.b, handoff.EvQueryDenied)
	if err != nil {
		return fmt.Errorf("%w: session query in %s", ErrBadState, h.b.State())
	}
	c.doB(tr)
	return nil
}

// stopAudio handles a puller's stop-audio (step 5): the first one wins.
func (c *call) stopAudio(conn *wire.Conn, from pki.Identity) error {
	h := c.handoff()
	if h.b == nil || !h.offered[conn] {
		return fmt.Errorf("%w: no session query for call %s on this connection", ErrBadState, c.id)
	}
	h.from, h.requester, h.refusal = conn, &from, nil
	tr, err := c.fire(h.b, handoff.EvStopAudio)
	if err != nil {
		return fmt.Errorf("%w: stop-audio in %s", ErrBadState, h.b.State())
	}
	if !hasAction(tr, handoff.ActRefuseBusy) {
		h.winner = conn
	}
	c.doB(tr)
	return h.refusal
}

// resumeAudio handles a rollback from the winner.
func (c *call) resumeAudio(conn *wire.Conn) error {
	h := c.handoff()
	late := h.b != nil && h.b.State() == handoff.BActive && conn == h.lastWinner
	if h.b == nil || (!late && (!h.offered[conn] || (h.winner != nil && conn != h.winner))) {
		return fmt.Errorf("%w: resume from a device that is not taking the call", ErrBadState)
	}
	h.from, h.requester = conn, nil
	tr, err := c.fire(h.b, handoff.EvResume)
	if err != nil {
		return fmt.Errorf("%w: resume in %s", ErrBadState, h.b.State())
	}
	c.doB(tr)
	return nil
}

// release lets the call go silently: the far party now talks to A.
func (c *call) release(conn *wire.Conn, to pki.Identity) error {
	h := c.handoff()
	if h.b == nil || !h.offered[conn] || (h.winner != nil && conn != h.winner) {
		return fmt.Errorf("%w: release from a device that is not taking the call", ErrBadState)
	}
	h.from, h.requester = conn, &to
	tr, err := c.fire(h.b, handoff.EvRelease)
	if err != nil {
		return fmt.Errorf("%w: release in %s", ErrBadState, h.b.State())
	}
	c.doB(tr)
	return nil
}

// callHandler carries out one action of role B or C on the call's
// goroutine.
type callHandler func(c *call, tr handoff.Transition)

// bHandlers and cHandlers name the one handler of each action of roles B
// and C (docs/handoff.md lists them).
var bHandlers = map[handoff.Action]callHandler{
	handoff.ActSendSessionParams: (*call).sendSessionParams,
	handoff.ActRefusePolicy:      (*call).refusePolicy,
	handoff.ActRefuseBusy:        (*call).refuseBusy,
	handoff.ActStopAudioToC:      (*call).muteToC,
	handoff.ActSendStopAck:       (*call).sendStopAck,
	handoff.ActResumeAudio:       (*call).resumeToC,
	handoff.ActSendResumeAck:     (*call).sendResumeAck,
	handoff.ActReleaseCall:       (*call).releaseCall,
}

var cHandlers = map[handoff.Action]callHandler{
	handoff.ActPlayA:             (*call).playA,
	handoff.ActSwitchPeerToA:     (*call).switchPeerToA,
	handoff.ActAcceptReestablish: (*call).acceptReestablish,
	handoff.ActRefuseReestablish: (*call).refuseReestablish,
	handoff.ActRevertToB:         (*call).revertToB,
	handoff.ActUpdatePeerAddress: (*call).updatePeerAddress,
	handoff.ActSendAddressAck:    (*call).sendAddressAck,
	handoff.ActEndCall:           (*call).endByMediaTimeout,
}

// doB and doC carry out a transition's actions, each by its handler.
func (c *call) doB(tr handoff.Transition) { c.do(bHandlers, tr) }
func (c *call) doC(tr handoff.Transition) { c.do(cHandlers, tr) }

func (c *call) do(handlers map[handoff.Action]callHandler, tr handoff.Transition) {
	for _, a := range tr.Actions {
		hd := handlers[a]
		if hd == nil {
			// TestHandlersCoverTables keeps this from happening.
			c.log.Error("handoff: no handler for action", "action", a, "state", tr.To)
			continue
		}
		hd(c, tr)
	}
}

// refusePolicy: the policy refuses the requester this call; it is left
// out of the answer.
func (c *call) refusePolicy(handoff.Transition) {
	who := c.ho.requester.String()
	c.log.Info("session not offered: pull refused by policy", "requester", who, "reason", c.ho.denied)
	c.e.emit(Event{Type: "handoff.refused", CallID: c.id, Peer: who, Detail: "pull: " + c.ho.denied})
}

// muteToC: step 5 at B, stop sending audio to C but keep the session.
func (c *call) muteToC(handoff.Transition) {
	c.sess.SetSending(false)
	c.ho.mutedAt, c.ho.unmuted = c.e.cfg.Clock.Now(), false
	c.startWatch()
	c.log.Info("handoff: stopped sending audio to the far party", "step", 5)
	c.e.emit(Event{Type: "handoff.muted", CallID: c.id, Step: 5, Detail: "stopped audio to " + c.peer.String()})
}

// sendStopAck acknowledges the stop-audio to the puller, with where C's
// stream is now (RFC 3711 §3.3.1's index): C sends to B until step 7, so
// this is fresher than the session parameters of step 3, which B may have
// answered before it heard C at all (a pull right after the answer).
func (c *call) sendStopAck(handoff.Transition) {
	ack := &wire.StopAck{CallID: c.id}
	if c.recvKeys != nil && c.sess != nil {
		if roc, ok := c.sess.RemoteROC(); ok && roc.HasSeq {
			seq := roc.Seq
			ack.PeerSSRC, ack.PeerROC, ack.PeerSeq = roc.SSRC, roc.ROC, &seq
		}
	}
	if c.e.cfg.ackHook != nil {
		c.e.cfg.ackHook(ack)
	}
	_ = c.ho.from.Send(ack, sendTimeout)
}

// resumeToC: the rollback (or B's guard), audio to C again.
func (c *call) resumeToC(tr handoff.Transition) {
	c.sess.SetSending(true)
	c.log.Info("handoff rolled back: audio to the far party resumed")
	c.e.emit(Event{Type: "handoff.resumed", CallID: c.id, Detail: "audio to " + c.peer.String() + " resumed (" + tr.Event.String() + ")"})
}

// sendResumeAck acknowledges the resume to the puller.
func (c *call) sendResumeAck(handoff.Transition) {
	_ = c.ho.from.Send(&wire.ResumeAck{CallID: c.id}, sendTimeout)
}

// releaseCall: step 12 at B, the call ends here silently.
func (c *call) releaseCall(handoff.Transition) {
	who := "the other device"
	if c.ho.requester != nil {
		who = c.ho.requester.String()
	}
	c.log.Info("handoff: call released; nothing sent to the far party", "to", who, "step", 12)
	// No Bye: C keeps the call with A. The connection to C is closed by
	// finish, which C ignores since it is no longer its call's connection.
	c.sigLost = true
	c.end("handed off to "+who, "handed-off")
}

// --- Role C ---------------------------------------------------------------

// reestablish handles A's out-of-band request (step 7) on conn, a new
// connection on which A proved identity from.
func (c *call) reestablish(conn *wire.Conn, from pki.Identity, m *wire.Reestablish) error {
	h := c.handoff()
	if h.c == nil || h.c.Done() {
		h.c = handoff.NewMachine(handoff.RoleC)
	}
	if c.state != CallActive {
		return fmt.Errorf("%w: call %s is %s", ErrBadState, c.id, c.state)
	}
	if err := c.verifyGrant(from, &m.Grant); err != nil {
		if tr, ferr := c.fire(h.c, handoff.EvBadGrant); ferr == nil {
			c.doC(tr)
		}
		// serveReestablish sends the refusal, with this reason.
		c.e.emit(Event{Type: "handoff.refused", CallID: c.id, Peer: from.String(), Detail: err.Error()})
		return err
	}
	remote, err := netip.ParseAddrPort(m.Media.Addr)
	if err != nil {
		return fmt.Errorf("endpoint: reestablish media address: %w", err)
	}
	// If A's stream already reached us (step 4), the media layer switched
	// to it: the machine records the overlap first.
	h.streamed = c.sess.Stats().SourceSwitches > h.switches
	if h.c.State() == handoff.CActive && h.streamed {
		if tr, err := c.fire(h.c, handoff.EvAudioFromA); err == nil {
			c.doC(tr)
		}
	}
	h.pendingA.id, h.pendingA.conn, h.pendingA.signal, h.pendingA.remote = from, conn, m.SignalAddr, remote
	tr, err := c.fire(h.c, handoff.EvReestablish)
	if err != nil {
		return fmt.Errorf("%w: reestablish in %s", ErrBadState, h.c.State())
	}
	c.doC(tr)
	return nil
}

// setPeer makes id (on conn) the call's peer.
func (c *call) setPeer(id pki.Identity, conn *wire.Conn, signal string, remote netip.AddrPort) {
	c.peer = id
	c.conn = conn
	c.peerCert = peerCertificate(conn)
	c.peerSignal = signal
	c.log = c.e.log.With("call_id", c.id, "peer", id.String(), "direction", c.dir)
	c.sigLost = c.deadConns[conn] // back to a peer whose stream already ended
	c.aimMedia(c.sess, remote, conn, false)
	c.mu.Lock()
	c.info.Peer = id.String()
	c.info.RemoteMedia = remote.String()
	c.mu.Unlock()
}

// playA: step 4 at C, the media layer plays A's authenticated stream.
func (c *call) playA(handoff.Transition) {
	c.e.emit(Event{Type: "handoff.overlap", CallID: c.id, Step: 4, Detail: "playing the new device's authenticated stream"})
}

// switchPeerToA: step 7 at C, A (verified grant) is the media peer.
func (c *call) switchPeerToA(handoff.Transition) {
	h := c.ho
	a := h.pendingA
	h.prev.peer, h.prev.conn, h.prev.cert, h.prev.signal, h.prev.remote = c.peer, c.conn, c.peerCert, c.peerSignal, c.remoteMedia()
	c.oldConns = append(c.oldConns, c.conn)
	c.setPeer(a.id, a.conn, a.signal, a.remote)
	h.aConn, h.movedAt = a.conn, time.Time{}
	c.startReader(c.conn)
	h.switchedAt = c.e.cfg.Clock.Now()
	c.startWatch()
	c.log.Info("handoff: peer is now the new device", "step", 7, "was", h.prev.peer.String())
}

// acceptReestablish answers A: accepted, with where this side's stream
// is: A joins it mid-way and needs its SRTP index (RFC 3711 §3.3.1), which
// B may not know (it may not have heard this side yet when it answered).
func (c *call) acceptReestablish(handoff.Transition) {
	ack := &wire.ReestablishAck{CallID: c.id}
	if c.sendKeys != nil && c.sess != nil {
		if idx, ok := c.sess.SendIndex(); ok {
			seq := idx.Seq
			ack.PeerSSRC, ack.PeerROC, ack.PeerSeq = idx.SSRC, idx.ROC, &seq
		}
	}
	if c.e.cfg.ackHook != nil {
		c.e.cfg.ackHook(ack)
	}
	_ = c.conn.Send(ack, sendTimeout)
	c.e.emit(Event{Type: "handoff.reestablished", CallID: c.id, Peer: c.peer.String(), Step: 7,
		Detail: "call continues with " + c.peer.String() + " (was " + c.ho.prev.peer.String() + ")"})
}

// refuseReestablish: the grant does not verify; the peer stays. The
// refusal goes to the presenter from serveReestablish, with the reason.
func (c *call) refuseReestablish(handoff.Transition) {
	c.log.Info("handoff: grant refused")
}

// revertToB: A took the call but never told its new address: back to B,
// whose guard timer (or its hearing C again) resumes its audio.
func (c *call) revertToB(handoff.Transition) {
	h := c.ho
	c.log.Warn("handoff: new device silent after taking the call; back to the previous device", "to", h.prev.peer.String())
	c.oldConns = append(c.oldConns, c.conn)
	c.setPeer(h.prev.peer, h.prev.conn, h.prev.signal, h.prev.remote)
	c.peerCert = h.prev.cert
	h.aConn = nil
	c.e.emit(Event{Type: "handoff.reverted", CallID: c.id, Peer: c.peer.String(), Detail: "back to " + c.peer.String()})
}

// updatePeerAddress: step 11 at C (and mobility), send to the new address.
func (c *call) updatePeerAddress(handoff.Transition) {
	remote := c.ho.newAddr
	c.aimMedia(c.sess, remote, c.conn, false)
	c.mu.Lock()
	c.info.RemoteMedia = remote.String()
	c.mu.Unlock()
}

// sendAddressAck acknowledges the new address to the peer.
func (c *call) sendAddressAck(handoff.Transition) {
	_ = c.conn.Send(&wire.NewAddressAck{CallID: c.id}, sendTimeout)
	c.log.Info("peer media moved", "to", c.ho.newAddr, "step", 11)
	c.e.emit(Event{Type: "media.peer-moved", CallID: c.id, Peer: c.peer.String(), Step: 11, Detail: "sending to " + c.ho.newAddr.String()})
	c.ho.switches = c.sess.Stats().SourceSwitches
}

// endByMediaTimeout: no audio from any peer for the media timeout.
func (c *call) endByMediaTimeout(handoff.Transition) {
	c.end(fmt.Sprintf("signaling lost and no media for %s", c.e.cfg.MediaTimeout), "media-timeout")
}

// onMediaTimeout is the far party's own media timeout (the call's
// watchdog: signaling lost and no audio from any peer for MediaTimeout).
// It is C's table that ends the call; a C in the middle of a handoff has
// no such row, which is logged as the disagreement it is, and the call
// ends all the same: no peer is sending.
func (c *call) onMediaTimeout() {
	h := c.handoff()
	if h.c == nil || h.c.Done() {
		h.c = handoff.NewMachine(handoff.RoleC)
	}
	tr, err := c.fire(h.c, handoff.EvMediaTimeout)
	if err != nil {
		c.end(fmt.Sprintf("signaling lost and no media for %s", c.e.cfg.MediaTimeout), "media-timeout")
		return
	}
	c.doC(tr)
}

// onNewAddress handles the peer's move (step 11, and mobility).
func (c *call) onNewAddress(m *wire.NewAddress) {
	remote, err := netip.ParseAddrPort(m.Media.Addr)
	if err != nil {
		_ = c.conn.SendError(wire.CodeBadRequest, "new address: "+err.Error(), c.id, sendTimeout)
		return
	}
	h := c.handoff()
	if h.c == nil || h.c.Done() {
		h.c = handoff.NewMachine(handoff.RoleC)
	}
	h.newAddr = remote
	if h.c.State() == handoff.CSwitched {
		h.movedAt = c.e.cfg.Clock.Now() // step 11: B stays the fallback a while
	}
	tr, err := c.fire(h.c, handoff.EvNewAddress)
	if err != nil {
		_ = c.conn.SendError(wire.CodeBadRequest, err.Error(), c.id, sendTimeout)
		return
	}
	c.doC(tr)
	c.peerSSRC = m.Media.SSRC // the peer's stream from its new address
}

// withdrawWindow is how long after C took the new address of the device
// that pulled the call (step 11) that device's withdraw still takes C back
// to B. A withdraws only while it has not read C's acknowledgement (its
// AddressAck timer ran out first): its withdraw is then already behind the
// new address on the connection, or on its way within a round trip of the
// acknowledgement. Past the window the handoff is over for C: B may have
// been released, and C never goes back to it.
func withdrawWindow(t handoff.Timeouts) time.Duration { return t.AddressAck }

// onWithdraw handles a withdraw (docs/protocol.md, 314): the device C
// switched to at step 7 gave the handoff up after that. It is followed
// only for this call, on that device's connection (onMessage gets only
// the call's current connection's messages, and the device must still be
// the peer on it), while C keeps B to go back to: in CSwitched, or in
// CActive within withdrawWindow of taking that device's new address. It
// reports whether the withdraw was followed (otherwise onMessage answers
// it as out of place).
func (c *call) onWithdraw(m *wire.Withdraw) bool {
	h := c.ho
	if m.CallID != c.id || h == nil || h.c == nil || h.aConn == nil || h.aConn != c.conn {
		return false
	}
	switch h.c.State() {
	case handoff.CSwitched:
	case handoff.CActive:
		if h.movedAt.IsZero() || c.e.cfg.Clock.Now().Sub(h.movedAt) > withdrawWindow(c.e.timeouts) {
			h.aConn = nil // the fallback lapsed: the call is the new device's
			return false
		}
	default:
		return false
	}
	tr, err := c.fire(h.c, handoff.EvWithdraw)
	if err != nil {
		return false
	}
	c.log.Info("handoff withdrawn by the new device; back to the previous device", "reason", m.Reason)
	c.doC(tr)
	return true
}

// verifyGrant checks B's grant for A (from): signed by the call's current
// peer with the key of the certificate it proved, for this call, this
// endpoint and the device presenting it, not expired, not seen before,
// and (default policy) between devices of the same user.
func (c *call) verifyGrant(from pki.Identity, g *wire.Grant) error {
	nonce := hex.EncodeToString(g.Nonce)
	if _, seen := c.handoff().nonces[nonce]; seen {
		return fmt.Errorf("%w: grant already used (replay)", ErrGrant)
	}
	switch {
	case g.CallID != c.id:
		return fmt.Errorf("%w: grant is for call %q", ErrGrant, g.CallID)
	case g.From != c.peer.String():
		return fmt.Errorf("%w: grant signed by %s, but the call is with %s", ErrGrant, g.From, c.peer)
	case g.To != from.String():
		return fmt.Errorf("%w: grant is for %s, presented by %s", ErrGrant, g.To, from)
	case g.Peer != c.e.id.String():
		return fmt.Errorf("%w: grant names %s as the far party", ErrGrant, g.Peer)
	case from.User != c.peer.User:
		return fmt.Errorf("%w: %s is not a device of %s", ErrGrant, from, c.peer.User)
	case time.Unix(g.NotAfterUnix, 0).Before(c.e.cfg.Now()):
		return fmt.Errorf("%w: grant expired", ErrGrant)
	}
	if c.peerCert == nil {
		return fmt.Errorf("%w: no certificate of %s to verify with", ErrGrant, c.peer)
	}
	if !verifySignature(c.peerCert.PublicKey, g.SigningBytes(), g.Signature) {
		return fmt.Errorf("%w: signature does not verify with %s's key", ErrGrant, c.peer)
	}
	c.handoff().nonces[nonce] = struct{}{}
	return nil
}

// signGrant signs a grant for device to to take call id with peer.
func (e *Endpoint) signGrant(id string, to, peer pki.Identity) (wire.Grant, error) {
	g := wire.Grant{
		CallID:       id,
		From:         e.id.String(),
		To:           to.String(),
		Peer:         peer.String(),
		NotAfterUnix: e.cfg.Now().Add(e.cfg.GrantLifetime).Unix(),
		Nonce:        make([]byte, wire.GrantNonceLen),
	}
	if _, err := rand.Read(g.Nonce); err != nil {
		return wire.Grant{}, fmt.Errorf("endpoint: grant nonce: %w", err)
	}
	digest := sha256.Sum256(g.SigningBytes())
	sig, err := ecdsa.SignASN1(rand.Reader, e.key, digest[:])
	if err != nil {
		return wire.Grant{}, fmt.Errorf("endpoint: sign grant: %w", err)
	}
	g.Signature = sig
	return g, nil
}

func verifySignature(pub crypto.PublicKey, msg, sig []byte) bool {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		d := sha256.Sum256(msg)
		return ecdsa.VerifyASN1(k, d[:], sig)
	case ed25519.PublicKey:
		return ed25519.Verify(k, msg, sig)
	}
	return false
}

func hasAction(tr handoff.Transition, a handoff.Action) bool {
	for _, x := range tr.Actions {
		if x == a {
			return true
		}
	}
	return false
}

// --- B's side of the connection -------------------------------------------

// serveHandoff serves a device's session query on conn (B's side of steps
// 2-5 and 12). The policy decides first; a refused requester learns
// nothing about the sessions.
func (e *Endpoint) serveHandoff(wc *wire.Conn, peer pki.Identity, q *wire.SessionQuery) {
	log := e.log.With("puller", peer.String(), "query_id", q.QueryID)
	defer wc.Close()
	d, err := e.cfg.Policy.Decide(e.ctx, handoff.Request{Kind: handoff.KindQuery, Requester: peer.String(), Owner: e.id.String()})
	if err != nil || !d.Allow {
		reason := d.Reason
		if err != nil {
			reason = err.Error()
		}
		e.stats.rejected("policy")
		log.Info("session query refused by policy", "reason", reason)
		e.emit(Event{Type: "handoff.refused", Peer: peer.String(), Detail: "session query: " + reason})
		_ = wc.Send(&wire.Reject{CallID: q.QueryID, Code: wire.CodeForbidden, Reason: "refused by policy"}, sendTimeout)
		return
	}
	list := &wire.SessionList{QueryID: q.QueryID}
	e.mu.Lock()
	calls := make([]*call, 0, len(e.calls))
	for _, c := range e.calls {
		calls = append(calls, c)
	}
	e.mu.Unlock()
	for _, c := range calls {
		// A session is offered (with its keys and a grant) only if this
		// device may take it: the policy decides per call, outside the
		// call's goroutine (a policy may be a slow plugin).
		info := c.snapshot()
		if d, err := e.cfg.Policy.Decide(e.ctx, handoff.Request{Kind: handoff.KindPull, Requester: peer.String(), Owner: e.id.String(), CallID: c.id, Peer: info.Peer}); err != nil || !d.Allow {
			reason := d.Reason
			if err != nil {
				reason = err.Error()
			}
			if err := c.exec(e.ctx, func() error { return c.denyQuery(peer, reason) }); err != nil {
				log.Info("session not offered: pull refused by policy", "call_id", c.id, "reason", reason, "err", err)
			}
			continue
		}
		var p wire.SessionParams
		err := c.exec(e.ctx, func() error {
			var err error
			p, err = c.offer(peer, wc)
			return err
		})
		if err != nil {
			log.Debug("session not offered", "call_id", c.id, "err", err)
			continue
		}
		list.Sessions = append(list.Sessions, p)
	}
	log.Info("session query answered", "sessions", len(list.Sessions), "step", 3)
	if err := wc.Send(list, sendTimeout); err != nil {
		log.Info("session list not delivered", "err", err)
		return
	}
	for {
		m, err := wc.Recv()
		if err != nil {
			if errors.Is(err, wire.ErrMalformed) || errors.Is(err, wire.ErrUnknownType) {
				_ = wc.SendError(wire.CodeBadRequest, err.Error(), "", sendTimeout)
				continue
			}
			// The puller went away. A call it muted resumes on its own
			// guard timer (A dies mid-handoff).
			return
		}
		// Answers (StopAck, ResumeAck) come from the handlers of B's
		// table; a refusal from here, with the handler's reason.
		var id string
		var do func(c *call) error
		switch m := m.(type) {
		case *wire.StopAudio:
			id = m.CallID
			do = func(c *call) error { return c.stopAudio(wc, peer) }
		case *wire.Resume:
			id = m.CallID
			do = func(c *call) error { return c.resumeAudio(wc) }
		case *wire.Release:
			id = m.CallID
			do = func(c *call) error { return c.release(wc, peer) }
		default:
			_ = wc.SendError(wire.CodeBadRequest, "unexpected "+m.Type().String()+" on a handoff connection", "", sendTimeout)
			continue
		}
		c, err := e.lookup(id)
		if err == nil {
			err = c.exec(e.ctx, func() error { return do(c) })
		}
		if err != nil {
			code := wire.CodeBadRequest
			switch {
			case errors.Is(err, ErrBusy):
				code = wire.CodeBusy
			case errors.Is(err, ErrNoSuchCall):
				code = wire.CodeUnknownCall
			case errors.Is(err, ErrForbidden):
				code = wire.CodeForbidden
			}
			log.Info("handoff request refused", "type", m.Type(), "call_id", id, "err", err)
			_ = wc.Send(&wire.Reject{CallID: id, Code: code, Reason: wire.TrimReason(err.Error())}, sendTimeout)
			continue
		}
		if _, ok := m.(*wire.Release); ok {
			return
		}
	}
}

// serveReestablish is C's side of step 7 on a new connection from A.
func (e *Endpoint) serveReestablish(wc *wire.Conn, peer pki.Identity, m *wire.Reestablish) {
	c, err := e.lookup(m.CallID)
	if err == nil {
		err = c.exec(e.ctx, func() error { return c.reestablish(wc, peer, m) })
	}
	if err != nil {
		e.stats.rejected("reestablish")
		e.log.Info("reestablish refused", "from", peer.String(), "call_id", m.CallID, "err", err)
		code := wire.CodeForbidden
		if errors.Is(err, ErrNoSuchCall) {
			code = wire.CodeUnknownCall
		}
		_ = wc.Send(&wire.Reject{CallID: m.CallID, Code: code, Reason: wire.TrimReason(err.Error())}, sendTimeout)
		_ = wc.Close()
	}
	// On success the call owns wc now.
}
