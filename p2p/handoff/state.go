package handoff

import "strconv"

// State is a state of one role's machine. Values are prefixed with their
// role's letter; State.Role tells which table a state belongs to.
type State uint8

// States, grouped by role in the order the happy path meets them;
// State.Description says what holds in each.
const (
	StateUnknown State = iota

	// A: the happy path, then the four terminal states.
	AIdle
	AWaitPresence
	AQuerying
	AChoosing
	AStarting
	AStopping
	ACheckingAudio
	AReestablishing
	AClosing
	AAllocating
	ARestarting
	ANotifying
	AWaitAudio
	ARollingBack
	ADone
	AFailed
	ARolledBack
	ACallEnded

	// B.
	BActive
	BOffered
	BMuted
	BReleased

	// C.
	CActive
	COverlap
	CSwitched
	CCallEnded

	// M.
	MInCall
	MClosing
	MAllocating
	MRestarting
	MNotifying
	MWaitAudio
	MCallEnded

	stateCount
)

type stateInfo struct {
	name     string
	role     Role
	timer    Timer
	terminal bool
	desc     string
}

func (s State) info() stateInfo {
	switch s {
	case AIdle:
		return stateInfo{"AIdle", RoleA, TimerNone, false, "Start. Not logged in yet."}
	case AWaitPresence:
		return stateInfo{"AWaitPresence", RoleA, TimerPresence, false, "Logged in; waiting for B's presence, which must arrive before any query."}
	case AQuerying:
		return stateInfo{"AQuerying", RoleA, TimerQuery, false, "Session query sent directly to B; waiting for the answer."}
	case AChoosing:
		return stateInfo{"AChoosing", RoleA, TimerNone, false, "B has several active sessions; the owner picks the one the user asked for, by id."}
	case AStarting:
		return stateInfo{"AStarting", RoleA, TimerNone, false, "Session parameters in hand; provisional audio to C starting."}
	case AStopping:
		return stateInfo{"AStopping", RoleA, TimerStopAck, false, "A's audio reaches C; stop-audio sent to B, waiting for its acknowledgement."}
	case ACheckingAudio:
		return stateInfo{"ACheckingAudio", RoleA, TimerNoAudio, false, "B has stopped; the step-5 timer runs. C still sends to B, so no audio from C is expected."}
	case AReestablishing:
		return stateInfo{"AReestablishing", RoleA, TimerAnswer, false, "Re-establish with B's grant sent to C over signaling; waiting for C's answer."}
	case AClosing:
		return stateInfo{"AClosing", RoleA, TimerNone, false, "C accepted A as its media peer; the provisional media session is closing, silently."}
	case AAllocating:
		return stateInfo{"AAllocating", RoleA, TimerNone, false, "Obtaining a new IP address and port."}
	case ARestarting:
		return stateInfo{"ARestarting", RoleA, TimerNone, false, "Restarting audio on the new address."}
	case ANotifying:
		return stateInfo{"ANotifying", RoleA, TimerAddressAck, false, "New address sent to C; waiting for its acknowledgement."}
	case AWaitAudio:
		return stateInfo{"AWaitAudio", RoleA, TimerNewAudio, false, "Waiting for C's audio on the new address."}
	case ARollingBack:
		return stateInfo{"ARollingBack", RoleA, TimerResumeAck, false, "Handoff abandoned: A stopped its audio and told B to resume; waiting for B's acknowledgement."}
	case ADone:
		return stateInfo{"ADone", RoleA, TimerNone, true, "Done: the call is on A and B is released."}
	case AFailed:
		return stateInfo{"AFailed", RoleA, TimerNone, true, "Failed before anything changed: the call stays on B as it was."}
	case ARolledBack:
		return stateInfo{"ARolledBack", RoleA, TimerNone, true, "Rolled back: B resumed its audio and has the call."}
	case ACallEnded:
		return stateInfo{"ACallEnded", RoleA, TimerNone, true, "B was lost mid-handoff and C did not take A: the call is over (C ends it by its own media timeout)."}

	case BActive:
		return stateInfo{"BActive", RoleB, TimerNone, false, "Start. In a call with C, sending audio."}
	case BOffered:
		return stateInfo{"BOffered", RoleB, TimerOffer, false, "Session parameters and grant sent to one or more pullers; the first stop-audio wins."}
	case BMuted:
		return stateInfo{"BMuted", RoleB, TimerGuard, false, "Stopped its audio to C for the winning puller; waits for release or resume, at most the guard time."}
	case BReleased:
		return stateInfo{"BReleased", RoleB, TimerNone, true, "Released silently: C has the call with A; no message went to C."}

	case CActive:
		return stateInfo{"CActive", RoleC, TimerNone, false, "Start. In a call with its current peer: B before the handoff, A after it."}
	case COverlap:
		return stateInfo{"COverlap", RoleC, TimerNone, false, "Receives A's authenticated provisional stream too; plays A's only and still sends to B."}
	case CSwitched:
		return stateInfo{"CSwitched", RoleC, TimerNewAddress, false, "Accepted A as its media peer; waiting for A's new address."}
	case CCallEnded:
		return stateInfo{"CCallEnded", RoleC, TimerNone, true, "No audio from any peer for the media timeout: the call ended by C's own timeout."}

	case MInCall:
		return stateInfo{"MInCall", RoleM, TimerNone, false, "Start. In a call; its own address may change at any time."}
	case MClosing:
		return stateInfo{"MClosing", RoleM, TimerNone, false, "Address changed: the media session on the old address is closing, silently."}
	case MAllocating:
		return stateInfo{"MAllocating", RoleM, TimerNone, false, "Obtaining a new IP address and port."}
	case MRestarting:
		return stateInfo{"MRestarting", RoleM, TimerNone, false, "Restarting audio on the new address."}
	case MNotifying:
		return stateInfo{"MNotifying", RoleM, TimerAddressAck, false, "New address sent to the far party; waiting for its acknowledgement."}
	case MWaitAudio:
		return stateInfo{"MWaitAudio", RoleM, TimerNewAudio, false, "Waiting for the far party's audio on the new address."}
	case MCallEnded:
		return stateInfo{"MCallEnded", RoleM, TimerNone, true, "The new address never worked: the call is over (the far party ends it by its own media timeout)."}
	}
	return stateInfo{name: "State(" + strconv.Itoa(int(s)) + ")"}
}

// String returns the state's Go name, e.g. "AQuerying".
func (s State) String() string {
	if s == StateUnknown {
		return "Unknown"
	}
	return s.info().name
}

// Description says what holds while the machine is in the state.
func (s State) Description() string { return s.info().desc }

// Role returns the role whose table the state belongs to.
func (s State) Role() Role { return s.info().role }

// Timer returns the timer that runs while the machine is in s (TimerNone
// if none). The owner starts it when a transition enters s from another
// state and stops it when a transition leaves s; a self-loop leaves it
// running. Its expiry is EvTimeout.
func (s State) Timer() Timer { return s.info().timer }

// Terminal reports whether s ends its machine: a terminal state has no rows
// and rejects every event with ErrInvalidTransition.
func Terminal(s State) bool { return s.info().terminal }

// Start returns the state a new machine for role r starts in.
func Start(r Role) State {
	switch r {
	case RoleA:
		return AIdle
	case RoleB:
		return BActive
	case RoleC:
		return CActive
	case RoleM:
		return MInCall
	}
	return StateUnknown
}

// States lists role r's states in declaration order, start state first.
func States(r Role) []State {
	var out []State
	for s := StateUnknown + 1; s < stateCount; s++ {
		if s.Role() == r {
			out = append(out, s)
		}
	}
	return out
}
