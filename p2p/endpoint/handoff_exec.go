package endpoint

import (
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"time"

	"github.com/baton-voice/baton/p2p/handoff"
	"github.com/baton-voice/baton/p2p/media"
	"github.com/baton-voice/baton/p2p/wire"
)

// transition is one event fed to a handoff machine and what the table made
// of it: the row taken (From, Event -> To, Actions) or the refusal (Err).
// Tests see every one through Config.transitionHook and check it against
// handoff.Table.
type transition struct {
	Role    handoff.Role
	From    handoff.State
	Event   handoff.Event
	To      handoff.State
	Actions []handoff.Action
	Err     error
}

// observe reports a fired event to the test hook. A refusal means the code
// and the table disagree: it is logged as an error here, once for every
// caller, and the caller fails or rolls back the handoff.
func (e *Endpoint) observe(m *handoff.Machine, from handoff.State, ev handoff.Event, tr handoff.Transition, err error) {
	if err != nil {
		e.log.Error("handoff: the table refuses this transition", "role", m.Role(), "state", from, "event", ev, "err", err)
	}
	if e.cfg.transitionHook != nil {
		e.cfg.transitionHook(transition{Role: m.Role(), From: from, Event: ev, To: tr.To, Actions: tr.Actions, Err: err})
	}
}

// --- The executor -----------------------------------------------------------
//
// A handoff run (a pull: role A; a rebind: role M) is driven by its table:
// handoffExec fires an event, follows the new state's timer on the
// endpoint's Clock, and carries out each action of the row with the one
// handler the role's map names for it (aHandlers, mHandlers; B and C, which
// run on a call's goroutine, use bHandlers and cHandlers in
// handoff_peer.go). A handler that completes a local operation returns the
// event that reports it (MediaClosed, AddressAllocated, ...), which is fired
// next; one that sends a message leaves the answer to arrive as an input
// (a message read from B or C, A's first audio from C) or to the state's
// timer. Nothing else moves the machine, so every transition is a row.

// execHandler carries out one action of transition tr. It returns the
// event its outcome is (EventUnknown: the outcome arrives later), with the
// detail recorded for the step.
type execHandler func(x *handoffExec, tr handoff.Transition) (handoff.Event, string)

// execInput is something that arrived for the run (a message, the first
// packet of audio). The loop calls it with the current state; it returns
// the event that is in this state, or ok false if it means nothing here.
type execInput func(s handoff.State) (ev handoff.Event, detail string, at time.Time, ok bool)

// mediaMove is what claim steps 8-12 act on, for a pull (A: the provisional
// session with C) and for a rebind (M: the call's own session). The steps
// themselves are written once, as the handlers closeMedia,
// allocateAddress, restartAudio and sendNewAddress and the audio watch of
// the WaitAudio states.
type mediaMove interface {
	// closeOld closes the media session on the old address without any
	// termination signal (step 8) and says what it closed.
	closeOld() (string, error)
	// openNew opens the media on a new address and port with a new SSRC
	// (step 9).
	openNew() (*media.Session, error)
	// startNew aims the new session at the far party and starts its audio
	// (step 10).
	startNew(*media.Session)
	// sendNewAddress sends the new address to the far party (step 11); its
	// acknowledgement arrives as an input.
	sendNewAddress(*wire.NewAddress) error
}

type handoffExec struct {
	e        *Endpoint
	h        *handoffRun
	handlers map[handoff.Action]execHandler
	timer    stateTimer
	// timerFor, if set, gives a state timer's duration instead of
	// e.timeouts (A: step 6 is measured from step 5, not from the ack).
	timerFor func(handoff.Timer) time.Duration
	in       chan execInput
	quit     chan struct{}

	// cause is the first failure (the run's error unless it completes);
	// fatal ends the run at once (the endpoint closed under it).
	cause error
	fatal error

	// Steps 8-12.
	callID     string
	mv         mediaMove
	fresh      *media.Session // the session on the new address (step 9)
	step11     time.Time      // when the far party acknowledged it
	firstAudio time.Time      // its first packet there (step 12)

	a *pullState   // role A
	m *rebindState // role M
}

func (e *Endpoint) newExec(h *handoffRun, handlers map[handoff.Action]execHandler) *handoffExec {
	return &handoffExec{e: e, h: h, handlers: handlers, in: make(chan execInput, 4), quit: make(chan struct{})}
}

// fail records the first cause of a failure.
func (x *handoffExec) fail(err error) {
	if x.cause == nil && err != nil {
		x.cause = err
	}
}

// finished reports whether the run is over: a terminal state, or M back
// in its start state (M's table is a cycle).
func (x *handoffExec) finished() bool {
	s := x.h.m.State()
	return x.fatal != nil || handoff.Terminal(s) || (s == handoff.MInCall && x.h.m.Role() == handoff.RoleM)
}

// run fires first, then feeds inputs and timer expiries to the machine
// until the run is over.
func (x *handoffExec) run(first handoff.Event, detail string, at time.Time) error {
	defer func() {
		close(x.quit)
		x.timer.stop()
	}()
	if err := x.fire(first, detail, at); err != nil {
		return err
	}
	for !x.finished() {
		select {
		case in := <-x.in:
			ev, detail, at, ok := in(x.h.m.State())
			if !ok {
				continue
			}
			if err := x.fire(ev, detail, at); err != nil {
				return err
			}
		case <-x.timer.C():
			x.timer.fired()
			detail := x.timeout()
			if err := x.fire(handoff.EvTimeout, detail, x.e.cfg.Now()); err != nil {
				return err
			}
		}
	}
	return x.fatal
}

// fire applies ev and carries out the row's actions; an action's outcome
// event is fired next, until one leaves the run waiting. A refusal of the
// table is an error: the run ends with it (it is logged by observe).
func (x *handoffExec) fire(ev handoff.Event, detail string, at time.Time) error {
	for ev != handoff.EventUnknown && x.fatal == nil {
		tr, err := x.h.fireAt(ev, detail, at)
		if err != nil {
			return err
		}
		x.follow(tr)
		ev = handoff.EventUnknown
		for _, a := range tr.Actions {
			hd := x.handlers[a]
			if hd == nil {
				return fmt.Errorf("endpoint: role %s has no handler for action %s", tr.To.Role(), a)
			}
			if next, d := hd(x, tr); next != handoff.EventUnknown {
				ev, detail = next, d
			}
		}
		at = x.e.cfg.Now()
	}
	return x.fatal
}

// follow keeps the state's timer (State.Timer): a transition to another
// state stops the old one and starts the new one's, a self-loop keeps it.
// Entering a WaitAudio state starts the watch for the far party's audio.
func (x *handoffExec) follow(tr handoff.Transition) {
	if tr.From == tr.To {
		return
	}
	d := x.e.timeouts.Duration
	if x.timerFor != nil {
		d = x.timerFor
	}
	x.timer.follow(x.e.cfg.Clock, tr, d)
	if tr.To == handoff.AWaitAudio || tr.To == handoff.MWaitAudio {
		x.watchAudio()
	}
}

// timeout says what the expiry of the current state's timer means, and
// records the failure it is, if any.
func (x *handoffExec) timeout() string {
	s := x.h.m.State()
	tm := s.Timer()
	d := x.e.timeouts.Duration(tm)
	switch s {
	case handoff.AQuerying:
		err := fmt.Errorf("%w: %s did not answer the session query within %s", ErrUnreachable, x.a.b, d)
		x.fail(err)
		return err.Error()
	case handoff.AStopping:
		return "no acknowledgement from " + x.a.b.String() + " within " + d.String() + "; carrying on"
	case handoff.ACheckingAudio:
		return fmt.Sprintf("no audio from %s within %s of step 5 (%d packets)", x.a.peer, x.e.timeouts.NoAudio, x.a.prov.Stats().PacketsReceived)
	case handoff.AReestablishing:
		detail := fmt.Sprintf("no answer from %s within %s", x.a.peer, d)
		x.fail(errors.New(detail))
		return detail
	case handoff.ANotifying:
		detail := fmt.Sprintf("no acknowledgement of the new address from %s within %s", x.a.peer, d)
		x.fail(errors.New(detail))
		return detail
	case handoff.AWaitAudio:
		return "no audio from " + x.a.peer.String() + " on the new address yet; the call stays here"
	case handoff.ARollingBack:
		x.a.resumeErr = fmt.Errorf("no resume acknowledgement within %s", d)
		return "the other device did not confirm the resume"
	case handoff.MNotifying:
		x.fail(fmt.Errorf("%w: %s did not acknowledge the new address (the call goes on)", ErrUnreachable, x.m.peer))
		return "no acknowledgement of the new address; the call goes on"
	case handoff.MWaitAudio:
		x.fail(fmt.Errorf("%w: no audio on the new address within %s (the peer may be silent; the call goes on)", ErrHandoffFailed, d))
		return fmt.Sprintf("no audio within %s; the call goes on", d)
	}
	return fmt.Sprintf("%s timer (%s) expired", tm, d)
}

// watchAudio waits, on its own goroutine, for the first packet on the new
// address (step 12) and hands it to the loop. The first packet may land
// before the acknowledgement was read: the step completes when both did.
func (x *handoffExec) watchAudio() {
	sess := x.fresh
	go func() {
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			if st := sess.Stats(); st.PacketsReceived > 0 {
				first := st.FirstPacket
				in := func(s handoff.State) (handoff.Event, string, time.Time, bool) {
					if s != handoff.AWaitAudio && s != handoff.MWaitAudio {
						return 0, "", time.Time{}, false
					}
					x.firstAudio = first
					at := first
					if at.Before(x.step11) {
						at = x.step11
					}
					detail := "audio from " + x.peerName() + " on " + sess.LocalAddr().String()
					if x.a != nil {
						detail += "; " + x.a.b.String() + " released"
					}
					return handoff.EvAudioFromC, detail, at, true
				}
				select {
				case x.in <- in:
				case <-x.quit:
				}
				return
			}
			select {
			case <-t.C:
			case <-x.quit:
				return
			}
		}
	}()
}

func (x *handoffExec) peerName() string {
	if x.a != nil {
		return x.a.peer.String()
	}
	return x.m.peer
}

// --- Steps 8-12, for A and M alike ----------------------------------------

// closeMedia: step 8, the old media closes with no termination signal.
func (x *handoffExec) closeMedia(handoff.Transition) (handoff.Event, string) {
	detail, err := x.mv.closeOld()
	if err != nil {
		// Nothing is open any more; the row for a failure is the next one.
		x.fail(err)
		x.fatal = err
		return handoff.EventUnknown, ""
	}
	return handoff.EvMediaClosed, detail
}

// allocateAddress: step 9, a new address and port.
func (x *handoffExec) allocateAddress(handoff.Transition) (handoff.Event, string) {
	if f := x.e.cfg.allocFault; f != nil {
		if err := f(x.h.m.Role()); err != nil {
			err = fmt.Errorf("%w: new media address: %w", ErrHandoffFailed, err)
			x.fail(err)
			return handoff.EvMediaFailed, err.Error()
		}
	}
	sess, err := x.mv.openNew()
	if err != nil {
		x.fail(err)
		return handoff.EvMediaFailed, err.Error()
	}
	x.fresh = sess
	return handoff.EvAddressAllocated, "media now on " + sess.LocalAddr().String()
}

// restartAudio: step 10, audio again, from the new address, new SSRC.
func (x *handoffExec) restartAudio(handoff.Transition) (handoff.Event, string) {
	x.mv.startNew(x.fresh)
	return handoff.EvAudioRestarted, fmt.Sprintf("audio restarted from %s (ssrc %08x)", x.fresh.LocalAddr(), x.fresh.SSRC())
}

// sendNewAddress: step 11, the new address directly to the far party.
func (x *handoffExec) sendNewAddress(handoff.Transition) (handoff.Event, string) {
	na := &wire.NewAddress{CallID: x.callID, Media: wire.Media{Addr: x.fresh.LocalAddr().String(), SSRC: x.fresh.SSRC(), PtimeMS: int(x.e.cfg.Ptime / time.Millisecond)}}
	if err := x.mv.sendNewAddress(na); err != nil {
		err = fmt.Errorf("%w: new address not delivered: %w", ErrUnreachable, err)
		x.fail(err)
		return handoff.EvTimeout, err.Error()
	}
	return handoff.EventUnknown, ""
}

// newAddressAcked is the input of the far party's acknowledgement.
func (x *handoffExec) newAddressAcked(s handoff.State) (handoff.Event, string, time.Time, bool) {
	if s != handoff.ANotifying && s != handoff.MNotifying {
		return 0, "", time.Time{}, false
	}
	x.step11 = x.e.cfg.Now()
	return handoff.EvNewAddressAcked, x.peerName() + " sends to " + x.fresh.LocalAddr().String(), x.step11, true
}

// --- Handlers -----------------------------------------------------------------

// aHandlers and mHandlers name the one handler of each action of roles A
// (pull.go) and M (mobility.go). Steps 8-11 are the same functions.
var aHandlers = map[handoff.Action]execHandler{
	handoff.ActSendSessionQuery: (*handoffExec).sendSessionQuery,
	handoff.ActChooseSession:    (*handoffExec).chooseSession,
	handoff.ActStartAudioToC:    (*handoffExec).startAudioToC,
	handoff.ActSendStopAudio:    (*handoffExec).sendStopAudio,
	handoff.ActSendReestablish:  (*handoffExec).sendReestablish,
	handoff.ActCloseMedia:       (*handoffExec).closeMedia,
	handoff.ActAllocateAddress:  (*handoffExec).allocateAddress,
	handoff.ActRestartAudio:     (*handoffExec).restartAudio,
	handoff.ActSendNewAddress:   (*handoffExec).sendNewAddress,
	handoff.ActReleaseB:         (*handoffExec).releaseB,
	handoff.ActStopAudioToC:     (*handoffExec).stopProvisional,
	handoff.ActSendResume:       (*handoffExec).sendResume,
	handoff.ActSendWithdraw:     (*handoffExec).sendWithdraw,
}

var mHandlers = map[handoff.Action]execHandler{
	handoff.ActCloseMedia:      (*handoffExec).closeMedia,
	handoff.ActAllocateAddress: (*handoffExec).allocateAddress,
	handoff.ActRestartAudio:    (*handoffExec).restartAudio,
	handoff.ActSendNewAddress:  (*handoffExec).sendNewAddress,
	handoff.ActEndCall:         (*handoffExec).endMovedCall,
}

// HandoffHandlers names, for each role, the function that carries out each
// action of its table, and its file (docs/handoff.md lists them, generated).
// The names come from the handler maps themselves, so they cannot drift.
func HandoffHandlers() handoff.Handlers {
	out := handoff.Handlers{}
	add := func(r handoff.Role, a handoff.Action, f any) {
		if out[r] == nil {
			out[r] = map[handoff.Action]handoff.Handler{}
		}
		fn := runtime.FuncForPC(reflect.ValueOf(f).Pointer())
		file, _ := fn.FileLine(fn.Entry())
		if i := strings.LastIndex(file, "/p2p/endpoint/"); i >= 0 {
			file = file[i+1:]
		}
		name := fn.Name()
		name = name[strings.LastIndex(name, "/")+1:]
		out[r][a] = handoff.Handler{Func: strings.TrimPrefix(name, "endpoint."), File: file}
	}
	for a, f := range aHandlers {
		add(handoff.RoleA, a, f)
	}
	for a, f := range mHandlers {
		add(handoff.RoleM, a, f)
	}
	for a, f := range bHandlers {
		add(handoff.RoleB, a, f)
	}
	for a, f := range cHandlers {
		add(handoff.RoleC, a, f)
	}
	return out
}
