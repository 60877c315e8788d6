package endpoint

import (
	"time"

	"github.com/baton-voice/baton/p2p/handoff"
)

// Clock runs the handoff timers (each state's timer of p2p/handoff, the
// claim step 6 timer among them). Config.Clock sets it; tests pass a fake
// one and move it on by hand, so a test of a timer does not wait for it.
type Clock interface {
	// Now is the clock's time; timers run on it.
	Now() time.Time
	// NewTimer returns a timer that fires once, d from now.
	NewTimer(d time.Duration) Timer
	// After is NewTimer(d).C() for a wait that is never stopped.
	After(d time.Duration) <-chan time.Time
}

// Timer is a one-shot timer of a Clock.
type Timer interface {
	// C delivers the time once, when the timer fires.
	C() <-chan time.Time
	// Stop prevents the timer from firing; it reports whether it did.
	Stop() bool
}

// realClock is the wall clock of package time.
type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) NewTimer(d time.Duration) Timer         { return realTimer{time.NewTimer(d)} }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

type realTimer struct{ t *time.Timer }

func (t realTimer) C() <-chan time.Time { return t.t.C }
func (t realTimer) Stop() bool          { return t.t.Stop() }

// timerC returns t's channel; nil (blocks forever in a select) if t is nil.
func timerC(t Timer) <-chan time.Time {
	if t == nil {
		return nil
	}
	return t.C()
}

// stateTimer is the one timer a handoff machine's state runs (State.Timer)
// on the endpoint's Clock, for every role: a transition to another state
// stops the old state's timer and starts the new one's, a self-loop keeps
// it running (a stream of queries must not keep B muted forever). Its
// expiry is the event Timeout.
type stateTimer struct{ t Timer }

// follow applies transition tr; d gives a timer's duration.
func (s *stateTimer) follow(clock Clock, tr handoff.Transition, d func(handoff.Timer) time.Duration) {
	if tr.From == tr.To {
		return
	}
	s.stop()
	if tm := tr.To.Timer(); tm != handoff.TimerNone {
		s.t = clock.NewTimer(max(d(tm), 0))
	}
}

func (s *stateTimer) stop() {
	if s.t != nil {
		s.t.Stop()
		s.t = nil
	}
}

// C is the running timer's channel (nil, which blocks, if none).
func (s *stateTimer) C() <-chan time.Time { return timerC(s.t) }

// fired marks the timer spent once its expiry was received.
func (s *stateTimer) fired() { s.t = nil }
