package handoff

import (
	"fmt"
	"strconv"
	"time"
)

// Timer names the one timer a state may run (State.Timer). Its zero value
// TimerNone means "no timer" rather than "unknown": most states need none.
type Timer uint8

// Timers, named after what they wait for.
const (
	TimerNone       Timer = iota
	TimerPresence         // A: B's presence after login
	TimerQuery            // A: B's answer to the session query
	TimerStopAck          // A: B's acknowledgement of stop-audio
	TimerNoAudio          // A: the claim step 6 timer, measured from step 5
	TimerAnswer           // A: C's answer to the re-establish (step 7)
	TimerAddressAck       // A, M: C's acknowledgement of the new address (step 11)
	TimerNewAudio         // A, M: C's audio on the new address (step 12)
	TimerResumeAck        // A: B's acknowledgement of resume (rollback)
	TimerOffer            // B: a puller's stop-audio after B answered the query
	TimerGuard            // B: release or resume after muting; bounds a dead A
	TimerNewAddress       // C: A's new address after accepting A as its peer

	timerCount
)

// String returns the timer's short name, e.g. "NoAudio".
func (t Timer) String() string {
	switch t {
	case TimerNone:
		return "None"
	case TimerPresence:
		return "Presence"
	case TimerQuery:
		return "Query"
	case TimerStopAck:
		return "StopAck"
	case TimerNoAudio:
		return "NoAudio"
	case TimerAnswer:
		return "Answer"
	case TimerAddressAck:
		return "AddressAck"
	case TimerNewAudio:
		return "NewAudio"
	case TimerResumeAck:
		return "ResumeAck"
	case TimerOffer:
		return "Offer"
	case TimerGuard:
		return "Guard"
	case TimerNewAddress:
		return "NewAddress"
	}
	return "Timer(" + strconv.Itoa(int(t)) + ")"
}

// Description says what the timer waits for and who runs it.
func (t Timer) Description() string {
	switch t {
	case TimerPresence:
		return "A: B's presence after login."
	case TimerQuery:
		return "A: B's answer to the session query."
	case TimerStopAck:
		return "A: B's acknowledgement of stop-audio."
	case TimerNoAudio:
		return "A: the claim step 6 timer, measured from step 5; a few packet times."
	case TimerAnswer:
		return "A: C's answer to the re-establish (step 7)."
	case TimerAddressAck:
		return "A, M: the far party's acknowledgement of the new address (step 11)."
	case TimerNewAudio:
		return "A, M: the far party's audio on the new address (step 12)."
	case TimerResumeAck:
		return "A: B's acknowledgement of resume (rollback)."
	case TimerOffer:
		return "B: a puller's stop-audio after B answered its query."
	case TimerGuard:
		return "B: release or resume after muting; bounds how long a dead A can keep B silent."
	case TimerNewAddress:
		return "C: A's new address after accepting A as its media peer."
	}
	return ""
}

// Timeouts holds the duration of every Timer. The config package fills it
// from the user's settings; DefaultTimeouts gives the built-in values.
type Timeouts struct {
	Presence   time.Duration
	Query      time.Duration
	StopAck    time.Duration
	NoAudio    time.Duration
	Answer     time.Duration
	AddressAck time.Duration
	NewAudio   time.Duration
	ResumeAck  time.Duration
	Offer      time.Duration
	Guard      time.Duration
	NewAddress time.Duration
}

// DefaultPtime is the packet time assumed when DefaultTimeouts gets none.
const DefaultPtime = 20 * time.Millisecond

// noAudioPackets is "a few packet times" of DESIGN.md §2 step 6: long
// enough to ride out jitter on one path, short enough that C hears at most
// this much of A alone before A re-establishes.
const noAudioPackets = 3

// DefaultTimeouts returns the built-in timeouts for a session with the
// given packet time (DefaultPtime if ptime <= 0).
func DefaultTimeouts(ptime time.Duration) Timeouts {
	if ptime <= 0 {
		ptime = DefaultPtime
	}
	return Timeouts{
		Presence:   5 * time.Second,
		Query:      2 * time.Second,
		StopAck:    time.Second,
		NoAudio:    noAudioPackets * ptime,
		Answer:     2 * time.Second,
		AddressAck: time.Second,
		NewAudio:   time.Second,
		ResumeAck:  time.Second,
		Offer:      10 * time.Second,
		Guard:      10 * time.Second,
		NewAddress: 3 * time.Second,
	}
}

// Duration returns the duration of timer tm (0 for TimerNone).
func (t Timeouts) Duration(tm Timer) time.Duration {
	switch tm {
	case TimerPresence:
		return t.Presence
	case TimerQuery:
		return t.Query
	case TimerStopAck:
		return t.StopAck
	case TimerNoAudio:
		return t.NoAudio
	case TimerAnswer:
		return t.Answer
	case TimerAddressAck:
		return t.AddressAck
	case TimerNewAudio:
		return t.NewAudio
	case TimerResumeAck:
		return t.ResumeAck
	case TimerOffer:
		return t.Offer
	case TimerGuard:
		return t.Guard
	case TimerNewAddress:
		return t.NewAddress
	}
	return 0
}

// Deadline returns when the timer of state s, entered at now, fires, and
// false if s runs no timer. The caller passes the clock in, so the package
// stays pure.
func (t Timeouts) Deadline(s State, now time.Time) (time.Time, bool) {
	tm := s.Timer()
	if tm == TimerNone {
		return time.Time{}, false
	}
	return now.Add(t.Duration(tm)), true
}

// Validate checks that every timeout is positive and that B's timers
// outlast A: the guard must outlast A's window from B muting to B's
// release (steps 6, 7, 11 and 12), and the offer that window plus A's wait
// for the stop acknowledgement (a lost stop-audio leaves the offer timer as
// B's only guard). A B timer that fired earlier would let B resume, or
// forget the puller, while a handoff about to commit is still running.
func (t Timeouts) Validate() error {
	for tm := TimerNone + 1; tm < timerCount; tm++ {
		if d := t.Duration(tm); d <= 0 {
			return fmt.Errorf("handoff: timeout %s is %v, must be positive: %w", tm, d, ErrInvalidTimeouts)
		}
	}
	window := t.NoAudio + t.Answer + t.AddressAck + t.NewAudio
	if t.Guard <= window {
		return fmt.Errorf("handoff: guard %v must exceed A's window %v (NoAudio+Answer+AddressAck+NewAudio): %w", t.Guard, window, ErrInvalidTimeouts)
	}
	if t.Offer <= t.StopAck+window {
		return fmt.Errorf("handoff: offer %v must exceed StopAck plus A's window, %v: %w", t.Offer, t.StopAck+window, ErrInvalidTimeouts)
	}
	return nil
}
